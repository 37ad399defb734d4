"""seawall.otel on the real OpenTelemetry SDK: spans, span events and metrics.

Every test gets its own tracer and meter provider (in-memory span exporter, in-memory
metric reader), handed to the hook explicitly: no global provider is ever set.
"""

from __future__ import annotations

import logging
import pathlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import seawall
from seawall import (
    AcquireWaited,
    AttemptEnded,
    AttemptKind,
    AttemptStarted,
    BulkheadRejected,
    CallEnded,
    CallRejected,
    CallStarted,
    CircuitState,
    CircuitStateChanged,
    FellBack,
    GiveUpReason,
    HedgeLaunched,
    HedgeReason,
    HedgeWon,
    ModelCallEnded,
    ModelCallStarted,
    Outcome,
    RateLimited,
    RetryGaveUp,
    RetryScheduled,
    TimedOut,
    otel,
)
from seawall._bulkhead import BulkheadAcquired, BulkheadReleased
from seawall.otel import OpenTelemetryHook
from seawall.testing import FakeClock


pytestmark = pytest.mark.timeout(30)

# Bound on waiting for a worker thread: a safety net, never reached.
SAFETY = 10.0


class BoomError(Exception):
    """A failure of the caller's code, not retryable."""


class FlakyError(ConnectionError):
    """A transient failure: retryable, and a breaker failure."""


BOOM_TYPE = f"{BoomError.__module__}.{BoomError.__qualname__}"
FLAKY_TYPE = f"{FlakyError.__module__}.{FlakyError.__qualname__}"

Attrs = dict[str, Any]


class Telemetry:
    """A hook on its own SDK providers, with readers for what it reported."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.hook = OpenTelemetryHook(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )
        self.tracer = self.tracer_provider.get_tracer("tests")

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    # -- spans ---------------------------------------------------------------------------

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        finished = list(self.exporter.get_finished_spans())
        return [s for s in finished if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        found = self.spans(name)
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    # -- metrics -------------------------------------------------------------------------

    def metrics(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                assert scope_metrics.scope.name == otel.INSTRUMENTATION_SCOPE
                for metric in scope_metrics.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[Any]:
        metric = self.metrics().get(name)
        return [] if metric is None else list(metric.data.data_points)

    def attribute_sets(self, name: str) -> list[Attrs]:
        return [dict(p.attributes or {}) for p in self.points(name)]

    def point(self, name: str, attrs: Attrs) -> Any:
        points = self.points(name)
        for point in points:
            if dict(point.attributes or {}) == attrs:
                return point
        pytest.fail(f"no {name} point with {attrs}; have {[dict(p.attributes) for p in points]}")

    def value(self, name: str, attrs: Attrs) -> float:
        point = self.point(name, attrs)
        assert isinstance(point, NumberDataPoint)
        return point.value

    def histogram(self, name: str, attrs: Attrs) -> HistogramDataPoint:
        point = self.point(name, attrs)
        assert isinstance(point, HistogramDataPoint)
        return point

    def count(self, name: str, attrs: Attrs) -> int:
        """How many measurements a histogram holds for *attrs*: calls, attempts."""
        return int(self.histogram(name, attrs).count)

    def counts(self, name: str) -> dict[frozenset[tuple[str, Any]], int]:
        return {
            frozenset((p.attributes or {}).items()): int(p.count)
            for p in self.points(name)
            if isinstance(p, HistogramDataPoint)
        }

    def values(self, name: str) -> dict[frozenset[tuple[str, Any]], float]:
        return {
            frozenset((p.attributes or {}).items()): p.value
            for p in self.points(name)
            if isinstance(p, NumberDataPoint)
        }


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    """A hook with an in-memory span exporter and metric reader."""
    telemetry = Telemetry()
    yield telemetry
    telemetry.shutdown()


@pytest.fixture(autouse=True)
def _nothing_left_current() -> Iterator[None]:
    """Every test ends with no span current in its thread, as it began."""
    assert no_span_is_current()
    yield
    assert no_span_is_current()


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else int(span.parent.span_id)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def current_span_id() -> int:
    return int(trace.get_current_span().get_span_context().span_id)


def events(span: ReadableSpan, name: str | None = None) -> list[tuple[str, Attrs]]:
    return [
        (event.name, dict(event.attributes or {}))
        for event in span.events
        if name is None or event.name == name
    ]


def no_span_is_current() -> bool:
    return not trace.get_current_span().get_span_context().is_valid


def emit_every_kind(tel: Telemetry) -> None:
    """Feed the hook one event of each kind, so that every instrument has a point."""
    call = CallStarted("api", "retry")
    tel.hook(call)
    attempt = AttemptStarted("api", "retry", 1, AttemptKind.ORIGINAL)
    tel.hook(attempt)
    tel.hook(AttemptEnded("api", attempt, Outcome.SUCCESS, None, 0.1))
    tel.hook(CallEnded("api", call, Outcome.SUCCESS, None, 0.1))
    breaker_call = CallStarted("db", "circuit_breaker", stream=True)
    model_call = ModelCallStarted("llm", "chat", "openai", "gpt-4o", stream=True)
    for event in [
        breaker_call,
        CallEnded("db", breaker_call, Outcome.SUCCESS, None, 0.0),
        CircuitStateChanged("db", CircuitState.CLOSED, CircuitState.OPEN, "manual_trip", 2),
        RetryScheduled("api", 1, 0.5, None, result_retried=True),
        HedgeLaunched("h", 1, HedgeReason.ATTEMPT_FAILED),
        HedgeWon("h", 0, hedged=False, latency=0.1),
        AcquireWaited("rl", 1.0, 0.0),
        RateLimited("rl", 1.0, 1.0),
        BulkheadAcquired("bh", 1, 0, 0.0),
        FellBack("fb", None),
        TimedOut("t", 1.0),
        model_call,
        ModelCallEnded(
            "llm", model_call, Outcome.SUCCESS, None, 1.0, input_tokens=1, time_to_first_chunk=0.1
        ),
    ]:
        tel.hook(event)


# ------------------------------------------------------------------------------------------
# The hook, fed events built by hand
# ------------------------------------------------------------------------------------------


class TestCallSpans:
    """One span per call, current while the call runs."""

    def test_success(self, tel: Telemetry) -> None:
        """Name, kind, attributes; current between start and end; no status on success."""
        started = CallStarted("payments", "circuit_breaker")
        tel.hook(started)
        inside = current_span_id()
        with tel.tracer.start_as_current_span("user work"):
            pass
        tel.hook(CallEnded("payments", started, Outcome.SUCCESS, None, 0.25))
        assert no_span_is_current()

        span = tel.span("circuit_breaker payments")
        assert span_id(span) == inside
        assert span.kind is SpanKind.INTERNAL
        assert dict(span.attributes or {}) == {
            otel.ATTR_PRIMITIVE: "circuit_breaker",
            otel.ATTR_NAME: "payments",
            otel.ATTR_OUTCOME: "success",
        }
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()
        assert span.end_time is not None
        assert parent_of(tel.span("user work")) == span_id(span)

    def test_failure_is_an_error_with_the_qualified_class_name(self, tel: Telemetry) -> None:
        """error.type is module.QualName; the exception is recorded; status ERROR."""
        started = CallStarted("api", "retry")
        tel.hook(started)
        tel.hook(CallEnded("api", started, Outcome.FAILURE, BoomError("bad input"), 0.1))
        span = tel.span("retry api")
        assert span.attributes is not None
        assert span.attributes[otel.ATTR_OUTCOME] == "failure"
        assert span.attributes["error.type"] == BOOM_TYPE
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "BoomError: bad input"
        [(name, attrs)] = events(span)
        assert name == "exception"
        assert attrs["exception.message"] == "bad input"

    def test_builtin_exceptions_have_no_module_prefix(self, tel: Telemetry) -> None:
        """A builtin exception's error.type is its bare name."""
        started = CallStarted("api", "retry")
        tel.hook(started)
        tel.hook(CallEnded("api", started, Outcome.FAILURE, ValueError("x"), 0.1))
        assert tel.span("retry api").attributes == {
            otel.ATTR_PRIMITIVE: "retry",
            otel.ATTR_NAME: "api",
            otel.ATTR_OUTCOME: "failure",
            "error.type": "ValueError",
        }

    @pytest.mark.parametrize(
        ("outcome", "exc", "error_type"),
        [
            (
                Outcome.REJECTED,
                seawall.CircuitOpenError("open", primitive_name="db", retry_after=3.0),
                "seawall.CircuitOpenError",
            ),
            (
                Outcome.TIMEOUT,
                seawall.CallTimeoutError("late", primitive_name="db", timeout=1.0),
                "seawall.CallTimeoutError",
            ),
        ],
    )
    def test_rejections_and_timeouts_are_errors(
        self, tel: Telemetry, outcome: Outcome, exc: BaseException, error_type: str
    ) -> None:
        """Rejected and timed-out calls are errors too, with seawall's public class path."""
        started = CallStarted("db", "timeout")
        tel.hook(started)
        tel.hook(CallEnded("db", started, outcome, exc, 1.0))
        span = tel.span("timeout db")
        assert span.attributes is not None
        assert span.attributes[otel.ATTR_OUTCOME] == outcome.value
        assert span.attributes["error.type"] == error_type
        assert span.status.status_code is StatusCode.ERROR
        assert [name for name, _ in events(span)] == ["exception"]

    def test_cancellation_is_not_an_error(self, tel: Telemetry) -> None:
        """A cancelled call says so, without error.type, status or exception event."""
        started = CallStarted("db", "bulkhead")
        tel.hook(started)
        tel.hook(CallEnded("db", started, Outcome.CANCELLED, KeyboardInterrupt(), 1.0))
        span = tel.span("bulkhead db")
        assert span.attributes is not None
        assert span.attributes[otel.ATTR_OUTCOME] == "cancelled"
        assert "error.type" not in span.attributes
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()

    def test_attempt_spans_are_children_of_the_call_span(self, tel: Telemetry) -> None:
        """Attempt spans: name, number, type; under the call span; current in turn."""
        call = CallStarted("api", "retry")
        tel.hook(call)
        call_span = current_span_id()
        for number, kind, outcome in [
            (1, AttemptKind.ORIGINAL, Outcome.FAILURE),
            (2, AttemptKind.RETRY, Outcome.SUCCESS),
        ]:
            attempt = AttemptStarted("api", "retry", number, kind)
            tel.hook(attempt)
            assert current_span_id() != call_span
            exc = FlakyError("reset") if outcome is Outcome.FAILURE else None
            tel.hook(AttemptEnded("api", attempt, outcome, exc, 0.5))
            assert current_span_id() == call_span
        tel.hook(CallEnded("api", call, Outcome.SUCCESS, None, 1.5))

        first, second = tel.spans("retry attempt api")
        assert first.attributes == {
            otel.ATTR_PRIMITIVE: "retry",
            otel.ATTR_NAME: "api",
            otel.ATTR_ATTEMPT_TYPE: "original",
            otel.ATTR_ATTEMPT_NUMBER: 1,
            otel.ATTR_OUTCOME: "failure",
            "error.type": FLAKY_TYPE,
        }
        assert first.status.status_code is StatusCode.ERROR
        assert second.attributes == {
            otel.ATTR_PRIMITIVE: "retry",
            otel.ATTR_NAME: "api",
            otel.ATTR_ATTEMPT_TYPE: "retry",
            otel.ATTR_ATTEMPT_NUMBER: 2,
            otel.ATTR_OUTCOME: "success",
        }
        call_span_data = tel.span("retry api")
        assert span_id(call_span_data) == call_span
        assert parent_of(first) == parent_of(second) == call_span

    def test_nested_calls_nest_and_unwind(self, tel: Telemetry) -> None:
        """An inner primitive's call span is a child of the outer one; both unwind."""
        with tel.tracer.start_as_current_span("request"):
            outer = CallStarted("api", "rate_limiter")
            tel.hook(outer)
            inner = CallStarted("api", "circuit_breaker")
            tel.hook(inner)
            tel.hook(CallEnded("api", inner, Outcome.SUCCESS, None, 0.0))
            tel.hook(CallEnded("api", outer, Outcome.SUCCESS, None, 0.0))
            request = current_span_id()
        assert no_span_is_current()
        assert parent_of(tel.span("circuit_breaker api")) == span_id(tel.span("rate_limiter api"))
        assert parent_of(tel.span("rate_limiter api")) == request

    def test_stream_span_is_parented_but_never_current(self, tel: Telemetry) -> None:
        """A stream's span starts under the current span and is not made current."""
        with tel.tracer.start_as_current_span("request"):
            request = current_span_id()
            started = CallStarted("llm", "circuit_breaker", stream=True)
            tel.hook(started)
            assert current_span_id() == request
        assert no_span_is_current()
        tel.hook(CallEnded("llm", started, Outcome.SUCCESS, None, 2.0))  # elsewhere
        assert no_span_is_current()
        span = tel.span("circuit_breaker llm")
        assert parent_of(span) == request
        assert span.attributes is not None
        assert span.attributes[otel.ATTR_OUTCOME] == "success"

    def test_end_without_start_still_counts(self, tel: Telemetry) -> None:
        """An end event whose start was never seen makes no span but is counted."""
        started = CallStarted("x", "retry")
        tel.hook(CallEnded("x", started, Outcome.SUCCESS, None, 0.1))
        assert tel.spans() == []
        attrs = {otel.ATTR_PRIMITIVE: "retry", otel.ATTR_NAME: "x", otel.ATTR_OUTCOME: "success"}
        assert tel.count(otel.METRIC_CALL_DURATION, attrs) == 1


class TestSpanEvents:
    """Point events become span events on the current span."""

    def emit_in_span(self, tel: Telemetry, *events_: seawall.Event) -> ReadableSpan:
        with tel.tracer.start_as_current_span("current"):
            for event in events_:
                tel.hook(event)
        return tel.span("current")

    def test_retry_events(self, tel: Telemetry) -> None:
        span = self.emit_in_span(
            tel,
            RetryScheduled("api", 1, 0.5, FlakyError("reset"), result_retried=False),
            RetryScheduled("api", 2, 1.0, None, result_retried=True),
            RetryGaveUp("api", 3, GiveUpReason.ATTEMPTS_EXHAUSTED, FlakyError("reset")),
        )
        assert events(span) == [
            (
                otel.EVENT_RETRY_SCHEDULED,
                {
                    otel.ATTR_NAME: "api",
                    otel.ATTR_ATTEMPT_NUMBER: 1,
                    otel.ATTR_RETRY_DELAY: 0.5,
                    otel.ATTR_RETRY_RESULT_RETRIED: False,
                    "error.type": FLAKY_TYPE,
                },
            ),
            (
                otel.EVENT_RETRY_SCHEDULED,
                {
                    otel.ATTR_NAME: "api",
                    otel.ATTR_ATTEMPT_NUMBER: 2,
                    otel.ATTR_RETRY_DELAY: 1.0,
                    otel.ATTR_RETRY_RESULT_RETRIED: True,
                },
            ),
            (
                otel.EVENT_RETRY_GAVE_UP,
                {
                    otel.ATTR_NAME: "api",
                    otel.ATTR_RETRY_ATTEMPTS: 3,
                    otel.ATTR_RETRY_REASON: "attempts_exhausted",
                    "error.type": FLAKY_TYPE,
                },
            ),
        ]

    def test_breaker_events(self, tel: Telemetry) -> None:
        span = self.emit_in_span(
            tel,
            CircuitStateChanged(
                "db", CircuitState.CLOSED, CircuitState.OPEN, "consecutive_failures", 2
            ),
            CallRejected("db", CircuitState.OPEN, 29.5),
            CallRejected("db", CircuitState.FORCED_OPEN, None),
        )
        assert events(span) == [
            (
                otel.EVENT_BREAKER_STATE_CHANGED,
                {
                    otel.ATTR_NAME: "db",
                    otel.ATTR_BREAKER_PREVIOUS_STATE: "closed",
                    otel.ATTR_BREAKER_STATE: "open",
                    otel.ATTR_BREAKER_REASON: "consecutive_failures",
                    otel.ATTR_BREAKER_GENERATION: 2,
                },
            ),
            (
                otel.EVENT_BREAKER_REJECTED,
                {
                    otel.ATTR_NAME: "db",
                    otel.ATTR_BREAKER_STATE: "open",
                    otel.ATTR_BREAKER_RETRY_AFTER: 29.5,
                },
            ),
            (
                otel.EVENT_BREAKER_REJECTED,
                {otel.ATTR_NAME: "db", otel.ATTR_BREAKER_STATE: "forced_open"},
            ),
        ]

    def test_limiter_bulkhead_hedge_timeout_fallback_events(self, tel: Telemetry) -> None:
        span = self.emit_in_span(
            tel,
            RateLimited("rl", 2.0, 0.75, key="tenant-42"),
            BulkheadRejected("bh", 4, 8),
            HedgeLaunched("h", 1, HedgeReason.DELAY_ELAPSED),
            HedgeWon("h", 1, hedged=True, latency=0.3),
            TimedOut("t", 5.0),
            FellBack("fb", BoomError("x")),
            FellBack("fb", None),
        )
        assert events(span) == [
            (
                otel.EVENT_RATE_LIMITER_REJECTED,
                {
                    otel.ATTR_NAME: "rl",
                    otel.ATTR_RATE_LIMITER_COST: 2.0,
                    otel.ATTR_RATE_LIMITER_RETRY_AFTER: 0.75,
                },
            ),
            (
                otel.EVENT_BULKHEAD_REJECTED,
                {
                    otel.ATTR_NAME: "bh",
                    otel.ATTR_BULKHEAD_IN_FLIGHT: 4,
                    otel.ATTR_BULKHEAD_QUEUED: 8,
                },
            ),
            (
                otel.EVENT_HEDGE_LAUNCHED,
                {
                    otel.ATTR_NAME: "h",
                    otel.ATTR_HEDGE_REASON: "delay_elapsed",
                    otel.ATTR_ATTEMPT_NUMBER: 1,
                },
            ),
            (
                otel.EVENT_HEDGE_WON,
                {
                    otel.ATTR_NAME: "h",
                    otel.ATTR_ATTEMPT_TYPE: "hedge",
                    otel.ATTR_ATTEMPT_NUMBER: 1,
                    otel.ATTR_HEDGE_HEDGED: True,
                    otel.ATTR_HEDGE_LATENCY: 0.3,
                },
            ),
            (otel.EVENT_TIMEOUT_EXPIRED, {otel.ATTR_NAME: "t", otel.ATTR_TIMEOUT_DURATION: 5.0}),
            (otel.EVENT_FALLBACK_APPLIED, {otel.ATTR_NAME: "fb", "error.type": BOOM_TYPE}),
            (otel.EVENT_FALLBACK_APPLIED, {otel.ATTR_NAME: "fb"}),
        ]

    def test_no_current_span_is_fine(self, tel: Telemetry) -> None:
        """Without a current span the events only feed the metrics."""
        tel.hook(RateLimited("rl", 1.0, 1.0))
        tel.hook(TimedOut("t", 1.0))
        assert tel.spans() == []
        assert tel.value(otel.METRIC_TIMEOUTS, {otel.ATTR_NAME: "t"}) == 1


class TestMetrics:
    """Instruments, units, attributes and values."""

    def test_instruments_and_units(self, tel: Telemetry) -> None:
        """Each instrument appears with its unit once it has a measurement."""
        emit_every_kind(tel)
        units = {
            name: metric.unit
            for name, metric in tel.metrics().items()
            if not name.startswith("gen_ai.")
        }
        assert units == {
            otel.METRIC_CALL_DURATION: "s",
            otel.METRIC_ATTEMPT_DURATION: "s",
            otel.METRIC_RETRY_DELAY: "s",
            otel.METRIC_BREAKER_STATUS: "1",
            otel.METRIC_BREAKER_TRANSITIONS: "{transition}",
            otel.METRIC_HEDGE_LAUNCHES: "{hedge}",
            otel.METRIC_HEDGE_WINS: "{call}",
            otel.METRIC_RATE_LIMITER_WAIT_DURATION: "s",
            otel.METRIC_REJECTIONS: "{rejection}",
            otel.METRIC_BULKHEAD_IN_FLIGHT: "{call}",
            otel.METRIC_FALLBACKS: "{call}",
            otel.METRIC_TIMEOUTS: "{call}",
        }
        assert all(metric.description for metric in tel.metrics().values())

    def test_attribute_caches_are_bounded(self, tel: Telemetry) -> None:
        """Names made per request do not grow the caches without bound."""
        for n in range(1500):
            started = CallStarted(f"c{n}", "retry", stream=True)
            tel.hook(started)
            tel.hook(CallEnded(started.name, started, Outcome.SUCCESS, None, 0.0))
            tel.hook(TimedOut(f"t{n}", 1.0))
        hook = tel.hook
        assert max(len(hook._attr_cache), len(hook._call_names), len(hook._end_attrs)) <= 1024
        assert tel.value(otel.METRIC_TIMEOUTS, {otel.ATTR_NAME: "t1499"}) == 1
        assert len(tel.spans("retry c1499")) == 1

    def test_calls_and_durations_by_outcome(self, tel: Telemetry) -> None:
        for outcome, exc, duration in [
            (Outcome.SUCCESS, None, 0.004),
            (Outcome.SUCCESS, None, 0.3),
            (Outcome.FAILURE, BoomError(), 2.0),
            (Outcome.CANCELLED, KeyboardInterrupt(), 1.0),
        ]:
            started = CallStarted("api", "bulkhead")
            tel.hook(started)
            tel.hook(CallEnded("api", started, outcome, exc, duration))
        base = {otel.ATTR_PRIMITIVE: "bulkhead", otel.ATTR_NAME: "api"}
        success = {**base, otel.ATTR_OUTCOME: "success"}
        failure = {**base, otel.ATTR_OUTCOME: "failure", "error.type": BOOM_TYPE}
        cancelled = {**base, otel.ATTR_OUTCOME: "cancelled"}
        assert tel.count(otel.METRIC_CALL_DURATION, success) == 2
        assert tel.count(otel.METRIC_CALL_DURATION, failure) == 1
        assert tel.count(otel.METRIC_CALL_DURATION, cancelled) == 1
        histogram = tel.histogram(otel.METRIC_CALL_DURATION, success)
        assert histogram.count == 2
        assert histogram.sum == pytest.approx(0.304)
        assert tuple(histogram.explicit_bounds) == otel.DURATION_BUCKETS
        assert tel.histogram(otel.METRIC_CALL_DURATION, failure).sum == 2.0

    def test_attempts_by_type_and_outcome(self, tel: Telemetry) -> None:
        for number, kind, outcome, exc in [
            (0, AttemptKind.ORIGINAL, Outcome.CANCELLED, KeyboardInterrupt()),
            (1, AttemptKind.HEDGE, Outcome.SUCCESS, None),
        ]:
            started = AttemptStarted("h", "hedge", number, kind)
            tel.hook(started)
            tel.hook(AttemptEnded("h", started, outcome, exc, 0.2))
        base = {otel.ATTR_PRIMITIVE: "hedge", otel.ATTR_NAME: "h"}
        assert tel.counts(otel.METRIC_ATTEMPT_DURATION) == {
            frozenset(
                {**base, otel.ATTR_ATTEMPT_TYPE: "original", otel.ATTR_OUTCOME: "cancelled"}.items()
            ): 1,
            frozenset(
                {**base, otel.ATTR_ATTEMPT_TYPE: "hedge", otel.ATTR_OUTCOME: "success"}.items()
            ): 1,
        }
        hedge = {**base, otel.ATTR_ATTEMPT_TYPE: "hedge", otel.ATTR_OUTCOME: "success"}
        assert tel.histogram(otel.METRIC_ATTEMPT_DURATION, hedge).sum == pytest.approx(0.2)

    def test_retry_delay_histogram(self, tel: Telemetry) -> None:
        for delay in (0.1, 0.2, 0.4):
            tel.hook(RetryScheduled("api", 1, delay, None, result_retried=True))
        histogram = tel.histogram(otel.METRIC_RETRY_DELAY, {otel.ATTR_NAME: "api"})
        assert histogram.count == 3
        assert histogram.sum == pytest.approx(0.7)
        assert tuple(histogram.explicit_bounds) == otel.DURATION_BUCKETS

    def breaker_status(self, tel: Telemetry, name: str) -> dict[str, float]:
        status: dict[str, float] = {}
        for point in tel.points(otel.METRIC_BREAKER_STATUS):
            attrs = dict(point.attributes)
            if attrs[otel.ATTR_NAME] == name:
                assert set(attrs) == {otel.ATTR_NAME, otel.ATTR_BREAKER_STATE}
                status[attrs[otel.ATTR_BREAKER_STATE]] = point.value
        return status

    def test_breaker_status_starts_closed_and_follows_transitions(self, tel: Telemetry) -> None:
        """A series per state, 1 for the current one; re-entering a state changes nothing."""
        closed, opened, half = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
        started = CallStarted("db", "circuit_breaker")
        tel.hook(started)
        tel.hook(CallEnded("db", started, Outcome.SUCCESS, None, 0.0))
        assert self.breaker_status(tel, "db") == {
            "closed": 1,
            "open": 0,
            "half_open": 0,
            "forced_open": 0,
            "disabled": 0,
        }
        steps = [
            (closed, opened, "consecutive_failures"),
            (opened, half, "timeout_elapsed"),
            (half, opened, "probe_failed"),
            (opened, opened, "manual_trip"),
            (opened, half, "timeout_elapsed"),
            (half, closed, "probes_succeeded"),
        ]
        for generation, (old, new, reason) in enumerate(steps, start=2):
            tel.hook(CircuitStateChanged("db", old, new, reason, generation))
            status = self.breaker_status(tel, "db")
            assert status[new.value] == 1
            assert sum(status.values()) == 1
        transitions = tel.values(otel.METRIC_BREAKER_TRANSITIONS)

        def key(old: str, new: str, reason: str) -> frozenset[tuple[str, Any]]:
            return frozenset(
                {
                    otel.ATTR_NAME: "db",
                    otel.ATTR_BREAKER_PREVIOUS_STATE: old,
                    otel.ATTR_BREAKER_STATE: new,
                    otel.ATTR_BREAKER_REASON: reason,
                }.items()
            )

        assert transitions == {
            key("closed", "open", "consecutive_failures"): 1,
            key("open", "half_open", "timeout_elapsed"): 2,
            key("half_open", "open", "probe_failed"): 1,
            key("open", "open", "manual_trip"): 1,
            key("half_open", "closed", "probes_succeeded"): 1,
        }

    def test_breaker_first_seen_in_a_transition(self, tel: Telemetry) -> None:
        """A breaker whose first event is a transition started in the state it left."""
        tel.hook(CircuitStateChanged("db", CircuitState.CLOSED, CircuitState.FORCED_OPEN, "x", 2))
        status = self.breaker_status(tel, "db")
        assert status["forced_open"] == 1
        assert sum(status.values()) == 1

    def test_breaker_transitions_reported_out_of_order_add_up(self, tel: Telemetry) -> None:
        """Two threads may report transitions out of order: the sum stays right."""
        tel.hook(CallStarted("db", "circuit_breaker", stream=True))  # never made current
        tel.hook(CircuitStateChanged("db", CircuitState.OPEN, CircuitState.HALF_OPEN, "t", 3))
        tel.hook(CircuitStateChanged("db", CircuitState.CLOSED, CircuitState.OPEN, "f", 2))
        status = self.breaker_status(tel, "db")
        assert status["half_open"] == 1
        assert sum(status.values()) == 1

    def test_hedge_counters(self, tel: Telemetry) -> None:
        for event in [
            HedgeLaunched("h", 1, HedgeReason.DELAY_ELAPSED),
            HedgeLaunched("h", 2, HedgeReason.ATTEMPT_FAILED),
            HedgeWon("h", 0, hedged=False, latency=0.1),
            HedgeWon("h", 0, hedged=True, latency=0.5),
            HedgeWon("h", 2, hedged=True, latency=0.4),
        ]:
            tel.hook(event)
        assert (
            tel.value(
                otel.METRIC_HEDGE_LAUNCHES,
                {otel.ATTR_NAME: "h", otel.ATTR_HEDGE_REASON: "delay_elapsed"},
            )
            == 1
        )
        assert (
            tel.value(
                otel.METRIC_HEDGE_LAUNCHES,
                {otel.ATTR_NAME: "h", otel.ATTR_HEDGE_REASON: "attempt_failed"},
            )
            == 1
        )
        wins = {otel.ATTR_NAME: "h", otel.ATTR_ATTEMPT_TYPE: "original"}
        assert tel.value(otel.METRIC_HEDGE_WINS, wins) == 2
        wins = {otel.ATTR_NAME: "h", otel.ATTR_ATTEMPT_TYPE: "hedge"}
        assert tel.value(otel.METRIC_HEDGE_WINS, wins) == 1

    def test_limiter_wait_histogram_buckets(self, tel: Telemetry) -> None:
        """Waits land in the advised buckets, in seconds; a zero wait in the first."""
        for wait in (0.0, 0.0, 0.003, 0.2, 1.0, 100.0):
            tel.hook(AcquireWaited("rl", 1.0, wait))
        histogram = tel.histogram(otel.METRIC_RATE_LIMITER_WAIT_DURATION, {otel.ATTR_NAME: "rl"})
        assert tuple(histogram.explicit_bounds) == otel.DURATION_BUCKETS
        assert otel.DURATION_BUCKETS == (
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
        counts = list(histogram.bucket_counts)
        assert len(counts) == len(otel.DURATION_BUCKETS) + 1
        assert counts[0] == 2  # (-inf, 0]
        assert counts[2] == 1  # (0.001, 0.005]
        assert counts[7] == 1  # (0.1, 0.25]
        assert counts[9] == 1  # (0.5, 1]
        assert counts[-1] == 1  # (60, +inf)
        assert histogram.count == 6
        assert histogram.max == 100.0

    def test_keyed_limiter_keys_stay_out_of_metrics(self, tel: Telemetry) -> None:
        tel.hook(AcquireWaited("rl", 1.0, 0.5, key="tenant-42"))
        tel.hook(RateLimited("rl", 1.0, 2.0, key="tenant-42"))
        for name in (otel.METRIC_RATE_LIMITER_WAIT_DURATION, otel.METRIC_REJECTIONS):
            for attrs in tel.attribute_sets(name):
                assert "tenant-42" not in attrs.values()

    def test_rejections_by_primitive(self, tel: Telemetry) -> None:
        tel.hook(CallRejected("db", CircuitState.OPEN, 1.0))
        tel.hook(CallRejected("db", CircuitState.OPEN, 1.0))
        tel.hook(RateLimited("rl", 1.0, 1.0))
        tel.hook(BulkheadRejected("bh", 2, 0))
        assert tel.values(otel.METRIC_REJECTIONS) == {
            frozenset({otel.ATTR_PRIMITIVE: "circuit_breaker", otel.ATTR_NAME: "db"}.items()): 2,
            frozenset({otel.ATTR_PRIMITIVE: "rate_limiter", otel.ATTR_NAME: "rl"}.items()): 1,
            frozenset({otel.ATTR_PRIMITIVE: "bulkhead", otel.ATTR_NAME: "bh"}.items()): 1,
        }

    def test_bulkhead_in_flight(self, tel: Telemetry) -> None:
        attrs = {otel.ATTR_NAME: "bh"}
        tel.hook(BulkheadAcquired("bh", 1, 0, 0.0))
        tel.hook(BulkheadAcquired("bh", 2, 0, 0.0))
        assert tel.value(otel.METRIC_BULKHEAD_IN_FLIGHT, attrs) == 2
        tel.hook(BulkheadReleased("bh", 1, 0))
        tel.hook(BulkheadReleased("bh", 0, 0))
        assert tel.value(otel.METRIC_BULKHEAD_IN_FLIGHT, attrs) == 0

    def test_fallbacks_and_timeouts(self, tel: Telemetry) -> None:
        tel.hook(FellBack("fb", BoomError()))
        tel.hook(FellBack("fb", None))
        tel.hook(FellBack("fb", None))
        tel.hook(TimedOut("t", 2.0))
        assert (
            tel.value(otel.METRIC_FALLBACKS, {otel.ATTR_NAME: "fb", "error.type": BOOM_TYPE}) == 1
        )
        assert tel.value(otel.METRIC_FALLBACKS, {otel.ATTR_NAME: "fb"}) == 2
        assert tel.value(otel.METRIC_TIMEOUTS, {otel.ATTR_NAME: "t"}) == 1

    def test_two_hooks_on_one_meter_provider_add_up(self, tel: Telemetry) -> None:
        """A second hook on the same providers reports to the same instruments."""
        other = OpenTelemetryHook(
            tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
        )
        tel.hook(TimedOut("t", 1.0))
        other(TimedOut("t", 1.0))
        assert tel.value(otel.METRIC_TIMEOUTS, {otel.ATTR_NAME: "t"}) == 2


class TestGenAI:
    """Model calls: GenAI spans and client metrics."""

    def test_generate(self, tel: Telemetry) -> None:
        started = ModelCallStarted("llm", "chat", "openai", "gpt-4o", stream=False)
        tel.hook(started)
        with tel.tracer.start_as_current_span("inside"):
            pass
        tel.hook(
            ModelCallEnded(
                "llm",
                started,
                Outcome.SUCCESS,
                None,
                1.5,
                response_model="gpt-4o-2024-08-06",
                response_id="chatcmpl-1",
                input_tokens=12,
                output_tokens=34,
                finish_reasons=("stop",),
            )
        )
        assert no_span_is_current()
        span = tel.span("chat gpt-4o")
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {}) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 34,
            "gen_ai.response.finish_reasons": ("stop",),
            otel.ATTR_NAME: "llm",
            otel.ATTR_OUTCOME: "success",
        }
        assert span.status.status_code is StatusCode.UNSET
        assert parent_of(tel.span("inside")) == span_id(span)

        base = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
        }
        duration = tel.histogram("gen_ai.client.operation.duration", base)
        assert duration.sum == 1.5
        assert duration.explicit_bounds[0] == 0.01
        assert duration.explicit_bounds[-1] == 81.92
        tokens = tel.histogram("gen_ai.client.token.usage", {**base, "gen_ai.token.type": "input"})
        assert tokens.sum == 12
        assert tokens.explicit_bounds[:3] == (1.0, 4.0, 16.0)
        tokens = tel.histogram("gen_ai.client.token.usage", {**base, "gen_ai.token.type": "output"})
        assert tokens.sum == 34
        assert tel.points("gen_ai.client.operation.time_to_first_chunk") == []
        units = {name: m.unit for name, m in tel.metrics().items() if name.startswith("gen_ai")}
        assert units == {
            "gen_ai.client.operation.duration": "s",
            "gen_ai.client.token.usage": "{token}",
        }

    def test_stream(self, tel: Telemetry) -> None:
        """A stream: not current, time to first chunk on the span and in its metric."""
        started = ModelCallStarted("llm", "chat", None, "claude", stream=True)
        tel.hook(started)
        assert no_span_is_current()
        tel.hook(
            ModelCallEnded(
                "llm",
                started,
                Outcome.SUCCESS,
                None,
                3.0,
                output_tokens=7,
                time_to_first_chunk=0.25,
                provider="anthropic",
            )
        )
        span = tel.span("chat claude")
        assert span.attributes is not None
        assert span.attributes["gen_ai.response.time_to_first_chunk"] == 0.25
        assert span.attributes["gen_ai.provider.name"] == "anthropic"
        base = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude",
        }
        first = tel.histogram("gen_ai.client.operation.time_to_first_chunk", base)
        assert (first.count, first.sum) == (1, 0.25)
        assert tel.metrics()["gen_ai.client.operation.time_to_first_chunk"].unit == "s"
        assert tel.attribute_sets("gen_ai.client.token.usage") == [
            {**base, "gen_ai.token.type": "output"}
        ]

    def test_failure_and_unknown_model(self, tel: Telemetry) -> None:
        """No model known: the span is named by the operation; failures carry error.type."""
        started = ModelCallStarted("llm", "text_completion", None, None, stream=False)
        tel.hook(started)
        tel.hook(ModelCallEnded("llm", started, Outcome.FAILURE, FlakyError("reset"), 0.5))
        span = tel.span("text_completion")
        assert span.attributes == {
            "gen_ai.operation.name": "text_completion",
            otel.ATTR_NAME: "llm",
            otel.ATTR_OUTCOME: "failure",
            "error.type": FLAKY_TYPE,
        }
        assert span.status.status_code is StatusCode.ERROR
        assert tel.attribute_sets("gen_ai.client.operation.duration") == [
            {"gen_ai.operation.name": "text_completion", "error.type": FLAKY_TYPE}
        ]
        assert tel.points("gen_ai.client.token.usage") == []


class TestLifecycle:
    """Lazy set-up, ignored events, robustness, repr."""

    def test_providers_are_looked_up_on_the_first_event(
        self, tel: Telemetry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A hook made before the SDK is configured uses the providers of the first event."""
        lookups: list[str] = []

        def tracer_provider() -> TracerProvider:
            lookups.append("tracer")
            return tel.tracer_provider

        def meter_provider() -> MeterProvider:
            lookups.append("meter")
            return tel.meter_provider

        hook = OpenTelemetryHook()
        monkeypatch.setattr("opentelemetry.trace.get_tracer_provider", tracer_provider)
        monkeypatch.setattr("opentelemetry.metrics.get_meter_provider", meter_provider)
        assert lookups == []
        hook(TimedOut("t", 1.0))
        # (the SDK's tracer looks the global meter provider up too, for its own metrics)
        assert set(lookups) == {"meter", "tracer"}
        looked_up = len(lookups)
        started = CallStarted("t", "timeout")
        hook(started)
        hook(CallEnded("t", started, Outcome.SUCCESS, None, 0.0))
        assert len(lookups) == looked_up
        assert [s.name for s in tel.spans()] == ["timeout t"]
        assert tel.value(otel.METRIC_TIMEOUTS, {otel.ATTR_NAME: "t"}) == 1

    def test_other_events_are_ignored_without_set_up(self) -> None:
        """Events it does not handle cost a lookup: no provider is touched."""
        hook = OpenTelemetryHook(tracer_provider=_ExplodingTracerProvider())
        hook(seawall.Event("x"))
        hook(seawall.TokensSettled("llm", 10.0, 12.0, 2.0, 0.0))
        hook(seawall.AcquireCancelled("rl", 1.0, 1.0))
        assert repr(hook) == "OpenTelemetryHook(started=False, open_spans=0, breakers=0)"

    def test_never_raises_into_the_primitive(self, caplog: pytest.LogCaptureFixture) -> None:
        """A failing provider is logged on seawall.otel, not raised."""
        hook = OpenTelemetryHook(tracer_provider=_ExplodingTracerProvider())
        with caplog.at_level(logging.ERROR, logger="seawall.otel"):
            hook(TimedOut("t", 1.0))
        assert [r.name for r in caplog.records] == ["seawall.otel"]
        assert "RuntimeError: no tracer" in caplog.text

    def test_primitive_with_a_broken_provider_still_works(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        hook = OpenTelemetryHook(tracer_provider=_ExplodingTracerProvider())
        breaker = seawall.CircuitBreaker(clock=clock, hooks=(hook,))
        with caplog.at_level(logging.ERROR, logger="seawall.otel"):
            assert breaker.call(lambda: 42) == 42
        assert no_span_is_current()

    def test_repr(self, tel: Telemetry) -> None:
        started = CallStarted("db", "circuit_breaker")
        tel.hook(started)
        assert repr(tel.hook) == "OpenTelemetryHook(started=True, open_spans=1, breakers=1)"
        tel.hook(CallEnded("db", started, Outcome.SUCCESS, None, 0.0))
        assert repr(tel.hook) == "OpenTelemetryHook(started=True, open_spans=0, breakers=1)"

    def test_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            OpenTelemetryHook(None)  # type: ignore[call-arg]


class _ExplodingTracerProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        raise RuntimeError("no tracer")


class TestThreads:
    """One hook shared by many threads."""

    def test_sixteen_threads_leave_nothing_open(self, tel: Telemetry) -> None:
        """Each thread's spans nest in its own context; all end; nothing stays attached."""
        threads, rounds = 16, 50
        barrier = threading.Barrier(threads)
        problems: list[BaseException] = []
        leftovers: list[bool] = []

        def work(index: int) -> None:
            try:
                barrier.wait(SAFETY)
                for _ in range(rounds):
                    call = CallStarted(f"api{index % 4}", "retry")
                    tel.hook(call)
                    attempt = AttemptStarted(call.name, "retry", 1, AttemptKind.ORIGINAL)
                    tel.hook(attempt)
                    with tel.tracer.start_as_current_span(f"user {index}"):
                        pass
                    tel.hook(AttemptEnded(call.name, attempt, Outcome.SUCCESS, None, 0.0))
                    tel.hook(CallEnded(call.name, call, Outcome.SUCCESS, None, 0.0))
                leftovers.append(no_span_is_current())
            except BaseException as exc:
                problems.append(exc)

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(SAFETY)
        assert problems == []
        assert leftovers == [True] * threads
        assert tel.hook._open == {}
        spans = {span_id(s): s for s in tel.spans()}
        assert len(spans) == threads * rounds * 3
        for span in spans.values():
            if span.name.startswith("user "):
                attempt = spans[parent_of(span) or 0]
                assert attempt.name.startswith("retry attempt api")
                call = spans[parent_of(attempt) or 0]
                assert call.name == attempt.name.replace(" attempt", "")
                assert call.parent is None
        total = sum(tel.counts(otel.METRIC_CALL_DURATION).values())
        assert total == threads * rounds

    def test_sixteen_threads_through_a_breaker(self, tel: Telemetry, clock: FakeClock) -> None:
        """A real breaker shared by 16 threads: every span ends, no context leaks."""
        breaker = seawall.CircuitBreaker(max_failures=None, clock=clock, hooks=(tel.hook,))
        threads, rounds = 16, 30
        barrier = threading.Barrier(threads)
        clean: list[bool] = []

        def user() -> int:
            with tel.tracer.start_as_current_span("user"):
                return 1

        def work() -> None:
            barrier.wait(SAFETY)
            for _ in range(rounds):
                assert breaker.call(user) == 1
            clean.append(no_span_is_current())

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(SAFETY)
        assert clean == [True] * threads
        assert tel.hook._open == {}
        calls = tel.spans("circuit_breaker circuit-breaker")
        assert len(calls) == threads * rounds
        ids = {span_id(s) for s in calls}
        assert all(parent_of(s) in ids for s in tel.spans("user"))


# ------------------------------------------------------------------------------------------
# End to end, through the real primitives
# ------------------------------------------------------------------------------------------


def attrs_of(span: ReadableSpan) -> Attrs:
    return dict(span.attributes or {})


def all_events(tel: Telemetry, name: str) -> list[tuple[str, Attrs]]:
    return [(s.name, attrs) for s in tel.spans() for _, attrs in events(s, name)]


class TestBreakerEndToEnd:
    """A breaker's calls, rejections, transitions and status through a trip and recovery."""

    def test_trip_and_recover(self, tel: Telemetry, clock: FakeClock) -> None:
        breaker = seawall.CircuitBreaker(
            max_failures=2, timeout=10, half_open_max=1, clock=clock, name="pay", hooks=(tel.hook,)
        )
        name = "circuit_breaker pay"

        def fail() -> None:
            raise FlakyError("reset")

        assert breaker.call(lambda: 1) == 1
        for _ in range(2):
            with pytest.raises(FlakyError):
                breaker.call(fail)
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(seawall.CircuitOpenError):
            breaker.call(lambda: 1)
        assert TestMetrics().breaker_status(tel, "pay")["open"] == 1

        clock.advance(10)
        assert breaker.call(lambda: 2) == 2
        assert breaker.statistics().state is CircuitState.CLOSED

        spans = tel.spans(name)
        assert [attrs_of(s)[otel.ATTR_OUTCOME] for s in spans] == [
            "success",
            "failure",
            "failure",
            "rejected",
            "success",
        ]
        rejected = spans[3]
        assert attrs_of(rejected)["error.type"] == "seawall.CircuitOpenError"
        assert rejected.status.status_code is StatusCode.ERROR
        assert events(rejected, otel.EVENT_BREAKER_REJECTED) == [
            (
                otel.EVENT_BREAKER_REJECTED,
                {
                    otel.ATTR_NAME: "pay",
                    otel.ATTR_BREAKER_STATE: "open",
                    otel.ATTR_BREAKER_RETRY_AFTER: 10.0,
                },
            )
        ]
        changes = all_events(tel, otel.EVENT_BREAKER_STATE_CHANGED)
        assert [
            (a[otel.ATTR_BREAKER_PREVIOUS_STATE], a[otel.ATTR_BREAKER_STATE]) for _, a in changes
        ] == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]
        assert {span for span, _ in changes} == {name}

        status = TestMetrics().breaker_status(tel, "pay")
        assert status == {"closed": 1, "open": 0, "half_open": 0, "forced_open": 0, "disabled": 0}
        assert sum(tel.values(otel.METRIC_BREAKER_TRANSITIONS).values()) == 3
        base = {otel.ATTR_PRIMITIVE: "circuit_breaker", otel.ATTR_NAME: "pay"}
        assert tel.count(otel.METRIC_CALL_DURATION, {**base, otel.ATTR_OUTCOME: "success"}) == 2
        failure = {**base, otel.ATTR_OUTCOME: "failure", "error.type": FLAKY_TYPE}
        assert tel.count(otel.METRIC_CALL_DURATION, failure) == 2
        rejected_attrs = {
            **base,
            otel.ATTR_OUTCOME: "rejected",
            "error.type": "seawall.CircuitOpenError",
        }
        assert tel.count(otel.METRIC_CALL_DURATION, rejected_attrs) == 1
        assert tel.value(otel.METRIC_REJECTIONS, base) == 1

    def test_manual_commands(self, tel: Telemetry, clock: FakeClock) -> None:
        """Manual commands before any call move the status from CLOSED."""
        breaker = seawall.CircuitBreaker(clock=clock, name="m", hooks=(tel.hook,))
        breaker.force_open()
        assert TestMetrics().breaker_status(tel, "m")["forced_open"] == 1
        breaker.reset()
        status = TestMetrics().breaker_status(tel, "m")
        assert status["closed"] == 1
        assert sum(status.values()) == 1

    @pytest.mark.anyio
    async def test_async(self, anyio_backend: str, tel: Telemetry, clock: FakeClock) -> None:
        breaker = seawall.CircuitBreaker(clock=clock, name="a", hooks=(tel.hook,))

        async def work() -> int:
            await anyio.lowlevel.checkpoint()
            with tel.tracer.start_as_current_span("user"):
                return 3

        assert await breaker.acall(work) == 3
        assert no_span_is_current()
        assert parent_of(tel.span("user")) == span_id(tel.span("circuit_breaker a"))


class TestRetrierEndToEnd:
    """Call and attempt spans, retry events and delays."""

    def test_retries_then_succeeds(self, tel: Telemetry, clock: FakeClock) -> None:
        retrier = seawall.Retrier(
            max_attempts=3,
            initial_delay=1,
            multiplier=2,
            jitter=seawall.Jitter.NONE,
            clock=clock,
            name="api",
            hooks=(tel.hook,),
        )
        outcomes: list[Exception | None] = [FlakyError("a"), FlakyError("b"), None]

        def flaky() -> str:
            with tel.tracer.start_as_current_span("user"):
                outcome = outcomes.pop(0)
                if outcome is not None:
                    raise outcome
                return "ok"

        assert retrier.call(flaky) == "ok"
        assert no_span_is_current()
        call = tel.span("retry api")
        assert attrs_of(call) == {
            otel.ATTR_PRIMITIVE: "retry",
            otel.ATTR_NAME: "api",
            otel.ATTR_OUTCOME: "success",
        }
        attempts = tel.spans("retry attempt api")
        assert [
            (
                attrs_of(a)[otel.ATTR_ATTEMPT_NUMBER],
                attrs_of(a)[otel.ATTR_ATTEMPT_TYPE],
                attrs_of(a)[otel.ATTR_OUTCOME],
            )
            for a in attempts
        ] == [(1, "original", "failure"), (2, "retry", "failure"), (3, "retry", "success")]
        assert all(parent_of(a) == span_id(call) for a in attempts)
        users = tel.spans("user")
        assert [parent_of(u) for u in users] == [span_id(a) for a in attempts]
        scheduled = events(call, otel.EVENT_RETRY_SCHEDULED)
        assert [(a[otel.ATTR_ATTEMPT_NUMBER], a[otel.ATTR_RETRY_DELAY]) for _, a in scheduled] == [
            (1, 1.0),
            (2, 2.0),
        ]
        delays = tel.histogram(otel.METRIC_RETRY_DELAY, {otel.ATTR_NAME: "api"})
        assert (delays.count, delays.sum) == (2, 3.0)
        assert clock.sleeps == [1.0, 2.0]
        base = {otel.ATTR_PRIMITIVE: "retry", otel.ATTR_NAME: "api"}
        assert (
            tel.count(
                otel.METRIC_ATTEMPT_DURATION,
                {
                    **base,
                    otel.ATTR_ATTEMPT_TYPE: "retry",
                    otel.ATTR_OUTCOME: "failure",
                    "error.type": FLAKY_TYPE,
                },
            )
            == 1
        )
        assert (
            tel.count(
                otel.METRIC_ATTEMPT_DURATION,
                {**base, otel.ATTR_ATTEMPT_TYPE: "retry", otel.ATTR_OUTCOME: "success"},
            )
            == 1
        )
        call_duration = tel.histogram(
            otel.METRIC_CALL_DURATION, {**base, otel.ATTR_OUTCOME: "success"}
        )
        assert call_duration.sum == 3.0

    def test_gives_up(self, tel: Telemetry, clock: FakeClock) -> None:
        retrier = seawall.Retrier(max_attempts=2, clock=clock, name="api", hooks=(tel.hook,))

        def fail() -> None:
            raise FlakyError("down")

        with pytest.raises(FlakyError):
            retrier.call(fail)
        call = tel.span("retry api")
        assert call.status.status_code is StatusCode.ERROR
        assert events(call, otel.EVENT_RETRY_GAVE_UP) == [
            (
                otel.EVENT_RETRY_GAVE_UP,
                {
                    otel.ATTR_NAME: "api",
                    otel.ATTR_RETRY_ATTEMPTS: 2,
                    otel.ATTR_RETRY_REASON: "attempts_exhausted",
                    "error.type": FLAKY_TYPE,
                },
            )
        ]

    @pytest.mark.anyio
    async def test_async(self, anyio_backend: str, tel: Telemetry, clock: FakeClock) -> None:
        retrier = seawall.Retrier(
            max_attempts=2, jitter=seawall.Jitter.NONE, clock=clock, name="a", hooks=(tel.hook,)
        )
        failures = [FlakyError("x")]

        async def work() -> int:
            await anyio.lowlevel.checkpoint()
            if failures:
                raise failures.pop()
            return 5

        assert await retrier.acall(work) == 5
        assert no_span_is_current()
        call = tel.span("retry a")
        attempts = tel.spans("retry attempt a")
        assert [attrs_of(a)[otel.ATTR_ATTEMPT_TYPE] for a in attempts] == ["original", "retry"]
        assert all(parent_of(a) == span_id(call) for a in attempts)


class TestNesting:
    """Spans of stacked primitives nest: call, attempt, inner call, user span."""

    def test_retry_around_breaker(self, tel: Telemetry, clock: FakeClock) -> None:
        retrier = seawall.Retrier(
            max_attempts=2, jitter=seawall.Jitter.NONE, clock=clock, name="s", hooks=(tel.hook,)
        )
        breaker = seawall.CircuitBreaker(clock=clock, name="s", hooks=(tel.hook,))
        failures = [FlakyError("x")]

        def user() -> str:
            with tel.tracer.start_as_current_span("user"):
                if failures:
                    raise failures.pop()
                return "ok"

        with tel.tracer.start_as_current_span("request"):
            assert retrier.call(breaker.call, user) == "ok"
        assert no_span_is_current()
        request = tel.span("request")
        call = tel.span("retry s")
        assert parent_of(call) == span_id(request)
        attempts = tel.spans("retry attempt s")
        inner = tel.spans("circuit_breaker s")
        users = tel.spans("user")
        assert len(attempts) == len(inner) == len(users) == 2
        for attempt, breaker_span, user_span in zip(attempts, inner, users, strict=True):
            assert parent_of(attempt) == span_id(call)
            assert parent_of(breaker_span) == span_id(attempt)
            assert parent_of(user_span) == span_id(breaker_span)
        assert {s.context.trace_id for s in tel.spans() if s.context} == {
            request.context.trace_id if request.context else 0
        }


class _Script:
    """An async callable whose n-th call sleeps ``latencies[n]`` virtual seconds."""

    def __init__(self, clock: FakeClock, latencies: list[float]) -> None:
        self.clock = clock
        self.latencies = latencies
        self.calls = 0

    async def __call__(self) -> str:
        n = self.calls
        self.calls += 1
        await self.clock.asleep(self.latencies[n])
        return f"r{n}"


class TestHedgerEndToEnd:
    """Attempt types, launches and wins, on asyncio, trio and threads."""

    def check_hedged(self, tel: Telemetry, name: str) -> None:
        call = tel.span(f"hedge {name}")
        assert attrs_of(call)[otel.ATTR_OUTCOME] == "success"
        attempts = sorted(
            tel.spans(f"hedge attempt {name}"), key=lambda s: attrs_of(s)[otel.ATTR_ATTEMPT_NUMBER]
        )
        assert [
            (
                attrs_of(a)[otel.ATTR_ATTEMPT_NUMBER],
                attrs_of(a)[otel.ATTR_ATTEMPT_TYPE],
                attrs_of(a)[otel.ATTR_OUTCOME],
            )
            for a in attempts
        ] == [(0, "original", "cancelled"), (1, "hedge", "success")]
        assert all(parent_of(a) == span_id(call) for a in attempts)
        assert attempts[0].status.status_code is StatusCode.UNSET
        assert (
            tel.value(
                otel.METRIC_HEDGE_LAUNCHES,
                {otel.ATTR_NAME: name, otel.ATTR_HEDGE_REASON: "delay_elapsed"},
            )
            == 1
        )
        assert (
            tel.value(
                otel.METRIC_HEDGE_WINS, {otel.ATTR_NAME: name, otel.ATTR_ATTEMPT_TYPE: "hedge"}
            )
            == 1
        )
        launched = all_events(tel, otel.EVENT_HEDGE_LAUNCHED)
        won = all_events(tel, otel.EVENT_HEDGE_WON)
        assert [a[otel.ATTR_ATTEMPT_NUMBER] for _, a in launched] == [1]
        assert [(a[otel.ATTR_ATTEMPT_NUMBER], a[otel.ATTR_HEDGE_HEDGED]) for _, a in won] == [
            (1, True)
        ]
        base = {otel.ATTR_PRIMITIVE: "hedge", otel.ATTR_NAME: name}
        assert (
            tel.count(
                otel.METRIC_ATTEMPT_DURATION,
                {**base, otel.ATTR_ATTEMPT_TYPE: "original", otel.ATTR_OUTCOME: "cancelled"},
            )
            == 1
        )

    @pytest.mark.anyio
    async def test_async(self, anyio_backend: str, tel: Telemetry, clock: FakeClock) -> None:
        hedger = seawall.Hedger(delay=0.2, clock=clock, name="h", hooks=(tel.hook,))
        script = _Script(clock, [1.0, 0.1])
        assert await hedger.acall(script) == "r1"
        assert no_span_is_current()
        self.check_hedged(tel, "h")

    def test_threads(self, tel: Telemetry, clock: FakeClock) -> None:
        ended = threading.Event()

        def notify(event: seawall.Event) -> None:
            if isinstance(event, AttemptEnded) and event.started.attempt == 0:
                ended.set()

        hedger = seawall.Hedger(delay=0.2, clock=clock, name="s", hooks=(tel.hook, notify))
        release = threading.Event()
        calls: list[int] = []

        def lookup() -> str:
            calls.append(1)
            if len(calls) == 1:
                clock.sleep(0.2)  # slow in virtual time: fires the hedge
                release.wait(SAFETY)
                return "slow"
            return "fast"

        assert hedger.call(lookup) == "fast"
        release.set()
        assert ended.wait(SAFETY)
        hedger.close()
        call = tel.span("hedge s")
        attempts = sorted(
            tel.spans("hedge attempt s"), key=lambda s: attrs_of(s)[otel.ATTR_ATTEMPT_NUMBER]
        )
        assert [attrs_of(a)[otel.ATTR_ATTEMPT_TYPE] for a in attempts] == ["original", "hedge"]
        assert all(parent_of(a) == span_id(call) for a in attempts)
        assert (
            tel.value(
                otel.METRIC_HEDGE_WINS, {otel.ATTR_NAME: "s", otel.ATTR_ATTEMPT_TYPE: "hedge"}
            )
            == 1
        )


class TestRateLimiterEndToEnd:
    """Wait histogram, rejections and keyed limiters."""

    def test_waits(self, tel: Telemetry, clock: FakeClock) -> None:
        limiter = seawall.RateLimiter(rate=1, burst=1, clock=clock, name="rl", hooks=(tel.hook,))

        @limiter
        def work() -> int:
            return 1

        assert [work() for _ in range(3)] == [1, 1, 1]
        histogram = tel.histogram(otel.METRIC_RATE_LIMITER_WAIT_DURATION, {otel.ATTR_NAME: "rl"})
        assert tuple(histogram.explicit_bounds) == otel.DURATION_BUCKETS
        assert (histogram.count, histogram.sum) == (3, 2.0)
        assert histogram.bucket_counts[0] == 1  # no wait
        assert histogram.bucket_counts[9] == 2  # (0.5, 1]
        spans = tel.spans("rate_limiter rl")
        assert [attrs_of(s)[otel.ATTR_OUTCOME] for s in spans] == ["success"] * 3

    def test_rejections(self, tel: Telemetry, clock: FakeClock) -> None:
        limiter = seawall.RateLimiter(rate=1, burst=1, clock=clock, name="rl", hooks=(tel.hook,))
        with tel.tracer.start_as_current_span("user"):
            assert limiter.try_acquire()
            assert not limiter.try_acquire()
            with pytest.raises(seawall.RateLimitedError):
                limiter.acquire(max_wait=0.5)
        rejections = {otel.ATTR_PRIMITIVE: "rate_limiter", otel.ATTR_NAME: "rl"}
        assert tel.value(otel.METRIC_REJECTIONS, rejections) == 2
        assert [a[otel.ATTR_RATE_LIMITER_RETRY_AFTER] for _, a in events(tel.span("user"))] == [
            1.0,
            1.0,
        ]

    def test_keyed(self, tel: Telemetry, clock: FakeClock) -> None:
        limiter = seawall.KeyedRateLimiter(
            rate=1, burst=1, clock=clock, name="k", hooks=(tel.hook,)
        )
        limiter.acquire("tenant-42")
        limiter.acquire("tenant-42")
        assert not limiter.try_acquire("tenant-42")
        for name in tel.metrics():
            for attrs in tel.attribute_sets(name):
                assert "tenant-42" not in attrs.values()
        histogram = tel.histogram(otel.METRIC_RATE_LIMITER_WAIT_DURATION, {otel.ATTR_NAME: "k"})
        assert (histogram.count, histogram.sum) == (2, 1.0)


class TestBulkheadEndToEnd:
    """In-flight calls up and back to 0; rejections."""

    def test_in_flight(self, tel: Telemetry, clock: FakeClock) -> None:
        bulkhead = seawall.Bulkhead(2, clock=clock, name="bh", hooks=(tel.hook,))
        attrs = {otel.ATTR_NAME: "bh"}
        seen: list[float] = []

        def inner() -> None:
            seen.append(tel.value(otel.METRIC_BULKHEAD_IN_FLIGHT, attrs))

        def outer() -> None:
            seen.append(tel.value(otel.METRIC_BULKHEAD_IN_FLIGHT, attrs))
            bulkhead.call(inner)

        bulkhead.call(outer)
        assert seen == [1, 2]
        assert tel.value(otel.METRIC_BULKHEAD_IN_FLIGHT, attrs) == 0
        outer_span, inner_span = tel.spans("bulkhead bh")[::-1]
        assert parent_of(inner_span) == span_id(outer_span)

    def test_rejected(self, tel: Telemetry, clock: FakeClock) -> None:
        bulkhead = seawall.Bulkhead(1, clock=clock, name="bh", hooks=(tel.hook,))

        def nested() -> None:
            bulkhead.call(lambda: None)

        with pytest.raises(seawall.BulkheadFullError):
            bulkhead.call(nested)
        spans = tel.spans("bulkhead bh")
        # The inner call is refused; the error goes through the outer call too.
        assert [attrs_of(s)[otel.ATTR_OUTCOME] for s in spans] == ["rejected", "rejected"]
        assert parent_of(spans[0]) == span_id(spans[1])
        assert events(spans[0], otel.EVENT_BULKHEAD_REJECTED) == [
            (
                otel.EVENT_BULKHEAD_REJECTED,
                {
                    otel.ATTR_NAME: "bh",
                    otel.ATTR_BULKHEAD_IN_FLIGHT: 1,
                    otel.ATTR_BULKHEAD_QUEUED: 0,
                },
            )
        ]
        rejections = {otel.ATTR_PRIMITIVE: "bulkhead", otel.ATTR_NAME: "bh"}
        assert tel.value(otel.METRIC_REJECTIONS, rejections) == 1
        assert tel.value(otel.METRIC_BULKHEAD_IN_FLIGHT, {otel.ATTR_NAME: "bh"}) == 0


class TestTimeoutEndToEnd:
    @pytest.mark.anyio
    async def test_timed_out(self, anyio_backend: str, tel: Telemetry, clock: FakeClock) -> None:
        timeout = seawall.Timeout(1, clock=clock, name="t", hooks=(tel.hook,))

        async def slow() -> None:
            await clock.asleep(60)

        with pytest.raises(seawall.CallTimeoutError):
            await timeout.acall(slow)
        assert no_span_is_current()
        span = tel.span("timeout t")
        assert attrs_of(span)[otel.ATTR_OUTCOME] == "timeout"
        assert attrs_of(span)["error.type"] == "seawall.CallTimeoutError"
        assert span.status.status_code is StatusCode.ERROR
        assert events(span, otel.EVENT_TIMEOUT_EXPIRED) == [
            (otel.EVENT_TIMEOUT_EXPIRED, {otel.ATTR_NAME: "t", otel.ATTR_TIMEOUT_DURATION: 1.0})
        ]
        assert tel.value(otel.METRIC_TIMEOUTS, {otel.ATTR_NAME: "t"}) == 1
        duration = tel.histogram(
            otel.METRIC_CALL_DURATION,
            {
                otel.ATTR_PRIMITIVE: "timeout",
                otel.ATTR_NAME: "t",
                otel.ATTR_OUTCOME: "timeout",
                "error.type": "seawall.CallTimeoutError",
            },
        )
        assert duration.sum == 1.0

    def test_sync_user_span_in_the_worker(self, tel: Telemetry, clock: FakeClock) -> None:
        """The sync timeout's worker thread sees the call's span as current."""
        timeout = seawall.Timeout(5, clock=clock, name="t", hooks=(tel.hook,))

        def work() -> int:
            with tel.tracer.start_as_current_span("user"):
                return 1

        assert timeout.call(work) == 1
        timeout.close()
        assert parent_of(tel.span("user")) == span_id(tel.span("timeout t"))


class TestFallbackEndToEnd:
    def test_fell_back(self, tel: Telemetry) -> None:
        fallback = seawall.Fallback("default", name="fb", hooks=(tel.hook,))

        def fail() -> str:
            raise BoomError("x")

        assert fallback.call(fail) == "default"
        span = tel.span("fallback fb")
        assert events(span, otel.EVENT_FALLBACK_APPLIED) == [
            (otel.EVENT_FALLBACK_APPLIED, {otel.ATTR_NAME: "fb", "error.type": BOOM_TYPE})
        ]
        assert (
            tel.value(otel.METRIC_FALLBACKS, {otel.ATTR_NAME: "fb", "error.type": BOOM_TYPE}) == 1
        )


class _Model:
    """A sync model answering in OpenAI's dict shapes; streams take virtual time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def generate(self, prompt: str, *, model: str = "gpt-4o") -> dict[str, Any]:
        return {
            "id": "chatcmpl-9",
            "model": f"{model}-2024-08-06",
            "choices": [{"finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 22},
        }

    def stream(self, prompt: str, *, model: str = "gpt-4o") -> Iterator[dict[str, Any]]:
        self.clock.sleep(0.25)
        yield {"id": "c1", "model": model, "choices": [{"finish_reason": None}]}
        self.clock.sleep(1.0)
        yield {
            "id": "c1",
            "model": model,
            "choices": [{"finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        }


class TestWithTelemetry:
    """GenAI spans and metrics through seawall.with_telemetry."""

    def middleware(self, tel: Telemetry, clock: FakeClock) -> Callable[[Any], Any]:
        return seawall.as_llm_middleware(
            seawall.with_telemetry(hooks=(tel.hook,), provider="openai", clock=clock)
        )

    def test_generate(self, tel: Telemetry, clock: FakeClock) -> None:
        model = seawall.apply_middleware(_Model(clock), self.middleware(tel, clock))
        model.generate("hi", model="gpt-4o")
        span = tel.span("chat gpt-4o")
        assert span.kind is SpanKind.CLIENT
        attrs = attrs_of(span)
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o"
        assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
        assert attrs["gen_ai.response.id"] == "chatcmpl-9"
        assert attrs["gen_ai.usage.input_tokens"] == 11
        assert attrs["gen_ai.usage.output_tokens"] == 22
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
        base = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
        }
        assert tel.histogram("gen_ai.client.operation.duration", base).count == 1
        usage = tel.histogram("gen_ai.client.token.usage", {**base, "gen_ai.token.type": "output"})
        assert usage.sum == 22

    def test_stream(self, tel: Telemetry, clock: FakeClock) -> None:
        model = seawall.apply_middleware(_Model(clock), self.middleware(tel, clock))
        chunks = list(model.stream("hi", model="gpt-4o-mini"))
        assert len(chunks) == 2
        span = tel.span("chat gpt-4o-mini")
        attrs = attrs_of(span)
        assert attrs["gen_ai.response.time_to_first_chunk"] == 0.25
        assert attrs["gen_ai.response.finish_reasons"] == ("length",)
        base = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini",
        }
        first = tel.histogram("gen_ai.client.operation.time_to_first_chunk", base)
        assert first.sum == 0.25
        assert tel.histogram("gen_ai.client.operation.duration", base).sum == 1.25


class TestDocs:
    """docs/instrumentation.md lists every name, with the right instrument and unit."""

    DOC = pathlib.Path(__file__).parents[1] / "docs" / "instrumentation.md"

    def test_every_name_is_documented(self) -> None:
        """Every name the hook reports under, public or copied from semconv, is in a table."""
        from seawall.otel import _names as otel_names

        text = self.DOC.read_text()
        names = [
            value
            for key, value in vars(otel_names).items()
            if key.startswith(("ATTR_", "EVENT_", "METRIC_", "GEN_AI_", "ERROR_"))
            and isinstance(value, str)
        ]
        assert len(names) > 50
        missing = [name for name in names if f"| `{name}` |" not in text]
        assert missing == []

    def test_metric_table_matches_the_instruments(self, tel: Telemetry) -> None:
        emit_every_kind(tel)
        actual: dict[str, tuple[str, str]] = {}
        for name, metric in tel.metrics().items():
            data = metric.data
            if isinstance(data, Histogram):
                instrument = "Histogram"
            else:
                assert isinstance(data, Sum)
                instrument = "Counter" if data.is_monotonic else "UpDownCounter"
            actual[name] = (instrument, metric.unit or "")
        row = re.compile(r"^\| `([a-z_.]+)` \| (\w+) \| `([^`]+)` \|", re.MULTILINE)
        rows = row.findall(self.DOC.read_text())
        documented = {name: (instrument, unit) for name, instrument, unit in rows}
        assert documented == actual

    def test_bucket_boundaries_are_documented(self) -> None:
        listed = ", ".join(f"{b:g}" for b in otel.DURATION_BUCKETS)
        assert listed in self.DOC.read_text()
