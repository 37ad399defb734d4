"""What every hedger shell shares: the call's start, the launch loop, the counters.

The async shell and the sync shell both drive `HedgeRun` through `HedgeEngine.advance`,
which asks the core, applies the budget and launches hedges through a callback; neither
shell decides anything itself.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, final

from seawall._clock import SystemClock
from seawall._hedge._core import (
    FAILED,
    FAILED_PERMANENTLY,
    AdaptiveState,
    Decision,
    HedgeBudgetCore,
    HedgeRun,
    Launch,
)
from seawall._hedge._events import HedgeLaunched, HedgerStatistics, HedgeWon
from seawall._hooks import emit
from seawall._threads import DaemonPool


if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from seawall._clock import Clock
    from seawall._hedge._async import Deadlines
    from seawall._hedge._options import HedgeOptions
    from seawall._hooks import Hooks
    from seawall._observe import Observer


__all__ = ("HedgeEngine", "logger")

logger = logging.getLogger("seawall")


@final
class HedgeEngine:
    """The configuration of a hedger, its shared state (budget, latencies, counters).

    Shared by every thread and task that uses the hedger. A small lock guards the
    counters, the budget and the latency window; it is never held while user code runs
    or across an ``await``. Per-call state lives in a `HedgeRun` owned by one call.
    """

    __slots__ = (
        "_adaptive",
        "_budget",
        "_denied",
        "_executor",
        "_failures",
        "_hedges",
        "_hedges_won",
        "_lock",
        "_primary_wins",
        "clock",
        "deadlines",
        "hooks",
        "is_retryable",
        "name",
        "observer",
        "options",
        "real_time",
    )

    def __init__(
        self,
        *,
        name: str,
        options: HedgeOptions,
        is_retryable: Callable[[Exception], object],
        hooks: Hooks,
        clock: Clock,
        observer: Observer | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.is_retryable = is_retryable
        self.hooks = hooks
        self.clock = clock
        # Whether the clock is the real one: then, on asyncio, the async shell may time
        # the hedge delay with the event loop's own timer (see `._async`).
        self.real_time = type(clock) is SystemClock
        # The async shell's timer of hedge times, for the last event loop that used it.
        self.deadlines: Deadlines | None = None
        # Reports calls and attempts; None without hooks, which the shells test once.
        self.observer = observer
        self._lock = threading.Lock()
        adaptive = options.adaptive
        self._adaptive = (
            None
            if adaptive is None
            else AdaptiveState(
                fixed=options.delay,
                percentile=adaptive.percentile,
                size=adaptive.window,
                min_samples=adaptive.min_samples,
                floor=adaptive.floor_seconds,
                ceiling=adaptive.ceiling_seconds,
            )
        )
        self._budget = (
            None if options.budget is None else HedgeBudgetCore(options.budget, options.budget_cap)
        )
        self._executor: DaemonPool | None = None
        self._hedges = 0
        self._hedges_won = 0
        self._primary_wins = 0
        self._failures = 0
        self._denied = 0

    # -- per call ----------------------------------------------------------------------

    def begin(self) -> tuple[HedgeRun, float]:
        """Start a call: read the clock, earn its budget share, pick its delay."""
        start = self.clock.now()
        return self.run(start, self.open()), start

    def open(self) -> float:
        """Start a call whose start time the caller read: earn its budget share, return its delay.

        The async shell's fast path calls this alone, and `run` only if the call turns
        out to need the core (see `._async`).
        """
        budget = self._budget
        if budget is not None:
            with self._lock:
                budget.earn()
        adaptive = self._adaptive
        return self.options.delay if adaptive is None else adaptive.delay

    def run(self, start: float, delay: float) -> HedgeRun:
        """Return the decision state of a call started at *start* with *delay* (`open`)."""
        return HedgeRun(start=start, delay=delay, max_hedges=self.options.max_hedges)

    def classify(self, exc: Exception) -> int:
        """Return `FAILED` for a retryable exception, else `FAILED_PERMANENTLY`."""
        try:
            retryable = self.is_retryable(exc)
        except Exception:
            logger.exception(
                "hedger %r: is_retryable raised on %r; treated as not retryable", self.name, exc
            )
            return FAILED_PERMANENTLY
        return FAILED if retryable else FAILED_PERMANENTLY

    def advance(self, run: HedgeRun, now: float, launch: Callable[[int], object]) -> Decision:
        """Launch every hedge the core asks for at *now*; return the first other decision.

        *launch* starts attempt number *n* (a task, a worker thread); it is called with
        no lock held.
        """
        budget = self._budget
        while True:
            decision = run.decide(now)
            if type(decision) is not Launch:
                return decision
            if budget is not None:
                with self._lock:
                    allowed = budget.try_spend()
                    if not allowed:
                        self._denied += 1
                if not allowed:
                    run.refuse()
                    continue
            attempt = run.launch(now, decision.reason)
            with self._lock:
                self._hedges += 1
            launch(attempt)
            if self.hooks:
                emit(self.hooks, HedgeLaunched(self.name, attempt, decision.reason))

    def won(self, run: HedgeRun, attempt: int, attempt_latency: float, latency: float) -> None:
        """Count a call won by *attempt*; feed the adaptive delay; report `HedgeWon`."""
        adaptive = self._adaptive
        with self._lock:
            if attempt:
                self._hedges_won += 1
            else:
                self._primary_wins += 1
            if adaptive is not None:
                adaptive.add(attempt_latency)
        if self.hooks:
            emit(self.hooks, HedgeWon(self.name, attempt, run.launched > 1, latency))

    def won_alone(self, start: float) -> None:
        """Count a call started at *start* and won by its primary alone; as `won`.

        For the async shell's fast path, which has no run: the clock is read (for the
        latency) only when the adaptive delay or a hook needs it.
        """
        adaptive = self._adaptive
        hooks = self.hooks
        latency = 0.0 if adaptive is None and not hooks else self.clock.now() - start
        # acquire / release rather than ``with``: 0.1 µs less, on the path that
        # hedges nothing and is measured against a bare task (issue 6).
        lock = self._lock
        lock.acquire()
        try:
            self._primary_wins += 1
            if adaptive is not None:
                adaptive.add(latency)
        finally:
            lock.release()
        if hooks:
            emit(hooks, HedgeWon(self.name, 0, hedged=False, latency=latency))

    def failed(self, errors: Sequence[BaseException | None]) -> BaseException:
        """Count a call whose attempts all failed; return the primary's exception.

        The other attempts' exceptions are attached to it as notes (Python 3.11+).
        """
        with self._lock:
            self._failures += 1
        primary = errors[0]
        if primary is None:  # pragma: no cover - the core only fails after attempt 0 did
            raise AssertionError("unreachable")
        if sys.version_info >= (3, 11):
            for attempt, exc in enumerate(errors):
                if attempt and exc is not None:
                    primary.add_note(
                        f"seawall: hedger {self.name!r}: attempt {attempt} also failed: {exc!r}"
                    )
        return primary

    # -- sync shell support ------------------------------------------------------------

    def executor(self) -> DaemonPool:
        """Return the worker pool, creating it on first use."""
        executor = self._executor
        if executor is None:
            with self._lock:
                executor = self._executor
                if executor is None:
                    executor = self._executor = DaemonPool(
                        self.options.max_workers, f"seawall-hedger-{self.name}"
                    )
        return executor

    def close(self) -> None:
        """Shut the worker pool down without waiting; a later sync call makes a new one."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    @property
    def has_executor(self) -> bool:
        """Whether the worker pool exists."""
        return self._executor is not None

    # -- introspection -----------------------------------------------------------------

    def current_delay(self) -> float:
        """Return the delay the next call would use."""
        adaptive = self._adaptive
        return self.options.delay if adaptive is None else adaptive.delay

    def statistics(self) -> HedgerStatistics:
        """Return a consistent snapshot of the counters."""
        with self._lock:
            wins = self._primary_wins + self._hedges_won
            budget = self._budget
            return HedgerStatistics(
                name=self.name,
                calls=wins + self._failures,
                hedges_launched=self._hedges,
                hedges_won=self._hedges_won,
                primary_wins=self._primary_wins,
                failures=self._failures,
                budget_denied=self._denied,
                budget_tokens=None if budget is None else budget.tokens,
                current_delay=self.current_delay(),
            )
