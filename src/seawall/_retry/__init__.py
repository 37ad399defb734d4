"""The retrier: capped, jittered exponential backoff with a shared retry budget.

Split into a pure core (`._core`, `._budget`'s `BudgetCore`), the failure handling shared
by every shell (`._engine`) and the shells themselves (`._retrier`).
"""

from __future__ import annotations

from seawall._retry._budget import RetryBudget, RetryBudgetStatistics
from seawall._retry._core import GiveUpReason, Jitter
from seawall._retry._engine import RetrierStatistics
from seawall._retry._events import RetryGaveUp, RetryScheduled
from seawall._retry._retrier import Attempt, Retrier


__all__ = (
    "Attempt",
    "GiveUpReason",
    "Jitter",
    "Retrier",
    "RetrierStatistics",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryGaveUp",
    "RetryScheduled",
)
