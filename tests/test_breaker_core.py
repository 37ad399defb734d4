"""The circuit breaker's pure core: every transition and option, plus hypothesis models."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seawall import CallRejected, CircuitState, CircuitStateChanged, CountWindow, TimeWindow
from seawall._breaker._core import (
    FULL_HALF_OPEN_RETRY_AFTER,
    AtomicCounter,
    BreakerCore,
    Rejection,
)
from seawall._breaker._options import BreakerOptions
from seawall._breaker._window import CountWindowCounter, TimeWindowCounter


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED

AUTOMATIC_EDGES = {
    (CLOSED, OPEN, "consecutive_failures"),
    (CLOSED, OPEN, "failure_rate"),
    (OPEN, HALF_OPEN, "timeout_elapsed"),
    (HALF_OPEN, CLOSED, "probes_succeeded"),
    (HALF_OPEN, OPEN, "probe_failed"),
}
MANUAL_EDGES = (
    {(s, OPEN, "manual_trip") for s in CircuitState if s is not FORCED_OPEN}
    | {(s, CLOSED, "manual_reset") for s in CircuitState}
    | {(s, FORCED_OPEN, "manual_force_open") for s in CircuitState}
    | {(s, DISABLED, "manual_disable") for s in CircuitState}
)
LEGAL_EDGES = AUTOMATIC_EDGES | MANUAL_EDGES


def make_core(
    *, record_events: bool = True, fast_paths: bool = True, **overrides: Any
) -> BreakerCore:
    params: dict[str, Any] = {
        "max_failures": 3,
        "timeout": 10.0,
        "half_open_max": 2,
        "success_threshold": None,
        "failure_rate_threshold": None,
        "window": CountWindow(10),
        "minimum_calls": None,
        "slow_call_threshold": None,
        "timeout_multiplier": 1.0,
        "max_timeout": None,
        "probe_timeout": None,
    }
    params.update(overrides)
    return BreakerCore(
        BreakerOptions.from_params(**params),
        name="core",
        record_events=record_events,
        fast_paths=fast_paths,
    )


def admit(core: BreakerCore, now: float = 0.0) -> int:
    decision = core.admit(now)
    assert isinstance(decision, int), decision
    return decision


def fail_n(core: BreakerCore, n: int, now: float = 0.0) -> None:
    for _ in range(n):
        core.failed(admit(core, now), now)


def open_core(**overrides: Any) -> BreakerCore:
    core = make_core(**overrides)
    core.trip(0.0)
    return core


def changes(core: BreakerCore) -> list[tuple[CircuitState, CircuitState, str]]:
    found = [
        (e.old_state, e.new_state, e.reason)
        for e in core.events
        if isinstance(e, CircuitStateChanged)
    ]
    core.events.clear()
    return found


class TestClosed:
    def test_success_admits_with_the_generation_token(self) -> None:
        """In CLOSED every call of one generation gets the same int ticket."""
        core = make_core()
        assert admit(core) == admit(core)

    def test_consecutive_failures_trip(self) -> None:
        """max_failures failures in a row open the circuit."""
        core = make_core(max_failures=3)
        fail_n(core, 2)
        assert core.state is CLOSED
        fail_n(core, 1)
        assert core.state is OPEN
        assert changes(core) == [(CLOSED, OPEN, "consecutive_failures")]

    def test_success_resets_the_consecutive_count(self) -> None:
        """A success between failures restarts the count."""
        core = make_core(max_failures=2)
        fail_n(core, 1)
        core.succeeded(admit(core), 0.0, 0.0)
        fail_n(core, 1)
        assert core.state is CLOSED
        assert core.consecutive_failures == 1

    def test_consecutive_mode_off(self) -> None:
        """max_failures=None never trips on consecutive failures."""
        core = make_core(max_failures=None)
        fail_n(core, 50)
        assert core.state is CLOSED


class TestOpen:
    def test_rejects_with_time_left(self) -> None:
        """OPEN rejects with retry_after = seconds until half-open."""
        core = open_core(timeout=10.0)
        decision = core.admit(4.0)
        assert decision == Rejection(OPEN, 6.0)
        assert [e for e in core.events if isinstance(e, CallRejected)] == [
            CallRejected("core", OPEN, 6.0)
        ]

    def test_half_opens_after_timeout(self) -> None:
        """The first admission after the timeout is a probe in HALF_OPEN."""
        core = open_core(timeout=10.0)
        changes(core)
        admit(core, 10.0)
        assert core.state is HALF_OPEN
        assert changes(core) == [(OPEN, HALF_OPEN, "timeout_elapsed")]

    def test_tick_moves_to_half_open(self) -> None:
        """tick() takes the timed edge without admitting anything."""
        core = open_core(timeout=10.0)
        core.tick(9.9)
        assert core.state is OPEN
        core.tick(10.0)
        assert core.state is HALF_OPEN


class TestHalfOpen:
    def test_admits_at_most_half_open_max(self) -> None:
        """Extra calls are rejected while every probe slot is taken."""
        core = open_core(timeout=1.0, half_open_max=2)
        admit(core, 1.0)
        admit(core, 1.0)
        decision = core.admit(1.0)
        assert isinstance(decision, Rejection)
        assert decision.state is HALF_OPEN
        assert decision.retry_after == FULL_HALF_OPEN_RETRY_AFTER

    def test_full_retry_after_is_capped_by_lease_expiry(self) -> None:
        """retry_after never exceeds the time until the oldest lease expires."""
        core = open_core(timeout=1.0, half_open_max=1, probe_timeout=0.25)
        admit(core, 1.0)
        decision = core.admit(1.1)
        assert isinstance(decision, Rejection)
        assert decision.retry_after == pytest.approx(0.15)

    def test_success_threshold_closes(self) -> None:
        """success_threshold probe successes close the circuit."""
        core = open_core(timeout=1.0, half_open_max=1, success_threshold=3)
        for _ in range(2):
            core.succeeded(admit(core, 1.0), 1.0, 1.0)
            assert core.state is HALF_OPEN
        core.succeeded(admit(core, 1.0), 1.0, 1.0)
        assert core.state is CLOSED

    def test_success_threshold_defaults_to_half_open_max(self) -> None:
        """Without success_threshold, half_open_max successes close the circuit."""
        core = open_core(timeout=1.0, half_open_max=2)
        first, second = admit(core, 1.0), admit(core, 1.0)
        core.succeeded(first, 1.0, 1.0)
        assert core.state is HALF_OPEN
        core.succeeded(second, 1.0, 1.0)
        assert core.state is CLOSED

    def test_probe_failure_reopens(self) -> None:
        """One failed probe opens the circuit again."""
        core = open_core(timeout=1.0)
        changes(core)
        core.failed(admit(core, 1.0), 1.0)
        assert core.state is OPEN
        assert changes(core)[-1] == (HALF_OPEN, OPEN, "probe_failed")

    def test_cancelled_probe_frees_its_slot(self) -> None:
        """A cancelled probe records nothing and frees its slot."""
        core = open_core(timeout=1.0, half_open_max=1)
        core.cancelled(admit(core, 1.0))
        admit(core, 1.0)
        stats = core.statistics(1.0)
        assert (stats.cancelled, stats.successes, stats.failures) == (1, 0, 0)

    def test_expired_lease_is_reclaimed(self) -> None:
        """A probe that never reports loses its slot after probe_timeout."""
        core = open_core(timeout=1.0, half_open_max=1, probe_timeout=5.0)
        lost = admit(core, 1.0)
        assert isinstance(core.admit(5.9), Rejection)
        fresh = admit(core, 6.0)
        assert core.statistics(6.0).expired_probes == 1
        core.succeeded(lost, 7.0, 1.0)
        assert core.statistics(7.0).ignored_outcomes == 1
        assert core.state is HALF_OPEN
        core.succeeded(fresh, 7.0, 6.0)
        assert core.state is CLOSED

    def test_probe_timeout_defaults_to_timeout(self) -> None:
        """Without probe_timeout, a lease lasts one open duration."""
        assert make_core(timeout=7.0).options.probe_timeout == 7.0


class TestGenerations:
    def test_stale_failure_does_not_reopen(self) -> None:
        """A failure admitted before a reset does not count after it."""
        core = make_core(max_failures=1)
        old = admit(core)
        core.reset(0.0)
        core.failed(old, 0.0)
        assert core.state is CLOSED
        assert core.statistics(0.0).ignored_outcomes == 1

    def test_stale_success_does_not_close(self) -> None:
        """A success from the closed generation does not count as a probe."""
        core = make_core(max_failures=1, half_open_max=1)
        old = admit(core)
        fail_n(core, 1)
        core.succeeded(old, 20.0, 0.0)
        admit(core, 20.0)
        assert core.state is HALF_OPEN

    def test_every_state_entry_bumps_the_generation(self) -> None:
        """Each transition, manual or automatic, starts a new generation."""
        core = make_core(max_failures=1)
        start = core.generation
        fail_n(core, 1)
        core.tick(100.0)
        core.disable(100.0)
        assert core.generation == start + 3


class TestRateMode:
    def test_trips_at_threshold_with_minimum_calls(self) -> None:
        """The rate trips only once the window holds minimum_calls calls."""
        core = make_core(
            max_failures=None, failure_rate_threshold=0.5, window=CountWindow(10), minimum_calls=4
        )
        fail_n(core, 2)
        core.succeeded(admit(core), 0.0, 0.0)
        assert core.state is CLOSED
        fail_n(core, 1)
        assert core.state is OPEN
        assert changes(core)[-1] == (CLOSED, OPEN, "failure_rate")

    def test_both_criteria_either_trips(self) -> None:
        """Consecutive mode stays active next to rate mode."""
        core = make_core(max_failures=2, failure_rate_threshold=1.0, minimum_calls=10)
        fail_n(core, 2)
        assert changes(core)[-1] == (CLOSED, OPEN, "consecutive_failures")

    def test_time_window_forgets_old_calls(self) -> None:
        """Failures older than the time window no longer count."""
        core = make_core(
            max_failures=None,
            failure_rate_threshold=0.5,
            window=TimeWindow(10.0, buckets=10),
            minimum_calls=2,
        )
        fail_n(core, 1, now=0.0)
        core.succeeded(admit(core), 0.5, 0.0)
        core.succeeded(admit(core), 20.0, 0.0)
        fail_n(core, 1, now=20.0)
        assert core.state is OPEN
        stats = core.statistics(20.0)
        assert (stats.window_calls, stats.window_failures) == (2, 1)

    def test_statistics_report_failure_rate(self) -> None:
        """failure_rate is failures / calls of the window, None when empty."""
        core = make_core(failure_rate_threshold=1.0, minimum_calls=10)
        assert core.statistics(0.0).failure_rate is None
        fail_n(core, 1)
        core.succeeded(admit(core), 0.0, 0.0)
        assert core.statistics(0.0).failure_rate == 0.5


class TestSlowCalls:
    def test_slow_success_counts_as_failure(self) -> None:
        """A success slower than the threshold is a failure."""
        core = make_core(max_failures=1, slow_call_threshold=2.0)
        core.succeeded(admit(core), 3.0, 0.0)
        assert core.state is OPEN
        stats = core.statistics(3.0)
        assert (stats.slow_calls, stats.failures, stats.successes) == (1, 1, 0)

    def test_fast_success_is_a_success(self) -> None:
        """A call at the threshold is not slow."""
        core = make_core(max_failures=1, slow_call_threshold=2.0)
        core.succeeded(admit(core), 2.0, 0.0)
        assert core.state is CLOSED

    def test_slow_probe_reopens(self) -> None:
        """A slow probe counts as a failed probe."""
        core = open_core(timeout=1.0, slow_call_threshold=0.5)
        core.succeeded(admit(core, 1.0), 2.0, 1.0)
        assert core.state is OPEN


class TestGrowingTimeout:
    def test_open_duration_grows_and_caps(self) -> None:
        """Repeated trips multiply the timeout, capped by max_timeout."""
        core = make_core(timeout=1.0, timeout_multiplier=3.0, max_timeout=5.0, half_open_max=1)
        durations = []
        now = 0.0
        core.trip(now)
        for _ in range(3):
            durations.append(core.statistics(now).open_timeout)
            now += durations[-1]
            core.failed(admit(core, now), now)
        durations.append(core.statistics(now).open_timeout)
        assert durations == [1.0, 3.0, 5.0, 5.0]

    def test_growth_resets_on_close(self) -> None:
        """Closing the circuit restores the base timeout."""
        core = make_core(timeout=1.0, timeout_multiplier=2.0, half_open_max=1)
        core.trip(0.0)
        core.trip(0.0)
        assert core.statistics(0.0).open_timeout == 2.0
        core.reset(0.0)
        core.trip(0.0)
        assert core.statistics(0.0).open_timeout == 1.0

    def test_default_cap_is_ten_timeouts(self) -> None:
        """Without max_timeout the open duration stops at 10 * timeout."""
        assert make_core(timeout=3.0).options.max_timeout == 30.0


class TestManual:
    def test_force_open_rejects_without_retry_after(self) -> None:
        """FORCED_OPEN rejects every call, with retry_after None, past any timeout."""
        core = make_core()
        core.force_open(0.0)
        assert core.admit(1e9) == Rejection(FORCED_OPEN, None)

    def test_trip_is_a_no_op_when_forced_open(self) -> None:
        """trip() never weakens FORCED_OPEN."""
        core = make_core()
        core.force_open(0.0)
        core.trip(0.0)
        assert core.state is FORCED_OPEN

    def test_disable_admits_and_counts_but_never_trips(self) -> None:
        """DISABLED keeps metrics only."""
        core = make_core(max_failures=1)
        core.disable(0.0)
        fail_n(core, 5)
        assert core.state is DISABLED
        assert core.statistics(0.0).failures == 5

    def test_reset_closes_from_any_state(self) -> None:
        """reset() enters CLOSED with fresh counters."""
        for prepare in (BreakerCore.trip, BreakerCore.force_open, BreakerCore.disable):
            core = make_core(max_failures=2)
            fail_n(core, 1)
            prepare(core, 0.0)
            core.reset(0.0)
            assert core.state is CLOSED
            assert core.consecutive_failures == 0

    def test_manual_edges_are_reported(self) -> None:
        """Each command emits one state change with its reason."""
        core = make_core()
        core.trip(0.0)
        core.force_open(0.0)
        core.disable(0.0)
        core.reset(0.0)
        assert changes(core) == [
            (CLOSED, OPEN, "manual_trip"),
            (OPEN, FORCED_OPEN, "manual_force_open"),
            (FORCED_OPEN, DISABLED, "manual_disable"),
            (DISABLED, CLOSED, "manual_reset"),
        ]

    def test_no_events_without_hooks(self) -> None:
        """With record_events off the core builds no event at all."""
        core = BreakerCore(make_core().options, name="quiet", record_events=False)
        core.trip(0.0)
        core.admit(0.0)
        assert core.events == []


class TestOptionsValidation:
    @pytest.mark.parametrize(
        ("overrides", "error", "fragment"),
        [
            ({"max_failures": 0}, ValueError, "max_failures"),
            ({"max_failures": 1.5}, TypeError, "max_failures"),
            ({"timeout": 0}, ValueError, "timeout"),
            ({"timeout": "1"}, TypeError, "timeout"),
            ({"half_open_max": 0}, ValueError, "half_open_max"),
            ({"success_threshold": 0}, ValueError, "success_threshold"),
            ({"failure_rate_threshold": 0.0}, ValueError, "failure_rate_threshold"),
            ({"failure_rate_threshold": 1.5}, ValueError, "failure_rate_threshold"),
            ({"window": 10}, TypeError, "window"),
            ({"minimum_calls": 11}, ValueError, "minimum_calls"),
            ({"minimum_calls": 0}, ValueError, "minimum_calls"),
            ({"slow_call_threshold": -1}, ValueError, "slow_call_threshold"),
            ({"timeout_multiplier": 0.5}, ValueError, "timeout_multiplier"),
            ({"timeout_multiplier": math.inf}, ValueError, "timeout_multiplier"),
            ({"timeout_multiplier": "2"}, TypeError, "timeout_multiplier"),
            ({"max_timeout": 1.0}, ValueError, "max_timeout"),
            ({"probe_timeout": 0}, ValueError, "probe_timeout"),
        ],
    )
    def test_bad_option_names_the_parameter(
        self, overrides: dict[str, Any], error: type[Exception], fragment: str
    ) -> None:
        """Each invalid option raises an error that names it."""
        with pytest.raises(error, match=fragment):
            make_core(**overrides)

    @pytest.mark.parametrize(
        ("build", "fragment"),
        [
            (lambda: CountWindow(0), "CountWindow.size"),
            (lambda: TimeWindow(0), "TimeWindow.seconds"),
            (lambda: TimeWindow(1, buckets=0), "TimeWindow.buckets"),
        ],
    )
    def test_bad_window_names_the_field(self, build: Any, fragment: str) -> None:
        """Window options validate their own fields."""
        with pytest.raises(ValueError, match=fragment):
            build()

    def test_minimum_calls_default_fits_small_count_window(self) -> None:
        """The default minimum_calls shrinks to a small CountWindow's size."""
        assert make_core(window=CountWindow(4)).options.minimum_calls == 4
        assert make_core(window=TimeWindow(5)).options.minimum_calls == 10


# -- decisions published for lock-free readers -----------------------------------------


def check_published(core: BreakerCore, now: float) -> None:
    """What the core publishes is exactly what its methods would decide at *now*.

    Admitting with `fast_token`, recording a success with `quiet_token` and refusing
    through `gate` must each do what `admit` / `succeeded` would (see `BreakerCore`).
    """
    state = core.state
    token = core._token
    if state in {CLOSED, DISABLED}:
        assert core.fast_token == token
        quiet = core._quiet_successes and core.consecutive_failures == 0
        assert core.quiet_token == (token if quiet else 0)
        assert core.gate is None
        return
    assert core.fast_token == core.quiet_token == 0
    if core._record_events or state is HALF_OPEN:
        assert core.gate is None
        return
    stats = core.statistics(now)
    if state is OPEN:
        assert core.gate == (stats.open_until, OPEN)
    else:
        assert core.gate == (math.inf, FORCED_OPEN)
    until, gated = core.gate
    if now < until:
        # The refusal a shell gives without the lock is the one admit gives with it.
        retry_after = None if gated is FORCED_OPEN else until - now
        assert core.admit(now) == Rejection(gated, retry_after)


class TestLockFreeDecisions:
    def test_atomic_counter_counts_bumps_and_reads_do_not_count(self) -> None:
        """value() is the number of bumps, however often it is read."""
        counter = AtomicCounter()
        assert counter.value() == counter.value() == 0
        for _ in range(5):
            counter.bump()
        assert counter.value() == counter.value() == 5
        counter.bump()
        assert counter.value() == 6

    def test_closed_publishes_its_token(self) -> None:
        """A new core admits and records successes lock-free with the generation's token."""
        core = make_core(record_events=False)
        ticket = admit(core)
        assert core.fast_token == core.quiet_token == ticket
        assert core.gate is None

    def test_a_failure_withdraws_quiet_successes_until_a_success(self) -> None:
        """After a failure, a success must reset the count, so it takes the lock."""
        core = make_core(max_failures=5)
        ticket = admit(core)
        core.failed(admit(core), 0.0)
        assert core.quiet_token == 0
        assert core.fast_token == ticket
        core.succeeded(admit(core), 0.0, 0.0)
        assert core.quiet_token == ticket
        assert core.consecutive_failures == 0

    @pytest.mark.parametrize(
        "options",
        [
            {"failure_rate_threshold": 0.5},
            {"failure_rate_threshold": 0.5, "window": TimeWindow(10)},
            {"slow_call_threshold": 1.0},
        ],
        ids=["count-window", "time-window", "slow-calls"],
    )
    def test_windows_and_slow_calls_never_quiet(self, options: dict[str, Any]) -> None:
        """A success that must be timed or entered in a window always takes the lock."""
        core = make_core(**options)
        assert core.fast_token == admit(core)
        assert core.quiet_token == 0
        core.reset(0.0)
        assert core.quiet_token == 0

    def test_gates(self) -> None:
        """OPEN gates until it ends, FORCED_OPEN for ever; other states do not gate."""
        core = make_core(record_events=False, timeout=10.0)
        core.trip(2.0)
        assert core.gate == (12.0, OPEN)
        assert core.fast_token == core.quiet_token == 0
        core.tick(12.0)
        assert core.state is HALF_OPEN
        assert core.gate is None
        core.force_open(12.0)
        assert core.gate == (math.inf, FORCED_OPEN)
        core.disable(12.0)
        assert core.gate is None
        assert core.fast_token == core.quiet_token == admit(core)

    def test_no_gate_when_rejections_need_events(self) -> None:
        """With hooks every rejection builds its event, so it goes through admit."""
        core = make_core(record_events=True)
        core.trip(0.0)
        assert core.gate is None
        core.force_open(0.0)
        assert core.gate is None

    def test_without_fast_paths_nothing_is_published(self) -> None:
        """fast_paths=False (no GIL): every state keeps the lock-free readers out."""
        core = make_core(record_events=False, fast_paths=False)
        for command in (core.reset, core.disable, core.trip, core.force_open):
            command(0.0)
            assert (core.fast_token, core.quiet_token, core.gate) == (0, 0, None)
        core.reset(0.0)
        core.succeeded(admit(core), 0.0, 0.0)
        core.failed(admit(core), 0.0)
        stats = core.statistics(0.0)
        assert (stats.calls_admitted, stats.successes, stats.failures) == (2, 1, 1)

    def test_statistics_read_both_counters_as_of_one_instant(self) -> None:
        """A lock-free call begun and ended between two reads is not seen in flight."""
        core = make_core()
        admissions, successes = core.admissions, core.successes
        reads: list[str] = []

        class Racing:
            """A counter whose first read lets another thread's whole call slip in."""

            def __init__(self, name: str, counter: AtomicCounter) -> None:
                self.name, self.counter, self.bump = name, counter, counter.bump

            def value(self) -> int:
                value = self.counter.value()
                if not reads:
                    admissions.bump()  # admitted and succeeded, lock-free,
                    successes.bump()  # right after this read
                reads.append(self.name)
                return value

        core.admissions = Racing("admissions", admissions)  # type: ignore[assignment]
        core.successes = Racing("successes", successes)  # type: ignore[assignment]
        stats = core.statistics(0.0)
        assert reads[-2:] == ["admissions", "successes"]
        assert (stats.calls_admitted, stats.successes, stats.calls_in_flight) == (1, 1, 0)

    def test_statistics_keep_lock_free_successes_out_to_finish(self) -> None:
        """Successes landing between every pair of reads: quiet successes are withdrawn."""
        core = make_core()
        token = admit(core)  # a call in flight throughout
        admissions, successes = core.admissions, core.successes
        seen: list[int] = []

        class Busy:
            """At every read, another whole call slips in while quiet_token allows it."""

            bump = successes.bump

            def value(self) -> int:
                value = successes.value()
                seen.append(core.quiet_token)
                if core.quiet_token == token:
                    admissions.bump()
                    successes.bump()
                return value

        core.successes = Busy()  # type: ignore[assignment]
        stats = core.statistics(0.0)
        assert seen[-1] == 0  # kept out at the end, so the reads could settle
        assert core.quiet_token == token  # and let back in
        assert stats.successes == seen.count(token) > 0
        assert stats.calls_admitted == stats.successes + 1
        assert stats.calls_in_flight == 1

    @given(
        every_mode=st.booleans(),
        steps=st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "admit",
                        "success",
                        "failure",
                        "cancel",
                        "trip",
                        "reset",
                        "force_open",
                        "disable",
                        "tick",
                    ]
                ),
                st.sampled_from([0.0, 0.5, 5.0, 11.0]),
                st.integers(0, 100),
            ),
            max_size=60,
        ),
    )
    def test_published_decisions_follow_every_step(
        self, every_mode: bool, steps: list[tuple[str, float, int]]
    ) -> None:
        """After any sequence of calls, outcomes, commands and time, see check_published."""
        extra: dict[str, Any] = (
            {"failure_rate_threshold": 0.5, "slow_call_threshold": 1.0} if every_mode else {}
        )
        core = make_core(record_events=False, max_failures=2, timeout=10.0, **extra)
        now = 0.0
        outstanding: list[int] = []
        for step, dt, pick in steps:
            now += dt
            if step == "admit":
                decision = core.admit(now)
                if isinstance(decision, int):
                    outstanding.append(decision)
            elif step in {"success", "failure", "cancel"}:
                if not outstanding:
                    continue
                ticket = outstanding.pop(pick % len(outstanding))
                if step == "success":
                    core.succeeded(ticket, now, now)
                elif step == "failure":
                    core.failed(ticket, now)
                else:
                    core.cancelled(ticket)
            else:
                getattr(core, step)(now)
            check_published(core, now)


class TestWindows:
    @given(size=st.integers(1, 8), outcomes=st.lists(st.booleans(), max_size=40))
    def test_count_window_matches_a_list(self, size: int, outcomes: list[bool]) -> None:
        """The ring buffer holds exactly the last size outcomes."""
        window = CountWindowCounter(size)
        for index, failed in enumerate(outcomes):
            window.record(failed, 0.0)
            recent = outcomes[max(0, index + 1 - size) : index + 1]
            assert window.totals(0.0) == (len(recent), sum(recent))
        window.clear()
        assert window.totals(0.0) == (0, 0)

    @given(
        buckets=st.integers(1, 6),
        seconds=st.sampled_from([1.0, 2.5, 10.0]),
        steps=st.lists(
            st.tuples(st.floats(0, 4, allow_nan=False), st.booleans(), st.booleans()), max_size=40
        ),
    )
    def test_time_window_matches_a_list(
        self, buckets: int, seconds: float, steps: list[tuple[float, bool, bool]]
    ) -> None:
        """The bucket ring counts exactly the outcomes of the last buckets bucket indices."""
        window = TimeWindowCounter(seconds, buckets)
        width = seconds / buckets
        now = 0.0
        seen: list[tuple[float, bool]] = []
        for step, failed, record in steps:
            now += step
            if record:
                window.record(failed, now)
                seen.append((now, failed))
            oldest = math.floor(now / width) - buckets
            inside = [f for t, f in seen if math.floor(t / width) > oldest]
            assert window.totals(now) == (len(inside), sum(inside))

    def test_time_window_clears(self) -> None:
        """clear() forgets every bucket."""
        window = TimeWindowCounter(10.0, 5)
        window.record(True, 1.0)
        window.clear()
        assert window.totals(1.0) == (0, 0)

    def test_out_of_order_time_lands_in_newest_bucket(self) -> None:
        """An older now than seen before counts in the newest bucket."""
        window = TimeWindowCounter(10.0, 10)
        window.record(False, 5.0)
        window.record(True, 1.0)
        assert window.totals(5.0) == (2, 1)


class BreakerModel(RuleBasedStateMachine):
    """The core against a small reference model of the consecutive mode."""

    MAX_FAILURES = 3
    HALF_OPEN_MAX = 2
    PROBE_TIMEOUT = 4.0

    def __init__(self) -> None:
        super().__init__()
        self.core = make_core(
            max_failures=self.MAX_FAILURES,
            timeout=5.0,
            half_open_max=self.HALF_OPEN_MAX,
            success_threshold=3,
            timeout_multiplier=2.0,
            probe_timeout=self.PROBE_TIMEOUT,
        )
        self.now = 0.0
        self.outstanding: list[tuple[int, int, float]] = []  # ticket, generation, admitted at
        self.admitted = 0
        self.consecutive = 0

    def _check_changes(self, *, allow_automatic: bool = True) -> list[tuple[Any, ...]]:
        found = changes(self.core)
        for edge in found:
            assert edge in LEGAL_EDGES, edge
            if not allow_automatic:
                assert edge in MANUAL_EDGES, edge
            if edge[1] in {CLOSED, DISABLED}:
                self.consecutive = 0  # entering them starts the count afresh
        self.core.events.clear()
        return found

    @rule(dt=st.sampled_from([0.0, 0.5, 2.0, 5.0, 11.0]))
    def advance(self, dt: float) -> None:
        """Virtual time passes."""
        self.now += dt

    @rule(lock_free=st.booleans())
    def admit(self, lock_free: bool) -> None:
        """A call asks to be admitted, lock-free when a shell could (see BreakerCore)."""
        state = self.core.state
        leases_before = dict(self.core._leases)
        decision: int | Rejection
        if lock_free and self.core.fast_token:
            self.core.admissions.bump()
            decision = self.core.fast_token
        else:
            decision = self.core.admit(self.now)
        found = self._check_changes()
        if isinstance(decision, int):
            self.admitted += 1
            self.outstanding.append((decision, self.core.generation, self.now))
            assert self.core.state in {CLOSED, DISABLED, HALF_OPEN}
        else:
            assert decision.state in {OPEN, HALF_OPEN, FORCED_OPEN}
            if decision.state is HALF_OPEN:
                live = [t for t, until in leases_before.items() if until > self.now]
                assert state is HALF_OPEN or found
                assert len(live) >= self.HALF_OPEN_MAX or found
                assert decision.retry_after is not None
                assert 0 < decision.retry_after <= FULL_HALF_OPEN_RETRY_AFTER
            elif decision.state is OPEN:
                assert decision.retry_after is not None
                assert decision.retry_after > 0

    @precondition(lambda self: self.outstanding)
    @rule(
        pick=st.integers(0, 100),
        outcome=st.sampled_from(["success", "failure", "cancel"]),
        lock_free=st.booleans(),
    )
    def report(self, pick: int, outcome: str, lock_free: bool) -> None:
        """An admitted call reports back, lock-free when a shell could (see BreakerCore)."""
        ticket, generation, _ = self.outstanding.pop(pick % len(self.outstanding))
        core = self.core
        state, current = core.state, core.generation
        stale = generation != current or (state is HALF_OPEN and ticket not in core._leases)
        before = core.statistics(self.now)
        if outcome == "success" and lock_free and ticket == core.quiet_token:
            core.successes.bump()
        elif outcome == "success":
            core.succeeded(ticket, self.now, self.now)
        elif outcome == "failure":
            core.failed(ticket, self.now)
        else:
            core.cancelled(ticket)
        after = core.statistics(self.now)
        if not stale and outcome != "cancel" and state in {CLOSED, DISABLED}:
            self.consecutive = self.consecutive + 1 if outcome == "failure" else 0
        found = self._check_changes()
        if outcome == "cancel":
            assert (after.state, after.generation) == (state, current)
            assert after.cancelled == before.cancelled + 1
            return
        if stale:
            assert (after.state, after.generation) == (state, current), "stale outcome moved state"
            assert after.ignored_outcomes == before.ignored_outcomes + 1
            return
        if state in {CLOSED, DISABLED}:
            tripped = state is CLOSED and self.consecutive >= self.MAX_FAILURES
            assert (after.state is OPEN) == tripped
            assert found == ([(CLOSED, OPEN, "consecutive_failures")] if tripped else [])
        elif outcome == "failure":
            assert after.state is OPEN
        else:
            assert after.state is (CLOSED if after.half_open_successes == 0 else HALF_OPEN)

    @rule(command=st.sampled_from(["trip", "reset", "force_open", "disable", "tick"]))
    def command(self, command: str) -> None:
        """A manual command, or a look at the state."""
        old = self.core.state
        getattr(self.core, command)(self.now)
        found = self._check_changes(allow_automatic=command == "tick")
        if command == "tick":
            assert found in ([], [(OPEN, HALF_OPEN, "timeout_elapsed")])
            return
        if command == "trip" and old is FORCED_OPEN:
            assert found == []
            return
        assert [edge[1] for edge in found] == [self.core.state], "one reported edge per command"

    @invariant()
    def probes_within_limit(self) -> None:
        """Never more than half_open_max probe leases, and leases only in HALF_OPEN."""
        leases = self.core._leases
        assert len(leases) <= self.HALF_OPEN_MAX
        if self.core.state is not HALF_OPEN:
            assert not leases
        for until in leases.values():
            assert until <= self.now + self.PROBE_TIMEOUT

    @invariant()
    def published_decisions_are_current(self) -> None:
        """fast_token, quiet_token and gate say what admit and succeeded would do."""
        check_published(self.core, self.now)

    @invariant()
    def counts_add_up(self) -> None:
        """Every admitted call is in exactly one counter or still in flight."""
        stats = self.core.statistics(self.now)
        assert stats.calls_admitted == self.admitted
        assert stats.calls_in_flight == len(self.outstanding)
        assert stats.slow_calls <= stats.failures
        assert stats.trips >= 0
        assert stats.consecutive_failures == self.consecutive


TestBreakerModel = BreakerModel.TestCase
TestBreakerModel.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
