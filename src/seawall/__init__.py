"""seawall: resilience primitives for sync code, asyncio and trio.

Circuit breakers, retriers, hedgers and token-bucket rate limiters that share one
instance between threads and tasks, take an injected clock, and report to hooks.
Everything public is re-exported here; every other module is private.
"""

from __future__ import annotations

# -- exports: circuit breaker --
from ._breaker import CallGuard as CallGuard
from ._breaker import CallRejected as CallRejected
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitBreakerStatistics as CircuitBreakerStatistics
from ._breaker import CircuitState as CircuitState
from ._breaker import CircuitStateChanged as CircuitStateChanged
from ._breaker import CountWindow as CountWindow
from ._breaker import TimeWindow as TimeWindow

# -- exports: bulkhead --
from ._bulkhead import Bulkhead as Bulkhead
from ._bulkhead import BulkheadAcquired as BulkheadAcquired
from ._bulkhead import BulkheadRejected as BulkheadRejected
from ._bulkhead import BulkheadReleased as BulkheadReleased
from ._bulkhead import BulkheadStatistics as BulkheadStatistics
from ._classify import Classification as Classification
from ._classify import ErrorKind as ErrorKind
from ._classify import classify as classify
from ._classify import is_retryable as is_retryable
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock

# -- exports: composition (LLM middleware and pipelines) --
from ._compose import Model as Model
from ._compose import Pipeline as Pipeline
from ._compose import apply_middleware as apply_middleware
from ._compose import as_llm_middleware as as_llm_middleware
from ._compose import with_bulkhead as with_bulkhead
from ._compose import with_circuit_breaker as with_circuit_breaker
from ._compose import with_fallback as with_fallback
from ._compose import with_hedge as with_hedge
from ._compose import with_rate_limit as with_rate_limit
from ._compose import with_retry as with_retry
from ._compose import with_telemetry as with_telemetry
from ._compose import with_timeout as with_timeout
from ._compose._telemetry import ModelCallEnded as ModelCallEnded
from ._compose._telemetry import ModelCallStarted as ModelCallStarted
from ._errors import BulkheadFullError as BulkheadFullError
from ._errors import CallTimeoutError as CallTimeoutError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import RejectedError as RejectedError
from ._errors import ResilienceError as ResilienceError
from ._errors import WouldBlock as WouldBlock

# -- exports: fallback --
from ._fallback import Fallback as Fallback
from ._fallback import FallbackStatistics as FallbackStatistics
from ._fallback import FellBack as FellBack

# -- exports: hedger --
from ._hedge import AdaptiveDelay as AdaptiveDelay
from ._hedge import HedgeLaunched as HedgeLaunched
from ._hedge import Hedger as Hedger
from ._hedge import HedgeReason as HedgeReason
from ._hedge import HedgerStatistics as HedgerStatistics
from ._hedge import HedgeWon as HedgeWon
from ._hooks import Event as Event
from ._hooks import Hook as Hook

# -- exports: rate limiters --
from ._limit import AcquireCancelled as AcquireCancelled
from ._limit import AcquireWaited as AcquireWaited
from ._limit import KeyedRateLimiter as KeyedRateLimiter
from ._limit import KeyedRateLimiterStatistics as KeyedRateLimiterStatistics
from ._limit import LLMLease as LLMLease
from ._limit import LLMRateLimiter as LLMRateLimiter
from ._limit import LLMRateLimiterStatistics as LLMRateLimiterStatistics
from ._limit import RateLimited as RateLimited
from ._limit import RateLimiter as RateLimiter
from ._limit import RateLimiterStatistics as RateLimiterStatistics
from ._limit import TokensSettled as TokensSettled

# -- exports: logging --
from ._logging import LoggingHook as LoggingHook

# -- exports: calls and attempts, for instrumentation --
from ._observe import AttemptEnded as AttemptEnded
from ._observe import AttemptKind as AttemptKind
from ._observe import AttemptStarted as AttemptStarted
from ._observe import CallEnded as CallEnded
from ._observe import CallStarted as CallStarted
from ._observe import Outcome as Outcome

# -- exports: retrier --
from ._retry import Attempt as Attempt
from ._retry import GiveUpReason as GiveUpReason
from ._retry import Jitter as Jitter
from ._retry import Retrier as Retrier
from ._retry import RetrierStatistics as RetrierStatistics
from ._retry import RetryBudget as RetryBudget
from ._retry import RetryBudgetStatistics as RetryBudgetStatistics
from ._retry import RetryGaveUp as RetryGaveUp
from ._retry import RetryScheduled as RetryScheduled

# -- exports: timeout --
from ._timeout import TimedOut as TimedOut
from ._timeout import Timeout as Timeout
from ._timeout import TimeoutStatistics as TimeoutStatistics


__all__ = (
    "AcquireCancelled",
    "AcquireWaited",
    "AdaptiveDelay",
    "Attempt",
    "AttemptEnded",
    "AttemptKind",
    "AttemptStarted",
    "Bulkhead",
    "BulkheadAcquired",
    "BulkheadFullError",
    "BulkheadRejected",
    "BulkheadReleased",
    "BulkheadStatistics",
    "CallEnded",
    "CallGuard",
    "CallRejected",
    "CallStarted",
    "CallTimeoutError",
    "CircuitBreaker",
    "CircuitBreakerStatistics",
    "CircuitOpenError",
    "CircuitState",
    "CircuitStateChanged",
    "Classification",
    "Clock",
    "CountWindow",
    "ErrorKind",
    "Event",
    "Fallback",
    "FallbackStatistics",
    "FellBack",
    "GiveUpReason",
    "HedgeLaunched",
    "HedgeReason",
    "HedgeWon",
    "Hedger",
    "HedgerStatistics",
    "Hook",
    "Jitter",
    "KeyedRateLimiter",
    "KeyedRateLimiterStatistics",
    "LLMLease",
    "LLMRateLimiter",
    "LLMRateLimiterStatistics",
    "LoggingHook",
    "Model",
    "ModelCallEnded",
    "ModelCallStarted",
    "Outcome",
    "Pipeline",
    "RateLimited",
    "RateLimitedError",
    "RateLimiter",
    "RateLimiterStatistics",
    "RejectedError",
    "ResilienceError",
    "Retrier",
    "RetrierStatistics",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryGaveUp",
    "RetryScheduled",
    "SystemClock",
    "TimeWindow",
    "TimedOut",
    "Timeout",
    "TimeoutStatistics",
    "TokensSettled",
    "WouldBlock",
    "apply_middleware",
    "as_llm_middleware",
    "classify",
    "is_retryable",
    "with_bulkhead",
    "with_circuit_breaker",
    "with_fallback",
    "with_hedge",
    "with_rate_limit",
    "with_retry",
    "with_telemetry",
    "with_timeout",
)


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 -- only when asked

        return version("seawall")
    msg = f"module 'seawall' has no attribute {name!r}"
    raise AttributeError(msg)


def _fix_module_names() -> None:
    # Tracebacks, pickle and documentation show the public path, e.g. seawall.Retrier.
    namespace = globals()
    for public_name in __all__:
        obj = namespace[public_name]
        if getattr(obj, "__module__", "").startswith("seawall._"):
            try:
                obj.__module__ = __name__
            except (AttributeError, TypeError):  # aliases such as Hook have no __module__ slot
                continue


_fix_module_names()
