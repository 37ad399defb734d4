"""The hedger's pure core: the per-call decision, the latency window and the budget.

Nothing here reads a clock, takes a lock, awaits or starts anything. The shells feed it
the time and the attempts' outcomes, and act on the decision it returns: launch a hedge
now, wait until a time (or for the next outcome), or end the call with an attempt's
result or with the primary's exception.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass
from typing import Final, TypeAlias, final


__all__ = (
    "FAILED",
    "FAILED_PERMANENTLY",
    "LAUNCH_AFTER_DELAY",
    "LAUNCH_AFTER_FAILURE",
    "RUNNING",
    "SUCCEEDED",
    "WAIT_FOR_OUTCOME",
    "AdaptiveState",
    "Decision",
    "Fail",
    "HedgeBudgetCore",
    "HedgeReason",
    "HedgeRun",
    "LatencyWindow",
    "Launch",
    "Wait",
    "Win",
)

# The states of an attempt.
RUNNING: Final = 0
SUCCEEDED: Final = 1
FAILED: Final = 2  # failed retryably: worth a hedge at once
FAILED_PERMANENTLY: Final = 3  # failed in a way another attempt would not fix


@final
class HedgeReason(enum.Enum):
    """Why a hedge was launched.

    .. versionadded:: 0.1.0
    """

    DELAY_ELAPSED = "delay_elapsed"
    """No attempt produced a result within the hedge delay."""

    ATTEMPT_FAILED = "attempt_failed"
    """An attempt failed with a retryable error."""


@final
@dataclass(frozen=True, slots=True)
class Launch:
    """Launch one more attempt now, for *reason*."""

    reason: HedgeReason


@final
@dataclass(frozen=True, slots=True)
class Wait:
    """Wait for the next outcome, or until the time *until* (``None``: no time limit)."""

    until: float | None


@final
@dataclass(frozen=True, slots=True)
class Win:
    """End the call with the result of attempt *attempt*."""

    attempt: int


@final
@dataclass(frozen=True, slots=True)
class Fail:
    """End the call with the exception of attempt *attempt* (always the primary, 0)."""

    attempt: int


Decision: TypeAlias = Launch | Wait | Win | Fail

LAUNCH_AFTER_DELAY: Final = Launch(HedgeReason.DELAY_ELAPSED)
LAUNCH_AFTER_FAILURE: Final = Launch(HedgeReason.ATTEMPT_FAILED)
WAIT_FOR_OUTCOME: Final = Wait(None)


@final
class HedgeRun:
    """The decision state of one hedged call: never shared between calls.

    Attempt 0 is the primary and runs from *start*. The rules, applied by `decide`:

    1. The first attempt to succeed, in the order outcomes were reported, wins.
    2. Every retryable failure earns an immediate hedge (rule 4 permitting).
    3. When no attempt is running and none may be launched, the call fails with the
       primary's exception.
    4. A hedge is launched only while fewer than ``max_hedges`` were launched, no
       attempt failed permanently and the budget never refused one in this call.
       Then it is launched at once for an unanswered retryable failure, or once
       *delay* has passed since the latest launch without a result.

    A permanent failure therefore stops hedging but does not end the call while
    another attempt may still succeed; a primary that fails permanently with nothing
    else running ends the call at once.

    Args:
        start: The time the primary started.
        delay: Seconds without a result before a hedge is launched.
        max_hedges: The most attempts launched beyond the primary.
    """

    __slots__ = ("_credit", "_delay", "_max_attempts", "_next_at", "_stopped", "order", "states")

    def __init__(self, *, start: float, delay: float, max_hedges: int) -> None:
        self.states = [RUNNING]
        self.order: list[int] = []
        self._delay = delay
        self._max_attempts = max_hedges + 1
        self._next_at = start + delay
        self._credit = 0
        self._stopped = False

    @property
    def launched(self) -> int:
        """How many attempts were launched, the primary included."""
        return len(self.states)

    @property
    def winner(self) -> int | None:
        """The attempt that won, if any."""
        for index in self.order:
            if self.states[index] == SUCCEEDED:
                return index
        return None

    def can_launch(self) -> bool:
        """Return whether rule 4 still allows a hedge in this call."""
        return not self._stopped and len(self.states) < self._max_attempts

    def decide(self, now: float) -> Decision:
        """Return what to do next at time *now*; changes nothing."""
        order = self.order
        states = self.states
        if order:
            for index in order:
                if states[index] == SUCCEEDED:
                    return Win(index)
        can_launch = not self._stopped and len(states) < self._max_attempts
        if can_launch and self._credit > 0:
            return LAUNCH_AFTER_FAILURE
        if len(order) == len(states):  # nothing running: every attempt failed
            return Fail(0)
        if can_launch:
            if now >= self._next_at:
                return LAUNCH_AFTER_DELAY
            return Wait(self._next_at)
        return WAIT_FOR_OUTCOME

    def launch(self, now: float, reason: HedgeReason) -> int:
        """Record that a hedge was launched at *now*; return its attempt number."""
        if not self.can_launch():
            raise RuntimeError("no hedge may be launched in this call")
        if reason is HedgeReason.ATTEMPT_FAILED:
            self._credit -= 1
        self.states.append(RUNNING)
        self._next_at = now + self._delay
        return len(self.states) - 1

    def refuse(self) -> None:
        """Record that the budget refused a hedge: no more hedges in this call."""
        self._stopped = True

    def completed(self, attempt: int, state: int) -> None:
        """Record the outcome (`SUCCEEDED`, `FAILED`, `FAILED_PERMANENTLY`) of *attempt*."""
        if self.states[attempt] != RUNNING:
            raise RuntimeError(f"attempt {attempt} has already completed")
        if state == RUNNING:
            raise ValueError("an outcome cannot be RUNNING")
        self.states[attempt] = state
        self.order.append(attempt)
        if state == FAILED:
            self._credit += 1
        elif state == FAILED_PERMANENTLY:
            self._stopped = True

    def __repr__(self) -> str:
        return f"HedgeRun(states={self.states!r}, order={self.order!r})"


@final
class LatencyWindow:
    """The last *size* latencies, kept in arrival order and in sorted order.

    Adding costs one `bisect.insort` plus, once full, one removal by bisection: both
    move at most *size* pointers (about a microsecond for 1000), with no sorting on
    read, so a percentile is a single index.
    """

    __slots__ = ("_pos", "_ring", "_size", "_sorted")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._size = size
        self._ring: list[float] = []
        self._sorted: list[float] = []
        self._pos = 0

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, latency: float) -> None:
        """Add *latency*, evicting the oldest one when the window is full."""
        ring = self._ring
        ordered = self._sorted
        if len(ring) < self._size:
            ring.append(latency)
        else:
            pos = self._pos
            del ordered[bisect.bisect_left(ordered, ring[pos])]
            ring[pos] = latency
            self._pos = (pos + 1) % self._size
        bisect.insort(ordered, latency)

    def percentile(self, fraction: float) -> float:
        """Return the nearest-rank percentile *fraction* (in (0, 1]) of the window."""
        ordered = self._sorted
        if not ordered:
            raise ValueError("the window is empty")
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1]

    def values(self) -> list[float]:
        """Return the latencies in the window, oldest first (a copy)."""
        return self._ring[self._pos :] + self._ring[: self._pos]


@final
class AdaptiveState:
    """The adaptive hedge delay: a latency window and its clamped percentile.

    ``delay`` is recomputed when a latency is added, so that reading it costs one
    attribute access on every call.
    """

    __slots__ = ("_ceiling", "_floor", "_min_samples", "_percentile", "delay", "window")

    def __init__(
        self,
        *,
        fixed: float,
        percentile: float,
        size: int,
        min_samples: int,
        floor: float,
        ceiling: float,
    ) -> None:
        self.window = LatencyWindow(size)
        self._percentile = percentile
        self._min_samples = min_samples
        self._floor = floor
        self._ceiling = ceiling
        self.delay = fixed

    def add(self, latency: float) -> None:
        """Add a successful call's latency and refresh ``delay``."""
        window = self.window
        window.add(latency)
        if len(window) >= self._min_samples:
            value = window.percentile(self._percentile)
            self.delay = min(self._ceiling, max(self._floor, value))


# Token counts are kept as integer millionths, so that many small deposits of the
# budget ratio add up exactly instead of drifting in binary floating point.
_UNITS: Final = 1_000_000


@final
class HedgeBudgetCore:
    """The hedge budget's token accounting: pure, no lock, no clock.

    Every call earns *ratio* tokens, up to *cap*; every hedge spends one whole token,
    and a hedge is refused when less than one is left. The bucket starts full, so
    over any run of *n* calls at most ``cap + ratio * n`` hedges are launched.

    Args:
        ratio: Tokens earned per call, in (0, 1] (e.g. 0.05: about 5% of calls hedged).
        cap: The most tokens kept, >= 1.
    """

    __slots__ = ("_cap", "_ratio", "_tokens")

    def __init__(self, ratio: float, cap: float) -> None:
        self._ratio = max(1, round(ratio * _UNITS))
        self._cap = max(_UNITS, round(cap * _UNITS))
        self._tokens = self._cap

    @property
    def tokens(self) -> float:
        """The tokens left."""
        return self._tokens / _UNITS

    def earn(self) -> None:
        """Credit one call's share of tokens."""
        tokens = self._tokens + self._ratio
        self._tokens = min(self._cap, tokens)

    def try_spend(self) -> bool:
        """Take one token for a hedge; return ``False`` (taking nothing) if none is left."""
        if self._tokens < _UNITS:
            return False
        self._tokens -= _UNITS
        return True

    def __repr__(self) -> str:
        return f"HedgeBudgetCore(tokens={self.tokens!r}, cap={self._cap / _UNITS!r})"
