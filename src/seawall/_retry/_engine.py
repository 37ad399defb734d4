"""What every retrier shell shares: the per-call state, failure handling and counters.

The sync loop, the async loop and the attempt iterators all report a failed attempt to
`Engine.failed` and act on the delay it returns; none of them decides anything itself.
"""

from __future__ import annotations

import itertools
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from seawall._classify import classify
from seawall._hooks import emit
from seawall._retry._core import GiveUp, GiveUpReason, Jitter, RetryPolicy, decide
from seawall._retry._events import RetryGaveUp, RetryScheduled


if TYPE_CHECKING:
    from collections.abc import Callable

    from seawall._clock import Clock
    from seawall._hooks import Hooks
    from seawall._observe import Observer
    from seawall._retry._budget import RetryBudget


__all__ = ("Engine", "RetrierStatistics", "RunState")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RetrierStatistics:
    """A snapshot of a `Retrier`'s counters.

    A call is counted once its first attempt has finished; an attempt once it has
    finished (an attempt cut short by cancellation is not counted, nor is its call
    counted as a success or a give-up).

    Attributes:
        name: The retrier's name.
        calls: Calls whose first attempt has finished.
        attempts: Finished attempts, first attempts and retries alike.
        retries: Waits scheduled before another attempt.
        successes: Calls that ended with an accepted outcome.
        gave_up_not_retryable: Calls ended by a failure that is not retryable.
        gave_up_attempts_exhausted: Calls that used up ``max_attempts``.
        gave_up_retry_after_over_cap: Calls ended by a Retry-After above the cap.
        gave_up_deadline_exceeded: Calls ended because the deadline would be missed.
        gave_up_budget_exhausted: Calls ended because the retry budget ran low.

    .. versionadded:: 0.1.0
    """

    name: str
    calls: int
    attempts: int
    retries: int
    successes: int
    gave_up_not_retryable: int
    gave_up_attempts_exhausted: int
    gave_up_retry_after_over_cap: int
    gave_up_deadline_exceeded: int
    gave_up_budget_exhausted: int

    @property
    def gave_up(self) -> int:
        """Calls ended by giving up, for any reason."""
        return (
            self.gave_up_not_retryable
            + self.gave_up_attempts_exhausted
            + self.gave_up_retry_after_over_cap
            + self.gave_up_deadline_exceeded
            + self.gave_up_budget_exhausted
        )


@final
class RunState:
    """The state of one call (or one attempt loop): never shared, never on the retrier.

    Attributes:
        start: The clock's time when the call started (0.0 without a deadline).
        attempt: The number of the current attempt, from 1.
        previous: The previous backoff, for decorrelated jitter.
    """

    __slots__ = ("attempt", "previous", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.attempt = 1
        self.previous: float | None = None


@final
class Engine:
    """The configuration of a retrier plus its counters, and the one failure handler.

    Its attributes are read directly by the shells' fast paths; treat them as read-only.

    Counting is cheap on purpose. A call that succeeds at its first attempt only advances
    an `itertools.count` through ``count_first_try`` (one C call, atomic in CPython: no
    lock, no allocation, no Python frame). Everything else happens on the failure path
    and is counted under a lock. An `itertools.count` cannot be read without advancing
    it, so `statistics` advances it too and subtracts its own reads.
    """

    __slots__ = (
        "_failed_attempts",
        "_give_ups",
        "_later_successes",
        "_lock",
        "_reads",
        "_retries",
        "_slow_calls",
        "budget",
        "clock",
        "count_first_try",
        "deadline",
        "hooks",
        "is_retryable",
        "name",
        "observer",
        "policy",
        "retry_on_result",
        "rng",
    )

    def __init__(
        self,
        *,
        name: str,
        policy: RetryPolicy,
        is_retryable: Callable[[Exception], object],
        retry_on_result: Callable[[Any], object] | None,
        budget: RetryBudget | None,
        rng: Callable[[], float],
        hooks: Hooks,
        clock: Clock,
        observer: Observer | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.deadline = policy.deadline
        self.is_retryable = is_retryable
        self.retry_on_result = retry_on_result
        self.budget = budget
        self.rng = rng
        self.hooks = hooks
        self.clock = clock
        # Reports calls and attempts; None without hooks, which the shells test once.
        self.observer = observer
        self._lock = threading.Lock()
        # A bound C method: calling it runs no Python frame.
        self.count_first_try = itertools.count().__next__
        self._reads = 0
        self._slow_calls = 0
        self._failed_attempts = 0
        self._retries = 0
        self._later_successes = 0
        self._give_ups = dict.fromkeys(GiveUpReason, 0)

    def start(self) -> RunState:
        """Begin a call: read the clock only when a deadline needs a start time."""
        return RunState(self.clock.now() if self.deadline is not None else 0.0)

    def first_try_succeeded(self) -> None:
        """Count a call whose first attempt succeeded: the fast path."""
        self.count_first_try()
        if self.budget is not None:
            self.budget.record_success()

    def succeeded(self, run: RunState) -> None:
        """Count a call whose attempt number ``run.attempt`` succeeded."""
        if run.attempt == 1:
            self.first_try_succeeded()
            return
        with self._lock:
            self._later_successes += 1
        if self.budget is not None:
            self.budget.record_success()

    def failed(self, run: RunState, exc: Exception | None) -> float | None:
        """Handle a failed attempt: decide, count, annotate, report.

        Args:
            run: The call's state; advanced to the next attempt when retrying.
            exc: The attempt's exception, or ``None`` when ``retry_on_result``
                rejected its result.

        Returns:
            Seconds to wait before the next attempt, or ``None`` to give up: the caller
            then re-raises *exc* (annotated with a note) or returns the rejected result.
        """
        retry_after = None
        if exc is None:
            retryable = True
        else:
            retryable = bool(self.is_retryable(exc))
            if retryable:
                retry_after = classify(exc).retry_after
        budget_allows = True
        if retryable and self.budget is not None:
            budget_allows = self.budget.record_failure()
        policy = self.policy
        decision = decide(
            policy,
            attempt=run.attempt,
            retryable=retryable,
            retry_after=retry_after,
            elapsed=None if self.deadline is None else self.clock.now() - run.start,
            budget_allows=budget_allows,
            previous=run.previous,
            rnd=self.rng() if retryable and policy.jitter is not Jitter.NONE else 0.0,
        )
        if isinstance(decision, GiveUp):
            self._gave_up(run, exc, decision.reason)
            return None
        with self._lock:
            if run.attempt == 1:
                self._slow_calls += 1
            self._failed_attempts += 1
            self._retries += 1
        if self.hooks:
            event = RetryScheduled(self.name, run.attempt, decision.delay, exc, exc is None)
            emit(self.hooks, event)
        run.attempt += 1
        run.previous = decision.backoff
        return decision.delay

    def _gave_up(self, run: RunState, exc: Exception | None, reason: GiveUpReason) -> None:
        attempts = run.attempt
        with self._lock:
            if attempts == 1:
                self._slow_calls += 1
            self._failed_attempts += 1
            self._give_ups[reason] += 1
        # A first failure that is simply not retryable passes through untouched: the
        # retrier did nothing worth a note.
        if exc is not None and (attempts > 1 or reason is not GiveUpReason.NOT_RETRYABLE):
            plural = "" if attempts == 1 else "s"
            _add_note(
                exc,
                f"seawall: retrier {self.name!r} gave up after {attempts} attempt{plural}"
                f" ({reason.value})",
            )
        if self.hooks:
            emit(self.hooks, RetryGaveUp(self.name, attempts, reason, exc))

    def statistics(self) -> RetrierStatistics:
        """Return a snapshot of the counters."""
        with self._lock:
            first_try = self.count_first_try() - self._reads
            self._reads += 1
            give_ups = self._give_ups
            return RetrierStatistics(
                name=self.name,
                calls=first_try + self._slow_calls,
                attempts=first_try + self._failed_attempts + self._later_successes,
                retries=self._retries,
                successes=first_try + self._later_successes,
                gave_up_not_retryable=give_ups[GiveUpReason.NOT_RETRYABLE],
                gave_up_attempts_exhausted=give_ups[GiveUpReason.ATTEMPTS_EXHAUSTED],
                gave_up_retry_after_over_cap=give_ups[GiveUpReason.RETRY_AFTER_OVER_CAP],
                gave_up_deadline_exceeded=give_ups[GiveUpReason.DEADLINE_EXCEEDED],
                gave_up_budget_exhausted=give_ups[GiveUpReason.BUDGET_EXHAUSTED],
            )


def _add_note(exc: BaseException, note: str) -> None:
    # Notes exist from Python 3.11 on; on 3.10 the exception goes through as it is.
    if sys.version_info >= (3, 11):
        exc.add_note(note)
