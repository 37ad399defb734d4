"""Fault injection for tests: wrap a callable or a model so that it fails and stalls on cue.

A `FaultInjector` decides, for each call, whether to raise an injected error, which one,
and how long to wait first, from a seeded random source (or from a script of `Fault`
outcomes). It is a test double, not a resilience primitive: it protects nothing.
"""

from __future__ import annotations

import bisect
import functools
import inspect
import math
import random
import threading
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeAlias, TypeVar, cast, final

from ._clock import resolve_clock
from ._validate import (
    check_callable,
    check_fraction,
    check_positive_int,
    is_async_callable,
    to_seconds,
)


if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterable,
        Awaitable,
        Callable,
        Generator,
        Iterable,
        Mapping,
    )

    from ._clock import Clock


__all__ = (
    "Fault",
    "FaultInjector",
    "FaultStatistics",
    "InjectedError",
    "InjectedHTTPError",
    "Latency",
)

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M")
Y = TypeVar("Y")

ErrorSpec: TypeAlias = "Exception | Callable[[], Exception]"
"""An injected error: an exception instance (raised as it is) or a zero-argument factory."""

DEFAULT_STREAM_BREAK_AFTER: Final = (1, 10)

_FIXED: Final = "fixed"
_UNIFORM: Final = "uniform"
_EXPONENTIAL: Final = "exponential"
_LOGNORMAL: Final = "lognormal"
_PARETO: Final = "pareto"
_MIXTURE: Final = "mixture"


# -- injected exceptions -----------------------------------------------------------------


class InjectedError(ConnectionError):
    """The default injected error: a simulated broken connection.

    A `ConnectionError`, so `seawall.classify` calls it TRANSIENT and the default retrier
    retries it, as it would a real reset connection.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str = "injected fault") -> None:
        super().__init__(message)


class InjectedHTTPError(Exception):
    """A simulated HTTP error response, shaped like the exceptions of HTTP and LLM clients.

    `seawall.classify` reads it by duck typing like any client's error: ``status_code``,
    the ``retry-after`` header in ``headers``, and the provider error ``code`` (for
    example ``"insufficient_quota"`` on a 429) or one nested in ``body``.

    Args:
        status_code: The HTTP status, 100..599.
        retry_after: Seconds to put in the ``retry-after`` header, or ``None`` (default)
            for no header.
        code: A provider error code, or ``None`` (default).
        body: The decoded response body, or ``None`` (default).
        headers: More response headers (default none); names are stored in lowercase.

    Attributes:
        status_code: The HTTP status.
        headers: The response headers, names in lowercase.
        body: The response body.
        code: The provider error code.

    .. versionadded:: 0.1.0
    """

    status_code: int
    headers: dict[str, str]
    body: object
    code: str | None

    def __init__(
        self,
        status_code: int,
        *,
        retry_after: float | timedelta | None = None,
        code: str | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(status_code, int) or isinstance(status_code, bool):
            raise TypeError(f"status_code must be an int, got {type(status_code).__name__}")
        if not 100 <= status_code <= 599:  # noqa: PLR2004 -- the range of HTTP statuses
            raise ValueError(f"status_code must be in 100..599, got {status_code}")
        if code is not None and not isinstance(code, str):
            raise TypeError(f"code must be a str or None, got {type(code).__name__}")
        merged = {str(name).lower(): str(value) for name, value in (headers or {}).items()}
        if retry_after is not None:
            merged["retry-after"] = _format_seconds(_finite_seconds("retry_after", retry_after))
        super().__init__(f"HTTP {status_code}: injected fault" + (f" ({code})" if code else ""))
        self.status_code = status_code
        self.headers = merged
        self.body = body
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructors need help to survive pickling across processes.
        return (
            _rebuild_http_error,
            (self.status_code, self.code, self.body, self.headers),
        )


def _rebuild_http_error(
    status_code: int, code: str | None, body: object, headers: dict[str, str]
) -> InjectedHTTPError:
    return InjectedHTTPError(status_code, code=code, body=body, headers=headers)


# -- latency distributions ---------------------------------------------------------------


@final
class Latency:
    """A distribution of injected delays, in seconds; build one with the class methods.

    Every distribution draws from the `random.Random` it is given, so a seeded injector
    replays the same delays. ``capped(max_seconds)`` bounds any of them.

    Example::

        Latency.mixture(
            (0.99, Latency.lognormal(median=0.2, sigma=0.5)),
            (0.01, Latency.pareto(scale=2.0, alpha=1.5)),  # a heavy tail
        ).capped(30.0)

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_cap", "_components", "_cumulative", "_kind", "_params")

    def __init__(
        self,
        kind: str,
        params: tuple[float, ...],
        components: tuple[tuple[float, Latency], ...] = (),
        cap: float | None = None,
    ) -> None:
        # Private: the class methods validate, then build.
        self._kind = kind
        self._params = params
        self._components = components
        self._cap = cap
        total = 0.0
        cumulative = []
        for weight, _ in components:
            total += weight
            cumulative.append(total)
        self._cumulative = tuple(cumulative)

    @classmethod
    def fixed(cls, seconds: float | timedelta) -> Latency:
        """Return a constant delay of *seconds* (>= 0)."""
        return cls(_FIXED, (_finite_seconds("seconds", seconds),))

    @classmethod
    def uniform(cls, low: float | timedelta, high: float | timedelta) -> Latency:
        """Uniform between *low* and *high* seconds, ``0 <= low <= high``."""
        low_s = _finite_seconds("low", low)
        high_s = _finite_seconds("high", high)
        if high_s < low_s:
            raise ValueError(f"high must be >= low, got low={low_s!r}, high={high_s!r}")
        return cls(_UNIFORM, (low_s, high_s))

    @classmethod
    def exponential(cls, mean: float | timedelta) -> Latency:
        """Exponential with the given *mean* seconds (> 0): memoryless queueing delay."""
        return cls(_EXPONENTIAL, (_finite_seconds("mean", mean, allow_zero=False),))

    @classmethod
    def lognormal(cls, median: float | timedelta, sigma: float) -> Latency:
        """Log-normal with the given *median* seconds (> 0) and shape *sigma* (> 0).

        The usual shape of service latency: half the samples are below *median*, and a
        larger *sigma* stretches the right tail (p99 is ``median * exp(2.326 * sigma)``).
        """
        median_s = _finite_seconds("median", median, allow_zero=False)
        return cls(_LOGNORMAL, (median_s, _positive("sigma", sigma)))

    @classmethod
    def pareto(cls, scale: float | timedelta, alpha: float) -> Latency:
        """Pareto: at least *scale* seconds (> 0), heavy-tailed with index *alpha* (> 0).

        The smaller *alpha*, the heavier the tail; for ``alpha <= 1`` the mean is infinite,
        so pair it with `capped`.
        """
        scale_s = _finite_seconds("scale", scale, allow_zero=False)
        return cls(_PARETO, (scale_s, _positive("alpha", alpha)))

    @classmethod
    def mixture(cls, *components: tuple[float, Latency]) -> Latency:
        """Pick one of the weighted *components* per sample: ``(weight, Latency)`` pairs.

        Weights are positive and need not add up to 1; they are normalised.
        """
        if not components:
            raise ValueError("mixture needs at least one (weight, Latency) component")
        checked = []
        for index, component in enumerate(components):
            if not isinstance(component, tuple) or len(component) != 2:  # noqa: PLR2004 -- a pair
                raise TypeError(f"components[{index}] must be a (weight, Latency) pair")
            weight, latency = component
            if not isinstance(latency, Latency):
                raise TypeError(
                    f"components[{index}] must hold a Latency, got {type(latency).__name__}"
                )
            checked.append((_positive(f"components[{index}] weight", weight), latency))
        return cls(_MIXTURE, (), tuple(checked))

    def capped(self, max_seconds: float | timedelta) -> Latency:
        """Return this distribution with every sample cut down to *max_seconds* (> 0)."""
        cap = _finite_seconds("max_seconds", max_seconds, allow_zero=False)
        if self._cap is not None:
            cap = min(cap, self._cap)
        return Latency(self._kind, self._params, self._components, cap)

    def sample(self, rng: random.Random) -> float:
        """Draw one delay in seconds from *rng*."""
        kind, params = self._kind, self._params
        if kind == _FIXED:
            value = params[0]
        elif kind == _UNIFORM:
            value = rng.uniform(params[0], params[1])
        elif kind == _EXPONENTIAL:
            value = rng.expovariate(1.0 / params[0])
        elif kind == _LOGNORMAL:
            value = rng.lognormvariate(math.log(params[0]), params[1])
        elif kind == _PARETO:
            value = params[0] * rng.paretovariate(params[1])
        else:
            point = rng.random() * self._cumulative[-1]
            index = min(bisect.bisect_right(self._cumulative, point), len(self._cumulative) - 1)
            value = self._components[index][1].sample(rng)
        # Clamped at 0 too: uniform() may round a hair below its lower bound.
        value = max(value, 0.0)
        return value if self._cap is None else min(value, self._cap)

    def __repr__(self) -> str:
        if self._kind == _MIXTURE:
            inner = ", ".join(f"({weight!r}, {latency!r})" for weight, latency in self._components)
        else:
            names = {
                _FIXED: ("seconds",),
                _UNIFORM: ("low", "high"),
                _EXPONENTIAL: ("mean",),
                _LOGNORMAL: ("median", "sigma"),
                _PARETO: ("scale", "alpha"),
            }[self._kind]
            inner = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._params, strict=True))
        text = f"Latency.{self._kind}({inner})"
        return text if self._cap is None else f"{text}.capped({self._cap!r})"


# -- scripted outcomes -------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted outcome for `FaultInjector.script`; build it with the class methods.

    Attributes:
        exception: The error to raise (an instance, or a zero-argument factory), or
            ``None`` for a success.
        latency: Seconds to wait before succeeding or raising.
        after_chunks: For a stream: how many chunks pass before the error is raised
            (0: before the first chunk). A plain call has no chunks and fails at once.

    .. versionadded:: 0.1.0
    """

    exception: ErrorSpec | None = None
    latency: float = 0.0
    after_chunks: int = 0

    def __post_init__(self) -> None:
        if self.exception is not None:
            _check_error_spec("exception", self.exception)
        object.__setattr__(self, "latency", _finite_seconds("latency", self.latency))
        check_positive_int("after_chunks", self.after_chunks, minimum=0)
        if self.after_chunks and self.exception is None:
            raise ValueError("after_chunks needs an exception to raise mid-stream")

    @classmethod
    def ok(cls) -> Fault:
        """Succeed at once: the wrapped call runs with no injected delay."""
        return cls()

    @classmethod
    def delay(cls, seconds: float | timedelta) -> Fault:
        """Wait *seconds*, then run the wrapped call."""
        return cls(latency=_finite_seconds("seconds", seconds))

    @classmethod
    def error(
        cls,
        exception: ErrorSpec,
        *,
        latency: float | timedelta = 0.0,
        after_chunks: int = 0,
    ) -> Fault:
        """Wait *latency* seconds (default 0), then raise *exception* instead of calling.

        For a stream, *after_chunks* > 0 (default 0) lets that many chunks through first.
        """
        return cls(exception, _finite_seconds("latency", latency), after_chunks)

    @classmethod
    def http(
        cls,
        status_code: int,
        *,
        retry_after: float | timedelta | None = None,
        code: str | None = None,
        body: object = None,
        latency: float | timedelta = 0.0,
        after_chunks: int = 0,
    ) -> Fault:
        """Like `error`, raising a fresh `InjectedHTTPError` with these attributes."""
        # Built once here, so that a bad status fails when scripting, not when calling.
        InjectedHTTPError(status_code, retry_after=retry_after, code=code, body=body)
        factory = functools.partial(
            InjectedHTTPError, status_code, retry_after=retry_after, code=code, body=body
        )
        return cls.error(factory, latency=latency, after_chunks=after_chunks)


# -- statistics --------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class FaultStatistics:
    """A snapshot of what a `FaultInjector` has injected so far.

    Attributes:
        calls: Calls and streams that reached the injector.
        errors: Injected errors raised, mid-stream breaks included.
        stream_breaks: Streams broken after their first chunk.
        scripted: Calls whose outcome came from the script.
        injected_latency: Seconds of delay injected in total, between chunks included.
        errors_by_type: Injected errors raised, by exception class name.

    .. versionadded:: 0.1.0
    """

    calls: int
    errors: int
    stream_breaks: int
    scripted: int
    injected_latency: float
    errors_by_type: Mapping[str, int]


# -- the injector ------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class _Plan:
    """What one call suffers: decided under the lock, applied outside it."""

    fail: bool  # raise before the first chunk (or instead of calling)
    error: ErrorSpec | None
    delay: float
    sleep_first: bool  # when failing: sleep, then raise
    break_after: int | None  # streams: raise `error` after this many chunks


@final
class FaultInjector:
    """Wraps callables and models so that they fail and stall like a flaky dependency.

    Use it in tests of code that must survive a bad dependency::

        faults = FaultInjector(
            error_rate=0.1,
            errors=(InjectedHTTPError(503), lambda: TimeoutError("read timed out")),
            latency=Latency.lognormal(median=0.2, sigma=0.6),
            seed=42,
            clock=clock,  # a FakeClock: the delays pass in virtual time
        )
        flaky_fetch = faults.wrap(fetch)
        flaky_model = faults.wrap_model(model)

    **Each call**, the injector takes the next scripted `Fault` if any is queued (see
    `script`), else draws from its own ``random.Random(seed)``, always in this order:

    1. one ``random()``: the call fails if it is below *error_rate*;
    2. one ``random()``: which of *errors* (drawn even when the call succeeds);
    3. the *latency* sample, if a latency is set (drawn even when the call fails);
    4. streams only: one ``random()``, below *stream_break_rate* for a mid-stream break,
       then one ``randint`` for the number of chunks that pass before it.

    The number of draws per call does not depend on the rates, so with one seed,
    changing *error_rate* changes which calls fail but not the delays. Between chunks, one
    *chunk_latency* sample is drawn per chunk after the first, when it is asked for.
    Calls from several threads or tasks take their draws in the order they reach the
    injector, under a lock.

    **A failing call** never runs the wrapped function (a stream's iterator is closed
    unread). By default it raises at once, with no delay: a fast failure such as a
    refused connection. With *fail_after_latency*, it waits its drawn latency first and
    then raises: a timeout-like failure. **A succeeding call** waits its latency, then
    runs the wrapped function. Sync callers wait with ``clock.sleep``, async callers with
    ``await clock.asleep``; nothing here sleeps on the real clock unless *clock* is real.

    **Streams** (sync or async generators, and a model's ``stream``): the failure and the
    latency come before the first chunk. A stream that passes may then break with
    probability *stream_break_rate*: after ``k`` chunks, ``k`` drawn uniformly from
    *stream_break_after*, the next request raises the call's chosen error. A stream that
    ends before its ``k`` chunks ends normally.

    Args:
        error_rate: Probability that a call fails, in [0, 1] (default 0).
        errors: The errors to inject, chosen uniformly: exception instances (raised as
            they are, each time) or zero-argument factories such as an exception class
            (a fresh exception each time). Or all given as ``(weight, error)`` pairs, chosen
            in proportion to the positive weights. Default: `InjectedError`.
        latency: A `Latency` drawn per call, or ``None`` (default) for none.
        fail_after_latency: Wait the drawn latency before raising an injected error
            (default ``False``: raise at once).
        stream_break_rate: Probability that a stream that started breaks mid-way, in
            [0, 1] (default 0).
        stream_break_after: Chunks that pass before a mid-stream break: an int, or an
            inclusive ``(low, high)`` range drawn uniformly, ``1 <= low <= high``
            (default ``(1, 10)``).
        chunk_latency: A `Latency` waited before each chunk after the first, or ``None``
            (default) for none.
        seed: Seed of the injector's random source (default ``None``: seeded from the
            operating system, so not reproducible).
        clock: The clock that performs the waits (default: the system clock);
            `seawall.testing.FakeClock` in tests.

    Raises:
        TypeError: If an argument has the wrong type; the message names it.
        ValueError: If an argument is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_break_high",
        "_break_low",
        "_calls",
        "_chunk_latency",
        "_clock",
        "_cumulative",
        "_error_rate",
        "_errors",
        "_errors_by_type",
        "_fail_after_latency",
        "_injected_errors",
        "_injected_latency",
        "_latency",
        "_lock",
        "_rng",
        "_script",
        "_scripted",
        "_seed",
        "_stream_break_rate",
        "_stream_breaks",
    )

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        errors: Iterable[ErrorSpec | tuple[float, ErrorSpec]] | None = None,
        latency: Latency | None = None,
        fail_after_latency: bool = False,
        stream_break_rate: float = 0.0,
        stream_break_after: int | tuple[int, int] = DEFAULT_STREAM_BREAK_AFTER,
        chunk_latency: Latency | None = None,
        seed: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._error_rate = check_fraction("error_rate", error_rate, allow_zero=True)
        self._errors, weights = _check_errors(errors)
        self._cumulative = tuple(_running_sum(weights))
        self._latency = _check_latency("latency", latency)
        self._chunk_latency = _check_latency("chunk_latency", chunk_latency)
        if not isinstance(fail_after_latency, bool):
            raise TypeError(
                f"fail_after_latency must be a bool, got {type(fail_after_latency).__name__}"
            )
        self._fail_after_latency = fail_after_latency
        self._stream_break_rate = check_fraction(
            "stream_break_rate", stream_break_rate, allow_zero=True
        )
        self._break_low, self._break_high = _check_break_after(stream_break_after)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self._seed = seed
        self._rng = random.Random(seed)  # noqa: S311 -- simulation, not security
        self._clock = resolve_clock(clock)
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque()
        self._calls = 0
        self._scripted = 0
        self._injected_errors = 0
        self._stream_breaks = 0
        self._injected_latency = 0.0
        self._errors_by_type: dict[str, int] = {}

    # -- configuration and reporting -----------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """Queue *faults* as the outcomes of the next calls, in order.

        Scripted outcomes are used before any random decision and take no random draws,
        so the random sequence resumes where it stopped once the script runs out. The
        chunk latency of a scripted stream is still drawn.
        """
        for index, fault in enumerate(faults):
            if not isinstance(fault, Fault):
                raise TypeError(f"faults[{index}] must be a Fault, got {type(fault).__name__}")
        with self._lock:
            self._script.extend(faults)

    def statistics(self) -> FaultStatistics:
        """Return a snapshot of the injector's counters (see `FaultStatistics`)."""
        with self._lock:
            return FaultStatistics(
                calls=self._calls,
                errors=self._injected_errors,
                stream_breaks=self._stream_breaks,
                scripted=self._scripted,
                injected_latency=self._injected_latency,
                errors_by_type=dict(self._errors_by_type),
            )

    def __repr__(self) -> str:
        return (
            f"FaultInjector(error_rate={self._error_rate!r}, errors={len(self._errors)}, "
            f"latency={self._latency!r}, fail_after_latency={self._fail_after_latency!r}, "
            f"stream_break_rate={self._stream_break_rate!r}, "
            f"chunk_latency={self._chunk_latency!r}, seed={self._seed!r}, "
            f"scripted_pending={len(self._script)}, calls={self._calls})"
        )

    # -- wrapping ------------------------------------------------------------------------

    def wrap(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Return *fn* with faults injected into each call; same signature and metadata.

        *fn* may be a sync function, a coroutine function, or a sync or async generator
        function (a stream, see the class docs). The kind is decided once, here.

        Raises:
            TypeError: If *fn* is not callable.
        """
        check_callable("fn", fn)
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):
            wrapper = self._wrap_async_stream(cast("Callable[..., AsyncIterable[Any]]", fn))
        elif inspect.isgeneratorfunction(fn):
            wrapper = self._wrap_sync_stream(cast("Callable[..., Iterable[Any]]", fn))
        elif is_async_callable(fn):
            wrapper = self._wrap_async(cast("Callable[..., Awaitable[Any]]", fn))
        else:
            wrapper = self._wrap_sync(fn)
        return cast("Callable[P, T]", functools.update_wrapper(wrapper, fn))

    def wrap_model(self, model: M) -> M:
        """Return a stand-in for *model* whose ``generate`` and ``stream`` inject faults.

        *model* is any object with a ``generate`` method and optionally a ``stream``
        method, each sync or async. ``generate`` is wrapped as by `wrap`. ``stream`` may
        be a sync or async generator function, a coroutine function returning an async
        iterable (its faults come when the first chunk is asked for), or a plain function
        returning a sync or async iterable (looked at per call). Every other attribute is
        read from *model*. The stand-in is typed as *model*'s type for convenience, but it
        is not an instance of it.

        Raises:
            TypeError: If *model* has no callable ``generate``, or a ``stream`` that is
                not callable.
        """
        generate = getattr(model, "generate", None)
        if not callable(generate):
            raise TypeError(f"model must have a callable generate(), got {type(model).__name__}")
        stream = getattr(model, "stream", None)
        if stream is not None and not callable(stream):
            raise TypeError(f"model.stream must be callable, got {type(stream).__name__}")
        faulty_stream = None if stream is None else self._wrap_any_stream(stream)
        return cast("M", _FaultyModel(model, self.wrap(generate), faulty_stream))

    def _wrap_sync(self, fn: Callable[..., T]) -> Callable[..., T]:
        def faulty(*args: Any, **kwargs: Any) -> T:
            self._enter_sync(self._next(stream=False))
            return fn(*args, **kwargs)

        return faulty

    def _wrap_async(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def faulty(*args: Any, **kwargs: Any) -> T:
            await self._enter_async(self._next(stream=False))
            return await fn(*args, **kwargs)

        return faulty

    def _wrap_sync_stream(
        self, fn: Callable[..., Iterable[Y]]
    ) -> Callable[..., Generator[Y, None, None]]:
        def faulty(*args: Any, **kwargs: Any) -> Generator[Y, None, None]:
            yield from self._sync_stream(fn(*args, **kwargs))

        return faulty

    def _wrap_async_stream(
        self, fn: Callable[..., AsyncIterable[Y]]
    ) -> Callable[..., AsyncGenerator[Y, None]]:
        async def faulty(*args: Any, **kwargs: Any) -> AsyncGenerator[Y, None]:
            async with aclosing(self._async_stream(fn(*args, **kwargs))) as stream:
                async for chunk in stream:
                    yield chunk

        return faulty

    def _wrap_any_stream(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):
            wrapper = self._wrap_async_stream(fn)
        elif inspect.isgeneratorfunction(fn):
            wrapper = self._wrap_sync_stream(fn)
        elif is_async_callable(fn):
            wrapper = self._wrap_awaited_stream(fn)
        else:
            wrapper = self._wrap_returned_stream(fn)
        return functools.update_wrapper(wrapper, fn)

    def _wrap_awaited_stream(
        self, fn: Callable[..., Awaitable[AsyncIterable[Y]]]
    ) -> Callable[..., Awaitable[AsyncGenerator[Y, None]]]:
        async def faulty(*args: Any, **kwargs: Any) -> AsyncGenerator[Y, None]:
            return self._async_stream(await fn(*args, **kwargs))

        return faulty

    def _wrap_returned_stream(self, fn: Callable[..., object]) -> Callable[..., object]:
        def faulty(*args: Any, **kwargs: Any) -> object:
            source = fn(*args, **kwargs)
            # Sync or async is known only from what the function returns.
            if hasattr(source, "__aiter__"):
                return self._async_stream(cast("AsyncIterable[object]", source))
            return self._sync_stream(cast("Iterable[object]", source))

        return faulty

    # -- decisions (under the lock) ------------------------------------------------------

    def _next(self, *, stream: bool) -> _Plan:
        with self._lock:
            self._calls += 1
            if self._script:
                self._scripted += 1
                return _plan_of(self._script.popleft(), stream=stream)
            return self._draw_locked(stream=stream)

    def _draw_locked(self, *, stream: bool) -> _Plan:
        # The documented draw order; keep it stable, users' recorded seeds depend on it.
        rng = self._rng
        fail = rng.random() < self._error_rate
        point = rng.random() * self._cumulative[-1]
        index = min(bisect.bisect_right(self._cumulative, point), len(self._errors) - 1)
        delay = 0.0 if self._latency is None else self._latency.sample(rng)
        break_after = None
        if stream:
            breaks = rng.random() < self._stream_break_rate
            after = rng.randint(self._break_low, self._break_high)
            if breaks and not fail:
                break_after = after
        return _Plan(
            fail=fail,
            error=self._errors[index],
            delay=delay,
            sleep_first=self._fail_after_latency,
            break_after=break_after,
        )

    def _chunk_delay(self) -> float:
        if self._chunk_latency is None:
            return 0.0
        with self._lock:
            delay = self._chunk_latency.sample(self._rng)
            self._injected_latency += delay
        return delay

    def _slept(self, delay: float) -> None:
        with self._lock:
            self._injected_latency += delay

    def _error(self, spec: ErrorSpec | None, *, stream_break: bool = False) -> Exception:
        """Build (outside the lock: a factory is user code) and count an injected error."""
        if isinstance(spec, BaseException):
            exc = spec.with_traceback(None)
        else:
            if spec is None:  # pragma: no cover -- a failing plan always has an error
                raise AssertionError("unreachable")
            exc = spec()
            if not isinstance(exc, Exception):
                raise TypeError(
                    f"an error factory must return an Exception, {spec!r} returned "
                    f"{type(exc).__name__}"
                )
        kind = type(exc).__name__
        with self._lock:
            self._injected_errors += 1
            self._stream_breaks += stream_break
            self._errors_by_type[kind] = self._errors_by_type.get(kind, 0) + 1
        return exc

    # -- applying a plan (outside the lock) ----------------------------------------------

    def _enter_sync(self, plan: _Plan) -> None:
        if plan.fail and not plan.sleep_first:
            raise self._error(plan.error)
        if plan.delay > 0:
            self._slept(plan.delay)
            self._clock.sleep(plan.delay)
        if plan.fail:
            raise self._error(plan.error)

    async def _enter_async(self, plan: _Plan) -> None:
        if plan.fail and not plan.sleep_first:
            raise self._error(plan.error)
        if plan.delay > 0:
            self._slept(plan.delay)
            await self._clock.asleep(plan.delay)
        if plan.fail:
            raise self._error(plan.error)

    def _sync_stream(self, source: Iterable[Y]) -> Generator[Y, None, None]:
        plan = self._next(stream=True)
        iterator = iter(source)
        try:
            self._enter_sync(plan)
            delivered = 0
            while True:
                if delivered and delivered == plan.break_after:
                    raise self._error(plan.error, stream_break=True)
                try:
                    chunk = next(iterator)
                except StopIteration:
                    return
                if delivered:
                    delay = self._chunk_delay()
                    if delay > 0:
                        self._clock.sleep(delay)
                yield chunk
                delivered += 1
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                close()

    async def _async_stream(self, source: AsyncIterable[Y]) -> AsyncGenerator[Y, None]:
        plan = self._next(stream=True)
        iterator = aiter(source)
        try:
            await self._enter_async(plan)
            delivered = 0
            while True:
                if delivered and delivered == plan.break_after:
                    raise self._error(plan.error, stream_break=True)
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    return
                if delivered:
                    delay = self._chunk_delay()
                    if delay > 0:
                        await self._clock.asleep(delay)
                yield chunk
                delivered += 1
        finally:
            aclose = getattr(iterator, "aclose", None)
            if callable(aclose):
                await aclose()


@final
class _FaultyModel:
    """The stand-in returned by `FaultInjector.wrap_model`."""

    __slots__ = ("_model", "generate", "stream")

    def __init__(
        self,
        model: object,
        generate: Callable[..., Any],
        stream: Callable[..., Any] | None,
    ) -> None:
        self._model = model
        self.generate = generate
        if stream is not None:
            self.stream = stream

    def __getattr__(self, name: str) -> Any:
        # Reached only for what the stand-in does not define itself (an unset "stream"
        # included, which then fails as it would on the model).
        return getattr(self._model, name)

    def __repr__(self) -> str:
        return f"<faulty {self._model!r}>"


# -- helpers -----------------------------------------------------------------------------


def _plan_of(fault: Fault, *, stream: bool) -> _Plan:
    if fault.exception is None:
        return _Plan(
            fail=False, error=None, delay=fault.latency, sleep_first=True, break_after=None
        )
    if stream and fault.after_chunks:
        return _Plan(
            fail=False,
            error=fault.exception,
            delay=fault.latency,
            sleep_first=True,
            break_after=fault.after_chunks,
        )
    return _Plan(
        fail=True, error=fault.exception, delay=fault.latency, sleep_first=True, break_after=None
    )


def _finite_seconds(name: str, value: float | timedelta, *, allow_zero: bool = True) -> float:
    seconds = to_seconds(name, value, allow_zero=allow_zero)
    if math.isinf(seconds):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return seconds


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def _running_sum(weights: Iterable[float]) -> list[float]:
    total = 0.0
    sums = []
    for weight in weights:
        total += weight
        sums.append(total)
    return sums


def _check_error_spec(name: str, spec: object) -> None:
    if isinstance(spec, BaseException):
        if not isinstance(spec, Exception):
            raise TypeError(f"{name} must be an Exception, not a {type(spec).__name__}")
        return
    if isinstance(spec, type) and not issubclass(spec, Exception):
        raise TypeError(f"{name} must be an Exception subclass, got {spec.__name__}")
    if not callable(spec):
        raise TypeError(
            f"{name} must be an exception or a zero-argument factory, got {type(spec).__name__}"
        )


def _check_errors(
    errors: Iterable[ErrorSpec | tuple[float, ErrorSpec]] | None,
) -> tuple[tuple[ErrorSpec, ...], tuple[float, ...]]:
    if errors is None:
        return (InjectedError,), (1.0,)
    if isinstance(errors, BaseException) or callable(errors):
        raise TypeError("errors must be an iterable of errors; wrap a single one: errors=(e,)")
    try:
        items = tuple(errors)
    except TypeError:
        raise TypeError(f"errors must be an iterable, got {type(errors).__name__}") from None
    if not items:
        raise ValueError("errors must not be empty")
    weighted = isinstance(items[0], tuple)
    specs: list[ErrorSpec] = []
    weights: list[float] = []
    for index, item in enumerate(items):
        if isinstance(item, tuple) != weighted:
            raise TypeError("errors must be all (weight, error) pairs or no pairs at all")
        if isinstance(item, tuple):
            if len(item) != 2:  # noqa: PLR2004 -- a pair
                raise TypeError(f"errors[{index}] must be a (weight, error) pair")
            weights.append(_positive(f"errors[{index}] weight", item[0]))
            spec = item[1]
        else:
            weights.append(1.0)
            spec = item
        _check_error_spec(f"errors[{index}]", spec)
        specs.append(spec)
    return tuple(specs), tuple(weights)


def _check_latency(name: str, latency: object) -> Latency | None:
    if latency is not None and not isinstance(latency, Latency):
        raise TypeError(f"{name} must be a Latency or None, got {type(latency).__name__}")
    return latency


def _check_break_after(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, tuple):
        if len(value) != 2:  # noqa: PLR2004 -- a range
            raise TypeError("stream_break_after must be an int or a (low, high) pair")
        low = check_positive_int("stream_break_after low", value[0])
        high = check_positive_int("stream_break_after high", value[1])
        if high < low:
            raise ValueError(f"stream_break_after must have low <= high, got {value!r}")
        return low, high
    count = check_positive_int("stream_break_after", value)
    return count, count


def _show_public_path(*classes: type) -> None:
    # Tracebacks, pickle and documentation show seawall.testing.X, the public path, as
    # seawall's own __init__ does for its names.
    for cls in classes:
        cls.__module__ = "seawall.testing"


_show_public_path(Fault, FaultInjector, FaultStatistics, InjectedError, InjectedHTTPError, Latency)
