"""The hedger's pure core: the per-call decision, the latency window and the budget."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from seawall import HedgeReason
from seawall._hedge._core import (
    FAILED,
    FAILED_PERMANENTLY,
    LAUNCH_AFTER_DELAY,
    LAUNCH_AFTER_FAILURE,
    SUCCEEDED,
    WAIT_FOR_OUTCOME,
    AdaptiveState,
    Fail,
    HedgeBudgetCore,
    HedgeRun,
    LatencyWindow,
    Launch,
    Wait,
    Win,
)


def new_run(delay: float = 0.2, max_hedges: int = 1, start: float = 0.0) -> HedgeRun:
    """A fresh run whose primary started at *start*."""
    return HedgeRun(start=start, delay=delay, max_hedges=max_hedges)


class TestDecisionExamples:
    """The decision in hand-picked situations."""

    def test_waits_for_the_delay_then_launches(self) -> None:
        """Before the delay: wait until start + delay; at it: launch."""
        run = new_run(start=10.0)
        assert run.decide(10.1) == Wait(10.0 + 0.2)
        assert run.decide(10.2) == LAUNCH_AFTER_DELAY

    def test_next_hedge_counts_from_the_latest_launch(self) -> None:
        """With two hedges, the second is due delay after the first."""
        run = new_run(max_hedges=2)
        assert run.launch(0.25, HedgeReason.DELAY_ELAPSED) == 1
        assert run.decide(0.3) == Wait(0.25 + 0.2)

    def test_no_more_than_max_hedges(self) -> None:
        """After max_hedges launches the run only waits for outcomes."""
        run = new_run()
        run.launch(0.2, HedgeReason.DELAY_ELAPSED)
        assert run.decide(99) == WAIT_FOR_OUTCOME
        with pytest.raises(RuntimeError, match="no hedge"):
            run.launch(99, HedgeReason.DELAY_ELAPSED)

    def test_first_success_wins(self) -> None:
        """The first success in completion order wins, even over an earlier attempt."""
        run = new_run()
        run.launch(0.2, HedgeReason.DELAY_ELAPSED)
        run.completed(1, SUCCEEDED)
        run.completed(0, SUCCEEDED)
        assert run.decide(0.3) == Win(1)
        assert run.winner == 1

    def test_retryable_failure_launches_at_once(self) -> None:
        """A retryable failure before the delay launches a hedge right away."""
        run = new_run()
        run.completed(0, FAILED)
        assert run.decide(0.01) == LAUNCH_AFTER_FAILURE
        run.launch(0.01, HedgeReason.ATTEMPT_FAILED)
        assert run.decide(0.02) == WAIT_FOR_OUTCOME

    def test_permanent_failure_of_lone_primary_fails(self) -> None:
        """A permanent failure with nothing running ends the call with attempt 0."""
        run = new_run()
        run.completed(0, FAILED_PERMANENTLY)
        assert run.decide(0.01) == Fail(0)

    def test_permanent_failure_stops_hedging_but_waits(self) -> None:
        """A permanent failure of the primary while a hedge runs: wait for the hedge."""
        run = new_run(max_hedges=3)
        run.launch(0.2, HedgeReason.DELAY_ELAPSED)
        run.completed(0, FAILED_PERMANENTLY)
        assert run.decide(5.0) == WAIT_FOR_OUTCOME
        run.completed(1, FAILED)
        assert run.decide(5.0) == Fail(0)

    def test_refused_budget_stops_hedging(self) -> None:
        """After the budget refused a hedge, the run never asks for another."""
        run = new_run(max_hedges=3)
        run.completed(0, FAILED)
        run.refuse()
        assert run.decide(5.0) == Fail(0)

    def test_outcomes_are_reported_once(self) -> None:
        """Reporting an attempt twice, or a RUNNING outcome, is a bug in the shell."""
        run = new_run()
        run.completed(0, SUCCEEDED)
        with pytest.raises(RuntimeError, match="already"):
            run.completed(0, FAILED)
        with pytest.raises(ValueError, match="RUNNING"):
            new_run().completed(0, 0)

    def test_zero_delay_launches_at_start(self) -> None:
        """delay=0 hedges at once."""
        assert new_run(delay=0.0).decide(0.0) == LAUNCH_AFTER_DELAY


# One step of a simulated call: move time on, or complete the k-th running attempt.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.floats(min_value=0, max_value=1)),
        st.tuples(
            st.just("done"),
            st.integers(min_value=0, max_value=5),
            st.sampled_from([SUCCEEDED, FAILED, FAILED_PERMANENTLY]),
        ),
    ),
    max_size=30,
)


class TestDecisionProperties:
    """Hypothesis drives the core like a shell does and checks every decision."""

    @settings(max_examples=300, deadline=None)
    @given(
        steps=steps,
        delay=st.floats(min_value=0, max_value=1),
        max_hedges=st.integers(min_value=0, max_value=4),
        tokens=st.integers(min_value=0, max_value=5),
    )
    def test_decisions(
        self,
        steps: list[tuple[object, ...]],
        delay: float,
        max_hedges: int,
        tokens: int,
    ) -> None:
        """Launch limits, timing, budget, winner and propagated exception all hold."""
        run = new_run(delay=delay, max_hedges=max_hedges)
        now = 0.0
        last_launch = 0.0
        unanswered = 0
        refused = False
        permanent = False
        completion: list[tuple[int, int]] = []
        for step in [("tick", 0.0), *steps]:
            if step[0] == "tick":
                now += float(step[1])  # type: ignore[arg-type]
            else:
                running = [i for i, s in enumerate(run.states) if s == 0]
                if not running:
                    continue
                index = running[int(step[1]) % len(running)]  # type: ignore[call-overload]
                outcome = int(step[2])  # type: ignore[call-overload]
                run.completed(index, outcome)
                completion.append((index, outcome))
                unanswered += outcome == FAILED
                permanent = permanent or outcome == FAILED_PERMANENTLY
            while True:
                decision = run.decide(now)
                if not isinstance(decision, Launch):
                    break
                assert not refused
                assert not permanent
                assert run.launched <= max_hedges
                if decision.reason is HedgeReason.DELAY_ELAPSED:
                    assert now >= last_launch + delay
                else:
                    assert unanswered > 0
                    unanswered -= 1
                if tokens == 0:
                    run.refuse()
                    refused = True
                    continue
                tokens -= 1
                run.launch(now, decision.reason)
                last_launch = now
            successes = [i for i, s in completion if s == SUCCEEDED]
            if isinstance(decision, Win):
                assert decision.attempt == successes[0]
                return
            assert not successes
            if isinstance(decision, Fail):
                assert decision.attempt == 0
                assert len(completion) == run.launched
                assert run.states[0] in {FAILED, FAILED_PERMANENTLY}
                return
            assert len(completion) < run.launched  # something is still running
            if decision.until is not None:
                assert decision.until == pytest.approx(last_launch + delay)
                assert decision.until > now


class TestLatencyWindow:
    """The sliding latency window and its percentile."""

    @settings(max_examples=200, deadline=None)
    @given(
        values=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=200),
        size=st.integers(min_value=1, max_value=50),
        fraction=st.floats(min_value=0.001, max_value=1),
    )
    def test_matches_a_naive_sorted_list(
        self, values: list[float], size: int, fraction: float
    ) -> None:
        """After every add, the percentile equals the naive nearest rank of the last N."""
        window = LatencyWindow(size)
        for i, value in enumerate(values):
            window.add(value)
            recent = sorted(values[max(0, i + 1 - size) : i + 1])
            assert len(window) == len(recent)
            rank = max(1, math.ceil(fraction * len(recent)))
            assert window.percentile(fraction) == recent[rank - 1]
        assert window.values() == values[-size:]

    def test_empty_window(self) -> None:
        """An empty window has no percentile; a zero size is rejected."""
        with pytest.raises(ValueError, match="empty"):
            LatencyWindow(3).percentile(0.5)
        with pytest.raises(ValueError, match="size"):
            LatencyWindow(0)

    def test_adaptive_state(self) -> None:
        """Fixed delay until min_samples, then the clamped percentile."""
        state = AdaptiveState(
            fixed=0.2, percentile=0.5, size=4, min_samples=2, floor=0.05, ceiling=0.5
        )
        state.add(0.01)
        assert state.delay == 0.2
        state.add(0.02)
        assert state.delay == 0.05  # p50 = 0.01, floored
        for _ in range(4):
            state.add(9.0)
        assert state.delay == 0.5  # ceiling


class BudgetMachine(RuleBasedStateMachine):
    """Random earn/spend sequences against a simple model of the budget."""

    def __init__(self) -> None:
        super().__init__()
        self.core = HedgeBudgetCore(0.05, 3)
        self.model = 3.0

    @rule()
    def earn(self) -> None:
        """A call earns its share."""
        self.core.earn()
        self.model = min(3.0, self.model + 0.05)

    @rule()
    def spend(self) -> None:
        """A hedge asks for a token: granted exactly when one whole token is left."""
        expected = self.model >= 1 - 1e-9
        assert self.core.try_spend() == expected
        if expected:
            self.model -= 1

    @invariant()
    def within_bounds(self) -> None:
        """Tokens never go below 0 nor above the cap, and match the model."""
        assert 0 <= self.core.tokens <= 3
        assert self.core.tokens == pytest.approx(self.model, abs=1e-6)


TestBudgetMachine = BudgetMachine.TestCase


class TestBudgetExamples:
    """The budget's long-run rate."""

    def test_long_run_fraction(self) -> None:
        """Over 1000 calls that all want a hedge, at most cap + 5% are granted."""
        core = HedgeBudgetCore(0.05, 10)
        granted = 0
        for _ in range(1000):
            core.earn()
            granted += core.try_spend()
        assert granted <= 10 + 0.05 * 1000
        assert granted >= 0.05 * 1000

    def test_repr(self) -> None:
        """The repr shows the tokens and the cap."""
        assert repr(HedgeBudgetCore(0.5, 2)) == "HedgeBudgetCore(tokens=2.0, cap=2.0)"
        assert repr(new_run()) == "HedgeRun(states=[0], order=[])"
