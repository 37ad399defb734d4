"""The hedger's sync shell: attempts in worker threads, the caller driven by the clock.

How time is driven without real sleeping. The sync shell waits for "the next outcome or
the next hedge time". With `FakeClock` the hedge time is registered with
``FakeClock.call_at`` and fires only when virtual time reaches it: an attempt that
must be slow sleeps on the clock (``clock.sleep(delay)``, which fires the hedge) and
then blocks on a `threading.Event` the test controls, or the test thread advances the
clock while the call runs; an instant call never hedges. `GatedClock` has no
``call_at``: it covers the fallback helper thread, whose sleep waits until the test
opens the gate. With `SystemClock`, tests only use outcomes that arrive at once (the
caller wakes on them), never the delay itself.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
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

    Calls listed in *blocked* first sleep *slow* seconds on *clock* (when given: slow
    in virtual time, which fires the hedge deadline), then wait for `release`. `done`
    is set when every call that started has returned.
    """

    def __init__(
        self,
        blocked: set[int] | None = None,
        errors: dict[int, Exception] | None = None,
        *,
        clock: FakeClock | GatedClock | None = None,
        slow: float = 0.0,
    ) -> None:
        self.blocked = blocked or set()
        self.errors = errors or {}
        self.clock = clock
        self.slow = slow
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
                if self.clock is not None:
                    self.clock.sleep(self.slow)
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
        fn = Blocking(blocked={0}, clock=clock, slow=0.2)
        assert hedger.call(fn) == "r1"
        assert clock.now() == pytest.approx(0.2)
        hedge_events = [e for e in hook.events if isinstance(e, HedgeLaunched | HedgeWon)]
        assert hedge_events == [
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
        winner_first = Blocking(blocked={0}, clock=clock, slow=0.2)
        assert hedger.call(winner_first) == "r1"
        failing_loser = Blocking(
            blocked={0}, errors={0: RuntimeError("late")}, clock=clock, slow=0.2
        )
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
        fn = Blocking(blocked={0, 1}, clock=clock, slow=0.2)
        assert hedger.call(fn) == "r2"
        assert clock.now() == pytest.approx(0.4)
        fn.wait_all_returned()
        hedger.close()

    def test_hedge_from_a_test_advancing_the_clock(
        self, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A blocked primary is hedged when the test thread advances the clock."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(hook,), name="sync")
        fn = Blocking(blocked={0})
        outcome: list[str] = []
        thread = threading.Thread(target=lambda: outcome.append(hedger.call(fn)), daemon=True)
        thread.start()
        _wait_for_repr(clock, "pending_callbacks=1")  # the hedge time is armed
        clock.advance(0.1)
        assert outcome == []
        clock.advance(0.1)
        thread.join(SAFETY)
        assert outcome == ["r1"]
        assert hook.of_type(HedgeLaunched) == [HedgeLaunched("sync", 1, HedgeReason.DELAY_ELAPSED)]
        fn.wait_all_returned()
        hedger.close()

    def test_instant_calls_never_hedge(self, clock: FakeClock, hook: RecordingHook) -> None:
        """With FakeClock an instant call never hedges and moves no virtual time."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(hook,))
        for _ in range(200):
            assert hedger.call(Blocking()) == "r0"
        assert hook.of_type(HedgeLaunched) == []
        assert clock.now() == 0
        hedger.close()

    def test_gated_clock_fallback_hedges_at_the_delay(self, gated: GatedClock) -> None:
        """A clock without call_at: a helper thread sleeps on the clock, then hedges."""
        hedger = Hedger(delay=0.2, clock=gated, name="g")
        fn = Blocking(blocked={0})
        opened: list[bool] = []

        def primary_opens_gate(*args: Any) -> str:
            if not opened:
                opened.append(True)
                gated.gate.set()  # the helper's sleep returns: the delay elapses
            return fn(*args)

        assert hedger.call(primary_opens_gate) == "r1"
        assert gated.now() == pytest.approx(0.2)
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
                clock.sleep(0.2)  # slow in virtual time
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


def _wait_for_repr(clock: FakeClock, text: str) -> str:
    """Spin (bounded, no sleep) until *text* shows in the clock's repr."""
    deadline = time.monotonic() + SAFETY
    while text not in repr(clock):
        assert time.monotonic() < deadline, f"{text} never showed in {clock!r}"
    return repr(clock)
