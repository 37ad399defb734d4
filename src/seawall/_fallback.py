"""`Fallback`: answer with a substitute value when a call fails (or returns a bad result).

A fallback never retries and never delays: it maps a failure to a value, once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast, final

from seawall._clock import Clock, resolve_clock
from seawall._decorate import decorate_with_calls
from seawall._hooks import Event, Hook, emit, normalize_hooks
from seawall._observe import observer_for
from seawall._validate import check_callable, check_name, is_async_callable


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable


__all__ = ("Fallback", "FallbackStatistics", "FellBack")

DEFAULT_NAME: Final = "fallback"

P = ParamSpec("P")
T = TypeVar("T")


@final
class _Missing:
    """The default of ``value``: "no value given" (``None`` is a fine fallback value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


@final
@dataclass(frozen=True, slots=True)
class FellBack(Event):
    """A call was answered with the fallback instead of its own outcome.

    Reported after the fallback value was obtained, before it is returned (so inside
    the call, which ends `seawall.Outcome.SUCCESS`, with hooks).

    Attributes:
        name: The fallback policy's name.
        exception: The exception that was replaced, or ``None`` when a result was
            replaced (``when_result``).

    .. versionadded:: 0.1.0
    """

    exception: Exception | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackStatistics:
    """A snapshot of a `Fallback`'s counters.

    Attributes:
        name: The fallback policy's name.
        calls: Calls made through the policy (cancelled ones included).
        fallbacks: Calls answered with the fallback (failures and bad results).

    .. versionadded:: 0.1.0
    """

    name: str
    calls: int
    fallbacks: int


@final
class Fallback:
    """Return a substitute when a call raises (or returns a result judged bad).

    Give exactly one of *value* (returned as is) or *factory* (called with the
    exception, or with ``None`` for a replaced result, and its return value
    returned)::

        cached = seawall.Fallback(factory=lambda exc: cache.get(key))
        answer = await cached.acall(client.generate, prompt)  # asyncio or trio

        empty = seawall.Fallback([], when=lambda exc: isinstance(exc, TimeoutError))


        @empty  # sync functions and coroutine functions
        def search(query: str) -> list[str]: ...

    **Which failures.** ``when(exc)`` chooses the exceptions that fall back; the others
    propagate unchanged. By default every `Exception` falls back. Cancellation (anyio
    and trio), `KeyboardInterrupt` and `SystemExit` never do: they are not
    `Exception`. ``when_result(result)``, when given, also replaces a result for which
    it returns true (the factory then gets ``None``).

    **Async factories.** In `acall` (and on coroutine functions) the factory may be a
    coroutine function; it is awaited. The sync `call` needs a sync factory and raises
    `TypeError` if it would have to call an async one. An exception raised by the
    factory propagates, with the original exception as its context.

    Args:
        value: The fallback value. Give this or *factory*, not both.
        factory: A callable taking the exception (or ``None``) and returning the
            fallback value; sync, or async for `acall`. Default none.
        when: Predicate over an exception: whether it falls back. Default: every
            `Exception`.
        when_result: Predicate over a result: whether to replace it. Default none.
        name: Used in events and the repr. Default ``"fallback"``.
        hooks: Callables that receive `FellBack` events, and each call (`call`,
            `acall`, a decorated function) as a `seawall.CallStarted` /
            `seawall.CallEnded` pair (primitive ``"fallback"``; a call answered with
            the fallback ends `seawall.Outcome.SUCCESS`, with its `FellBack` inside).
            Default none. A hook that raises is logged and ignored.
        clock: The clock that measures the duration of calls, for hooks. Default: the
            system clock.

    Raises:
        TypeError: A parameter has the wrong type, or both or neither of *value* and
            *factory* were given; the message names them.
        ValueError: *name* is empty.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_async_factory",
        "_calls",
        "_clock",
        "_factory",
        "_fallbacks",
        "_hooks",
        "_lock",
        "_name",
        "_observer",
        "_value",
        "_when",
        "_when_result",
    )

    def __init__(
        self,
        value: object = _MISSING,
        *,
        factory: Callable[[Exception | None], object] | None = None,
        when: Callable[[Exception], object] | None = None,
        when_result: Callable[[Any], object] | None = None,
        name: str = DEFAULT_NAME,
        hooks: Iterable[Hook] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if (value is _MISSING) == (factory is None):
            msg = "give exactly one of value or factory"
            raise TypeError(msg)
        if factory is not None:
            check_callable("factory", factory)
        if when is not None:
            check_callable("when", when)
        if when_result is not None:
            check_callable("when_result", when_result)
        self._value = value
        self._factory = factory
        self._async_factory = factory is not None and is_async_callable(factory)
        self._when = when
        self._when_result = when_result
        self._name = check_name(name)
        self._hooks = normalize_hooks(hooks)
        self._clock = resolve_clock(clock)
        # Built only with hooks: without, `call` and `acall` test this one None.
        self._observer = observer_for(self._hooks, self._clock, self._name, "fallback")
        self._lock = threading.Lock()
        self._calls = 0
        self._fallbacks = 0

    @property
    def name(self) -> str:
        """The policy's name."""
        return self._name

    def statistics(self) -> FallbackStatistics:
        """Return a snapshot of the counters (see `FallbackStatistics`)."""
        with self._lock:
            return FallbackStatistics(name=self._name, calls=self._calls, fallbacks=self._fallbacks)

    def __repr__(self) -> str:
        with self._lock:
            calls, fallbacks = self._calls, self._fallbacks
        source = f"factory={self._factory!r}" if self._factory is not None else "value=..."
        return f"Fallback(name={self._name!r}, {source}, calls={calls}, fallbacks={fallbacks})"

    # -- calls -------------------------------------------------------------------------

    # `call` and `acall` repeat the lines of `_call` / `_acall` rather than calling them:
    # the extra frame and the re-packing of *args and **kwargs would cost as much as the
    # fallback itself on the path without hooks.

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)``; on a chosen failure return the fallback.

        Returns:
            What *fn* returns, or the fallback value.

        Raises:
            Exception: What *fn* raised, when ``when`` declines it; what the factory
                raised.
            TypeError: The factory is async (use `acall`).
        """
        if self._observer is not None:
            return self._observer.call(self._call, fn, *args, **kwargs)
        self._count_call()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if self._when is not None and not self._when(exc):
                raise
            return cast("T", self._substitute(exc))
        if self._when_result is not None and self._when_result(result):
            return cast("T", self._substitute(None))
        return result

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``; on a chosen failure return the fallback.

        An async factory is awaited. Cancellation is never caught.

        Returns:
            What *fn* returns, or the fallback value.

        Raises:
            Exception: What *fn* raised, when ``when`` declines it; what the factory
                raised.
        """
        if self._observer is not None:
            return await self._observer.acall(self._acall, fn, *args, **kwargs)
        self._count_call()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            if self._when is not None and not self._when(exc):
                raise
            return cast("T", await self._asubstitute(exc))
        if self._when_result is not None and self._when_result(result):
            return cast("T", await self._asubstitute(None))
        return result

    def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`call` without the reporting: what the observer and the decorator run."""
        self._count_call()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if self._when is not None and not self._when(exc):
                raise
            return cast("T", self._substitute(exc))
        if self._when_result is not None and self._when_result(result):
            return cast("T", self._substitute(None))
        return result

    async def _acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`acall` without the reporting: what the observer and the decorator run."""
        self._count_call()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            if self._when is not None and not self._when(exc):
                raise
            return cast("T", await self._asubstitute(exc))
        if self._when_result is not None and self._when_result(result):
            return cast("T", await self._asubstitute(None))
        return result

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1

    def _fell_back(self, exc: Exception | None) -> None:
        with self._lock:
            self._fallbacks += 1
        if self._hooks:
            emit(self._hooks, FellBack(self._name, exc))

    def _substitute(self, exc: Exception | None) -> object:
        factory = self._factory
        if factory is None:
            value = self._value
        elif self._async_factory:
            msg = f"fallback {self._name!r}: an async factory needs acall(), not call()"
            raise TypeError(msg)
        else:
            value = factory(exc)
        self._fell_back(exc)
        return value

    async def _asubstitute(self, exc: Exception | None) -> object:
        factory = self._factory
        if factory is None:
            value = self._value
        elif self._async_factory:
            value = await cast("Callable[[Exception | None], Awaitable[object]]", factory)(exc)
        else:
            value = factory(exc)
        self._fell_back(exc)
        return value

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn* so that its failures fall back.

        Coroutine functions are run as by `acall`, anything else as by `call`. The kind
        is decided once, here, and so is the reporting of calls to hooks.

        Raises:
            TypeError: *fn* is not callable, or is a (sync or async) generator
                function; or *fn* is sync and the factory async.
        """
        if self._async_factory and not is_async_callable(fn):
            msg = f"fallback {self._name!r}: an async factory cannot serve the sync {fn!r}"
            raise TypeError(msg)
        return decorate_with_calls(
            fn,
            self._call,
            self._acall,
            generator_hint="guard the code that consumes it instead",
            observer=self._observer,
        )
