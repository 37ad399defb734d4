"""The LLM rate limiter: requests and tokens per minute together, reserve then settle."""

from __future__ import annotations

import itertools
import math
import random
import threading
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seawall import (
    AcquireCancelled,
    AcquireWaited,
    LLMLease,
    LLMRateLimiter,
    LLMRateLimiterStatistics,
    RateLimited,
    RateLimitedError,
    TokensSettled,
)
from seawall._limit._bucket import EPSILON_TOKENS, Rejection
from seawall._limit._llm import LLMCore, Ticket
from seawall.testing import FakeClock, RecordingHook


TOLERANCE = 1e-6


def make(clock: Any, rpm: float = 60, tpm: float = 6000, **kwargs: Any) -> LLMRateLimiter:
    """1 request/s and 100 tokens/s; bursts of one minute's worth unless given."""
    kwargs.setdefault("name", "llm")
    return LLMRateLimiter(rpm, tpm, clock=clock, **kwargs)


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


async def until_waiting(limiter: LLMRateLimiter, n: int) -> None:
    """Let other tasks run until *n* of them wait on *limiter*."""
    for _ in range(1000):
        if limiter.statistics().waiting == n:
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("waiters never queued")


async def reserve_in_task(limiter: LLMRateLimiter, estimated: float) -> None:
    """Reserve from a task of a task group (start_soon needs a coroutine function)."""
    await limiter.areserve(estimated)


def worst_window_excess(
    events: list[tuple[int, float, float, bool]], rate: float, burst: float
) -> float:
    """Return the worst excess over ``burst + rate * t`` seen by any admitted grant.

    Events are (decision order, time, amount, admitted). For each admitted grant G,
    the windows [t1, t_G] over the events decided no later than G must hold at most
    ``burst + rate * (t_G - t1)``: G was admitted knowing them. Charges (not
    admitted, forced) count in the windows but do not end one.
    """
    worst = -math.inf
    for seq, t_end, _, admitted in events:
        if not admitted:
            continue
        known = sorted((t, amount) for s, t, amount, _ in events if s <= seq and t <= t_end)
        total = 0.0
        for t1, amount in reversed(known):
            total += amount
            worst = max(worst, total - burst - rate * (t_end - t1))
    return worst


class TestWindowCheck:
    """The checker itself catches a violation."""

    def test_detects_excess(self) -> None:
        """Too many tokens in a short window give a positive excess; a charge counts."""
        assert worst_window_excess([(0, 0.0, 1.0, True)] * 3, rate=1.0, burst=2.0) == 1.0
        ok = [(0, 0.0, 2.0, True), (1, 1.0, 1.0, True)]
        assert worst_window_excess(ok, rate=1.0, burst=2.0) == 0.0
        charged = [(0, 0.0, 2.0, True), (1, 0.0, 1.0, False), (2, 1.0, 1.0, True)]
        assert worst_window_excess(charged, rate=1.0, burst=2.0) == 1.0


class TestBothDimensions:
    """Requests per minute bind small requests, tokens per minute bind big ones."""

    def test_rpm_binds_tiny_estimates(self, clock: FakeClock) -> None:
        """With plenty of tokens, requests wait one second each after the burst."""
        limiter = make(clock, tpm=600_000, request_burst=2)
        for _ in range(4):
            limiter.reserve(10)
        assert clock.sleeps == pytest.approx([1.0, 1.0])

    def test_tpm_binds_big_estimates(self, clock: FakeClock) -> None:
        """With plenty of requests, big estimates wait for the tokens to refill."""
        limiter = make(clock, rpm=6000, token_burst=1000)
        limiter.reserve(1000)
        limiter.reserve(500)
        limiter.reserve(1000)
        assert clock.sleeps == pytest.approx([5.0, 10.0])
        assert clock.now() == pytest.approx(15.0)

    def test_defaults_are_one_minute(self, clock: FakeClock) -> None:
        """The default bursts are one minute's worth of each dimension."""
        limiter = LLMRateLimiter(requests_per_minute=500, tokens_per_minute=90_000)
        assert (limiter.request_burst, limiter.token_burst) == (500.0, 90_000.0)
        assert LLMRateLimiter(0.5, 0.5).request_burst == 1.0

    def test_zero_estimate_is_request_only(self, clock: FakeClock) -> None:
        """estimated_tokens=0 takes a request and no token."""
        limiter = make(clock)
        lease = limiter.reserve(0)
        stats = limiter.statistics()
        assert (stats.requests_available, stats.tokens_available) == (59.0, 6000.0)
        assert lease.estimated_tokens == 0

    def test_zero_estimate_waits_for_token_debt(self, clock: FakeClock) -> None:
        """A request-only reservation still waits until a charged debt is paid."""
        limiter = make(clock)
        limiter.reserve(6000).settle(6500)
        limiter.reserve(0)
        assert clock.sleeps == pytest.approx([5.0])


class TestAtomicity:
    """One grant time for both dimensions: the later of the two."""

    def test_waits_for_later_dimension_and_takes_both_then(self, clock: FakeClock) -> None:
        """Requests are ready at 1 s, tokens at 3 s: both are taken at 3 s."""
        limiter = make(clock, request_burst=1, token_burst=1000)
        limiter.reserve(1000)
        lease = limiter.reserve(300)
        assert clock.sleeps == pytest.approx([3.0])
        assert lease.granted_at == pytest.approx(3.0)
        stats = limiter.statistics()
        assert stats.requests_available == pytest.approx(0.0)
        assert stats.tokens_available == pytest.approx(0.0)

    def test_core_commits_both_at_common_time(self) -> None:
        """The pure core puts one reservation in each bucket, with the same ready time."""
        core = LLMCore(1.0, 1.0, 100.0, 1000.0)
        first = core.reserve(0.0, 1000, None)
        assert isinstance(first, Ticket)
        assert first.requests is None
        ticket = core.reserve(0.0, 300, None)
        assert isinstance(ticket, Ticket)
        assert ticket.requests is not None
        assert ticket.tokens is not None
        assert ticket.at == ticket.requests.ready_at == ticket.tokens.ready_at == 3.0
        assert (core.requests.waiting, core.tokens.waiting) == (1, 1)

    def test_big_estimate_not_starved(self) -> None:
        """Small requests reserved after a big one are granted after it (FIFO)."""
        core = LLMCore(10.0, 10.0, 100.0, 1000.0)
        assert isinstance(core.reserve(0.0, 1000, None), Ticket)
        big = core.reserve(0.0, 1000, None)
        small = core.reserve(0.0, 1, None)
        assert isinstance(big, Ticket)
        assert isinstance(small, Ticket)
        assert big.at == 10.0
        assert small.at >= big.at
        assert isinstance(core.reserve(5.0, 1, 0.0), Rejection)


class TestTryReserve:
    """try_reserve never blocks and never queues ahead of waiters."""

    def test_grants_then_refuses(self, clock: FakeClock) -> None:
        """A lease while both dimensions allow it, then None; no sleep."""
        limiter = make(clock, request_burst=2)
        assert isinstance(limiter.try_reserve(10), LLMLease)
        assert isinstance(limiter.try_reserve(10), LLMLease)
        assert limiter.try_reserve(10) is None
        assert limiter.try_reserve(0) is None
        assert clock.sleeps == []
        assert limiter.statistics().rejections == 2

    def test_refused_takes_nothing(self, clock: FakeClock) -> None:
        """A refusal on tokens leaves the request bucket untouched."""
        limiter = make(clock)
        limiter.reserve(6000)
        assert limiter.try_reserve(1) is None
        assert limiter.statistics().requests_available == 59.0

    @pytest.mark.anyio
    async def test_never_ahead_of_waiters(self, anyio_backend: str) -> None:
        """While a big estimate waits, a tiny one is refused though it would fit."""
        clock = FakeClock(autojump=False)
        limiter = make(clock)
        limiter.reserve(6000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve_in_task, limiter, 3000)
            await until_waiting(limiter, 1)
            clock.advance(10.0)  # 1,000 tokens back, but the waiter needs 3,000
            assert limiter.statistics().tokens_available == pytest.approx(-2000.0)
            assert limiter.try_reserve(1) is None
            clock.advance(20.0)
        assert limiter.statistics().waits == 1


class TestMaxWait:
    """max_wait turns a long wait into RateLimitedError, taking nothing."""

    def test_rejects_with_retry_after(self, clock: FakeClock) -> None:
        """The error names the limiter and carries the wait needed."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        limiter.reserve(6000)
        with pytest.raises(RateLimitedError) as info:
            limiter.reserve(500, max_wait=4.9)
        assert info.value.primitive_name == "llm"
        assert info.value.retry_after == pytest.approx(5.0)
        assert clock.sleeps == []
        stats = limiter.statistics()
        assert (stats.rejections, stats.requests_available, stats.tokens_available) == (1, 59, 0)
        assert hook.events == [AcquireWaited("llm", 6000, 0.0), RateLimited("llm", 500, 5.0)]

    def test_within_max_wait_waits(self, clock: FakeClock) -> None:
        """A wait within max_wait (a timedelta works too) is taken."""
        limiter = make(clock)
        limiter.reserve(6000)
        limiter.reserve(500, max_wait=timedelta(seconds=5))
        assert clock.sleeps == pytest.approx([5.0])

    @pytest.mark.anyio
    async def test_async_rejects(self, clock: FakeClock, anyio_backend: str) -> None:
        """areserve raises the same error, at once."""
        limiter = make(clock)
        await limiter.areserve(6000)
        with pytest.raises(RateLimitedError) as info:
            await limiter.areserve(100, max_wait=0)
        assert info.value.retry_after == pytest.approx(1.0)
        assert clock.sleeps == []


class TestSettle:
    """settle refunds or charges the difference on the token bucket."""

    def test_refund_makes_tokens_available_sooner(self, clock: FakeClock) -> None:
        """An over-estimate settled at once is given back in full."""
        limiter = make(clock)
        limiter.reserve(6000).settle(1000)
        limiter.reserve(5000)
        assert clock.sleeps == []
        stats = limiter.statistics()
        assert (stats.tokens_refunded, stats.tokens_available) == (5000.0, 0.0)

    def test_charge_delays_next_caller(self, clock: FakeClock) -> None:
        """An under-estimate is charged, into debt: the next caller waits for it."""
        limiter = make(clock)
        with limiter.reserve(5000) as lease:
            lease.settle(6500)
        assert limiter.statistics().tokens_available == -500.0
        limiter.reserve(100)
        assert clock.sleeps == pytest.approx([6.0])
        assert limiter.statistics().tokens_charged == 1500.0

    def test_late_refund_gives_back_less(self, clock: FakeClock) -> None:
        """Tokens refilled since the grant are not refunded twice."""
        limiter = make(clock)
        lease = limiter.reserve(6000)
        clock.advance(10.0)  # 1,000 tokens refilled meanwhile
        lease.settle(2000)
        stats = limiter.statistics()
        assert stats.tokens_refunded == 3000.0  # 4000 - 100 * 10
        assert stats.tokens_available == 4000.0

    def test_settle_twice_raises(self, clock: FakeClock) -> None:
        """A lease settles once; the second call changes nothing."""
        limiter = make(clock)
        lease = limiter.reserve(100)
        lease.settle(50)
        with pytest.raises(RuntimeError, match="already settled"):
            lease.settle(10)
        assert (lease.settled, lease.actual_tokens) == (True, 50)
        assert limiter.statistics().settled == 1

    def test_unsettled_lease_keeps_estimate(self, clock: FakeClock) -> None:
        """Leaving the block without settling keeps the whole estimate."""
        limiter = make(clock)
        with limiter.reserve(4000) as lease:
            pass
        assert not lease.settled
        assert lease.actual_tokens is None
        assert limiter.statistics().tokens_available == 2000.0

    def test_exception_in_block_keeps_estimate(self, clock: FakeClock) -> None:
        """The block's exception propagates; the estimate stands."""
        limiter = make(clock)
        with pytest.raises(ZeroDivisionError), limiter.reserve(4000):
            _ = 1 / 0
        assert limiter.statistics().tokens_available == 2000.0

    def test_settle_after_exit_is_allowed(self, clock: FakeClock) -> None:
        """Usage reported after the block (e.g. at the end of a stream) still settles."""
        limiter = make(clock)
        with limiter.reserve(4000) as lease:
            pass
        lease.settle(1000)
        assert limiter.statistics().tokens_available == 5000.0

    def test_exact_estimate_changes_nothing(self, clock: FakeClock) -> None:
        """Settling the estimate itself neither charges nor refunds."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        limiter.reserve(100).settle(100)
        assert limiter.statistics().tokens_available == 5900.0
        assert hook.of_type(TokensSettled) == [TokensSettled("llm", 100, 100, 0, 0.0)]

    @pytest.mark.parametrize("bad", [-1, math.nan, math.inf])
    def test_bad_actual_tokens(self, clock: FakeClock, bad: float) -> None:
        """actual_tokens must be finite and >= 0; the lease stays unsettled."""
        lease = make(clock).reserve(10)
        with pytest.raises(ValueError, match="actual_tokens"):
            lease.settle(bad)
        with pytest.raises(TypeError, match="actual_tokens"):
            lease.settle(True)
        assert not lease.settled

    @pytest.mark.anyio
    async def test_async_settle(self, clock: FakeClock, anyio_backend: str) -> None:
        """async with areserve(...) yields a lease that settles like the sync one."""
        limiter = make(clock)
        async with limiter.areserve(6000) as lease:
            lease.settle(100)
        async with limiter.areserve(5900) as lease:
            assert lease.granted_at == 0.0
        assert clock.sleeps == []


class TestCancel:
    """A cancelled waiter gives both reservations back: nothing leaks."""

    def test_keyboard_interrupt_during_reserve(self, clock: FakeClock) -> None:
        """Ctrl-C while blocked restores requests and tokens as they were."""
        hook = RecordingHook()
        limiter = make(InterruptingClock(clock), hooks=(hook,))
        limiter.reserve(6000)
        with pytest.raises(KeyboardInterrupt):
            limiter.reserve(6000)
        stats = limiter.statistics()
        assert (stats.cancelled, stats.waiting, stats.grants) == (1, 0, 1)
        assert (stats.requests_available, stats.tokens_available) == (59.0, 0.0)
        assert hook.of_type(AcquireCancelled) == [AcquireCancelled("llm", 6000, 6000.0)]
        assert limiter.try_reserve(0) is not None  # the request bucket did not leak

    @pytest.mark.anyio
    async def test_cancel_during_reserve(self, anyio_backend: str) -> None:
        """Cancelling the waiting task gives both back; the next caller is not delayed."""
        clock = FakeClock(autojump=False)
        limiter = make(clock)
        await limiter.areserve(6000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve_in_task, limiter, 6000)
            await until_waiting(limiter, 1)
            # The waiter's request is replayed at its grant time, 60 s from now.
            assert limiter.statistics().requests_available == -1.0
            tg.cancel_scope.cancel()
        stats = limiter.statistics()
        assert (stats.cancelled, stats.waiting) == (1, 0)
        assert (stats.requests_available, stats.tokens_available) == (59.0, 0.0)
        clock.advance(0.1)
        lease = await limiter.areserve(10)
        assert lease.granted_at == 0.1
        assert clock.sleeps == [60.0]  # the cancelled waiter's sleep only

    @pytest.mark.anyio
    async def test_cancel_many_waiters(self, anyio_backend: str) -> None:
        """Cancelling several waiters at once leaves the buckets as they were."""
        clock = FakeClock(autojump=False)
        limiter = make(clock, request_burst=2)
        await limiter.areserve(6000)
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(reserve_in_task, limiter, 1000)
                await until_waiting(limiter, i + 1)
            tg.cancel_scope.cancel()
        stats = limiter.statistics()
        assert (stats.cancelled, stats.waiting) == (3, 0)
        assert stats.requests_available == pytest.approx(1.0)
        assert stats.tokens_available == pytest.approx(0.0)

    @pytest.mark.anyio
    async def test_cancel_middle_keeps_later_grant(self, anyio_backend: str) -> None:
        """Cancelling a waiter in the middle keeps the later waiter's grant time."""
        clock = FakeClock(autojump=False)
        limiter = make(clock, token_burst=1000)
        await limiter.areserve(1000)
        done: list[float] = []

        async def take(estimated: float) -> None:
            await limiter.areserve(estimated)
            done.append(clock.now())

        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as inner:
                inner.start_soon(take, 500)
                await until_waiting(limiter, 1)
                outer.start_soon(take, 500)
                await until_waiting(limiter, 2)
                inner.cancel_scope.cancel()
            for _ in range(10):
                clock.advance(1.0)
                await anyio.lowlevel.checkpoint()
        assert done == [10.0]


class TestValidation:
    """Bad parameters name themselves."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "name"),
        [
            ({"requests_per_minute": 0}, ValueError, "requests_per_minute"),
            ({"requests_per_minute": math.inf}, ValueError, "requests_per_minute"),
            ({"tokens_per_minute": -1}, ValueError, "tokens_per_minute"),
            ({"tokens_per_minute": math.nan}, ValueError, "tokens_per_minute"),
            ({"tokens_per_minute": "9"}, TypeError, "tokens_per_minute"),
            ({"requests_per_minute": True}, TypeError, "requests_per_minute"),
            ({"request_burst": 0.5}, ValueError, "request_burst"),
            ({"token_burst": math.inf}, ValueError, "token_burst"),
            ({"token_burst": "1"}, TypeError, "token_burst"),
            ({"name": 3}, TypeError, "name"),
            ({"clock": object()}, TypeError, "clock"),
            ({"hooks": [1]}, TypeError, "hooks"),
        ],
    )
    def test_constructor(self, kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
        """Each invalid argument raises an error whose message names it."""
        args: dict[str, Any] = {"requests_per_minute": 60, "tokens_per_minute": 6000}
        args.update(kwargs)
        with pytest.raises(error, match=name):
            LLMRateLimiter(**args)

    @pytest.mark.parametrize("bad", [6001, -1, math.nan, math.inf])
    def test_estimate_out_of_range(self, clock: FakeClock, bad: float) -> None:
        """An estimate above token_burst (or < 0, NaN) fails at once, naming it."""
        limiter = make(clock)
        for call in (limiter.reserve, limiter.try_reserve, limiter.areserve):
            with pytest.raises(ValueError, match="estimated_tokens"):
                call(bad)
        assert clock.sleeps == []
        assert limiter.statistics().grants == 0

    @pytest.mark.parametrize("bad", [True, "10", None])
    def test_estimate_wrong_type(self, clock: FakeClock, bad: Any) -> None:
        """Non-numbers, bool included, are TypeErrors naming estimated_tokens."""
        with pytest.raises(TypeError, match="estimated_tokens"):
            make(clock).reserve(bad)

    def test_max_wait(self, clock: FakeClock) -> None:
        """max_wait must be >= 0 seconds or None."""
        limiter = make(clock)
        with pytest.raises(ValueError, match="max_wait"):
            limiter.reserve(1, max_wait=-1)
        with pytest.raises(TypeError, match="max_wait"):
            limiter.areserve(1, max_wait="1")  # type: ignore[arg-type]

    @pytest.mark.anyio
    async def test_areserve_is_single_use(self, clock: FakeClock, anyio_backend: str) -> None:
        """The object areserve returns reserves once."""
        pending = make(clock).areserve(1)
        await pending
        with pytest.raises(RuntimeError, match="only once"):
            await pending


class TestHooks:
    """Events reach the hooks, and only when hooks are attached."""

    def test_events(self, clock: FakeClock) -> None:
        """RateLimited, AcquireWaited and TokensSettled, with the estimate as cost."""
        hook = RecordingHook()
        limiter = make(clock, hooks=(hook,))
        limiter.reserve(6000).settle(5000)
        assert limiter.try_reserve(2000) is None
        limiter.reserve(2000).settle(2500)
        assert hook.events == [
            AcquireWaited("llm", 6000, 0.0),
            TokensSettled("llm", 6000, 5000, -1000, 1000.0),
            RateLimited("llm", 2000, 10.0),
            AcquireWaited("llm", 2000, 10.0),
            TokensSettled("llm", 2000, 2500, 500, 0.0),
        ]

    def test_raising_hook_does_not_corrupt(self, clock: FakeClock, caplog: Any) -> None:
        """A hook that raises is logged; the lease is still settled."""

        def bad(event: object) -> None:
            raise RuntimeError("boom")

        lease = make(clock, hooks=(bad,)).reserve(10)
        lease.settle(5)
        assert lease.settled
        assert "boom" in caplog.text


class TestStatistics:
    """statistics() and repr show the state."""

    def test_statistics(self, clock: FakeClock) -> None:
        """Counters add up over grants, waits, rejections and settlements."""
        limiter = make(clock)
        limiter.reserve(6000).settle(4000)
        limiter.reserve(3000)
        assert limiter.try_reserve(1000) is None
        limiter.reserve(1000).settle(1500)
        stats = limiter.statistics()
        assert isinstance(stats, LLMRateLimiterStatistics)
        assert stats == LLMRateLimiterStatistics(
            requests_per_minute=60.0,
            tokens_per_minute=6000.0,
            request_burst=60.0,
            token_burst=6000.0,
            requests_available=59.0,  # refilled while waiting
            tokens_available=-500.0,
            grants=3,
            tokens_reserved=10000.0,
            rejections=1,
            waiting=0,
            waits=2,
            total_wait=20.0,
            cancelled=0,
            settled=2,
            tokens_settled=5500.0,
            tokens_charged=500.0,
            tokens_refunded=2000.0,
        )

    def test_repr(self, clock: FakeClock) -> None:
        """The limiter and the lease show their state."""
        limiter = make(clock)
        lease = limiter.reserve(1200)
        assert repr(limiter) == (
            "LLMRateLimiter(name='llm', requests_per_minute=60, tokens_per_minute=6000, "
            "requests_available=59, tokens_available=4800, waiting=0)"
        )
        assert repr(lease) == (
            "LLMLease(estimated_tokens=1200, granted_at=0.0, actual_tokens=None)"
        )
        assert "1200" in repr(limiter.areserve(1200))

    @pytest.mark.anyio
    async def test_instantiate_outside_event_loop(self, anyio_backend: str) -> None:
        """A limiter built at import time works on asyncio and on trio."""
        async with MODULE_LIMITER.areserve(10) as lease:
            lease.settle(1)
        assert MODULE_LIMITER.try_reserve(10) is not None


MODULE_LIMITER = LLMRateLimiter(requests_per_minute=1e9, tokens_per_minute=1e12, name="module")


# -- stress: many tasks and threads share one limiter ------------------------------------


TASKS = 500
THREADS = 16
CALLS_PER_THREAD = 100


class TestStress:
    """Many tasks and threads: both window invariants hold and every count adds up."""

    @pytest.mark.anyio
    @pytest.mark.timeout(60)
    async def test_tasks(self, anyio_backend: str) -> None:
        """500 tasks reserve, settle, get cancelled or rejected under one FakeClock."""
        clock = FakeClock()
        limiter = make(clock, rpm=120, tpm=60_000, request_burst=5, token_burst=3000)
        order = itertools.count()
        requests: dict[int, tuple[int, float, float, bool]] = {}
        tokens: dict[int, tuple[int, float, float, bool]] = {}
        outcome = {"rejected": 0, "cancelled": 0, "unsettled": 0}

        async def worker(seed: int) -> None:
            rnd = random.Random(seed)
            estimated = rnd.choice([0, 10, 200, 1000, 3000])
            kind = rnd.random()
            seq = next(order)  # areserve decides before its first await
            if kind < 0.1:
                with anyio.move_on_after(rnd.choice([0, 0.5, 2.0])):
                    lease = await limiter.areserve(estimated)
                    requests[seq] = (seq, lease.granted_at, 1.0, True)
                    tokens[seq] = (seq, lease.granted_at, float(estimated), True)
                    outcome["unsettled"] += 1  # the estimate stands
                    return
                outcome["cancelled"] += 1
                return
            try:
                lease = await limiter.areserve(estimated, max_wait=30 if kind < 0.2 else None)
            except RateLimitedError:
                outcome["rejected"] += 1
                return
            assert clock.now() >= lease.granted_at - TOLERANCE
            requests[seq] = (seq, lease.granted_at, 1.0, True)
            tokens[seq] = (seq, lease.granted_at, float(estimated), True)
            await clock.asleep(rnd.random())  # the call
            actual = rnd.choice([0, estimated // 2, estimated, estimated + 500])
            if actual < estimated:
                tokens[seq] = (seq, lease.granted_at, float(actual), True)
            elif actual > estimated:
                charge = next(order)
                tokens[charge] = (charge, clock.now(), float(actual - estimated), False)
            lease.settle(actual)

        async with anyio.create_task_group() as tg:
            for seed in range(TASKS):
                tg.start_soon(worker, seed)

        stats = limiter.statistics()
        assert stats.waiting == 0
        assert stats.grants == len(requests) == stats.settled + outcome["unsettled"]
        assert stats.rejections == outcome["rejected"]
        assert stats.grants + stats.rejections + outcome["cancelled"] == TASKS
        assert stats.cancelled <= outcome["cancelled"]
        assert stats.waits > TASKS // 2
        for events, rate, burst in ((requests, 2.0, 5.0), (tokens, 1000.0, 3000.0)):
            assert worst_window_excess(list(events.values()), rate, burst) <= TOLERANCE

    @pytest.mark.timeout(60)
    def test_threads(self) -> None:
        """16 threads reserving, trying and settling: every count adds up."""
        clock = FakeClock()
        limiter = make(clock, rpm=600, tpm=60_000, request_burst=10, token_burst=2000)
        barrier = threading.Barrier(THREADS)
        lock = threading.Lock()
        totals = {"granted": 0, "refused": 0, "rejected": 0, "estimated": 0.0, "actual": 0.0}
        errors: list[BaseException] = []

        def worker(seed: int) -> None:
            rnd = random.Random(seed)
            barrier.wait()
            try:
                for _ in range(CALLS_PER_THREAD):
                    estimated = rnd.choice([0, 50, 500, 2000])
                    op = rnd.random()
                    try:
                        if op < 0.3:
                            lease = limiter.try_reserve(estimated)
                        else:
                            lease = limiter.reserve(estimated, max_wait=None if op < 0.9 else 0.5)
                    except RateLimitedError:
                        with lock:
                            totals["rejected"] += 1
                        continue
                    if lease is None:
                        with lock:
                            totals["refused"] += 1
                        continue
                    actual = rnd.choice([0, estimated, estimated * 2])
                    lease.settle(actual)
                    with lock:
                        totals["granted"] += 1
                        totals["estimated"] += estimated
                        totals["actual"] += actual
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
        assert stats.waiting == 0
        assert stats.grants == totals["granted"] == stats.settled
        assert stats.rejections == totals["refused"] + totals["rejected"]
        assert stats.grants + stats.rejections == THREADS * CALLS_PER_THREAD
        assert stats.tokens_reserved == pytest.approx(totals["estimated"])
        assert stats.tokens_settled == pytest.approx(totals["actual"])
        # The whole run is one window [0, now] for requests.
        assert stats.grants <= 10 + 10 * clock.now() + TOLERANCE


# -- hypothesis: the pure core against an exact reference --------------------------------


class RefBucket:
    """One dimension in exact fractions: a (level, since) line capped at burst."""

    def __init__(self, rate: Fraction, burst: Fraction) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.since = Fraction(0)
        self.slack = Fraction(EPSILON_TOKENS) / rate

    def tokens(self, t: Fraction) -> Fraction:
        return min(self.burst, self.level + self.rate * (t - self.since))

    def ready(self, now: Fraction, cost: Fraction, tail: Fraction | None) -> Fraction:
        ready = now + max(Fraction(0), cost - self.tokens(now)) / self.rate
        if tail is not None:
            ready = max(ready, tail)
        return now if ready - now <= self.slack else ready

    def take(self, at: Fraction, cost: Fraction) -> None:
        self.level = self.tokens(at) - cost
        self.since = at

    def restore(self, now: Fraction, tokens: Fraction) -> Fraction:
        before = self.tokens(now)
        if tokens <= 0 or before >= self.burst:
            return Fraction(0)
        self.level = min(self.burst, before + tokens)
        self.since = now
        return self.level - before


@dataclass
class RefTicket:
    """A reservation in the model: its ticket, grant time and undo snapshot."""

    ticket: Ticket
    seq: int
    estimated: Fraction
    at: Fraction
    snapshot: tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction]]
    # Tokens given back, per dimension, by cancellations of earlier tickets since.
    credit: tuple[Fraction, Fraction] = (Fraction(0), Fraction(0))


REQUEST_RATES = [Fraction(1, 2), Fraction(1), Fraction(2)]
REQUEST_BURSTS = [Fraction(1), Fraction(2), Fraction(3)]
TOKEN_RATES = [Fraction(10), Fraction(100)]
TOKEN_BURSTS = [Fraction(10), Fraction(50), Fraction(100)]
ESTIMATES = [Fraction(n) for n in (0, 1, 5, 10, 25, 50, 100)]
ACTUALS = [Fraction(n) for n in (0, 1, 5, 10, 40, 100, 250)]


class LLMCoreMachine(RuleBasedStateMachine):
    """The float core against exact fractions; window invariants and FIFO over grants."""

    def __init__(self) -> None:
        super().__init__()
        self.core: LLMCore | None = None
        self.req: RefBucket | None = None
        self.tok: RefBucket | None = None
        self.now = 0.0
        self.seq = 0
        self.pending: list[RefTicket] = []
        self.granted: list[RefTicket] = []
        # Per dimension: seq -> (decision order, time, amount, admitted).
        self.req_events: dict[int, tuple[int, float, float, bool]] = {}
        self.tok_events: dict[int, tuple[int, float, float, bool]] = {}
        # Every change to the buckets, in order: a ticket's seq for a reservation, None
        # for a settlement. A rollback removes the changes it undoes.
        self.log: list[int | None] = []
        self.tickets: dict[int, RefTicket] = {}
        self.cancelled: set[int] = set()

    @property
    def exact_now(self) -> Fraction:
        return Fraction(self.now)

    def _tail(self, *, tokens: bool) -> Fraction | None:
        # A zero estimate reserves no tokens, so it is not in the token bucket's queue.
        return max((r.at for r in self.pending if r.estimated or not tokens), default=None)

    @precondition(lambda self: self.core is None)
    @rule(
        request_rate=st.sampled_from(REQUEST_RATES),
        request_burst=st.sampled_from(REQUEST_BURSTS),
        token_rate=st.sampled_from(TOKEN_RATES),
        token_burst=st.sampled_from(TOKEN_BURSTS),
    )
    def start(
        self,
        request_rate: Fraction,
        request_burst: Fraction,
        token_rate: Fraction,
        token_burst: Fraction,
    ) -> None:
        """Create the core and the model."""
        self.core = LLMCore(
            float(request_rate), float(request_burst), float(token_rate), float(token_burst)
        )
        self.req = RefBucket(request_rate, request_burst)
        self.tok = RefBucket(token_rate, token_burst)

    @precondition(lambda self: self.core is not None)
    @rule(dt=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 3.0]))
    def advance(self, dt: float) -> None:
        """Time passes; waiters whose grant time has come complete."""
        assert self.core is not None
        self.now += dt
        for r in list(self.pending):
            if float(r.at) <= self.now:
                self.core.complete(r.ticket)
                self.pending.remove(r)
                self.granted.append(r)

    @precondition(lambda self: self.core is not None)
    @rule(estimated=st.sampled_from(ESTIMATES), max_wait=st.sampled_from([None, 0.0, 1.0]))
    def reserve(self, estimated: Fraction, max_wait: float | None) -> None:
        """Grant at the later of both ready times, wait, or reject taking nothing."""
        assert self.core is not None
        assert self.req is not None
        assert self.tok is not None
        estimated = min(estimated, self.tok.burst)
        now = self.exact_now
        at = max(
            self.req.ready(now, Fraction(1), self._tail(tokens=False)),
            self.tok.ready(now, estimated, self._tail(tokens=True)),
        )
        decision = self.core.reserve(self.now, float(estimated), max_wait)
        slack = max(self.req.slack, self.tok.slack)
        if max_wait is not None and at - now > Fraction(max_wait) + slack:
            assert isinstance(decision, Rejection)
            assert decision.retry_after == pytest.approx(float(at - now), abs=1e-9)
            return
        assert isinstance(decision, Ticket)
        assert decision.at == pytest.approx(float(at), abs=1e-9)
        snapshot = ((self.req.level, self.req.since), (self.tok.level, self.tok.since))
        self.req.take(at, Fraction(1))
        if estimated > 0:
            self.tok.take(at, estimated)
        self.seq += 1
        self.log.append(self.seq)
        ref = RefTicket(decision, self.seq, estimated, at, snapshot)
        self.tickets[self.seq] = ref
        self.req_events[self.seq] = (self.seq, decision.at, 1.0, True)
        self.tok_events[self.seq] = (self.seq, decision.at, float(estimated), True)
        if decision.requests is None:
            assert at == now
            self.granted.append(ref)
        else:
            self.pending.append(ref)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        """A waiter gives up: exact rollback if nothing changed since, else the Go rule."""
        assert self.core is not None
        assert self.req is not None
        assert self.tok is not None
        r = self.pending[pick % len(self.pending)]
        now = self.exact_now
        req_tail = self._tail(tokens=False)
        tok_tail = self._tail(tokens=True)
        assert req_tail is not None
        self.pending.remove(r)
        restored = self.core.cancel(r.ticket, self.now)
        assert restored is not None  # advance() completes every ticket that is due
        # First the bucket's rule: only what no later reservation depends on.
        req_back = self.req.restore(now, 1 - self.req.rate * (req_tail - r.at))
        expected = Fraction(0)
        if r.estimated:
            assert tok_tail is not None
            expected = self.tok.restore(now, r.estimated - self.tok.rate * (tok_tail - r.at))
        assert restored == pytest.approx(float(expected), abs=1e-9)
        # Then, if every change since r was a reservation cancelled since, the buckets
        # go back to where they were before the oldest cancelled run of them, keeping
        # what cancellations of earlier tickets gave back meanwhile.
        self.cancelled.add(r.seq)
        start = self.log.index(r.seq)
        later = [self.tickets[e] for e in self.log[start + 1 :] if e is not None]
        if all(e is not None and e in self.cancelled for e in self.log[start:]):
            while start > 0 and self.log[start - 1] in self.cancelled:
                start -= 1
            target = self.tickets[self.log[start] or 0]
            for ref, (level, since), credit in zip(
                (self.req, self.tok), target.snapshot, target.credit, strict=True
            ):
                ref.level, ref.since = level + credit, since
            del self.log[start:]
        else:
            for t in later:
                t.credit = (t.credit[0] + req_back, t.credit[1] + expected)
        del self.req_events[r.seq]
        del self.tok_events[r.seq]

    @precondition(lambda self: any(r.ticket.actual is None for r in self.granted))
    @rule(pick=st.integers(0, 100), actual=st.sampled_from(ACTUALS))
    def settle(self, pick: int, actual: Fraction) -> None:
        """Charge or refund the difference, by the adjust rule."""
        assert self.core is not None
        assert self.tok is not None
        open_ = [r for r in self.granted if r.ticket.actual is None]
        r = open_[pick % len(open_)]
        r.ticket.actual = float(actual)
        now = self.exact_now
        applied = self.core.settle(r.ticket, self.now, float(actual))
        delta = actual - r.estimated
        if delta > 0:
            self.tok.take(now, delta)
            expected = delta
            self.seq += 1
            self.tok_events[self.seq] = (self.seq, self.now, float(delta), False)
        elif delta < 0:
            tail = self._tail(tokens=True)
            latest = now if tail is None else max(now, tail)
            expected = -self.tok.restore(now, -delta - self.tok.rate * (latest - min(r.at, latest)))
            seq, at, _, admitted = self.tok_events[r.seq]
            self.tok_events[r.seq] = (seq, at, float(actual), admitted)
        else:
            expected = Fraction(0)
        if delta != 0:
            self.log.append(None)
        assert applied == pytest.approx(float(expected), abs=1e-6)

    @invariant()
    def agrees_with_model(self) -> None:
        """Both buckets hold what the exact model holds; the queues match."""
        if self.core is None or self.req is None or self.tok is None:
            return
        now = self.exact_now
        for core, ref in ((self.core.requests, self.req), (self.core.tokens, self.tok)):
            available = core.available(self.now)
            assert available <= float(ref.burst)
            assert available == pytest.approx(float(ref.tokens(now)), abs=TOLERANCE)
        assert self.core.requests.waiting == len(self.pending)

    @invariant()
    def window_invariants(self) -> None:
        """In both dimensions no admitted grant exceeds burst + rate * t over any window."""
        if self.req is None or self.tok is None:
            return
        for events, ref in ((self.req_events, self.req), (self.tok_events, self.tok)):
            excess = worst_window_excess(list(events.values()), float(ref.rate), float(ref.burst))
            assert excess <= TOLERANCE

    @invariant()
    def fifo_order(self) -> None:
        """Grant times never decrease in the order the reservations were made."""
        times = [t for _, t, _, admitted in sorted(self.req_events.values()) if admitted]
        assert all(a <= b + 1e-9 for a, b in itertools.pairwise(times))


TestLLMCoreMachine = LLMCoreMachine.TestCase
TestLLMCoreMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
