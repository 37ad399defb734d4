"""Sliding windows of call outcomes for the failure-rate mode: count based and time based.

Both are pure: they never read the clock (the time-based one takes ``now``), allocate
nothing per record, and keep running totals so that reading them costs O(1) amortised.
"""

from __future__ import annotations

import math
from typing import Protocol, final

from seawall._validate import to_seconds

from ._options import CountWindow, TimeWindow


__all__ = ("CountWindowCounter", "OutcomeWindow", "TimeWindowCounter", "make_window")

# Bucket index "before the beginning of time": the first record clears every bucket.
_NEVER = -(1 << 62)


class OutcomeWindow(Protocol):
    """What the trip policy needs from a window."""

    def record(self, failed: bool, now: float) -> None:
        """Add one outcome observed at *now*."""
        ...

    def totals(self, now: float) -> tuple[int, int]:
        """Return ``(calls, failures)`` inside the window as seen at *now*."""
        ...

    def clear(self) -> None:
        """Forget every outcome."""
        ...


@final
class CountWindowCounter:
    """The last *size* outcomes, in a ring buffer of bytes (1 = failure)."""

    __slots__ = ("_calls", "_failures", "_next", "_outcomes", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes = bytearray(size)
        self._next = 0
        self._calls = 0
        self._failures = 0

    def record(self, failed: bool, now: float) -> None:  # noqa: ARG002 -- time-free window
        """Add one outcome, evicting the oldest once the window is full."""
        index = self._next
        if self._calls == self._size:
            self._failures -= self._outcomes[index]
        else:
            self._calls += 1
        self._outcomes[index] = failed
        self._failures += failed
        index += 1
        self._next = 0 if index == self._size else index

    def totals(self, now: float) -> tuple[int, int]:  # noqa: ARG002 -- time-free window
        """Return ``(calls, failures)`` among the last *size* outcomes."""
        return self._calls, self._failures

    def clear(self) -> None:
        """Forget every outcome."""
        self._outcomes = bytearray(self._size)
        self._next = self._calls = self._failures = 0


@final
class TimeWindowCounter:
    """Outcomes of the last *seconds*, in a ring of time buckets.

    Bucket ``i`` holds the outcomes with ``floor(now / width) == i``; the window at *now*
    is the *buckets* most recent bucket indices up to and including now's. A *now* older
    than the newest bucket seen (a clock read out of order) lands in the newest bucket.
    """

    __slots__ = (
        "_calls",
        "_count",
        "_failures",
        "_head",
        "_total_calls",
        "_total_failures",
        "_width",
    )

    def __init__(self, seconds: float, buckets: int) -> None:
        self._width = seconds / buckets
        self._count = buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._head = _NEVER
        self._total_calls = 0
        self._total_failures = 0

    def _advance(self, now: float) -> int:
        index = math.floor(now / self._width)
        head = self._head
        if index <= head:
            return head
        count = self._count
        if index - head >= count:
            self._calls = [0] * count
            self._failures = [0] * count
            self._total_calls = self._total_failures = 0
        else:
            for stale in range(head + 1, index + 1):
                slot = stale % count
                self._total_calls -= self._calls[slot]
                self._total_failures -= self._failures[slot]
                self._calls[slot] = self._failures[slot] = 0
        self._head = index
        return index

    def record(self, failed: bool, now: float) -> None:
        """Add one outcome observed at *now*."""
        slot = self._advance(now) % self._count
        self._calls[slot] += 1
        self._total_calls += 1
        if failed:
            self._failures[slot] += 1
            self._total_failures += 1

    def totals(self, now: float) -> tuple[int, int]:
        """Return ``(calls, failures)`` of the buckets still inside the window at *now*."""
        self._advance(now)
        return self._total_calls, self._total_failures

    def clear(self) -> None:
        """Forget every outcome."""
        self._head = _NEVER
        self._calls = [0] * self._count
        self._failures = [0] * self._count
        self._total_calls = self._total_failures = 0


def make_window(window: CountWindow | TimeWindow) -> OutcomeWindow:
    """Build a fresh, empty counter for the window options *window*."""
    if isinstance(window, CountWindow):
        return CountWindowCounter(window.size)
    seconds = to_seconds("TimeWindow.seconds", window.seconds, allow_zero=False)
    return TimeWindowCounter(seconds, window.buckets)
