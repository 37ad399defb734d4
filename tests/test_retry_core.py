"""The retrier's pure core: backoff maths, jitter, the decision, and the budget."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import seawall
from seawall._retry._budget import BudgetCore
from seawall._retry._core import (
    GiveUp,
    GiveUpReason,
    Jitter,
    Retry,
    RetryPolicy,
    compute_backoff,
    decide,
    next_backoff,
)
from seawall.testing import FakeClock


if TYPE_CHECKING:
    from collections.abc import Callable


delays = st.floats(min_value=0, max_value=1e6, allow_nan=False)
multipliers = st.floats(min_value=1, max_value=1e300, allow_nan=False)
attempts = st.integers(min_value=1, max_value=10**30)
draws = st.floats(min_value=0, max_value=1, exclude_max=True)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    """Any valid policy, including extreme multipliers."""
    initial = draw(delays)
    maximum = draw(st.floats(min_value=initial, max_value=max(initial, 1e6) * 2))
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=20)),
        initial_delay=initial,
        max_delay=maximum,
        multiplier=draw(multipliers),
        jitter=draw(st.sampled_from(Jitter)),
        deadline=draw(st.none() | st.floats(min_value=0.001, max_value=1e7)),
        max_retry_after=draw(st.none() | delays),
    )


class TestComputeBackoff:
    """The capped exponential before jitter."""

    def test_grows_by_the_multiplier(self) -> None:
        """0.1, 0.2, 0.4, ... for the defaults."""
        got = [
            compute_backoff(n, initial_delay=0.1, max_delay=5.0, multiplier=2.0)
            for n in range(1, 5)
        ]
        assert got == [0.1, 0.2, 0.4, 0.8]

    def test_capped_at_max_delay(self) -> None:
        """The tenth backoff of 0.1 * 2**9 = 51.2 s is capped at 5 s."""
        assert compute_backoff(10, initial_delay=0.1, max_delay=5.0, multiplier=2.0) == 5.0

    @pytest.mark.parametrize(
        ("attempt", "multiplier"), [(10**6, 2.0), (3, 1e300), (10**30, 1.5), (2**70, 10.0)]
    )
    def test_overflow_clamps_to_max_delay(self, attempt: int, multiplier: float) -> None:
        """A huge attempt number or multiplier yields max_delay, not OverflowError."""
        got = compute_backoff(attempt, initial_delay=0.1, max_delay=5.0, multiplier=multiplier)
        assert got == 5.0

    def test_multiplier_one_is_constant(self) -> None:
        """With multiplier 1 every backoff equals initial_delay, even at huge attempts."""
        assert compute_backoff(10**30, initial_delay=0.3, max_delay=5.0, multiplier=1.0) == 0.3

    def test_zero_initial_delay(self) -> None:
        """initial_delay 0 means no backoff at all."""
        assert compute_backoff(50, initial_delay=0.0, max_delay=5.0, multiplier=1e300) == 0.0

    def test_attempt_below_one_rejected(self) -> None:
        """Attempts count from 1."""
        with pytest.raises(ValueError, match="attempt"):
            compute_backoff(0, initial_delay=0.1, max_delay=5.0, multiplier=2.0)


class TestJitter:
    """One example per jitter mode (AWS Architecture Blog semantics)."""

    def test_none(self) -> None:
        """NONE ignores the draw."""
        policy = RetryPolicy(jitter=Jitter.NONE)
        assert next_backoff(policy, 3, None, 0.9) == 0.4

    def test_full(self) -> None:
        """FULL scales the backoff by the draw: [0, base)."""
        policy = RetryPolicy(jitter=Jitter.FULL)
        assert next_backoff(policy, 3, None, 0.5) == 0.2
        assert next_backoff(policy, 3, None, 0.0) == 0.0

    def test_equal(self) -> None:
        """EQUAL keeps half and jitters the other half: [base/2, base)."""
        policy = RetryPolicy(jitter=Jitter.EQUAL)
        assert next_backoff(policy, 3, None, 0.0) == 0.2
        assert next_backoff(policy, 3, None, 0.5) == pytest.approx(0.3)

    def test_decorrelated_first_retry(self) -> None:
        """DECORRELATED starts from uniform(initial, 3 * initial)."""
        policy = RetryPolicy(jitter=Jitter.DECORRELATED, initial_delay=1.0, max_delay=100.0)
        assert next_backoff(policy, 1, None, 0.0) == 1.0
        assert next_backoff(policy, 1, None, 0.5) == 2.0

    def test_decorrelated_grows_from_previous(self) -> None:
        """DECORRELATED draws from uniform(initial, 3 * previous), capped at max_delay."""
        policy = RetryPolicy(jitter=Jitter.DECORRELATED, initial_delay=1.0, max_delay=10.0)
        assert next_backoff(policy, 2, 2.0, 0.5) == 3.5
        assert next_backoff(policy, 5, 9.0, 0.99) == 10.0

    def test_out_of_range_draw_is_clamped(self) -> None:
        """A random source that misbehaves cannot push a delay past the bounds."""
        policy = RetryPolicy(jitter=Jitter.FULL, max_delay=1.0, initial_delay=1.0)
        assert next_backoff(policy, 1, None, 7.0) == 1.0
        assert next_backoff(policy, 1, None, -3.0) == 0.0

    @given(policy=policies(), attempt=attempts, previous=st.none() | delays, rnd=draws)
    def test_delay_within_bounds(
        self, policy: RetryPolicy, attempt: int, previous: float | None, rnd: float
    ) -> None:
        """Every backoff lies in [0, max_delay], for every parameter and attempt number."""
        if previous is not None:
            previous = min(previous, policy.max_delay)
        delay = next_backoff(policy, attempt, previous, rnd)
        assert 0.0 <= delay <= policy.max_delay

    @given(
        initial=st.floats(min_value=0.001, max_value=10),
        multiplier=st.floats(min_value=1, max_value=100),
        attempt=st.integers(min_value=1, max_value=2000),
    )
    def test_unjittered_delay_non_decreasing(
        self, initial: float, multiplier: float, attempt: int
    ) -> None:
        """Without jitter the backoff never shrinks from one attempt to the next."""
        policy = RetryPolicy(
            initial_delay=initial, max_delay=60.0, multiplier=multiplier, jitter=Jitter.NONE
        )
        assert next_backoff(policy, attempt, None, 0.0) <= next_backoff(
            policy, attempt + 1, None, 0.0
        )


class TestDecide:
    """The retry-or-give-up decision."""

    def test_retry_with_backoff(self) -> None:
        """A retryable failure before the last attempt is retried after the backoff."""
        got = decide(RetryPolicy(jitter=Jitter.NONE), attempt=2, retryable=True)
        assert got == Retry(0.2, 0.2)

    def test_not_retryable(self) -> None:
        """A failure that is not retryable ends the call."""
        assert decide(RetryPolicy(), attempt=1, retryable=False) == GiveUp(
            GiveUpReason.NOT_RETRYABLE
        )

    def test_attempts_exhausted(self) -> None:
        """The max_attempts-th failure ends the call."""
        got = decide(RetryPolicy(max_attempts=3), attempt=3, retryable=True)
        assert got == GiveUp(GiveUpReason.ATTEMPTS_EXHAUSTED)

    def test_retry_after_longer_than_backoff_wins(self) -> None:
        """The wait is max(backoff, retry_after)."""
        policy = RetryPolicy(jitter=Jitter.NONE)
        assert decide(policy, attempt=1, retryable=True, retry_after=2.5) == Retry(2.5, 0.1)
        assert decide(policy, attempt=1, retryable=True, retry_after=0.01) == Retry(0.1, 0.1)

    def test_retry_after_over_default_cap_gives_up(self) -> None:
        """By default the cap is max_delay: asking for more gives up at once."""
        policy = RetryPolicy(max_delay=5.0)
        assert decide(policy, attempt=1, retryable=True, retry_after=5.0) == Retry(5.0, 0.0)
        got = decide(policy, attempt=1, retryable=True, retry_after=5.01)
        assert got == GiveUp(GiveUpReason.RETRY_AFTER_OVER_CAP)

    def test_explicit_retry_after_cap(self) -> None:
        """max_retry_after may exceed max_delay for server-driven waits."""
        policy = RetryPolicy(max_delay=5.0, max_retry_after=60.0, jitter=Jitter.NONE)
        assert decide(policy, attempt=1, retryable=True, retry_after=30.0) == Retry(30.0, 0.1)

    def test_odd_retry_after_values(self) -> None:
        """NaN counts as no Retry-After; a negative one as zero."""
        policy = RetryPolicy(jitter=Jitter.NONE)
        assert decide(policy, attempt=1, retryable=True, retry_after=math.nan) == Retry(0.1, 0.1)
        assert decide(policy, attempt=1, retryable=True, retry_after=-4.0) == Retry(0.1, 0.1)

    def test_deadline(self) -> None:
        """The next attempt must start strictly before the deadline."""
        policy = RetryPolicy(jitter=Jitter.NONE, initial_delay=0.5, deadline=2.0)
        assert decide(policy, attempt=1, retryable=True, elapsed=1.25) == Retry(0.5, 0.5)
        got = decide(policy, attempt=1, retryable=True, elapsed=1.5)
        assert got == GiveUp(GiveUpReason.DEADLINE_EXCEEDED)

    def test_budget(self) -> None:
        """A budget that refuses stops the retry."""
        got = decide(RetryPolicy(), attempt=1, retryable=True, budget_allows=False)
        assert got == GiveUp(GiveUpReason.BUDGET_EXHAUSTED)

    def test_order_of_reasons(self) -> None:
        """When several reasons apply, the documented order picks one."""
        policy = RetryPolicy(max_attempts=2, deadline=1.0)
        assert decide(
            policy, attempt=2, retryable=False, retry_after=99.0, elapsed=5.0, budget_allows=False
        ) == GiveUp(GiveUpReason.NOT_RETRYABLE)
        assert decide(
            policy, attempt=2, retryable=True, retry_after=99.0, elapsed=5.0, budget_allows=False
        ) == GiveUp(GiveUpReason.ATTEMPTS_EXHAUSTED)
        assert decide(
            policy, attempt=1, retryable=True, retry_after=99.0, elapsed=5.0, budget_allows=False
        ) == GiveUp(GiveUpReason.RETRY_AFTER_OVER_CAP)
        assert decide(
            policy, attempt=1, retryable=True, elapsed=5.0, budget_allows=False
        ) == GiveUp(GiveUpReason.DEADLINE_EXCEEDED)

    @given(
        policy=policies(),
        attempt=st.integers(min_value=1, max_value=40),
        retry_after=st.none() | st.floats(min_value=0, max_value=1e7),
        elapsed=st.floats(min_value=0, max_value=1e7),
        rnd=draws,
    )
    def test_decision_properties(
        self,
        policy: RetryPolicy,
        attempt: int,
        retry_after: float | None,
        elapsed: float,
        rnd: float,
    ) -> None:
        """Attempts, Retry-After cap and deadline rules hold for any input."""
        got = decide(
            policy,
            attempt=attempt,
            retryable=True,
            retry_after=retry_after,
            elapsed=elapsed,
            rnd=rnd,
        )
        if attempt >= policy.max_attempts:
            assert got == GiveUp(GiveUpReason.ATTEMPTS_EXHAUSTED)
            return
        if retry_after is not None and retry_after > policy.retry_after_cap:
            assert got == GiveUp(GiveUpReason.RETRY_AFTER_OVER_CAP)
            return
        if isinstance(got, GiveUp):
            assert got.reason is GiveUpReason.DEADLINE_EXCEEDED
            assert policy.deadline is not None
            return
        assert 0.0 <= got.backoff <= policy.max_delay
        assert got.delay <= max(policy.max_delay, policy.retry_after_cap)
        if retry_after is not None:
            assert got.delay == max(got.backoff, retry_after)
            assert got.delay <= max(got.backoff, policy.retry_after_cap)
        else:
            assert got.delay <= policy.max_delay
        if policy.deadline is not None:
            assert elapsed + got.delay < policy.deadline


class TestPolicyValidation:
    """Bad options are refused when the policy is built, naming the parameter."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "name"),
        [
            ({"max_attempts": 0}, ValueError, "max_attempts"),
            ({"max_attempts": 2.5}, TypeError, "max_attempts"),
            ({"initial_delay": -1.0}, ValueError, "initial_delay"),
            ({"max_delay": math.inf}, ValueError, "max_delay"),
            ({"initial_delay": 6.0, "max_delay": 5.0}, ValueError, "initial_delay"),
            ({"multiplier": 0.5}, ValueError, "multiplier"),
            ({"multiplier": math.nan}, ValueError, "multiplier"),
            ({"multiplier": "2"}, TypeError, "multiplier"),
            ({"jitter": "full"}, TypeError, "jitter"),
            ({"deadline": 0.0}, ValueError, "deadline"),
            ({"max_retry_after": -1.0}, ValueError, "max_retry_after"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, object], error: type[Exception], name: str) -> None:
        """Each invalid option raises with its name in the message."""
        with pytest.raises(error, match=name):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]

    def test_ints_become_floats(self) -> None:
        """Durations and the multiplier are normalised to floats once."""
        policy = RetryPolicy(initial_delay=1, max_delay=3, multiplier=2)
        assert (policy.initial_delay, policy.max_delay, policy.multiplier) == (1.0, 3.0, 2.0)
        assert all(type(v) is float for v in (policy.initial_delay, policy.multiplier))


class BudgetMachine(RuleBasedStateMachine):
    """The budget core against a reference model in exact fractions of a token."""

    def __init__(self) -> None:
        super().__init__()
        self.core: BudgetCore | None = None
        self.model = 0
        self.max_units = 0
        self.ratio_units = 0

    @precondition(lambda self: self.core is None)
    @rule(
        max_units=st.integers(min_value=1, max_value=1_000_000),
        ratio_units=st.integers(min_value=1, max_value=5_000),
    )
    def create(self, max_units: int, ratio_units: int) -> None:
        """Build a budget; it starts full."""
        self.core = BudgetCore(max_units / 1000, ratio_units / 1000)
        self.model = self.max_units = max_units
        self.ratio_units = ratio_units

    @precondition(lambda self: self.core is not None)
    @rule()
    def failure(self) -> None:
        """A failure takes one token, and a retry is allowed iff tokens > max / 2."""
        assert self.core is not None
        allowed = self.core.record_failure()
        self.model = max(0, self.model - 1000)
        assert allowed == (2 * self.model > self.max_units)

    @precondition(lambda self: self.core is not None)
    @rule()
    def success(self) -> None:
        """A success gives back token_ratio, up to max_tokens."""
        assert self.core is not None
        self.core.record_success()
        self.model = min(self.max_units, self.model + self.ratio_units)

    @invariant()
    def matches_model(self) -> None:
        """Tokens equal the model's and stay within [0, max_tokens]."""
        if self.core is None:
            return
        assert self.core.tokens == self.model / 1000
        assert 0 <= self.core.tokens <= self.core.max_tokens
        assert self.core.allows_retry() == (2 * self.model > self.max_units)


TestBudgetMachine = BudgetMachine.TestCase


class TestBudgetCore:
    """Examples and validation of the budget core and its thread-safe shell."""

    def test_grpc_example(self) -> None:
        """With 10 tokens, retries stop after 5 failures and resume after enough successes."""
        core = BudgetCore(10, 0.1)
        assert [core.record_failure() for _ in range(6)] == [True] * 4 + [False] * 2
        assert core.tokens == 4.0
        for _ in range(11):
            core.record_success()
        assert core.tokens == 5.1
        assert core.allows_retry()

    @pytest.mark.parametrize(
        ("kwargs", "error", "name"),
        [
            ({"max_tokens": 0}, ValueError, "max_tokens"),
            ({"max_tokens": math.inf}, ValueError, "max_tokens"),
            ({"max_tokens": "10"}, TypeError, "max_tokens"),
            ({"token_ratio": 0.0001}, ValueError, "token_ratio"),
            ({"token_ratio": -1}, ValueError, "token_ratio"),
            ({"token_ratio": True}, TypeError, "token_ratio"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, object], error: type[Exception], name: str) -> None:
        """Bad budget options raise naming the parameter."""
        with pytest.raises(error, match=name):
            seawall.RetryBudget(**kwargs)  # type: ignore[arg-type]

    def test_statistics_and_repr(self) -> None:
        """The shell counts what it was told and shows its tokens."""
        budget = seawall.RetryBudget(max_tokens=4, token_ratio=0.5)
        budget.record_failure()
        budget.record_failure()
        budget.record_success()
        assert budget.statistics() == seawall.RetryBudgetStatistics(
            tokens=2.5, max_tokens=4.0, token_ratio=0.5, successes=1, failures=2, throttled=1
        )
        assert repr(budget) == "RetryBudget(tokens=2.5, max_tokens=4.0, token_ratio=0.5)"
        assert "tokens=4.0" in repr(BudgetCore(4, 1))


# -- a whole run against a reference model ----------------------------------------------

OK, RETRYABLE, FATAL = "ok", "retryable", "fatal"


@dataclass(frozen=True)
class Expected:
    """What the reference model predicts for a run."""

    attempts: int
    retries: int
    sleeps: list[float]
    outcome: str


def reference_run(outcomes: list[str], max_attempts: int, initial: float, mult: float) -> Expected:
    """A straightforward retry loop without jitter: the model the retrier must match."""
    sleeps: list[float] = []
    for number, outcome in enumerate(outcomes, start=1):
        if outcome in (OK, FATAL) or number == max_attempts:
            return Expected(number, number - 1, sleeps, outcome)
        delay = min(5.0, initial * mult ** (number - 1))
        if delay > 0:  # A zero delay never sleeps.
            sleeps.append(delay)
    raise AssertionError("unreachable")


class TestRunAgainstModel:
    """Full Retrier runs against the reference model."""

    @settings(max_examples=150)
    @given(
        outcomes=st.lists(st.sampled_from([OK, RETRYABLE, FATAL]), min_size=1, max_size=8),
        max_attempts=st.integers(min_value=1, max_value=8),
        initial=st.sampled_from([0.0, 0.125, 0.5, 1.0]),
        mult=st.sampled_from([1.0, 2.0, 3.0]),
    )
    def test_sync_run_matches_model(
        self, outcomes: list[str], max_attempts: int, initial: float, mult: float
    ) -> None:
        """Attempts, sleeps and the final outcome match the model for any outcome list."""
        outcomes = [*outcomes, OK]  # The user function always ends up succeeding.
        expected = reference_run(outcomes, max_attempts, initial, mult)
        clock = FakeClock()
        retrier = seawall.Retrier(
            max_attempts=max_attempts,
            initial_delay=initial,
            multiplier=mult,
            jitter=Jitter.NONE,
            clock=clock,
        )
        calls = iter(outcomes)
        seen = 0

        def flaky() -> str:
            nonlocal seen
            seen += 1
            outcome = next(calls)
            if outcome == RETRYABLE:
                raise ConnectionError(seen)
            if outcome == FATAL:
                raise ValueError(seen)
            return "done"

        got, error = outcome_of(retrier, flaky)
        if got == RETRYABLE:
            assert error is not None
            assert error.args == (seen,)  # The last attempt's own exception.
        assert (seen, clock.sleeps, got) == (expected.attempts, expected.sleeps, expected.outcome)
        stats = retrier.statistics()
        assert stats.attempts == seen
        assert stats.retries == expected.retries
        assert stats.calls == 1

    @given(seed=st.integers(0, 2**32), jitter=st.sampled_from(Jitter))
    def test_seeded_rng_reproduces_delays(self, seed: int, jitter: Jitter) -> None:
        """The same seed gives the same sleeps, each within [0, max_delay]."""
        runs = []
        for _ in range(2):
            clock = FakeClock()
            retrier = seawall.Retrier(
                max_attempts=6, jitter=jitter, rng=random.Random(seed).random, clock=clock
            )
            with pytest.raises(TimeoutError):
                retrier.call(_always_times_out)
            runs.append(clock.sleeps)
        assert runs[0] == runs[1]
        assert len(runs[0]) == 5
        assert all(0.0 <= s <= 5.0 for s in runs[0])


def outcome_of(retrier: seawall.Retrier, fn: Callable[[], str]) -> tuple[str, Exception | None]:
    """Run *fn* through *retrier* and name the outcome."""
    try:
        assert retrier.call(fn) == "done"
    except ConnectionError as exc:
        return RETRYABLE, exc
    except ValueError as exc:
        return FATAL, exc
    return OK, None


def _always_times_out() -> None:
    raise TimeoutError
