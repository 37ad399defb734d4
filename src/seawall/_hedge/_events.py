"""What a hedger reports: its hook events and its statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from seawall._hooks import Event


if TYPE_CHECKING:
    from seawall._hedge._core import HedgeReason


__all__ = ("HedgeLaunched", "HedgeWon", "HedgerStatistics")


@final
@dataclass(frozen=True, slots=True)
class HedgeLaunched(Event):
    """The hedger launched a hedge: one more attempt of a call already running.

    Reported right after the attempt was started.

    Attributes:
        name: The hedger's name.
        attempt: The hedge's attempt number: 1 for the first hedge (the primary is 0).
        reason: Why it was launched (the delay elapsed, or an attempt failed).

    .. versionadded:: 0.1.0
    """

    attempt: int
    reason: HedgeReason


@final
@dataclass(frozen=True, slots=True)
class HedgeWon(Event):
    """A hedged call succeeded: reported once per successful call, hedged or not.

    Attributes:
        name: The hedger's name.
        attempt: The winning attempt's number (0 is the primary).
        hedged: Whether the call launched at least one hedge.
        latency: Seconds from the call's start to the winning result (to the first
            chunk, for streams), on the hedger's clock.

    .. versionadded:: 0.1.0
    """

    attempt: int
    hedged: bool
    latency: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HedgerStatistics:
    """A snapshot of a `Hedger`'s counters.

    Attributes:
        name: The hedger's name.
        calls: Calls that ended with a result or an exception (a call cancelled by its
            caller is not counted; its launched hedges are).
        hedges_launched: Hedges launched, beyond the primaries.
        hedges_won: Calls won by a hedge.
        primary_wins: Calls won by their primary.
        failures: Calls in which every attempt failed.
        budget_denied: Hedges the budget refused.
        budget_tokens: The tokens left in the hedge budget, or ``None`` without one.
        current_delay: The hedge delay the next call would use (the adaptive one once
            enough latencies are known, else the fixed ``delay``).

    .. versionadded:: 0.1.0
    """

    name: str
    calls: int
    hedges_launched: int
    hedges_won: int
    primary_wins: int
    failures: int
    budget_denied: int
    budget_tokens: float | None
    current_delay: float
