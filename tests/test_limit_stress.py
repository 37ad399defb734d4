"""Many tasks and many threads share one rate limiter: the window invariant holds."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from seawall import AcquireWaited, KeyedRateLimiter, RateLimitedError, RateLimiter
from seawall.testing import FakeClock


RATE = 50.0
BURST = 10.0
TASKS = 1000
THREADS = 24
CALLS_PER_THREAD = 200
TOLERANCE = 1e-6


def worst_window_excess(grants: list[tuple[float, float]], rate: float, burst: float) -> float:
    """Return max over windows [t_i, t_j] of granted - (burst + rate * (t_j - t_i)).

    Grants are (time, cost) pairs. For a fixed end j the worst start i maximises
    ``rate * t_i - tokens before i``, so one pass with a running maximum is exact.
    """
    grants = sorted(grants)
    worst = -float("inf")
    best_start = -float("inf")
    total = 0.0
    for time, cost in grants:
        best_start = max(best_start, rate * time - total)
        total += cost
        worst = max(worst, total - rate * time + best_start - burst)
    return worst


class TestWindowCheck:
    """The checker itself catches a violation."""

    def test_detects_excess(self) -> None:
        """Too many grants in a short window are reported as a positive excess."""
        assert worst_window_excess([(0.0, 1.0)] * 3, rate=1.0, burst=2.0) == 1.0
        assert worst_window_excess([(0.0, 2.0), (1.0, 1.0)], rate=1.0, burst=2.0) == 0.0


class TestTasks:
    """1,000 tasks contend for one bucket under the FakeClock."""

    @pytest.mark.anyio
    @pytest.mark.timeout(60)
    async def test_tasks_share_one_bucket(self, anyio_backend: str) -> None:
        """Grant times recorded by 1,000 tasks satisfy the window invariant."""
        clock = FakeClock()
        limiter = RateLimiter(RATE, BURST, clock=clock)
        grants: list[tuple[float, float]] = []
        rejected = 0
        cancelled = 0

        async def worker(seed: int) -> None:
            nonlocal rejected, cancelled
            rnd = random.Random(seed)
            cost = rnd.choice([1, 1, 1, 2, 0.5, 5])
            kind = rnd.random()
            if kind < 0.1:
                with anyio.move_on_after(0):  # cancelled at its first checkpoint
                    await limiter.aacquire(cost)
                    grants.append((clock.now(), cost))
                    return
                cancelled += 1
            elif kind < 0.2:
                try:
                    await limiter.aacquire(cost, max_wait=rnd.choice([0.0, 1.0]))
                except RateLimitedError:
                    rejected += 1
                    return
                grants.append((clock.now(), cost))
            else:
                await limiter.aacquire(cost)
                grants.append((clock.now(), cost))

        async with anyio.create_task_group() as tg:
            for seed in range(TASKS):
                tg.start_soon(worker, seed)

        stats = limiter.statistics()
        assert stats.waiting == 0
        assert stats.grants == len(grants)
        assert stats.tokens_granted == pytest.approx(sum(c for _, c in grants))
        assert stats.rejections == rejected
        assert stats.cancelled <= cancelled
        assert stats.grants + stats.rejections + cancelled >= TASKS
        assert len(grants) > TASKS // 2
        assert stats.waits > TASKS // 2
        assert clock.now() > sum(c for _, c in grants) / RATE / 2  # the run took virtual time
        assert worst_window_excess(grants, RATE, BURST) <= TOLERANCE


class TestThreads:
    """Real threads share one limiter and one FakeClock."""

    @pytest.mark.timeout(60)
    def test_threads_share_one_bucket(self) -> None:
        """24 threads doing try_acquire and acquire: every count adds up."""
        clock = FakeClock()
        limiter = RateLimiter(RATE, BURST, clock=clock)
        barrier = threading.Barrier(THREADS)
        lock = threading.Lock()
        taken: list[float] = []
        refused = 0
        rejected = 0
        errors: list[BaseException] = []

        def worker(seed: int) -> None:
            nonlocal refused, rejected
            rnd = random.Random(seed)
            barrier.wait()
            try:
                for _ in range(CALLS_PER_THREAD):
                    cost = rnd.choice([1, 2, 0.5])
                    op = rnd.random()
                    if op < 0.5:
                        if limiter.try_acquire(cost):
                            with lock:
                                taken.append(cost)
                        else:
                            with lock:
                                refused += 1
                    else:
                        try:
                            limiter.acquire(cost, max_wait=None if op < 0.9 else 0.05)
                        except RateLimitedError:
                            with lock:
                                rejected += 1
                        else:
                            with lock:
                                taken.append(cost)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=50)
            assert not thread.is_alive()
        assert errors == []
        stats = limiter.statistics()
        assert stats.grants == len(taken)
        assert stats.tokens_granted == pytest.approx(sum(taken))
        assert stats.rejections == refused + rejected
        assert stats.grants + stats.rejections == THREADS * CALLS_PER_THREAD
        assert stats.waiting == 0
        # The whole run is one window: [0, now].
        assert sum(taken) <= BURST + RATE * clock.now() + TOLERANCE


class GrantClock:
    """A FakeClock that remembers, per thread, the first time read since `begin`.

    Every limiter form reads the clock once to decide, under its lock, before any
    other read: that first read is the time of the decision.
    """

    def __init__(self) -> None:
        self.inner = FakeClock()
        self.local = threading.local()

    def begin(self) -> None:
        self.local.first = None

    def first_read(self) -> float:
        first = self.local.first
        assert first is not None
        return float(first)

    def now(self) -> float:
        now = self.inner.now()
        if getattr(self.local, "first", 0.0) is None:
            self.local.first = now
        return now

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await self.inner.asleep(seconds)


class WaitLog:
    """A hook keeping, per thread, the wait of the last grant that waited."""

    wants_call_events = False  # so that grants made at once are not reported

    def __init__(self) -> None:
        self.local = threading.local()

    def begin(self) -> None:
        self.local.wait = None

    def waited(self) -> float | None:
        wait: float | None = self.local.wait
        return wait

    def __call__(self, event: object) -> None:
        if isinstance(event, AcquireWaited):
            self.local.wait = event.wait


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, so that they interleave inside the fast paths."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


class TestFastPathsUnderThreads:
    """Threads mixing every form: exact grant times satisfy the window invariant."""

    @pytest.mark.timeout(120)
    @pytest.mark.usefixtures("fast_switching")
    def test_every_form_one_bucket(self) -> None:
        """try_acquire, acquire, the decorator and `with`, default and other costs."""
        clock = GrantClock()
        hook = WaitLog()
        limiter = RateLimiter(RATE, BURST, clock=clock, hooks=(hook,))

        @limiter
        def work() -> None:
            pass

        results = self._run(clock, hook, limiter, work=work)
        grants, refused, rejected, waited = results[None]
        stats = limiter.statistics()
        assert stats.grants == len(grants)
        assert stats.tokens_granted == pytest.approx(sum(c for _, c in grants))
        assert stats.rejections == refused + rejected
        assert stats.grants + stats.rejections == THREADS * CALLS_PER_THREAD
        assert stats.waits == waited
        assert stats.waiting == 0
        assert waited > 0
        assert refused > 0
        assert worst_window_excess(grants, RATE, BURST) <= TOLERANCE

    @pytest.mark.timeout(120)
    @pytest.mark.usefixtures("fast_switching")
    def test_every_form_keyed(self) -> None:
        """The keyed limiter's fast paths, three keys: the invariant holds per key."""
        clock = GrantClock()
        hook = WaitLog()
        limiter = KeyedRateLimiter(RATE, BURST, clock=clock, hooks=(hook,))
        results = self._run(clock, hook, limiter, keys=("a", "b", "c"))
        stats = limiter.statistics()
        all_grants = [g for grants, *_ in results.values() for g in grants]
        assert stats.grants == len(all_grants)
        assert stats.tokens_granted == pytest.approx(sum(c for _, c in all_grants))
        assert stats.rejections == sum(r[1] + r[2] for r in results.values())
        assert stats.grants + stats.rejections == THREADS * CALLS_PER_THREAD
        assert stats.waiting == 0
        for grants, *_ in results.values():
            assert worst_window_excess(grants, RATE, BURST) <= TOLERANCE

    @staticmethod
    def _run(
        clock: GrantClock,
        hook: WaitLog,
        limiter: Any,
        *,
        keys: tuple[str, ...] | None = None,
        work: Any = None,
    ) -> dict[str | None, tuple[list[tuple[float, float]], int, int, int]]:
        """Run THREADS threads of CALLS_PER_THREAD random calls; per key: the outcomes."""
        barrier = threading.Barrier(THREADS)
        lock = threading.Lock()
        grants: dict[str | None, list[tuple[float, float]]] = {}
        counts: dict[str | None, list[int]] = {}
        for key in keys or (None,):
            grants[key] = []
            counts[key] = [0, 0, 0]  # refused, rejected, waited
        errors: list[BaseException] = []

        def call(rnd: random.Random) -> tuple[str | None, float, bool | None]:
            # Returns (key, cost, granted); granted None means rejected by max_wait.
            key = rnd.choice(keys) if keys else None
            args = () if key is None else (key,)
            cost: float = rnd.choice([1, 1, 1, 2, 0.5])
            op = rnd.random()
            if op < 0.4:
                if cost == 1:
                    return key, 1, limiter.try_acquire(*args)
                return key, cost, limiter.try_acquire(*args, cost)
            if op < 0.7 or keys:
                try:
                    if cost == 1 and op < 0.55:
                        limiter.acquire(*args)
                    else:
                        limiter.acquire(*args, cost, max_wait=rnd.choice([None, 0.0, 0.05]))
                except RateLimitedError:
                    return key, cost, None
                return key, cost, True
            if op < 0.85:
                work()
            else:
                with limiter:
                    pass
            return key, 1, True

        def worker(seed: int) -> None:
            rnd = random.Random(seed)
            barrier.wait()
            try:
                for _ in range(CALLS_PER_THREAD):
                    clock.begin()
                    hook.begin()
                    key, cost, granted = call(rnd)
                    with lock:
                        if granted is None:
                            counts[key][1] += 1
                        elif not granted:
                            counts[key][0] += 1
                        else:
                            wait = hook.waited()
                            counts[key][2] += wait is not None
                            grants[key].append((clock.first_read() + (wait or 0.0), cost))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=100)
            assert not thread.is_alive()
        assert errors == []
        return {key: (grants[key], *counts[key]) for key in grants}  # type: ignore[misc]
