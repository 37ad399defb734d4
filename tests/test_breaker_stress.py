"""Many threads and many tasks share one breaker: its invariants hold under contention."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import pytest

from seawall import CircuitBreaker, CircuitOpenError, CountWindow
from seawall.testing import FakeClock


HALF_OPEN_MAX = 2
THREADS = 32
CALLS_PER_THREAD = 150
TASKS = 1000
CALLS_PER_TASK = 3


class BoomError(ConnectionError):
    """A transient failure of the dependency."""


@dataclass
class Tally:
    """What the callers saw, to compare with the breaker's own statistics."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter[str] = field(default_factory=Counter)
    running_probes: Counter[int] = field(default_factory=Counter)
    max_probes: int = 0
    max_leases: int = 0
    unexpected: list[BaseException] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def probe_started(self, generation: int | None, leases: int) -> None:
        with self.lock:
            self.max_leases = max(self.max_leases, leases)
            if generation is not None:
                self.running_probes[generation] += 1
                self.max_probes = max(self.max_probes, self.running_probes[generation])

    def probe_ended(self, generation: int | None) -> None:
        if generation is not None:
            with self.lock:
                self.running_probes[generation] -= 1


def make_breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        name="stress",
        max_failures=3,
        timeout=1.0,
        half_open_max=HALF_OPEN_MAX,
        failure_rate_threshold=0.6,
        window=CountWindow(20),
        minimum_calls=10,
        slow_call_threshold=0.5,
        probe_timeout=1e6,  # no lease expires: every counted probe really holds a slot
        clock=clock,
    )


def probe_generation(breaker: CircuitBreaker, ticket: int) -> tuple[int | None, int]:
    """Return the generation if *ticket* holds a probe lease right now, and the lease count."""
    core = breaker._core
    with breaker._lock:
        leases = len(core._leases)
        return (core.generation if ticket in core._leases else None), leases


def check_invariants(breaker: CircuitBreaker, tally: Tally) -> None:
    stats = breaker.statistics()
    seen = tally.outcomes
    assert tally.unexpected == []
    assert tally.max_probes <= HALF_OPEN_MAX
    assert tally.max_leases <= HALF_OPEN_MAX
    assert stats.calls_in_flight == 0
    assert stats.probes_in_flight == 0 or stats.state.value == "half_open"
    assert stats.calls_admitted == seen["admitted"]
    assert stats.rejections == seen["rejected"]
    assert stats.cancelled == seen["cancelled"]
    assert (
        stats.calls_admitted
        == stats.successes + stats.failures + stats.cancelled + stats.ignored_outcomes
    )
    assert stats.slow_calls <= seen["slow"]
    assert stats.trips > 0
    assert seen["admitted"] > 0
    assert seen["rejected"] > 0
    assert tally.max_probes >= 1, "the run never reached half-open"


class TestThreads:
    @pytest.mark.timeout(30)
    def test_threads_share_one_breaker(self) -> None:
        """32 threads calling with a mix of outcomes leave every invariant intact."""
        clock = FakeClock()
        breaker = make_breaker(clock)
        tally = Tally()
        barrier = threading.Barrier(THREADS)

        def body(kind: str, ticket: int) -> None:
            generation, leases = probe_generation(breaker, ticket)
            tally.probe_started(generation, leases)
            try:
                if kind == "fail":
                    raise BoomError
                if kind == "slow":
                    tally.add("slow")
                    clock.sleep(0.6)
            finally:
                tally.probe_ended(generation)

        def worker(seed: int) -> None:
            rnd = random.Random(seed)
            barrier.wait()
            for _ in range(CALLS_PER_THREAD):
                kind = rnd.choice(["ok", "ok", "ok", "fail", "fail", "slow"])
                if rnd.random() < 0.05:
                    clock.sleep(rnd.choice([0.3, 1.0]))  # manual time advance
                guard = breaker.guard()
                try:
                    with guard:
                        tally.add("admitted")
                        body(kind, guard._ticket)
                except CircuitOpenError:
                    tally.add("rejected")
                except BoomError:
                    pass
                except BaseException as exc:
                    tally.unexpected.append(exc)

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
            assert not thread.is_alive()
        check_invariants(breaker, tally)


class TestTasks:
    @pytest.mark.anyio
    @pytest.mark.timeout(30)
    async def test_tasks_share_one_breaker(self, anyio_backend: str) -> None:
        """1,000 tasks with slow, failing and cancelled calls leave every invariant intact."""
        clock = FakeClock()
        breaker = make_breaker(clock)
        tally = Tally()

        async def body(kind: str, ticket: int, scope: anyio.CancelScope) -> None:
            generation, leases = probe_generation(breaker, ticket)
            tally.probe_started(generation, leases)
            try:
                await anyio.lowlevel.checkpoint()
                if kind == "fail":
                    raise BoomError
                if kind == "slow":
                    tally.add("slow")
                    await clock.asleep(0.6)
                if kind == "cancel":
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()
            finally:
                tally.probe_ended(generation)

        async def worker(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(CALLS_PER_TASK):
                kind = rnd.choice(["ok", "ok", "ok", "fail", "fail", "slow", "cancel"])
                if rnd.random() < 0.02:
                    clock.advance(rnd.choice([0.3, 1.0]))  # manual time advance
                guard = breaker.guard()
                with anyio.CancelScope() as scope:
                    try:
                        async with guard:
                            tally.add("admitted")
                            await body(kind, guard._ticket, scope)
                    except CircuitOpenError:
                        tally.add("rejected")
                    except BoomError:
                        pass
                    except Exception as exc:
                        tally.unexpected.append(exc)
                if scope.cancelled_caught:
                    tally.add("cancelled")

        async with anyio.create_task_group() as tg:
            for seed in range(TASKS):
                tg.start_soon(worker, seed)
        check_invariants(breaker, tally)
