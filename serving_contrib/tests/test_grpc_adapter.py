"""The gRPC adapter, through grpcio's own client: the HTTP behaviour, in gRPC terms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import seawall
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2
from seawall.testing import FakeClock

import seawall_serving
from cli_agents import serve_cli
from seawall_serving.adapters.grpc import GrpcAdapter
from support import Echo, Failing, Gate, InvokeOnly, SyncEcho, running


SECRET = "password=hunter2"
INVOKE = "/seawall.serving.v1.AgentService/Invoke"
STREAM = "/seawall.serving.v1.AgentService/Stream"
HEALTH = "/grpc.health.v1.Health/Check"
SERVICE = "seawall.serving.v1.AgentService"
Struct = struct_pb2.Struct


def message(document: dict[str, Any]) -> Any:
    struct = Struct()
    struct.update(document)
    return struct


def plain(value: Any) -> Any:
    """A Struct, ListValue or scalar as plain Python (numbers stay floats)."""
    if isinstance(value, struct_pb2.Struct):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [plain(item) for item in value]
    return value


class Client:
    """The three calls of the agent service and the health check, on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.invoke = channel.unary_unary(
            INVOKE,
            request_serializer=Struct.SerializeToString,
            response_deserializer=Struct.FromString,
        )
        self.stream = channel.unary_stream(
            STREAM,
            request_serializer=Struct.SerializeToString,
            response_deserializer=Struct.FromString,
        )
        self.check = channel.unary_unary(
            HEALTH,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    def call(self, agent: str, input: Any, tenant: str | None = None) -> tuple[Any, dict[str, Any]]:
        response, call = self.invoke.with_call(
            message({"agent": agent, "input": input}), metadata=metadata(tenant), timeout=10
        )
        return plain(response), dict(call.trailing_metadata())

    def events(self, agent: str, input: Any, tenant: str | None = None) -> list[dict[str, Any]]:
        call = self.stream(
            message({"agent": agent, "input": input}), metadata=metadata(tenant), timeout=10
        )
        return [plain(item) for item in call]

    def health(self, service: str = "") -> Any:
        return self.check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def metadata(tenant: str | None) -> tuple[tuple[str, str], ...]:
    return () if tenant is None else (("x-tenant-id", tenant),)


@contextlib.contextmanager
def client(server: Any) -> Iterator[Client]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Client(channel)


def failed(error: grpc.RpcError, status: grpc.StatusCode, code: str | None) -> dict[str, Any]:
    """Assert *error* has *status* and ``seawall-code`` *code*; return its trailers."""
    assert isinstance(error, grpc.Call)
    assert error.code() == status, (error.code(), error.details())
    trailers = dict(error.trailing_metadata() or ())
    assert trailers.get("seawall-code") == code
    if code is not None:
        assert error.details() == seawall_serving.PROBLEMS[code].message
    assert SECRET not in (error.details() or "")
    assert all(SECRET not in str(value) for value in trailers.values())
    return trailers


def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (up to 10 s) for *predicate*: for another thread, not for a duration."""
    pause = threading.Event()
    for _ in range(1000):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError("condition never became true")


def open_circuit() -> seawall.CircuitOpenError:
    """The error a real open breaker raises (30 s until it half-opens)."""
    breaker = seawall.CircuitBreaker(max_failures=1, timeout=30, name="llm", clock=FakeClock())
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(seawall.CircuitOpenError) as opened:
        breaker.call(lambda: None)
    return opened.value


class Types:
    """Returns the Python type of each value of its input."""

    async def invoke(self, input: Any) -> Any:
        return {key: type(value).__name__ for key, value in input.items()}


class Raising:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def invoke(self, input: Any) -> Any:
        raise self.exc


# -- invoke ---------------------------------------------------------------------------


def test_new_makes_a_grpc_adapter() -> None:
    adapter = seawall_serving.new("grpc")
    assert isinstance(adapter, GrpcAdapter)
    adapter.shutdown()  # before serving: returns at once
    adapter.serve("127.0.0.1:0")  # after a shutdown: returns at once


def test_a_port_in_use_is_an_error() -> None:
    with running("grpc") as server:
        adapter = GrpcAdapter()
        with pytest.raises(RuntimeError, match="bind"):
            adapter.serve(f"127.0.0.1:{server.port}")
        assert adapter.address is None
        adapter.shutdown()  # returns: it never started


def test_invoke_async_agent_with_tenant() -> None:
    echo = Echo()
    with running("grpc", agents={"/v1/chat": echo}) as server, client(server) as c:
        response, trailers = c.call("/v1/chat", {"q": "hi", "n": [1, 2.5, None, True]}, "acme")
    assert response["output"] == {
        "echo": {"q": "hi", "n": [1.0, 2.5, None, True]},
        "tenant": "acme",
    }
    run_id = response["metadata"]["run_id"]
    assert response["metadata"] == {"run_id": run_id, "tenant_id": "acme"}
    assert trailers["x-request-id"] == run_id
    assert echo.tenants == ["acme"]


def test_invoke_sync_agent_and_default_tenant() -> None:
    with running("grpc", agents={"/sync": SyncEcho()}) as server, client(server) as c:
        response, _ = c.call("/sync", "x")
    assert response["output"] == {"echo": "x", "tenant": "t-default"}
    assert response["metadata"]["tenant_id"] == "t-default"


def test_whole_numbers_reach_the_agent_as_ints() -> None:
    with running("grpc", agents={"/types": Types()}) as server, client(server) as c:
        response, _ = c.call("/types", {"n": 3, "x": 2.5, "big": 2.0**60, "s": "3", "b": True})
    assert response["output"] == {"n": "int", "x": "float", "big": "float", "s": "str", "b": "bool"}


def test_invoke_with_the_aio_client() -> None:
    async def main(port: int) -> Any:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            invoke = channel.unary_unary(
                INVOKE,
                request_serializer=Struct.SerializeToString,
                response_deserializer=Struct.FromString,
            )
            return plain(await invoke(message({"agent": "/e", "input": 1}), timeout=10))

    with running("grpc", agents={"/e": InvokeOnly()}) as server:
        response = asyncio.run(main(server.port))
    assert response["output"] == {"only": 1.0}


# -- stream ---------------------------------------------------------------------------


@pytest.mark.parametrize("agent", [Echo, SyncEcho, InvokeOnly])
def test_stream_events_ids_and_order(agent: type) -> None:
    with running("grpc", agents={"/a": agent()}) as server, client(server) as c:
        events = c.events("/a", "in", "acme")
    names = [event["event"] for event in events]
    assert [event["id"] for event in events] == list(range(len(events)))
    expected_data = 1 if agent is InvokeOnly else 3
    assert names == ["metadata"] + ["data"] * expected_data + ["end"]
    assert events[0]["data"]["tenant_id"] == "acme"
    assert len(events[0]["data"]["run_id"]) == 32
    assert events[-1]["data"] == {}
    if agent is Echo:
        assert [event["data"] for event in events[1:-1]] == [
            {"i": float(i), "input": "in"} for i in range(3)
        ]
    if agent is SyncEcho:
        assert [event["data"]["tenant"] for event in events[1:-1]] == ["acme"] * 3


def test_stream_failure_after_first_event_sends_error_then_status() -> None:
    with running("grpc", agents={"/f": Failing()}) as server, client(server) as c:
        call = c.stream(message({"agent": "/f", "input": "late"}), timeout=10)
        received: list[Any] = []
        with pytest.raises(grpc.RpcError) as raised:
            received.extend(plain(item) for item in call)
    assert [event["event"] for event in received] == ["metadata", "data", "error"]
    assert [event["id"] for event in received] == [0, 1, 2]
    assert received[2]["data"] == {
        "code": "internal_error",
        "message": "The agent failed.",
        "retryable": False,
    }
    trailers = failed(raised.value, grpc.StatusCode.INTERNAL, "internal_error")
    assert trailers["x-request-id"] == received[0]["data"]["run_id"]


def test_stream_failure_before_first_event_is_a_plain_status() -> None:
    with running("grpc", agents={"/f": Failing()}) as server, client(server) as c:
        call = c.stream(message({"agent": "/f", "input": "early"}), timeout=10)
        received: list[Any] = []
        with pytest.raises(grpc.RpcError) as raised:
            received.extend(call)
    assert received == []
    failed(raised.value, grpc.StatusCode.INTERNAL, "internal_error")


# -- errors ---------------------------------------------------------------------------


def test_unknown_agent_is_not_found() -> None:
    with running("grpc", agents={"/a": Echo()}) as server, client(server) as c:
        with pytest.raises(grpc.RpcError) as invoked:
            c.call("/nope", 1)
        with pytest.raises(grpc.RpcError) as streamed:
            c.events("/nope", 1)
    failed(invoked.value, grpc.StatusCode.NOT_FOUND, "not_found")
    failed(streamed.value, grpc.StatusCode.NOT_FOUND, "not_found")


def test_bad_requests_are_invalid_argument() -> None:
    with running("grpc", agents={"/a": Echo()}) as server, client(server) as c:
        with pytest.raises(grpc.RpcError) as no_agent:
            c.invoke(message({"input": 1}), timeout=10)
        with pytest.raises(grpc.RpcError) as no_input:
            c.invoke(message({"agent": "/a"}), timeout=10)
        with pytest.raises(grpc.RpcError) as bad_tenant:
            c.call("/a", 1, "no spaces allowed")
    trailers = failed(no_agent.value, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")
    assert b'"agent"' in trailers["seawall-detail-bin"]
    failed(no_input.value, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")
    failed(bad_tenant.value, grpc.StatusCode.INVALID_ARGUMENT, "invalid_tenant")


def test_missing_tenant_is_invalid_argument() -> None:
    config = seawall_serving.Config()  # no default tenant: the metadata is required
    with running("grpc", config, agents={"/a": Echo()}) as server, client(server) as c:
        with pytest.raises(grpc.RpcError) as invoked:
            c.call("/a", 1)
        with pytest.raises(grpc.RpcError) as streamed:
            c.events("/a", 1)
        response, _ = c.call("/a", 1, "acme")
    trailers = failed(invoked.value, grpc.StatusCode.INVALID_ARGUMENT, "missing_tenant")
    assert "retry-after" not in trailers
    assert "x-request-id" in trailers
    failed(streamed.value, grpc.StatusCode.INVALID_ARGUMENT, "missing_tenant")
    assert response["metadata"]["tenant_id"] == "acme"


def test_tenant_header_name_follows_config() -> None:
    config = seawall_serving.Config(tenant_header="X-Org")
    with running("grpc", config, agents={"/a": Echo()}) as server, client(server) as c:
        response, call = c.invoke.with_call(
            message({"agent": "/a", "input": 1}), metadata=(("x-org", "org-1"),), timeout=10
        )
    assert plain(response)["metadata"]["tenant_id"] == "org-1"
    assert call.code() == grpc.StatusCode.OK


def test_tenant_rate_limit_is_resource_exhausted_with_retry_after() -> None:
    limiter = seawall.KeyedRateLimiter(rate=0.5, burst=1, clock=FakeClock())
    config = seawall_serving.Config(default_tenant="t", tenant_limiter=limiter)
    with running("grpc", config, agents={"/a": Echo()}) as server, client(server) as c:
        c.call("/a", 1, "acme")
        with pytest.raises(grpc.RpcError) as invoked:
            c.call("/a", 1, "acme")
        with pytest.raises(grpc.RpcError) as streamed:
            c.events("/a", 1, "acme")
        c.call("/a", 1, "other")  # its own bucket
    trailers = failed(invoked.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "tenant_rate_limited")
    assert trailers["retry-after"] == "2"
    trailers = failed(streamed.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "tenant_rate_limited")
    assert trailers["retry-after"] == "2"


def test_agent_failure_is_internal_without_the_exception_text() -> None:
    with (
        running("grpc", agents={"/f": Failing()}) as server,
        client(server) as c,
        pytest.raises(grpc.RpcError) as raised,
    ):
        c.call("/f", 1)
    trailers = failed(raised.value, grpc.StatusCode.INTERNAL, "internal_error")
    assert "retry-after" not in trailers
    assert SECRET not in repr(raised.value)


def test_open_circuit_is_unavailable_with_retry_after() -> None:
    agents = {"/c": Failing(open_circuit())}
    with running("grpc", agents=agents) as server, client(server) as c:
        with pytest.raises(grpc.RpcError) as invoked:
            c.call("/c", 1)
        with pytest.raises(grpc.RpcError) as streamed:
            c.events("/c", "early")
    assert failed(invoked.value, grpc.StatusCode.UNAVAILABLE, "circuit_open")["retry-after"] == "30"
    assert (
        failed(streamed.value, grpc.StatusCode.UNAVAILABLE, "circuit_open")["retry-after"] == "30"
    )


def test_invalid_input_sends_the_agents_detail() -> None:
    agents = {"/v": Raising(seawall_serving.InvalidInput("'q' must be a question, ¿vale?"))}
    with (
        running("grpc", agents=agents) as server,
        client(server) as c,
        pytest.raises(grpc.RpcError) as raised,
    ):
        c.call("/v", 1)
    trailers = failed(raised.value, grpc.StatusCode.INVALID_ARGUMENT, "invalid_input")
    assert trailers["seawall-detail-bin"].decode() == "'q' must be a question, ¿vale?"


def test_agent_timeout_is_deadline_exceeded() -> None:
    agents = {"/t": Raising(TimeoutError("upstream took too long"))}
    with (
        running("grpc", agents=agents) as server,
        client(server) as c,
        pytest.raises(grpc.RpcError) as raised,
    ):
        c.call("/t", 1)
    failed(raised.value, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout")


def test_body_too_large() -> None:
    config = seawall_serving.Config(default_tenant="t", max_body_size=1000)
    with running("grpc", config, agents={"/a": Echo()}) as server, client(server) as c:
        c.call("/a", "x" * 900)
        with pytest.raises(grpc.RpcError) as by_service:
            c.call("/a", "x" * 1500)
        with pytest.raises(grpc.RpcError) as by_grpc:
            c.call("/a", "x" * 100_000)
    failed(by_service.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "body_too_large")
    failed(by_grpc.value, grpc.StatusCode.RESOURCE_EXHAUSTED, None)  # gRPC's own limit


def test_in_flight_limit_is_unavailable() -> None:
    gate = Gate()
    config = seawall_serving.Config(default_tenant="t", max_in_flight=1)
    with running("grpc", config, agents={"/g": gate}) as server, client(server) as c:
        call = c.stream(message({"agent": "/g", "input": 1}), timeout=10)
        assert next(call)["event"] == "metadata"
        with pytest.raises(grpc.RpcError) as raised:
            c.call("/g", 1)
        gate.release.set()
        assert [plain(item)["event"] for item in call] == ["data", "data", "end"]
    assert failed(raised.value, grpc.StatusCode.UNAVAILABLE, "overloaded")["retry-after"] == "1"


def test_unknown_method_is_unimplemented() -> None:
    with (
        running("grpc") as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        channel.unary_unary("/no.Such/Method")(b"", timeout=10)
    assert isinstance(raised.value, grpc.Call)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- cancellation ---------------------------------------------------------------------


def test_cancelling_a_stream_cancels_the_agent_and_frees_its_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="seawall_serving.access")
    gate = Gate()
    with running("grpc", agents={"/g": gate}) as server, client(server) as c:
        call = c.stream(message({"agent": "/g", "input": 1}), timeout=30)
        assert plain(next(call))["event"] == "metadata"
        assert plain(next(call))["data"] == {"step": 0.0}
        assert gate.started.wait(10)
        assert server.service.in_flight == 1
        call.cancel()
        assert gate.cancelled.wait(10)
        assert gate.finished.wait(10)
        assert server.service._idle.wait(10)
        assert server.service.in_flight == 0
        assert not gate.release.is_set()

        def logged() -> list[dict[str, Any]]:
            return [
                record.serving  # type: ignore[attr-defined]
                for record in caplog.records
                if record.name == "seawall_serving.access"
            ]

        eventually(lambda: any(fields["path"] == "/g/stream" for fields in logged()))
    [fields] = [fields for fields in logged() if fields["path"] == "/g/stream"]
    assert fields["outcome"] == "disconnected"


def test_cancelling_an_invoke_cancels_the_agent_and_frees_its_slot() -> None:
    gate = Gate()
    with running("grpc", agents={"/g": gate}) as server, client(server) as c:
        future = c.invoke.future(message({"agent": "/g", "input": 1}), timeout=30)
        assert gate.started.wait(10)
        assert server.service.in_flight == 1
        future.cancel()
        assert gate.cancelled.wait(10)
        assert server.service._idle.wait(10)
        assert server.service.in_flight == 0


# -- health and draining --------------------------------------------------------------


def test_health_serving_then_not_serving_while_draining() -> None:
    gate = Gate()
    with running("grpc", agents={"/g": gate}) as server, client(server) as c:
        assert c.health() == health_pb2.HealthCheckResponse.SERVING
        assert c.health(SERVICE) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            c.health("no.such.Service")
        assert isinstance(unknown.value, grpc.Call)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        call = c.stream(message({"agent": "/g", "input": 1}), timeout=30)
        assert plain(next(call))["event"] == "metadata"
        assert gate.started.wait(10)
        stopper = threading.Thread(target=server.adapter.shutdown, args=(30,))
        stopper.start()
        eventually(lambda: server.service.draining)

        assert c.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        assert c.health(SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as refused:
            c.call("/g", 1)
        assert failed(refused.value, grpc.StatusCode.UNAVAILABLE, "draining")["retry-after"] == "1"

        gate.release.set()  # the stream in flight finishes normally
        rest = [plain(item) for item in call]
        assert [event["event"] for event in rest] == ["data", "data", "end"]
        assert call.code() == grpc.StatusCode.OK
        stopper.join(30)
        assert not stopper.is_alive()
        assert server.adapter.address is not None


def test_health_watch_sees_not_serving_and_ends_at_shutdown() -> None:
    with running("grpc") as server, client(server) as c:
        watch = c.channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        updates = watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)
        assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
        stopper = threading.Thread(target=server.adapter.shutdown, args=(5,))
        stopper.start()
        assert next(updates).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stopper.join(30)
        assert not stopper.is_alive()
        with pytest.raises(grpc.RpcError):  # the server went away under it
            next(updates)


def test_failing_readiness_check_is_not_serving() -> None:
    healthy = threading.Event()
    with running("grpc") as server, client(server) as c:
        server.service.add_readiness_check("db", healthy.is_set)
        assert c.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        assert c.health(SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING


def test_drain_deadline_ends_a_stream_with_an_error_event() -> None:
    gate = Gate()
    with running("grpc", agents={"/g": gate}) as server, client(server) as c:
        call = c.stream(message({"agent": "/g", "input": 1}), timeout=30)
        assert plain(next(call))["event"] == "metadata"
        assert gate.started.wait(10)
        stopper = threading.Thread(target=server.adapter.shutdown, args=(0.01,))
        stopper.start()
        received: list[Any] = []
        with pytest.raises(grpc.RpcError) as raised:
            received.extend(plain(item) for item in call)
        stopper.join(30)
    assert gate.cancelled.is_set()
    assert [event["event"] for event in received] == ["data", "error"]
    assert received[-1]["data"]["code"] == "shutting_down"
    assert received[-1]["id"] == 2
    failed(raised.value, grpc.StatusCode.UNAVAILABLE, "shutting_down")


# -- raw handlers ---------------------------------------------------------------------


def test_register_handler_serves_raw_bytes() -> None:
    seen: list[seawall_serving.Request] = []

    async def upper(request: seawall_serving.Request) -> seawall_serving.Response:
        seen.append(request)
        return seawall_serving.Response(200, request.body.upper(), "application/octet-stream")

    def teapot(request: seawall_serving.Request) -> seawall_serving.Response:
        return seawall_serving.Response(404, b"no such thing", "text/plain")

    handlers = {"/my.pkg.Svc/Upper": upper, "/my.pkg.Svc/Missing": teapot}
    with (
        running("grpc", handlers=handlers) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        response, call = channel.unary_unary("/my.pkg.Svc/Upper").with_call(
            b"hello", metadata=(("x-tenant-id", "acme"), ("x-extra", "1")), timeout=10
        )
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary("/my.pkg.Svc/Missing")(b"", timeout=10)
        with pytest.raises(grpc.RpcError) as agent_path:  # a handler is not an agent
            Client(channel).call("/my.pkg.Svc", 1)
    assert response == b"HELLO"
    assert seen[0].tenant_id == "acme"
    assert seen[0].path == "/my.pkg.Svc/Upper"
    assert seen[0].headers["x-extra"] == "1"
    assert dict(call.trailing_metadata())["x-request-id"] == seen[0].run_id
    assert isinstance(raised.value, grpc.Call)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "Not Found"
    failed(agent_path.value, grpc.StatusCode.NOT_FOUND, "not_found")


def test_register_handler_rejects_paths_that_are_not_grpc_methods() -> None:
    adapter = GrpcAdapter()

    def handler(request: seawall_serving.Request) -> seawall_serving.Response:
        return seawall_serving.Response(200)

    for path in (
        "/v1/chat/hook",
        "my.pkg.Svc/M",
        "/Svc/",
        f"/{SERVICE}/Extra",
        "/grpc.health.v1.Health/X",
    ):
        with pytest.raises(ValueError, match="path"):
            adapter.register_handler(path, handler)
    adapter.register_handler("/ok.Svc/M", handler)
    with pytest.raises(ValueError, match="already registered"):
        adapter.register_handler("/ok.Svc/M", handler)


# -- the CLI and SIGTERM --------------------------------------------------------------


def test_cli_serves_grpc_and_drains_on_sigterm(tmp_path: Path) -> None:
    with serve_cli(
        "cli_agents:echo", tmp_path / "server.log", "--default-tenant", "t-default", adapter="grpc"
    ) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            c = Client(channel)
            assert c.health() == health_pb2.HealthCheckResponse.SERVING
            response, _ = c.call("/v1/agent", {"q": 1}, "acme")
            assert response["output"] == {"echo": {"q": 1.0}, "tenant": "acme"}
            events = c.events("/v1/agent", "s")
            assert [event["event"] for event in events] == [
                "metadata",
                "data",
                "data",
                "data",
                "end",
            ]
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        log = server.log_text()
    assert "Traceback" not in log
    assert '"stopped"' in log


def test_the_callers_trace_context_reaches_the_server_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    with running("grpc", agents={"/v1/chat": Echo()}) as server, client(server) as c:
        server.service.set_tracer_provider(provider)
        c.invoke.with_call(
            message({"agent": "/v1/chat", "input": 1}),
            metadata=(("x-tenant-id", "acme"), ("traceparent", parent)),
            timeout=10,
        )
    provider.shutdown()
    [span] = [s for s in exporter.get_finished_spans() if s.name == "POST /v1/chat/invoke"]
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
