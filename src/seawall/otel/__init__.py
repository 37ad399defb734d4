"""OpenTelemetry for seawall: spans, span events and metrics from the primitives' hooks.

`OpenTelemetryHook` is a hook (``hooks=(hook,)`` on any primitive) that turns seawall's
events into OpenTelemetry spans, span events and metrics, on **opentelemetry-api only**:
install it with the extra ``seawall[otel]``, and configure an SDK (or any other API
implementation) in the application. Without one, the API's no-op providers make the hook
cheap and silent.

Every span name, span event name, metric name and attribute key seawall defines is a
constant of this module; ``docs/instrumentation.md`` lists them all in one table.
"""

from __future__ import annotations


try:
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401 -- checked here, used by ._hook
except ImportError as _exc:  # pragma: no cover -- covered in a subprocess by test_no_otel
    _msg = (
        "seawall.otel needs the OpenTelemetry API, which is not installed: "
        "install the extra with `pip install 'seawall[otel]'`"
    )
    raise ImportError(_msg, name=__name__) from _exc

from ._hook import OpenTelemetryHook as OpenTelemetryHook
from ._names import ATTR_ATTEMPT_NUMBER as ATTR_ATTEMPT_NUMBER
from ._names import ATTR_ATTEMPT_TYPE as ATTR_ATTEMPT_TYPE
from ._names import ATTR_BREAKER_GENERATION as ATTR_BREAKER_GENERATION
from ._names import ATTR_BREAKER_PREVIOUS_STATE as ATTR_BREAKER_PREVIOUS_STATE
from ._names import ATTR_BREAKER_REASON as ATTR_BREAKER_REASON
from ._names import ATTR_BREAKER_RETRY_AFTER as ATTR_BREAKER_RETRY_AFTER
from ._names import ATTR_BREAKER_STATE as ATTR_BREAKER_STATE
from ._names import ATTR_BULKHEAD_IN_FLIGHT as ATTR_BULKHEAD_IN_FLIGHT
from ._names import ATTR_BULKHEAD_QUEUED as ATTR_BULKHEAD_QUEUED
from ._names import ATTR_HEDGE_HEDGED as ATTR_HEDGE_HEDGED
from ._names import ATTR_HEDGE_LATENCY as ATTR_HEDGE_LATENCY
from ._names import ATTR_HEDGE_REASON as ATTR_HEDGE_REASON
from ._names import ATTR_NAME as ATTR_NAME
from ._names import ATTR_OUTCOME as ATTR_OUTCOME
from ._names import ATTR_PRIMITIVE as ATTR_PRIMITIVE
from ._names import ATTR_RATE_LIMITER_COST as ATTR_RATE_LIMITER_COST
from ._names import ATTR_RATE_LIMITER_RETRY_AFTER as ATTR_RATE_LIMITER_RETRY_AFTER
from ._names import ATTR_RETRY_ATTEMPTS as ATTR_RETRY_ATTEMPTS
from ._names import ATTR_RETRY_DELAY as ATTR_RETRY_DELAY
from ._names import ATTR_RETRY_REASON as ATTR_RETRY_REASON
from ._names import ATTR_RETRY_RESULT_RETRIED as ATTR_RETRY_RESULT_RETRIED
from ._names import ATTR_TIMEOUT_DURATION as ATTR_TIMEOUT_DURATION
from ._names import DURATION_BUCKETS as DURATION_BUCKETS
from ._names import EVENT_BREAKER_REJECTED as EVENT_BREAKER_REJECTED
from ._names import EVENT_BREAKER_STATE_CHANGED as EVENT_BREAKER_STATE_CHANGED
from ._names import EVENT_BULKHEAD_REJECTED as EVENT_BULKHEAD_REJECTED
from ._names import EVENT_FALLBACK_APPLIED as EVENT_FALLBACK_APPLIED
from ._names import EVENT_HEDGE_LAUNCHED as EVENT_HEDGE_LAUNCHED
from ._names import EVENT_HEDGE_WON as EVENT_HEDGE_WON
from ._names import EVENT_RATE_LIMITER_REJECTED as EVENT_RATE_LIMITER_REJECTED
from ._names import EVENT_RETRY_GAVE_UP as EVENT_RETRY_GAVE_UP
from ._names import EVENT_RETRY_SCHEDULED as EVENT_RETRY_SCHEDULED
from ._names import EVENT_TIMEOUT_EXPIRED as EVENT_TIMEOUT_EXPIRED
from ._names import INSTRUMENTATION_SCOPE as INSTRUMENTATION_SCOPE
from ._names import METRIC_ATTEMPT_DURATION as METRIC_ATTEMPT_DURATION
from ._names import METRIC_BREAKER_STATUS as METRIC_BREAKER_STATUS
from ._names import METRIC_BREAKER_TRANSITIONS as METRIC_BREAKER_TRANSITIONS
from ._names import METRIC_BULKHEAD_IN_FLIGHT as METRIC_BULKHEAD_IN_FLIGHT
from ._names import METRIC_CALL_DURATION as METRIC_CALL_DURATION
from ._names import METRIC_FALLBACKS as METRIC_FALLBACKS
from ._names import METRIC_HEDGE_LAUNCHES as METRIC_HEDGE_LAUNCHES
from ._names import METRIC_HEDGE_WINS as METRIC_HEDGE_WINS
from ._names import METRIC_RATE_LIMITER_WAIT_DURATION as METRIC_RATE_LIMITER_WAIT_DURATION
from ._names import METRIC_REJECTIONS as METRIC_REJECTIONS
from ._names import METRIC_RETRY_DELAY as METRIC_RETRY_DELAY
from ._names import METRIC_TIMEOUTS as METRIC_TIMEOUTS


__all__ = (
    "ATTR_ATTEMPT_NUMBER",
    "ATTR_ATTEMPT_TYPE",
    "ATTR_BREAKER_GENERATION",
    "ATTR_BREAKER_PREVIOUS_STATE",
    "ATTR_BREAKER_REASON",
    "ATTR_BREAKER_RETRY_AFTER",
    "ATTR_BREAKER_STATE",
    "ATTR_BULKHEAD_IN_FLIGHT",
    "ATTR_BULKHEAD_QUEUED",
    "ATTR_HEDGE_HEDGED",
    "ATTR_HEDGE_LATENCY",
    "ATTR_HEDGE_REASON",
    "ATTR_NAME",
    "ATTR_OUTCOME",
    "ATTR_PRIMITIVE",
    "ATTR_RATE_LIMITER_COST",
    "ATTR_RATE_LIMITER_RETRY_AFTER",
    "ATTR_RETRY_ATTEMPTS",
    "ATTR_RETRY_DELAY",
    "ATTR_RETRY_REASON",
    "ATTR_RETRY_RESULT_RETRIED",
    "ATTR_TIMEOUT_DURATION",
    "DURATION_BUCKETS",
    "EVENT_BREAKER_REJECTED",
    "EVENT_BREAKER_STATE_CHANGED",
    "EVENT_BULKHEAD_REJECTED",
    "EVENT_FALLBACK_APPLIED",
    "EVENT_HEDGE_LAUNCHED",
    "EVENT_HEDGE_WON",
    "EVENT_RATE_LIMITER_REJECTED",
    "EVENT_RETRY_GAVE_UP",
    "EVENT_RETRY_SCHEDULED",
    "EVENT_TIMEOUT_EXPIRED",
    "INSTRUMENTATION_SCOPE",
    "METRIC_ATTEMPT_DURATION",
    "METRIC_BREAKER_STATUS",
    "METRIC_BREAKER_TRANSITIONS",
    "METRIC_BULKHEAD_IN_FLIGHT",
    "METRIC_CALL_DURATION",
    "METRIC_FALLBACKS",
    "METRIC_HEDGE_LAUNCHES",
    "METRIC_HEDGE_WINS",
    "METRIC_RATE_LIMITER_WAIT_DURATION",
    "METRIC_REJECTIONS",
    "METRIC_RETRY_DELAY",
    "METRIC_TIMEOUTS",
    "OpenTelemetryHook",
)

OpenTelemetryHook.__module__ = __name__  # tracebacks, pickle and docs show seawall.otel
