"""What only the FastAPI adapter does; the shared behaviour is in test_conformance.py."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest


pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx
import httpx_sse
import uvicorn
from fastapi import APIRouter, FastAPI

import seawall_serving
from seawall_serving.adapters.fastapi import AGENT_PROBLEM_STATUSES, FastAPIAdapter
from support import Echo, running


PROBLEM = "application/problem+json"


@contextlib.contextmanager
def serving_app(app: FastAPI) -> Iterator[str]:
    """Run a user's FastAPI *app* under uvicorn on a loopback socket bound here."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive()


def test_new_builds_the_fastapi_adapter() -> None:
    adapter = seawall_serving.new("fastapi")
    assert isinstance(adapter, FastAPIAdapter)
    assert isinstance(adapter.router, APIRouter)
    assert isinstance(adapter.app, FastAPI)


def test_openapi_documents_the_agent_routes() -> None:
    adapter = FastAPIAdapter(seawall_serving.Config(tenant_header="X-Org"))
    adapter.register_agent("/v1/chat", Echo())
    adapter.register_handler("/custom", lambda _request: seawall_serving.Response(204))
    schema = adapter.app.openapi()
    paths: dict[str, Any] = schema["paths"]
    assert {"/v1/chat/invoke", "/v1/chat/stream", "/healthz", "/readyz"} <= set(paths)
    assert "/custom" not in paths  # a handler's contract is its own
    assert "/{path}" not in paths
    for kind, media in (("invoke", "application/json"), ("stream", "text/event-stream")):
        operations = paths[f"/v1/chat/{kind}"]
        assert set(operations) == {"post"}  # the any-method fallbacks stay hidden
        operation = operations["post"]
        assert operation["summary"] == f"{kind.capitalize()} the agent at /v1/chat"
        assert operation["operationId"] == f"{kind}_v1_chat"
        body = operation["requestBody"]
        assert body["required"] is True
        body_schema = body["content"]["application/json"]["schema"]
        assert body_schema["type"] == "object"
        assert body_schema["required"] == ["input"]
        assert "type" not in body_schema["properties"]["input"]  # any JSON value
        (tenant,) = operation["parameters"]
        assert (tenant["name"], tenant["in"], tenant["required"]) == ("X-Org", "header", True)
        responses = operation["responses"]
        assert set(responses["200"]["content"]) == {media}
        for status in (400, 413, 415, 422, 429, 503, 504):
            assert status in AGENT_PROBLEM_STATUSES
            response = responses[str(status)]
            assert set(response["content"]) == {PROBLEM}, status
            problem = response["content"][PROBLEM]["schema"]
            assert {"type", "title", "status", "code", "retryable"} <= set(problem["required"])
        assert "`malformed_json`" in responses["400"]["description"]
        assert "`body_too_large`" in responses["413"]["description"]
        assert "Retry-After" in responses["429"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
    invoke_output = paths["/v1/chat/invoke"]["post"]["responses"]["200"]["content"]
    assert invoke_output["application/json"]["schema"]["required"] == ["output", "metadata"]
    assert set(paths["/readyz"]) == {"get"}
    # The router documents only the agents: the probes belong to the app.
    router_app = FastAPI()
    router_app.include_router(adapter.router)
    assert set(router_app.openapi()["paths"]) == {"/v1/chat/invoke", "/v1/chat/stream"}


def test_include_router_in_a_user_app() -> None:
    adapter = FastAPIAdapter(seawall_serving.Config(default_tenant="t"))
    echo = Echo()
    adapter.register_agent("/v1/chat", echo)
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"hello": True}

    app.include_router(adapter.router, prefix="/agents", tags=["agents"])
    assert not adapter.service.ready
    with serving_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        # The router's lifespan, merged into the user's app, started the service.
        assert adapter.wait_started(10)
        assert adapter.service.ready
        invoked = client.post(
            "/agents/v1/chat/invoke", json={"input": 1}, headers={"X-Tenant-ID": "acme"}
        )
        assert invoked.status_code == 200
        assert invoked.json()["output"] == {"echo": 1, "tenant": "acme"}
        with httpx_sse.connect_sse(
            client, "POST", "/agents/v1/chat/stream", json={"input": 2}
        ) as source:
            assert source.response.headers["content-type"] == "text/event-stream"
            events = [(event.event, event.data) for event in source.iter_sse()]
        assert [name for name, _ in events] == ["metadata", "data", "data", "data", "end"]
        assert events[1][1] == '{"i":0,"input":2}'
        wrong = client.get("/agents/v1/chat/invoke")
        assert (wrong.status_code, wrong.headers["content-type"]) == (405, PROBLEM)
        assert wrong.headers["allow"] == "POST"
        bad = client.post(
            "/agents/v1/chat/invoke", content=b"{", headers={"content-type": "application/json"}
        )
        assert (bad.status_code, bad.json()["code"]) == (400, "malformed_json")
        assert client.get("/hello").json() == {"hello": True}
        documented = client.get("/openapi.json").json()["paths"]
        assert documented["/agents/v1/chat/invoke"]["post"]["tags"] == ["agents"]
    assert echo.tenants == ["acme", "t"]
    # The user's app shut down: its lifespan drained the service.
    assert adapter.service.draining


def test_route_registered_after_the_app_was_built() -> None:
    with running("fastapi", agents={"/first": Echo()}) as server:
        adapter = server.adapter
        assert isinstance(adapter, FastAPIAdapter)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert "/late/invoke" not in client.get("/openapi.json").json()["paths"]
            adapter.register_agent("/late", Echo())
            invoked = client.post("/late/invoke", json={"input": "x"})
            assert invoked.status_code == 200
            assert invoked.json()["output"]["echo"] == "x"
            streamed = client.post("/late/stream", json={"input": "y"})
            assert streamed.text.count("event: data") == 3
            assert "/late/invoke" in client.get("/openapi.json").json()["paths"]


def test_unknown_paths_and_methods_are_the_service_problems() -> None:
    # Without the adapter, FastAPI would redirect the trailing slash and answer its own
    # {"detail": ...} 404 and 405.
    with (
        running("fastapi", agents={"/v1/chat": Echo()}) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        slash = client.post("/v1/chat/invoke/", json={"input": 1})
        assert (slash.status_code, slash.headers["content-type"]) == (404, PROBLEM)
        assert slash.json()["code"] == "not_found"
        probe = client.post("/healthz")
        assert (probe.status_code, probe.json()["code"]) == (405, "method_not_allowed")
        assert probe.headers["allow"] == "GET, HEAD"
        odd = client.request("PROPFIND", "/v1/chat/stream")
        assert (odd.status_code, odd.headers["content-type"]) == (405, PROBLEM)
        assert client.get("/docs").status_code == 200
