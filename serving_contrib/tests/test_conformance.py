"""One behaviour for every HTTP adapter: the same requests, the same answers.

Each test runs against a real server of each adapter on loopback, with httpx (and
httpx-sse for streams) as the client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import seawall
from httpx_sse import connect_sse
from seawall.testing import FakeClock

import seawall_serving
from support import Echo, Failing, Gate, InvokeOnly, Server, SyncEcho, adapter_params, running


pytestmark = pytest.mark.parametrize("adapter", adapter_params())

SECRET = "password=hunter2"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert *response* is the problem+json for *code* and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert SECRET not in response.text
    return body


def events(client: httpx.Client, path: str, payload: Any, **kwargs: Any) -> list[Any]:
    with connect_sse(client, "POST", path, json=payload, **kwargs) as source:
        source.response.raise_for_status()
        return list(source.iter_sse())


def open_circuit() -> seawall.CircuitOpenError:
    """The error a real open breaker raises (30 s until it half-opens)."""
    breaker = seawall.CircuitBreaker(max_failures=1, timeout=30, name="llm", clock=FakeClock())
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(seawall.CircuitOpenError) as opened:
        breaker.call(lambda: None)
    return opened.value


# -- invoke ---------------------------------------------------------------------------


@pytest.mark.parametrize("agent", [Echo(), SyncEcho()], ids=["async", "sync"])
def test_invoke_returns_output_and_metadata(adapter: str, agent: Any) -> None:
    with (
        running(adapter, agents={"/v1/chat": agent}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        response = client.post(
            "/v1/chat/invoke", json={"input": {"q": "hi"}}, headers={"X-Tenant-ID": "acme"}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["output"] == {"echo": {"q": "hi"}, "tenant": "acme"}
        assert body["metadata"]["tenant_id"] == "acme"
        assert body["metadata"]["run_id"] == response.headers["x-request-id"]
        # Keep-alive: the same client goes on with the default tenant.
        again = client.post("/v1/chat/invoke", json={"input": None})
        assert again.json()["metadata"]["tenant_id"] == "t-default"
        assert again.json()["metadata"]["run_id"] != body["metadata"]["run_id"]


def test_invoke_accepts_json_media_types_and_any_input(adapter: str) -> None:
    with (
        running(adapter, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        for value in (None, 0, "ü", [1, {"x": []}], {"nested": {"deep": True}}):
            response = client.post(
                "/a/invoke",
                content=json.dumps({"input": value}).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            assert response.json()["output"]["echo"] == value


# -- streams --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (Echo(), [{"i": i, "input": "x"} for i in range(3)]),
        (SyncEcho(), [{"i": i, "tenant": "acme"} for i in range(3)]),
        (InvokeOnly(), [{"only": "x"}]),
    ],
    ids=["async", "sync", "invoke-only"],
)
def test_stream_frames(adapter: str, agent: Any, expected: list[Any]) -> None:
    with (
        running(adapter, agents={"/v1/chat": agent}) as server,
        httpx.Client(base_url=server.url) as client,
        connect_sse(
            client, "POST", "/v1/chat/stream", json={"input": "x"}, headers={"X-Tenant-ID": "acme"}
        ) as source,
    ):
        response = source.response
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        received = list(source.iter_sse())
    names = [e.event for e in received]
    assert names == ["metadata"] + ["data"] * len(expected) + ["end"]
    assert [int(e.id) for e in received] == list(range(len(received)))
    meta = json.loads(received[0].data)
    assert meta == {"run_id": response.headers["x-request-id"], "tenant_id": "acme"}
    assert [json.loads(e.data) for e in received[1:-1]] == expected


def test_stream_failure_after_first_event_is_one_terminal_error(adapter: str) -> None:
    with (
        running(adapter, agents={"/f": Failing()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        received = events(client, "/f/stream", {"input": "late"})
        assert [e.event for e in received] == ["metadata", "data", "error"]
        error = json.loads(received[-1].data)
        assert error == {
            "code": "internal_error",
            "message": seawall_serving.PROBLEMS["internal_error"].message,
            "retryable": False,
        }
        assert all(SECRET not in e.data for e in received)


def test_stream_failure_before_first_event_is_plain_http(adapter: str) -> None:
    agents = {"/f": Failing(), "/c": Failing(open_circuit())}
    with running(adapter, agents=agents) as server, httpx.Client(base_url=server.url) as client:
        problem(client.post("/f/stream", json={"input": "early"}), 500, "internal_error")
        response = client.post("/c/stream", json={"input": "early"})
        problem(response, 503, "circuit_open")
        assert int(response.headers["retry-after"]) >= 1


# -- errors ---------------------------------------------------------------------------


def test_agent_errors_map_to_documented_statuses(adapter: str) -> None:
    agents = {
        "/boom": Failing(),
        "/open": Failing(open_circuit()),
        "/bad": Failing(seawall_serving.InvalidInput("input.q must be a string")),
        "/slow": Failing(
            seawall.CallTimeoutError("llm timed out", primitive_name="llm", timeout=1.0)
        ),
    }
    with running(adapter, agents=agents) as server, httpx.Client(base_url=server.url) as client:
        problem(client.post("/boom/invoke", json={"input": 1}), 500, "internal_error")
        response = client.post("/open/invoke", json={"input": 1})
        problem(response, 503, "circuit_open")
        assert 1 <= int(response.headers["retry-after"]) <= 30
        body = problem(client.post("/bad/invoke", json={"input": 1}), 422, "invalid_input")
        assert body["detail"] == "input.q must be a string"
        problem(client.post("/slow/invoke", json={"input": 1}), 504, "timeout")
        # The server keeps serving after every failure.
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
        (b'{"input": 1}', "text/plain", 415, "unsupported_media_type"),
        (b'{"input": 1}', "", 415, "unsupported_media_type"),
        (b"[1, 2]", "application/json", 422, "invalid_request"),
        (b'{"inputs": 1}', "application/json", 422, "invalid_request"),
    ],
)
def test_bad_requests(
    adapter: str, content: bytes, content_type: str, status: int, code: str
) -> None:
    with (
        running(adapter, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        for path in ("/a/invoke", "/a/stream"):
            problem(client.post(path, content=content, headers=headers), status, code)
        assert client.post("/a/invoke", json={"input": "ok"}).status_code == 200


def test_body_too_large_and_the_server_keeps_serving(adapter: str) -> None:
    config = seawall_serving.Config(default_tenant="t", max_body_size=1024)
    with running(adapter, config, agents={"/a": Echo()}) as server:
        with httpx.Client(base_url=server.url) as client:
            big = {"input": "x" * 2000}
            problem(client.post("/a/invoke", json=big), 413, "body_too_large")

            def chunks() -> Any:  # no Content-Length: the limit applies while reading
                yield b'{"input": "'
                for _ in range(40):
                    yield b"y" * 100
                yield b'"}'

            problem(
                client.post(
                    "/a/invoke", content=chunks(), headers={"Content-Type": "application/json"}
                ),
                413,
                "body_too_large",
            )
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/a/invoke", json={"input": "x" * 900}).status_code == 200


def test_tenants(adapter: str) -> None:
    config = seawall_serving.Config()  # no default tenant: the header is required
    with (
        running(adapter, config, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        problem(client.post("/a/invoke", json={"input": 1}), 400, "missing_tenant")
        for bad in ("", "-leading", "x" * 65, "sp ace", "semi;colon", "ünï"):
            response = client.post(
                "/a/invoke", json={"input": 1}, headers={b"X-Tenant-ID": bad.encode()}
            )
            problem(response, 400, "invalid_tenant")
        ok = client.post("/a/invoke", json={"input": 1}, headers={"x-tenant-id": "a.b_c-9"})
        assert ok.json()["metadata"]["tenant_id"] == "a.b_c-9"
        # Probes never ask for a tenant.
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_tenant_rate_limit_is_429_with_retry_after_per_tenant(adapter: str) -> None:
    clock = FakeClock(autojump=False)  # time stands still: no token comes back
    limiter = seawall.KeyedRateLimiter(rate=0.5, burst=2, clock=clock, name="tenants")
    config = seawall_serving.Config(tenant_limiter=limiter, clock=clock)
    with (
        running(adapter, config, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        acme = {"X-Tenant-ID": "acme"}
        assert client.post("/a/invoke", json={"input": 1}, headers=acme).status_code == 200
        assert client.post("/a/stream", json={"input": 1}, headers=acme).status_code == 200
        limited = client.post("/a/invoke", json={"input": 1}, headers=acme)
        body = problem(limited, 429, "tenant_rate_limited")
        assert body["retryable"] is True
        assert limited.headers["retry-after"] == "2"
        problem(
            client.post("/a/stream", json={"input": 1}, headers=acme), 429, "tenant_rate_limited"
        )
        other = client.post("/a/invoke", json={"input": 1}, headers={"X-Tenant-ID": "globex"})
        assert other.status_code == 200
        assert client.get("/readyz").status_code == 200  # probes skip rate limits
        clock.advance(2.0)
        assert client.post("/a/invoke", json={"input": 1}, headers=acme).status_code == 200


def test_unknown_path_and_wrong_method(adapter: str) -> None:
    with (
        running(adapter, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        problem(client.post("/nope", json={"input": 1}), 404, "not_found")
        problem(client.get("/a"), 404, "not_found")
        response = client.get("/a/invoke")
        problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
        problem(client.post("/healthz"), 405, "method_not_allowed")


def test_slow_client_gets_408_and_the_server_keeps_serving(adapter: str) -> None:
    config = seawall_serving.Config(default_tenant="t", read_timeout=0.3)
    with running(adapter, config, agents={"/a": Echo()}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /a/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"input": '
            )
            reply = _read_all(sock)
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"request_timeout" in reply
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/a/invoke", json={"input": 1}).status_code == 200


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(rest) >= length[0]:
                break
    return data


# -- timeouts, pings, limits ------------------------------------------------------------


class Forever:
    """An agent that waits for an event nobody sets, so only a timeout ends it."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    async def invoke(self, input: Any) -> Any:
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise


def test_request_timeout_is_504_on_the_injected_clock(adapter: str) -> None:
    agent = Forever()
    config = seawall_serving.Config(default_tenant="t", request_timeout=30, clock=FakeClock())
    with (
        running(adapter, config, agents={"/a": agent}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        problem(client.post("/a/invoke", json={"input": 1}), 504, "timeout")
        assert agent.cancelled.is_set()
        assert server.service.in_flight == 0


def test_silent_stream_gets_pings_on_the_injected_clock(adapter: str) -> None:
    gate = Gate()
    config = seawall_serving.Config(default_tenant="t", ping_interval=15, clock=FakeClock())
    with (
        running(adapter, config, agents={"/g": gate}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("POST", "/g/stream", json={"input": 1}) as response,
    ):
        lines = response.iter_lines()
        seen: list[str] = []
        for line in lines:
            seen.append(line)
            if line == ": ping":
                break
        gate.release.set()
        seen.extend(lines)
    assert seen[0] == "event: metadata"
    assert ": ping" in seen
    assert "event: end" in seen
    assert sum(1 for line in seen if line.startswith("event: data")) == 2


def test_client_disconnect_mid_stream_cancels_the_agent(adapter: str) -> None:
    gate = Gate()
    with running(adapter, agents={"/g": gate}) as server:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            client.stream("POST", "/g/stream", json={"input": 1}) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data:") and "step" in line:
                    break
            assert gate.started.wait(10)
        assert gate.finished.wait(10)
        assert gate.cancelled.is_set()
        assert not gate.release.is_set()
        for _ in range(200):  # the server's bookkeeping follows the cancellation
            if server.service.in_flight == 0:
                break
            threading.Event().wait(0.01)
        assert server.service.in_flight == 0


def test_max_in_flight_refuses_with_503_overloaded(adapter: str) -> None:
    gate = Gate()
    config = seawall_serving.Config(default_tenant="t", max_in_flight=1)
    with running(adapter, config, agents={"/g": gate}) as server:
        result: list[httpx.Response] = []

        def hold() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                result.append(c.post("/g/invoke", json={"input": 1}))

        holder = threading.Thread(target=hold)
        holder.start()
        assert gate.started.wait(10)
        with httpx.Client(base_url=server.url) as client:
            response = client.post("/g/invoke", json={"input": 1})
            problem(response, 503, "overloaded")
            assert "retry-after" in response.headers
            assert client.get("/healthz").status_code == 200
        gate.release.set()
        holder.join(10)
        assert result[0].status_code == 200


# -- probes, handlers, logs -------------------------------------------------------------


def test_probes_and_readiness_checks(adapter: str) -> None:
    healthy = {"db": True}
    with running(adapter, agents={"/a": Echo()}) as server:
        server.service.add_readiness_check("db", lambda: healthy["db"])
        server.service.add_readiness_check("cache", _async_false, required=False)
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"db": "ok", "cache": "failing"}}
            healthy["db"] = False
            # Results are cached for Config.readiness_cache (1 s on the real clock): poll.
            for _ in range(300):
                response = client.get("/readyz")
                if response.status_code == 503:
                    break
                threading.Event().wait(0.01)
            assert response.status_code == 503
            assert response.json()["checks"]["db"] == "failing"
            assert client.head("/healthz").status_code == 200
            assert client.get("/healthz").status_code == 200  # liveness ignores checks


async def _async_false() -> bool:
    return False


def test_metrics_in_prometheus_text(adapter: str) -> None:
    with (
        running(adapter, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        client.post("/a/invoke", json={"input": 1})
        client.post("/nope", json={})
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert (
            'seawall_serving_requests_total{method="POST",route="/a/invoke",status="200"} 1.0'
            in text
        )
        assert 'route="unmatched",status="404"' in text
        assert "seawall_serving_requests_in_flight 0.0" in text


def test_registered_handlers(adapter: str) -> None:
    async def version(request: seawall_serving.Request) -> seawall_serving.Response:
        return seawall_serving.Response(200, json.dumps({"q": request.query}).encode())

    def upload(request: seawall_serving.Request) -> seawall_serving.Response:
        body = {"method": request.method, "size": len(request.body), "tenant": request.tenant_id}
        return seawall_serving.Response(201, json.dumps(body).encode(), headers=(("X-Kind", "u"),))

    def broken(request: seawall_serving.Request) -> seawall_serving.Response:
        raise RuntimeError(SECRET)

    handlers = {"/version": version, "/upload": upload, "/broken": broken}
    with running(adapter, handlers=handlers) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/version?x=1").json() == {"q": "x=1"}
        response = client.put("/upload", content=b"abc", headers={"X-Tenant-ID": "acme"})
        assert response.status_code == 201
        assert response.headers["x-kind"] == "u"
        assert response.json() == {"method": "PUT", "size": 3, "tenant": "acme"}
        problem(client.get("/broken"), 500, "internal_error")


def test_access_log_is_structured(adapter: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seawall_serving.access")
    with (
        running(adapter, agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        response = client.post("/a/invoke", json={"input": 1}, headers={"X-Tenant-ID": "acme"})
        events(client, "/a/stream", {"input": 1})
    records = [r for r in caplog.records if r.name == "seawall_serving.access"]
    fields = [r.serving for r in records]  # type: ignore[attr-defined]
    invoke = next(f for f in fields if f["path"] == "/a/invoke")
    assert invoke["status"] == 200
    assert invoke["tenant_id"] == "acme"
    assert invoke["run_id"] == response.headers["x-request-id"]
    assert invoke["duration_ms"] >= 0
    stream = next(f for f in fields if f["path"] == "/a/stream")
    assert stream["outcome"] == "completed"
    line = json.loads(seawall_serving.JsonFormatter().format(records[0]))
    assert line["logger"] == "seawall_serving.access"
    assert line["status"] == 200


# -- draining ---------------------------------------------------------------------------


@contextlib.contextmanager
def draining_mid_stream(server: Server, gate: Gate, drain: float) -> Iterator[Iterator[Any]]:
    """Open a stream on *gate*, read its first event, then shut down in a thread.

    Yields the rest of the stream's events; on exit, checks the shutdown returned.
    """
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        connect_sse(client, "POST", "/g/stream", json={"input": 1}) as source,
    ):
        received = source.iter_sse()
        assert next(received).event == "metadata"
        assert next(received).event == "data"
        assert gate.started.wait(10)
        stopper = threading.Thread(target=server.adapter.shutdown, args=(drain,))
        stopper.start()
        yield received
    stopper.join(30)
    assert not stopper.is_alive()


def test_drain_fails_readiness_refuses_new_work_and_lets_streams_finish(adapter: str) -> None:
    gate = Gate()
    with (
        running(adapter, agents={"/g": gate}, drain=30) as server,
        draining_mid_stream(server, gate, 30) as received,
    ):
        for _ in range(500):
            if server.service.draining:
                break
            threading.Event().wait(0.01)
        with httpx.Client(base_url=server.url) as other:
            ready = other.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "draining"
            problem(other.post("/g/invoke", json={"input": 1}), 503, "draining")
            assert other.get("/healthz").status_code == 200
        gate.release.set()
        assert [e.event for e in received] == ["data", "end"]


def test_drain_deadline_ends_open_streams_with_a_terminal_error(adapter: str) -> None:
    gate = Gate()
    with (
        running(adapter, agents={"/g": gate}, drain=0.2) as server,
        draining_mid_stream(server, gate, 0.2) as received,
    ):
        rest = list(received)
    assert [e.event for e in rest] == ["error"]
    assert json.loads(rest[0].data)["code"] == "shutting_down"
    assert json.loads(rest[0].data)["retryable"] is True
    assert gate.cancelled.wait(10)
