"""What only the aiohttp adapter does; the shared behaviour is in test_conformance.py."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest


pytest.importorskip("aiohttp")

import httpx
import httpx_sse
from aiohttp import web

import seawall_serving
from seawall_serving.adapters.aiohttp import AiohttpAdapter
from support import Echo, Gate, running


class AccessRecords(logging.Handler):
    """Collects the access log; `wait_for` blocks until a record for a path arrives."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record.__dict__["serving"])
            self.changed.notify_all()

    def wait_for(self, path: str, timeout: float = 10) -> dict[str, Any]:
        with self.changed:
            self.changed.wait_for(lambda: any(r["path"] == path for r in self.records), timeout)
            matches = [r for r in self.records if r["path"] == path]
        assert matches, f"no access record for {path}"
        return matches[-1]


@pytest.fixture
def access() -> Iterator[AccessRecords]:
    logger = logging.getLogger("seawall_serving.access")
    handler = AccessRecords()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_new_builds_the_aiohttp_adapter() -> None:
    adapter = seawall_serving.new("aiohttp")
    assert isinstance(adapter, AiohttpAdapter)
    assert isinstance(adapter.app, web.Application)


def test_client_disconnect_cancels_the_streaming_agent(access: AccessRecords) -> None:
    gate = Gate()
    with running("aiohttp", agents={"/gate": gate}) as server:
        with (
            httpx.Client(base_url=server.url, timeout=10) as client,
            httpx_sse.connect_sse(client, "POST", "/gate/stream", json={"input": 1}) as source,
        ):
            events = source.iter_sse()
            assert next(events).event == "metadata"
            first = next(events)
            assert (first.event, first.json()) == ("data", {"step": 0})
            # Leaving the with-block closes the response and its connection.
        assert gate.cancelled.wait(10), "the agent was not cancelled"
        assert gate.finished.is_set()
        assert not gate.release.is_set()
        assert server.service._idle.wait(10)
        assert server.service.in_flight == 0
        # The service ended the stream its own way: recorded as a disconnect.
        record = access.wait_for("/gate/stream")
        assert record["outcome"] == "disconnected"
        assert record["status"] == 200


def test_client_disconnect_during_invoke_lets_the_agent_finish(access: AccessRecords) -> None:
    # As under uvicorn: an invoke is not cancelled by a disconnect; its answer is dropped.
    gate = Gate()
    with running("aiohttp", agents={"/gate": gate}) as server:
        body = b'{"input": 1}'
        head = (
            f"POST /gate/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + body)
            assert gate.started.wait(10)
        gate.release.set()
        assert gate.finished.wait(10)
        assert server.service._idle.wait(10)
        assert not gate.cancelled.is_set()
        assert server.service.in_flight == 0
        record = access.wait_for("/gate/invoke")
        assert record["status"] == 200


def test_body_above_aiohttp_default_limit_reaches_the_service() -> None:
    # aiohttp refuses bodies over 1 MiB by default; the adapter lets Config decide.
    config = seawall_serving.Config(default_tenant="t", max_body_size=4 << 20)
    text = "x" * (2 << 20)
    with (
        running("aiohttp", config, agents={"/echo": Echo()}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post("/echo/invoke", json={"input": text})
        assert response.status_code == 200
        assert response.json()["output"]["echo"] == text
        too_big = client.post("/echo/invoke", json={"input": "x" * (4 << 20)})
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert too_big.json()["code"] == "body_too_large"


def test_routes_registered_before_and_after_the_app_started() -> None:
    adapter = AiohttpAdapter(seawall_serving.Config(default_tenant="t"))
    adapter.register_agent("/early", Echo())
    app = adapter.app
    adapter.register_agent("/built", Echo())  # app built, not frozen yet: a real route
    paths = {resource.canonical for resource in app.router.resources()}
    assert {"/early/invoke", "/built/stream", "/healthz", "/readyz"} <= paths
    thread = threading.Thread(target=adapter.serve, args=("127.0.0.1:0",), daemon=True)
    thread.start()
    try:
        assert adapter.wait_started(10)
        assert app.frozen
        adapter.register_agent("/late", Echo())  # frozen: served through the catch-all
        assert adapter.address is not None
        url = f"http://127.0.0.1:{adapter.address[1]}"
        with httpx.Client(base_url=url, timeout=10) as client:
            for path in ("/early", "/built", "/late"):
                response = client.post(f"{path}/invoke", json={"input": path})
                assert response.status_code == 200, path
                assert response.json()["output"]["echo"] == path
            assert client.get("/readyz").status_code == 200
    finally:
        adapter.shutdown(5)
        thread.join(10)
    assert not thread.is_alive()
    assert adapter.service.draining


def test_app_as_a_subapp_of_a_user_app() -> None:
    adapter = AiohttpAdapter(seawall_serving.Config(default_tenant="t"))
    adapter.register_agent("/v1/chat", Echo())

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"hello": True})

    async def scenario() -> None:
        main = web.Application()
        main.router.add_get("/hello", hello)
        main.add_subapp("/agents", adapter.app)
        runner = web.AppRunner(main, handler_cancellation=True)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            # The startup signal of the parent app reached ours.
            assert adapter.service.ready
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                invoked = await client.post("/agents/v1/chat/invoke", json={"input": 7})
                assert invoked.status_code == 200
                assert invoked.json()["output"]["echo"] == 7
                streamed = await client.post("/agents/v1/chat/stream", json={"input": 8})
                assert streamed.headers["content-type"] == "text/event-stream"
                assert streamed.text.count("event: data") == 3
                wrong = await client.get("/agents/v1/chat/invoke")
                assert wrong.status_code == 405
                assert wrong.json()["code"] == "method_not_allowed"
                assert (await client.get("/agents/readyz")).status_code == 200
                assert (await client.get("/hello")).json() == {"hello": True}
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    # The parent app's shutdown signal drained the service.
    assert adapter.service.draining


def test_shutdown_before_serve_only_drains() -> None:
    adapter = AiohttpAdapter()
    adapter.shutdown(1)
    assert adapter.service.draining
    assert adapter.address is None
