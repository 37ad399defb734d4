"""The rate limiter's sync shell: try_acquire, acquire, the decorator, `with`; on FakeClock."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import (
    AcquireCancelled,
    AcquireWaited,
    Event,
    KeyedRateLimiter,
    RateLimited,
    RateLimitedError,
    RateLimiter,
    RateLimiterStatistics,
)
from seawall._limit._bucket import BucketCore, Rejection, Reservation
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


@pytest.fixture
def quiet_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[logging.LogRecord]]:
    """Fail on any thread start; collect every log record built meanwhile."""

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
        yield records
    finally:
        logging.setLogRecordFactory(factory)


class TestZeroWaitPath:
    """With tokens available: no sleep, no thread, no log record, on any sync form."""

    def test_nothing_but_the_grant(self, quiet_runtime: list[logging.LogRecord]) -> None:
        """try_acquire, acquire, the decorator and `with`, default and other costs."""
        clock = NoSleepClock()
        limiter = RateLimiter(1.0, 100.0, clock=clock)
        keyed = KeyedRateLimiter(1.0, 100.0, clock=clock)

        @limiter
        def work() -> int:
            return 1

        assert limiter.try_acquire()
        assert limiter.try_acquire(2.5)
        limiter.acquire()
        limiter.acquire(1.0, max_wait=0)
        assert work() == 1
        with limiter:
            pass
        assert keyed.try_acquire("a")
        keyed.acquire("a", 2)
        keyed.acquire("b", max_wait=timedelta(0))
        assert quiet_runtime == []
        stats = limiter.statistics()
        assert (stats.grants, stats.tokens_granted, stats.waits) == (6, 7.5, 0)
        assert (keyed.statistics().grants, keyed.statistics().tokens_granted) == (3, 4)


class TestNoOvertaking:
    """The fast paths never grant ahead of a waiter, even when tokens are back."""

    def test_after_a_refund_behind_the_waiter(self, clock: FakeClock) -> None:
        """A refund by Go's rule leaves tokens, but a later waiter still comes first."""
        limiter = make(clock, rate=1.0, burst=4.0)
        limiter.acquire(4)
        core = limiter._core
        first = core.reserve(0.0, 3)  # ready at t=3
        second = core.reserve(0.0, 1)  # ready at t=4
        assert isinstance(first, Reservation)
        assert isinstance(second, Reservation)
        assert core.cancel(first, 0.0) == 2.0
        clock.advance(3.0)
        # The bucket's level alone allows one token at t=3; the waiter is due at 4.
        assert core.available(clock.now()) == 1.0
        assert not limiter.try_acquire()
        with pytest.raises(RateLimitedError):
            limiter.acquire(max_wait=0.5)

        @limiter
        def work() -> None:
            pass

        work()  # queued behind the waiter: granted at t=4, with it
        assert clock.sleeps == [1.0]
        core.complete(second)
        with limiter:  # nobody waits now, and the last token is there
            pass
        assert clock.sleeps == [1.0]
        assert not limiter.try_acquire()


RATES = [1.0, 3.0, 0.7, 10.0]
FAST_OPS = st.lists(
    st.tuples(
        st.sampled_from(["try", "acquire", "acquire_no_wait", "decorated", "with"]),
        st.sampled_from([1, 1.0, 0.5, 2, 0.3]),
        st.sampled_from([0.0, 0.1, 1 / 3, 0.5, 2.0]),
    ),
    max_size=50,
)


class TestFastPathIsTheCore:
    """Every form decides as `BucketCore` does and leaves the bucket in the same state."""

    @settings(max_examples=200, deadline=None)
    @given(rate=st.sampled_from(RATES), ops=FAST_OPS)
    def test_matches_the_core_bit_for_bit(
        self, rate: float, ops: list[tuple[str, float, float]]
    ) -> None:
        """Decisions, waits and the float state equal the core's, to the last bit."""
        clock = FakeClock()
        limiter = RateLimiter(rate, 2.0, clock=clock)
        ref = BucketCore(rate, 2.0)

        @limiter
        def work() -> None:
            pass

        granted = 0.0
        for op, op_cost, dt in ops:
            clock.advance(dt)
            now = clock.now()
            cost = op_cost if op in {"try", "acquire", "acquire_no_wait"} else 1
            if op == "try":
                expected = ref.try_take(now, cost)
                assert limiter.try_acquire(cost) is expected
                granted += cost if expected else 0
            elif op == "acquire_no_wait":
                decision = ref.reserve(now, cost, 0.0)
                if isinstance(decision, Rejection):
                    with pytest.raises(RateLimitedError):
                        limiter.acquire(cost, max_wait=0)
                else:
                    assert decision is None
                    limiter.acquire(cost, max_wait=0)
                    granted += cost
            else:
                decision = ref.reserve(now, cost, None)
                if op == "acquire":
                    limiter.acquire(cost)
                elif op == "decorated":
                    work()
                else:
                    with limiter:
                        pass
                if decision is None:
                    assert clock.now() == now  # granted at once: no sleep
                else:
                    assert isinstance(decision, Reservation)
                    assert clock.now() >= decision.ready_at - ref.slack
                    ref.complete(decision)
                granted += cost
            assert limiter._core.full_at == ref.full_at
            assert limiter._core.tail == ref.tail
        stats = limiter.statistics()
        assert stats.tokens_granted == pytest.approx(granted)
        assert stats.waiting == 0

    def test_constants_match_the_core(self) -> None:
        """The shell's copies of tau, slack and the unit step are the core's, exactly."""
        for rate, burst in [(1.0, 1.0), (3.0, 7.0), (0.7, 2.5), (1e12, 1e9)]:
            limiter = RateLimiter(rate, burst)
            core = limiter._core
            assert limiter._tau == core.tau
            assert limiter._slack == core.slack
            assert limiter._unit == 1 / rate
