"""The hedger: a private subpackage; its public names are re-exported by `seawall`.

``_options`` (`AdaptiveDelay`, validation), ``_core`` (the per-call decision, the latency
window and the budget, pure), ``_events`` (events, statistics), ``_engine`` (what the
shells share), ``_async`` and ``_sync`` (one call each) and ``_hedger`` (`Hedger`).
"""

from __future__ import annotations

from ._core import HedgeReason as HedgeReason
from ._events import HedgeLaunched as HedgeLaunched
from ._events import HedgerStatistics as HedgerStatistics
from ._events import HedgeWon as HedgeWon
from ._hedger import Hedger as Hedger
from ._options import AdaptiveDelay as AdaptiveDelay


__all__ = (
    "AdaptiveDelay",
    "HedgeLaunched",
    "HedgeReason",
    "HedgeWon",
    "Hedger",
    "HedgerStatistics",
)
