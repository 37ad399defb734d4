"""What instrumentation costs on the success path: hooks off, logging hook, OpenTelemetry.

Each group times one primitive's decorated call, in one run: with no hooks; with
`seawall.LoggingHook` (its logger at the default WARNING level, so a successful call
builds no record); with `seawall.otel.OpenTelemetryHook` on the API's no-op providers
(``otel_hook_api_only``: seawall's own share); and on the real SDK (``otel_hook``:
spans go through a `BatchSpanProcessor` to an exporter that drops them, metrics to an
in-memory reader). For scale, ``sdk_one_span`` is the plain call inside one SDK span
of the caller's own. Ratios are to the plain call of the same group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NoOpTracerProvider
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import awork, bench_async, passthrough, work
from seawall.otel import OpenTelemetryHook


class _DropExporter(SpanExporter):
    """Accepts every span and keeps none: the export itself is not what we measure."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:  # noqa: ARG002
        return SpanExportResult.SUCCESS


@pytest.fixture(scope="module")
def otel_hook() -> Iterator[OpenTelemetryHook]:
    """A hook on a real SDK tracer and meter provider, shut down after the module."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_DropExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    yield OpenTelemetryHook(tracer_provider=tracer_provider, meter_provider=meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture(scope="module")
def tracer_provider(otel_hook: OpenTelemetryHook) -> TracerProvider:
    """The SDK tracer provider of `otel_hook`, for the one-span reference row."""
    provider = otel_hook._tracer_provider  # noqa: SLF001 -- the same SDK, for scale
    assert isinstance(provider, TracerProvider)
    return provider


HOOKS = ("hooks_off", "logging_hook", "otel_hook_api_only", "otel_hook")


def _hooks(kind: str, otel: OpenTelemetryHook) -> tuple[Any, ...]:
    if kind == "logging_hook":
        return (seawall.LoggingHook(),)
    if kind == "otel_hook_api_only":
        noop = OpenTelemetryHook(
            tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
        )
        return (noop,)
    if kind == "otel_hook":
        return (otel,)
    return ()


def _one_span(provider: TracerProvider) -> Callable[[], int]:
    tracer = provider.get_tracer("bench")

    def spanned() -> int:
        with tracer.start_as_current_span("work"):
            return work()

    return spanned


def _decorators(hooks: tuple[Any, ...]) -> dict[str, Callable[[Callable[..., Any]], Any]]:
    return {
        "breaker": seawall.CircuitBreaker(hooks=hooks),
        "retry": seawall.Retrier(hooks=hooks),
        "rate_limiter": seawall.RateLimiter(rate=1e12, burst=1e12, hooks=hooks),
    }


@pytest.mark.parametrize("primitive", ["breaker", "retry", "rate_limiter"])
@pytest.mark.parametrize("kind", ["plain", "passthrough", "sdk_one_span", *HOOKS])
def test_sync(
    benchmark: BenchmarkFixture,
    otel_hook: OpenTelemetryHook,
    tracer_provider: TracerProvider,
    primitive: str,
    kind: str,
) -> None:
    benchmark.group = f"sync {primitive} success, instrumented"
    benchmark.name = f"test_{kind}"
    if kind == "plain":
        fn: Callable[[], int] = work
    elif kind == "passthrough":
        fn = passthrough(work)
    elif kind == "sdk_one_span":
        fn = _one_span(tracer_provider)
    else:
        fn = _decorators(_hooks(kind, otel_hook))[primitive](work)
    assert benchmark(fn) == 1


@pytest.mark.parametrize("kind", ["plain", *HOOKS])
def test_async_retry(benchmark: BenchmarkFixture, otel_hook: OpenTelemetryHook, kind: str) -> None:
    benchmark.group = "async retry success, instrumented"
    benchmark.name = f"test_{kind}"
    op = awork if kind == "plain" else seawall.Retrier(hooks=_hooks(kind, otel_hook))(awork)
    bench_async(benchmark, op)
