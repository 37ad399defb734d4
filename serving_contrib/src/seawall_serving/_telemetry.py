"""OpenTelemetry for seawall-serving: HTTP server spans, and OTLP export set up from ``OTEL_*``.

Server spans need only opentelemetry-api (``seawall-serving[otel]``), imported on the
first request a `Service` traces: without it nothing is imported and nothing changes.
With the API but no SDK, the API's no-op tracer makes a span cost a few microseconds.
`configure_from_env` also needs opentelemetry-sdk and an OTLP exporter package.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Final, final
from urllib.parse import unquote_plus, urlsplit

from seawall_serving._logging import DEFAULT_REDACT, Redactor


if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue


__all__ = (
    "ATTR_OUTCOME",
    "ATTR_RUN_ID",
    "ATTR_TENANT_ID",
    "INSTRUMENTATION_SCOPE",
    "ServerSpan",
    "Tracing",
    "configure_from_env",
    "redact_query",
    "split_host",
    "tracer_provider_from_env",
)

logger: Final = logging.getLogger("seawall_serving")

#: The name (and version) of the tracer that makes the server spans.
INSTRUMENTATION_SCOPE: Final = "seawall_serving"
#: Span attribute: the request's tenant (validated, so safe to record).
ATTR_TENANT_ID: Final = "seawall_serving.tenant.id"
#: Span attribute: the request's run id, as in ``X-Request-ID`` and the access log.
ATTR_RUN_ID: Final = "seawall_serving.run.id"
#: Span attribute: how a stream (or a request without a response) ended, as the access
#: log's ``outcome``: ``completed``, ``disconnected``, ``cancelled``, ``shutting_down``
#: or a problem code.
ATTR_OUTCOME: Final = "seawall_serving.outcome"

# The stable HTTP semantic conventions (written out: no semconv package needed).
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL: Final = "http.request.method_original"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_QUERY: Final = "url.query"
URL_SCHEME: Final = "url.scheme"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
CLIENT_ADDRESS: Final = "client.address"
USER_AGENT_ORIGINAL: Final = "user_agent.original"
ERROR_TYPE: Final = "error.type"

KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)

#: Query parameters whose values ``url.query`` never records: the logs' secret names,
#: plus the signatures and keys the HTTP semantic conventions name.
QUERY_REDACTOR: Final = Redactor(
    (*DEFAULT_REDACT, "key", "sig", "signature", "awsaccesskeyid", "credential")
)


def redact_query(query: str) -> str:
    """Replace the values of secret-looking parameters of *query* with ``REDACTED``."""
    if not query:
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, sep, value = part.partition("=")
        if sep and value and QUERY_REDACTOR.is_secret(unquote_plus(name)):
            parts[index] = f"{name}=REDACTED"
    return "&".join(parts)


def split_host(value: str) -> tuple[str, int | None]:
    """Split a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) into its parts."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:  # a name, or a bare IPv6 address
        host, port = value, ""
    number = int(port) if port.isdigit() and len(port) <= 5 else None  # noqa: PLR2004
    return host, number if number is not None and number <= 65535 else None  # noqa: PLR2004


def _version() -> str | None:
    try:
        return version("seawall-serving")
    except PackageNotFoundError:  # pragma: no cover -- running from a source tree
        return None


@final
class _Api:
    """The tracer, and the OpenTelemetry API functions a traced request uses.

    Imported when the first request is traced; a `Tracing` keeps one.
    """

    __slots__ = ("attach", "detach", "error", "extract", "in_context", "server", "tracer")

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry import context, propagate, trace  # noqa: PLC0415 -- optional
        from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: PLC0415

        self.tracer = tracer
        self.attach = context.attach
        self.detach = context.detach
        self.extract = propagate.extract
        self.in_context = trace.set_span_in_context
        self.server = SpanKind.SERVER
        self.error = Status(StatusCode.ERROR)


def _make_api(provider: TracerProvider | None) -> _Api | None:
    try:
        from opentelemetry import trace  # noqa: PLC0415 -- optional dependency
    except ImportError:
        logger.debug("opentelemetry-api is not installed: requests are not traced")
        return None
    source = provider if provider is not None else trace.get_tracer_provider()
    return _Api(source.get_tracer(INSTRUMENTATION_SCOPE, _version()))


@final
class Tracing:
    """The server spans of one `Service`: where they go, and how each one starts.

    The tracer is looked up on the first traced request, not before: from the tracer
    provider given to `set_provider`, else from the global one, which the application
    may set after the server was made (the API forwards to it).
    """

    __slots__ = ("_cell", "_lock", "_provider")

    def __init__(self) -> None:
        self._provider: TracerProvider | None = None
        # None until looked up; then a 1-tuple holding the API, or None without one.
        self._cell: tuple[_Api | None] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "unused" if self._cell is None else ("on" if self._cell[0] else "off")
        return f"Tracing({state}, provider={self._provider!r})"

    def set_provider(self, provider: TracerProvider | None) -> None:
        with self._lock:
            self._provider = provider
            self._cell = None

    def _api(self) -> _Api | None:
        cell = self._cell
        if cell is None:
            with self._lock:
                cell = self._cell
                if cell is None:
                    cell = (_make_api(self._provider),)
                    self._cell = cell
        return cell[0]

    def start(  # noqa: C901, PLR0917 -- the request's fields, in order
        self,
        method: str,
        path: str,
        route: str | None,
        query: str,
        headers: Mapping[str, str],
        run_id: str,
        *,
        scheme: str,
        server_address: str | None,
        server_port: int | None,
        client_address: str | None,
    ) -> ServerSpan | None:
        """Start the SERVER span of one request, child of its ``traceparent`` if any."""
        api = self._api()
        if api is None:
            return None
        if method in KNOWN_METHODS:
            name_method = method
            attributes: dict[str, AttributeValue] = {HTTP_REQUEST_METHOD: method}
        else:
            name_method = "HTTP"
            attributes = {HTTP_REQUEST_METHOD: "_OTHER", HTTP_REQUEST_METHOD_ORIGINAL: method}
        attributes[URL_PATH] = path
        attributes[URL_SCHEME] = scheme
        if query:
            attributes[URL_QUERY] = redact_query(query)
        if route is not None:
            attributes[HTTP_ROUTE] = route
        if server_address is None:
            host = headers.get("host")
            if host:
                server_address, port = split_host(host)
                server_port = port if server_port is None else server_port
        if server_address:
            attributes[SERVER_ADDRESS] = server_address
            if server_port is not None:
                attributes[SERVER_PORT] = server_port
        if client_address:
            attributes[CLIENT_ADDRESS] = client_address
        agent = headers.get("user-agent")
        if agent:
            attributes[USER_AGENT_ORIGINAL] = agent
        attributes[ATTR_RUN_ID] = run_id
        name = name_method if route is None else f"{name_method} {route}"
        try:
            parent = api.extract(headers)
            span = api.tracer.start_span(name, parent, api.server, attributes)
        except Exception:  # tracing never fails a request
            logger.exception("could not start the server span of %s %s", method, route)
            return None
        return ServerSpan(api, span, api.in_context(span, parent))


@final
class ServerSpan:
    """One request's SERVER span: made current while the request runs, ended once."""

    __slots__ = ("_api", "_context", "_ended", "error_type", "span")

    def __init__(self, api: _Api, span: Span, context: Context) -> None:
        self._api = api
        self.span = span
        self._context = context
        self._ended = False
        #: The qualified name of the exception that failed the request, if one did.
        self.error_type: str | None = None

    def __repr__(self) -> str:
        return f"ServerSpan({self.span!r}, ended={self._ended})"

    def attach(self) -> Token[Context]:
        """Make the span current in this context; `detach` the token in the same one."""
        return self._api.attach(self._context)

    def detach(self, token: Token[Context]) -> None:
        self._api.detach(token)

    def set_tenant(self, tenant: str | None) -> None:
        if tenant is not None:
            self.span.set_attribute(ATTR_TENANT_ID, tenant)

    def end(
        self, status: int | None, *, outcome: str | None = None, error: str | None = None
    ) -> None:
        """End the span with the response's *status* (``None`` when none was sent).

        It is an error (``error.type``, status ERROR) for a 5xx status, or when *error*
        names one (a stream that failed after its 200): ``error.type`` is *error*, the
        failing exception's type, or the status code.
        """
        if self._ended:
            return
        self._ended = True
        span = self.span
        try:
            if span.is_recording():
                if status is not None:
                    span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
                if outcome is not None:
                    span.set_attribute(ATTR_OUTCOME, outcome)
                if error is not None or (status is not None and status >= 500):  # noqa: PLR2004
                    span.set_attribute(ERROR_TYPE, error or self.error_type or str(status))
                    span.set_status(self._api.error)
        finally:
            span.end()


# -- OTLP export from the environment ----------------------------------------------------

_EXPORTERS: Final = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}


def _shown(endpoint: str) -> str:
    """*endpoint* without the credentials or query a URL may carry, for the log."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(unparsable endpoint)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def tracer_provider_from_env() -> SdkTracerProvider | None:  # noqa: PLR0911 -- one per reason
    """Build an SDK tracer provider exporting with OTLP as ``OTEL_*`` says, or ``None``.

    Configured when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, or ``OTEL_TRACES_EXPORTER`` names
    ``otlp``. Returns ``None``, saying why in an INFO log record, when it is not, when
    ``OTEL_SDK_DISABLED`` is true or ``OTEL_TRACES_EXPORTER`` is ``none``, or when the
    SDK or the exporter package is missing. The global provider is left alone.
    """
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        logger.info("OpenTelemetry export is off: OTEL_SDK_DISABLED is true")
        return None
    exporters = {e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").lower().split(",")}
    exporters.discard("")
    endpoint = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or ""
    ).strip()
    if "none" in exporters:
        logger.info("OpenTelemetry export is off: OTEL_TRACES_EXPORTER is none")
        return None
    if exporters and "otlp" not in exporters:
        logger.info(
            "OpenTelemetry export is off: OTEL_TRACES_EXPORTER is %s, and only otlp is "
            "set up here (set up the SDK yourself for others)",
            ",".join(sorted(exporters)),
        )
        return None
    if not exporters and not endpoint:
        logger.info(
            "OpenTelemetry export is off: neither OTEL_EXPORTER_OTLP_ENDPOINT, "
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_TRACES_EXPORTER=otlp is set"
        )
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _EXPORTERS:
        logger.info(
            "OpenTelemetry export is off: OTLP protocol %r is not supported (use "
            "http/protobuf or grpc)",
            protocol,
        )
        return None
    module_name, package = _EXPORTERS[protocol]
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 -- optional
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        logger.info("OpenTelemetry export is off: opentelemetry-sdk is not installed")
        return None
    try:
        exporter_class = importlib.import_module(module_name).OTLPSpanExporter
    except ImportError:
        logger.info("OpenTelemetry export is off: %s is not installed", package)
        return None
    provider = TracerProvider(resource=Resource.create())  # reads OTEL_SERVICE_NAME and
    provider.add_span_processor(BatchSpanProcessor(exporter_class()))  # the exporter OTEL_*
    logger.info(
        "OpenTelemetry: exporting traces with OTLP/%s to %s",
        protocol,
        _shown(endpoint) if endpoint else "the default endpoint",
    )
    return provider


def configure_from_env() -> Callable[[], None] | None:
    """Export traces with OTLP as the standard ``OTEL_*`` environment variables say.

    When ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set
    (or ``OTEL_TRACES_EXPORTER=otlp``), builds an SDK ``TracerProvider`` whose resource
    comes from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, with a batch span
    processor and the OTLP exporter (http/protobuf, or gRPC when
    ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``; the exporter reads its endpoint, headers,
    timeout and TLS settings from ``OTEL_*`` itself), and makes it the global tracer
    provider, which every `seawall_serving.Service` and `seawall.otel.OpenTelemetryHook`
    uses by default.

    Returns a function that flushes the spans still queued and shuts the provider down
    (call it once the server has drained), or ``None``, having logged why at INFO:
    nothing configured, ``OTEL_SDK_DISABLED``, the SDK or the exporter package missing,
    or a global tracer provider already set (by ``opentelemetry-instrument``, say).

    .. versionadded:: 0.1.0
    """
    provider = tracer_provider_from_env()
    if provider is None:
        return None
    from opentelemetry import trace  # noqa: PLC0415 -- the SDK brought the API

    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        logger.info(
            "OpenTelemetry: a global tracer provider is already set (%s); leaving it",
            type(current).__name__,
        )
        provider.shutdown()
        return None
    trace.set_tracer_provider(provider)
    lock = threading.Lock()
    done = False

    def shutdown() -> None:
        """Flush the queued spans (10 s at most), then shut the exporter down."""
        nonlocal done
        with lock:
            if done:
                return
            done = True
        provider.force_flush(10_000)
        provider.shutdown()

    return shutdown
