"""Many concurrent clients against each adapter; afterwards nothing is left behind."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
import seawall
from seawall.testing import FakeClock

import seawall_serving
from support import Echo, adapter_params, running


class Hang:
    """Streams one event, then waits forever; counts the cancellations it sees."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = 0

    async def invoke(self, input: Any) -> Any:
        return input

    async def stream(self, input: Any) -> Any:
        yield {"first": input}
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            with self.lock:
                self.cancelled += 1
            raise


@pytest.mark.parametrize("adapter", adapter_params())
def test_mixed_load_leaves_nothing_in_flight(adapter: str) -> None:
    hang = Hang()
    # Time stands still (no autojump, so the streams' ping timers cannot move it):
    # buckets never refill, and exactly `burst` requests pass per tenant.
    clock = FakeClock(autojump=False)
    limiter = seawall.KeyedRateLimiter(rate=1, burst=8, clock=clock)
    config = seawall_serving.Config(tenant_limiter=limiter, clock=clock, ping_interval=3600)
    tenants = [f"t{i}" for i in range(4)]
    outcomes: Counter[str] = Counter()
    disconnects = 0

    async def invoke(client: httpx.AsyncClient, i: int) -> None:
        tenant = tenants[i // 4 % len(tenants)]
        response = await client.post(
            "/e/invoke", json={"input": i}, headers={"X-Tenant-ID": tenant}
        )
        if response.status_code == 200:
            assert response.json()["output"] == {"echo": i, "tenant": tenant}
        outcomes[f"invoke {response.status_code}"] += 1

    async def stream(client: httpx.AsyncClient, i: int) -> None:
        headers = {"X-Tenant-ID": tenants[i // 4 % len(tenants)]}
        async with client.stream("POST", "/e/stream", json={"input": i}, headers=headers) as r:
            body = (await r.aread()).decode()
        if r.status_code == 200:
            events = [line for line in body.split("\n") if line.startswith("event:")]
            assert events == ["event: metadata"] + ["event: data"] * 3 + ["event: end"]
        outcomes[f"stream {r.status_code}"] += 1

    async def abandon(client: httpx.AsyncClient, i: int) -> None:
        nonlocal disconnects
        headers = {"X-Tenant-ID": f"h{i}"}  # a tenant each: none is rate limited
        async with client.stream("POST", "/h/stream", json={"input": i}, headers=headers) as r:
            async for line in r.aiter_lines():
                if line.startswith("data:") and "first" in line:
                    disconnects += 1
                    break
        outcomes[f"abandon {r.status_code}"] += 1

    async def bad(client: httpx.AsyncClient, i: int) -> None:
        response = await client.post(
            "/e/invoke",
            content=b"{",
            headers={"Content-Type": "application/json", "X-Tenant-ID": "b"},
        )
        assert response.json()["code"] == "malformed_json"
        outcomes[f"bad {response.status_code}"] += 1

    kinds = [invoke, stream, abandon, bad]

    async def main(url: str) -> None:
        limits = httpx.Limits(max_connections=24)
        async with (
            httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client,
            anyio.create_task_group() as tg,
        ):
            for i in range(96):
                tg.start_soon(kinds[i % len(kinds)], client, i)

    with running(adapter, config, agents={"/e": Echo(), "/h": hang}) as server:
        anyio.run(main, server.url)
        for _ in range(500):
            if server.service.in_flight == 0 and hang.cancelled == disconnects:
                break
            threading.Event().wait(0.01)
        assert server.service.in_flight == 0
        assert hang.cancelled == disconnects == 24
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "seawall_serving_requests_in_flight 0.0" in metrics
        assert "seawall_serving_sse_streams_open 0.0" in metrics
        assert not server.service._active

    # Four tenants with 8 tokens each; each gets 6 invokes and 6 streams.
    assert outcomes["invoke 200"] + outcomes["stream 200"] == 32
    assert outcomes["invoke 429"] + outcomes["stream 429"] == 16
    assert outcomes["abandon 200"] == 24
    assert outcomes["bad 400"] == 24
    assert sum(outcomes.values()) == 96
    assert set(outcomes) <= {
        "invoke 200",
        "invoke 429",
        "stream 200",
        "stream 429",
        "abandon 200",
        "bad 400",
    }
