"""The keyed rate limiter: independent buckets per key, in bounded memory."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import (
    AcquireWaited,
    KeyedRateLimiter,
    KeyedRateLimiterStatistics,
    RateLimited,
    RateLimitedError,
)
from seawall._limit import _keyed
from seawall._limit._bucket import BucketCore, Rejection, Reservation
from seawall.testing import FakeClock, RecordingHook


def make(clock: FakeClock, **kwargs: object) -> KeyedRateLimiter:
    return KeyedRateLimiter(1.0, 2.0, clock=clock, name="tenants", **kwargs)  # type: ignore[arg-type]


class TestKeys:
    """Each key has its own bucket."""

    def test_keys_are_independent(self, clock: FakeClock) -> None:
        """Draining one key leaves the others full."""
        limiter = make(clock)
        assert limiter.try_acquire("a", 2)
        assert not limiter.try_acquire("a")
        assert limiter.try_acquire("b", 2)
        assert limiter.available("a") == 0.0
        assert limiter.available("c") == 2.0

    def test_acquire_waits_per_key(self, clock: FakeClock) -> None:
        """A blocking acquire waits for its own key's refill only."""
        limiter = make(clock)
        limiter.acquire("a", 2)
        limiter.acquire("a", 1)
        limiter.acquire("b", 2)
        assert clock.sleeps == pytest.approx([1.0])

    def test_max_wait(self, clock: FakeClock) -> None:
        """max_wait rejects with the key in the message and retry_after."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        limiter.acquire("a", 2)
        with pytest.raises(RateLimitedError, match="'a'") as info:
            limiter.acquire("a", 2, max_wait=1)
        assert info.value.retry_after == pytest.approx(2.0)
        assert hook.events == [
            AcquireWaited("tenants", 2, 0.0, "a"),
            RateLimited("tenants", 2, 2.0, "a"),
        ]

    def test_cost_above_burst(self, clock: FakeClock) -> None:
        """A cost above burst is a ValueError naming cost."""
        with pytest.raises(ValueError, match="cost"):
            make(clock).try_acquire("a", 3)

    @pytest.mark.anyio
    async def test_aacquire(self, clock: FakeClock) -> None:
        """The async acquire waits with asleep and reports the key."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        await limiter.aacquire("a", 2)
        await limiter.aacquire("a", 1)
        assert clock.sleeps == pytest.approx([1.0])
        assert hook.events == [
            AcquireWaited("tenants", 2, 0.0, "a"),
            AcquireWaited("tenants", 1, 1.0, "a"),
        ]

    @pytest.mark.anyio
    async def test_cancel_during_acquire(self) -> None:
        """A cancelled keyed waiter gives its reservation back."""
        clock = FakeClock(autojump=False)
        limiter = make(clock)
        await limiter.aacquire("a", 2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(limiter.aacquire, "a", 2)
            for _ in range(100):
                if limiter.statistics().waiting:
                    break
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        stats = limiter.statistics()
        assert (stats.cancelled, stats.waiting, stats.tokens_restored) == (1, 0, 2.0)
        assert limiter.available("a") == 0.0


class TestDropping:
    """Idle, refilled buckets are dropped; busy ones are kept."""

    def test_refilled_buckets_are_dropped(self, clock: FakeClock) -> None:
        """len() shrinks once time has refilled the buckets."""
        limiter = make(clock)
        for i in range(10):
            limiter.try_acquire(i, 2)
        assert len(limiter) == 10
        clock.advance(1.0)  # one token back each: not full yet
        limiter.try_acquire("x")
        assert len(limiter) == 11
        clock.advance(1.0)  # full again
        for _ in range(6):
            limiter.try_acquire("x")
        assert len(limiter) == 1
        assert limiter.statistics().keys_dropped == 10

    def test_busy_buckets_are_kept(self, clock: FakeClock) -> None:
        """A bucket in debt or with a waiter is never dropped."""
        limiter = make(clock)
        limiter.try_acquire("busy", 2)
        clock.advance(0.5)
        for i in range(5):
            limiter.try_acquire(i)
        assert "busy" in limiter._buckets

    def test_sweep_past_high_water(self, clock: FakeClock) -> None:
        """Growing past the high-water mark sweeps every idle bucket at once."""
        limiter = make(clock)
        limiter._sweep_at = 8
        limiter.try_acquire("busy", 2)
        for i in range(7):
            limiter.try_acquire(i, 0.001)
        clock.advance(0.01)  # the small takes have refilled, "busy" has not
        limiter.try_acquire("new")
        assert set(limiter._buckets) == {"busy", "new"}
        assert limiter._sweep_at == _keyed.MIN_SWEEP_SIZE

    def test_million_keys_bounded(self, clock: FakeClock) -> None:
        """Many distinct keys with time passing keep only the busy ones in memory."""
        limiter = KeyedRateLimiter(100.0, 10.0, clock=clock)
        peak = 0
        for i in range(50_000):
            limiter.try_acquire(i)
            clock.advance(0.001)
            peak = max(peak, len(limiter))
        assert peak <= 50  # a bucket refills in 10 ms = 10 operations


class TestMaxKeys:
    """max_keys bounds memory even when every bucket is busy."""

    def test_evicts_least_recently_used(self, clock: FakeClock) -> None:
        """Past max_keys the least recently used bucket goes, and is counted."""
        limiter = make(clock, max_keys=2)
        limiter.try_acquire("a", 2)
        limiter.try_acquire("b", 2)
        limiter.try_acquire("a")  # refused, but "a" is now the most recently used
        limiter.try_acquire("c", 2)
        assert list(limiter._buckets) == ["a", "c"]
        stats = limiter.statistics()
        assert (stats.keys, stats.keys_evicted, stats.max_keys) == (2, 1, 2)
        # The evicted key starts afresh: the documented over-admission.
        assert limiter.try_acquire("b", 2)

    def test_idle_lru_is_a_drop(self, clock: FakeClock) -> None:
        """An idle least recently used bucket is dropped, not counted as evicted."""
        limiter = make(clock, max_keys=1)
        limiter.try_acquire("a", 1)
        clock.advance(5)
        limiter.try_acquire("b", 1)
        assert limiter.statistics().keys_evicted == 0

    def test_invalid_max_keys(self, clock: FakeClock) -> None:
        """max_keys must be an int >= 1."""
        with pytest.raises(ValueError, match="max_keys"):
            make(clock, max_keys=0)
        with pytest.raises(TypeError, match="max_keys"):
            make(clock, max_keys=1.5)


class TestStatistics:
    """statistics(), len() and repr."""

    def test_statistics_and_repr(self, clock: FakeClock) -> None:
        """Counters add up over every key."""
        limiter = make(clock)
        limiter.try_acquire("a", 2)
        limiter.try_acquire("a")
        limiter.acquire("b")
        stats = limiter.statistics()
        assert isinstance(stats, KeyedRateLimiterStatistics)
        assert (stats.keys, stats.grants, stats.tokens_granted, stats.rejections) == (2, 2, 3, 1)
        assert len(limiter) == 2
        assert repr(limiter) == (
            "KeyedRateLimiter(name='tenants', rate=1, burst=2, keys=2, max_keys=None, waiting=0)"
        )

    def test_instantiate_outside_event_loop(self) -> None:
        """A keyed limiter with the system clock works without any event loop."""
        limiter = KeyedRateLimiter(rate=100, burst=5)
        assert limiter.try_acquire(("tenant", 1))
        assert limiter.max_keys is None


OPS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["try", "reserve", "reserve_wait"]),
        st.sampled_from([0.5, 1, 2]),
        st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0]),
    ),
    max_size=60,
)


class TestDroppingIsExact:
    """Dropping refilled buckets never changes a decision."""

    @settings(max_examples=200, deadline=None)
    @given(ops=OPS)
    def test_matches_never_dropping_model(self, ops: list[tuple[str, str, float, float]]) -> None:
        """Every decision equals that of independent buckets that are never dropped."""
        clock = FakeClock()
        limiter = KeyedRateLimiter(2.0, 2.0, clock=clock)
        limiter._sweep_at = 2  # sweep often, too
        reference: dict[str, BucketCore] = {}
        # Simulated waiters, on both sides: (bucket, reservation).
        waiters: list[tuple[BucketCore, Reservation]] = []
        for key, op, cost, dt in ops:
            clock.advance(dt)
            now = clock.now()
            for item in [w for w in waiters if w[1].ready_at <= now]:
                item[0].complete(item[1])  # the waiter woke and got its tokens
                waiters.remove(item)
            ref = reference.setdefault(key, BucketCore(2.0, 2.0))
            if op == "try":
                assert limiter.try_acquire(key, cost) is ref.try_take(now, cost)
                continue
            max_wait = None if op == "reserve_wait" else 0.0
            expected = ref.reserve(now, cost, max_wait)
            if isinstance(expected, Rejection):
                with pytest.raises(RateLimitedError):
                    limiter.acquire(key, cost, max_wait=max_wait)
                continue
            decision = limiter._reserve(key, cost, max_wait)
            if expected is None:
                assert decision is None
                continue
            assert decision is not None
            assert decision[1].ready_at == expected.ready_at
            waiters += [decision, (ref, expected)]
        assert len(limiter) <= len(reference)
