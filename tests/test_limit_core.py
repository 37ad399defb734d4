"""The token bucket's pure core: examples, plus a hypothesis model against exact arithmetic."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seawall._limit._bucket import (
    EPSILON_TOKENS,
    NEVER,
    BucketCore,
    Rejection,
    Reservation,
    check_burst,
    check_cost,
    check_max_wait,
    check_rate,
)


def reserved(decision: Reservation | Rejection | None) -> Reservation:
    assert isinstance(decision, Reservation), decision
    return decision


class TestValidation:
    """The checks shared by every limiter name the parameter."""

    @pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
    def test_rate_out_of_range(self, bad: float) -> None:
        """rate must be finite and > 0."""
        with pytest.raises(ValueError, match="rate"):
            check_rate(bad)

    @pytest.mark.parametrize("bad", [0, 0.5, math.inf, math.nan])
    def test_burst_out_of_range(self, bad: float) -> None:
        """burst must be finite and >= 1."""
        with pytest.raises(ValueError, match="burst"):
            check_burst(bad)

    @pytest.mark.parametrize("bad", ["1", True, None])
    def test_wrong_types(self, bad: object) -> None:
        """Non-numbers (bool included) are TypeErrors naming the parameter."""
        with pytest.raises(TypeError, match="rate"):
            check_rate(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="burst"):
            check_burst(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="cost"):
            check_cost(bad, 5)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [0, -1, math.nan, 5.5, math.inf])
    def test_cost_out_of_range(self, bad: float) -> None:
        """cost must be in (0, burst]; above burst says it could never be granted."""
        with pytest.raises(ValueError, match="cost"):
            check_cost(bad, 5)

    def test_fractional_cost_is_fine(self) -> None:
        """Fractional costs up to burst are accepted as given."""
        assert check_cost(0.25, 5) == 0.25
        assert check_cost(5, 5) == 5

    def test_max_wait(self) -> None:
        """max_wait is None, seconds or a timedelta, >= 0."""
        assert check_max_wait(None) is None
        assert check_max_wait(timedelta(milliseconds=1500)) == 1.5
        assert check_max_wait(0) == 0.0
        with pytest.raises(ValueError, match="max_wait"):
            check_max_wait(-1)
        with pytest.raises(TypeError, match="max_wait"):
            check_max_wait("1")  # type: ignore[arg-type]


class TestTaking:
    """try_take and available: a bucket that starts full and refills at rate."""

    def test_starts_full(self) -> None:
        """A new bucket holds burst tokens and is idle."""
        core = BucketCore(2.0, 5.0)
        assert core.available(0.0) == 5.0
        assert core.idle(0.0)
        assert core.full_at == -math.inf

    def test_drains_burst_then_refuses(self) -> None:
        """burst tokens are granted at once, the next one is refused."""
        core = BucketCore(2.0, 3.0)
        assert [core.try_take(0.0, 1) for _ in range(4)] == [True, True, True, False]
        assert core.available(0.0) == 0.0
        assert not core.idle(0.0)

    def test_refills_at_rate(self) -> None:
        """After 1/rate seconds one token is back; after burst/rate the bucket is full."""
        core = BucketCore(10.0, 2.0)
        assert core.try_take(0.0, 2)
        assert not core.try_take(0.05, 1)
        assert core.try_take(0.1, 1)
        assert core.available(0.3) == 2.0  # full_at is 0.30000000000000004: within slack
        assert core.idle(0.31)  # idle is exact: only a bucket that behaves as new is idle

    def test_epsilon_absorbs_rounding(self) -> None:
        """Times like 0.1 + 0.2 still see a token refilled after exactly 1/rate steps."""
        core = BucketCore(10.0, 1.0)
        now = 0.0
        for _ in range(50):
            assert core.try_take(now, 1)
            now += 0.1
        assert core.slack == EPSILON_TOKENS / 10.0

    def test_fractional_costs(self) -> None:
        """Fractions of tokens add up exactly as whole ones."""
        core = BucketCore(1.0, 1.0)
        assert core.try_take(0.0, 0.5)
        assert core.try_take(0.0, 0.5)
        assert not core.try_take(0.0, 0.5)
        assert core.try_take(0.5, 0.5)

    def test_refused_take_changes_nothing(self) -> None:
        """A refused try_take leaves the state untouched."""
        core = BucketCore(1.0, 2.0)
        core.try_take(0.0, 2)
        before = core.full_at
        assert not core.try_take(0.5, 1)
        assert core.full_at == before


class TestReservations:
    """reserve, complete, the FIFO tail and max_wait."""

    def test_granted_at_once_returns_none(self) -> None:
        """A reservation that needs no wait returns None and takes the tokens."""
        core = BucketCore(1.0, 2.0)
        assert core.reserve(0.0, 2) is None
        assert core.available(0.0) == 0.0

    def test_wait_goes_into_debt(self) -> None:
        """A reservation takes its tokens now and is ready when they have refilled."""
        core = BucketCore(2.0, 2.0)
        core.reserve(0.0, 2)
        res = reserved(core.reserve(0.0, 1))
        assert res.ready_at == 0.5
        assert res.reserved_at == 0.0
        assert core.available(0.0) == -1.0
        assert core.waiting == 1
        assert core.tail == 0.5

    def test_fifo_large_cost_not_starved(self) -> None:
        """A large reservation queued first is ready before the small ones after it."""
        core = BucketCore(1.0, 5.0)
        core.reserve(0.0, 5)
        big = reserved(core.reserve(0.0, 5))
        small = [reserved(core.reserve(0.1 * i, 1)) for i in range(1, 4)]
        assert big.ready_at == 5.0
        assert [r.ready_at for r in small] == [6.0, 7.0, 8.0]

    def test_try_take_never_jumps_the_queue(self) -> None:
        """While a reservation is pending, try_take refuses even if tokens have refilled."""
        core = BucketCore(1.0, 1.0)
        core.reserve(0.0, 1)
        res = reserved(core.reserve(0.0, 1))
        assert not core.try_take(0.9, 0.5)
        core.complete(res)
        assert core.waiting == 0
        assert core.try_take(2.0, 1)

    def test_max_wait_rejection_changes_nothing(self) -> None:
        """A wait longer than max_wait is a Rejection with the wait needed; nothing taken."""
        core = BucketCore(1.0, 1.0)
        core.reserve(0.0, 1)
        before = core.full_at
        decision = core.reserve(0.0, 1, max_wait=0.5)
        assert decision == Rejection(1.0)
        assert core.full_at == before
        assert core.waiting == 0
        assert isinstance(core.reserve(0.0, 1, max_wait=1.0), Reservation)

    def test_ready_time_is_a_pure_query(self) -> None:
        """ready_time answers without changing anything, now when no wait is needed."""
        core = BucketCore(1.0, 2.0)
        assert core.ready_time(3.0, 2) == 3.0
        core.reserve(3.0, 2)
        assert core.ready_time(3.0, 1) == 4.0
        assert core.available(3.0) == 0.0

    def test_complete_is_idempotent(self) -> None:
        """Completing twice, or completing a foreign reservation, does nothing."""
        core = BucketCore(1.0, 1.0)
        core.reserve(0.0, 1)
        res = reserved(core.reserve(0.0, 1))
        core.complete(res)
        core.complete(res)
        core.complete(Reservation(1, 9.0, 0.0, 0.0))
        assert core.waiting == 0
        assert core.tail == -math.inf


class TestCancel:
    """cancel undoes the latest reservation exactly, others by Go's rule."""

    def test_cancel_last_restores_everything(self) -> None:
        """The last reservation in the queue gets all of its tokens back."""
        core = BucketCore(1.0, 2.0)
        core.reserve(0.0, 2)
        res = reserved(core.reserve(0.0, 2))
        assert core.cancel(res, 0.5) == 2.0
        assert core.available(0.5) == 0.5
        assert core.waiting == 0
        assert core.try_take(1.0, 1)

    def test_cancel_middle_keeps_later_guarantees(self) -> None:
        """Only the tokens no later reservation depends on come back."""
        core = BucketCore(1.0, 4.0)
        core.reserve(0.0, 4)
        first = reserved(core.reserve(0.0, 3))  # ready at 3
        second = reserved(core.reserve(0.0, 1))  # ready at 4
        assert core.cancel(first, 1.0) == 2.0  # 3 - rate * (4 - 3)
        assert core.tail == second.ready_at
        # A newcomer still queues behind the pending reservation.
        assert core.ready_time(1.0, 0.5) >= second.ready_at

    def test_cancelling_a_queue_oldest_first_restores_everything(self) -> None:
        """Once the last waiter goes, every cancelled waiter's tokens are back."""
        core = BucketCore(1.0, 4.0)
        core.reserve(0.0, 4)  # granted at once: the bucket is empty
        first = reserved(core.reserve(0.0, 3))  # ready at 3
        second = reserved(core.reserve(0.0, 1))  # ready at 4
        assert core.cancel(first, 1.0) == 2.0  # Go's rule while `second` waits
        assert core.cancel(second, 1.0) == 2.0  # the rest of both comes back
        assert core.available(1.0) == 1.0  # as if neither had been made
        assert core.waiting == 0
        assert core.tail == float("-inf")

    def test_a_grant_at_once_is_never_undone(self) -> None:
        """Cancelling after an immediate grant falls back to Go's rule."""
        core = BucketCore(1.0, 2.0)
        core.reserve(0.0, 2)
        res = reserved(core.reserve(0.0, 1))  # ready at 1
        assert core.try_take(1.0, 0.5) is False  # someone waits: no jumping the queue
        core.complete(res)
        assert core.cancel(res, 1.0) is None

    def test_cancel_after_ready_restores_nothing(self) -> None:
        """A reservation whose ready time has passed was granted; cancel returns None."""
        core = BucketCore(1.0, 1.0)
        core.reserve(0.0, 1)
        res = reserved(core.reserve(0.0, 1))
        assert core.cancel(res, 1.0) is None
        assert core.cancel(res, 1.0) is None
        assert core.waiting == 0

    def test_cancel_never_fills_above_burst(self) -> None:
        """Restored tokens stop at burst."""
        core = BucketCore(1.0, 2.0)
        core.reserve(0.0, 1)
        core.reserve(0.0, 1)
        res = reserved(core.reserve(0.0, 2))
        core.cancel(res, 1.5)
        assert core.available(1.5) <= 2.0


class TestMultiBucketCancel:
    """Undoing a commit made at a common time later than this bucket needed."""

    def test_cancel_restores_the_refill_lost_to_a_later_common_time(self) -> None:
        """The bucket that did not need to wait is put back exactly (no lost refill)."""
        requests, tokens = BucketCore(1.0, 60.0), BucketCore(100.0, 6000.0)
        for core in (requests, tokens):
            core.commit(0.0, 1 if core is requests else 6000, 0.0)
        at = max(requests.ready_time(0.0, 1), tokens.ready_time(0.0, 6000))
        assert at == 60.0  # the token bucket binds
        waiting_requests = reserved(requests.commit(0.0, 1, at))
        waiting_tokens = reserved(tokens.commit(0.0, 6000, at))
        assert requests.cancel(waiting_requests, 0.0) is not None
        assert tokens.cancel(waiting_tokens, 0.0) is not None
        assert requests.available(0.0) == 59.0
        assert tokens.available(0.0) == 0.0


class TestMultiBucket:
    """ready_time + commit at a common time, and adjust, for multi-bucket limiters."""

    def test_commit_at_common_time(self) -> None:
        """Two buckets reserve at the later of their ready times."""
        requests = BucketCore(1.0, 1.0)
        tokens = BucketCore(100.0, 1000.0)
        requests.reserve(0.0, 1)
        at = max(requests.ready_time(0.0, 1), tokens.ready_time(0.0, 500))
        assert at == 1.0
        r1 = requests.commit(0.0, 1, at)
        r2 = tokens.commit(0.0, 500, at)
        assert r1 is not None
        assert r2 is not None
        assert r1.ready_at == r2.ready_at == 1.0
        # The tokens bucket was full until `at`, then 500 were taken.
        assert tokens.available(1.0) == 500.0

    def test_commit_now_returns_none(self) -> None:
        """A commit at or before now is a grant now."""
        core = BucketCore(1.0, 2.0)
        assert core.commit(0.0, 1, 0.0) is None
        assert core.available(0.0) == 1.0

    def test_commit_before_ready_is_an_error(self) -> None:
        """Committing earlier than ready_time would break the invariant."""
        core = BucketCore(1.0, 1.0)
        core.reserve(0.0, 1)
        with pytest.raises(ValueError, match="earlier than ready_time"):
            core.commit(0.0, 1, 0.5)

    def test_adjust_charge_goes_into_debt(self) -> None:
        """A charge takes tokens now, below zero if need be."""
        core = BucketCore(10.0, 100.0)
        assert core.adjust(0.0, 150, granted_at=0.0) == 150
        assert core.available(0.0) == -50.0
        assert core.ready_time(0.0, 10) == 6.0

    def test_adjust_refund_right_after_grant(self) -> None:
        """Unused tokens refunded at once come back."""
        core = BucketCore(10.0, 100.0)
        core.reserve(0.0, 80)
        assert core.adjust(0.0, -60, granted_at=0.0) == 60
        assert core.available(0.0) == 80.0

    def test_adjust_refund_counts_the_refill_since(self) -> None:
        """Tokens refilled since the grant are not refunded twice; never above burst."""
        core = BucketCore(10.0, 100.0)
        core.reserve(0.0, 80)
        assert core.adjust(5.0, -60, granted_at=0.0) == 10.0  # 60 - 10 * 5
        assert core.available(5.0) == 80.0
        assert core.adjust(9.0, -60, granted_at=0.0) == 0.0
        assert core.available(20.0) == 100.0


# -- hypothesis: the core against an exact reference model ------------------------------


@dataclass
class RefReservation:
    """A reservation in the reference model, with the bucket's state just before it."""

    cost: Fraction
    ready: Fraction
    core: Reservation
    seq: int
    prior: tuple[Fraction, Fraction]
    cancelled: bool = False


class ReferenceBucket:
    """Tokens and a timestamp in exact fractions, with an explicit pending list."""

    def __init__(self, rate: Fraction, burst: Fraction) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst  # tokens at time `since`, may be negative
        self.since = Fraction(0)
        self.pending: list[RefReservation] = []
        # Reservations that can still be undone exactly, oldest first.
        self.undo: list[RefReservation] = []
        self.slack = Fraction(EPSILON_TOKENS) / rate

    def tokens(self, t: Fraction) -> Fraction:
        return min(self.burst, self.level + self.rate * (t - self.since))

    def tail(self) -> Fraction | None:
        return max((r.ready for r in self.pending), default=None)

    def ready(self, now: Fraction, cost: Fraction) -> Fraction:
        ready = now + max(Fraction(0), cost - self.tokens(now)) / self.rate
        tail = self.tail()
        if tail is not None:
            ready = max(ready, tail)
        return now if ready - now <= self.slack else ready

    def take(self, at: Fraction, cost: Fraction) -> None:
        self.level = self.tokens(at) - cost
        self.since = at

    def restore(self, now: Fraction, tokens: Fraction) -> None:
        self.level = min(self.burst, self.tokens(now) + tokens)
        self.since = now

    def granted(self, r: RefReservation) -> None:
        if r in self.undo:
            del self.undo[: self.undo.index(r) + 1]

    def cancel(self, now: Fraction, r: RefReservation, tail: Fraction) -> Fraction:
        """Undo exactly when *r* is the latest undoable one, else Go's rule; the gain."""
        before = self.tokens(now)
        if self.undo and self.undo[-1] is r:
            self.level, self.since = self.undo.pop().prior
            while self.undo and self.undo[-1].cancelled:
                self.level, self.since = self.undo.pop().prior
            return self.tokens(now) - before
        r.cancelled = True
        self.restore(now, max(Fraction(0), r.cost - self.rate * (tail - r.ready)))
        gained = self.tokens(now) - before
        later = self.undo.index(r) + 1 if r in self.undo else 0
        for entry in self.undo[later:]:
            level, since = entry.prior
            entry.prior = (level + gained, since)
        return gained


RATES = [Fraction(1, 2), Fraction(1), Fraction(2), Fraction(10)]
BURSTS = [Fraction(1), Fraction(2), Fraction(5)]
COSTS = [Fraction(1, 2), Fraction(1), Fraction(3, 2), Fraction(2), Fraction(3), Fraction(5)]
TOLERANCE = 1e-6


class BucketMachine(RuleBasedStateMachine):
    """The float core against the exact reference; the window invariant over all grants."""

    def __init__(self) -> None:
        super().__init__()
        self.core: BucketCore | None = None
        self.ref: ReferenceBucket | None = None
        self.now = 0.0
        # (grant time, cost, sequence number); cancelled reservations are removed.
        self.grants: dict[int, tuple[float, Fraction]] = {}
        self.seq = 0

    @property
    def exact_now(self) -> Fraction:
        return Fraction(self.now)

    @precondition(lambda self: self.core is None)
    @rule(rate=st.sampled_from(RATES), burst=st.sampled_from(BURSTS))
    def start(self, rate: Fraction, burst: Fraction) -> None:
        """Create the bucket."""
        self.core = BucketCore(float(rate), float(burst))
        self.ref = ReferenceBucket(rate, burst)

    def _cost(self, cost: Fraction) -> Fraction:
        assert self.ref is not None
        return min(cost, self.ref.burst)

    def _grant(self, at: float, cost: Fraction) -> int:
        self.seq += 1
        self.grants[self.seq] = (at, cost)
        return self.seq

    @precondition(lambda self: self.core is not None)
    @rule(dt=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 3.0]))
    def advance(self, dt: float) -> None:
        """Time passes; waiters whose ready time has come complete."""
        assert self.core is not None
        assert self.ref is not None
        self.now += dt
        for r in list(self.ref.pending):
            # The core's own float ready time decides, as in the shells: the exact one
            # may round to a float one ulp above it, and the core would then call the
            # reservation due while the model still counted it pending.
            if r.core.ready_at <= self.now:
                self.core.complete(r.core)
                self.ref.pending.remove(r)
                self.ref.granted(r)

    @precondition(lambda self: self.core is not None)
    @rule(cost=st.sampled_from(COSTS))
    def try_take(self, cost: Fraction) -> None:
        """try_take agrees with the reference."""
        assert self.core is not None
        assert self.ref is not None
        cost = self._cost(cost)
        now = self.exact_now
        expected = self.ref.ready(now, cost) == now
        assert self.core.try_take(self.now, float(cost)) is expected
        if expected:
            self.ref.take(now, cost)
            self.ref.undo.clear()
            self._grant(self.now, cost)

    @precondition(lambda self: self.core is not None)
    @rule(cost=st.sampled_from(COSTS), max_wait=st.sampled_from([None, 0.0, 0.5, 2.0]))
    def reserve(self, cost: Fraction, max_wait: float | None) -> None:
        """reserve agrees with the reference: grant now, wait until ready, or reject."""
        assert self.core is not None
        assert self.ref is not None
        cost = self._cost(cost)
        now = self.exact_now
        ready = self.ref.ready(now, cost)
        decision = self.core.reserve(self.now, float(cost), max_wait)
        if ready == now:
            assert decision is None
            self.ref.take(now, cost)
            self.ref.undo.clear()
            self._grant(self.now, cost)
        elif max_wait is not None and ready - now > Fraction(max_wait) + self.ref.slack:
            assert isinstance(decision, Rejection)
            assert decision.retry_after == pytest.approx(float(ready - now), abs=1e-9)
        else:
            assert isinstance(decision, Reservation)
            assert decision.ready_at == pytest.approx(float(ready), abs=1e-9)
            prior = (self.ref.level, self.ref.since)
            self.ref.take(ready, cost)
            seq = self._grant(decision.ready_at, cost)
            entry = RefReservation(cost, ready, decision, seq, prior)
            self.ref.pending.append(entry)
            self.ref.undo.append(entry)

    @precondition(lambda self: self.ref is not None and self.ref.pending)
    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        """A waiter gives up: the core restores what the reference restores."""
        assert self.core is not None
        assert self.ref is not None
        r = self.ref.pending[pick % len(self.ref.pending)]
        now = self.exact_now
        tail = self.ref.tail()
        assert tail is not None
        self.ref.pending.remove(r)
        restored = self.core.cancel(r.core, self.now)
        assert restored is not None  # advance() completes every reservation that is due
        actual = self.ref.cancel(now, r, tail)
        assert restored == pytest.approx(float(actual), abs=1e-9)
        del self.grants[r.seq]

    @invariant()
    def agrees_with_reference(self) -> None:
        """Available tokens match the exact model and never exceed burst."""
        if self.core is None or self.ref is None:
            return
        available = self.core.available(self.now)
        assert available <= float(self.ref.burst)
        assert available == pytest.approx(float(self.ref.tokens(self.exact_now)), abs=TOLERANCE)
        assert self.core.waiting == len(self.ref.pending)

    @invariant()
    def nobody_waiting_means_nothing_to_undo(self) -> None:
        """``tail == NEVER`` exactly when nobody waits, and then nothing can be undone.

        The shells' fast paths rely on it: they take tokens when ``tail == NEVER``
        without clearing the undo list, as `BucketCore.try_take` does.
        """
        if self.core is None:
            return
        assert (self.core.tail == NEVER) is (self.core.waiting == 0)
        if self.core.tail == NEVER:
            assert self.core._undo is None

    @invariant()
    def window_invariant(self) -> None:
        """In every window [t1, t2] of grants, tokens granted <= burst + rate * (t2 - t1)."""
        if self.ref is None:
            return
        grants = sorted(self.grants.values())
        burst, rate = float(self.ref.burst), float(self.ref.rate)
        prefix = [0.0]
        for _, cost in grants:
            prefix.append(prefix[-1] + float(cost))
        for i, (t1, _) in enumerate(grants):
            for j in range(i, len(grants)):
                t2 = grants[j][0]
                assert prefix[j + 1] - prefix[i] <= burst + rate * (t2 - t1) + TOLERANCE

    @invariant()
    def fifo_order(self) -> None:
        """Grant times are non-decreasing in the order the grants were made."""
        times = [self.grants[seq][0] for seq in sorted(self.grants)]
        assert all(a <= b + 1e-9 for a, b in itertools.pairwise(times))


TestBucketMachine = BucketMachine.TestCase
TestBucketMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
