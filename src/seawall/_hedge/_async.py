"""The hedger's async shell (asyncio and trio, through anyio): one call at a time.

Task structure of one call: a task group whose host, the caller's own task, drives the
core, and one task per attempt (the primary included). Attempts only report their
outcome to the host's inbox and wake it; the host decides (through the core), launches
hedges, and on a verdict cancels the group's scope, which cancels every loser, and
waits for them, warning after ``cancel_timeout``. The group then exits, so no attempt
outlives the call.

With hooks, each attempt task runs `AsyncCall._observed_attempt` instead of
`AsyncCall._attempt` (chosen when the task is started): the same work inside an
`AttemptStarted` / `AttemptEnded` pair reported from the attempt's own task, whose
context is a copy of the host's (anyio's ``start_soon`` copies it on asyncio and trio),
so a tracing hook's attempt span is a child of the call's.

The host waits for "the next outcome or the next hedge time" in one of two ways,
chosen once per hedger from its clock. With `seawall.SystemClock`, it waits on an
`anyio.Event` under `anyio.move_on_after`: an outcome sets the event, and no
cancellation is delivered when an outcome comes first. With any other clock (e.g.
`seawall.testing.FakeClock`), it sleeps with the clock's ``asleep`` in a cancel scope
that an outcome cancels, so virtual time drives the hedge delay.

**The native fast path** (`acall`, the coroutine decorator; not streams). Most hedged
calls end before the hedge delay, and for them the task group is most of the cost: an
anyio task group with one task costs about six times what creating an asyncio task and
awaiting it does (its cancel scopes, its task states, its waits). So on asyncio, with
`seawall.SystemClock`, a call starts as little as it can: the primary is a plain
asyncio task (``loop.create_task``, which runs it in a copy of the caller's context,
as anyio's ``start_soon`` does), and the caller awaits a future that the primary
resolves as its last act, or that the hedger's `Deadlines` timer resolves at the hedge
time. A primary that succeeds first ends the call there: one task, one future, no
cancel scope, no timer of its own, no sleep. Otherwise (the delay elapsed, or the
primary failed) the call goes on in the task group as above, with the running primary
adopted: its outcome reaches the host from a done callback, and it is cancelled and
awaited with the rest. Only the real clock allows this: the loop's timer runs on real
time, while another clock (e.g. `seawall.testing.FakeClock`, whose ``asleep``
autojumps virtual time) must drive the delay itself, so any other clock, and trio,
take the task-group path from the start.

The primary, not being an anyio task, is cancelled the asyncio way, with one
``Task.cancel()``, never repeated: when it loses, or when the caller is cancelled (at
the same time as the hedges, which the group cancels). An anyio shield it enters after
that (cleanup in ``finally``) holds; one it is already inside when the cancellation
lands does not stop that one ``CancelledError``. For the same reason the caller's
anyio cancel scopes are not its parents: cancelling them reaches it through the caller,
but ``anyio.current_effective_deadline()`` inside it does not see their deadlines.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from asyncio import current_task, get_running_loop
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast, final

import anyio

from seawall._clock import SystemClock
from seawall._hedge._core import SUCCEEDED, Fail, Wait, Win
from seawall._hedge._engine import logger
from seawall._observe import AttemptKind


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import TaskGroup

    from seawall._hedge._core import Decision, HedgeRun
    from seawall._hedge._engine import HedgeEngine
    from seawall._observe import Observer


__all__ = ("EMPTY", "AsyncCall", "Deadlines", "acall", "close_stream")

T = TypeVar("T")

_Outcome = tuple[int, Exception | None, Any]


@final
class _Empty:
    """The first "chunk" of a stream that ended before yielding anything."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<empty stream>"


EMPTY: Final = _Empty()


@final
class AsyncCall(Generic[T]):
    """The state of one async hedged call (or stream opening); never shared.

    With *stream* set, an attempt's work is to call ``fn(*args, **kwargs)`` for an
    async iterator and get its first chunk; its result is that chunk, or `EMPTY`.

    With *begun* and *primary* set (the native fast path's hand-over, asyncio only),
    the call was already begun (its run and start time) and its primary runs, or ran,
    as that asyncio task; ``outcome`` adopts it instead of starting attempt 0.
    """

    __slots__ = (
        "args",
        "clock",
        "ended",
        "engine",
        "errors",
        "event",
        "fn",
        "inbox",
        "kwargs",
        "live",
        "primary",
        "primary_cancelled",
        "run",
        "sleep_scope",
        "start",
        "starts",
        "streams",
        "task_group",
        "value",
        "watch_scope",
    )

    def __init__(
        self,
        engine: HedgeEngine,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        stream: bool,
        begun: tuple[HedgeRun, float] | None = None,
        primary: asyncio.Task[Any] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.run, self.start = engine.begin() if begun is None else begun
        self.starts = [self.start]
        self.errors: list[Exception | None] = [None]
        self.streams: list[AsyncIterator[Any] | None] | None = [None] if stream else None
        self.inbox: list[_Outcome] = []
        self.live: set[int] = set()
        self.event: anyio.Event | None = None
        self.sleep_scope: anyio.CancelScope | None = None
        self.watch_scope: anyio.CancelScope | None = None
        self.ended: Decision | None = None
        self.value: T | None = None
        self.task_group: TaskGroup | None = None
        self.primary = primary
        self.primary_cancelled = False
        if primary is not None:
            if primary.done():
                # It failed (a success ends the call on the fast path), and *begun*'s
                # run has its outcome already.
                self.errors[0] = cast("Exception", primary.exception())
            else:
                self.live.add(0)
                primary.add_done_callback(self._primary_done)

    # -- the host: the caller's task ---------------------------------------------------

    async def outcome(self) -> T:
        """Run the call to its end; return the winner's result or raise.

        Raises:
            Exception: The primary's exception, when every attempt failed.
        """
        primary = self.primary
        try:
            async with anyio.create_task_group() as task_group:
                self.task_group = task_group
                if primary is None:  # else adopted: already running, or already failed
                    observed = self.engine.observer is not None
                    task_group.start_soon(self._observed_attempt if observed else self._attempt, 0)
                try:
                    decision = await self._race()
                except BaseException:
                    # The caller was cancelled (or interrupted): the group cancels the
                    # hedges; an adopted primary is cancelled here, at the same time.
                    self._cancel_primary()
                    raise
                self.ended = decision
                if self.live:
                    task_group.cancel_scope.cancel()
                    self._cancel_primary()
                    await self._watch()
        finally:
            if primary is not None and not primary.done():
                # The group waited for the hedges, not for the adopted primary.
                self._cancel_primary()
                await join(primary)
        if type(decision) is Win:
            return cast("T", self.value)
        raise self.engine.failed(self.errors)

    async def open_stream(self) -> tuple[AsyncIterator[Any], object]:
        """Race the streams to their first chunk; return the winner and its first chunk.

        Every other stream is closed (``aclose``) before this returns or raises.
        """
        winner = None
        try:
            first = await self.outcome()
            ended = self.ended
            winner = ended.attempt if isinstance(ended, Win) else None
        finally:
            streams = self.streams or []
            with anyio.CancelScope(shield=True):
                for index, iterator in enumerate(streams):
                    if iterator is not None and index != winner:
                        await close_stream(iterator, self.engine.name)
        iterator = streams[winner or 0]
        if iterator is None:  # pragma: no cover - a winner always has its stream
            raise AssertionError("unreachable")
        return iterator, first

    async def _race(self) -> Decision:
        """Settle outcomes and launch hedges until the core's decision is not to wait."""
        clock = self.clock
        real_time = type(clock) is SystemClock
        while True:
            now = clock.now()
            decision = self._settle(now)
            if type(decision) is not Wait:
                return decision
            until = decision.until
            if until is None or real_time:
                event = self.event = anyio.Event()
                if until is None:
                    await event.wait()
                else:
                    with anyio.move_on_after(until - clock.now()):
                        await event.wait()
                self.event = None
            else:
                with anyio.CancelScope() as scope:
                    self.sleep_scope = scope
                    await clock.asleep(until - now)
                self.sleep_scope = None

    def _settle(self, now: float) -> Decision:
        """Feed the inbox to the core, launch the hedges it asks for, return its decision."""
        inbox = self.inbox
        run = self.run
        if inbox:
            self.inbox = []
            for index, error, value in inbox:
                if error is None:
                    if run.winner is None:
                        self.value = value
                    run.completed(index, SUCCEEDED)
                else:
                    self.errors[index] = error
                    run.completed(index, self.engine.classify(error))
        decision = self.engine.advance(run, now, self._launch)
        if type(decision) is Win:
            attempt = decision.attempt
            self.engine.won(run, attempt, now - self.starts[attempt], now - self.start)
        return decision

    def _launch(self, index: int) -> None:
        self.errors.append(None)
        self.starts.append(self.clock.now())
        if self.streams is not None:
            self.streams.append(None)
        task_group = self.task_group
        if task_group is None:  # pragma: no cover - hedges start inside the group
            raise AssertionError("unreachable")
        attempt = self._attempt if self.engine.observer is None else self._observed_attempt
        task_group.start_soon(attempt, index, name=f"seawall hedge {index}")

    async def _watch(self) -> None:
        # The group cannot exit before its tasks do; this only makes a stuck wait
        # visible. Shielded: the group's scope was just cancelled to stop the losers.
        with anyio.CancelScope(shield=True) as scope:
            self.watch_scope = scope
            await self.clock.asleep(self.engine.options.cancel_timeout)
        if self.live:
            logger.warning(
                "hedger %r: attempt(s) %s still running %.3g s after being cancelled; "
                "the call waits for them to finish",
                self.engine.name,
                sorted(self.live),
                self.engine.options.cancel_timeout,
            )

    def _cancel_primary(self) -> None:
        # Once: a repeated Task.cancel() would also interrupt the cleanup the first
        # one started, even under an anyio shield.
        primary = self.primary
        if primary is not None and not self.primary_cancelled:
            self.primary_cancelled = True
            primary.cancel()

    def _primary_done(self, task: asyncio.Task[Any]) -> None:
        # The adopted primary's outcome, reported from a done callback of its task; a
        # primary cancelled (a loser, or the call cancelled) reports nothing, as in
        # `_attempt`. Retrieving the exception also keeps asyncio from logging it.
        live = self.live
        live.discard(0)
        if not task.cancelled():
            error = task.exception()
            if error is None:
                self._report(0, None, task.result())
            elif isinstance(error, Exception):
                self._report(0, error, None)
        if not live and self.watch_scope is not None:
            self.watch_scope.cancel()

    # -- the attempts: one task each ---------------------------------------------------

    async def _attempt(self, index: int) -> None:
        live = self.live
        live.add(index)
        try:
            try:
                if self.streams is None:
                    value = await self.fn(*self.args, **self.kwargs)
                else:
                    value = await self._first_chunk(index)
            except Exception as exc:  # noqa: BLE001 -- the core decides; cancellation passes
                self._report(index, exc, None)
            else:
                self._report(index, None, value)
        finally:
            live.discard(index)
            if not live and self.watch_scope is not None:
                self.watch_scope.cancel()

    async def _observed_attempt(self, index: int) -> None:
        # `_attempt`, inside an AttemptStarted / AttemptEnded pair reported from this
        # task. A loser cancelled by the verdict (or a call cancelled by its caller)
        # ends as CANCELLED; the end is reported before the outcome reaches the host.
        observer = cast("Observer", self.engine.observer)
        started, began = observer.attempt_start(
            index, AttemptKind.HEDGE if index else AttemptKind.ORIGINAL
        )
        live = self.live
        live.add(index)
        try:
            try:
                if self.streams is None:
                    value = await self.fn(*self.args, **self.kwargs)
                else:
                    value = await self._first_chunk(index)
            except Exception as exc:  # noqa: BLE001 -- the core decides; cancellation passes
                observer.attempt_end(started, began, exc)
                self._report(index, exc, None)
            except BaseException as exc:  # cancelled: reported, then re-raised unchanged
                observer.attempt_end(started, began, exc)
                raise
            else:
                observer.attempt_end(started, began, None)
                self._report(index, None, value)
        finally:
            live.discard(index)
            if not live and self.watch_scope is not None:
                self.watch_scope.cancel()

    async def _first_chunk(self, index: int) -> object:
        iterator: AsyncIterator[Any] = self.fn(*self.args, **self.kwargs)
        streams = self.streams
        if streams is not None:
            streams[index] = iterator
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            return EMPTY

    def _report(self, index: int, error: Exception | None, value: object) -> None:
        if self.ended is not None:
            return  # a loser finishing after the verdict: dropped
        self.inbox.append((index, error, value))
        event = self.event
        if event is not None:
            event.set()
        scope = self.sleep_scope
        if scope is not None:
            scope.cancel()


async def close_stream(iterator: AsyncIterator[Any], name: str) -> None:
    """Close *iterator* if it has ``aclose``; log (never raise) what closing raises."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # noqa: BLE001 -- a loser's cleanup must not fail the winner's call
        logger.warning("hedger %r: closing a stream raised", name, exc_info=True)


# -- the native fast path (asyncio, real clock) ----------------------------------------


async def acall(
    engine: HedgeEngine,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Await ``fn(*args, **kwargs)``, hedged: the body of `Hedger.acall`.

    On asyncio with the real clock, the native fast path (see the module docstring);
    anywhere else, an `AsyncCall` from the start.

    Raises:
        Exception: The primary's exception, when every attempt failed.
    """
    loop = _asyncio_loop() if engine.real_time else None
    if loop is None:
        call: AsyncCall[T] = AsyncCall(engine, fn, args, kwargs, stream=False)
        return await call.outcome()
    start = engine.clock.now()
    delay = engine.open()
    waiter: asyncio.Future[None] = loop.create_future()
    observer = engine.observer
    # create_task runs the primary in a copy of the caller's context, as anyio does.
    primary = loop.create_task(
        _primary(fn, args, kwargs, waiter)
        if observer is None
        else _observed_primary(observer, fn, args, kwargs, waiter)
    )
    if engine.options.max_hedges:  # with no hedge to launch, nothing to time
        deadlines = engine.deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = engine.deadlines = Deadlines(loop, engine.clock.now)
        deadlines.add(start + delay, waiter)
    try:
        await waiter
    except GeneratorExit:  # the caller's coroutine is being closed: it may not await
        primary.cancel()
        raise
    except BaseException:
        # The caller was cancelled: so is the primary (once; a no-op if it is done),
        # and the call waits for it. It has started: its first step was scheduled
        # before anything that can resume the caller (and had it not, it would not
        # run at all).
        primary.cancel()
        await join(primary)
        raise
    # Raises CancelledError if something other than this call cancelled the primary.
    if primary.done() and primary.exception() is None:
        engine.won_alone(start)
        return primary.result()  # type: ignore[no-any-return]
    return await _go_on(engine, fn, args, kwargs, start=start, delay=delay, primary=primary)


async def _go_on(
    engine: HedgeEngine,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    start: float,
    delay: float,
    primary: asyncio.Task[Any],
) -> T:
    # The rest of a native call whose primary failed, or had no result at the hedge
    # time: the full race in a task group, adopting the primary, unless the core ends
    # the call at once (a permanent failure, no hedge allowed): no group for that.
    run = engine.run(start, delay)
    if primary.done():
        error = cast("BaseException", primary.exception())
        if not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit: never a failure
        run.completed(0, engine.classify(error))
        if type(run.decide(engine.clock.now())) is Fail:
            raise engine.failed([error])
    call: AsyncCall[T] = AsyncCall(
        engine, fn, args, kwargs, stream=False, begun=(run, start), primary=primary
    )
    return await call.outcome()


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """Return the running asyncio loop if the caller is an asyncio task, else ``None``."""
    try:
        loop = get_running_loop()
    except RuntimeError:  # not asyncio: trio
        return None
    # A running loop alone is not enough: trio in guest mode runs its tasks from
    # callbacks of an asyncio loop, outside any asyncio task.
    return None if current_task(loop) is None else loop


async def _primary(
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    waiter: asyncio.Future[None],
) -> Any:
    # The native path's primary. Its outcome is its task's; resolving the waiter is its
    # last act, so the caller, woken by it one step later, finds the task done.
    try:
        return await fn(*args, **kwargs)
    finally:
        if not waiter.done():
            waiter.set_result(None)


async def _observed_primary(
    observer: Observer,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    waiter: asyncio.Future[None],
) -> Any:
    # `_primary` inside an AttemptStarted / AttemptEnded pair reported from its task,
    # as `AsyncCall._observed_attempt`; the end is reported before the caller wakes.
    try:
        started, began = observer.attempt_start(0, AttemptKind.ORIGINAL)
        try:
            value = await fn(*args, **kwargs)
        except BaseException as exc:  # reported, then re-raised unchanged
            observer.attempt_end(started, began, exc)
            raise
        observer.attempt_end(started, began, None)
        return value
    finally:
        if not waiter.done():
            waiter.set_result(None)


async def join(task: asyncio.Task[Any]) -> None:
    """Wait until *task* is done, without cancelling it; then re-raise any cancellation.

    Shielded from anyio's cancellation, which would otherwise be redelivered at every
    turn of the loop; a native ``Task.cancel()`` of the caller is held until the task
    is done. The task's exception, if any, is retrieved (its outcome is the caller's
    business, not asyncio's log's).
    """
    cancelled: BaseException | None = None
    if not task.done():
        with anyio.CancelScope(shield=True):
            while not task.done():
                try:
                    await asyncio.wait((task,))
                except asyncio.CancelledError as exc:  # noqa: PERF203 -- held, not lost
                    cancelled = exc
    if not task.cancelled():
        task.exception()
    if cancelled is not None:
        raise cancelled


_Entry = tuple[float, int, "asyncio.Future[None]"]

# `Deadlines` drops its finished entries when it holds more than twice as many as were
# pending after the last clean-up, and at least this many: linear work, once per that
# many calls.
_CLEAN_UP_AT: Final = 256


@final
class Deadlines:
    """The hedge times of one hedger's calls on one asyncio event loop, on one loop timer.

    A loop timer per call (``loop.call_later``, then ``cancel``) costs about half as
    much as the task itself: a Python handle, two heap operations comparing handles in
    Python, the loop's cancelled-timer accounting. Calls instead push ``(time, n,
    waiter)`` onto a heap (C comparisons of floats), and one timer, armed at the
    earliest time, resolves the waiters whose time has come. A call that ends first
    leaves its entry behind, resolved: `_fire` skips such entries, and `add` drops
    them in bulk now and then, so that the heap holds about the calls still waiting.
    With a fixed delay the times only grow, so the timer is armed about once per
    delay, not once per call.

    Times are on the clock's timeline (`seawall.SystemClock`, monotonic); the timer
    is armed with the time left (``call_later``), so the loop's own clock may have
    another origin, and a timer that fires early is simply re-armed.

    Used from the loop's thread only. A hedger keeps the one of the last loop that
    used it (`HedgeEngine.deadlines`); a call keeps the one it pushed to, so calls on
    several loops, in several threads, never share one.
    """

    __slots__ = ("_armed", "_heap", "_limit", "_next", "_now", "_timer", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, now: Callable[[], float]) -> None:
        self.loop = loop
        self._now = now
        self._heap: list[_Entry] = []
        self._next = itertools.count().__next__  # ties between equal times, in order
        self._armed = math.inf  # the time the timer is armed for
        self._timer: asyncio.TimerHandle | None = None
        self._limit = _CLEAN_UP_AT

    def __repr__(self) -> str:
        return f"<Deadlines: {len(self._heap)} entries, armed for {self._armed!r}>"

    @property
    def size(self) -> int:
        """How many entries are held, finished ones not yet dropped included."""
        return len(self._heap)

    @property
    def armed(self) -> float:
        """The time the loop timer is armed for; ``inf`` when none is."""
        return self._armed

    def add(self, when: float, waiter: asyncio.Future[None]) -> None:
        """Resolve *waiter* (with ``None``) at *when*, unless it is done by then."""
        heap = self._heap
        heappush(heap, (when, self._next(), waiter))
        if when < self._armed:
            self._arm(when)
        if len(heap) > self._limit:
            heap[:] = [entry for entry in heap if not entry[2].done()]
            heapify(heap)
            self._limit = max(_CLEAN_UP_AT, 2 * len(heap))

    def _arm(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        self._armed = when
        self._timer = self.loop.call_later(max(0.0, when - self._now()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed = math.inf
        heap = self._heap
        now = self._now()
        while heap:
            when, _, waiter = heap[0]
            if waiter.done():
                heappop(heap)  # its call ended before its time
            elif when <= now:
                heappop(heap)
                waiter.set_result(None)
            else:
                self._arm(when)
                break
