"""What only the flask adapter does; the shared behaviour is in test_conformance.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest


pytest.importorskip("flask")

import flask
import httpx
from httpx_sse import connect_sse

import seawall_serving
from seawall_serving import StreamCall
from seawall_serving.adapters.flask import LOOP_THREAD, STREAM_BUFFER, FlaskAdapter, _Bridge
from support import Echo, Gate, SyncEcho, running


JSON = {"Content-Type": "application/json"}


def problem_code(response: Any, status: int) -> str:
    """Assert *response* (httpx or werkzeug) is a problem+json; return its code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json() if isinstance(response, httpx.Response) else response.get_json()
    code: str = body["code"]
    return code


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    """Poll *predicate* (for state with no event to wait on) until true or *timeout*."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LOOP_THREAD]


def sse_events(client: httpx.Client, path: str, payload: Any) -> list[tuple[str, Any]]:
    with connect_sse(client, "POST", path, json=payload) as source:
        assert source.response.status_code == 200
        return [(event.event, event.json()) for event in source.iter_sse()]


# -- over werkzeug's server -----------------------------------------------------------


def test_smoke_invoke_stream_and_errors() -> None:
    config = seawall_serving.Config(default_tenant="t", max_body_size=1024)
    with (
        running("flask", config, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post("/a/invoke", json={"input": "hi"})
        assert response.status_code == 200
        assert response.json()["output"] == {"echo": "hi", "tenant": "t"}
        assert response.headers["x-request-id"] == response.json()["metadata"]["run_id"]

        with connect_sse(client, "POST", "/a/stream", json={"input": 1}) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            assert source.response.headers["cache-control"] == "no-cache"
            seen = [(e.event, e.json()) for e in source.iter_sse()]
        assert [kind for kind, _ in seen] == ["metadata", "data", "data", "data", "end"]
        assert [data for kind, data in seen if kind == "data"] == [
            {"i": i, "input": 1} for i in range(3)
        ]

        assert problem_code(client.post("/nope", json={"input": 1}), 404) == "not_found"
        too_big = client.post("/a/invoke", content=b"x" * 2048, headers=JSON)
        assert problem_code(too_big, 413) == "body_too_large"
        bad = client.post("/a/invoke", content=b"{", headers=JSON)
        assert problem_code(bad, 400) == "malformed_json"
        # Flask's routing would answer these itself (OPTIONS 200, 405 HTML); the
        # service does instead.
        assert problem_code(client.options("/a/invoke"), 405) == "method_not_allowed"
        assert problem_code(client.request("BREW", "/a/invoke"), 405) == "method_not_allowed"
        assert problem_code(client.request("BREW", "/nope"), 404) == "not_found"
        assert problem_code(client.post("/a/invoke/", json={"input": 1}), 404) == "not_found"
        assert problem_code(client.get("/"), 404) == "not_found"


def test_chunked_request_bodies_are_read() -> None:
    def chunks() -> Any:
        yield b'{"input": '
        yield b'"chunked"}'

    with (
        running("flask", agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post("/a/invoke", content=chunks(), headers=JSON)
        assert response.status_code == 200
        assert response.json()["output"]["echo"] == "chunked"


def test_sync_and_async_agents_both_work() -> None:
    with (
        running("flask", agents={"/async": Echo(), "/sync": SyncEcho()}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        headers = {"X-Tenant-ID": "acme"}
        for path in ("/async", "/sync"):
            response = client.post(f"{path}/invoke", json={"input": path}, headers=headers)
            assert response.status_code == 200
            assert response.json()["output"] == {"echo": path, "tenant": "acme"}
        async_events = sse_events(client, "/async/stream", {"input": 7})
        assert [d for k, d in async_events if k == "data"] == [
            {"i": i, "input": 7} for i in range(3)
        ]
        sync_events = sse_events(client, "/sync/stream", {"input": 7})
        # The sync generator runs in the loop's worker threads, with the tenant.
        assert [d for k, d in sync_events if k == "data"] == [
            {"i": i, "tenant": "t-default"} for i in range(3)
        ]
        assert sync_events[-1][0] == "end"


def test_client_disconnect_mid_stream_cancels_the_agent_and_frees_its_slot() -> None:
    gate = Gate()
    with running("flask", agents={"/g": gate, "/a": Echo()}) as server:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            connect_sse(client, "POST", "/g/stream", json={"input": 1}) as source,
        ):
            events = source.iter_sse()
            assert next(events).event == "metadata"
            first = next(events)
            assert (first.event, first.json()) == ("data", {"step": 0})
            assert gate.started.wait(10)
            assert server.service.in_flight == 1
        # The response is closed: werkzeug's socket reads end of stream, the agent is
        # cancelled without a write having to fail first.
        assert gate.cancelled.wait(10)
        assert gate.finished.wait(10)
        assert not gate.release.is_set()
        assert wait_until(lambda: server.service.in_flight == 0)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/a/invoke", json={"input": 1}).status_code == 200


class Rendezvous:
    """An async agent that answers once *n* calls are in flight at the same time."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.event: anyio.Event | None = None
        self.threads: set[int] = set()

    async def invoke(self, input: Any) -> Any:
        self.threads.add(threading.get_ident())
        if self.event is None:
            self.event = anyio.Event()
        self.arrived += 1
        if self.arrived == self.n:
            self.event.set()
        with anyio.fail_after(30):
            await self.event.wait()
        return input


def test_many_concurrent_invokes_from_threads_share_one_loop() -> None:
    n = 50
    agent = Rendezvous(n)
    limits = httpx.Limits(max_connections=n)
    with (
        running("flask", agents={"/r": agent}) as server,
        httpx.Client(base_url=server.url, timeout=60, limits=limits) as client,
    ):

        def call(i: int) -> httpx.Response:
            return client.post("/r/invoke", json={"input": i})

        with ThreadPoolExecutor(n) as pool:
            responses = list(pool.map(call, range(n)))
        assert [r.status_code for r in responses] == [200] * n
        assert sorted(r.json()["output"] for r in responses) == list(range(n))
        # All 50 were in flight at once, and every one ran on the adapter's loop thread.
        assert agent.arrived == n
        [loop] = loop_threads()
        assert agent.threads == {loop.ident}
        assert server.service.in_flight == 0


def test_shutdown_stops_the_loop_thread_and_leaks_no_thread() -> None:
    before = set(threading.enumerate())
    with (
        running("flask", agents={"/a": Echo(), "/s": SyncEcho()}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        assert client.post("/a/invoke", json={"input": 1}).status_code == 200
        assert client.post("/s/invoke", json={"input": 1}).status_code == 200
        assert sse_events(client, "/s/stream", {"input": 1})[-1][0] == "end"
        assert len(loop_threads()) == 1
    assert loop_threads() == []  # joined by shutdown
    leftover = set(threading.enumerate()) - before
    for thread in leftover:  # werkzeug's request threads and the loop's workers end
        thread.join(10)
    assert [t.name for t in leftover if t.is_alive()] == []
    assert server.service.draining


def test_werkzeug_rejections_are_problem_json() -> None:
    with running("flask", agents={"/a": Echo()}) as server:
        for raw in (
            b"GARBAGE\r\n\r\n",
            (
                b"POST /a/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
            ),
        ):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(raw)
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), reply[:200]
            assert b"Content-Type: application/problem+json" in head
            assert b'"code":"bad_request"' in body


# -- in your own Flask app ------------------------------------------------------------


def test_blueprint_in_a_users_flask_app() -> None:
    adapter = FlaskAdapter(seawall_serving.Config(default_tenant="t"))
    adapter.register_agent("/v1/echo", Echo())
    app = flask.Flask("users_app")

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    app.register_blueprint(adapter.blueprint, url_prefix="/agents")
    client = app.test_client()
    assert not adapter.service.ready
    assert loop_threads() == []  # started on the first request
    try:
        response = client.post("/agents/v1/echo/invoke", json={"input": 3})
        assert response.status_code == 200
        assert response.get_json()["output"] == {"echo": 3, "tenant": "t"}
        # Under another WSGI server, the first request counts as started.
        assert adapter.service.ready
        assert adapter.wait_started(0)
        assert len(loop_threads()) == 1
        assert client.get("/agents/readyz").status_code == 200
        stream = client.post("/agents/v1/echo/stream", json={"input": 4})
        assert stream.mimetype == "text/event-stream"
        assert stream.get_data(as_text=True).count("event: data") == 3
        assert problem_code(client.post("/agents/nope", json={"input": 1}), 404) == "not_found"
        assert client.get("/hello").get_data(as_text=True) == "hello"  # the app's own route
    finally:
        adapter.shutdown(5)
    assert loop_threads() == []
    assert problem_code(client.post("/agents/v1/echo/invoke", json={"input": 1}), 503) == (
        "draining"
    )


def test_closing_the_body_early_cancels_the_agent() -> None:
    # No socket to watch under the test client: only the WSGI close() tells.
    gate = Gate()
    adapter = FlaskAdapter(seawall_serving.Config(default_tenant="t"))
    adapter.register_agent("/g", gate)
    client = adapter.app.test_client()
    try:
        response = client.post("/g/stream", json={"input": 1}, buffered=False)
        assert response.status_code == 200
        received = b""
        for chunk in response.iter_encoded():
            received += chunk
            if b'"step":0' in received:
                break
        assert gate.started.wait(10)
        response.close()
        assert gate.cancelled.wait(10)
        assert gate.finished.wait(10)
        assert wait_until(lambda: adapter.service.in_flight == 0)
    finally:
        adapter.shutdown(5)


# -- the bridge between the loop and a WSGI thread -------------------------------------


class Producer:
    """Streams as fast as it is let, counting what it produced."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = False

    async def invoke(self, input: Any) -> Any:
        return None

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        try:
            for i in range(10_000):
                self.produced += 1
                yield {"i": i, "pad": "x" * 1000}
        finally:
            self.closed = True


def test_a_reader_that_does_not_read_makes_the_stream_wait() -> None:
    producer = Producer()
    service = seawall_serving.Service(seawall_serving.Config(default_tenant="t"))
    service.register_agent("/p", producer)

    async def read_body(limit: int) -> bytes:
        return b'{"input": 0}'

    async def scenario() -> None:
        call = await service.handle(
            "POST", "/p/stream", {"content-type": "application/json"}, read_body
        )
        assert isinstance(call, StreamCall)
        bridge = _Bridge(call, None)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await anyio.wait_all_tasks_blocked()
            held = producer.produced
            assert 0 < held <= STREAM_BUFFER  # nobody reads: the agent waits
            batch = await bridge.next_batch()
            assert batch is not None
            assert batch[0] == (200, batch[0][1])  # the start, then the frames
            assert len(batch) > STREAM_BUFFER // 2
            await anyio.wait_all_tasks_blocked()
            assert held < producer.produced <= held + 2 * STREAM_BUFFER  # one batch more
            await bridge.abort()  # the WSGI server closed the body
        assert producer.closed
        assert producer.produced < 10_000
        assert service.in_flight == 0

    anyio.run(scenario)
