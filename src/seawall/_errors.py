"""The exception tree of seawall.

Every error seawall raises derives from one root::

    ResilienceError
    ├── RejectedError            a primitive refused the call before running it
    │   ├── CircuitOpenError     the circuit breaker is open (or half-open and full)
    │   ├── RateLimitedError     the rate limiter has no token in time
    │   ├── BulkheadFullError    every slot and queue place of a bulkhead is taken
    │   └── WouldBlock           a *_nowait / try_* operation would have had to wait
    └── CallTimeoutError         a call ran past its timeout (also a builtin TimeoutError)

Retry exhaustion is not in the tree: a retrier re-raises the last real exception,
with the attempt count attached as a note.
"""

from __future__ import annotations


__all__ = (
    "BulkheadFullError",
    "CallTimeoutError",
    "CircuitOpenError",
    "RateLimitedError",
    "RejectedError",
    "ResilienceError",
    "WouldBlock",
)


class ResilienceError(Exception):
    """Root of every exception raised by seawall itself.

    .. versionadded:: 0.1.0
    """


class RejectedError(ResilienceError):
    """A primitive refused to run the call.

    Attributes:
        primitive_name: The name of the primitive that refused.
        retry_after: Seconds after which trying again may succeed, or ``None``
            when the primitive cannot tell.

    .. versionadded:: 0.1.0
    """

    primitive_name: str
    retry_after: float | None

    def __init__(self, message: str, *, primitive_name: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.primitive_name = primitive_name
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructors need help to survive pickling across processes.
        return (
            _rebuild,
            (type(self), str(self), self.primitive_name, self.retry_after),
        )


def _rebuild(
    cls: type[RejectedError], message: str, primitive_name: str, retry_after: float | None
) -> RejectedError:
    return cls(message, primitive_name=primitive_name, retry_after=retry_after)


class CircuitOpenError(RejectedError):
    """The circuit breaker rejected the call.

    It is open, forced open, or half-open with every probe slot taken.

    .. versionadded:: 0.1.0
    """


class RateLimitedError(RejectedError):
    """The rate limiter could not grant the tokens within the allowed wait.

    .. versionadded:: 0.1.0
    """


class WouldBlock(RejectedError):  # noqa: N818 -- the name anyio and trio use for this idea
    """A non-blocking operation (``try_*`` or ``*_nowait``) would have had to wait.

    .. versionadded:: 0.1.0
    """


class BulkheadFullError(RejectedError):
    """The bulkhead refused the call: every slot is busy and its queue is full.

    .. versionadded:: 0.1.0
    """


class CallTimeoutError(ResilienceError, TimeoutError):
    """A call ran past its timeout and was cancelled (async) or abandoned (sync).

    It is a builtin `TimeoutError` too, so `seawall.classify` calls it transient and
    code that already catches `TimeoutError` keeps working.

    Attributes:
        primitive_name: The name of the timeout policy.
        timeout: The timeout that was exceeded, in seconds.

    .. versionadded:: 0.1.0
    """

    primitive_name: str
    timeout: float

    def __init__(self, message: str, *, primitive_name: str, timeout: float) -> None:
        super().__init__(message)
        self.primitive_name = primitive_name
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_timeout, (str(self), self.primitive_name, self.timeout))


def _rebuild_timeout(message: str, primitive_name: str, timeout: float) -> CallTimeoutError:
    return CallTimeoutError(message, primitive_name=primitive_name, timeout=timeout)
