"""Many threads and tasks sharing one Retrier and one RetryBudget, on virtual time."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import Retrier, RetryBudget
from seawall.testing import FakeClock


MAX_ATTEMPTS = 4
THREADS = 32
CALLS_PER_THREAD = 200
TASKS = 1000
FAILURE_RATE = 0.3


def check_invariants(retrier: Retrier, budget: RetryBudget, per_call: list[int]) -> None:
    """Attempts per call, statistics and budget agree with what the user functions saw."""
    stats = retrier.statistics()
    budget_stats = budget.statistics()
    assert max(per_call) <= MAX_ATTEMPTS
    assert min(per_call) >= 1
    assert stats.calls == len(per_call)
    assert stats.attempts == sum(per_call)
    assert stats.successes + stats.gave_up == stats.calls
    assert stats.retries == stats.attempts - stats.calls
    # Every failure here is retryable, so each failed attempt reached the budget.
    assert budget_stats.failures == stats.attempts - stats.successes
    assert budget_stats.successes == stats.successes
    assert 0.0 <= budget_stats.tokens <= budget_stats.max_tokens
    assert stats.gave_up_not_retryable == 0


class TestStress:
    """Shared instances under contention."""

    def test_threads(self) -> None:
        """32 real threads hammer one retrier; the counters add up afterwards."""
        clock = FakeClock()
        budget = RetryBudget(max_tokens=50, token_ratio=0.5)
        retrier = Retrier(
            max_attempts=MAX_ATTEMPTS,
            initial_delay=0.01,
            budget=budget,
            rng=random.Random(1).random,
            clock=clock,
        )
        per_call: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(THREADS)
        failures: list[BaseException] = []

        def one_call(rnd: random.Random) -> None:
            seen = 0

            def flaky() -> int:
                nonlocal seen
                seen += 1
                if rnd.random() < FAILURE_RATE:
                    raise TimeoutError
                return seen

            with contextlib.suppress(TimeoutError):
                assert retrier.call(flaky) == seen
            with lock:
                per_call.append(seen)

        def worker(seed: int) -> None:
            rnd = random.Random(seed)
            barrier.wait()
            try:
                for _ in range(CALLS_PER_THREAD):
                    one_call(rnd)
            except BaseException as exc:  # Reported to the main thread below.
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        assert len(per_call) == THREADS * CALLS_PER_THREAD
        check_invariants(retrier, budget, per_call)
        assert retrier.statistics().retries > 0

    @pytest.mark.anyio
    async def test_tasks(self, anyio_backend: str) -> None:
        """1,000 tasks share one retrier and budget; the counters add up afterwards."""
        clock = FakeClock()
        budget = RetryBudget(max_tokens=100, token_ratio=0.5)
        retrier = Retrier(
            max_attempts=MAX_ATTEMPTS,
            initial_delay=0.01,
            budget=budget,
            rng=random.Random(2).random,
            clock=clock,
        )
        rnd = random.Random(3)
        per_call: list[int] = []

        async def one_call() -> None:
            seen = 0

            async def flaky() -> int:
                nonlocal seen
                seen += 1
                await anyio.lowlevel.checkpoint()
                if rnd.random() < FAILURE_RATE:
                    raise TimeoutError
                return seen

            with contextlib.suppress(TimeoutError):
                assert await retrier.acall(flaky) == seen
            per_call.append(seen)

        async with anyio.create_task_group() as tg:
            for _ in range(TASKS):
                tg.start_soon(one_call)
        assert len(per_call) == TASKS
        check_invariants(retrier, budget, per_call)
        assert retrier.statistics().retries > 0

    def test_threads_and_tasks_share_one_retrier(self) -> None:
        """Sync threads and an event loop use the same instance at the same time."""
        clock = FakeClock()
        budget = RetryBudget(max_tokens=1000, token_ratio=1)
        retrier = Retrier(max_attempts=MAX_ATTEMPTS, initial_delay=0, budget=budget, clock=clock)
        per_call: list[int] = []
        lock = threading.Lock()

        def make_flaky(rnd: random.Random) -> tuple[list[int], Callable[[], None]]:
            seen = [0]

            def flaky() -> None:
                seen[0] += 1
                if rnd.random() < FAILURE_RATE:
                    raise TimeoutError

            return seen, flaky

        def sync_worker(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(100):
                seen, flaky = make_flaky(rnd)
                with contextlib.suppress(TimeoutError):
                    retrier.call(flaky)
                with lock:
                    per_call.append(seen[0])

        async def async_side() -> None:
            rnd = random.Random(99)

            async def one() -> None:
                seen = 0

                async def flaky() -> None:
                    nonlocal seen
                    seen += 1
                    await anyio.lowlevel.checkpoint()
                    if rnd.random() < FAILURE_RATE:
                        raise TimeoutError

                with contextlib.suppress(TimeoutError):
                    await retrier.acall(flaky)
                with lock:
                    per_call.append(seen)

            async with anyio.create_task_group() as tg:
                for _ in range(300):
                    tg.start_soon(one)

        threads = [threading.Thread(target=sync_worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        anyio.run(async_side)
        for thread in threads:
            thread.join(timeout=30)
        assert len(per_call) == 8 * 100 + 300
        check_invariants(retrier, budget, per_call)
        assert isinstance(retrier.statistics(), seawall.RetrierStatistics)
