"""The rate limiters: a private subpackage; its public names are re-exported by `seawall`.

``_bucket`` (the pure token-bucket core with reservations), ``_events`` (events and
statistics), ``_limiter`` (`RateLimiter` and the shared shell) and ``_keyed``
(`KeyedRateLimiter`, one bucket per key in bounded memory).
"""

from __future__ import annotations

from ._events import AcquireCancelled as AcquireCancelled
from ._events import AcquireWaited as AcquireWaited
from ._events import KeyedRateLimiterStatistics as KeyedRateLimiterStatistics
from ._events import RateLimited as RateLimited
from ._events import RateLimiterStatistics as RateLimiterStatistics
from ._keyed import KeyedRateLimiter as KeyedRateLimiter
from ._limiter import RateLimiter as RateLimiter


__all__ = (
    "AcquireCancelled",
    "AcquireWaited",
    "KeyedRateLimiter",
    "KeyedRateLimiterStatistics",
    "RateLimited",
    "RateLimiter",
    "RateLimiterStatistics",
)
