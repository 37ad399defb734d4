"""Helpers for testing code that uses seawall: a virtual clock and a recording hook.

`FakeClock` replaces the real clock of any primitive (``clock=FakeClock()``), so retry
delays, open-circuit timeouts and rate-limit waits pass in virtual time: a test that
covers an hour of backoff runs in milliseconds and never depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import threading
from typing import TYPE_CHECKING, TypeVar, final

import anyio
import anyio.lowlevel

from ._faults import (
    Fault,
    FaultInjector,
    FaultStatistics,
    InjectedError,
    InjectedHTTPError,
    Latency,
)
from ._hooks import Event as _Event


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = (
    "FakeClock",
    "Fault",
    "FaultInjector",
    "FaultStatistics",
    "InjectedError",
    "InjectedHTTPError",
    "Latency",
    "RecordingHook",
)

_E = TypeVar("_E", bound=_Event)

# How many scheduler rounds stand for "every other task is blocked" on an event loop
# whose ready queue we cannot inspect (uvloop, for one).
_FALLBACK_IDLE_ROUNDS = 50


@final
class _Sleeper:
    __slots__ = ("deadline", "event", "seq", "woken")

    def __init__(self, deadline: float, seq: int) -> None:
        self.deadline = deadline
        self.seq = seq
        self.event = anyio.Event()
        self.woken = False

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


@final
class FakeClock:
    """A virtual clock for sync code, asyncio and trio; it never sleeps for real.

    * ``now()`` returns virtual seconds, starting at *start*.
    * ``sleep(s)`` (sync) moves virtual time forward by *s* at once and returns.
    * ``await asleep(s)`` (async) suspends the task until virtual time reaches
      ``now() + s``. With *autojump* on (the default), virtual time jumps to the earliest
      pending wake-up as soon as every other task of the event loop is blocked, like
      trio's ``MockClock(autojump_threshold=0)``; sleepers wake one at a time, earliest
      deadline first, ties in the order they went to sleep. With *autojump* off, only
      `advance` moves time.
    * ``advance(s)`` moves virtual time forward by *s* and wakes the sleepers that are due.
    * ``call_at(deadline, callback)`` (thread-safe) runs *callback* once virtual time
      reaches *deadline*: at once, in the caller's thread, if it already has; otherwise
      in whichever thread moves time past it (``sleep``, ``advance`` or an autojump of
      ``asleep``), outside the clock's lock, earliest deadline first (ties in the order
      they were registered). seawall's sync shells (the sync `seawall.Timeout`, the
      ``max_wait`` of `seawall.Bulkhead`, the sync hedge delay of `seawall.Hedger`) use
      it for their deadlines, so with this clock those fire only when virtual time
      moves, never by themselves.

    "Blocked" is judged by the event loop: on trio with
    ``trio.testing.wait_all_tasks_blocked``; on asyncio by an empty ready queue. A task
    that waits for a worker thread or for a socket counts as blocked, so virtual time may
    jump while it waits; keep such waits out of tests that measure virtual time.

    The durations passed to ``sleep`` and ``asleep`` are recorded in `sleeps`.

    Example::

        clock = FakeClock()
        retrier = seawall.Retrier(max_attempts=3, clock=clock)

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_autojump",
        "_driver",
        "_lock",
        "_now",
        "_seq",
        "_sleepers",
        "_sleeps",
        "_timer_seq",
        "_timers",
    )

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        if not math.isfinite(start):
            msg = f"start must be a finite number of seconds, got {start!r}"
            raise ValueError(msg)
        self._now = float(start)
        self._autojump = autojump
        self._lock = threading.Lock()
        self._sleepers: list[_Sleeper] = []
        self._seq = 0
        self._driver: _Sleeper | None = None
        self._sleeps: list[float] = []
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._timer_seq = 0

    def __repr__(self) -> str:
        return (
            f"FakeClock(now={self._now!r}, autojump={self._autojump!r}, "
            f"sleeping_tasks={len(self._sleepers)}, pending_callbacks={len(self._timers)})"
        )

    @property
    def sleeps(self) -> list[float]:
        """Every duration passed to ``sleep`` or ``asleep``, in call order (a copy)."""
        return list(self._sleeps)

    def now(self) -> float:
        """Return the current virtual time in seconds."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Move virtual time forward by *seconds* without blocking (thread-safe)."""
        _check_seconds(seconds)
        with self._lock:
            self._sleeps.append(seconds)
            self._now += seconds
        self._run_due()

    def call_at(self, deadline: float, callback: Callable[[], object]) -> None:
        """Run *callback* once virtual time reaches *deadline* (thread-safe).

        At once, in the calling thread, when *deadline* has already come; otherwise in
        the thread that moves time past it (``sleep``, ``advance`` or an ``asleep``
        autojump), outside the clock's lock, so a callback may use the clock. An
        exception from a callback propagates to that thread.
        """
        with self._lock:
            if deadline > self._now:
                self._timer_seq += 1
                heapq.heappush(self._timers, (deadline, self._timer_seq, callback))
                return
        callback()

    def _run_due(self) -> None:
        """Run the callbacks whose deadline has come, earliest first, outside the lock."""
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > self._now:
                    return
                callback = heapq.heappop(self._timers)[2]
            callback()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by *seconds* and wake the async sleepers now due.

        Call it from the event loop's thread when tasks are sleeping on this clock.
        """
        _check_seconds(seconds)
        with self._lock:
            self._now += seconds
        self._run_due()
        while self._sleepers and self._sleepers[0].deadline <= self._now:
            self._wake(heapq.heappop(self._sleepers))

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task until virtual time has moved on by *seconds*.

        Always a checkpoint, even for zero seconds.
        """
        _check_seconds(seconds)
        self._sleeps.append(seconds)
        if seconds == 0:
            await anyio.lowlevel.checkpoint()
            return
        self._seq += 1
        sleeper = _Sleeper(self._now + seconds, self._seq)
        heapq.heappush(self._sleepers, sleeper)
        try:
            await self._wait(sleeper)
        except BaseException:
            self._forget(sleeper)
            raise

    async def _wait(self, sleeper: _Sleeper) -> None:
        while not sleeper.woken:
            if self._autojump and self._driver is None:
                self._driver = sleeper
            if self._driver is sleeper:
                await _wait_until_idle()
                if sleeper.woken:  # advance() got there first
                    break
                # Jump to the earliest wake-up and run that sleeper alone.
                due = heapq.heappop(self._sleepers)
                with self._lock:
                    self._now = max(self._now, due.deadline)
                self._run_due()
                self._wake(due)
            else:
                await sleeper.event.wait()
                if not sleeper.woken:
                    # Woken only to take over driving the clock.
                    sleeper.event = anyio.Event()
        if self._driver is sleeper:
            self._hand_over()

    def _wake(self, sleeper: _Sleeper) -> None:
        sleeper.woken = True
        sleeper.event.set()

    def _hand_over(self) -> None:
        self._driver = None
        if self._sleepers:
            self._sleepers[0].event.set()

    def _forget(self, sleeper: _Sleeper) -> None:
        if not sleeper.woken:
            self._sleepers.remove(sleeper)
            heapq.heapify(self._sleepers)
        if self._driver is sleeper:
            self._hand_over()


async def _wait_until_idle() -> None:
    """Return once no other task of the running event loop is ready to run."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        import trio.testing  # noqa: PLC0415 -- only reachable when trio runs the loop

        await trio.testing.wait_all_tasks_blocked()
        return
    ready = getattr(loop, "_ready", None)
    if ready is None:
        for _ in range(_FALLBACK_IDLE_ROUNDS):
            await anyio.lowlevel.checkpoint()
        return
    await anyio.lowlevel.checkpoint()
    while ready:
        await anyio.lowlevel.checkpoint()


def _check_seconds(seconds: float) -> None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        msg = f"seconds must be a number, got {type(seconds).__name__}"
        raise TypeError(msg)
    if math.isnan(seconds) or seconds < 0:
        msg = f"seconds must be >= 0, got {seconds!r}"
        raise ValueError(msg)


@final
class RecordingHook:
    """A hook that keeps every event it receives, for assertions in tests.

    Thread-safe: appending to a list is atomic in CPython.

    Example::

        hook = RecordingHook()
        breaker = seawall.CircuitBreaker(hooks=(hook,))
        ...
        assert [type(e) for e in hook.events] == [...]

    .. versionadded:: 0.1.0
    """

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[_Event] = []

    def __call__(self, event: _Event) -> None:
        """Record *event*."""
        self.events.append(event)

    def of_type(self, kind: type[_E]) -> list[_E]:
        """Return the recorded events that are instances of *kind*, in order."""
        return [event for event in self.events if isinstance(event, kind)]

    def clear(self) -> None:
        """Forget every recorded event."""
        self.events.clear()

    def __repr__(self) -> str:
        return f"RecordingHook(events={len(self.events)})"
