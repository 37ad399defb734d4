"""`Service`: routing, tenants, limits, agents, SSE and draining, for every adapter.

An adapter translates its framework's request into one call of `Service.handle` and
writes back what it returns: a `Response`, or a `StreamCall` that it runs with two
callbacks (``start`` with the status and headers, ``send`` with body bytes). So every
adapter behaves the same by construction, and the conformance suite checks the
translation.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import itertools
import json
import logging
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import seawall

from seawall_serving._config import Config
from seawall_serving._logging import current_log_ids, log_failure, qualified_name
from seawall_serving._metrics import Metrics, MetricsHook
from seawall_serving._telemetry import ServerSpan, Tracing
from seawall_serving._tenant import TENANT, check_tenant
from seawall_serving._types import Agent, AsyncSend, AsyncStart, Handler, Request, Response
from seawall_serving._wire import (
    PING,
    PROBLEMS,
    SSE_HEADERS,
    SSE_TYPE,
    dumps,
    error_payload,
    problem_for_exception,
    problem_response,
    sse_event,
)


if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


__all__ = ("BodyTooLargeError", "ClientDisconnectedError", "Service", "StreamCall")

logger: Final = logging.getLogger("seawall_serving")
access_logger: Final = logging.getLogger("seawall_serving.access")

RESERVED: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_CLOSE: Final = (("Connection", "close"),)
_END: Final = object()


class BodyTooLargeError(Exception):
    """Raised by an adapter's body reader when the body passes the limit."""


class ClientDisconnectedError(Exception):
    """Raised by an adapter's ``send`` when the client has gone."""


class _Kind(enum.Enum):
    INVOKE = "invoke"
    STREAM = "stream"
    HANDLER = "handler"
    HEALTHZ = "healthz"
    READYZ = "readyz"
    METRICS = "metrics"


class _State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


_PROBES: Final = frozenset({_Kind.HEALTHZ, _Kind.READYZ, _Kind.METRICS})


@final
@dataclass(frozen=True, slots=True)
class _Route:
    kind: _Kind
    path: str
    agent: Any = None
    handler: Handler | None = None
    is_async: bool = False
    has_stream: bool = False


@final
@dataclass(slots=True)
class _Check:
    name: str
    check: Callable[[], Any]
    required: bool
    checked_at: float = float("-inf")
    ok: bool = False


@final
class _Active:
    """One request being served, which shutdown may end at the drain deadline."""

    __slots__ = ("expired", "scope", "thread", "token")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.expired = False
        self.thread = threading.get_ident()
        self.token = anyio.lowlevel.current_token()

    def expire(self) -> None:
        self.expired = True
        if threading.get_ident() == self.thread:
            self.scope.cancel()
        else:
            try:
                anyio.from_thread.run_sync(self.scope.cancel, token=self.token)
            except RuntimeError:  # the loop is gone; so is the request
                logger.debug("request's event loop closed before expiry", exc_info=True)


def _request_timeout(config: Config) -> seawall.Timeout | None:
    if config.request_timeout is None:
        return None
    return seawall.Timeout(config.request_timeout, name="request_timeout", clock=config.clock)


def check_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        msg = f"{what} must be a path starting with '/', got {path!r}"
        raise ValueError(msg)
    if any(c in path for c in "?#% \t\r\n") or "//" in path:
        msg = f"{what} must be a plain path without '?', '#', '%', '//' or spaces, got {path!r}"
        raise ValueError(msg)
    if len(path) > 1 and path.endswith("/"):
        msg = f"{what} must not end with '/', got {path!r}"
        raise ValueError(msg)
    return path


class Service:
    """The framework-independent server: every adapter owns one.

    Users meet it through an adapter (``adapter.service``), mostly to add readiness
    checks. Thread-safe: sync frameworks call it from many threads through their own
    event loop, and `drain` may come from a signal handler's thread.
    """

    __slots__ = (
        "_active",
        "_checks",
        "_idle",
        "_in_flight",
        "_lock",
        "_routes",
        "_state",
        "_tracing",
        "config",
        "metrics",
        "request_timeout",
    )

    def __init__(self, config: Config) -> None:
        if not isinstance(config, Config):
            msg = f"config must be a seawall_serving.Config, got {type(config).__name__}"
            raise TypeError(msg)
        self.config = config
        self._routes: dict[str, _Route] = {
            "/healthz": _Route(_Kind.HEALTHZ, "/healthz"),
            "/readyz": _Route(_Kind.READYZ, "/readyz"),
        }
        self.metrics = Metrics.create()
        if self.metrics is not None:
            self._routes["/metrics"] = _Route(_Kind.METRICS, "/metrics")
        self._checks: list[_Check] = []
        self._state = _State.STARTING
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Event()
        self._idle.set()
        self._active: set[_Active] = set()
        self._tracing = Tracing()
        self.request_timeout = _request_timeout(config)

    def __repr__(self) -> str:
        agents = sorted(r.path for r in self._routes.values() if r.kind is _Kind.INVOKE)
        return (
            f"Service(state={self._state.value!r}, agents={agents!r}, in_flight={self._in_flight})"
        )

    # -- registration -------------------------------------------------------------------

    def register_agent(self, path: str, agent: Agent) -> None:
        """Mount ``POST {path}/invoke`` and ``POST {path}/stream`` for *agent*."""
        check_path(path, "path")
        invoke = getattr(agent, "invoke", None)
        if not callable(invoke):
            msg = f"agent must have an invoke method, got {type(agent).__name__}"
            raise TypeError(msg)
        stream = getattr(agent, "stream", None)
        if stream is not None and not callable(stream):
            msg = f"agent.stream must be callable when present, got {type(stream).__name__}"
            raise TypeError(msg)
        base = path.rstrip("/")
        invoke_route = _Route(
            _Kind.INVOKE,
            f"{base}/invoke",
            agent=agent,
            is_async=inspect.iscoroutinefunction(invoke),
        )
        stream_route = _Route(
            _Kind.STREAM,
            f"{base}/stream",
            agent=agent,
            is_async=inspect.iscoroutinefunction(invoke),
            has_stream=stream is not None,
        )
        self._add(invoke_route)
        self._add(stream_route)

    def register_handler(self, path: str, handler: Handler) -> None:
        """Mount *handler* (``Request -> Response``, sync or async) at *path*."""
        check_path(path, "path")
        if not callable(handler):
            msg = f"handler must be callable, got {type(handler).__name__}"
            raise TypeError(msg)
        self._add(
            _Route(
                _Kind.HANDLER,
                path,
                handler=handler,
                is_async=inspect.iscoroutinefunction(handler),
            )
        )

    def add_readiness_check(
        self, name: str, check: Callable[[], Any], *, required: bool = True
    ) -> None:
        """Run *check* (sync or async; falsy or raising means failed) for ``/readyz``.

        Results are cached for ``Config.readiness_cache`` seconds; a check that takes
        longer than ``Config.readiness_timeout`` counts as failed. A failing required
        check makes ``/readyz`` answer 503; others only show in its body.
        """
        if not isinstance(name, str) or not name:
            msg = f"name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        if not callable(check):
            msg = f"check must be callable, got {type(check).__name__}"
            raise TypeError(msg)
        if any(c.name == name for c in self._checks):
            msg = f"a readiness check named {name!r} is already registered"
            raise ValueError(msg)
        self._checks.append(_Check(name, check, required))

    def _add(self, route: _Route) -> None:
        if route.path in RESERVED:
            msg = f"path {route.path!r} is reserved for the probes and metrics"
            raise ValueError(msg)
        with self._lock:
            if route.path in self._routes:
                msg = f"path {route.path!r} is already registered"
                raise ValueError(msg)
            self._routes[route.path] = route

    def routes(self) -> dict[str, str]:
        """Every mounted path and what serves it (``invoke``, ``stream``, ``handler``...)."""
        return {path: route.kind.value for path, route in sorted(self._routes.items())}

    def reconfigure(self, config: Config) -> None:
        """Serve the next requests with *config*; requests in progress keep theirs.

        Everything the service reads per request applies at once: timeouts, body size,
        tenants and their limiter, ``max_in_flight``, pings, readiness and the access
        log. What an adapter fixed when it started listening (uvicorn's keep-alive
        timer, aiohttp's and gRPC's receive limits) stays until a restart, and so does
        the clock, which must be the same object.
        """
        if not isinstance(config, Config):
            msg = f"config must be a seawall_serving.Config, got {type(config).__name__}"
            raise TypeError(msg)
        if config.clock is not self.config.clock:
            msg = "config.clock must be the clock the service started with"
            raise ValueError(msg)
        timeout = _request_timeout(config)
        with self._lock:  # one reader of the pair never sees half of it
            self.request_timeout = timeout
            self.config = config

    # -- telemetry ---------------------------------------------------------------------

    def set_tracer_provider(self, provider: TracerProvider | None) -> None:
        """Send this server's spans to *provider*; ``None``: the global provider (the default).

        Needs opentelemetry-api (``seawall-serving[otel]``); takes effect from the next
        request.
        """
        self._tracing.set_provider(provider)

    def metrics_hook(self) -> MetricsHook:
        """Make a seawall hook that puts breaker states and rejections on ``/metrics``.

        See `seawall_serving.telemetry.MetricsHook`; without prometheus-client it does
        nothing.
        """
        return MetricsHook(self)

    def record_config_reload(self, success: bool) -> None:
        """Count a configuration reload and its result on ``/metrics``.

        Sets ``seawall_serving_config_reloads_total{result}``,
        ``seawall_serving_config_last_reload_success`` and, on success,
        ``seawall_serving_config_last_reload_success_timestamp_seconds``.
        """
        if not isinstance(success, bool):
            msg = f"success must be a bool, got {success!r}"
            raise TypeError(msg)
        if self.metrics is not None:
            self.metrics.record_reload(success)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the server has started and is not draining."""
        return self._state is _State.READY

    @property
    def draining(self) -> bool:
        """Whether a shutdown has begun."""
        return self._state is _State.DRAINING

    @property
    def in_flight(self) -> int:
        """Requests being served now (invokes, streams and handlers)."""
        return self._in_flight

    def mark_ready(self) -> None:
        """Mark the server started (adapters call it once they listen): ``/readyz`` may pass."""
        with self._lock:
            if self._state is _State.STARTING:
                self._state = _State.READY

    def begin_drain(self) -> None:
        """Fail readiness and refuse new requests with 503 ``draining``."""
        with self._lock:
            self._state = _State.DRAINING

    def drain(self, timeout: float | None = None) -> bool:
        """Drain, blocking the calling thread (never an event loop's).

        Refuses new requests, waits up to *timeout* (default ``Config.drain_timeout``)
        for in-flight ones, then ends the rest: invokes get 503 ``shutting_down``,
        streams a terminal ``error`` event. Returns whether all ended on their own.
        """
        self.begin_drain()
        if timeout is None:
            timeout = self.config.drain_timeout
        if self._idle.wait(timeout):
            return True
        with self._lock:
            active = list(self._active)
        for entry in active:
            entry.expire()
        # They now only write their last bytes; a dead client cannot hold us long.
        self._idle.wait(self.config.write_timeout)
        return False

    async def adrain(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 -- a grace period
        """`drain` for an event loop: the blocking waits run in a worker thread."""
        return await anyio.to_thread.run_sync(self.drain, timeout)

    def _enter(self) -> str | None:
        """Count a request in, or say why not: ``"draining"`` or ``"overloaded"``.

        Under the lock that `begin_drain` takes, so no request enters once a drain has
        begun: `drain` never sees the server idle while a request is on its way in.
        """
        with self._lock:
            if self._state is _State.DRAINING:
                return "draining"
            limit = self.config.max_in_flight
            if limit is not None and self._in_flight >= limit:
                return "overloaded"
            self._in_flight += 1
            self._idle.clear()
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        return None

    def _exit(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        if self.metrics is not None:
            self.metrics.in_flight.dec()

    def _register(self, entry: _Active) -> None:
        with self._lock:
            self._active.add(entry)

    def _unregister(self, entry: _Active) -> None:
        with self._lock:
            self._active.discard(entry)

    # -- requests ----------------------------------------------------------------------

    async def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        read_body: Callable[[int], Awaitable[bytes]],
        *,
        query: str = "",
        scheme: str = "http",
        server_address: str | None = None,
        server_port: int | None = None,
        client_address: str | None = None,
    ) -> Response | StreamCall:
        """Serve one request. *headers* have lower-case names.

        *read_body(limit)* returns the whole body, raising `BodyTooLargeError` past
        *limit* bytes; it runs under ``Config.read_timeout``. *scheme*, *server_address*,
        *server_port* and *client_address* only describe the request in its span (the
        server's address defaults to the ``Host`` header's).

        Every request but the probes' gets an OpenTelemetry SERVER span when
        opentelemetry-api is installed, current while it is served; a stream's span
        ends with the stream.
        """
        started = self.config.clock.now()
        run_id = uuid.uuid4().hex
        route = self._routes.get(path)
        if route is not None and route.kind in _PROBES:
            return await self._probe(route, method)
        span = self._tracing.start(
            method,
            path,
            None if route is None else route.path,
            query,
            headers,
            run_id,
            scheme=scheme,
            server_address=server_address,
            server_port=server_port,
            client_address=client_address,
        )
        request = (method, path, headers, read_body, query, started, run_id, route)
        if span is None:
            return await self._serve(*request, None)
        token = span.attach()
        try:
            result = await self._serve(*request, span)
        except BaseException as exc:
            _end_aborted(span, exc)
            raise
        finally:
            span.detach(token)
        if isinstance(result, Response):
            span.end(result.status)
        return result  # a StreamCall ends its span with the stream

    async def _serve(  # noqa: C901, PLR0917 -- one linear pipeline of checks
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        read_body: Callable[[int], Awaitable[bytes]],
        query: str,
        started: float,
        run_id: str,
        route: _Route | None,
        span: ServerSpan | None,
    ) -> Response | StreamCall:
        tenant, refusal = self._precheck(route, method, headers)
        if span is not None:
            span.set_tenant(tenant)
        body = b""
        if refusal is None:
            try:
                with anyio.fail_after(self.config.read_timeout):
                    body = await read_body(self.config.max_body_size)
            except BodyTooLargeError:
                refusal = ("body_too_large", _CLOSE)
            except TimeoutError:
                refusal = ("request_timeout", _CLOSE)
        if refusal is None and route is not None and route.kind is _Kind.HANDLER:
            request = Request(method, path, dict(headers), body, query, tenant, run_id)
            return await self._run_handler(route, request, started, span)
        document: Any = None
        if refusal is None:
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                refusal = ("malformed_json", ())
            else:
                if not isinstance(document, dict) or "input" not in document:
                    refusal = ("invalid_request", ())
        if refusal is not None or route is None:
            code, extra = refusal or ("not_found", ())
            response = problem_response(code, run_id, headers=extra)
            return self._done(method, path, started, run_id, tenant, response)
        call = StreamCall(self, route, document["input"], tenant, run_id, started, span)
        if route.kind is _Kind.STREAM:
            return call
        return await call.invoke()

    def _precheck(  # noqa: PLR0911 -- one return per check, in the documented order
        self, route: _Route | None, method: str, headers: Mapping[str, str]
    ) -> tuple[str | None, tuple[str, tuple[tuple[str, str], ...]] | None]:
        """Return the tenant, and the refusal (code, headers) of checks before the body."""
        if route is None:
            return None, ("not_found", ())
        agent = route.kind is not _Kind.HANDLER
        if agent and method != "POST":
            return None, ("method_not_allowed", (("Allow", "POST"),))
        if self._state is _State.DRAINING:
            return None, ("draining", _CLOSE)
        tenant, code = self._tenant(headers)
        if code is not None:
            return None, (code, ())
        if agent and not _is_json(headers.get("content-type", "")):
            return tenant, ("unsupported_media_type", ())
        declared = headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.config.max_body_size
        ):
            return tenant, ("body_too_large", _CLOSE)
        return tenant, None

    def _tenant(self, headers: Mapping[str, str]) -> tuple[str | None, str | None]:
        value = headers.get(self.config.tenant_header.lower())
        if value is None:
            default = self.config.default_tenant
            return (default, None) if default is not None else (None, "missing_tenant")
        if check_tenant(value) is not None:
            return None, "invalid_tenant"
        return value, None

    def admit(self, tenant: str | None, run_id: str) -> Response | None:
        """Admission: draining, the in-flight limit, the tenant's rate limit.

        On success the request counts as in flight; the caller must `_exit`.
        """
        refusal = self._enter()
        if refusal is not None:
            return problem_response(refusal, run_id, headers=_CLOSE if self.draining else ())
        limiter = self.config.tenant_limiter
        if limiter is not None and tenant is not None:
            try:
                limiter.acquire(tenant, max_wait=0)
            except seawall.RateLimitedError as exc:
                self._exit()
                if self.metrics is not None:
                    self.metrics.tenant_rejections.inc()
                return problem_response("tenant_rate_limited", run_id, retry_after=exc.retry_after)
        return None

    async def _run_handler(
        self, route: _Route, request: Request, started: float, span: ServerSpan | None
    ) -> Response:
        refused = self.admit(request.tenant_id, request.run_id)
        if refused is not None:
            return self._done(
                request.method, request.path, started, request.run_id, request.tenant_id, refused
            )
        handler = route.handler
        if handler is None:  # pragma: no cover -- handler routes always have one
            raise AssertionError("unreachable")
        token = TENANT.set(request.tenant_id)
        try:
            if route.is_async:
                result = await handler(request)  # type: ignore[misc]
            else:
                result = await anyio.to_thread.run_sync(handler, request)
                if inspect.isawaitable(result):
                    result = await result
            if not isinstance(result, Response):
                msg = f"handler for {route.path} returned {type(result).__name__}, not Response"
                raise TypeError(msg)  # noqa: TRY301 -- logged with the others below
            response = result
        except Exception as exc:  # noqa: BLE001 -- every failure is a 500, logged
            if span is not None:
                span.error_type = qualified_name(exc)
            log_failure(
                logger,
                exc,
                "handler for %s failed (run_id=%s)",
                route.path,
                request.run_id,
                fields={"run_id": request.run_id},
            )
            response = problem_response("internal_error", request.run_id)
        finally:
            TENANT.reset(token)
            self._exit()
        return self._done(
            request.method, request.path, started, request.run_id, request.tenant_id, response
        )

    async def _probe(self, route: _Route, method: str) -> Response:
        if method not in {"GET", "HEAD"}:
            return problem_response("method_not_allowed", headers=(("Allow", "GET, HEAD"),))
        if route.kind is _Kind.HEALTHZ:
            return Response(200, b'{"status":"ok"}')
        if route.kind is _Kind.METRICS:
            metrics = self.metrics
            if metrics is None:  # pragma: no cover -- the route exists only with metrics
                raise AssertionError("unreachable")
            body, content_type = metrics.render()
            return Response(200, body, content_type)
        return await self._readiness()

    async def _readiness(self) -> Response:
        state = self._state
        checks: dict[str, str] = {}
        ok = state is _State.READY
        if ok:
            now = self.config.clock.now()
            for check in self._checks:
                if now - check.checked_at >= self.config.readiness_cache:
                    check.ok = await self._run_check(check)
                    check.checked_at = self.config.clock.now()
                checks[check.name] = "ok" if check.ok else "failing"
                if check.required and not check.ok:
                    ok = False
        status = "ready" if ok else ("not_ready" if state is _State.READY else state.value)
        body = dumps({"status": status, "checks": checks})
        if ok:
            return Response(200, body)
        return Response(503, body, headers=(("Retry-After", "1"),))

    async def _run_check(self, check: _Check) -> bool:
        try:
            with anyio.fail_after(self.config.readiness_timeout):
                if inspect.iscoroutinefunction(check.check):
                    result = await check.check()
                else:
                    result = await anyio.to_thread.run_sync(check.check, abandon_on_cancel=True)
                    if inspect.isawaitable(result):
                        result = await result
        except TimeoutError:
            logger.warning("readiness check %r timed out", check.name)
            return False
        except Exception as exc:  # noqa: BLE001 -- whatever a check raises, it failed
            log_failure(logger, exc, "readiness check %r failed", check.name, level=logging.WARNING)
            return False
        return bool(result)

    def _done(  # noqa: PLR0917 -- private, called with the request's fields in order
        self,
        method: str,
        path: str,
        started: float,
        run_id: str,
        tenant: str | None,
        response: Response,
        *,
        outcome: str | None = None,
    ) -> Response:
        self.record(method, path, started, run_id, tenant, response.status, outcome)
        if run_id:
            return Response(
                response.status,
                response.body,
                response.content_type,
                (*response.headers, ("X-Request-ID", run_id)),
            )
        return response

    def record(  # noqa: PLR0917 -- the fields of one access log record, in order
        self,
        method: str,
        path: str,
        started: float,
        run_id: str,
        tenant: str | None,
        status: int,
        outcome: str | None = None,
    ) -> None:
        """Write the access log record and the request metrics for one request."""
        duration = self.config.clock.now() - started
        route = path if path in self._routes else "unmatched"
        if self.metrics is not None:
            self.metrics.observe(method, route, status, duration)
        if self.config.access_log and access_logger.isEnabledFor(logging.INFO):
            fields: dict[str, Any] = {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "run_id": run_id,
                "tenant_id": tenant,
            }
            if outcome is not None:
                fields["outcome"] = outcome
            ids = current_log_ids()  # the request's server span is current here
            if ids is not None:
                fields["trace_id"], fields["span_id"] = ids
            access_logger.info("%s %s %d", method, path, status, extra={"serving": fields})


def _end_aborted(span: ServerSpan, exc: BaseException) -> None:
    """End *span* of a request that raised *exc* instead of answering."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        span.end(None, outcome="cancelled")
    elif isinstance(exc, ClientDisconnectedError):
        span.end(None, outcome="disconnected")
    else:
        span.end(None, error=qualified_name(exc))


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


@final
class StreamCall:
    """An agent call admitted past parsing: `invoke` for JSON, `run` for SSE."""

    __slots__ = (
        "_gone",
        "_input",
        "_route",
        "_run_id",
        "_scope",
        "_service",
        "_span",
        "_started",
        "_tenant",
    )

    def __init__(  # noqa: PLR0917 -- built in one place, by Service.handle
        self,
        service: Service,
        route: _Route,
        input_: Any,
        tenant: str | None,
        run_id: str,
        started: float,
        span: ServerSpan | None = None,
    ) -> None:
        self._service = service
        self._span = span
        self._route = route
        self._input = input_
        self._tenant = tenant
        self._run_id = run_id
        self._started = started
        self._scope: anyio.CancelScope | None = None
        self._gone = False

    @property
    def run_id(self) -> str:
        """The request's id (also its ``X-Request-ID``)."""
        return self._run_id

    def client_gone(self) -> None:
        """Cancel the stream because the client left (adapters call it in the stream's loop)."""
        self._gone = True
        if self._scope is not None:
            self._scope.cancel()

    def _metadata(self) -> dict[str, Any]:
        return {"run_id": self._run_id, "tenant_id": self._tenant}

    async def _call_invoke(self) -> Any:
        agent = self._route.agent
        if self._route.is_async:
            return await agent.invoke(self._input)
        result = await anyio.to_thread.run_sync(agent.invoke, self._input, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def invoke(self) -> Response:
        """Run ``agent.invoke`` and build the JSON response or problem."""
        service = self._service
        refused = service.admit(self._tenant, self._run_id)
        if refused is not None:
            return self._finish(refused)
        token = TENANT.set(self._tenant)
        entry: _Active | None = None
        response: Response
        try:
            with anyio.CancelScope() as scope:
                entry = _Active(scope)
                service._register(entry)  # noqa: SLF001 -- a friend of Service
                timeout = service.request_timeout
                if timeout is None:
                    output = await self._call_invoke()
                else:
                    async with timeout.scope():
                        output = await self._call_invoke()
                body = dumps({"output": output, "metadata": self._metadata()})
                response = Response(200, body)
            if scope.cancelled_caught:
                response = problem_response("shutting_down", self._run_id)
        except anyio.get_cancelled_exc_class():
            # The client left (or the server's own scope ended): nobody gets an answer,
            # but the access log and metrics still count the request, as nginx's 499.
            service.record(
                "POST",
                self._route.path,
                self._started,
                self._run_id,
                self._tenant,
                499,
                "cancelled",
            )
            raise
        except Exception as exc:  # noqa: BLE001 -- every failure becomes a problem, logged
            response = self._problem(exc)
        finally:
            TENANT.reset(token)
            if entry is not None:
                service._unregister(entry)  # noqa: SLF001
            service._exit()  # noqa: SLF001
        return self._finish(response)

    def _problem(self, exc: Exception) -> Response:
        code, retry_after, detail = problem_for_exception(exc)
        if self._span is not None:
            self._span.error_type = qualified_name(exc)
        if code == "internal_error":
            log_failure(
                logger,
                exc,
                "agent at %s failed (run_id=%s)",
                self._route.path,
                self._run_id,
                fields={"run_id": self._run_id},
            )
        return problem_response(code, self._run_id, retry_after=retry_after, detail=detail)

    def _finish(self, response: Response, outcome: str | None = None) -> Response:
        return self._service._done(  # noqa: SLF001
            "POST",
            self._route.path,
            self._started,
            self._run_id,
            self._tenant,
            response,
            outcome=outcome,
        )

    async def run(
        self,
        start: AsyncStart,
        send: AsyncSend,
        *,
        disconnected: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Serve the stream: *start(status, headers)* once, then *send(bytes)* chunks.

        Errors before the agent's first event are plain HTTP problems; after it, a
        terminal ``error`` event. Returns normally when the client disconnects: the
        adapter's *send* raised `ClientDisconnectedError`, it called `client_gone`, or
        the awaitable *disconnected()* (run alongside, cancelled at the end) returned.
        """
        if disconnected is None:
            await self._run(start, send)
            return

        async def watch() -> None:
            await disconnected()
            self.client_gone()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await self._run(start, send)
            tg.cancel_scope.cancel()

    async def _run(self, start: AsyncStart, send: AsyncSend) -> None:
        span = self._span
        if span is None:
            await self._run_stream(start, send)
            return
        token = span.attach()  # current for the stream's whole life, agent included
        try:
            await self._run_stream(start, send)
        except BaseException as exc:
            _end_aborted(span, exc)  # the stream's own end, if it got there, came first
            raise
        finally:
            span.detach(token)

    async def _run_stream(self, start: AsyncStart, send: AsyncSend) -> None:
        service = self._service
        span = self._span
        refused = service.admit(self._tenant, self._run_id)
        if refused is not None:
            response = self._finish(refused)
            if span is not None:
                span.end(response.status)
            await _send_response(start, send, response)
            return
        runner = _StreamRunner(self, start, send)
        token = TENANT.set(self._tenant)
        if service.metrics is not None:
            service.metrics.streams_open.inc()
        try:
            with anyio.CancelScope() as self._scope:
                if self._gone:
                    self._scope.cancel()
                await runner.run()
        finally:
            TENANT.reset(token)
            if service.metrics is not None:
                service.metrics.streams_open.dec()
            service._exit()  # noqa: SLF001
            outcome = "disconnected" if self._gone or runner.disconnected else runner.outcome
            service.record(
                "POST",
                self._route.path,
                self._started,
                self._run_id,
                self._tenant,
                runner.status,
                outcome,
            )
            if span is not None:
                span.error_type = runner.failure_type  # for a 5xx sent before the 200
                span.end(runner.status, outcome=outcome, error=runner.error_type(outcome))


async def _send_response(start: AsyncStart, send: AsyncSend, response: Response) -> None:
    headers = [("Content-Type", response.content_type), *response.headers]
    headers.append(("Content-Length", str(len(response.body))))
    try:
        await start(response.status, headers)
        await send(response.body)
    except ClientDisconnectedError:
        return


@final
class _StreamRunner:
    """The state of one SSE stream: what was sent, and how it ended."""

    __slots__ = (
        "_call",
        "_ids",
        "_last_write",
        "_lock",
        "_send",
        "_start",
        "committed",
        "disconnected",
        "failure_type",
        "outcome",
        "status",
    )

    def __init__(self, call: StreamCall, start: AsyncStart, send: AsyncSend) -> None:
        self._call = call
        self._start = start
        self._send = send
        self._ids = itertools.count()
        self._lock = anyio.Lock()
        self._last_write = call._service.config.clock.now()  # noqa: SLF001
        self.committed = False
        self.disconnected = False
        self.outcome = "completed"
        self.status = 200
        self.failure_type: str | None = None

    def error_type(self, outcome: str) -> str | None:
        """Return the span's ``error.type`` if the stream ended in a server error, else None.

        After its 200 a stream can only fail through its terminal event: a problem code
        of status 5xx. The type is the agent's exception's, else the code.
        """
        problem = PROBLEMS.get(outcome)
        if problem is None or problem.status < 500:  # noqa: PLR2004
            return None
        return self.failure_type or outcome

    async def _write(self, event: str | None, payload: bytes = b"") -> None:
        """Send one event (or a ping comment when *event* is ``None``), headers first."""
        call = self._call
        try:
            if not self.committed:
                self.committed = True
                headers = [
                    ("Content-Type", SSE_TYPE),
                    *SSE_HEADERS,
                    ("X-Request-ID", call._run_id),  # noqa: SLF001
                ]
                await self._start(200, headers)
                meta = dumps(call._metadata())  # noqa: SLF001
                await self._send(sse_event("metadata", next(self._ids), meta))
            if event is None:
                await self._send(PING)
            else:
                await self._send(sse_event(event, next(self._ids), payload))
        except ClientDisconnectedError:
            # Cancels the whole stream, agent included; the checkpoint raises it here.
            self.disconnected = True
            call.client_gone()
            await anyio.lowlevel.checkpoint()
        self._last_write = call._service.config.clock.now()  # noqa: SLF001

    async def _locked_write(self, event: str | None, payload: bytes = b"") -> None:
        async with self._lock:
            await self._write(event, payload)

    async def _pinger(self, clock: seawall.Clock, interval: float) -> None:
        while True:
            wait = self._last_write + interval - clock.now()
            if wait > 0:
                await clock.asleep(wait)
                continue
            await self._locked_write(None)

    async def run(self) -> None:
        call = self._call
        service = call._service  # noqa: SLF001
        config = service.config
        failure: Exception | None = None
        with anyio.CancelScope() as agent_scope:
            entry = _Active(agent_scope)
            service._register(entry)  # noqa: SLF001
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pinger, config.clock, config.ping_interval)
                    try:
                        async with contextlib.aclosing(_events(call)) as events:
                            async for item in events:
                                await self._locked_write("data", dumps(item))
                    except Exception as exc:  # noqa: BLE001 -- reported as a terminal event
                        failure = exc
                    tg.cancel_scope.cancel()
            finally:
                service._unregister(entry)  # noqa: SLF001
        if self.disconnected or call._gone:  # noqa: SLF001
            return
        if entry.expired and agent_scope.cancelled_caught:
            await self._terminal_problem("shutting_down", None, None)
            self.outcome = "shutting_down"
            return
        if failure is not None:
            code, retry_after, detail = problem_for_exception(failure)
            self.failure_type = qualified_name(failure)
            if code == "internal_error":
                log_failure(
                    logger,
                    failure,
                    "agent stream at %s failed (run_id=%s)",
                    call._route.path,  # noqa: SLF001
                    call._run_id,  # noqa: SLF001
                    fields={"run_id": call._run_id},  # noqa: SLF001
                )
            self.outcome = code
            await self._terminal_problem(code, retry_after, detail)
            return
        await self._write("end", b"{}")

    async def _terminal_problem(
        self, code: str, retry_after: float | None, detail: str | None
    ) -> None:
        call = self._call
        if not self.committed:
            response = problem_response(
                code,
                call._run_id,  # noqa: SLF001
                retry_after=retry_after,
                detail=detail,
            )
            self.status = response.status
            headers = (*response.headers, ("X-Request-ID", call._run_id))  # noqa: SLF001
            await _send_response(
                self._start,
                self._send,
                Response(response.status, response.body, response.content_type, headers),
            )
            return
        await self._write("error", error_payload(code, detail))


async def _events(call: StreamCall) -> AsyncGenerator[Any, None]:
    """Yield the agent's events, whatever its style: async or sync stream, or invoke."""
    route = call._route  # noqa: SLF001
    agent = route.agent
    if not route.has_stream:
        yield await call._call_invoke()  # noqa: SLF001
        return
    source = agent.stream(call._input)  # noqa: SLF001
    if inspect.isawaitable(source):
        source = await source
    if hasattr(source, "__aiter__"):
        iterator: AsyncIterator[Any] = source.__aiter__()
        try:
            async for item in iterator:
                yield item
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
        return
    sync_iter: Iterator[Any] = iter(source)
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, sync_iter, _END)
            if item is _END:
                return
            yield item
    finally:
        close = getattr(sync_iter, "close", None)
        if close is not None:
            close()
