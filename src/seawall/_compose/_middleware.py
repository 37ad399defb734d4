"""The ``with_*`` options: one resilience policy each, as an LLM middleware.

Each option adapts one primitive to a model's ``generate`` and ``stream``. On streams
every policy acts where it makes sense for a stream, as listed in each docstring; the
summary is in `with_retry`. Compose them with `seawall.as_llm_middleware`.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar, final

from seawall._breaker import CircuitBreaker
from seawall._bulkhead import Bulkhead
from seawall._errors import CallTimeoutError
from seawall._fallback import Fallback
from seawall._hedge import Hedger
from seawall._limit import LLMLease, LLMRateLimiter, RateLimiter
from seawall._retry import Retrier
from seawall._timeout import Timeout
from seawall._validate import check_callable, to_seconds

from ._model import Args, Kwargs, Layer, M, wrap_model
from ._streams import EMPTY, aclose_iterator, aopen_first, close_iterator, open_first, relay


if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Awaitable,
        Callable,
        Generator,
        Iterator,
    )
    from datetime import timedelta


__all__ = (
    "PolicyMiddleware",
    "with_bulkhead",
    "with_circuit_breaker",
    "with_fallback",
    "with_hedge",
    "with_rate_limit",
    "with_retry",
    "with_timeout",
)

T = TypeVar("T")


@final
class PolicyMiddleware:
    """The middleware a ``with_*`` option returns: wraps a model in one layer."""

    __slots__ = ("_layer", "_option")

    def __init__(self, option: str, layer: Layer) -> None:
        self._option = option
        self._layer = layer

    def __call__(self, model: M, /) -> M:
        """Return *model* wrapped in this option's policy."""
        return wrap_model(model, self._layer)

    def __repr__(self) -> str:
        return self._layer.describe()


# -- circuit breaker ---------------------------------------------------------------------


@final
class _BreakerLayer:
    __slots__ = ("_breaker",)

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    def describe(self) -> str:
        return f"with_circuit_breaker({self._breaker.name!r})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        return self._breaker.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        return await self._breaker.acall(fn, *args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        # Closing early raises GeneratorExit here, which the guard records as nothing.
        with self._breaker.guard():
            yield from relay(open_stream, args, kwargs)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        async with self._breaker.guard():
            iterator = await open_stream(*args, **kwargs)
            try:
                async for chunk in iterator:
                    yield chunk
            finally:
                await aclose_iterator(iterator)


def with_circuit_breaker(breaker: CircuitBreaker) -> PolicyMiddleware:
    """Guard the model's calls with *breaker* (the Go guide's ``WithCircuitBreaker``).

    ``generate`` goes through `CircuitBreaker.call` / `CircuitBreaker.acall`. A stream
    is one call: it is admitted when the consumer asks for the first chunk (or
    `seawall.CircuitOpenError` is raised there), and its outcome is recorded when it
    ends: a success when it is exhausted, the breaker's judgement of the exception when
    it raises (before or after the first chunk), and nothing when the consumer closes
    it early (``break``, ``aclose``) or is cancelled.

    Args:
        breaker: The `seawall.CircuitBreaker`, usually shared by every model that calls
            the same provider.

    Raises:
        TypeError: *breaker* is not a `seawall.CircuitBreaker`.

    .. versionadded:: 0.1.0
    """
    if not isinstance(breaker, CircuitBreaker):
        msg = f"breaker must be a seawall.CircuitBreaker, got {type(breaker).__name__}"
        raise TypeError(msg)
    return PolicyMiddleware("with_circuit_breaker", _BreakerLayer(breaker))


# -- retry -------------------------------------------------------------------------------


@final
class _RetryLayer:
    __slots__ = ("_retrier",)

    def __init__(self, retrier: Retrier) -> None:
        self._retrier = retrier

    def describe(self) -> str:
        return f"with_retry({self._retrier.name!r})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        return self._retrier.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        return await self._retrier.acall(fn, *args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        opened: tuple[Iterator[Any], object] | None = None
        for attempt in self._retrier:
            with attempt:
                opened = open_first(open_stream, args, kwargs)
        if opened is None:  # pragma: no cover -- the loop raises or opens
            raise AssertionError("unreachable")
        iterator, first = opened
        try:
            if first is not EMPTY:
                yield first
                yield from iterator
        finally:
            close_iterator(iterator)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        opened: tuple[AsyncIterator[Any], object] | None = None
        async for attempt in self._retrier:
            with attempt:
                opened = await aopen_first(open_stream, args, kwargs)
        if opened is None:  # pragma: no cover -- the loop raises or opens
            raise AssertionError("unreachable")
        iterator, first = opened
        try:
            if first is not EMPTY:
                yield first
                async for chunk in iterator:
                    yield chunk
        finally:
            await aclose_iterator(iterator)


def with_retry(retrier: Retrier) -> PolicyMiddleware:
    """Retry the model's failed calls with *retrier* (the Go guide's ``WithRetry``).

    ``generate`` goes through `Retrier.call` / `Retrier.acall`. A stream is retried only
    until its first chunk arrives: each attempt opens the stream and reads one chunk,
    and a failure there (judged by the retrier, with its backoff and Retry-After) closes
    that stream and opens a new one. Once a chunk has been delivered, a failure goes to
    the consumer as it is, after the chunks already received: replaying a stream would
    repeat them.

    How each option treats a stream:

    ==========================  ===========================================================
    `with_retry`                reopens until the first chunk, never after
    `with_hedge`                hedges the time to first chunk (async streams only)
    `with_circuit_breaker`      admits at start, records the outcome when the stream ends
    `with_rate_limit`           admits at start; LLM limits settle the usage at the end
    `with_timeout`              bounds the time to first chunk; ``stall`` bounds the gaps
    `with_bulkhead`             holds a slot for the whole stream
    `with_fallback`             does not act on streams (``generate`` only)
    ==========================  ===========================================================

    Args:
        retrier: The `seawall.Retrier`.

    Raises:
        TypeError: *retrier* is not a `seawall.Retrier`.

    .. versionadded:: 0.1.0
    """
    if not isinstance(retrier, Retrier):
        msg = f"retrier must be a seawall.Retrier, got {type(retrier).__name__}"
        raise TypeError(msg)
    return PolicyMiddleware("with_retry", _RetryLayer(retrier))


# -- rate limits -------------------------------------------------------------------------


@final
class _RateLimitLayer:
    __slots__ = ("_limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def describe(self) -> str:
        return f"with_rate_limit({self._limiter.name!r})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        with self._limiter:  # one token; reported as a call when the limiter has hooks
            return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        async with self._limiter:
            return await fn(*args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        self._limiter.acquire()
        yield from relay(open_stream, args, kwargs)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        await self._limiter.aacquire()
        iterator = await open_stream(*args, **kwargs)
        try:
            async for chunk in iterator:
                yield chunk
        finally:
            await aclose_iterator(iterator)


@final
class _LLMRateLimitLayer:
    __slots__ = ("_estimate", "_limiter", "_usage")

    def __init__(
        self,
        limiter: LLMRateLimiter,
        estimate: Callable[..., float],
        usage: Callable[[Any], float | None] | None,
    ) -> None:
        self._limiter = limiter
        self._estimate = estimate
        self._usage = usage

    def describe(self) -> str:
        return f"with_rate_limit({self._limiter.name!r})"

    def _settle_result(self, lease: LLMLease, result: object) -> None:
        if self._usage is not None:
            actual = self._usage(result)
            if actual is not None:
                lease.settle(actual)

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        lease = self._limiter.reserve(self._estimate(*args, **kwargs))
        result = fn(*args, **kwargs)
        self._settle_result(lease, result)
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        lease = await self._limiter.areserve(self._estimate(*args, **kwargs))
        result = await fn(*args, **kwargs)
        self._settle_result(lease, result)
        return result

    def _report(self, chunk: object, reported: float | None) -> float | None:
        if self._usage is None:
            return None
        actual = self._usage(chunk)
        return reported if actual is None else actual

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        lease = self._limiter.reserve(self._estimate(*args, **kwargs))
        reported: float | None = None
        iterator = iter(open_stream(*args, **kwargs))
        try:
            for chunk in iterator:
                reported = self._report(chunk, reported)
                yield chunk
        finally:
            close_iterator(iterator)
        if reported is not None:
            lease.settle(reported)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        lease = await self._limiter.areserve(self._estimate(*args, **kwargs))
        reported: float | None = None
        iterator = await open_stream(*args, **kwargs)
        try:
            async for chunk in iterator:
                reported = self._report(chunk, reported)
                yield chunk
        finally:
            await aclose_iterator(iterator)
        if reported is not None:
            lease.settle(reported)


def with_rate_limit(
    limiter: RateLimiter | LLMRateLimiter,
    *,
    estimate: Callable[..., float] | None = None,
    usage: Callable[[Any], float | None] | None = None,
) -> PolicyMiddleware:
    """Admit the model's calls through *limiter* (the Go guide's ``WithRateLimit``).

    With a `seawall.RateLimiter`, each ``generate`` call and each stream takes one
    token, waiting for it as long as needed (``acquire`` / ``aacquire``).

    With a `seawall.LLMRateLimiter`, each call reserves one request and
    ``estimate(*args, **kwargs)`` tokens (the call's own arguments), waiting for the
    grant, and then settles the lease with ``usage(result)`` when that is not ``None``.
    A call that raises keeps its estimate (providers count failed requests too).

    On a stream the limiter admits when the consumer asks for the first chunk. For an
    LLM limit, ``usage`` is applied to **every chunk** and the last value that is not
    ``None`` settles the lease when the stream is exhausted (providers report usage in
    one late chunk, e.g. OpenAI's ``stream_options={"include_usage": True}``). A stream
    that raises or is closed early keeps its estimate.

    Put the rate limit outside `with_retry` (later in the list) to take one token per
    request, or inside it to take one per attempt.

    Args:
        limiter: A `seawall.RateLimiter` or `seawall.LLMRateLimiter`.
        estimate: For an LLM limiter (required): ``estimate(*args, **kwargs)`` returns
            the tokens to reserve for a call with those arguments.
        usage: For an LLM limiter (optional): ``usage(result_or_chunk)`` returns the
            tokens really used, or ``None`` if it does not say. Default ``None``:
            leases keep their estimates.

    Raises:
        TypeError: *limiter* has the wrong type, *estimate* is missing for an LLM
            limiter, or *estimate* / *usage* is given for a plain one or not callable.

    .. versionadded:: 0.1.0
    """
    if isinstance(limiter, LLMRateLimiter):
        if estimate is None:
            msg = "estimate is required with a seawall.LLMRateLimiter: estimate(*args, **kwargs)"
            raise TypeError(msg)
        check_callable("estimate", estimate)
        if usage is not None:
            check_callable("usage", usage)
        return PolicyMiddleware("with_rate_limit", _LLMRateLimitLayer(limiter, estimate, usage))
    if isinstance(limiter, RateLimiter):
        for param, value in (("estimate", estimate), ("usage", usage)):
            if value is not None:
                msg = f"{param} applies to a seawall.LLMRateLimiter only, not a RateLimiter"
                raise TypeError(msg)
        return PolicyMiddleware("with_rate_limit", _RateLimitLayer(limiter))
    msg = (
        "limiter must be a seawall.RateLimiter or seawall.LLMRateLimiter, "
        f"got {type(limiter).__name__}"
    )
    raise TypeError(msg)


# -- hedging -----------------------------------------------------------------------------


@final
class _HedgeLayer:
    __slots__ = ("_hedger",)

    def __init__(self, hedger: Hedger) -> None:
        self._hedger = hedger

    def describe(self) -> str:
        return f"with_hedge({self._hedger.name!r})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        return self._hedger.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        return await self._hedger.acall(fn, *args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        # Not hedged: a sync stream's losers would be abandoned with their connections.
        yield from relay(open_stream, args, kwargs)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        async def attempt() -> AsyncGenerator[Any, None]:
            iterator = await open_stream(*args, **kwargs)
            try:
                async for chunk in iterator:
                    yield chunk
            finally:
                await aclose_iterator(iterator)

        async with aclosing(self._hedger.astream(attempt)) as chunks:
            async for chunk in chunks:
                yield chunk


def with_hedge(hedger: Hedger) -> PolicyMiddleware:
    """Hedge the model's slow calls with *hedger*.

    ``generate`` goes through `Hedger.call` (worker threads) / `Hedger.acall`. An async
    stream goes through `Hedger.astream`: hedged on the time to its first chunk, the
    first stream to yield wins and the others are closed; never after the first chunk.
    Sync streams are not hedged (they pass through unchanged): their losing attempts
    could not be cancelled and would keep their connections open.

    Only hedge idempotent calls: several copies may run.

    Args:
        hedger: The `seawall.Hedger`.

    Raises:
        TypeError: *hedger* is not a `seawall.Hedger`.

    .. versionadded:: 0.1.0
    """
    if not isinstance(hedger, Hedger):
        msg = f"hedger must be a seawall.Hedger, got {type(hedger).__name__}"
        raise TypeError(msg)
    return PolicyMiddleware("with_hedge", _HedgeLayer(hedger))


# -- timeout -----------------------------------------------------------------------------


@final
class _TimeoutLayer:
    __slots__ = ("_stall", "_timeout")

    def __init__(self, timeout: Timeout, stall: Timeout | None) -> None:
        self._timeout = timeout
        self._stall = stall

    def describe(self) -> str:
        stall = "" if self._stall is None else f", stall={self._stall.seconds!r}"
        return f"with_timeout({self._timeout.name!r}{stall})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        return self._timeout.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        return await self._timeout.acall(fn, *args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        # The worker thread of a timed-out first chunk keeps its stream (abandoned).
        iterator, chunk = self._timeout.call(open_first, open_stream, args, kwargs)
        stall = self._stall
        abandoned = False
        try:
            while chunk is not EMPTY:
                yield chunk
                if stall is None:
                    chunk = next(iterator, EMPTY)
                    continue
                try:
                    chunk = stall.call(next, iterator, EMPTY)
                except CallTimeoutError:
                    # Its worker is still inside next(): the stream cannot be closed.
                    abandoned = True
                    raise
        finally:
            if not abandoned:
                close_iterator(iterator)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        iterator, chunk = await self._timeout.acall(aopen_first, open_stream, args, kwargs)
        stall = self._stall
        try:
            while chunk is not EMPTY:
                yield chunk
                if stall is None:
                    chunk = await anext(iterator, EMPTY)
                else:
                    chunk = await stall.acall(anext, iterator, EMPTY)
        finally:
            await aclose_iterator(iterator)


def with_timeout(timeout: Timeout, *, stall: float | timedelta | None = None) -> PolicyMiddleware:
    """Bound how long the model's calls may take with *timeout*.

    ``generate`` goes through ``Timeout.call`` (a worker thread, abandoned on expiry) /
    ``Timeout.acall`` (cancelled on expiry). A stream is bounded by *timeout* until its
    first chunk (opening it included), not for its whole length, since a long answer
    is not a slow one. With *stall*, each later chunk must arrive within *stall*
    seconds of the consumer asking for it, or `seawall.CallTimeoutError` is raised to
    the consumer (async: the pending read is cancelled and the stream closed; sync: the
    read is abandoned in its worker thread, with the stream). The time the consumer
    spends between chunks never counts. The stall is measured on *timeout*'s clock
    and reported under its name, but not counted in its statistics.

    Args:
        timeout: The ``seawall.Timeout``.
        stall: The longest wait for each chunk after the first, in seconds (> 0) or as
            a `timedelta`; default ``None``: no limit between chunks.

    Raises:
        TypeError: *timeout* is not a ``seawall.Timeout``, or *stall* has the wrong
            type.
        ValueError: *stall* is not > 0.

    .. versionadded:: 0.1.0
    """
    if not isinstance(timeout, Timeout):
        msg = f"timeout must be a seawall.Timeout, got {type(timeout).__name__}"
        raise TypeError(msg)
    stall_timeout = None
    if stall is not None:
        seconds = to_seconds("stall", stall, allow_zero=False)
        stall_timeout = Timeout(seconds, name=timeout.name, clock=timeout.clock)
    return PolicyMiddleware("with_timeout", _TimeoutLayer(timeout, stall_timeout))


# -- bulkhead ----------------------------------------------------------------------------


@final
class _BulkheadLayer:
    __slots__ = ("_bulkhead",)

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead

    def describe(self) -> str:
        return f"with_bulkhead({self._bulkhead.name!r})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        return self._bulkhead.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        return await self._bulkhead.acall(fn, *args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        with self._bulkhead:
            yield from relay(open_stream, args, kwargs)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        async with self._bulkhead:
            iterator = await open_stream(*args, **kwargs)
            try:
                async for chunk in iterator:
                    yield chunk
            finally:
                await aclose_iterator(iterator)


def with_bulkhead(bulkhead: Bulkhead) -> PolicyMiddleware:
    """Limit how many of the model's calls run at once with *bulkhead*.

    ``generate`` goes through ``Bulkhead.call`` / ``Bulkhead.acall``. A stream takes its
    slot when the consumer asks for the first chunk and holds it until the stream ends,
    raises or is closed: an open stream is a call in flight. A full bulkhead raises
    `seawall.BulkheadFullError` there.

    Args:
        bulkhead: The ``seawall.Bulkhead``.

    Raises:
        TypeError: *bulkhead* is not a ``seawall.Bulkhead``.

    .. versionadded:: 0.1.0
    """
    if not isinstance(bulkhead, Bulkhead):
        msg = f"bulkhead must be a seawall.Bulkhead, got {type(bulkhead).__name__}"
        raise TypeError(msg)
    return PolicyMiddleware("with_bulkhead", _BulkheadLayer(bulkhead))


# -- fallback ----------------------------------------------------------------------------


@final
class _FallbackLayer:
    __slots__ = ("_fallback",)

    def __init__(self, fallback: Fallback) -> None:
        self._fallback = fallback

    def describe(self) -> str:
        return f"with_fallback({self._fallback.name!r})"

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        return self._fallback.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        return await self._fallback.acall(fn, *args, **kwargs)

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        yield from relay(open_stream, args, kwargs)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        iterator = await open_stream(*args, **kwargs)
        try:
            async for chunk in iterator:
                yield chunk
        finally:
            await aclose_iterator(iterator)


def with_fallback(fallback: Fallback) -> PolicyMiddleware:
    """Answer the model's failed ``generate`` calls with *fallback*'s substitute.

    ``generate`` goes through ``Fallback.call`` / ``Fallback.acall``. Streams pass
    through unchanged: a substitute value is not a stream, and after the first chunk
    nothing could replace what was already delivered. Put a fallback outermost (last in
    the list) so that it answers only once retries and the breaker have given up.

    Args:
        fallback: The ``seawall.Fallback``.

    Raises:
        TypeError: *fallback* is not a ``seawall.Fallback``.

    .. versionadded:: 0.1.0
    """
    if not isinstance(fallback, Fallback):
        msg = f"fallback must be a seawall.Fallback, got {type(fallback).__name__}"
        raise TypeError(msg)
    return PolicyMiddleware("with_fallback", _FallbackLayer(fallback))
