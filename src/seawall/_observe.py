"""Calls and attempts as hook events: what tracing, metrics and logging hooks build on.

Every primitive that runs a caller's function reports the call to its hooks as a pair of
events, `CallStarted` then `CallEnded`; the retrier and the hedger also report each
attempt inside the call, as `AttemptStarted` then `AttemptEnded`. The end event holds
the start event itself, so a hook can pair them by identity (``id(event.started)``)
without any bookkeeping of ours.

Both events of a pair are reported in the same context (the same thread or task: the
caller's for a call and a retrier's attempt, the attempt's own task or thread for a
hedger's attempt), and the end event always follows, whatever happens in between:
success, failure, rejection, timeout or cancellation. So a hook may make a span
current when a call starts and restore the previous one when it ends. Streams and generators are the
exception, flagged by ``CallStarted.stream``: their events come from wherever the
consumer resumes them.

A primitive with no hooks builds none of this: its decorators are chosen when they are
applied, and ``call`` / ``acall`` test one empty tuple.
"""

from __future__ import annotations

import enum
import functools
import inspect
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, final

from seawall._errors import CallTimeoutError, RejectedError
from seawall._hooks import Event, emit, wants_call_events


if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
    from types import TracebackType

    from seawall._clock import Clock
    from seawall._hooks import Hooks


__all__ = (
    "AttemptEnded",
    "AttemptKind",
    "AttemptStarted",
    "CallEnded",
    "CallStarted",
    "Observer",
    "Outcome",
    "observer_for",
    "outcome_of",
)

P = ParamSpec("P")
T = TypeVar("T")
Y = TypeVar("Y")
S = TypeVar("S")
R = TypeVar("R")


@final
class Outcome(enum.Enum):
    """How a call or an attempt ended, as `CallEnded` and `AttemptEnded` report it.

    .. versionadded:: 0.1.0
    """

    SUCCESS = "success"
    """It returned (a result rejected by a predicate still counts here)."""
    FAILURE = "failure"
    """It raised an exception other than those below."""
    REJECTED = "rejected"
    """A primitive refused it: `seawall.RejectedError` or one of its subclasses."""
    TIMEOUT = "timeout"
    """It ran out of time: `seawall.CallTimeoutError`."""
    CANCELLED = "cancelled"
    """It was cancelled (task cancellation, ``KeyboardInterrupt``, ``SystemExit``), or
    a generator was closed before it finished."""


@final
class AttemptKind(enum.Enum):
    """Why an attempt runs, as `AttemptStarted` reports it.

    .. versionadded:: 0.1.0
    """

    ORIGINAL = "original"
    """The first attempt of a call (a hedger's primary)."""
    RETRY = "retry"
    """A retrier's second or later attempt, after a wait."""
    HEDGE = "hedge"
    """A hedger's extra attempt, racing the ones already running."""


def outcome_of(exc: BaseException | None) -> Outcome:
    """Return the `Outcome` of a call that raised *exc* (``None``: it returned)."""
    if exc is None:
        return Outcome.SUCCESS
    if isinstance(exc, RejectedError):
        return Outcome.REJECTED
    if isinstance(exc, CallTimeoutError):
        return Outcome.TIMEOUT
    if isinstance(exc, Exception):
        return Outcome.FAILURE
    return Outcome.CANCELLED


@final
@dataclass(frozen=True, slots=True)
class CallStarted(Event):
    """A primitive started a protected call.

    Attributes:
        name: The primitive's name.
        primitive: What kind of primitive: ``"circuit_breaker"``, ``"retry"``,
            ``"hedge"``, ``"rate_limiter"``, ``"timeout"``, ``"bulkhead"``,
            ``"fallback"``, or ``"llm"`` for a model call seen by `seawall.with_telemetry`.
        stream: Whether the call is a generator or a stream, whose events are reported
            wherever the consumer resumes it (so a hook should not make anything
            current in the caller's context for it).

    .. versionadded:: 0.1.0
    """

    primitive: str
    stream: bool = False


@final
@dataclass(frozen=True, slots=True)
class CallEnded(Event):
    """The call reported by *started* ended; always reported, exactly once.

    Attributes:
        name: The primitive's name.
        started: The `CallStarted` event of this call (the same object).
        outcome: How it ended.
        exception: What it raised, or ``None`` when it returned.
        duration: Seconds from start to end, on the primitive's clock.

    .. versionadded:: 0.1.0
    """

    started: CallStarted
    outcome: Outcome
    exception: BaseException | None
    duration: float


@final
@dataclass(frozen=True, slots=True)
class AttemptStarted(Event):
    """A retrier or a hedger started one attempt of a call.

    Reported in the context that runs the attempt: the caller's for a retrier, the
    attempt's own task or thread for a hedger.

    Attributes:
        name: The primitive's name.
        primitive: ``"retry"`` or ``"hedge"``.
        attempt: The attempt's number: from 1 for a retrier; from 0 (the primary) for
            a hedger, as in `seawall.HedgeLaunched`.
        kind: Why it runs.

    .. versionadded:: 0.1.0
    """

    primitive: str
    attempt: int
    kind: AttemptKind


@final
@dataclass(frozen=True, slots=True)
class AttemptEnded(Event):
    """The attempt reported by *started* ended; always reported, exactly once.

    A hedger's losing attempts end as `Outcome.CANCELLED` (or abandoned, for sync
    attempts that cannot be cancelled: they end when their thread returns).

    Attributes:
        name: The primitive's name.
        started: The `AttemptStarted` event of this attempt (the same object).
        outcome: How it ended.
        exception: What it raised, or ``None`` when it returned.
        duration: Seconds from start to end, on the primitive's clock.

    .. versionadded:: 0.1.0
    """

    started: AttemptStarted
    outcome: Outcome
    exception: BaseException | None
    duration: float


def observer_for(hooks: Hooks, clock: Clock, name: str, primitive: str) -> Observer | None:
    """Return an `Observer` for a primitive, or ``None`` when no hook wants its calls."""
    if hooks and wants_call_events(hooks):
        return Observer(hooks, clock, name, primitive)
    return None


@final
class Observer:
    """Reports the calls of one primitive instance; built only when it has hooks.

    Its wrappers run the primitive's own unobserved code inside a
    `CallStarted` / `CallEnded` pair.
    """

    __slots__ = ("_clock", "_hooks", "_name", "_primitive")

    def __init__(self, hooks: Hooks, clock: Clock, name: str, primitive: str) -> None:
        self._hooks = hooks
        self._clock = clock
        self._name = name
        self._primitive = primitive

    def __repr__(self) -> str:
        return f"Observer({self._primitive} {self._name!r}, hooks={len(self._hooks)})"

    def start(self, *, stream: bool = False) -> tuple[CallStarted, float]:
        """Report a call's start; return its event and its start time."""
        started = CallStarted(self._name, self._primitive, stream)
        emit(self._hooks, started)
        return started, self._clock.now()

    def end(self, started: CallStarted, began: float, exc: BaseException | None) -> None:
        """Report the end of the call *started*, which raised *exc* (or returned)."""
        duration = max(0.0, self._clock.now() - began)
        emit(self._hooks, CallEnded(self._name, started, outcome_of(exc), exc, duration))

    def call(self, run: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Return ``run(*args, **kwargs)``, reported as one call."""
        started, began = self.start()
        try:
            result = run(*args, **kwargs)
        except BaseException as exc:  # reported, then re-raised unchanged
            self.end(started, began, exc)
            raise
        self.end(started, began, None)
        return result

    async def acall(
        self, run: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Return ``await run(*args, **kwargs)``, reported as one call."""
        started, began = self.start()
        try:
            result = await run(*args, **kwargs)
        except BaseException as exc:  # reported, then re-raised unchanged
            self.end(started, began, exc)
            raise
        self.end(started, began, None)
        return result

    def wrap(self, wrapper: Callable[P, T]) -> Callable[P, T]:
        """Return *wrapper* (a primitive's decorator wrapper), reported call by call.

        *wrapper* may be a function, a coroutine function, or a sync or async
        generator function; the result is the same kind and keeps its metadata.
        """
        observed: Callable[..., Any]
        if inspect.isasyncgenfunction(wrapper):
            observed = self._wrap_async_generator(
                cast("Callable[..., AsyncGenerator[Any]]", wrapper)
            )
        elif inspect.iscoroutinefunction(wrapper):
            observed = self._wrap_coroutine(cast("Callable[..., Awaitable[Any]]", wrapper))
        elif inspect.isgeneratorfunction(wrapper):
            observed = self._wrap_generator(cast("Callable[..., Generator[Any]]", wrapper))
        else:
            observed = self._wrap_function(wrapper)
        return cast("Callable[P, T]", functools.update_wrapper(observed, wrapper))

    def guard(self) -> CallScope:
        """Return a context manager (sync and async) reporting its block as one call."""
        return CallScope(self)

    def enter_block(self) -> None:
        """Report the start of a ``with`` block on the primitive itself, as one call.

        For a primitive that is its own context manager (``with bulkhead:``): being
        shared, it cannot hold the call, so the call is kept in the current context
        (thread or task) until `exit_block` ends it.
        """
        started, began = self.start()
        _open_blocks.set((*_open_blocks.get(), (self, started, began)))

    def exit_block(self, exc: BaseException | None) -> None:
        """Report the end of this observer's latest block begun in the current context.

        Blocks of several primitives may nest in any order. Does nothing when there is
        no such block: one entered in another context (a generator resumed elsewhere)
        cannot be paired.
        """
        blocks = _open_blocks.get()
        for index in range(len(blocks) - 1, -1, -1):
            observer, started, began = blocks[index]
            if observer is self:
                _open_blocks.set(blocks[:index] + blocks[index + 1 :])
                self.end(started, began, exc)
                return

    def attempt_start(self, attempt: int, kind: AttemptKind) -> tuple[AttemptStarted, float]:
        """Report an attempt's start; return its event and its start time."""
        started = AttemptStarted(self._name, self._primitive, attempt, kind)
        emit(self._hooks, started)
        return started, self._clock.now()

    def attempt_end(self, started: AttemptStarted, began: float, exc: BaseException | None) -> None:
        """Report the end of the attempt *started*, which raised *exc* (or returned)."""
        duration = max(0.0, self._clock.now() - began)
        emit(self._hooks, AttemptEnded(self._name, started, outcome_of(exc), exc, duration))

    def _wrap_function(self, wrapper: Callable[..., T]) -> Callable[..., T]:
        def observed(*args: Any, **kwargs: Any) -> T:
            return self.call(wrapper, *args, **kwargs)

        return observed

    def _wrap_coroutine(self, wrapper: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def observed(*args: Any, **kwargs: Any) -> T:
            return await self.acall(wrapper, *args, **kwargs)

        return observed

    def _wrap_generator(
        self, wrapper: Callable[..., Generator[Y, S, R]]
    ) -> Callable[..., Generator[Y, S, R]]:
        def observed(*args: Any, **kwargs: Any) -> Generator[Y, S, R]:
            started, began = self.start(stream=True)
            try:
                value = yield from wrapper(*args, **kwargs)
            except BaseException as exc:  # GeneratorExit included: closed early
                self.end(started, began, exc)
                raise
            self.end(started, began, None)
            return value

        return observed

    def _wrap_async_generator(
        self, wrapper: Callable[..., AsyncGenerator[Y, S]]
    ) -> Callable[..., AsyncGenerator[Y, S]]:
        async def observed(*args: Any, **kwargs: Any) -> AsyncGenerator[Y, S]:
            started, began = self.start(stream=True)
            inner = wrapper(*args, **kwargs)
            try:
                try:
                    item = await inner.__anext__()
                    while True:
                        # Forward send() and throw() as `yield from` does for sync ones.
                        try:
                            sent = yield item
                        except Exception as thrown:  # noqa: BLE001, PERF203 -- handed on
                            item = await inner.athrow(thrown)
                        else:
                            item = await inner.asend(sent)
                finally:
                    await inner.aclose()
            except StopAsyncIteration:
                self.end(started, began, None)
            except BaseException as exc:  # GeneratorExit included: closed early
                self.end(started, began, exc)
                raise

        return observed


_open_blocks: ContextVar[tuple[tuple[Observer, CallStarted, float], ...]] = ContextVar(
    "seawall_open_blocks", default=()
)
"""The calls begun by `Observer.enter_block` and not ended yet, innermost last."""


@final
class CallScope:
    """A `with` / ``async with`` block reported as one call; one use only."""

    __slots__ = ("_began", "_observer", "_started")

    def __init__(self, observer: Observer) -> None:
        self._observer = observer
        self._started: CallStarted | None = None
        self._began = 0.0

    def __repr__(self) -> str:
        return f"CallScope({self._observer!r}, entered={self._started is not None})"

    def __enter__(self) -> None:
        if self._started is not None:
            msg = "this call scope was already entered; make a new one per call"
            raise RuntimeError(msg)
        self._started, self._began = self._observer.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        started = self._started
        if started is not None:
            self._observer.end(started, self._began, exc)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
