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

from typing import Any


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

    # A breaker builds its errors with `circuit_open_error`, on its rejection path: most
    # rejections are caught and never printed, so it stores the fields in slots (half
    # the cost of the instance dict) and defers formatting the message (a float to
    # three digits costs as much as the rest of the error) until it is first read,
    # through `args`, `str` or `repr` (pickling reads `str`). Until then
    # `_message_head` holds the text before the wait; otherwise it is None or, when
    # the constructor made the error, unset.
    __slots__ = ("_message_head", "primitive_name", "retry_after")

    _message_head: str | None

    @property
    def args(self) -> tuple[Any, ...]:
        """The constructor's positional arguments: ``(message,)``."""
        self._format_message()
        args: tuple[Any, ...] = _BASE_ARGS.__get__(self)
        return args

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        self._message_head = None
        _BASE_ARGS.__set__(self, value)

    def __str__(self) -> str:
        self._format_message()
        return BaseException.__str__(self)

    def __repr__(self) -> str:
        self._format_message()
        return BaseException.__repr__(self)

    def _format_message(self) -> None:
        # Two threads may race here: both store the same text, and storing it twice is
        # harmless, so no lock.
        head: str | None = getattr(self, "_message_head", None)
        if head is not None:
            retry_after = self.retry_after
            wait = "until reset" if retry_after is None else f"retry after {retry_after:.3g} s"
            _BASE_ARGS.__set__(self, (head + wait,))
            self._message_head = None


# BaseException's own ``args`` field, which `CircuitOpenError.args` wraps.
_BASE_ARGS = BaseException.__dict__["args"]
# Creates an exception with its ``args`` and nothing else, without a Python-level call
# of ``__init__`` (which costs several times as much, mostly in its keyword arguments).
_new_exception = BaseException.__new__


def circuit_open_error(
    message_head: str, primitive_name: str, retry_after: float | None
) -> CircuitOpenError:
    """Build a breaker's `CircuitOpenError` at a fraction of the constructor's cost.

    The same error as ``CircuitOpenError(message, primitive_name=primitive_name,
    retry_after=retry_after)``, where *message* is *message_head* followed by
    ``"until reset"`` when *retry_after* is None, else by ``f"retry after
    {retry_after:.3g} s"``; the message is formatted when first read.
    """
    error: CircuitOpenError = _new_exception(CircuitOpenError)
    error.primitive_name = primitive_name
    error.retry_after = retry_after
    error._message_head = message_head  # noqa: SLF001 -- its own module
    return error


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
