"""`Hedger`: the public face of hedging, shared by threads, asyncio tasks and trio tasks.

A hedger with hooks has an `Observer` on its engine: ``call`` and ``acall`` then run
inside its call pair (one ``is not None`` test), the decorators are wrapped by it when
they are made, and ``astream`` returns an observed stream chosen at construction. The
attempts report themselves from their own tasks and threads (see `._async`, `._sync`).
"""

from __future__ import annotations

import functools
import inspect
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast, final

from seawall._classify import is_retryable as default_is_retryable
from seawall._clock import resolve_clock
from seawall._hedge._async import EMPTY, AsyncCall, acall, close_stream
from seawall._hedge._engine import HedgeEngine
from seawall._hedge._options import (
    DEFAULT_BUDGET_CAP,
    DEFAULT_CANCEL_TIMEOUT,
    DEFAULT_DELAY,
    DEFAULT_MAX_HEDGES,
    DEFAULT_NAME,
    AdaptiveDelay,
    build_options,
)
from seawall._hedge._sync import SyncCall
from seawall._hooks import normalize_hooks
from seawall._observe import observer_for
from seawall._validate import check_callable, check_name, is_async_callable


if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
    from datetime import timedelta

    from seawall._clock import Clock
    from seawall._hedge._events import HedgerStatistics
    from seawall._hooks import Hook


__all__ = ("Hedger",)

PRIMITIVE: Final = "hedge"

P = ParamSpec("P")
T = TypeVar("T")
Y = TypeVar("Y")


@final
class Hedger:
    """Cut tail latency by racing a slow call against extra copies of itself ("hedges").

    The primary attempt starts at once. If it has no result after ``delay`` seconds a
    hedge starts, and another after each further ``delay``, up to ``max_hedges``
    hedges; a retryable failure (``is_retryable``) of an attempt starts a hedge at once
    instead. The first attempt to succeed wins and the others are cancelled. One
    instance models one dependency: share it between threads and tasks, sync and async
    callers::

        hedger = seawall.Hedger(delay=0.2, max_hedges=1, name="search")

        result = await hedger.acall(client.search, query)  # asyncio or trio
        result = hedger.call(sync_client.search, query)  # worker threads

        async for chunk in hedger.astream(model.stream, prompt):  # time to first chunk
            ...


        @hedger  # sync functions, coroutine functions, async generator functions
        async def search(query: str) -> list[str]: ...

    Only hedge idempotent operations: several copies of the call may run, and in the
    sync shell a loser may run to completion.

    **Failures.** A retryable failure starts a hedge at once (within ``max_hedges`` and
    the budget). A failure that is not retryable starts none, and stops further hedging
    in that call; the call still waits for attempts already running, and ends at once
    when none is (a primary failing with a caller error and nothing else running fails
    the call straight away). When every attempt fails, the primary's exception
    propagates, the same object, with each other attempt's exception attached as a note
    (Python 3.11+). Cancellation, `KeyboardInterrupt` and `SystemExit` are never
    failures.

    **Adaptive delay.** With ``adaptive=AdaptiveDelay(...)`` the delay becomes a
    percentile (e.g. p95) of the latencies of recent successful calls (the winning
    attempt's, measured from its own start), clamped to ``[floor, ceiling]``, once
    ``min_samples`` are known; until then ``delay`` applies.

    **Budget.** With ``budget=0.05``, every call earns 0.05 tokens (the bucket holds at
    most ``budget_cap`` and starts full) and every hedge spends one: over *n* calls at
    most ``budget_cap + 0.05 * n`` hedges are launched. A call whose hedge the budget
    refuses launches no more hedges. The bucket is shared by all callers and
    thread-safe.

    **Async losers** (`acall`, `astream`, async decorators): each attempt is a task of an
    anyio task group opened by the call, whose host (the caller's task) waits for
    outcomes and hedge times and launches hedges. On a verdict the group's scope is
    cancelled and the losers are awaited before the call returns, on asyncio and trio
    alike: structured concurrency leaves no task behind, so nothing is abandoned. A
    loser that ignores or shields cancellation keeps the call waiting; after
    ``cancel_timeout`` seconds a warning naming the stuck attempts is logged on the
    ``seawall`` logger, and the call goes on waiting for them. Cancelling the caller
    cancels every attempt.

    **On asyncio with the system clock** (`acall`, coroutine decorators), a call starts
    lighter: the primary is a plain asyncio task (in a copy of the caller's context),
    the hedge time a shared loop timer, and a primary that succeeds before the delay
    ends the call with no task group at all. Only when the delay passes or the primary
    fails does the call open the task group above, which adopts the running primary.
    Not being an anyio task, the primary is cancelled with a single ``Task.cancel()``
    when it loses or the caller is cancelled: an anyio shield it enters afterwards
    (cleanup in ``finally``) holds, but one it is already inside does not stop that
    ``CancelledError``; and ``anyio.current_effective_deadline()`` inside it does not
    see the caller's deadlines (cancelling the caller still cancels it). Trio, and any
    other clock (which must drive the delay itself), use the task group from the start.

    **Streams** (`astream`, async generator functions): an attempt succeeds when its
    stream yields its first chunk (or ends empty). The winner is committed to; the
    others are closed with ``aclose`` inside the race, which ends before the first
    chunk is yielded to the caller. Hedging never happens after the first chunk.

    **Context.** Every attempt runs in a copy of the caller's `contextvars` context:
    async attempts in tasks started from the caller's task, sync attempts in worker
    threads that copy it when the attempt is submitted. Context variables (an
    OpenTelemetry current span, a tenant id) are visible in attempts, and what an
    attempt sets stays its own.

    **Sync losers** (`call`, sync decorators) run in worker threads, which cannot be
    interrupted: an attempt still queued is cancelled, a running one is abandoned and
    its result (or exception) is dropped when it arrives. The pool is created on the
    first sync call (none at construction), holds up to ``max_workers`` threads
    (default ``8 * (max_hedges + 1)``), started on demand; abandoned losers occupy a
    worker until they finish, and attempts beyond the pool's size queue. The workers
    are daemon threads, so a loser that never returns does not keep the process alive. The caller
    waits on an OS condition bounded by the clock's time left with `SystemClock`; with
    a virtual clock that has ``call_at`` (e.g. `seawall.testing.FakeClock`) the hedge
    time is registered on the clock and fires only when virtual time reaches it (an
    attempt sleeps on the clock, or a test advances it), so an instant call never
    hedges; with any other clock a helper thread sleeps on the clock. `close` shuts
    the pool down.

    Args:
        delay: Seconds without a result before a hedge starts, or a `timedelta`
            (default 0.2 s).
        max_hedges: The most attempts beyond the primary, >= 0 (default 1); 0 never
            hedges.
        adaptive: An `AdaptiveDelay` to hedge at an observed latency percentile, or
            ``None`` (default) for the fixed *delay*.
        budget: Hedge tokens earned per call, in (0, 1], or ``None`` (default) for no
            budget.
        budget_cap: The most hedge tokens kept, >= 1 (default 10).
        cancel_timeout: Seconds to wait for cancelled async losers before logging a
            warning (default 1 s).
        is_retryable: Predicate over an attempt's exception: whether a hedge should
            start at once (default `seawall.is_retryable`).
        max_workers: Threads of the sync shell's pool (default ``8 * (max_hedges + 1)``).
        hooks: Callables that receive the hedger's events (default none); a hook
            that raises is logged and ignored. Each call (`call`, `acall`, `astream`,
            a decorated function) reports `seawall.CallStarted` (primitive
            ``"hedge"``, ``stream=True`` for streams) and, at its end,
            `seawall.CallEnded`, in the caller's thread or task (for streams, where
            the consumer iterates). In between come `HedgeLaunched` for each hedge,
            `HedgeWon` when an attempt wins, and for each attempt that starts,
            `seawall.AttemptStarted` (number 0 and kind ``ORIGINAL`` for the
            primary, then the hedge's number as in `HedgeLaunched` and kind
            ``HEDGE``) and `seawall.AttemptEnded`, both reported from the task or
            worker thread running the attempt. A stream's attempt covers opening
            it up to its first chunk. Async losers are cancelled and end as
            ``CANCELLED`` before the call ends; a sync loser that was already
            running is abandoned and ends when its function returns, possibly after
            `CallEnded`, with the outcome it had; a sync attempt cancelled while
            still queued never starts and reports nothing.
        name: The name reported in events, notes, logs and statistics (default
            ``"hedger"``).
        clock: The clock that times the delays (default: the system clock);
            `seawall.testing.FakeClock` in tests.

    Raises:
        TypeError: If an argument has the wrong type; the message names it.
        ValueError: If an argument is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_engine", "_stream")

    def __init__(
        self,
        *,
        delay: float | timedelta = DEFAULT_DELAY,
        max_hedges: int = DEFAULT_MAX_HEDGES,
        adaptive: AdaptiveDelay | None = None,
        budget: float | None = None,
        budget_cap: float = DEFAULT_BUDGET_CAP,
        cancel_timeout: float | timedelta = DEFAULT_CANCEL_TIMEOUT,
        is_retryable: Callable[[Exception], object] = default_is_retryable,
        max_workers: int | None = None,
        hooks: Iterable[Hook] | None = None,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
    ) -> None:
        options = build_options(
            delay=delay,
            max_hedges=max_hedges,
            adaptive=adaptive,
            budget=budget,
            budget_cap=budget_cap,
            cancel_timeout=cancel_timeout,
            max_workers=max_workers,
        )
        check_callable("is_retryable", is_retryable)
        check_name(name)
        frozen_hooks = normalize_hooks(hooks)
        resolved_clock = resolve_clock(clock)
        observer = observer_for(frozen_hooks, resolved_clock, name, PRIMITIVE)
        self._engine = HedgeEngine(
            name=name,
            options=options,
            is_retryable=is_retryable,
            hooks=frozen_hooks,
            clock=resolved_clock,
            observer=observer,
        )
        self._stream = _hedged_stream if observer is None else observer.wrap(_hedged_stream)

    @property
    def name(self) -> str:
        """The hedger's name."""
        return self._engine.name

    @property
    def clock(self) -> Clock:
        """The clock that times the hedge delays."""
        return self._engine.clock

    def statistics(self) -> HedgerStatistics:
        """Return a snapshot of the hedger's counters (see `HedgerStatistics`)."""
        return self._engine.statistics()

    def close(self) -> None:
        """Shut the sync shell's worker pool down, without waiting for running attempts.

        Queued attempts are cancelled. A later sync call creates a new pool; async
        calls never need one.
        """
        self._engine.close()

    def __repr__(self) -> str:
        engine = self._engine
        options = engine.options
        return (
            f"Hedger(name={engine.name!r}, delay={options.delay!r}, "
            f"max_hedges={options.max_hedges}, adaptive={options.adaptive!r}, "
            f"budget={options.budget!r}, current_delay={engine.current_delay()!r})"
        )

    # -- async -------------------------------------------------------------------------

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``, hedged; *fn* is called once per attempt.

        Returns:
            The result of the first attempt to succeed.

        Raises:
            Exception: The primary attempt's exception, when every attempt failed.
        """
        engine = self._engine
        if engine.observer is not None:
            return await engine.observer.acall(acall, engine, fn, args, kwargs)
        return await acall(engine, fn, args, kwargs)

    def astream(
        self, fn: Callable[P, AsyncIterator[Y]], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncGenerator[Y, None]:
        """Yield the chunks of ``fn(*args, **kwargs)``, hedged on the time to first chunk.

        *fn* returns an async iterator (an async generator, typically) and is called
        once per attempt. The first stream to yield wins; the others are closed before
        its first chunk is yielded here. The winner is closed when this generator is.

        Returns:
            An async generator; nothing starts before its first ``__anext__``.

        Raises:
            Exception: The primary attempt's exception, when every attempt failed
                before its first chunk; after that, whatever the winning stream raises.
        """
        return cast("AsyncGenerator[Y, None]", self._stream(self._engine, fn, args, kwargs))

    # -- sync --------------------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` in worker threads, hedged, and return the winner's result.

        Returns:
            The result of the first attempt to succeed.

        Raises:
            Exception: The primary attempt's exception, when every attempt failed.
        """
        engine = self._engine
        if engine.observer is not None:
            return engine.observer.call(_hedged_call, engine, fn, args, kwargs)
        return SyncCall(engine, fn, args, kwargs).outcome()

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn* so that each call is hedged.

        Sync functions go through `call`, coroutine functions through `acall`, async
        generator functions through `astream`. The kind is decided once, here, and so
        is whether calls are reported to hooks; the wrapper keeps *fn*'s name,
        docstring and signature.

        Raises:
            TypeError: If *fn* is not callable, or is a sync generator function.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn):
            raise TypeError(f"cannot hedge the sync generator function {fn!r}")
        wrapper: Callable[..., object]
        if inspect.isasyncgenfunction(fn):
            wrapper = self._wrap_stream(cast("Callable[..., AsyncIterator[Any]]", fn))
        elif is_async_callable(fn):
            wrapper = self._wrap_coroutine(cast("Callable[..., Awaitable[Any]]", fn))
        else:
            wrapper = self._wrap_function(fn)
        return cast("Callable[P, T]", functools.update_wrapper(wrapper, fn))

    def _wrap_function(self, fn: Callable[P, T]) -> Callable[P, T]:
        engine = self._engine

        def hedged(*args: P.args, **kwargs: P.kwargs) -> T:
            return SyncCall(engine, fn, args, kwargs).outcome()

        return hedged if engine.observer is None else engine.observer.wrap(hedged)

    def _wrap_coroutine(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        engine = self._engine

        async def hedged(*args: Any, **kwargs: Any) -> T:
            return await acall(engine, fn, args, kwargs)

        return hedged if engine.observer is None else engine.observer.wrap(hedged)

    def _wrap_stream(self, fn: Callable[..., AsyncIterator[Y]]) -> Callable[..., AsyncIterator[Y]]:
        # Observed, when it is, by `astream`: one call per stream.
        astream = self.astream

        async def hedged(*args: Any, **kwargs: Any) -> AsyncGenerator[Y, None]:
            async with aclosing(astream(fn, *args, **kwargs)) as stream:
                async for chunk in stream:
                    yield chunk

        return hedged


# The bodies of the hedger's entry points, as functions that an `Observer` can wrap.


def _hedged_call(
    engine: HedgeEngine, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> T:
    return SyncCall(engine, fn, args, kwargs).outcome()


async def _hedged_stream(
    engine: HedgeEngine,
    fn: Callable[..., AsyncIterator[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[Any, None]:
    call: AsyncCall[object] = AsyncCall(engine, fn, args, kwargs, stream=True)
    stream, first = await call.open_stream()
    try:
        if first is not EMPTY:
            yield first
            async for chunk in stream:
                yield chunk
    finally:
        await close_stream(stream, engine.name)
