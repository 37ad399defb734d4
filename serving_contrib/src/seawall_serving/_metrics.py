"""Prometheus metrics, when ``prometheus-client`` is installed (``seawall-serving[prometheus]``).

Each server has its own registry, so two servers in one process (or in one test run)
never share counters. `MetricsHook` feeds it the states and rejections of the seawall
primitives an agent uses.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final, final

import seawall


if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from seawall_serving._service import Service

__all__ = ("Metrics", "MetricsHook")

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Request duration buckets, in seconds: from a cached answer to a long agent run.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@final
class Metrics:
    """The server's instruments; `create` returns ``None`` without prometheus-client."""

    __slots__ = (
        "breaker_state",
        "duration",
        "in_flight",
        "registry",
        "reload_success",
        "reload_timestamp",
        "reloads",
        "requests",
        "streams_open",
        "tenant_rejections",
        "upstream_rejections",
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
        self.breaker_state: Gauge = Gauge(
            "seawall_serving_circuit_breaker_state",
            "1 for each circuit breaker's current state, 0 for its other states.",
            ("name", "state"),
            registry=self.registry,
        )
        self.upstream_rejections: Counter = Counter(
            "seawall_serving_upstream_rejections",
            "Calls refused by an agent's circuit breaker, rate limiter or bulkhead.",
            ("primitive", "name"),
            registry=self.registry,
        )
        self.reloads: Counter = Counter(
            "seawall_serving_config_reloads",
            "Configuration reloads, by result (success or failure).",
            ("result",),
            registry=self.registry,
        )
        self.reload_success: Gauge = Gauge(
            "seawall_serving_config_last_reload_success",
            "1 if the last configuration reload succeeded, 0 if it failed (or none ran).",
            registry=self.registry,
        )
        self.reload_timestamp: Gauge = Gauge(
            "seawall_serving_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration reload (0 before the first).",
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

    def record_reload(self, success: bool) -> None:
        self.reloads.labels("success" if success else "failure").inc()
        self.reload_success.set(1 if success else 0)
        if success:
            # Wall-clock time, as Prometheus timestamps are: not the injected clock,
            # which measures durations and may be a FakeClock.
            self.reload_timestamp.set(time.time())  # noqa: TID251

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import (  # noqa: PLC0415 -- optional dependency
            CONTENT_TYPE_LATEST,
            generate_latest,
        )

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


#: The states a breaker's state series cover, in `seawall.CircuitState` order.
BREAKER_STATES: Final = tuple(state.value for state in seawall.CircuitState)
PRIMITIVE_BREAKER: Final = "circuit_breaker"
PRIMITIVE_LIMITER: Final = "rate_limiter"
PRIMITIVE_BULKHEAD: Final = "bulkhead"


@final
class MetricsHook:
    """A seawall hook that puts breaker states and rejections on a server's ``/metrics``.

    Pass it to the primitives an agent uses, like any hook::

        hook = adapter.service.metrics_hook()
        breaker = seawall.CircuitBreaker(name="llm", hooks=(hook,))
        hook.track(breaker)  # its state shows before its first change
        limiter = seawall.RateLimiter(rate=10, burst=20, name="llm", hooks=(hook,))

    - ``seawall_serving_circuit_breaker_state{name, state}`` is 1 for each breaker's
      current state and 0 for its other four, from its `seawall.CircuitStateChanged`
      events (or from `track`).
    - ``seawall_serving_upstream_rejections_total{primitive, name}`` counts the calls a
      breaker (`seawall.CallRejected`), a rate limiter (`seawall.RateLimited`) or a
      bulkhead (`seawall.BulkheadRejected`) refused; ``primitive`` is
      ``circuit_breaker``, ``rate_limiter`` or ``bulkhead``.

    Give each primitive a distinct, stable name: names are label values. A keyed
    limiter's keys are never recorded. The hook asks for no per-call events
    (``wants_call_events = False``), so a primitive's success path costs what it does
    without hooks. Without prometheus-client it does nothing. Thread-safe.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_generations", "_lock", "_metrics")

    wants_call_events: Final = False

    def __init__(self, service: Service) -> None:
        self._metrics = service.metrics
        self._lock = threading.Lock()
        # The newest generation seen per breaker name: events of different threads
        # may arrive out of order, and an older one must not undo a newer state.
        self._generations: dict[str, int] = {}

    def __repr__(self) -> str:
        enabled = self._metrics is not None
        return f"MetricsHook(enabled={enabled}, breakers={len(self._generations)})"

    def __call__(self, event: seawall.Event) -> None:
        """Record *event*; other events than those above are ignored."""
        metrics = self._metrics
        if metrics is None:
            return
        if isinstance(event, seawall.CircuitStateChanged):
            self._set_state(metrics, event.name, event.new_state, event.generation)
        elif isinstance(event, seawall.CallRejected):
            metrics.upstream_rejections.labels(PRIMITIVE_BREAKER, event.name).inc()
        elif isinstance(event, seawall.RateLimited):
            metrics.upstream_rejections.labels(PRIMITIVE_LIMITER, event.name).inc()
        elif isinstance(event, seawall.BulkheadRejected):
            metrics.upstream_rejections.labels(PRIMITIVE_BULKHEAD, event.name).inc()

    def track(self, breaker: seawall.CircuitBreaker) -> None:
        """Show *breaker*'s current state now, before (or without) any state change.

        The hook must also be among the breaker's hooks, to follow its changes.
        """
        if not isinstance(breaker, seawall.CircuitBreaker):
            msg = f"breaker must be a seawall.CircuitBreaker, got {type(breaker).__name__}"
            raise TypeError(msg)
        metrics = self._metrics
        if metrics is not None:
            self._set_state(metrics, breaker.name, breaker.state, None)

    def _set_state(
        self, metrics: Metrics, name: str, state: seawall.CircuitState, generation: int | None
    ) -> None:
        with self._lock:
            if generation is not None:
                if generation < self._generations.get(name, -1):
                    return
                self._generations[name] = generation
            else:
                self._generations.setdefault(name, -1)
            for value in BREAKER_STATES:
                metrics.breaker_state.labels(name, value).set(1 if value == state.value else 0)
