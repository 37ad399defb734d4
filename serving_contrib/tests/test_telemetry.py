"""OpenTelemetry: server spans on real servers, their context, and OTLP export from OTEL_*.

The spans go to the real SDK with an in-memory exporter; the parent is a real
``traceparent`` sent by httpx; the export goes over HTTP to a local OTLP receiver.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
import seawall
from httpx_sse import connect_sse
from seawall.testing import FakeClock
from typing_extensions import Self

import seawall_serving
from support import Echo, Failing, Gate, Server, adapter_params, running


pytest.importorskip("opentelemetry.sdk")

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from seawall.otel import OpenTelemetryHook


TRACED = ["stdlib", "asgi"]  # every adapter for the span context, these two for the rest
SECRET = "sk-live-SECRET-4f1c9a"
SRC = Path(__file__).resolve().parents[1] / "src"


def telemetry_module() -> ModuleType:
    # Imported where used, not at the top: importing it makes ``telemetry`` an
    # attribute of the package, which test_public_api's snapshot does not list yet.
    return importlib.import_module("seawall_serving.telemetry")


class Spans:
    """An SDK tracer provider whose spans end up in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished() if s.name == name]
        assert len(found) == 1, [s.name for s in self.finished()]
        return found[0]

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.kind is SpanKind.SERVER]

    def wait_for(self, name: str, timeout: float = 10) -> ReadableSpan:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.finished() if s.name == name]
            if found:
                return found[0]
            time.sleep(0.01)  # real-clock-ok: waits for another thread to end a span
        raise AssertionError(f"no span {name!r} in {[s.name for s in self.finished()]}")


@pytest.fixture
def spans() -> Iterator[Spans]:
    made = Spans()
    yield made
    made.provider.shutdown()


@contextlib.contextmanager
def traced(
    adapter: str, spans: Spans, *, agents: dict[str, Any], **kwargs: Any
) -> Iterator[Server]:
    with running(adapter, agents=agents, **kwargs) as server:
        server.service.set_tracer_provider(spans.provider)
        yield server


def parent_headers(spans: Spans) -> tuple[dict[str, str], trace.Span]:
    """A client span, and the W3C headers that make it the parent of a request."""
    parent = spans.provider.get_tracer("test client").start_span("client call")
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(parent))
    assert "traceparent" in headers
    return headers, parent


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


class Traced:
    """An agent that calls through a seawall breaker and opens its own span inside it."""

    def __init__(self, spans: Spans) -> None:
        hook = OpenTelemetryHook(tracer_provider=spans.provider)
        self.breaker = seawall.CircuitBreaker(name="llm", hooks=(hook,), clock=FakeClock())
        self.tracer = spans.provider.get_tracer("test agent")

    async def _work(self, input: Any) -> Any:
        with self.tracer.start_as_current_span("agent work"):
            await anyio.lowlevel.checkpoint()
            return {"echo": input, "tenant": seawall_serving.current_tenant()}

    async def invoke(self, input: Any) -> Any:
        return await self.breaker.acall(self._work, input)

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        for i in range(3):
            with self.tracer.start_as_current_span(f"chunk {i}"):
                await anyio.lowlevel.checkpoint()
            yield {"i": i}
        yield await self.breaker.acall(self._work, input)


class SyncTraced:
    """The same, sync: invoke and the stream's items run in worker threads."""

    def __init__(self, spans: Spans) -> None:
        hook = OpenTelemetryHook(tracer_provider=spans.provider)
        self.breaker = seawall.CircuitBreaker(name="llm-sync", hooks=(hook,), clock=FakeClock())
        self.tracer = spans.provider.get_tracer("test agent")

    def _work(self, input: Any) -> Any:
        with self.tracer.start_as_current_span("agent work"):
            return {"echo": input}

    def invoke(self, input: Any) -> Any:
        return self.breaker.call(self._work, input)

    def stream(self, input: Any) -> Iterator[Any]:
        for i in range(2):
            with self.tracer.start_as_current_span(f"chunk {i}"):
                pass
            yield {"i": i}


def sse(client: httpx.Client, path: str, payload: Any, **kwargs: Any) -> list[Any]:
    with connect_sse(client, "POST", path, json=payload, **kwargs) as source:
        source.response.raise_for_status()
        return list(source.iter_sse())


# -- server spans ------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", adapter_params())
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_invoke_span_is_the_child_of_traceparent_and_the_parent_of_the_agents_spans(
    adapter: str, kind: str, spans: Spans
) -> None:
    agent = Traced(spans) if kind == "async" else SyncTraced(spans)
    headers, parent = parent_headers(spans)
    with (
        traced(adapter, spans, agents={"/v1/chat": agent}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        response = client.post(
            "/v1/chat/invoke?lang=en",
            json={"input": "hi"},
            headers={**headers, "X-Tenant-ID": "acme", "User-Agent": "probe/1.0"},
        )
        assert response.status_code == 200, response.text
    parent.end()
    server_span = spans.named("POST /v1/chat/invoke")
    breaker = spans.named(f"circuit_breaker {agent.breaker.name}")
    work = spans.named("agent work")

    assert server_span.kind is SpanKind.SERVER
    assert server_span.parent is not None
    assert server_span.parent.span_id == parent.get_span_context().span_id
    assert server_span.parent.is_remote
    assert server_span.context is not None
    assert server_span.context.trace_id == parent.get_span_context().trace_id
    assert breaker.parent is not None
    assert breaker.parent.span_id == server_span.context.span_id
    assert breaker.context is not None
    assert work.parent is not None
    assert work.parent.span_id == breaker.context.span_id
    assert {s.context.trace_id for s in (server_span, breaker, work) if s.context} == {
        parent.get_span_context().trace_id
    }

    a = attrs(server_span)
    # The adapters that know the peer say who it is (the others leave it out).
    client_address = a.pop("client.address", None)
    if adapter in {"stdlib", "stdlib-trio", "asgi", "fastapi"}:
        assert client_address == "127.0.0.1"
    assert a == {
        "http.request.method": "POST",
        "url.path": "/v1/chat/invoke",
        "url.query": "lang=en",
        "url.scheme": "http",
        "http.route": "/v1/chat/invoke",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "user_agent.original": "probe/1.0",
        "http.response.status_code": 200,
        "seawall_serving.tenant.id": "acme",
        "seawall_serving.run.id": response.headers["x-request-id"],
    }
    assert server_span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("adapter", adapter_params())
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_streams_span_is_current_for_its_whole_life_and_ends_with_it(
    adapter: str, kind: str, spans: Spans
) -> None:
    agent = Traced(spans) if kind == "async" else SyncTraced(spans)
    headers, parent = parent_headers(spans)
    with (
        traced(adapter, spans, agents={"/v1/chat": agent}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        received = sse(client, "/v1/chat/stream", {"input": "hi"}, headers=headers)
        assert received[-1].event == "end"
        server_span = spans.wait_for("POST /v1/chat/stream")
    parent.end()
    assert server_span.context is not None
    assert server_span.parent is not None
    assert server_span.parent.span_id == parent.get_span_context().span_id
    children = [s for s in spans.finished() if s.name.startswith("chunk")]
    if kind == "async":
        children.append(spans.named("circuit_breaker llm"))
    assert len(children) >= 2
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == server_span.context.span_id, child.name
        assert child.end_time is not None
        assert server_span.end_time is not None
        assert child.end_time <= server_span.end_time
    a = attrs(server_span)
    assert a["seawall_serving.outcome"] == "completed"
    assert a["http.response.status_code"] == 200
    assert a["http.route"] == "/v1/chat/stream"
    assert server_span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("adapter", TRACED)
def test_failures_are_errors_only_on_5xx(adapter: str, spans: Spans) -> None:
    failing = Failing(RuntimeError("boom"))
    rejecting = Failing(seawall_serving.InvalidInput("bad input"))
    with (
        traced(adapter, spans, agents={"/f": failing, "/r": rejecting}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.post("/f/invoke", json={"input": 1}).status_code == 500
        assert client.post("/r/invoke", json={"input": 1}).status_code == 422
        assert client.post("/f/invoke", content=b"{", headers=json_type()).status_code == 400
        assert client.get("/f/invoke").status_code == 405
        assert client.post("/nowhere", json={"input": 1}).status_code == 404
        events = sse(client, "/f/stream", {"input": 1})
        assert [e.event for e in events] == ["metadata", "data", "error"]
        with client.stream("POST", "/f/stream", json={"input": "early"}) as early:
            assert early.status_code == 500
        spans.wait_for("POST /f/stream")
    invoke_spans = [s for s in spans.server_spans() if s.name == "POST /f/invoke"]
    by_status = {attrs(s)["http.response.status_code"]: s for s in invoke_spans}
    assert set(by_status) == {500, 400}
    failed = by_status[500]
    assert attrs(failed)["error.type"] == "RuntimeError"
    assert failed.status.status_code is StatusCode.ERROR
    assert not failed.events  # no exception event: its message could hold a secret
    assert "error.type" not in attrs(by_status[400])
    assert by_status[400].status.status_code is StatusCode.UNSET

    rejected = spans.named("POST /r/invoke")
    assert attrs(rejected)["http.response.status_code"] == 422
    assert "error.type" not in attrs(rejected)
    assert rejected.status.status_code is StatusCode.UNSET

    unmatched = spans.named("POST")
    assert attrs(unmatched)["http.response.status_code"] == 404
    assert "http.route" not in attrs(unmatched)
    assert spans.named("GET /f/invoke").status.status_code is StatusCode.UNSET

    streams = {
        attrs(s)["http.response.status_code"]: s
        for s in spans.server_spans()
        if s.name == "POST /f/stream"
    }
    after_200 = attrs(streams[200])
    assert after_200["seawall_serving.outcome"] == "internal_error"
    assert after_200["error.type"] == "RuntimeError"
    assert streams[200].status.status_code is StatusCode.ERROR
    before = attrs(streams[500])
    assert before["error.type"] == "RuntimeError"
    assert streams[500].status.status_code is StatusCode.ERROR


def json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


@pytest.mark.parametrize("adapter", TRACED)
def test_probes_are_not_traced(adapter: str, spans: Spans) -> None:
    with (
        traced(adapter, spans, agents={"/a": Traced(spans)}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code in {200, 404, 503}
        assert client.post("/healthz").status_code == 405
    assert spans.finished() == []


@pytest.mark.parametrize("adapter", TRACED)
def test_a_stream_the_client_leaves_ends_its_span_disconnected(adapter: str, spans: Spans) -> None:
    gate = Gate()
    with traced(adapter, spans, agents={"/g": gate}) as server:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            connect_sse(client, "POST", "/g/stream", json={"input": 1}) as source,
        ):
            received = source.iter_sse()
            assert next(received).event == "metadata"
            assert next(received).event == "data"
            assert gate.started.wait(10)
        assert gate.finished.wait(10)
        span = spans.wait_for("POST /g/stream")
    a = attrs(span)
    assert a["seawall_serving.outcome"] == "disconnected"
    assert "error.type" not in a
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("adapter", TRACED)
def test_a_stream_ended_by_the_drain_deadline_is_an_error(adapter: str, spans: Spans) -> None:
    gate = Gate()
    with traced(adapter, spans, agents={"/g": gate}, drain=0.2) as server:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            connect_sse(client, "POST", "/g/stream", json={"input": 1}) as source,
        ):
            received = source.iter_sse()
            assert next(received).event == "metadata"
            assert next(received).event == "data"
            assert gate.started.wait(10)
            stopper = threading.Thread(target=server.adapter.shutdown, args=(0.2,))
            stopper.start()
            rest = list(received)
        stopper.join(30)
    assert [e.event for e in rest] == ["error"]
    a = attrs(spans.named("POST /g/stream"))
    assert a["seawall_serving.outcome"] == "shutting_down"
    assert a["error.type"] == "shutting_down"


def test_the_adapters_address_parameters_and_odd_methods_follow_the_conventions(
    spans: Spans,
) -> None:
    service = seawall_serving.Service(seawall_serving.Config(default_tenant="t"))
    service.register_handler("/h", lambda _request: seawall_serving.Response(200, b"{}"))
    service.set_tracer_provider(spans.provider)

    async def body(limit: int) -> bytes:
        return b""

    async def main() -> None:
        await service.handle(
            "PURGE",
            "/h",
            {"host": "ignored.example:1"},
            body,
            query="token=abc&sig=xyz&page=2",
            scheme="https",
            server_address="api.example",
            server_port=443,
            client_address="203.0.113.9",
        )
        await service.handle("GET", "/h", {"host": "[::1]:8443"}, body)

    anyio.run(main)
    odd, plain = spans.named("HTTP /h"), spans.named("GET /h")
    assert attrs(odd) == {
        "http.request.method": "_OTHER",
        "http.request.method_original": "PURGE",
        "url.path": "/h",
        "url.query": "token=REDACTED&sig=REDACTED&page=2",
        "url.scheme": "https",
        "http.route": "/h",
        "server.address": "api.example",
        "server.port": 443,
        "client.address": "203.0.113.9",
        "http.response.status_code": 200,
        "seawall_serving.tenant.id": "t",
        "seawall_serving.run.id": attrs(odd)["seawall_serving.run.id"],
    }
    assert attrs(plain)["server.address"] == "::1"
    assert attrs(plain)["server.port"] == 8443


def test_without_a_provider_the_global_one_is_used_lazily() -> None:
    """The API's proxy: spans made before the SDK is set up are no-ops, then real."""
    code = textwrap.dedent(
        """
        import anyio, seawall_serving
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        service = seawall_serving.Service(seawall_serving.Config(default_tenant="t"))
        service.register_handler("/h", lambda r: seawall_serving.Response(200, b"{}"))

        async def body(limit):
            return b""

        anyio.run(service.handle, "GET", "/h", {}, body)  # no SDK yet: a no-op span
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        anyio.run(service.handle, "GET", "/h", {}, body)
        print([s.name for s in exporter.get_finished_spans()])
        """
    )
    assert run_python(code).strip() == "['GET /h']"


def test_without_opentelemetry_nothing_is_imported_and_requests_are_served() -> None:
    code = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        import logging, io, json, anyio, seawall_serving

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(seawall_serving.JsonFormatter())
        logging.getLogger("seawall_serving").addHandler(handler)
        logging.getLogger("seawall_serving").setLevel(logging.INFO)

        class Agent:
            async def invoke(self, input):
                return input

        adapter = seawall_serving.new("stdlib", seawall_serving.Config(default_tenant="t"))
        adapter.register_agent("/a", Agent())

        async def body(limit):
            return b'{"input": 7}'

        parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        headers = {"content-type": "application/json", "traceparent": parent}
        response = anyio.run(adapter.service.handle, "POST", "/a/invoke", headers, body)
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert "trace_id" not in line, line
        print(response.status, json.loads(response.body)["output"])
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert run_python(code).split("\n")[:2] == ["200 7", "[]"]


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run *code* in a fresh interpreter, without the OTEL_* variables but those in *env*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, "PYTHONPATH": str(SRC), **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_set_tracer_provider_takes_effect_from_the_next_request(spans: Spans) -> None:
    other = Spans()
    service = seawall_serving.Service(seawall_serving.Config(default_tenant="t"))
    service.register_handler("/h", lambda _request: seawall_serving.Response(200, b"{}"))

    async def body(limit: int) -> bytes:
        return b""

    service.set_tracer_provider(spans.provider)
    anyio.run(service.handle, "GET", "/h", {}, body)
    service.set_tracer_provider(other.provider)
    anyio.run(service.handle, "GET", "/h", {}, body)
    assert [s.name for s in spans.finished()] == ["GET /h"]
    assert [s.name for s in other.finished()] == ["GET /h"]
    other.provider.shutdown()


# -- secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", TRACED)
def test_secrets_reach_no_log_line_no_response_and_no_span(adapter: str, spans: Spans) -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(seawall_serving.JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("seawall_serving")
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    user_log = logging.getLogger("seawall_serving.user")

    def echo_headers(request: seawall_serving.Request) -> seawall_serving.Response:
        # A careless handler that logs the headers: the formatter's safety net redacts.
        user_log.info("headers: %s", request.headers)
        user_log.info("auth: %(authorization)s", request.headers)
        raise RuntimeError(f"bad credentials {SECRET}")

    failing = Failing(RuntimeError(f"upstream refused the key {SECRET}"))
    secret_headers = {
        "Authorization": f"Bearer {SECRET}",
        "X-API-Key": SECRET,
        "X-Tenant-ID": "acme",
    }
    payload = {"input": {"api_key": SECRET, "text": f"my key is {SECRET}"}}
    responses: list[str] = []
    try:
        with running(adapter, agents={"/f": failing}, handlers={"/h": echo_headers}) as server:
            server.service.set_tracer_provider(spans.provider)
            with httpx.Client(base_url=server.url, headers=secret_headers) as client:
                for path in ("/f/invoke", f"/f/invoke?api_key={SECRET}", "/nowhere"):
                    response = client.post(path, json=payload)
                    assert response.status_code in {404, 500}
                    responses.append(f"{response.headers}\n{response.text}")
                response = client.post("/h", json=payload)
                assert response.status_code == 500
                responses.append(f"{response.headers}\n{response.text}")
                with client.stream("POST", "/f/stream", json=payload) as stream:
                    responses.append(f"{stream.headers}\n{stream.read().decode()}")
                with client.stream("POST", "/f/stream", json={"input": "early"}) as stream:
                    responses.append(f"{stream.headers}\n{stream.read().decode()}")
                spans.wait_for("POST /f/stream")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    logged = lines.getvalue().splitlines()
    assert logged
    for text in (*logged, *responses):
        assert SECRET not in text, text
    records = [json.loads(line) for line in logged]
    failures = [r for r in records if r["message"].startswith(("agent", "handler"))]
    assert len(failures) >= 4
    for record in failures:
        assert record["error_type"] == "RuntimeError"
        assert "RuntimeError: (message withheld)" in record["exception"]
        assert "Traceback (most recent call last)" in record["exception"]
        assert record["trace_id"]  # logged while the request's span was current
    told = [r["message"] for r in records if r["logger"] == "seawall_serving.user"]
    assert "'authorization': '[REDACTED]'" in told[0]
    assert "'x-api-key': '[REDACTED]'" in told[0]
    assert told[1] == "auth: [REDACTED]"
    finished = spans.finished()
    assert len(finished) >= 6
    for span in finished:
        seen = [span.name, str(span.status.description)]
        seen += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            seen += [event.name, *(str(v) for v in (event.attributes or {}).values())]
        assert not any(SECRET in text for text in seen), seen


# -- OTLP export from the environment ----------------------------------------------------


class Receiver:
    """A minimal OTLP/HTTP receiver on loopback: records each POST's path, type and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                received.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def spans(self) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
        """(resource attributes, span name, span attributes) of every span received."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        found = []
        for path, content_type, body in self.requests:
            assert path == "/v1/traces"
            assert content_type == "application/x-protobuf"
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                resource = {
                    kv.key: kv.value.string_value for kv in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        values = {kv.key: _any_value(kv.value) for kv in span.attributes}
                        found.append((resource, span.name, values))
        return found


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


OTLP_ENV = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTLP_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_provider_from_env_exports_server_spans_over_otlp_http(
    clean_env: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from seawall_serving._telemetry import tracer_provider_from_env

    with Receiver() as receiver:
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        clean_env.setenv("OTEL_SERVICE_NAME", "chat-api")
        clean_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        provider = tracer_provider_from_env()
        assert provider is not None
        with (
            running("stdlib", agents={"/v1/chat": Echo()}) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            server.service.set_tracer_provider(provider)
            assert client.post("/v1/chat/invoke", json={"input": 1}).status_code == 200
        provider.shutdown()  # flushes the batch
    exported = receiver.spans()
    assert [name for _, name, _ in exported] == ["POST /v1/chat/invoke"]
    resource, _, values = exported[0]
    assert resource["service.name"] == "chat-api"
    assert resource["deployment.environment"] == "test"
    assert values["http.route"] == "/v1/chat/invoke"
    assert values["http.response.status_code"] == 200


def test_configure_from_env_sets_the_global_provider_and_flushes_on_shutdown() -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    code = textwrap.dedent(
        """
        import anyio, seawall_serving
        from seawall_serving.telemetry import configure_from_env

        shutdown = configure_from_env()
        assert shutdown is not None
        service = seawall_serving.Service(seawall_serving.Config(default_tenant="t"))
        service.register_handler("/h", lambda r: seawall_serving.Response(201, b"{}"))

        async def body(limit):
            return b""

        response = anyio.run(service.handle, "PUT", "/h", {"host": "svc:80"}, body)
        assert response.status == 201
        second = configure_from_env()  # a provider is set now: leave it
        assert second is None
        shutdown()
        shutdown()  # idempotent
        print("flushed")
        """
    )
    with Receiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces",
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_BSP_SCHEDULE_DELAY": "60000",  # only the shutdown's flush can send it
        }
        assert run_python(code, env).strip() == "flushed"
    exported = receiver.spans()
    assert [(r["service.name"], name) for r, name, _ in exported] == [("from-env", "PUT /h")]
    assert exported[0][2]["server.address"] == "svc"


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "neither OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "none"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "only otlp"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "DISABLED"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "'http/json' is not supported",
        ),
    ],
)
def test_configure_from_env_returns_none_and_says_why(
    env: dict[str, str],
    reason: str,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    caplog.set_level(logging.INFO, logger="seawall_serving")
    before = trace.get_tracer_provider()
    assert telemetry_module().configure_from_env() is None
    assert trace.get_tracer_provider() is before
    messages = [r.getMessage() for r in caplog.records if r.name == "seawall_serving"]
    assert any(reason in m for m in messages), messages


def test_configure_from_env_without_the_exporter_package_says_which(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    clean_env.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    caplog.set_level(logging.INFO, logger="seawall_serving")
    assert telemetry_module().configure_from_env() is None
    assert "opentelemetry-exporter-otlp-proto-grpc is not installed" in caplog.text


def test_the_logged_endpoint_never_shows_credentials(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from seawall_serving._telemetry import tracer_provider_from_env

    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://user:{SECRET}@127.0.0.1:9/?k={SECRET}")
    caplog.set_level(logging.INFO, logger="seawall_serving")
    provider = tracer_provider_from_env()
    assert provider is not None
    provider.shutdown()
    assert "http://127.0.0.1:9/" in caplog.text
    assert SECRET not in caplog.text


def test_the_public_module_names_its_api() -> None:
    module = telemetry_module()
    assert module.__all__ == (
        "ATTR_OUTCOME",
        "ATTR_RUN_ID",
        "ATTR_TENANT_ID",
        "INSTRUMENTATION_SCOPE",
        "MetricsHook",
        "configure_from_env",
    )
    assert module.configure_from_env.__module__ == "seawall_serving.telemetry"
    assert module.MetricsHook.__module__ == "seawall_serving.telemetry"


@pytest.mark.parametrize("adapter", ["stdlib", "stdlib-trio", "asgi", "fastapi"])
def test_the_span_names_the_client_and_the_servers_port(adapter: str, spans: Spans) -> None:
    with (
        traced(adapter, spans, agents={"/v1/chat": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.post("/v1/chat/invoke", json={"input": 1}).status_code == 200
    attributes = attrs(spans.named("POST /v1/chat/invoke"))
    assert attributes["client.address"] == "127.0.0.1"
    assert attributes["server.port"] == server.port
    assert attributes["url.scheme"] == "http"
