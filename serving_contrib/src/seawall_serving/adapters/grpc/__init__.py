"""The ``grpc`` adapter: agents as a gRPC service, on ``grpc.aio``.

``pip install 'seawall-serving[grpc]'``. The service ``seawall.serving.v1.AgentService``
has a unary ``Invoke`` and a server-streaming ``Stream``, both on
``google.protobuf.Struct`` messages, so no client needs generated code; ``agent.proto``
next to this module documents the contract for those that want stubs. The standard
``grpc.health.v1.Health`` service answers for ``""`` and the agent service.

Every call becomes one `seawall_serving.Service.handle` of ``POST {agent}/invoke`` or
``POST {agent}/stream``, so tenants, limits, draining and errors are those of HTTP:

- The tenant comes from the request metadata named like ``Config.tenant_header``,
  lower-cased (``x-tenant-id``).
- ``Stream`` sends the SSE stream's events as ``{"event", "id", "data"}`` messages,
  same names, ids and order; the ``: ping`` comments are not sent (gRPC keepalive
  pings, every ``Config.ping_interval``, keep the connection alive instead).
- An error ends the call with the status below, the problem's fixed message as the
  details, and trailing metadata ``seawall-code`` (the problem code), ``retry-after``
  (seconds, where HTTP sends ``Retry-After``), ``x-request-id`` and, for
  ``invalid_input`` only, ``seawall-detail-bin`` (the agent's detail, UTF-8). A stream
  that fails after its first event sends the ``error`` event first. Successful calls
  carry ``x-request-id`` in their trailing metadata too.
- Cancelling a call (or its deadline passing, or the client going away) cancels the
  agent and frees its slot, as a disconnect does over HTTP.

====================================================  ======================
HTTP status of the problem                            gRPC status
====================================================  ======================
400, 422 (bad JSON, tenant, request or input)         ``INVALID_ARGUMENT``
404 (no such agent)                                   ``NOT_FOUND``
413 ``body_too_large``                                ``RESOURCE_EXHAUSTED``
429 ``tenant_rate_limited``                           ``RESOURCE_EXHAUSTED``
500 ``internal_error``                                ``INTERNAL``
503 (circuit open, overloaded, draining...)           ``UNAVAILABLE``
504 ``timeout``                                       ``DEADLINE_EXCEEDED``
====================================================  ======================

``body_too_large`` is ``RESOURCE_EXHAUSTED`` because that is what gRPC itself answers
for a message past its receive limit (set to twice ``Config.max_body_size`` plus 64 KiB,
so the service, which measures the request as JSON, decides in all but extreme cases):
a client sees one code for "too large" whichever layer refused it, and tells it from a
rate limit by ``seawall-code`` (and the absence of ``retry-after``).

What differs from HTTP, because gRPC differs: numbers travel as doubles (a whole number
within ±2**53 reaches the agent as an ``int``; the agent's integers reach the client as
doubles); ``Config.read_timeout`` has no effect (gRPC hands over whole messages);
``Config.idle_timeout`` closes idle connections (``grpc.max_connection_idle_ms``); a
message gRPC cannot decode as a ``Struct`` is refused by gRPC itself (``INTERNAL``,
without ``seawall-code``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import json
import logging
import math
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, NoReturn, final

import anyio
import grpc
import grpc.aio
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from seawall_serving._base import AdapterBase, parse_addr, signals_start_shutdown
from seawall_serving._config import Config
from seawall_serving._service import BodyTooLargeError, ClientDisconnectedError, StreamCall
from seawall_serving._types import AsyncSend, AsyncStart, Handler, Response
from seawall_serving._wire import PROBLEM_TYPE, PROBLEMS, dumps, problem_response


__all__ = ("GrpcAdapter",)

logger: Final = logging.getLogger("seawall_serving")

SERVICE_NAME: Final = "seawall.serving.v1.AgentService"
INVOKE_METHOD: Final = f"/{SERVICE_NAME}/Invoke"
STREAM_METHOD: Final = f"/{SERVICE_NAME}/Stream"
_RESERVED_PREFIXES: Final = (f"/{SERVICE_NAME}/", "/grpc.health.v1.Health/")
_METHOD_RE: Final = re.compile(r"/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*")
#: The largest double that holds every whole number up to it exactly.
_MAX_EXACT: Final = float(2**53)
#: Seconds gRPC gets to send the statuses of RPCs whose handlers returned; health
#: ``Watch`` streams, which never end on their own, are cancelled after it.
_FINAL_GRACE: Final = 1.0
_HEALTH_NAMES: Final = ("", SERVICE_NAME)
DETAIL_KEY: Final = "seawall-detail-bin"

_STATUS_CODES: Final[dict[int, Any]] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_status(http_status: int) -> Any:
    """Return the ``grpc.StatusCode`` for an HTTP status (``UNKNOWN`` when none fits)."""
    return _STATUS_CODES.get(http_status, grpc.StatusCode.UNKNOWN)


# -- Struct <-> JSON values ----------------------------------------------------------------


def _from_value(value: Any) -> Any:
    """Return the JSON value of the ``Value`` message *value*."""
    kind = value.WhichOneof("kind")
    result: Any = None  # null_value, or no kind set
    if kind == "struct_value":
        result = _from_struct(value.struct_value)
    elif kind == "list_value":
        result = [_from_value(item) for item in value.list_value.values]
    elif kind == "number_value":
        number: float = value.number_value
        result = int(number) if number.is_integer() and abs(number) <= _MAX_EXACT else number
    elif kind == "string_value":
        result = str(value.string_value)
    elif kind == "bool_value":
        result = bool(value.bool_value)
    return result


def _from_struct(struct: Any) -> dict[str, Any]:
    return {str(key): _from_value(value) for key, value in struct.fields.items()}


def _double(number: float) -> float:
    try:
        return float(number)
    except OverflowError:  # an int past the range of a double
        return math.copysign(math.inf, number)


def _set_value(target: Any, item: Any) -> None:
    """Store *item* (a value `json.loads` returns) in the ``Value`` message *target*."""
    if item is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(item, bool):
        target.bool_value = item
    elif isinstance(item, (int, float)):
        target.number_value = _double(item)
    elif isinstance(item, str):
        target.string_value = item
    elif isinstance(item, dict):
        target.struct_value.SetInParent()
        fields = target.struct_value.fields
        for key, value in item.items():
            _set_value(fields[str(key)], value)
    elif isinstance(item, list):
        target.list_value.SetInParent()
        values = target.list_value.values
        for value in item:
            _set_value(values.add(), value)
    else:  # pragma: no cover -- json.loads returns nothing else
        msg = f"not a JSON value: {type(item).__name__}"
        raise TypeError(msg)


def _struct(mapping: Mapping[str, Any]) -> Any:
    struct = struct_pb2.Struct()
    for key, value in mapping.items():
        _set_value(struct.fields[key], value)
    return struct


# -- statuses and metadata -----------------------------------------------------------------


def _request_metadata(context: Any) -> dict[str, str]:
    """Return the call's text metadata: keys in lower case, repeats joined with ``, ``."""
    headers: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        name = str(key).lower()
        if name.endswith("-bin") or not isinstance(value, str):
            continue
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _request_id(response: Response) -> tuple[tuple[str, str], ...]:
    return tuple(
        ("x-request-id", value)
        for name, value in response.headers
        if name.lower() == "x-request-id"
    )


def _failure(response: Response) -> tuple[Any, str, tuple[tuple[str, str | bytes], ...]]:
    """(gRPC status, details, trailing metadata) for a response that is not a success."""
    code: str | None = None
    detail: str | None = None
    if response.content_type.startswith(PROBLEM_TYPE):
        with contextlib.suppress(ValueError):
            body = json.loads(response.body)
            if isinstance(body, dict) and body.get("code") in PROBLEMS:
                code = body["code"]
                if isinstance(body.get("detail"), str):
                    detail = body["detail"]
    if code is not None:
        details = PROBLEMS[code].message
    else:
        try:
            details = http.HTTPStatus(response.status).phrase
        except ValueError:
            details = f"HTTP status {response.status}"
    trailers: list[tuple[str, str | bytes]] = []
    if code is not None:
        trailers.append(("seawall-code", code))
    for name, value in response.headers:
        lower = name.lower()
        if lower in {"retry-after", "x-request-id"}:
            trailers.append((lower, value))
    if detail is not None:
        trailers.append((DETAIL_KEY, detail.encode()))
    return grpc_status(response.status), details, tuple(trailers)


async def _abort(context: Any, response: Response) -> NoReturn:
    status, details, trailers = _failure(response)
    await context.abort(status, details, trailers)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _body_reader(body: bytes) -> Callable[[int], Awaitable[bytes]]:
    async def read_body(limit: int) -> bytes:
        if len(body) > limit:
            raise BodyTooLargeError
        return body

    return read_body


def _parse_event(frame: bytes) -> tuple[str, int, Any] | None:
    """(event, id, data) of one SSE frame from `StreamCall.run`, ``None`` for a ping."""
    if frame.startswith(b":"):
        return None
    fields: dict[bytes, bytes] = {}
    for line in frame.split(b"\n"):
        name, sep, value = line.partition(b": ")
        if sep:
            fields[name] = value
    return fields[b"event"].decode(), int(fields[b"id"]), json.loads(fields[b"data"])


@final
class _StreamWriter:
    """`StreamCall.run`'s *start* and *send*: SSE frames in, ``Struct`` messages out."""

    __slots__ = ("_context", "_write_timeout", "body", "error", "headers", "status")

    def __init__(self, context: Any, write_timeout: float) -> None:
        self._context = context
        self._write_timeout = write_timeout
        self.status = 200
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.error: dict[str, Any] | None = None

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = headers

    async def send(self, data: bytes) -> None:
        if self.status != 200:  # noqa: PLR2004 -- a problem before the first event
            self.body += data
            return
        event = _parse_event(data)
        if event is None:
            return
        name, event_id, payload = event
        if name == "error" and isinstance(payload, dict):
            self.error = payload
        message = _struct({"event": name, "id": event_id, "data": payload})
        try:
            with anyio.fail_after(self._write_timeout):
                await self._context.write(message)
        except Exception as exc:  # the call is over: cancelled, failed, or not reading
            raise ClientDisconnectedError from exc

    def problem(self) -> Response:
        """Return the problem the stream answered instead of events."""
        content_type = next(
            (value for name, value in self.headers if name.lower() == "content-type"),
            "application/json",
        )
        return Response(self.status, bytes(self.body), content_type, tuple(self.headers))


# -- the servicers -------------------------------------------------------------------------


@final
class _Health(health_aio.HealthServicer):  # type: ignore[misc]
    """The standard health service; ``Check`` asks the service's readiness first.

    ``""`` and the agent service are ``SERVING`` when ``/readyz`` would answer 200 (the
    server started, is not draining, and its required readiness checks pass), else
    ``NOT_SERVING``. ``Watch`` sees the changes at start, at shutdown, and whenever a
    ``Check`` finds a different answer.
    """

    def __init__(self, adapter: GrpcAdapter) -> None:
        super().__init__()
        self._adapter = adapter

    async def refresh(self) -> None:
        """Set both names from the service's readiness (a no-op once shutting down)."""
        response = await self._adapter.service.handle("GET", "/readyz", {}, _body_reader(b""))
        ready = isinstance(response, Response) and response.status == 200  # noqa: PLR2004
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in _HEALTH_NAMES:
            await self.set(name, status)

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 -- gRPC's name
        """Refresh from readiness, then answer as the standard servicer does."""
        if request.service in _HEALTH_NAMES:
            await self.refresh()
        return await super().Check(request, context)


@final
class _Router(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Finds the handler of each call, at call time, so late registrations work too."""

    def __init__(self, adapter: GrpcAdapter) -> None:
        self._adapter = adapter

    def service(self, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if isinstance(method, bytes):  # pragma: no cover -- older grpcio
            method = method.decode()
        return self._adapter._method_handler(method)  # noqa: SLF001 -- its own helper


@final
class GrpcAdapter(AdapterBase):
    """Serve agents over gRPC, as ``seawall.serving.v1.AgentService``.

    Example::

        adapter = seawall_serving.new("grpc", seawall_serving.Config(drain_timeout=20))
        adapter.register_agent("/v1/chat", agent)
        adapter.serve(":50051")  # until SIGTERM or SIGINT; then drains and returns

    A client calls ``Invoke`` with ``{"agent": "/v1/chat", "input": ...}`` and the tenant
    in the ``x-tenant-id`` metadata; see the module documentation and ``agent.proto``
    for the messages, the statuses and the trailing metadata. The server listens
    without TLS (put a proxy or a load balancer in front) and serves the standard
    ``grpc.health.v1.Health`` service; it has no reflection.

    Args:
        config: The settings; `seawall_serving.Config()` by default.

    .. versionadded:: 0.1.0
    """

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._serving = False
        self._closing = False
        self._shutting_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._health: _Health | None = None
        self._raw: dict[str, Any] = {}
        self._active_rpcs = 0
        self._rpcs_idle: asyncio.Event | None = None
        self._stop_requested: asyncio.Event | None = None
        struct_in = struct_pb2.Struct.FromString
        struct_out = struct_pb2.Struct.SerializeToString
        self._agent_methods: dict[str, Any] = {
            INVOKE_METHOD: grpc.unary_unary_rpc_method_handler(
                self._invoke, request_deserializer=struct_in, response_serializer=struct_out
            ),
            STREAM_METHOD: grpc.unary_stream_rpc_method_handler(
                self._stream, request_deserializer=struct_in, response_serializer=struct_out
            ),
        }

    def register_handler(self, path: str, handler: Handler) -> None:
        """Serve *handler* as the unary gRPC method *path*, raw bytes in and out.

        *path* is a full gRPC method name, ``"/my.pkg.Service/Method"``. The handler
        gets a `seawall_serving.Request` whose ``body`` is the request message's bytes
        and whose ``headers`` are the call's text metadata, with the tenant, rate limits
        and draining applied as over HTTP. A 2xx `seawall_serving.Response` sends its
        body as the response message (its headers are not sent); any other status ends
        the call with the matching gRPC status, as for agents.

        Raises:
            ValueError: *path* is not a gRPC method name, belongs to the agent or health
                service, or is already registered.

        .. versionadded:: 0.1.0
        """
        if not isinstance(path, str) or not _METHOD_RE.fullmatch(path):
            msg = f"path must be a gRPC method name like '/my.pkg.Service/Method', got {path!r}"
            raise ValueError(msg)
        if path.startswith(_RESERVED_PREFIXES):
            msg = f"path {path!r} belongs to a service this adapter serves itself"
            raise ValueError(msg)
        self.service.register_handler(path, handler)
        self._raw[path] = grpc.unary_unary_rpc_method_handler(
            functools.partial(self._call_handler, path)
        )

    # -- serving -----------------------------------------------------------------------

    def serve(self, addr: str = ":8080") -> None:
        """Listen on *addr* until `shutdown` (or SIGTERM/SIGINT from the main thread).

        ``":port"`` listens on every interface (``[::]``, which includes IPv4 where the
        system allows it). Runs its own asyncio event loop in the calling thread.
        """
        host, port = parse_addr(addr)
        with self._lock:
            if self._closing:
                self._stopped.set()
                return
            self._serving = True
        with signals_start_shutdown(self.shutdown):
            try:
                asyncio.run(self._serve(host, port))
            finally:
                self._stopped.set()

    def _options(self) -> list[tuple[str, int]]:
        config = self.config

        def ms(seconds: float) -> int:
            return max(1, round(seconds * 1000))

        limit = config.max_body_size
        return [
            ("grpc.max_receive_message_length", min(2 * limit + 65536, 2**31 - 1)),
            ("grpc.so_reuseport", 0),  # a port in use is an error, as over HTTP
            ("grpc.max_connection_idle_ms", ms(config.idle_timeout)),
            ("grpc.keepalive_time_ms", ms(config.ping_interval)),
            ("grpc.keepalive_timeout_ms", ms(config.write_timeout)),
            ("grpc.http2.max_pings_without_data", 0),  # long quiet streams stay checked
        ]

    async def _serve(self, host: str | None, port: int) -> None:
        server = grpc.aio.server(options=self._options())
        server.add_generic_rpc_handlers((_Router(self),))
        health = _Health(self)
        for name in _HEALTH_NAMES:
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        if host is None:
            target = f"[::]:{port}"
        elif ":" in host:
            target = f"[{host}]:{port}"
        else:
            target = f"{host}:{port}"
        bound = int(server.add_insecure_port(target))
        await server.start()
        self._loop = asyncio.get_running_loop()
        self._server = server
        self._health = health
        idle = self._rpcs_idle = asyncio.Event()
        idle.set()
        stop = self._stop_requested = asyncio.Event()
        self.service.mark_ready()
        await health.refresh()
        with self._lock:
            closing = self._closing
            if not closing:
                self._started.set()
        if closing:  # shutdown came while starting: nothing can be in flight yet
            await health.enter_graceful_shutdown()
            self.service.begin_drain()
            await server.stop(None)
            return
        self._listening(host or "::", bound)
        await stop.wait()
        with anyio.move_on_after(self.config.write_timeout):
            await idle.wait()
        await server.stop(_FINAL_GRACE)

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain, then stop the server and return; safe from any thread but its loop's.

        Health turns ``NOT_SERVING`` first, then `seawall_serving.Service.drain` lets
        in-flight calls finish for up to *timeout* (default ``Config.drain_timeout``)
        and ends the rest (``UNAVAILABLE`` with ``shutting_down``; streams get their
        ``error`` event first). The server then stops, giving the last calls up to
        ``Config.write_timeout`` to send what they have.
        """
        with self._lock:
            self._closing = True
            started = self._started.is_set()
            serving = self._serving
            again = self._shutting_down
            self._shutting_down = True
        if not started:
            if not serving:
                self._stopped.set()
            self._stopped.wait()  # _serve sees _closing once it listens, and stops
            return
        if again or self._stopped.is_set():
            self._stopped.wait()
            return
        loop, health = self._loop, self._health
        if loop is None or health is None:  # pragma: no cover -- set before _started
            raise AssertionError("unreachable")
        try:
            asyncio.run_coroutine_threadsafe(health.enter_graceful_shutdown(), loop).result()
        except RuntimeError:  # the loop is gone: so is the server
            self._stopped.wait()
            return
        self.service.drain(timeout)
        stop = self._stop_requested
        if stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                logger.debug("gRPC event loop closed during shutdown", exc_info=True)
        self._stopped.wait()

    # -- calls -------------------------------------------------------------------------

    def _method_handler(self, method: str) -> Any:
        return self._agent_methods.get(method) or self._raw.get(method)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Count a call of ours, so the stop can wait for them and only them."""
        idle = self._rpcs_idle
        self._active_rpcs += 1
        if idle is not None:
            idle.clear()
        try:
            yield
        finally:
            self._active_rpcs -= 1
            if self._active_rpcs == 0 and idle is not None:
                idle.set()

    async def _agent_call(self, request: Any, context: Any, kind: str) -> Response | StreamCall:
        """Route one ``Invoke`` or ``Stream`` through `seawall_serving.Service.handle`."""
        service = self.service
        started = self.config.clock.now()
        document = _from_struct(request)
        agent = document.pop("agent", None)
        if not isinstance(agent, str) or not agent.startswith("/"):
            method = INVOKE_METHOD if kind == "invoke" else STREAM_METHOD
            response = problem_response(
                "invalid_request",
                detail='"agent" must be the path an agent is registered at, like "/v1/chat"',
            )
            service.record("POST", method, started, "", None, response.status)
            return response
        path = f"{agent}/{kind}"
        registered = service.routes().get(path)
        if registered is not None and registered != kind:  # a handler's path: not an agent
            response = problem_response("not_found")
            service.record("POST", path, started, "", None, response.status)
            return response
        headers = {"content-type": "application/json"}
        metadata = _request_metadata(context)
        # The tenant, and the W3C trace context, so the server span joins the caller's trace.
        for key in (self.config.tenant_header.lower(), "traceparent", "tracestate"):
            if key in metadata:
                headers[key] = metadata[key]
        return await service.handle("POST", path, headers, _body_reader(dumps(document)))

    async def _invoke(self, request: Any, context: Any) -> Any:
        with self._tracked():
            result = await self._agent_call(request, context, "invoke")
            if isinstance(result, StreamCall):  # pragma: no cover -- invoke routes answer
                raise TypeError("an invoke route returned a stream")
            if result.status != 200:  # noqa: PLR2004
                await _abort(context, result)
            context.set_trailing_metadata(_request_id(result))
            return _struct(json.loads(result.body))

    async def _stream(self, request: Any, context: Any) -> None:
        with self._tracked():
            result = await self._agent_call(request, context, "stream")
            if isinstance(result, Response):
                await _abort(context, result)
            writer = _StreamWriter(context, self.config.write_timeout)
            await _run_stream(result, writer.start, writer.send)
            if writer.status != 200:  # noqa: PLR2004 -- refused before the first event
                await _abort(context, writer.problem())
            trailers: tuple[tuple[str, str | bytes], ...] = (("x-request-id", result.run_id),)
            error = writer.error
            if error is not None:
                code = error.get("code")
                problem = PROBLEMS.get(code) if isinstance(code, str) else None
                if problem is None:  # pragma: no cover -- the service sends known codes
                    problem = PROBLEMS["internal_error"]
                detail = error.get("detail")
                extra = ((DETAIL_KEY, detail.encode()),) if isinstance(detail, str) else ()
                await context.abort(
                    grpc_status(problem.status),
                    problem.message,
                    (("seawall-code", problem.code), *trailers, *extra),
                )
            context.set_trailing_metadata(trailers)

    async def _call_handler(self, path: str, request: bytes, context: Any) -> bytes:
        with self._tracked():
            headers = _request_metadata(context)
            headers.pop("content-length", None)
            result = await self.service.handle("POST", path, headers, _body_reader(request))
            if isinstance(result, StreamCall):  # pragma: no cover -- handler routes answer
                raise TypeError("a handler route returned a stream")
            if not 200 <= result.status < 300:  # noqa: PLR2004
                await _abort(context, result)
            context.set_trailing_metadata(_request_id(result))
            return result.body


async def _run_stream(call: StreamCall, start: AsyncStart, send: AsyncSend) -> None:
    """Run *call* in a task of its own, so a cancelled RPC becomes `StreamCall.client_gone`.

    gRPC cancels the handler's task when the client cancels or disconnects; the stream
    then ends as an SSE stream whose client left: the agent is cancelled, its slot
    freed, and the access log says ``disconnected``.
    """
    task = asyncio.ensure_future(call.run(start, send))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        call.client_gone()
        await asyncio.wait((task,))
        if not task.cancelled():
            task.exception()  # retrieved: it has nowhere to go
        raise
