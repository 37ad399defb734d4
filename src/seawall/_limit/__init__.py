"""The rate limiters: a private subpackage; its public names are re-exported by `seawall`.

``_bucket`` (the pure token-bucket core with reservations), ``_events`` (events and
statistics), ``_limiter`` (`RateLimiter` and the shared shell), ``_keyed``
(`KeyedRateLimiter`, one bucket per key in bounded memory) and ``_llm``
(`LLMRateLimiter`, requests and tokens per minute together).
"""

from __future__ import annotations

from ._events import AcquireCancelled as AcquireCancelled
from ._events import AcquireWaited as AcquireWaited
from ._events import KeyedRateLimiterStatistics as KeyedRateLimiterStatistics
from ._events import RateLimited as RateLimited
from ._events import RateLimiterStatistics as RateLimiterStatistics
from ._keyed import KeyedRateLimiter as KeyedRateLimiter
from ._limiter import RateLimiter as RateLimiter
from ._llm import LLMLease as LLMLease
from ._llm import LLMRateLimiter as LLMRateLimiter
from ._llm import LLMRateLimiterStatistics as LLMRateLimiterStatistics
from ._llm import TokensSettled as TokensSettled


__all__ = (
    "AcquireCancelled",
    "AcquireWaited",
    "KeyedRateLimiter",
    "KeyedRateLimiterStatistics",
    "LLMLease",
    "LLMRateLimiter",
    "LLMRateLimiterStatistics",
    "RateLimited",
    "RateLimiter",
    "RateLimiterStatistics",
    "TokensSettled",
)
