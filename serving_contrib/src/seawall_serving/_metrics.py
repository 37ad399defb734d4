"""Prometheus metrics, when ``prometheus-client`` is installed (``seawall-serving[prometheus]``).

Each server has its own registry, so two servers in one process (or in one test run)
never share counters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final


if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ("Metrics",)

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Request duration buckets, in seconds: from a cached answer to a long agent run.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@final
class Metrics:
    """The server's instruments; `create` returns ``None`` without prometheus-client."""

    __slots__ = (
        "duration",
        "in_flight",
        "registry",
        "requests",
        "streams_open",
        "tenant_rejections",
    )

    def __init__(self) -> None:
        from prometheus_client import (  # noqa: PLC0415 -- optional dependency
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        self.requests: Counter = Counter(
            "seawall_serving_requests",
            "Requests served, by method, route and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.duration: Histogram = Histogram(
            "seawall_serving_request_duration_seconds",
            "Time from a request's arrival to its last byte (streams: to their end).",
            ("method", "route"),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight: Gauge = Gauge(
            "seawall_serving_requests_in_flight",
            "Requests being served now.",
            registry=self.registry,
        )
        self.streams_open: Gauge = Gauge(
            "seawall_serving_sse_streams_open",
            "Server-Sent Event streams open now.",
            registry=self.registry,
        )
        self.tenant_rejections: Counter = Counter(
            "seawall_serving_tenant_rate_limited",
            "Requests refused with 429 because their tenant's rate limit was exhausted.",
            registry=self.registry,
        )

    @classmethod
    def create(cls) -> Metrics | None:
        try:
            import prometheus_client  # noqa: F401, PLC0415 -- probing the extra
        except ImportError:
            return None
        return cls()

    def observe(self, method: str, route: str, status: int, duration: float) -> None:
        if method not in METHODS:  # clients choose methods; labels must stay bounded
            method = "_OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(duration)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import (  # noqa: PLC0415 -- optional dependency
            CONTENT_TYPE_LATEST,
            generate_latest,
        )

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
