"""Many tasks and many threads share one rate limiter: the window invariant holds."""

from __future__ import annotations

import random
import threading

import anyio
import pytest

from seawall import RateLimitedError, RateLimiter
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
