"""Prometheus: breaker states and upstream rejections from the metrics hook, config reloads."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest
import seawall
from seawall.testing import FakeClock

import seawall_serving
from support import running


pytest.importorskip("prometheus_client")

STATES = ("closed", "open", "half_open", "forced_open", "disabled")


def service() -> seawall_serving.Service:
    return seawall_serving.Service(seawall_serving.Config(default_tenant="t"))


def sample(svc: seawall_serving.Service, metric: str, **labels: str) -> float | None:
    assert svc.metrics is not None
    return svc.metrics.registry.get_sample_value(metric, labels)


def states(svc: seawall_serving.Service, breaker: str) -> dict[str, float | None]:
    return {
        state: sample(svc, "seawall_serving_circuit_breaker_state", name=breaker, state=state)
        for state in STATES
    }


def only(state: str) -> dict[str, float]:
    return {s: 1.0 if s == state else 0.0 for s in STATES}


# -- circuit breakers --------------------------------------------------------------------


def test_the_breaker_state_follows_its_transitions() -> None:
    svc = service()
    hook = svc.metrics_hook()
    clock = FakeClock()
    breaker = seawall.CircuitBreaker(
        name="llm", max_failures=1, timeout=10, success_threshold=1, hooks=(hook,), clock=clock
    )
    assert states(svc, "llm") == dict.fromkeys(STATES)  # nothing until a change or track
    hook.track(breaker)
    assert states(svc, "llm") == only("closed")
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert states(svc, "llm") == only("open")
    clock.advance(10)
    assert breaker.state is seawall.CircuitState.HALF_OPEN
    assert states(svc, "llm") == only("half_open")
    breaker.call(lambda: None)
    assert states(svc, "llm") == only("closed")
    breaker.force_open()
    assert states(svc, "llm") == only("forced_open")
    breaker.disable()
    assert states(svc, "llm") == only("disabled")


def test_an_older_transition_reported_late_does_not_undo_a_newer_one() -> None:
    svc = service()
    hook = svc.metrics_hook()
    closed, opened = seawall.CircuitState.CLOSED, seawall.CircuitState.OPEN
    hook(seawall.CircuitStateChanged("b", closed, opened, "consecutive_failures", 3))
    hook(seawall.CircuitStateChanged("b", opened, closed, "manual_reset", 2))  # stale
    assert states(svc, "b") == only("open")
    hook(seawall.CircuitStateChanged("b", opened, closed, "manual_reset", 4))
    assert states(svc, "b") == only("closed")


def test_rejections_are_counted_by_primitive_and_name() -> None:
    svc = service()
    hook = svc.metrics_hook()
    clock = FakeClock()
    breaker = seawall.CircuitBreaker(name="llm", hooks=(hook,), clock=clock)
    breaker.trip()
    for _ in range(2):
        with pytest.raises(seawall.CircuitOpenError):
            breaker.call(lambda: None)
    limiter = seawall.RateLimiter(rate=1, burst=1, name="quota", hooks=(hook,), clock=clock)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    keyed = seawall.KeyedRateLimiter(rate=1, burst=1, name="per-user", hooks=(hook,), clock=clock)
    keyed.acquire("ann", max_wait=0)
    with pytest.raises(seawall.RateLimitedError):
        keyed.acquire("ann", max_wait=0)
    bulkhead = seawall.Bulkhead(1, name="pool", hooks=(hook,))

    async def hold_and_refuse() -> None:
        async with bulkhead:
            with pytest.raises(seawall.BulkheadFullError):
                async with bulkhead:
                    pass

    anyio.run(hold_and_refuse)
    total = "seawall_serving_upstream_rejections_total"
    assert sample(svc, total, primitive="circuit_breaker", name="llm") == 2
    assert sample(svc, total, primitive="rate_limiter", name="quota") == 1
    assert sample(svc, total, primitive="rate_limiter", name="per-user") == 1
    assert sample(svc, total, primitive="bulkhead", name="pool") == 1
    assert svc.metrics is not None
    text = svc.metrics.render()[0].decode()
    assert "ann" not in text  # a keyed limiter's keys are never label values


def test_the_hook_asks_for_no_call_events_and_ignores_other_events() -> None:
    svc = service()
    hook = svc.metrics_hook()
    assert hook.wants_call_events is False
    hook(seawall.Event("x"))
    with pytest.raises(TypeError, match=r"seawall\.CircuitBreaker"):
        hook.track(object())  # type: ignore[arg-type]
    assert "MetricsHook(enabled=True" in repr(hook)


def test_without_prometheus_the_hook_does_nothing() -> None:
    svc = service()
    svc.metrics = None
    hook = svc.metrics_hook()
    breaker = seawall.CircuitBreaker(name="llm", hooks=(hook,), clock=FakeClock())
    hook.track(breaker)
    breaker.trip()
    with pytest.raises(seawall.CircuitOpenError):
        breaker.call(lambda: None)
    svc.record_config_reload(True)
    assert "enabled=False" in repr(hook)


# -- config reloads ----------------------------------------------------------------------


def test_config_reloads_are_counted_with_the_last_result_and_success_time() -> None:
    svc = service()
    success = "seawall_serving_config_last_reload_success"
    stamp = "seawall_serving_config_last_reload_success_timestamp_seconds"
    total = "seawall_serving_config_reloads_total"
    assert sample(svc, success) == 0
    assert sample(svc, stamp) == 0
    before = time.time()
    svc.record_config_reload(True)
    after = time.time()
    assert sample(svc, success) == 1
    first = sample(svc, stamp)
    assert first is not None
    assert before <= first <= after
    svc.record_config_reload(False)
    svc.record_config_reload(False)
    assert sample(svc, success) == 0
    assert sample(svc, stamp) == first  # the time of the last *successful* one
    assert sample(svc, total, result="success") == 1
    assert sample(svc, total, result="failure") == 2
    with pytest.raises(TypeError, match="must be a bool"):
        svc.record_config_reload(1)  # type: ignore[arg-type]


# -- on /metrics -------------------------------------------------------------------------


class Guarded:
    """An agent behind a breaker that opens after one failure."""

    def __init__(self) -> None:
        self.breaker: seawall.CircuitBreaker | None = None

    async def invoke(self, input: Any) -> Any:
        assert self.breaker is not None

        async def call() -> Any:
            if input == "fail":
                raise RuntimeError("upstream down")
            return input

        return await self.breaker.acall(call)


def test_breaker_states_and_rejections_are_scraped_from_metrics() -> None:
    agent = Guarded()
    with (
        running("stdlib", agents={"/a": agent}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        hook = server.service.metrics_hook()
        agent.breaker = seawall.CircuitBreaker(
            name="llm", max_failures=1, timeout=30, hooks=(hook,), clock=FakeClock()
        )
        hook.track(agent.breaker)
        scraped = client.get("/metrics").text
        assert 'seawall_serving_circuit_breaker_state{name="llm",state="closed"} 1.0' in scraped
        assert client.post("/a/invoke", json={"input": "fail"}).status_code == 500
        refused = client.post("/a/invoke", json={"input": "ok"})
        assert refused.status_code == 503
        assert refused.json()["code"] == "circuit_open"
        server.service.record_config_reload(True)
        scraped = client.get("/metrics").text
    assert 'seawall_serving_circuit_breaker_state{name="llm",state="open"} 1.0' in scraped
    assert 'seawall_serving_circuit_breaker_state{name="llm",state="closed"} 0.0' in scraped
    assert (
        'seawall_serving_upstream_rejections_total{name="llm",primitive="circuit_breaker"} 1.0'
        in scraped
    )
    assert 'seawall_serving_config_reloads_total{result="success"} 1.0' in scraped
    assert "seawall_serving_config_last_reload_success 1.0" in scraped
