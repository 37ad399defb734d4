"""The rate limiter's sync shell: try_acquire, acquire, the decorator, `with`; on FakeClock."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from seawall import (
    AcquireCancelled,
    AcquireWaited,
    Event,
    RateLimited,
    RateLimitedError,
    RateLimiter,
    RateLimiterStatistics,
)
from seawall.testing import FakeClock, RecordingHook


def make(clock: FakeClock, rate: float = 2.0, burst: float = 4.0, **kwargs: Any) -> RateLimiter:
    kwargs.setdefault("name", "api")
    return RateLimiter(rate, burst, clock=clock, **kwargs)


class InterruptingClock:
    """A FakeClock whose sync sleep is interrupted by Ctrl-C."""

    def __init__(self, inner: FakeClock) -> None:
        self.inner = inner

    def now(self) -> float:
        return self.inner.now()

    def sleep(self, seconds: float) -> None:
        raise KeyboardInterrupt

    async def asleep(self, seconds: float) -> None:
        await self.inner.asleep(seconds)


class TestTryAcquire:
    """try_acquire never blocks."""

    def test_burst_then_refused(self, clock: FakeClock) -> None:
        """The bucket starts full: burst grants, then False, without sleeping."""
        limiter = make(clock)
        assert [limiter.try_acquire() for _ in range(5)] == [True] * 4 + [False]
        assert clock.sleeps == []

    def test_refills(self, clock: FakeClock) -> None:
        """After 1/rate seconds one more token is granted."""
        limiter = make(clock)
        limiter.try_acquire(4)
        clock.advance(0.5)
        assert limiter.try_acquire()
        assert not limiter.try_acquire()

    def test_does_not_jump_waiters(self, clock: FakeClock) -> None:
        """try_acquire refuses while a reservation is pending, even with tokens back."""
        limiter = make(clock, rate=1.0, burst=2.0)
        limiter.try_acquire(2)
        limiter._core.reserve(clock.now(), 2)  # a waiter elsewhere, ready at t=2
        clock.advance(1.5)
        assert not limiter.try_acquire(0.5)


class TestAcquire:
    """acquire blocks with the clock's sleep, for exactly the wait needed."""

    def test_no_wait_when_available(self, clock: FakeClock) -> None:
        """Tokens available: no sleep at all."""
        limiter = make(clock)
        limiter.acquire(3)
        assert clock.sleeps == []

    def test_waits_for_refill(self, clock: FakeClock) -> None:
        """Sleeps recorded equal the expected waits."""
        limiter = make(clock)
        limiter.acquire(4)
        limiter.acquire(1)
        limiter.acquire(2)
        assert clock.sleeps == pytest.approx([0.5, 1.0])
        assert clock.now() == pytest.approx(1.5)

    def test_fractional_cost(self, clock: FakeClock) -> None:
        """Fractional costs wait for the fraction only."""
        limiter = make(clock, rate=4.0, burst=1.0)
        limiter.acquire(1)
        limiter.acquire(0.5)
        assert clock.sleeps == pytest.approx([0.125])

    def test_large_cost_first_in_queue(self, clock: FakeClock) -> None:
        """A large cost reserved first is served before small ones reserved after it."""
        limiter = make(clock, rate=1.0, burst=4.0)
        limiter.acquire(4)
        big = limiter._core.reserve(clock.now(), 4)
        small = limiter._core.reserve(clock.now(), 1)
        assert big is not None
        assert small is not None
        assert big.ready_at < small.ready_at  # type: ignore[union-attr]


class TestMaxWait:
    """max_wait turns a long wait into RateLimitedError, taking nothing."""

    def test_rejects_with_retry_after(self, clock: FakeClock) -> None:
        """The error names the limiter and carries the wait needed."""
        limiter = make(clock)
        limiter.acquire(4)
        with pytest.raises(RateLimitedError) as info:
            limiter.acquire(2, max_wait=0.5)
        assert info.value.primitive_name == "api"
        assert info.value.retry_after == pytest.approx(1.0)
        assert "api" in str(info.value)
        assert clock.sleeps == []
        assert limiter.statistics().tokens_available == 0.0

    def test_within_max_wait_waits(self, clock: FakeClock) -> None:
        """A wait within max_wait (seconds or timedelta) is taken."""
        limiter = make(clock)
        limiter.acquire(4)
        limiter.acquire(1, max_wait=timedelta(seconds=0.5))
        limiter.acquire(1, max_wait=0.5)
        assert clock.sleeps == pytest.approx([0.5, 0.5])

    def test_zero_max_wait(self, clock: FakeClock) -> None:
        """max_wait=0 grants only what is available now."""
        limiter = make(clock)
        limiter.acquire(4, max_wait=0)
        with pytest.raises(RateLimitedError):
            limiter.acquire(1, max_wait=0)


class TestCost:
    """Costs are ints or floats in (0, burst]."""

    @pytest.mark.parametrize("cost", [5, 4.5, 0, -1, math.nan, math.inf])
    def test_out_of_range(self, clock: FakeClock, cost: float) -> None:
        """A cost above burst (or <= 0) is an immediate ValueError naming cost."""
        limiter = make(clock)
        for call in (limiter.try_acquire, limiter.acquire):
            with pytest.raises(ValueError, match="cost"):
                call(cost)
        assert clock.sleeps == []

    @pytest.mark.parametrize("cost", ["1", True, None])
    def test_wrong_type(self, clock: FakeClock, cost: object) -> None:
        """A cost that is not an int or float is a TypeError."""
        limiter = make(clock)
        with pytest.raises(TypeError, match="cost"):
            limiter.try_acquire(cost)  # type: ignore[arg-type]

    def test_bad_max_wait(self, clock: FakeClock) -> None:
        """max_wait must be >= 0."""
        with pytest.raises(ValueError, match="max_wait"):
            make(clock).acquire(1, max_wait=-1)


class TestCancel:
    """A waiter interrupted by KeyboardInterrupt gives its reservation back."""

    def test_cancel_during_acquire(self, clock: FakeClock) -> None:
        """Ctrl-C while blocked restores the tokens; nothing leaks."""
        hook = RecordingHook()
        limiter = RateLimiter(1.0, 2.0, clock=InterruptingClock(clock), hooks=(hook,))
        limiter.acquire(2)
        with pytest.raises(KeyboardInterrupt):
            limiter.acquire(2)
        stats = limiter.statistics()
        assert stats.cancelled == 1
        assert stats.tokens_restored == 2.0
        assert stats.waiting == 0
        assert stats.tokens_available == 0.0
        assert hook.of_type(AcquireCancelled) == [AcquireCancelled("rate-limiter", 2, 2.0)]
        clock.advance(1.0)
        assert limiter.try_acquire(1)


class TestDecorator:
    """@limiter takes one token before each call."""

    def test_sync_function(self, clock: FakeClock) -> None:
        """Each call takes a token, waiting when needed; the result passes through."""
        limiter = make(clock, rate=1.0, burst=1.0)

        @limiter
        def double(x: int) -> int:
            return 2 * x

        assert [double(i) for i in range(3)] == [0, 2, 4]
        assert clock.sleeps == pytest.approx([1.0, 1.0])
        assert double.__name__ == "double"

    def test_async_generator_refused(self, clock: FakeClock) -> None:
        """Decorating an async generator function is a TypeError."""

        async def agen() -> Any:
            yield 1

        with pytest.raises(TypeError, match="async generator"):
            make(clock)(agen)


class TestContextManager:
    """`with limiter:` takes one token and releases nothing."""

    def test_with(self, clock: FakeClock) -> None:
        """Entering takes a token, waiting when needed."""
        limiter = make(clock, rate=1.0, burst=1.0)
        with limiter:
            pass
        with limiter:
            pass
        assert clock.sleeps == pytest.approx([1.0])
        assert limiter.statistics().grants == 2


class TestHooks:
    """Events are reported only when hooks are attached."""

    def test_events(self, clock: FakeClock) -> None:
        """RateLimited on refusal, AcquireWaited on every grant (wait 0.0 when at once)."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        limiter.acquire(4)
        assert not limiter.try_acquire(1)
        with pytest.raises(RateLimitedError):
            limiter.acquire(2, max_wait=0.1)
        limiter.acquire(1)
        assert hook.events == [
            AcquireWaited("api", 4, 0.0),
            RateLimited("api", 1, 0.5),
            RateLimited("api", 2, 1.0),
            AcquireWaited("api", 1, 0.5),
        ]

    def test_raising_hook_does_not_break_the_limiter(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the limiter carries on."""

        def bad(event: object) -> None:
            raise RuntimeError

        limiter = make(clock, burst=1.0, hooks=(bad,))
        limiter.acquire()
        assert not limiter.try_acquire()
        assert "hook" in caplog.text


class TestStatistics:
    """statistics() is a consistent frozen snapshot."""

    def test_statistics(self, clock: FakeClock) -> None:
        """Counters add up over grants, waits and rejections."""
        limiter = make(clock)
        limiter.acquire(4)
        limiter.try_acquire()
        limiter.acquire(1)
        stats = limiter.statistics()
        assert isinstance(stats, RateLimiterStatistics)
        assert stats == RateLimiterStatistics(
            rate=2.0,
            burst=4.0,
            tokens_available=0.0,
            grants=2,
            tokens_granted=5,
            rejections=1,
            waiting=0,
            waits=1,
            total_wait=0.5,
            cancelled=0,
            tokens_restored=0.0,
        )
        with pytest.raises(AttributeError):
            stats.grants = 0  # type: ignore[misc]


class TestRepr:
    """The repr shows the configuration and the state."""

    def test_repr(self, clock: FakeClock) -> None:
        """Name, rate, burst, available tokens and waiters."""
        limiter = make(clock)
        limiter.try_acquire()
        assert repr(limiter) == ("RateLimiter(name='api', rate=2, burst=4, available=3, waiting=0)")
        assert (limiter.name, limiter.rate, limiter.burst) == ("api", 2.0, 4.0)


class TestValidation:
    """Invalid parameters name the parameter."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"rate": 0, "burst": 1}, ValueError, "rate"),
            ({"rate": -1, "burst": 1}, ValueError, "rate"),
            ({"rate": "1", "burst": 1}, TypeError, "rate"),
            ({"rate": 1, "burst": 0.5}, ValueError, "burst"),
            ({"rate": 1, "burst": math.inf}, ValueError, "burst"),
            ({"rate": 1, "burst": 1, "name": 3}, TypeError, "name"),
            ({"rate": 1, "burst": 1, "clock": object()}, TypeError, "clock"),
            ({"rate": 1, "burst": 1, "hooks": print}, TypeError, "hooks"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
        """Each bad parameter raises with its name in the message."""
        with pytest.raises(error, match=match):
            RateLimiter(**kwargs)


class TestInstantiate:
    """Creating a limiter binds to nothing."""

    def test_instantiate_outside_event_loop(self) -> None:
        """A limiter made at import time, with the system clock, works in sync code."""
        limiter = RateLimiter(rate=1000, burst=10)
        assert limiter.try_acquire()
        assert limiter.statistics().grants == 1


class TestGrantEventsFollowHookInterest:
    def test_zero_wait_grants_only_for_hooks_wanting_call_events(self, clock: FakeClock) -> None:
        """Hooks declining call events get waits, not the zero-wait grant of every call."""

        class Quiet:
            wants_call_events = False

            def __init__(self) -> None:
                self.events: list[Event] = []

            def __call__(self, event: Event) -> None:
                self.events.append(event)

        quiet = Quiet()
        limiter = RateLimiter(rate=1, burst=1, name="api", clock=clock, hooks=(quiet,))
        limiter.acquire()  # granted at once: nothing
        limiter.acquire()  # waits one second: reported
        assert quiet.events == [AcquireWaited("api", 1, 1.0)]
