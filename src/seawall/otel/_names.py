"""The names of what seawall reports to OpenTelemetry, as constants.

Attribute keys, span event names, metric names, and the semantic-convention names it
copies (opentelemetry-semantic-conventions is not a dependency).

Public ones are re-exported by `seawall.otel`; ``docs/instrumentation.md`` lists them.
"""

from __future__ import annotations

from typing import Final

from seawall._breaker._events import CircuitState
from seawall._observe import Outcome


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
    "BREAKER_STATES",
    "CACHE_LIMIT",
    "DURATION_BUCKETS",
    "ERROR_OUTCOMES",
    "ERROR_TYPE",
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
    "GEN_AI_CLIENT_OPERATION_DURATION",
    "GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK",
    "GEN_AI_CLIENT_TOKEN_USAGE",
    "GEN_AI_DURATION_BUCKETS",
    "GEN_AI_FIRST_CHUNK_BUCKETS",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK",
    "GEN_AI_TOKEN_BUCKETS",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
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
    "PRIMITIVE_BREAKER",
    "PRIMITIVE_BULKHEAD",
    "PRIMITIVE_LIMITER",
)

# -- instrumentation scope ---------------------------------------------------------------

INSTRUMENTATION_SCOPE: Final = "seawall"
"""The name of seawall's tracer and meter (its instrumentation scope)."""

# -- attribute keys ----------------------------------------------------------------------

ATTR_PRIMITIVE: Final = "seawall.primitive"
"""The kind of primitive: ``circuit_breaker``, ``retry``, ``hedge``, ``rate_limiter``,
``timeout``, ``bulkhead``, ``fallback``."""
ATTR_NAME: Final = "seawall.name"
"""The primitive's ``name``."""
ATTR_OUTCOME: Final = "seawall.outcome"
"""How a call or an attempt ended: a `seawall.Outcome` value (``success``, ``failure``,
``rejected``, ``timeout``, ``cancelled``)."""
ATTR_ATTEMPT_NUMBER: Final = "seawall.attempt.number"
"""An attempt's number: from 1 for a retrier, from 0 (the primary) for a hedger."""
ATTR_ATTEMPT_TYPE: Final = "seawall.attempt.type"
"""Why an attempt runs: ``original``, ``retry`` or ``hedge``."""
ATTR_RETRY_DELAY: Final = "seawall.retry.delay"
"""Seconds a retrier waits before its next attempt."""
ATTR_RETRY_RESULT_RETRIED: Final = "seawall.retry.result_retried"
"""Whether a result (rejected by ``retry_on_result``), not an exception, is retried."""
ATTR_RETRY_ATTEMPTS: Final = "seawall.retry.attempts"
"""Attempts a retrier made before it gave up."""
ATTR_RETRY_REASON: Final = "seawall.retry.reason"
"""Why a retrier gave up: a `seawall.GiveUpReason` value."""
ATTR_BREAKER_STATE: Final = "seawall.circuit_breaker.state"
"""A circuit breaker's state (the one entered, for a transition): a
`seawall.CircuitState` value."""
ATTR_BREAKER_PREVIOUS_STATE: Final = "seawall.circuit_breaker.previous_state"
"""The state a circuit breaker left."""
ATTR_BREAKER_REASON: Final = "seawall.circuit_breaker.reason"
"""Why a circuit breaker changed state (see `seawall.CircuitStateChanged`)."""
ATTR_BREAKER_GENERATION: Final = "seawall.circuit_breaker.generation"
"""The generation number of the state entered (span events only)."""
ATTR_BREAKER_RETRY_AFTER: Final = "seawall.circuit_breaker.retry_after"
"""Seconds a rejected call was told to wait (absent when FORCED_OPEN)."""
ATTR_HEDGE_REASON: Final = "seawall.hedge.reason"
"""Why a hedge was launched: a `seawall.HedgeReason` value."""
ATTR_HEDGE_HEDGED: Final = "seawall.hedge.hedged"
"""Whether the won call had launched at least one hedge."""
ATTR_HEDGE_LATENCY: Final = "seawall.hedge.latency"
"""Seconds from a hedged call's start to its winning result."""
ATTR_RATE_LIMITER_COST: Final = "seawall.rate_limiter.cost"
"""Tokens asked for."""
ATTR_RATE_LIMITER_RETRY_AFTER: Final = "seawall.rate_limiter.retry_after"
"""Seconds the refused tokens would have needed."""
ATTR_BULKHEAD_IN_FLIGHT: Final = "seawall.bulkhead.in_flight"
"""Calls holding a bulkhead slot when a call was refused."""
ATTR_BULKHEAD_QUEUED: Final = "seawall.bulkhead.queued"
"""Callers waiting in the bulkhead's queue when a call was refused."""
ATTR_TIMEOUT_DURATION: Final = "seawall.timeout.duration"
"""The timeout that was exceeded, in seconds."""

# -- span event names --------------------------------------------------------------------

EVENT_RETRY_SCHEDULED: Final = "seawall.retry.scheduled"
"""An attempt failed and the retrier will try again after a delay."""
EVENT_RETRY_GAVE_UP: Final = "seawall.retry.gave_up"
"""The retrier stopped retrying."""
EVENT_BREAKER_REJECTED: Final = "seawall.circuit_breaker.rejected"
"""The circuit breaker refused a call."""
EVENT_BREAKER_STATE_CHANGED: Final = "seawall.circuit_breaker.state_changed"
"""The circuit breaker changed state."""
EVENT_RATE_LIMITER_REJECTED: Final = "seawall.rate_limiter.rejected"
"""The rate limiter refused tokens."""
EVENT_BULKHEAD_REJECTED: Final = "seawall.bulkhead.rejected"
"""The bulkhead refused a call."""
EVENT_HEDGE_LAUNCHED: Final = "seawall.hedge.launched"
"""The hedger launched a hedge."""
EVENT_HEDGE_WON: Final = "seawall.hedge.won"
"""A hedged call got its winning result."""
EVENT_TIMEOUT_EXPIRED: Final = "seawall.timeout.expired"
"""A call ran past its timeout."""
EVENT_FALLBACK_APPLIED: Final = "seawall.fallback.applied"
"""A call was answered with the fallback."""

# -- metric names ------------------------------------------------------------------------

METRIC_CALL_DURATION: Final = "seawall.call.duration"
"""Histogram, ``s``: duration of protected calls, by primitive, name and outcome; its
count is the number of calls by outcome (as ``http.server.request.duration`` counts
HTTP requests, no separate counter)."""
METRIC_ATTEMPT_DURATION: Final = "seawall.attempt.duration"
"""Histogram, ``s``: duration of attempts, by type and outcome; its count is the number
of attempts."""
METRIC_RETRY_DELAY: Final = "seawall.retry.delay"
"""Histogram, ``s``: delays retriers waited before retrying."""
METRIC_BREAKER_STATUS: Final = "seawall.circuit_breaker.status"
"""UpDownCounter, ``1``: 1 for a breaker's current state, 0 for its other states."""
METRIC_BREAKER_TRANSITIONS: Final = "seawall.circuit_breaker.transitions"
"""Counter, ``{transition}``: state changes, by previous state, state and reason."""
METRIC_HEDGE_LAUNCHES: Final = "seawall.hedge.launches"
"""Counter, ``{hedge}``: hedges launched, by reason."""
METRIC_HEDGE_WINS: Final = "seawall.hedge.wins"
"""Counter, ``{call}``: successful hedged calls, by the winner's attempt type."""
METRIC_RATE_LIMITER_WAIT_DURATION: Final = "seawall.rate_limiter.wait.duration"
"""Histogram, ``s``: time blocking acquisitions waited for their tokens (0 when none)."""
METRIC_REJECTIONS: Final = "seawall.rejections"
"""Counter, ``{rejection}``: calls or acquisitions refused, by primitive."""
METRIC_BULKHEAD_IN_FLIGHT: Final = "seawall.bulkhead.in_flight"
"""UpDownCounter, ``{call}``: calls holding a bulkhead slot."""
METRIC_FALLBACKS: Final = "seawall.fallbacks"
"""Counter, ``{call}``: calls answered with the fallback."""
METRIC_TIMEOUTS: Final = "seawall.timeouts"
"""Counter, ``{call}``: calls that ran past their timeout."""

DURATION_BUCKETS: Final = (
    0.0,
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Bucket boundaries, in seconds, advised for every seawall histogram in seconds."""

# -- OpenTelemetry semantic conventions (copied: semconv is not a dependency) ------------

ERROR_TYPE: Final = "error.type"
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # noqa: S105 -- an attribute key
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # noqa: S105 -- a metric
GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
# Bucket boundaries the GenAI conventions advise for their client metrics.
GEN_AI_DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
GEN_AI_TOKEN_BUCKETS: Final = tuple(float(4**power) for power in range(14))
GEN_AI_FIRST_CHUNK_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

# Outcomes that mark a span as an error (cancellation is not one).
ERROR_OUTCOMES: Final = frozenset({Outcome.FAILURE, Outcome.REJECTED, Outcome.TIMEOUT})
BREAKER_STATES: Final = tuple(state.value for state in CircuitState)
PRIMITIVE_BREAKER: Final = "circuit_breaker"
PRIMITIVE_LIMITER: Final = "rate_limiter"
PRIMITIVE_BULKHEAD: Final = "bulkhead"
# Caches of attribute dicts stop growing at this size (names made per request, say).
CACHE_LIMIT: Final = 1024
