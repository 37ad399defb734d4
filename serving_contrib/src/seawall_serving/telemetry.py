"""Telemetry for seawall-serving: OTLP export set up from ``OTEL_*``, and the metrics hook.

- `configure_from_env`: export traces with OTLP as the standard ``OTEL_*`` variables
  say (``seawall-serving[otel]`` plus opentelemetry-sdk and an OTLP exporter).
- `MetricsHook`: a seawall hook that puts circuit breaker states and upstream
  rejections on the server's ``/metrics``; ``service.metrics_hook()`` makes one.

Every request a server routes gets an OpenTelemetry SERVER span whenever
opentelemetry-api is installed; `seawall_serving.Service.set_tracer_provider` chooses
where the spans go (the global provider by default). ``docs/serving.md`` describes the
spans, the metrics and the logs.
"""

from __future__ import annotations

from seawall_serving._metrics import MetricsHook
from seawall_serving._telemetry import (
    ATTR_OUTCOME,
    ATTR_RUN_ID,
    ATTR_TENANT_ID,
    INSTRUMENTATION_SCOPE,
    configure_from_env,
)


__all__ = (
    "ATTR_OUTCOME",
    "ATTR_RUN_ID",
    "ATTR_TENANT_ID",
    "INSTRUMENTATION_SCOPE",
    "MetricsHook",
    "configure_from_env",
)

MetricsHook.__module__ = __name__
configure_from_env.__module__ = __name__
