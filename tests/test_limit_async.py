"""The rate limiter's async shell on asyncio and trio: aacquire, the decorator, `async with`."""

from __future__ import annotations

import inspect
import logging
import math
import random
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import (
    AcquireCancelled,
    AcquireWaited,
    RateLimited,
    RateLimitedError,
    RateLimiter,
    RateLimiterStatistics,
)
from seawall._limit._bucket import BucketCore, Rejection, Reservation
from seawall.testing import FakeClock, RecordingHook


pytestmark = pytest.mark.anyio


def make(clock: FakeClock, rate: float = 2.0, burst: float = 4.0, **kwargs: Any) -> RateLimiter:
    kwargs.setdefault("name", "api")
    return RateLimiter(rate, burst, clock=clock, **kwargs)


async def until_waiting(limiter: RateLimiter, n: int) -> None:
    """Let other tasks run until *n* of them wait on *limiter*."""
    for _ in range(1000):
        if limiter.statistics().waiting == n:
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("waiters never queued")


class TestTryAcquire:
    """try_acquire never blocks, from async code too."""

    async def test_burst_then_refused(self, clock: FakeClock) -> None:
        """The bucket starts full: burst grants, then False, without sleeping."""
        limiter = make(clock)
        assert [limiter.try_acquire() for _ in range(5)] == [True] * 4 + [False]
        assert clock.sleeps == []


class TestAcquire:
    """aacquire waits with the clock's asleep, for exactly the wait needed."""

    async def test_no_wait_when_available(self, clock: FakeClock) -> None:
        """Tokens available: no sleep and no checkpoint needed."""
        limiter = make(clock)
        await limiter.aacquire(3)
        assert clock.sleeps == []

    async def test_waits_for_refill(self, clock: FakeClock) -> None:
        """Sleeps recorded equal the expected waits."""
        limiter = make(clock)
        await limiter.aacquire(4)
        await limiter.aacquire(1)
        await limiter.aacquire(2)
        assert clock.sleeps == pytest.approx([0.5, 1.0])
        assert clock.now() == pytest.approx(1.5)

    async def test_fifo_large_cost_first(self, clock: FakeClock) -> None:
        """A big cost queued before small ones is served first."""
        limiter = make(clock, rate=1.0, burst=4.0)
        await limiter.aacquire(4)
        order: list[tuple[str, float]] = []

        async def take(label: str, cost: float) -> None:
            await limiter.aacquire(cost)
            order.append((label, clock.now()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(take, "big", 4)
            await until_waiting(limiter, 1)
            for i in range(3):
                tg.start_soon(take, f"small{i}", 1)
                await until_waiting(limiter, 2 + i)  # trio starts tasks in any order
        assert order == [("big", 4.0), ("small0", 5.0), ("small1", 6.0), ("small2", 7.0)]


class TestMaxWait:
    """max_wait turns a long wait into RateLimitedError, taking nothing."""

    async def test_rejects_with_retry_after(self, clock: FakeClock) -> None:
        """The error names the limiter and carries the wait needed."""
        limiter = make(clock)
        await limiter.aacquire(4)
        with pytest.raises(RateLimitedError) as info:
            await limiter.aacquire(2, max_wait=0.5)
        assert info.value.primitive_name == "api"
        assert info.value.retry_after == pytest.approx(1.0)
        assert clock.sleeps == []

    async def test_within_max_wait_waits(self, clock: FakeClock) -> None:
        """A wait within max_wait is taken."""
        limiter = make(clock)
        await limiter.aacquire(4)
        await limiter.aacquire(1, max_wait=0.5)
        assert clock.sleeps == pytest.approx([0.5])


class TestCost:
    """Costs are ints or floats in (0, burst]."""

    @pytest.mark.parametrize("cost", [5, 0, -1, math.nan])
    async def test_out_of_range(self, clock: FakeClock, cost: float) -> None:
        """A cost above burst (or <= 0) is an immediate ValueError naming cost."""
        with pytest.raises(ValueError, match="cost"):
            await make(clock).aacquire(cost)
        assert clock.sleeps == []


class TestCancel:
    """A cancelled waiter gives its reservation back."""

    async def test_cancel_during_acquire(self) -> None:
        """Cancelling the waiting task restores its tokens and leaves no waiter."""
        clock = FakeClock(autojump=False)
        hook = RecordingHook()
        limiter = RateLimiter(1.0, 2.0, clock=clock, hooks=(hook,))
        await limiter.aacquire(2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(limiter.aacquire, 2)
            await until_waiting(limiter, 1)
            assert limiter.statistics().tokens_available == -2.0
            tg.cancel_scope.cancel()
        stats = limiter.statistics()
        assert (stats.cancelled, stats.waiting, stats.grants) == (1, 0, 1)
        assert stats.tokens_available == 0.0
        assert hook.of_type(AcquireCancelled) == [AcquireCancelled("rate-limiter", 2, 2.0)]
        clock.advance(1.0)
        assert limiter.try_acquire(1)

    async def test_cancel_middle_keeps_order(self) -> None:
        """Cancelling a waiter in the middle keeps the later waiter's ready time."""
        clock = FakeClock(autojump=False)
        limiter = RateLimiter(1.0, 4.0, clock=clock)
        await limiter.aacquire(4)
        done: list[float] = []

        async def take(cost: float) -> None:
            await limiter.aacquire(cost)
            done.append(clock.now())

        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as inner:
                inner.start_soon(take, 3)
                await until_waiting(limiter, 1)
                outer.start_soon(take, 1)
                await until_waiting(limiter, 2)
                inner.cancel_scope.cancel()
            # 3 - rate * (4 - 3) = 2 tokens came back, but the later waiter keeps t=4.
            assert limiter.statistics().tokens_restored == 2.0
            for _ in range(4):
                clock.advance(1.0)
                await anyio.lowlevel.checkpoint()
        assert done == [4.0]


class TestDecorator:
    """@limiter on a coroutine function takes one token before each call."""

    async def test_coroutine_function(self, clock: FakeClock) -> None:
        """Each call takes a token, waiting when needed; the result passes through."""
        limiter = make(clock, rate=1.0, burst=1.0)

        @limiter
        async def double(x: int) -> int:
            return 2 * x

        assert [await double(i) for i in range(3)] == [0, 2, 4]
        assert clock.sleeps == pytest.approx([1.0, 1.0])


class TestContextManager:
    """`async with limiter:` takes one token and releases nothing."""

    async def test_async_with(self, clock: FakeClock) -> None:
        """Entering takes a token, waiting when needed."""
        limiter = make(clock, rate=1.0, burst=1.0)
        async with limiter:
            pass
        async with limiter:
            pass
        assert clock.sleeps == pytest.approx([1.0])


class TestHooks:
    """Events reach the hooks, outside the lock."""

    async def test_events(self, clock: FakeClock) -> None:
        """RateLimited on refusal, AcquireWaited on every grant (wait 0.0 when at once)."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        await limiter.aacquire(4)
        with pytest.raises(RateLimitedError):
            await limiter.aacquire(2, max_wait=0.1)
        await limiter.aacquire(1)
        assert hook.events == [
            AcquireWaited("api", 4, 0.0),
            RateLimited("api", 2, 1.0),
            AcquireWaited("api", 1, 0.5),
        ]


class TestStatistics:
    """statistics() from async code."""

    async def test_statistics(self, clock: FakeClock) -> None:
        """Counters add up over grants, waits and rejections."""
        limiter = make(clock)
        await limiter.aacquire(4)
        limiter.try_acquire()
        await limiter.aacquire(1)
        stats = limiter.statistics()
        assert isinstance(stats, RateLimiterStatistics)
        assert (stats.grants, stats.rejections, stats.waits, stats.total_wait) == (2, 1, 1, 0.5)


class TestRepr:
    """The repr shows the state while tasks wait."""

    async def test_repr(self) -> None:
        """Waiting tasks and debt show in the repr."""
        clock = FakeClock(autojump=False)
        limiter = make(clock, rate=1.0, burst=1.0)
        await limiter.aacquire()
        async with anyio.create_task_group() as tg:
            tg.start_soon(limiter.aacquire)
            await until_waiting(limiter, 1)
            assert repr(limiter) == (
                "RateLimiter(name='api', rate=1, burst=1, available=-1, waiting=1)"
            )
            clock.advance(1.0)


class TestValidation:
    """Invalid parameters name the parameter."""

    async def test_invalid_max_wait(self, clock: FakeClock) -> None:
        """max_wait must be >= 0 seconds."""
        with pytest.raises(ValueError, match="max_wait"):
            await make(clock).aacquire(1, max_wait=-0.5)


class TestInstantiate:
    """Creating a limiter binds to nothing."""

    async def test_instantiate_outside_event_loop(self) -> None:
        """A limiter built outside any loop works on asyncio and on trio."""
        assert await anyio.to_thread.run_sync(lambda: 1) == 1
        await MODULE_LIMITER.aacquire()
        assert MODULE_LIMITER.try_acquire()


MODULE_LIMITER = RateLimiter(rate=1e6, burst=1e6, name="module")


class TestAsyncCallableObjects:
    async def test_decorated_async_callable_instance_waits_without_blocking(
        self, clock: FakeClock
    ) -> None:
        """An instance with `async def __call__` acquires with asleep, not a sync sleep."""

        class Work:
            async def __call__(self) -> str:
                return "done"

        limiter = seawall.RateLimiter(rate=1, burst=1, clock=clock)
        limited = limiter(Work())
        assert inspect.iscoroutinefunction(limited)
        assert await limited() == "done"
        assert await limited() == "done"
        assert clock.sleeps == [1.0]


class NoSleepClock:
    """A FakeClock that fails the test if anything sleeps on it, sync or async."""

    def __init__(self) -> None:
        self.inner = FakeClock()

    def now(self) -> float:
        return self.inner.now()

    def sleep(self, seconds: float) -> None:
        raise AssertionError(f"slept {seconds!r} s on the zero-wait path")

    async def asleep(self, seconds: float) -> None:
        raise AssertionError(f"slept {seconds!r} s on the zero-wait path")


class TestZeroWaitPath:
    """With tokens available: no sleep, no thread, no log record; not a checkpoint."""

    async def test_nothing_but_the_grant(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """aacquire, the decorator and `async with`, on the plain and the keyed limiter."""
        clock = NoSleepClock()
        limiter = RateLimiter(1.0, 100.0, clock=clock)
        keyed = seawall.KeyedRateLimiter(1.0, 100.0, clock=clock)

        @limiter
        async def work() -> int:
            return 1

        def no_thread(self: threading.Thread) -> None:
            raise AssertionError(f"thread {self.name!r} started on the zero-wait path")

        monkeypatch.setattr(threading.Thread, "start", no_thread)
        records: list[logging.LogRecord] = []
        factory = logging.getLogRecordFactory()

        def recording_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            records.append(record)
            return record

        logging.setLogRecordFactory(recording_factory)
        try:
            await limiter.aacquire()
            await limiter.aacquire(2.5)
            await limiter.aacquire(1.0, max_wait=0)
            assert await work() == 1
            async with limiter:
                pass
            await keyed.aacquire("a")
            await keyed.aacquire("b", 2, max_wait=0)
        finally:
            logging.setLogRecordFactory(factory)
        assert records == []
        stats = limiter.statistics()
        assert (stats.grants, stats.tokens_granted, stats.waits) == (5, 6.5, 0)
        assert keyed.statistics().tokens_granted == 3

    async def test_not_a_checkpoint_when_tokens_are_there(self, clock: FakeClock) -> None:
        """Like aiolimiter, a grant made at once does not yield, so no cancellation lands."""
        limiter = make(clock)
        taken = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await limiter.aacquire()
            taken = True
        assert taken
        assert limiter.statistics().grants == 1

    async def test_a_newcomer_queues_behind_a_waiter(self) -> None:
        """Tokens back from a refund do not let a newcomer's aacquire skip the queue."""
        clock = FakeClock(autojump=False)
        limiter = RateLimiter(1.0, 4.0, clock=clock)
        await limiter.aacquire(4)
        done: list[tuple[str, float]] = []

        async def take(cost: float, tag: str) -> None:
            await limiter.aacquire(cost)
            done.append((tag, clock.now()))

        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as inner:
                inner.start_soon(take, 3, "cancelled")  # ready at t=3
                await until_waiting(limiter, 1)
                outer.start_soon(take, 1, "waiter")  # ready at t=4
                await until_waiting(limiter, 2)
                inner.cancel_scope.cancel()  # 2 tokens back; the waiter keeps t=4
            clock.advance(3.0)
            # One token is back by the bucket's level, yet the waiter comes first.
            assert limiter.statistics().tokens_available == 1.0
            outer.start_soon(take, 1, "newcomer")
            await until_waiting(limiter, 2)
            clock.advance(1.0)
        assert sorted(done) == [("newcomer", 4.0), ("waiter", 4.0)]


class TestFastPathIsTheCore:
    """The async forms decide as `BucketCore` does, leaving the same float state."""

    @pytest.mark.parametrize("rate", [1.0, 3.0, 0.7])
    async def test_matches_the_core_bit_for_bit(self, rate: float) -> None:
        """aacquire, the decorator and `async with`, over a random run of 300 calls."""
        rnd = random.Random(rate)
        clock = FakeClock()
        limiter = RateLimiter(rate, 2.0, clock=clock)
        ref = BucketCore(rate, 2.0)

        @limiter
        async def work() -> None:
            pass

        for _ in range(300):
            op = rnd.choice(["aacquire", "aacquire_no_wait", "decorated", "async_with"])
            cost = rnd.choice([1, 1.0, 0.5, 2, 0.3]) if op.startswith("aacquire") else 1
            clock.advance(rnd.choice([0.0, 0.1, 1 / 3, 0.5, 2.0]))
            now = clock.now()
            if op == "aacquire_no_wait":
                decision = ref.reserve(now, cost, 0.0)
                if isinstance(decision, Rejection):
                    with pytest.raises(RateLimitedError):
                        await limiter.aacquire(cost, max_wait=0)
                else:
                    await limiter.aacquire(cost, max_wait=0)
            else:
                decision = ref.reserve(now, cost, None)
                if op == "aacquire":
                    await limiter.aacquire(cost)
                elif op == "decorated":
                    await work()
                else:
                    async with limiter:
                        pass
                if decision is None:
                    assert clock.now() == now
                else:
                    assert isinstance(decision, Reservation)
                    assert clock.now() >= decision.ready_at - ref.slack
                    ref.complete(decision)
            assert limiter._core.full_at == ref.full_at
            assert limiter._core.tail == ref.tail
        assert limiter.statistics().waiting == 0
