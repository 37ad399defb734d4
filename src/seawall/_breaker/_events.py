"""What a circuit breaker reports: its states, its hook events and its statistics."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final

from seawall._hooks import Event


__all__ = (
    "REASON_CONSECUTIVE_FAILURES",
    "REASON_FAILURE_RATE",
    "REASON_MANUAL_DISABLE",
    "REASON_MANUAL_FORCE_OPEN",
    "REASON_MANUAL_RESET",
    "REASON_MANUAL_TRIP",
    "REASON_PROBES_SUCCEEDED",
    "REASON_PROBE_FAILED",
    "REASON_TIMEOUT_ELAPSED",
    "CallRejected",
    "CircuitBreakerStatistics",
    "CircuitState",
    "CircuitStateChanged",
)

# Values of `CircuitStateChanged.reason`.
REASON_CONSECUTIVE_FAILURES = "consecutive_failures"
REASON_FAILURE_RATE = "failure_rate"
REASON_TIMEOUT_ELAPSED = "timeout_elapsed"
REASON_PROBE_FAILED = "probe_failed"
REASON_PROBES_SUCCEEDED = "probes_succeeded"
REASON_MANUAL_TRIP = "manual_trip"
REASON_MANUAL_RESET = "manual_reset"
REASON_MANUAL_FORCE_OPEN = "manual_force_open"
REASON_MANUAL_DISABLE = "manual_disable"


@final
class CircuitState(enum.Enum):
    """The states of a circuit breaker, and every legal edge between them.

    Automatic edges (driven by outcomes and time):

    * ``CLOSED -> OPEN``: a failure criterion is met (``max_failures`` consecutive
      failures, or the window's failure rate at or above ``failure_rate_threshold``).
    * ``OPEN -> HALF_OPEN``: the open duration has elapsed; taken lazily, at the next
      admission decision (or when `CircuitBreaker.state` / ``statistics()`` looks).
    * ``HALF_OPEN -> CLOSED``: ``success_threshold`` probes succeeded.
    * ``HALF_OPEN -> OPEN``: a probe failed (slow probes count as failed).

    Manual edges (each command enters its target state afresh, even from that state,
    starting a new generation):

    * ``trip()``: CLOSED, OPEN, HALF_OPEN, DISABLED ``-> OPEN``; a no-op in FORCED_OPEN,
      which is stronger.
    * ``reset()``: any state ``-> CLOSED``.
    * ``force_open()``: any state ``-> FORCED_OPEN``.
    * ``disable()``: any state ``-> DISABLED``.

    No other edge exists: FORCED_OPEN and DISABLED are left only by a manual command.

    .. versionadded:: 0.1.0
    """

    CLOSED = "closed"
    """Calls pass; outcomes are counted against the failure criteria."""
    OPEN = "open"
    """Calls are rejected until the open duration has elapsed."""
    HALF_OPEN = "half_open"
    """Up to ``half_open_max`` concurrent probe calls pass; the rest are rejected."""
    FORCED_OPEN = "forced_open"
    """Every call is rejected until ``reset()`` (or ``disable()``)."""
    DISABLED = "disabled"
    """Metrics only: every call passes and is counted, the breaker never trips."""


@final
@dataclass(frozen=True, slots=True)
class CircuitStateChanged(Event):
    """The breaker moved from *old_state* to *new_state*.

    Reported after the change is committed, outside the breaker's lock.

    Attributes:
        old_state: The state left.
        new_state: The state entered (equal to *old_state* when a manual command
            re-enters the current state).
        reason: Why: one of ``"consecutive_failures"``, ``"failure_rate"``,
            ``"timeout_elapsed"``, ``"probe_failed"``, ``"probes_succeeded"``,
            ``"manual_trip"``, ``"manual_reset"``, ``"manual_force_open"``,
            ``"manual_disable"``.
        generation: The generation number of the state entered.

    .. versionadded:: 0.1.0
    """

    old_state: CircuitState
    new_state: CircuitState
    reason: str
    generation: int


@final
@dataclass(frozen=True, slots=True)
class CallRejected(Event):
    """The breaker refused a call and raised `CircuitOpenError`.

    Attributes:
        state: The state that refused (OPEN, HALF_OPEN with every probe slot taken,
            or FORCED_OPEN).
        retry_after: The seconds carried by the error, or ``None`` in FORCED_OPEN.

    .. versionadded:: 0.1.0
    """

    state: CircuitState
    retry_after: float | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreakerStatistics:
    """A consistent snapshot of one breaker, taken under its lock.

    The counters are cumulative over the breaker's life. Every admitted call ends up in
    exactly one of four counters, or is still in flight, so that always::

        calls_admitted == successes + failures + cancelled + ignored_outcomes
                          + calls_in_flight

    Attributes:
        state: The current state.
        generation: How many times a state was entered (1 for a new breaker).
        consecutive_failures: Failures since the last success in CLOSED or DISABLED.
        calls_admitted: Calls let through (probes included).
        successes: Outcomes recorded as successes (caller errors included).
        failures: Outcomes recorded as failures (slow calls included).
        slow_calls: Calls that would have been successes but took longer than
            ``slow_call_threshold``, so were recorded as failures.
        rejections: Calls refused with `CircuitOpenError`.
        ignored_outcomes: Outcomes of calls admitted in an earlier generation (or of
            probes whose lease had expired) that were ignored.
        cancelled: Calls that ended by cancellation or were abandoned, recording nothing.
        trips: How many times the breaker entered OPEN.
        calls_in_flight: Admitted calls that have not reported back yet, including
            callers that vanished.
        probes_in_flight: Probe leases held in HALF_OPEN.
        expired_probes: Probe leases reclaimed because the probe never reported back
            within ``probe_timeout``.
        half_open_successes: Probe successes in the current HALF_OPEN generation.
        window_calls: Calls in the failure-rate window (0 without rate mode).
        window_failures: Failures in the failure-rate window (0 without rate mode).
        failure_rate: ``window_failures / window_calls``, or ``None`` without rate
            mode or with an empty window.
        open_timeout: The open duration of the current (or the last) OPEN period.
        open_until: When OPEN ends, on the breaker's clock, or ``None`` outside OPEN.
        retry_after: Seconds a rejected call would be told to wait now, or ``None``
            when calls are admitted (or in FORCED_OPEN).

    .. versionadded:: 0.1.0
    """

    state: CircuitState
    generation: int
    consecutive_failures: int
    calls_admitted: int
    successes: int
    failures: int
    slow_calls: int
    rejections: int
    ignored_outcomes: int
    cancelled: int
    trips: int
    calls_in_flight: int
    probes_in_flight: int
    expired_probes: int
    half_open_successes: int
    window_calls: int
    window_failures: int
    failure_rate: float | None
    open_timeout: float
    open_until: float | None
    retry_after: float | None
