"""`OpenTelemetryHook`: seawall's events as OpenTelemetry spans, span events and metrics."""

from __future__ import annotations

import logging
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Final, final

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from seawall._breaker._events import CallRejected, CircuitState, CircuitStateChanged
from seawall._bulkhead import BulkheadAcquired, BulkheadRejected, BulkheadReleased
from seawall._compose._telemetry import ModelCallEnded, ModelCallStarted
from seawall._fallback import FellBack
from seawall._hedge._events import HedgeLaunched, HedgeWon
from seawall._limit._events import AcquireWaited, RateLimited
from seawall._observe import AttemptEnded, AttemptStarted, CallEnded, CallStarted, Outcome
from seawall._retry._events import RetryGaveUp, RetryScheduled
from seawall._timeout import TimedOut
from seawall.otel._names import (
    ATTR_ATTEMPT_NUMBER,
    ATTR_ATTEMPT_TYPE,
    ATTR_BREAKER_GENERATION,
    ATTR_BREAKER_PREVIOUS_STATE,
    ATTR_BREAKER_REASON,
    ATTR_BREAKER_RETRY_AFTER,
    ATTR_BREAKER_STATE,
    ATTR_BULKHEAD_IN_FLIGHT,
    ATTR_BULKHEAD_QUEUED,
    ATTR_HEDGE_HEDGED,
    ATTR_HEDGE_LATENCY,
    ATTR_HEDGE_REASON,
    ATTR_NAME,
    ATTR_OUTCOME,
    ATTR_PRIMITIVE,
    ATTR_RATE_LIMITER_COST,
    ATTR_RATE_LIMITER_RETRY_AFTER,
    ATTR_RETRY_ATTEMPTS,
    ATTR_RETRY_DELAY,
    ATTR_RETRY_REASON,
    ATTR_RETRY_RESULT_RETRIED,
    ATTR_TIMEOUT_DURATION,
    BREAKER_STATES,
    CACHE_LIMIT,
    DURATION_BUCKETS,
    ERROR_OUTCOMES,
    ERROR_TYPE,
    EVENT_BREAKER_REJECTED,
    EVENT_BREAKER_STATE_CHANGED,
    EVENT_BULKHEAD_REJECTED,
    EVENT_FALLBACK_APPLIED,
    EVENT_HEDGE_LAUNCHED,
    EVENT_HEDGE_WON,
    EVENT_RATE_LIMITER_REJECTED,
    EVENT_RETRY_GAVE_UP,
    EVENT_RETRY_SCHEDULED,
    EVENT_TIMEOUT_EXPIRED,
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
    GEN_AI_CLIENT_TOKEN_USAGE,
    GEN_AI_DURATION_BUCKETS,
    GEN_AI_FIRST_CHUNK_BUCKETS,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOKEN_BUCKETS,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    INSTRUMENTATION_SCOPE,
    METRIC_ATTEMPT_DURATION,
    METRIC_BREAKER_STATUS,
    METRIC_BREAKER_TRANSITIONS,
    METRIC_BULKHEAD_IN_FLIGHT,
    METRIC_CALL_DURATION,
    METRIC_FALLBACKS,
    METRIC_HEDGE_LAUNCHES,
    METRIC_HEDGE_WINS,
    METRIC_RATE_LIMITER_WAIT_DURATION,
    METRIC_REJECTIONS,
    METRIC_RETRY_DELAY,
    METRIC_TIMEOUTS,
    PRIMITIVE_BREAKER,
    PRIMITIVE_BULKHEAD,
    PRIMITIVE_LIMITER,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import (
        Counter,
        Histogram,
        Meter,
        MeterProvider,
        UpDownCounter,
    )
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from seawall._hooks import Event

    Attributes = Mapping[str, AttributeValue]


__all__ = ("OpenTelemetryHook",)

logger = logging.getLogger("seawall.otel")


def _qualified_name(exc: BaseException) -> str:
    """Return the fully qualified class name of *exc* (no ``builtins.`` prefix)."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _version() -> str | None:
    try:
        return version("seawall")
    except PackageNotFoundError:  # pragma: no cover -- running from a source tree
        return None


@final
class _Instruments:
    """The tracer and the instruments of one hook, made on its first event."""

    __slots__ = (
        "attempt_duration",
        "breaker_status",
        "breaker_transitions",
        "bulkhead_in_flight",
        "call_duration",
        "fallbacks",
        "gen_ai_duration",
        "gen_ai_first_chunk",
        "gen_ai_tokens",
        "hedge_launches",
        "hedge_wins",
        "limiter_wait",
        "rejections",
        "retry_delay",
        "timeouts",
        "tracer",
    )

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        seawall_version = _version()
        self.tracer: Tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE, seawall_version)
        meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE, seawall_version)
        counter = meter.create_counter
        self.call_duration = _histogram(
            meter, METRIC_CALL_DURATION, "s", "Duration of protected calls.", DURATION_BUCKETS
        )
        self.attempt_duration = _histogram(
            meter,
            METRIC_ATTEMPT_DURATION,
            "s",
            "Duration of attempts of retried and hedged calls.",
            DURATION_BUCKETS,
        )
        self.retry_delay = _histogram(
            meter,
            METRIC_RETRY_DELAY,
            "s",
            "Delays waited before retrying a call.",
            DURATION_BUCKETS,
        )
        self.breaker_status: UpDownCounter = meter.create_up_down_counter(
            METRIC_BREAKER_STATUS,
            unit="1",
            description="1 for each circuit breaker's current state, 0 for its other states.",
        )
        self.breaker_transitions: Counter = counter(
            METRIC_BREAKER_TRANSITIONS,
            unit="{transition}",
            description="Circuit breaker state changes.",
        )
        self.hedge_launches: Counter = counter(
            METRIC_HEDGE_LAUNCHES, unit="{hedge}", description="Hedges launched."
        )
        self.hedge_wins: Counter = counter(
            METRIC_HEDGE_WINS,
            unit="{call}",
            description="Successful hedged calls, by the winning attempt's type.",
        )
        self.limiter_wait = _histogram(
            meter,
            METRIC_RATE_LIMITER_WAIT_DURATION,
            "s",
            "Time blocking acquisitions waited for their tokens.",
            DURATION_BUCKETS,
        )
        self.rejections: Counter = counter(
            METRIC_REJECTIONS,
            unit="{rejection}",
            description="Calls or acquisitions refused by a circuit breaker, a rate limiter "
            "or a bulkhead.",
        )
        self.bulkhead_in_flight: UpDownCounter = meter.create_up_down_counter(
            METRIC_BULKHEAD_IN_FLIGHT, unit="{call}", description="Calls holding a bulkhead slot."
        )
        self.fallbacks: Counter = counter(
            METRIC_FALLBACKS, unit="{call}", description="Calls answered with the fallback."
        )
        self.timeouts: Counter = counter(
            METRIC_TIMEOUTS, unit="{call}", description="Calls that ran past their timeout."
        )
        self.gen_ai_duration = _histogram(
            meter,
            GEN_AI_CLIENT_OPERATION_DURATION,
            "s",
            "GenAI operation duration.",
            GEN_AI_DURATION_BUCKETS,
        )
        self.gen_ai_tokens = _histogram(
            meter,
            GEN_AI_CLIENT_TOKEN_USAGE,
            "{token}",
            "Number of input and output tokens used.",
            GEN_AI_TOKEN_BUCKETS,
        )
        self.gen_ai_first_chunk = _histogram(
            meter,
            GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
            "s",
            "Time to receive the first chunk of a streamed response.",
            GEN_AI_FIRST_CHUNK_BUCKETS,
        )

    def __repr__(self) -> str:
        return f"_Instruments(tracer={self.tracer!r})"


def _histogram(
    meter: Meter, name: str, unit: str, description: str, buckets: Sequence[float]
) -> Histogram:
    """Create a histogram with advised bucket boundaries (opentelemetry-api >= 1.30)."""
    return meter.create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
    )


@final
class OpenTelemetryHook:
    """A hook that reports seawall's calls and events to OpenTelemetry.

    Attach one instance to any number of primitives (it is thread-safe and shared by
    threads and tasks alike)::

        from seawall.otel import OpenTelemetryHook

        otel = OpenTelemetryHook()
        breaker = seawall.CircuitBreaker(name="payments", hooks=(otel,))
        retrier = seawall.Retrier(name="payments", hooks=(otel,))

    **Spans.** Each protected call gets a span of kind INTERNAL named
    ``"{primitive} {name}"`` (``"circuit_breaker payments"``) with `ATTR_PRIMITIVE`,
    `ATTR_NAME` and, at its end, `ATTR_OUTCOME`. A call that fails, is rejected or times
    out gets ``error.type`` (the exception's fully qualified class name), the exception
    as a span event, and status ERROR; a cancelled call is not an error. Each attempt of
    a retrier or a hedger gets a child span ``"{primitive} attempt {name}"`` with
    `ATTR_ATTEMPT_NUMBER` and `ATTR_ATTEMPT_TYPE`. A call's span is the current span
    while the call runs, so the spans of inner primitives and the caller's own spans
    made in the protected function are its children. Streams and generators are the
    exception: their span starts under the span current when they start, but is never
    made current, since a stream resumes wherever its consumer iterates it.

    **Span events** (retries, rejections, breaker transitions, hedges, timeouts,
    fallbacks) go to the span current when the primitive reports them, normally the
    call's own span. **Metrics** count calls, attempts, rejections and the rest; their
    attributes are low-cardinality (primitive names, states, outcomes, exception
    classes), never call arguments nor limiter keys.

    **Model calls** reported by the LLM telemetry middleware get a span of kind CLIENT
    named ``"{operation} {model}"`` with the GenAI semantic-convention attributes the
    model reported (provider, models, response id, token usage, finish reasons, time to
    first chunk), and the GenAI client metrics ``gen_ai.client.operation.duration``,
    ``gen_ai.client.token.usage`` and, for streams,
    ``gen_ai.client.operation.time_to_first_chunk``.

    The tracer and the meter are looked up on the first event, not when the hook is
    made: a hook made at import time, before the application configures the SDK, still
    reports to it. The hook never raises into a primitive: an error of its own is
    logged on the ``seawall.otel`` logger.

    Args:
        tracer_provider: Where spans go. Default: the global tracer provider.
        meter_provider: Where metrics go. Default: the global meter provider.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_attr_cache",
        "_breakers",
        "_call_names",
        "_end_attrs",
        "_error_types",
        "_instruments",
        "_lock",
        "_meter_provider",
        "_open",
        "_tracer_provider",
    )

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._lock = threading.Lock()
        self._instruments: _Instruments | None = None
        # Open spans by id(start event): (start event, span, context token or None).
        # The entry holds the start event, so its id cannot be reused while it is open.
        self._open: dict[int, tuple[Event, Span, Token[Context] | None]] = {}
        # Attribute dicts and span names, made once per key and never mutated; the two
        # of every call have their own caches, for the shortest path.
        self._call_names: dict[tuple[str, str], tuple[str, Attributes]] = {}
        self._end_attrs: dict[tuple[Any, ...], Attributes] = {}
        self._attr_cache: dict[tuple[Any, ...], Any] = {}
        self._error_types: dict[type[BaseException], str] = {}
        # Names of the circuit breakers whose status series were set up.
        self._breakers: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"OpenTelemetryHook(started={self._instruments is not None}, "
            f"open_spans={len(self._open)}, breakers={len(self._breakers)})"
        )

    def __call__(self, event: Event) -> None:
        """Report *event* to OpenTelemetry; other events than seawall's are ignored."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return
        try:
            instruments = self._instruments
            if instruments is None:
                instruments = self._start()
            handler(self, instruments, event)
        except Exception:
            logger.exception("OpenTelemetryHook failed to handle %r", event)

    # -- set-up and caches ---------------------------------------------------------------

    def _start(self) -> _Instruments:
        with self._lock:
            instruments = self._instruments
            if instruments is None:
                instruments = _Instruments(
                    self._tracer_provider or otel_trace.get_tracer_provider(),
                    self._meter_provider or otel_metrics.get_meter_provider(),
                )
                self._instruments = instruments
        return instruments

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        value = self._attr_cache.get(key)
        if value is None:
            value = make()
            if len(self._attr_cache) < CACHE_LIMIT:
                self._attr_cache[key] = value
        return value

    def _error_type(self, exc: BaseException) -> str:
        cls = type(exc)
        name = self._error_types.get(cls)
        if name is None:
            name = _qualified_name(exc)
            if len(self._error_types) < CACHE_LIMIT:
                self._error_types[cls] = name
        return name

    def _name_attrs(self, name: str) -> Attributes:
        attrs: Attributes = self._cached(("name", name), lambda: {ATTR_NAME: name})
        return attrs

    def _primitive_attrs(self, primitive: str, name: str) -> Attributes:
        attrs: Attributes = self._cached(
            ("primitive", primitive, name), lambda: {ATTR_PRIMITIVE: primitive, ATTR_NAME: name}
        )
        return attrs

    def _ended_attrs(
        self,
        primitive: str,
        name: str,
        kind: str | None,
        outcome: Outcome,
        exc: BaseException | None,
    ) -> Attributes:
        """Metric attributes of a call (*kind* None) or an attempt that ended."""
        error = None if exc is None or outcome not in ERROR_OUTCOMES else self._error_type(exc)
        key = (primitive, name, kind, outcome, error)
        attrs = self._end_attrs.get(key)
        if attrs is None:
            made: dict[str, AttributeValue] = {ATTR_PRIMITIVE: primitive, ATTR_NAME: name}
            if kind is not None:
                made[ATTR_ATTEMPT_TYPE] = kind
            made[ATTR_OUTCOME] = outcome.value
            if error is not None:
                made[ERROR_TYPE] = error
            attrs = made
            if len(self._end_attrs) < CACHE_LIMIT:
                self._end_attrs[key] = attrs
        return attrs

    # -- spans ---------------------------------------------------------------------------

    def _open_span(
        self,
        instruments: _Instruments,
        started: Event,
        span_name: str,
        attributes: Attributes,
        kind: SpanKind,
        *,
        stream: bool,
    ) -> None:
        parent = otel_context.get_current()
        span = instruments.tracer.start_span(
            span_name, context=parent, kind=kind, attributes=attributes
        )
        token = (
            None if stream else otel_context.attach(otel_trace.set_span_in_context(span, parent))
        )
        self._open[id(started)] = (started, span, token)

    def _close_span(self, started: Event, outcome: Outcome, exc: BaseException | None) -> None:
        """End the span of *started* (if it has one) and restore the context it replaced."""
        entry = self._open.pop(id(started), None)
        if entry is None:
            return
        _, span, token = entry
        try:
            span.set_attribute(ATTR_OUTCOME, outcome.value)
            if exc is not None and outcome in ERROR_OUTCOMES:
                span.set_attribute(ERROR_TYPE, self._error_type(exc))
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            try:
                if token is not None:
                    otel_context.detach(token)
            finally:
                span.end()

    def _span_event(self, name: str, attributes: Callable[[], Attributes]) -> None:
        span = otel_trace.get_current_span()
        if span.is_recording():
            span.add_event(name, attributes())

    # -- calls and attempts --------------------------------------------------------------

    def _on_call_started(self, instruments: _Instruments, event: CallStarted) -> None:
        primitive, name = event.primitive, event.name
        names = self._call_names.get((primitive, name))
        if names is None:
            names = (f"{primitive} {name}", self._primitive_attrs(primitive, name))
            if len(self._call_names) < CACHE_LIMIT:
                self._call_names[primitive, name] = names
        span_name, attrs = names
        self._open_span(
            instruments, event, span_name, attrs, SpanKind.INTERNAL, stream=event.stream
        )
        if primitive == PRIMITIVE_BREAKER and name not in self._breakers:
            self._see_breaker(instruments, name, CircuitState.CLOSED.value)

    def _on_call_ended(self, instruments: _Instruments, event: CallEnded) -> None:
        started = event.started
        outcome, exc = event.outcome, event.exception
        self._close_span(started, outcome, exc)
        attrs = self._ended_attrs(started.primitive, started.name, None, outcome, exc)
        instruments.call_duration.record(event.duration, attrs)

    def _on_attempt_started(self, instruments: _Instruments, event: AttemptStarted) -> None:
        primitive, name, kind = event.primitive, event.name, event.kind.value

        def make() -> tuple[str, Attributes]:
            return f"{primitive} attempt {name}", {
                ATTR_PRIMITIVE: primitive,
                ATTR_NAME: name,
                ATTR_ATTEMPT_TYPE: kind,
            }

        span_name, base = self._cached(("attempt", primitive, name, kind), make)
        attrs = {**base, ATTR_ATTEMPT_NUMBER: event.attempt}
        self._open_span(instruments, event, span_name, attrs, SpanKind.INTERNAL, stream=False)

    def _on_attempt_ended(self, instruments: _Instruments, event: AttemptEnded) -> None:
        started = event.started
        outcome, exc = event.outcome, event.exception
        self._close_span(started, outcome, exc)
        kind = started.kind.value
        attrs = self._ended_attrs(started.primitive, started.name, kind, outcome, exc)
        instruments.attempt_duration.record(event.duration, attrs)

    # -- circuit breaker -----------------------------------------------------------------

    def _breaker_state_attrs(self, name: str, state: str) -> Attributes:
        attrs: Attributes = self._cached(
            ("breaker", name, state), lambda: {ATTR_NAME: name, ATTR_BREAKER_STATE: state}
        )
        return attrs

    def _see_breaker(self, instruments: _Instruments, name: str, state: str) -> None:
        """Set up the status series of breaker *name*, currently in *state*, once."""
        with self._lock:
            if name in self._breakers:
                return
            self._breakers.add(name)
        for each in BREAKER_STATES:
            value = 1 if each == state else 0
            instruments.breaker_status.add(value, self._breaker_state_attrs(name, each))

    def _on_state_changed(self, instruments: _Instruments, event: CircuitStateChanged) -> None:
        name = event.name
        old, new, reason = event.old_state.value, event.new_state.value, event.reason
        if name not in self._breakers:
            # Hooks are attached at construction: the first state left is the initial one.
            self._see_breaker(instruments, name, old)
        if old != new:
            # Moves by the event's own states, so transitions reported out of order by
            # different threads still add up to the breaker's current state.
            instruments.breaker_status.add(-1, self._breaker_state_attrs(name, old))
            instruments.breaker_status.add(1, self._breaker_state_attrs(name, new))
        attrs: Attributes = self._cached(
            ("transition", name, old, new, reason),
            lambda: {
                ATTR_NAME: name,
                ATTR_BREAKER_PREVIOUS_STATE: old,
                ATTR_BREAKER_STATE: new,
                ATTR_BREAKER_REASON: reason,
            },
        )
        instruments.breaker_transitions.add(1, attrs)
        self._span_event(
            EVENT_BREAKER_STATE_CHANGED,
            lambda: {**attrs, ATTR_BREAKER_GENERATION: event.generation},
        )

    def _on_call_rejected(self, instruments: _Instruments, event: CallRejected) -> None:
        name = event.name
        if name not in self._breakers:
            self._see_breaker(instruments, name, event.state.value)
        instruments.rejections.add(1, self._primitive_attrs(PRIMITIVE_BREAKER, name))

        def attrs() -> Attributes:
            values: dict[str, AttributeValue] = {
                ATTR_NAME: name,
                ATTR_BREAKER_STATE: event.state.value,
            }
            if event.retry_after is not None:
                values[ATTR_BREAKER_RETRY_AFTER] = event.retry_after
            return values

        self._span_event(EVENT_BREAKER_REJECTED, attrs)

    # -- retrier -------------------------------------------------------------------------

    def _on_retry_scheduled(self, instruments: _Instruments, event: RetryScheduled) -> None:
        instruments.retry_delay.record(event.delay, self._name_attrs(event.name))

        def attrs() -> Attributes:
            values: dict[str, AttributeValue] = {
                ATTR_NAME: event.name,
                ATTR_ATTEMPT_NUMBER: event.attempt,
                ATTR_RETRY_DELAY: event.delay,
                ATTR_RETRY_RESULT_RETRIED: event.result_retried,
            }
            if event.exception is not None:
                values[ERROR_TYPE] = self._error_type(event.exception)
            return values

        self._span_event(EVENT_RETRY_SCHEDULED, attrs)

    def _on_retry_gave_up(self, instruments: _Instruments, event: RetryGaveUp) -> None:  # noqa: ARG002 -- handler signature
        def attrs() -> Attributes:
            values: dict[str, AttributeValue] = {
                ATTR_NAME: event.name,
                ATTR_RETRY_ATTEMPTS: event.attempts,
                ATTR_RETRY_REASON: event.reason.value,
            }
            if event.exception is not None:
                values[ERROR_TYPE] = self._error_type(event.exception)
            return values

        self._span_event(EVENT_RETRY_GAVE_UP, attrs)

    # -- hedger --------------------------------------------------------------------------

    def _on_hedge_launched(self, instruments: _Instruments, event: HedgeLaunched) -> None:
        name, reason = event.name, event.reason.value
        attrs: Attributes = self._cached(
            ("launch", name, reason), lambda: {ATTR_NAME: name, ATTR_HEDGE_REASON: reason}
        )
        instruments.hedge_launches.add(1, attrs)
        self._span_event(
            EVENT_HEDGE_LAUNCHED, lambda: {**attrs, ATTR_ATTEMPT_NUMBER: event.attempt}
        )

    def _on_hedge_won(self, instruments: _Instruments, event: HedgeWon) -> None:
        name = event.name
        kind = "original" if event.attempt == 0 else "hedge"
        attrs: Attributes = self._cached(
            ("win", name, kind), lambda: {ATTR_NAME: name, ATTR_ATTEMPT_TYPE: kind}
        )
        instruments.hedge_wins.add(1, attrs)
        self._span_event(
            EVENT_HEDGE_WON,
            lambda: {
                **attrs,
                ATTR_ATTEMPT_NUMBER: event.attempt,
                ATTR_HEDGE_HEDGED: event.hedged,
                ATTR_HEDGE_LATENCY: event.latency,
            },
        )

    # -- rate limiters -------------------------------------------------------------------

    def _on_acquire_waited(self, instruments: _Instruments, event: AcquireWaited) -> None:
        # Keyed limiters' keys stay out of metrics: they are unbounded (tenants, users).
        instruments.limiter_wait.record(event.wait, self._name_attrs(event.name))

    def _on_rate_limited(self, instruments: _Instruments, event: RateLimited) -> None:
        instruments.rejections.add(1, self._primitive_attrs(PRIMITIVE_LIMITER, event.name))
        self._span_event(
            EVENT_RATE_LIMITER_REJECTED,
            lambda: {
                ATTR_NAME: event.name,
                ATTR_RATE_LIMITER_COST: event.cost,
                ATTR_RATE_LIMITER_RETRY_AFTER: event.retry_after,
            },
        )

    # -- bulkhead, timeout, fallback -----------------------------------------------------

    def _on_bulkhead_rejected(self, instruments: _Instruments, event: BulkheadRejected) -> None:
        instruments.rejections.add(1, self._primitive_attrs(PRIMITIVE_BULKHEAD, event.name))
        self._span_event(
            EVENT_BULKHEAD_REJECTED,
            lambda: {
                ATTR_NAME: event.name,
                ATTR_BULKHEAD_IN_FLIGHT: event.in_flight,
                ATTR_BULKHEAD_QUEUED: event.queued,
            },
        )

    def _on_bulkhead_acquired(self, instruments: _Instruments, event: BulkheadAcquired) -> None:
        instruments.bulkhead_in_flight.add(1, self._name_attrs(event.name))

    def _on_bulkhead_released(self, instruments: _Instruments, event: BulkheadReleased) -> None:
        instruments.bulkhead_in_flight.add(-1, self._name_attrs(event.name))

    def _on_timed_out(self, instruments: _Instruments, event: TimedOut) -> None:
        instruments.timeouts.add(1, self._name_attrs(event.name))
        self._span_event(
            EVENT_TIMEOUT_EXPIRED,
            lambda: {ATTR_NAME: event.name, ATTR_TIMEOUT_DURATION: event.timeout},
        )

    def _on_fell_back(self, instruments: _Instruments, event: FellBack) -> None:
        exc = event.exception
        error = self._error_type(exc) if exc is not None else None

        def make() -> Attributes:
            if error is None:
                return {ATTR_NAME: event.name}
            return {ATTR_NAME: event.name, ERROR_TYPE: error}

        attrs: Attributes = self._cached(("fallback", event.name, error), make)
        instruments.fallbacks.add(1, attrs)
        self._span_event(EVENT_FALLBACK_APPLIED, lambda: attrs)

    # -- model calls (GenAI) -------------------------------------------------------------

    def _on_model_call_started(self, instruments: _Instruments, event: ModelCallStarted) -> None:
        operation, model = event.operation, event.request_model
        span_name = f"{operation} {model}" if model else operation
        attrs: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: operation,
            ATTR_NAME: event.name,
        }
        if event.provider is not None:
            attrs[GEN_AI_PROVIDER_NAME] = event.provider
        if model is not None:
            attrs[GEN_AI_REQUEST_MODEL] = model
        self._open_span(instruments, event, span_name, attrs, SpanKind.CLIENT, stream=event.stream)

    def _on_model_call_ended(self, instruments: _Instruments, event: ModelCallEnded) -> None:
        started = event.started
        entry = self._open.get(id(started))
        if entry is not None:
            _set_response_attributes(entry[1], event)
        self._close_span(started, event.outcome, event.exception)

        provider = started.provider or event.provider
        attrs: dict[str, AttributeValue] = {GEN_AI_OPERATION_NAME: started.operation}
        if provider is not None:
            attrs[GEN_AI_PROVIDER_NAME] = provider
        if started.request_model is not None:
            attrs[GEN_AI_REQUEST_MODEL] = started.request_model
        if event.response_model is not None:
            attrs[GEN_AI_RESPONSE_MODEL] = event.response_model
        if event.input_tokens is not None:
            instruments.gen_ai_tokens.record(
                event.input_tokens, {**attrs, GEN_AI_TOKEN_TYPE: "input"}
            )
        if event.output_tokens is not None:
            instruments.gen_ai_tokens.record(
                event.output_tokens, {**attrs, GEN_AI_TOKEN_TYPE: "output"}
            )
        if started.stream and event.time_to_first_chunk is not None:
            instruments.gen_ai_first_chunk.record(event.time_to_first_chunk, attrs)
        if event.exception is not None and event.outcome in ERROR_OUTCOMES:
            attrs[ERROR_TYPE] = self._error_type(event.exception)
        instruments.gen_ai_duration.record(event.duration, attrs)


def _set_response_attributes(span: Span, event: ModelCallEnded) -> None:
    """Put what the model's response reported on its span."""
    if event.started.provider is None and event.provider is not None:
        span.set_attribute(GEN_AI_PROVIDER_NAME, event.provider)
    if event.response_model is not None:
        span.set_attribute(GEN_AI_RESPONSE_MODEL, event.response_model)
    if event.response_id is not None:
        span.set_attribute(GEN_AI_RESPONSE_ID, event.response_id)
    if event.input_tokens is not None:
        span.set_attribute(GEN_AI_USAGE_INPUT_TOKENS, event.input_tokens)
    if event.output_tokens is not None:
        span.set_attribute(GEN_AI_USAGE_OUTPUT_TOKENS, event.output_tokens)
    if event.finish_reasons:
        span.set_attribute(GEN_AI_RESPONSE_FINISH_REASONS, list(event.finish_reasons))
    if event.time_to_first_chunk is not None:
        span.set_attribute(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, event.time_to_first_chunk)


_HANDLERS: Final[dict[type, Callable[[OpenTelemetryHook, _Instruments, Any], None]]] = {
    CallStarted: OpenTelemetryHook._on_call_started,  # noqa: SLF001 -- the dispatch table
    CallEnded: OpenTelemetryHook._on_call_ended,  # noqa: SLF001
    AttemptStarted: OpenTelemetryHook._on_attempt_started,  # noqa: SLF001
    AttemptEnded: OpenTelemetryHook._on_attempt_ended,  # noqa: SLF001
    CircuitStateChanged: OpenTelemetryHook._on_state_changed,  # noqa: SLF001
    CallRejected: OpenTelemetryHook._on_call_rejected,  # noqa: SLF001
    RetryScheduled: OpenTelemetryHook._on_retry_scheduled,  # noqa: SLF001
    RetryGaveUp: OpenTelemetryHook._on_retry_gave_up,  # noqa: SLF001
    HedgeLaunched: OpenTelemetryHook._on_hedge_launched,  # noqa: SLF001
    HedgeWon: OpenTelemetryHook._on_hedge_won,  # noqa: SLF001
    AcquireWaited: OpenTelemetryHook._on_acquire_waited,  # noqa: SLF001
    RateLimited: OpenTelemetryHook._on_rate_limited,  # noqa: SLF001
    BulkheadRejected: OpenTelemetryHook._on_bulkhead_rejected,  # noqa: SLF001
    BulkheadAcquired: OpenTelemetryHook._on_bulkhead_acquired,  # noqa: SLF001
    BulkheadReleased: OpenTelemetryHook._on_bulkhead_released,  # noqa: SLF001
    TimedOut: OpenTelemetryHook._on_timed_out,  # noqa: SLF001
    FellBack: OpenTelemetryHook._on_fell_back,  # noqa: SLF001
    ModelCallStarted: OpenTelemetryHook._on_model_call_started,  # noqa: SLF001
    ModelCallEnded: OpenTelemetryHook._on_model_call_ended,  # noqa: SLF001
}
