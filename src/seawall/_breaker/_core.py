"""The pure core of the circuit breaker: a trip policy and a state machine.

Nothing here locks, sleeps, reads a clock or does I/O: every method takes ``now`` and
returns a decision. The shells in `._shell` add the lock, the clock and the user calls.

Besides its methods, the core *publishes* a few decisions as plain attributes
(`BreakerCore.fast_token`, `BreakerCore.quiet_token`, `BreakerCore.gate`) and counts
with `AtomicCounter`, so that a shell may take the commonest paths (a call admitted and
succeeding in CLOSED, a call refused in OPEN) without its lock; `BreakerCore` says why
that is safe.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from ._events import (
    REASON_CONSECUTIVE_FAILURES,
    REASON_FAILURE_RATE,
    REASON_MANUAL_DISABLE,
    REASON_MANUAL_FORCE_OPEN,
    REASON_MANUAL_RESET,
    REASON_MANUAL_TRIP,
    REASON_PROBE_FAILED,
    REASON_PROBES_SUCCEEDED,
    REASON_TIMEOUT_ELAPSED,
    CallRejected,
    CircuitBreakerStatistics,
    CircuitState,
    CircuitStateChanged,
)
from ._window import OutcomeWindow, make_window


if TYPE_CHECKING:
    from collections.abc import Callable

    from ._options import BreakerOptions


__all__ = ("FULL_HALF_OPEN_RETRY_AFTER", "AtomicCounter", "BreakerCore", "Rejection", "TripPolicy")

# The retry_after of a call refused because every probe slot is taken: a probe usually
# answers within a call's latency, so ask for a short wait, never longer than the time
# until the oldest probe lease expires.
FULL_HALF_OPEN_RETRY_AFTER = 1.0

# How many times `BreakerCore.statistics` reads its two lock-free counters again, because a
# success landed between the reads, before it keeps new lock-free successes out.
_RETRIES_BEFORE_WITHDRAWING = 3

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN
_DISABLED = CircuitState.DISABLED


@final
class AtomicCounter:
    """A counter that any thread may bump without a lock; reads are serialised by the caller.

    `bump` is the ``__next__`` of an `itertools.count`: one C call that runs no Python
    code and does not release the GIL, so concurrent bumps are never lost (with the GIL;
    `BreakerCore` is told when there is none). `itertools.count` cannot be read without
    advancing it, so `value` advances it once and subtracts its own earlier reads; that
    bookkeeping is why reads must not run concurrently (the breaker reads under its lock).
    """

    __slots__ = ("_reads", "bump")

    def __init__(self) -> None:
        self.bump: Callable[[], int] = itertools.count().__next__
        self._reads = 0

    def value(self) -> int:
        """Return how many times `bump` was called (the caller serialises reads)."""
        seen = self.bump() - self._reads
        self._reads += 1
        return seen


@final
@dataclass(frozen=True, slots=True)
class Rejection:
    """The core's refusal of a call.

    Attributes:
        state: The state that refused.
        retry_after: Seconds until asking again may succeed; ``None`` in FORCED_OPEN.
    """

    state: CircuitState
    retry_after: float | None


@final
class TripPolicy:
    """Decides when a closed circuit opens: consecutive failures, failure rate, or both.

    Either criterion trips on its own. ``max_failures=None`` turns the consecutive mode
    off; ``failure_rate_threshold=None`` turns the rate mode off. The rate is checked
    only when a failure is recorded, so a success never opens the circuit.
    """

    __slots__ = ("_max_failures", "_minimum_calls", "_threshold", "consecutive_failures", "window")

    def __init__(self, options: BreakerOptions) -> None:
        self._max_failures = options.max_failures
        self._threshold = options.failure_rate_threshold
        self._minimum_calls = options.minimum_calls
        self.window: OutcomeWindow | None = (
            None if self._threshold is None else make_window(options.window)
        )
        self.consecutive_failures = 0

    def record_success(self, now: float) -> None:
        """Count a success observed at *now*."""
        self.consecutive_failures = 0
        if self.window is not None:
            self.window.record(failed=False, now=now)

    def record_failure(self, now: float) -> str | None:
        """Count a failure observed at *now*; return the reason to trip, if any."""
        self.consecutive_failures += 1
        window = self.window
        if window is not None:
            window.record(failed=True, now=now)
        if self._max_failures is not None and self.consecutive_failures >= self._max_failures:
            return REASON_CONSECUTIVE_FAILURES
        if window is not None and self._threshold is not None:
            calls, failures = window.totals(now)
            if calls >= self._minimum_calls and failures >= self._threshold * calls:
                return REASON_FAILURE_RATE
        return None

    def clear(self) -> None:
        """Forget every counted outcome (the circuit starts afresh)."""
        self.consecutive_failures = 0
        if self.window is not None:
            self.window.clear()


@final
class BreakerCore:
    """The circuit breaker's state machine, over an injected ``now``.

    See `CircuitState` for the states and their legal edges. Admission hands out
    *tickets* (ints): in CLOSED and DISABLED every call of one generation gets that
    generation's token; in HALF_OPEN each probe gets a fresh ticket that names its lease.
    An outcome moves the state only if its ticket is current: the generation's token, or
    a lease still held. Anything else is stale and only counted in ``ignored_outcomes``.

    When *record_events* is true, state changes and rejections append events to
    `events`, which the shell drains and reports after releasing its lock; when false,
    no event is ever built.

    **Decisions published for lock-free readers.** The methods run under the shell's
    lock. Three attributes restate their commonest decisions; each is rewritten only by
    the methods (so under that lock) and may be read by a shell *without* the lock, in
    one attribute load, which the GIL makes atomic. Every change that withdraws or alters
    a published decision first clears the attribute, and publishes anew only once the
    change is complete, so a reader that saw a value is ordered before that change, and a
    change in progress is never seen half done:

    * `fast_token`: the generation's token while CLOSED or DISABLED, else 0. A reader
      that sees a token admits the call by bumping `admissions` and holding that token
      as its ticket, exactly what `admit` does in those states. The admission takes
      effect at the read, when the state was CLOSED or DISABLED; a transition committed
      later makes the ticket stale, like that of a call admitted under the lock just
      before it.
    * `quiet_token`: the same token, but only while a success changes nothing except the
      success count: no consecutive failures, no failure-rate window, no slow-call
      threshold. A reader whose ticket equals it records the success by bumping
      `successes`, exactly what `succeeded` does then; a failure or a transition clears it
      before it moves the count or the state.
    * `gate`: ``(until, state)`` while OPEN (``until`` is when it ends) or FORCED_OPEN
      (``until`` is infinite), when no events are recorded; else None. A reader that sees
      it and *then* reads the clock at ``now < until`` refuses the call by bumping
      `rejections`, with ``retry_after = until - now`` (None when FORCED_OPEN), exactly
      what `admit` does: clocks are monotonic, so the circuit was open at the read.

    A bump may land a moment after the read that decided it, so counters are never
    decremented and ``calls_in_flight`` is derived: admissions minus the four outcome
    counts, so the statistics invariant holds in every snapshot by construction. Under
    the lock only lock-free bumps move, and `statistics` reads `successes` and
    `admissions` as of one instant (`_admitted_and_succeeded`), so its calls in flight
    are exactly those admitted and not yet reported at that instant.

    With *fast_paths* false (a Python without the GIL, where `AtomicCounter` bumps
    outside a lock would not be atomic), nothing is published: `fast_token` and
    `quiet_token` stay 0 and `gate` None, and the shell always takes its lock.
    """

    __slots__ = (
        "_cancelled",
        "_epoch",
        "_expired",
        "_failures",
        "_fast_paths",
        "_generation",
        "_half_open_successes",
        "_ignored",
        "_leases",
        "_name",
        "_open_timeout",
        "_open_until",
        "_options",
        "_policy",
        "_quiet_successes",
        "_record_events",
        "_slow",
        "_slow_calls",
        "_token",
        "_trips",
        "_trips_in_a_row",
        "admissions",
        "admit_needs_now",
        "events",
        "fast_token",
        "gate",
        "quiet_token",
        "rejections",
        "state",
        "successes",
    )

    def __init__(
        self,
        options: BreakerOptions,
        *,
        name: str,
        record_events: bool,
        fast_paths: bool = True,
    ) -> None:
        self._options = options
        self._name = name
        self._record_events = record_events
        self._fast_paths = fast_paths
        self._policy = TripPolicy(options)
        self._slow = options.slow_call_threshold
        # Whether a success in CLOSED or DISABLED can ever be a bare count: not when it
        # must be timed or entered in a window.
        self._quiet_successes = fast_paths and self._slow is None and self._policy.window is None
        self.events: list[CircuitStateChanged | CallRejected] = []
        self.state = _CLOSED
        self.admit_needs_now = False
        self._generation = 1
        self._epoch = 1
        self._token = 1
        self._leases: dict[int, float] = {}
        self._half_open_successes = 0
        self._open_timeout = options.timeout
        self._open_until = 0.0
        self._trips_in_a_row = 0
        self.admissions = AtomicCounter()
        self.successes = AtomicCounter()
        self.rejections = AtomicCounter()
        self._failures = self._slow_calls = 0
        self._ignored = self._cancelled = self._trips = 0
        self._expired = 0
        self.fast_token = self.quiet_token = 0
        self.gate: tuple[float, CircuitState] | None = None
        self._publish()

    @property
    def options(self) -> BreakerOptions:
        """The validated options."""
        return self._options

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success in CLOSED or DISABLED."""
        return self._policy.consecutive_failures

    @property
    def generation(self) -> int:
        """How many times a state was entered."""
        return self._generation

    # -- admission ---------------------------------------------------------------------

    def admit(self, now: float) -> int | Rejection:
        """Admit a call and return its ticket, or refuse it.

        *now* is read only when `admit_needs_now` is true; in CLOSED and DISABLED the
        shell may pass any float.
        """
        state = self.state
        if state is _CLOSED or state is _DISABLED:
            self.admissions.bump()
            return self._token
        if state is _OPEN:
            if now < self._open_until:
                return self._reject(state, self._open_until - now)
            self._enter(_HALF_OPEN, REASON_TIMEOUT_ELAPSED, now)
        elif state is _FORCED_OPEN:
            return self._reject(state, None)
        return self._admit_probe(now)

    def _admit_probe(self, now: float) -> int | Rejection:
        leases = self._leases
        if leases:
            self._reclaim_expired(now)
        if len(leases) >= self._options.half_open_max:
            return self._reject(_HALF_OPEN, self._full_retry_after(now))
        self._epoch += 1
        ticket = self._epoch
        leases[ticket] = now + self._options.probe_timeout
        self.admissions.bump()
        return ticket

    def _reclaim_expired(self, now: float) -> None:
        expired = [ticket for ticket, until in self._leases.items() if until <= now]
        for ticket in expired:
            del self._leases[ticket]
        self._expired += len(expired)

    def _full_retry_after(self, now: float) -> float:
        first_expiry = min(self._leases.values())
        return min(FULL_HALF_OPEN_RETRY_AFTER, first_expiry - now)

    def _reject(self, state: CircuitState, retry_after: float | None) -> Rejection:
        self.rejections.bump()
        if self._record_events:
            self.events.append(CallRejected(self._name, state, retry_after))
        return Rejection(state, retry_after)

    # -- outcomes ----------------------------------------------------------------------

    def succeeded(self, ticket: int, now: float, started: float) -> None:
        """Record that the call holding *ticket* succeeded.

        Args:
            ticket: What `admit` returned for the call.
            now: When the call ended; read only with a time window or a slow-call
                threshold (the shell may pass any float otherwise).
            started: When the call started; read only with a slow-call threshold.
        """
        if self._slow is not None and now - started > self._slow:
            if ticket == self._token or ticket in self._leases:
                self._slow_calls += 1
            self.failed(ticket, now)
            return
        if ticket == self._token:
            # CLOSED or DISABLED: only they hand out the generation's token.
            self.successes.bump()
            policy = self._policy
            if policy.consecutive_failures or policy.window is not None:
                policy.record_success(now)
                if self._quiet_successes:
                    self.quiet_token = ticket  # the count is back at 0
        elif self._leases.pop(ticket, None) is not None:
            self.successes.bump()
            self._half_open_successes += 1
            if self._half_open_successes >= self._options.success_threshold:
                self._enter(_CLOSED, REASON_PROBES_SUCCEEDED, now)
        else:
            self._ignored += 1

    def failed(self, ticket: int, now: float) -> None:
        """Record that the call holding *ticket* failed at *now* (a slow call included)."""
        if ticket == self._token:
            # Withdrawn before the count moves: a success from here on must reset it.
            self.quiet_token = 0
            self._failures += 1
            reason = self._policy.record_failure(now)
            if reason is not None and self.state is _CLOSED:
                self._enter(_OPEN, reason, now)
        elif self._leases.pop(ticket, None) is not None:
            self._failures += 1
            self._enter(_OPEN, REASON_PROBE_FAILED, now)
        else:
            self._ignored += 1

    def cancelled(self, ticket: int) -> None:
        """Record that the call holding *ticket* was cancelled: nothing but its slot."""
        self._cancelled += 1
        if self._leases:
            self._leases.pop(ticket, None)

    # -- time and manual control -------------------------------------------------------

    def tick(self, now: float) -> None:
        """Take the OPEN -> HALF_OPEN edge if the open duration has elapsed by *now*."""
        if self.state is _OPEN and now >= self._open_until:
            self._enter(_HALF_OPEN, REASON_TIMEOUT_ELAPSED, now)

    def trip(self, now: float) -> None:
        """Open the circuit now (a no-op in FORCED_OPEN)."""
        if self.state is not _FORCED_OPEN:
            self._enter(_OPEN, REASON_MANUAL_TRIP, now)

    def reset(self, now: float) -> None:
        """Close the circuit afresh, from any state."""
        self._enter(_CLOSED, REASON_MANUAL_RESET, now)

    def force_open(self, now: float) -> None:
        """Reject every call until `reset` (or `disable`)."""
        self._enter(_FORCED_OPEN, REASON_MANUAL_FORCE_OPEN, now)

    def disable(self, now: float) -> None:
        """Admit every call and only keep metrics until `reset` (or another command)."""
        self._enter(_DISABLED, REASON_MANUAL_DISABLE, now)

    def _enter(self, new: CircuitState, reason: str, now: float) -> None:
        """Enter *new*: a new generation, fresh state-local data, an event if wanted."""
        # Withdraw every published decision before anything moves (see the class doc).
        self.fast_token = self.quiet_token = 0
        self.gate = None
        old = self.state
        self.state = new
        self._generation += 1
        self._epoch += 1
        self._token = self._epoch
        self._leases.clear()
        self._half_open_successes = 0
        if new is _OPEN:
            self._trips += 1
            self._trips_in_a_row += 1
            if self._trips_in_a_row > 1:
                grown = self._open_timeout * self._options.timeout_multiplier
                self._open_timeout = min(grown, self._options.max_timeout)
            self._open_until = now + self._open_timeout
        elif new is _CLOSED or new is _DISABLED:
            self._policy.clear()
            self._trips_in_a_row = 0
            self._open_timeout = self._options.timeout
        self.admit_needs_now = not (new is _CLOSED or new is _DISABLED)
        self._publish()
        if self._record_events:
            self.events.append(CircuitStateChanged(self._name, old, new, reason, self._generation))

    def _publish(self) -> None:
        """Publish the decisions of the state just entered, for lock-free readers."""
        if not self._fast_paths:
            return
        state = self.state
        if state is _CLOSED or state is _DISABLED:
            if self._quiet_successes and not self._policy.consecutive_failures:
                self.quiet_token = self._token
            self.fast_token = self._token
        elif self._record_events:
            return  # every rejection must build its event, under the lock
        elif state is _OPEN:
            self.gate = (self._open_until, _OPEN)
        elif state is _FORCED_OPEN:
            self.gate = (math.inf, _FORCED_OPEN)

    # -- statistics --------------------------------------------------------------------

    def retry_after(self, now: float) -> float | None:
        """Return what a call refused at *now* would be told, or ``None`` if it would pass."""
        state = self.state
        if state is _OPEN:
            return max(0.0, self._open_until - now)
        if state is _HALF_OPEN:
            live = [until for until in self._leases.values() if until > now]
            if len(live) >= self._options.half_open_max:
                return min(FULL_HALF_OPEN_RETRY_AFTER, min(live) - now)
        return None

    def _admitted_and_succeeded(self) -> tuple[int, int]:
        """Read `admissions` and `successes` as of one instant, while both move lock-free.

        Successes, then admissions, then successes again: if no success landed in
        between, both values held when admissions was read (counters only grow). Read
        one after the other instead, a caller admitted and done between the reads would
        be counted in flight, or with the reads the other way round, as a success never
        admitted. A retry means that a lock-free success landed; after a few, quiet
        successes are withdrawn until the end of the read, so that only callers already
        past their read of `quiet_token`, at most one per thread, can land one still.
        """
        successes = self.successes.value()
        quiet = self.quiet_token
        retries = 0
        while True:
            admitted = self.admissions.value()
            again = self.successes.value()
            if again == successes:
                break
            successes = again
            retries += 1
            if retries == _RETRIES_BEFORE_WITHDRAWING:
                self.quiet_token = 0
        if retries >= _RETRIES_BEFORE_WITHDRAWING:
            self.quiet_token = quiet  # the caller's lock kept the state as it was
        return admitted, successes

    def statistics(self, now: float) -> CircuitBreakerStatistics:
        """Return a snapshot of every counter as of *now* (the state is not moved)."""
        window = self._policy.window
        calls, failures = (0, 0) if window is None else window.totals(now)
        admitted, successes = self._admitted_and_succeeded()
        settled = successes + self._failures + self._cancelled + self._ignored
        return CircuitBreakerStatistics(
            state=self.state,
            generation=self._generation,
            consecutive_failures=self._policy.consecutive_failures,
            calls_admitted=admitted,
            successes=successes,
            failures=self._failures,
            slow_calls=self._slow_calls,
            rejections=self.rejections.value(),
            ignored_outcomes=self._ignored,
            cancelled=self._cancelled,
            trips=self._trips,
            calls_in_flight=admitted - settled,
            probes_in_flight=len(self._leases),
            expired_probes=self._expired,
            half_open_successes=self._half_open_successes,
            window_calls=calls,
            window_failures=failures,
            failure_rate=failures / calls if calls else None,
            open_timeout=self._open_timeout,
            open_until=self._open_until if self.state is _OPEN else None,
            retry_after=self.retry_after(now),
        )
