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
cancellation is delivered on the fast path. With any other clock (e.g.
`seawall.testing.FakeClock`), it sleeps with the clock's ``asleep`` in a cancel scope
that an outcome cancels, so virtual time drives the hedge delay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast, final

import anyio

from seawall._clock import SystemClock
from seawall._hedge._core import SUCCEEDED, Wait, Win
from seawall._hedge._engine import logger
from seawall._observe import AttemptKind


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import TaskGroup

    from seawall._hedge._core import Decision
    from seawall._hedge._engine import HedgeEngine
    from seawall._observe import Observer


__all__ = ("EMPTY", "AsyncCall", "close_stream")

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
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.run, self.start = engine.begin()
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

    # -- the host: the caller's task ---------------------------------------------------

    async def outcome(self) -> T:
        """Run the call to its end; return the winner's result or raise.

        Raises:
            Exception: The primary's exception, when every attempt failed.
        """
        clock = self.clock
        real_time = type(clock) is SystemClock
        async with anyio.create_task_group() as task_group:
            self.task_group = task_group
            if self.engine.observer is None:
                task_group.start_soon(self._attempt, 0)
            else:
                task_group.start_soon(self._observed_attempt, 0)
            while True:
                now = clock.now()
                decision = self._settle(now)
                if type(decision) is not Wait:
                    break
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
            self.ended = decision
            if self.live:
                task_group.cancel_scope.cancel()
                await self._watch()
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
