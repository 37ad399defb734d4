"""The hedger's sync shell: attempts in worker threads, the caller driven by the clock.

How time is driven without real sleeping. The sync shell waits for "the next outcome or
the next hedge time"; with a clock other than `SystemClock` a helper thread sleeps on
the clock and then wakes the caller. `FakeClock.sleep` returns at once, moving virtual
time, so with a plain `FakeClock` the delay "elapses" as soon as the caller waits: a
hedge is launched exactly at ``delay`` (virtual) whenever the primary has not answered
yet. Tests therefore make attempts that must be slow block on a `threading.Event` that
the test controls. Tests that need the delay never to elapse use `GatedClock`, whose
sync sleep waits until the test opens its gate. With `SystemClock`, tests only use
outcomes that arrive at once (the caller wakes on them), never the delay itself.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from seawall import HedgeLaunched, Hedger, HedgeReason, HedgeWon, SystemClock
from seawall.testing import FakeClock, RecordingHook


# Bound on waiting for a worker thread to finish: a safety net, never reached.
SAFETY = 10.0


class GatedClock:
    """A virtual clock whose sync ``sleep`` moves time only once the test opens the gate."""

    def __init__(self) -> None:
        self.fake = FakeClock()
        self.gate = threading.Event()

    def now(self) -> float:
        """The virtual time."""
        return self.fake.now()

    def sleep(self, seconds: float) -> None:
        """Wait for the gate, then move virtual time."""
        self.gate.wait()
        self.fake.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Unused by the sync shell."""
        await self.fake.asleep(seconds)


class Blocking:
    """A sync callable: call n returns ``"r<n>"`` or raises ``errors[n]``.

    Calls listed in *blocked* first wait for `release`. `done` is set when every call
    that started has returned.
    """

    def __init__(
        self, blocked: set[int] | None = None, errors: dict[int, Exception] | None = None
    ) -> None:
        self.blocked = blocked or set()
        self.errors = errors or {}
        self.release = threading.Event()
        self.lock = threading.Condition()
        self.calls: list[tuple[Any, ...]] = []
        self.returned: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, *args: Any) -> str:
        with self.lock:
            n = len(self.calls)
            self.calls.append(args)
        self.threads.add(threading.current_thread().name)
        try:
            if n in self.blocked:
                self.release.wait(SAFETY)
            if n in self.errors:
                raise self.errors[n]
            return f"r{n}"
        finally:
            with self.lock:
                self.returned.append(n)
                self.lock.notify_all()

    def wait_all_returned(self) -> None:
        """Release the blocked calls and wait until every call returned."""
        self.release.set()
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.returned) == len(self.calls), SAFETY)


@pytest.fixture
def gated() -> Iterator[GatedClock]:
    """A gated clock; the gate opens at teardown so no helper thread stays blocked."""
    clock = GatedClock()
    yield clock
    clock.gate.set()


@pytest.fixture
def hook() -> RecordingHook:
    """A fresh recording hook."""
    return RecordingHook()


class TestSyncHedging:
    """Hedging sync calls in worker threads."""

    def test_fast_primary_launches_no_hedge(self, gated: GatedClock, hook: RecordingHook) -> None:
        """With time frozen, a primary that answers wins alone; one worker call only."""
        hedger = Hedger(delay=0.2, clock=gated, hooks=(hook,))
        fn = Blocking()
        assert hedger.call(fn, 1, 2) == "r0"
        assert fn.calls == [(1, 2)]
        assert hook.of_type(HedgeLaunched) == []
        assert hedger.statistics().hedges_launched == 0
        hedger.close()

    def test_slow_primary_is_hedged_at_the_delay(
        self, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A primary blocked on an event is hedged at t = delay and the hedge wins."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(hook,), name="sync")
        fn = Blocking(blocked={0})
        assert hedger.call(fn) == "r1"
        assert clock.now() == pytest.approx(0.2)
        assert hook.events == [
            HedgeLaunched("sync", 1, HedgeReason.DELAY_ELAPSED),
            HedgeWon("sync", 1, hedged=True, latency=0.2),
        ]
        fn.wait_all_returned()
        hedger.close()

    def test_loser_late_result_and_exception_are_dropped(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A loser finishing after the call (with a result or an error) changes nothing."""
        hedger = Hedger(delay=0.2, clock=clock)
        winner_first = Blocking(blocked={0})
        assert hedger.call(winner_first) == "r1"
        failing_loser = Blocking(blocked={0}, errors={0: RuntimeError("late")})
        assert hedger.call(failing_loser) == "r1"
        before = hedger.statistics()
        with caplog.at_level(logging.DEBUG):
            winner_first.wait_all_returned()
            failing_loser.wait_all_returned()
        assert hedger.statistics() == before
        assert caplog.records == []
        hedger.close()

    def test_retryable_failure_hedges_at_once(self, gated: GatedClock, hook: RecordingHook) -> None:
        """With time frozen, a retryable failure of the primary starts the hedge."""
        hedger = Hedger(delay=0.2, clock=gated, hooks=(hook,))
        fn = Blocking(errors={0: ConnectionError("reset")})
        assert hedger.call(fn) == "r1"
        assert hook.of_type(HedgeLaunched)[0].reason is HedgeReason.ATTEMPT_FAILED
        assert gated.now() == 0
        hedger.close()

    def test_all_fail_raises_the_primary_exception(self, gated: GatedClock) -> None:
        """Both attempts failing raise the primary's exception, the hedge's as a note."""
        hedger = Hedger(delay=0.2, clock=gated, name="sync")
        errors: dict[int, Exception] = {0: ConnectionError("p"), 1: TimeoutError("h")}
        with pytest.raises(ConnectionError) as info:
            hedger.call(Blocking(errors=errors))
        assert info.value is errors[0]
        if sys.version_info >= (3, 11):
            assert info.value.__notes__ == [
                "seawall: hedger 'sync': attempt 1 also failed: TimeoutError('h')"
            ]
        hedger.close()

    def test_permanent_failure_is_not_hedged(self, gated: GatedClock) -> None:
        """A caller error from the lone primary propagates without a hedge."""
        hedger = Hedger(clock=gated)
        fn = Blocking(errors={0: ValueError("bad")})
        with pytest.raises(ValueError, match="bad"):
            hedger.call(fn)
        assert len(fn.calls) == 1
        hedger.close()

    def test_two_hedges_at_each_delay(self, clock: FakeClock) -> None:
        """max_hedges=2: hedges at 0.2 and 0.4 (virtual); the second one answers."""
        hedger = Hedger(delay=0.2, max_hedges=2, clock=clock)
        fn = Blocking(blocked={0, 1})
        assert hedger.call(fn) == "r2"
        assert clock.now() == pytest.approx(0.4)
        fn.wait_all_returned()
        hedger.close()

    def test_system_clock_wakes_on_outcomes(self) -> None:
        """With the real clock the caller wakes on outcomes, never waiting for the delay."""
        hedger = Hedger(delay=3600, clock=SystemClock())
        assert hedger.call(Blocking()) == "r0"
        assert hedger.call(Blocking(errors={0: ConnectionError()})) == "r1"
        hedger.close()

    def test_keyboard_interrupt_in_a_worker_propagates(self, gated: GatedClock) -> None:
        """A BaseException raised by an attempt is not a failure: it reaches the caller."""
        hedger = Hedger(clock=gated)
        with pytest.raises(KeyboardInterrupt):
            hedger.call(Blocking(errors={0: KeyboardInterrupt()}))  # type: ignore[dict-item]
        hedger.close()


class TestSyncDecorator:
    """@hedger on sync functions."""

    def test_sync_function(self, clock: FakeClock) -> None:
        """The decorated sync function is hedged and keeps its metadata."""
        hedger = Hedger(delay=0.2, clock=clock)
        release = threading.Event()
        calls: list[int] = []

        @hedger
        def lookup(key: int) -> str:
            """Look a key up."""
            calls.append(key)
            if len(calls) == 1:
                release.wait(SAFETY)
                return "slow"
            return f"fast{key}"

        assert lookup(3) == "fast3"
        assert lookup.__name__ == "lookup"
        assert lookup.__doc__ == "Look a key up."
        release.set()
        hedger.close()


class TestWorkerPool:
    """The lazily created worker pool."""

    def test_no_thread_until_first_sync_call(self, gated: GatedClock) -> None:
        """Construction starts no thread; the first call creates the pool; close drops it."""
        before = threading.active_count()
        hedger = Hedger(clock=gated, name="pool")
        assert threading.active_count() == before
        assert not hedger._engine.has_executor
        fn = Blocking()
        hedger.call(fn)
        assert hedger._engine.has_executor
        assert all(name.startswith("seawall-hedger-pool") for name in fn.threads)
        assert hedger._engine.options.max_workers == 16
        hedger.close()
        assert not hedger._engine.has_executor
        assert hedger.call(Blocking()) == "r0"  # a new pool on demand
        hedger.close()


class TestSyncStress:
    """Many threads sharing one hedger."""

    def test_many_threads(self) -> None:
        """Every call ends exactly once; launches stay within calls x max_hedges."""
        hedger = Hedger(delay=3600, max_hedges=2, clock=SystemClock(), budget=0.5)
        rng = random.Random(99)
        plans = [
            {n: ConnectionError(n) for n in range(3) if rng.random() < 0.3} for _ in range(160)
        ]
        outcomes: list[str] = []
        lock = threading.Lock()

        def worker(chunk: list[dict[int, Exception]]) -> None:
            for errors in chunk:
                try:
                    result = hedger.call(Blocking(errors=errors))
                except ConnectionError:
                    result = "failed"
                with lock:
                    outcomes.append(result)

        threads = [threading.Thread(target=worker, args=(plans[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SAFETY)
        stats = hedger.statistics()
        assert len(outcomes) == stats.calls == 160
        assert stats.hedges_launched <= 160 * 2
        assert stats.failures == outcomes.count("failed")
        assert stats.primary_wins + stats.hedges_won == 160 - stats.failures
        hedger.close()
