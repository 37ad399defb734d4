"""Many threads and many tasks share one breaker: its invariants hold under contention."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import pytest
from typing_extensions import Self

from seawall import (
    CircuitBreaker,
    CircuitBreakerStatistics,
    CircuitOpenError,
    CircuitState,
    CountWindow,
)
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


def make_breaker(clock: FakeClock, *, every_mode: bool = True) -> CircuitBreaker:
    """A breaker with every failure mode, or (*every_mode* false) the consecutive mode only.

    Only the second takes the lock-free success path: a window or a slow-call threshold
    sends every success through the lock.
    """
    if not every_mode:
        return CircuitBreaker(
            name="stress",
            max_failures=3,
            timeout=1.0,
            half_open_max=HALF_OPEN_MAX,
            probe_timeout=1e6,
            clock=clock,
        )
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


MODES = pytest.mark.parametrize("every_mode", [True, False], ids=["every-mode", "consecutive"])


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
    @MODES
    @pytest.mark.timeout(30)
    def test_threads_share_one_breaker(self, every_mode: bool) -> None:
        """32 threads calling with a mix of outcomes leave every invariant intact."""
        clock = FakeClock()
        breaker = make_breaker(clock, every_mode=every_mode)
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
    @MODES
    @pytest.mark.anyio
    @pytest.mark.timeout(30)
    async def test_tasks_share_one_breaker(self, anyio_backend: str, every_mode: bool) -> None:
        """1,000 tasks with slow, failing and cancelled calls leave every invariant intact."""
        clock = FakeClock()
        breaker = make_breaker(clock, every_mode=every_mode)
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


# -- the lock-free paths ---------------------------------------------------------------

WORKERS = 24
SNAPSHOTTERS = 8
CALLS_PER_WORKER = 1500


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Make threads swap the GIL every few bytecodes, so that lock-free reads interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _settled(stats: CircuitBreakerStatistics) -> int:
    return stats.successes + stats.failures + stats.cancelled + stats.ignored_outcomes


class Snapshots:
    """Threads taking statistics() over and over, checking each snapshot and each pair."""

    MONOTONIC = (
        "calls_admitted",
        "successes",
        "failures",
        "rejections",
        "ignored_outcomes",
        "cancelled",
        "trips",
        "generation",
    )

    def __init__(self, breaker: CircuitBreaker, max_in_flight: int) -> None:
        self.breaker = breaker
        self.max_in_flight = max_in_flight
        self.stop = threading.Event()
        self.taken = 0
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._watch) for _ in range(SNAPSHOTTERS)]

    def _watch(self) -> None:
        previous: CircuitBreakerStatistics | None = None
        taken = 0
        while not self.stop.is_set():
            stats = self.breaker.statistics()
            taken += 1
            problems = self.check(stats, previous)
            previous = stats
            if problems:
                with self._lock:
                    self.problems.extend(problems)
        with self._lock:
            self.taken += taken

    def check(
        self, stats: CircuitBreakerStatistics, previous: CircuitBreakerStatistics | None
    ) -> list[str]:
        found = []
        if stats.calls_admitted != _settled(stats) + stats.calls_in_flight:
            found.append(f"counts do not add up: {stats}")
        if not 0 <= stats.calls_in_flight <= self.max_in_flight:
            found.append(f"{stats.calls_in_flight} calls in flight: {stats}")
        if previous is not None:
            found.extend(
                f"{name} went back: {getattr(previous, name)} -> {getattr(stats, name)}"
                for name in self.MONOTONIC
                if getattr(stats, name) < getattr(previous, name)
            )
        return found

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)


def run_workers(count: int, worker: Callable[[int], Counter[str]]) -> Counter[str]:
    """Run *count* workers at once (each gets its seed) and add up what they saw."""
    results: list[Counter[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(seed: int) -> None:
        barrier.wait()
        try:
            results.append(worker(seed))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(seed,)) for seed in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    return sum(results, Counter())


def ok() -> int:
    return 1


def boom() -> int:
    raise BoomError


def fail_if(fails: bool) -> None:
    if fails:
        raise BoomError


class TestLockFreePaths:
    """The lock-free admission, success and rejection paths keep every count exact.

    Workers hammer one breaker with successes and failures through `call`, the
    decorator and `guard` while other threads take `statistics()` snapshots; every
    snapshot must add up, and no counter may ever go back.
    """

    @pytest.mark.timeout(60)
    @pytest.mark.usefixtures("frequent_switches")
    def test_counts_are_exact_without_transitions(self) -> None:
        """No trip: every success and failure lands in its own counter, none is lost."""
        breaker = CircuitBreaker(max_failures=None, clock=FakeClock())
        decorated_ok, decorated_boom = breaker(ok), breaker(boom)

        def worker(seed: int) -> Counter[str]:
            rnd = random.Random(seed)
            seen: Counter[str] = Counter()
            for _ in range(CALLS_PER_WORKER):
                fails = rnd.random() < 0.3
                how = rnd.randrange(3)
                try:
                    if how == 0:
                        breaker.call(boom if fails else ok)
                    elif how == 1:
                        (decorated_boom if fails else decorated_ok)()
                    else:
                        with breaker.guard():
                            fail_if(fails)
                except BoomError:
                    pass
                seen["failure" if fails else "success"] += 1
            return seen

        with Snapshots(breaker, WORKERS) as snapshots:
            seen = run_workers(WORKERS, worker)
        stats = breaker.statistics()
        assert snapshots.problems == []
        assert snapshots.taken > 100
        assert stats.calls_admitted == WORKERS * CALLS_PER_WORKER
        assert (stats.successes, stats.failures) == (seen["success"], seen["failure"])
        assert (stats.calls_in_flight, stats.ignored_outcomes, stats.cancelled) == (0, 0, 0)
        assert (stats.state, stats.generation) == (CircuitState.CLOSED, 1)

    @pytest.mark.timeout(60)
    @pytest.mark.usefixtures("frequent_switches")
    def test_counts_add_up_across_transitions(self) -> None:
        """Trips, resets, forced and timed-out opens while calls pass and fail lock-free."""
        clock = FakeClock()
        breaker = CircuitBreaker(
            max_failures=3, timeout=1.0, half_open_max=HALF_OPEN_MAX, clock=clock
        )
        decorated_ok, decorated_boom = breaker(ok), breaker(boom)
        commands = (breaker.trip, breaker.reset, breaker.force_open, breaker.disable)

        def worker(seed: int) -> Counter[str]:
            rnd = random.Random(seed)
            seen: Counter[str] = Counter()
            for _ in range(CALLS_PER_WORKER):
                if seed == 0 and rnd.random() < 0.05:
                    rnd.choice(commands)()  # one worker also steers the breaker
                if rnd.random() < 0.02:
                    clock.sleep(rnd.choice([0.3, 1.0]))
                fails = rnd.random() < 0.3
                try:
                    if rnd.random() < 0.5:
                        breaker.call(boom if fails else ok)
                    else:
                        (decorated_boom if fails else decorated_ok)()
                except CircuitOpenError as exc:
                    seen["rejected"] += 1
                    seen["timed" if exc.retry_after is not None else "untimed"] += 1
                    continue
                except BoomError:
                    pass
                seen["failure" if fails else "success"] += 1
            return seen

        with Snapshots(breaker, WORKERS) as snapshots:
            seen = run_workers(WORKERS, worker)
        breaker.reset()  # lift a final forced open: the last snapshot is then CLOSED
        stats = breaker.statistics()
        assert snapshots.problems == []
        assert snapshots.taken > 100
        assert stats.calls_admitted == seen["success"] + seen["failure"]
        assert stats.rejections == seen["rejected"]
        assert stats.calls_in_flight == stats.cancelled == 0
        assert _settled(stats) == stats.calls_admitted
        assert stats.successes <= seen["success"]
        assert stats.failures <= seen["failure"]
        assert stats.trips > 0
        assert seen["timed"] > 0
        assert seen["untimed"] > 0
