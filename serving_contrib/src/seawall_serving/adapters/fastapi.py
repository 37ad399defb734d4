"""The ``fastapi`` adapter: agents as FastAPI routes, documented in OpenAPI.

`FastAPIAdapter.router` is a `fastapi.APIRouter` with one documented operation per
agent route (``POST {path}/invoke`` and ``POST {path}/stream``): a summary, the request
body ``{"input": ...}``, the 200 responses and every problem+json error. Include it in
your own FastAPI app, or serve `FastAPIAdapter.app`, which adds the probes
(``/healthz``, ``/readyz``, ``/metrics``) and answers every other path like the other
adapters do. ``pip install 'seawall-serving[fastapi]'``.

The routes do not let FastAPI parse or validate anything: each returns a response that
hands the raw ASGI request to the same code as `seawall_serving.AsgiAdapter`, so status
codes, problems, SSE framing and disconnects are the same on every adapter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, cast, final

from fastapi import APIRouter, FastAPI
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from seawall_serving._base import AdapterBase
from seawall_serving._config import Config
from seawall_serving._types import Agent, Handler
from seawall_serving._wire import PROBLEM_TYPE, PROBLEMS, SSE_TYPE
from seawall_serving.adapters.asgi import asgi_serve, uvicorn_serve, uvicorn_shutdown


__all__ = ("FastAPIAdapter",)

#: The problem statuses every agent operation documents.
AGENT_PROBLEM_STATUSES: Final = (400, 413, 415, 422, 429, 500, 503, 504)

_JSON: Final = "application/json"

#: The probes `FastAPIAdapter.app` documents: summary, description, responses.
_PROBES: Final[dict[str, tuple[str, str, dict[int | str, dict[str, Any]]]]] = {
    "/healthz": (
        "Liveness",
        "200 while the process serves requests.",
        {200: {"description": "Alive.", "content": {_JSON: {}}}},
    ),
    "/readyz": (
        "Readiness",
        "200 once the server started and while no required readiness check fails.",
        {
            200: {"description": "Ready; the body lists the checks.", "content": {_JSON: {}}},
            503: {"description": "Starting, draining or failing a check.", "content": {_JSON: {}}},
        },
    ),
    "/metrics": (
        "Metrics",
        "The Prometheus metrics of requests, streams and tenants.",
        {200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    ),
}

_PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "code", "retryable"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:seawall-serving:problem:malformed_json"]},
        "title": {"type": "string", "description": "The fixed message of the code."},
        "status": {"type": "integer", "description": "The HTTP status."},
        "code": {"type": "string", "enum": sorted(PROBLEMS)},
        "retryable": {"type": "boolean"},
        "detail": {"type": "string", "description": "Only for invalid_input."},
        "run_id": {"type": "string", "description": "The request's X-Request-ID."},
    },
}

_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "title": "AgentRequest",
    "type": "object",
    "required": ["input"],
    "properties": {"input": {"description": "The agent's input: any JSON value."}},
}

_METADATA_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "run_id": {"type": "string"},
        "tenant_id": {"type": ["string", "null"]},
    },
}

_INVOKE_SCHEMA: Final[dict[str, Any]] = {
    "title": "AgentResponse",
    "type": "object",
    "required": ["output", "metadata"],
    "properties": {
        "output": {"description": "What the agent's invoke returned."},
        "metadata": _METADATA_SCHEMA,
    },
}

_STREAM_DESCRIPTION: Final = (
    "Server-sent events: one `metadata` event (run_id, tenant_id), a `data` event per "
    "item the agent yields, then `end`, or a terminal `error` event "
    "(code, message, retryable) if the agent fails after its first item. "
    "`: ping` comments keep an idle stream open."
)


def _problem_responses(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        codes = [p for p in PROBLEMS.values() if p.status == status]
        response: dict[str, Any] = {
            "description": "\n".join(f"- `{p.code}`: {p.message}" for p in codes),
            "content": {PROBLEM_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        if status in {429, 503}:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = response
    return responses


class _ServiceApp:
    """The ASGI app behind one route: the adapter's service, at a fixed service path."""

    __slots__ = ("_path", "_serve")

    def __init__(
        self, serve: Callable[[Scope, Receive, Send], Awaitable[None]], path: str | None
    ) -> None:
        self._serve = serve
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._path is not None:
            # The service knows the registered path; an include prefix or mount is ours.
            scope = {**scope, "path": self._path, "root_path": ""}
        await self._serve(scope, receive, send)


class _ServiceResponse(Response):
    """What a documented route returns: the service writes the response itself."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__()
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
        background: BackgroundTask | None = self.background
        if background is not None:  # FastAPI's BackgroundTasks, if a dependency added any
            await background()


def _endpoint(app: ASGIApp) -> Callable[[], Awaitable[Response]]:
    async def endpoint() -> Response:  # async: FastAPI would run a sync one in a thread
        return _ServiceResponse(app)

    return endpoint


@final
class FastAPIAdapter(AdapterBase):
    """Agents as a FastAPI router, or a whole FastAPI app.

    Example::

        adapter = seawall_serving.FastAPIAdapter(config)
        adapter.register_agent("/v1/chat", agent)

        app = FastAPI()
        app.include_router(adapter.router, prefix="/agents")  # your app, documented
        # or: uvicorn module:adapter.app, or adapter.serve(":8080")

    Register agents before including the router in another app: older FastAPI
    versions copy a router's routes when it is included. `app` stays in sync by itself.

    The service counts as started (``/readyz`` may answer 200) from the lifespan
    startup of `app`, or of any app that includes `router`, or else from the first
    request. It drains on lifespan shutdown if nobody called `shutdown`.

    Args:
        config: The settings; `seawall_serving.Config()` by default.

    .. versionadded:: 0.1.0
    """

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._router = APIRouter(lifespan=self._lifespan)
        self._app: FastAPI | None = None

    @property
    def router(self) -> APIRouter:
        """The agent and handler routes, for `fastapi.FastAPI.include_router`."""
        return self._router

    @property
    def app(self) -> FastAPI:
        """A FastAPI app with every route, the probes and the service's 404s.

        Built on first use; agents registered later are added to it.
        """
        if self._app is None:
            app = FastAPI(
                title="seawall-serving",
                lifespan=self._lifespan,
                redirect_slashes=False,  # the service answers every unknown path
            )
            for path, kind in self.service.routes().items():
                self._mount(app.router, path, kind)
            # Whatever no route matches goes to the service too: its problem+json 404.
            app.router.default = _ServiceApp(self._serve_asgi, None)
            self._app = app
        return self._app

    def register_agent(self, path: str, agent: Agent) -> None:
        """Mount ``POST {path}/invoke`` (JSON) and ``POST {path}/stream`` (SSE) for *agent*."""
        before = set(self.service.routes())
        self.service.register_agent(path, agent)
        self._mount_new(before)

    def register_handler(self, path: str, handler: Handler) -> None:
        """Mount *handler* (``Request -> Response``, sync or async) at *path*, any method.

        Handler routes are left out of the OpenAPI schema: their methods and bodies are
        the handler's own business.
        """
        before = set(self.service.routes())
        self.service.register_handler(path, handler)
        self._mount_new(before)

    def serve(self, addr: str = ":8080") -> None:
        """Serve `app` under uvicorn on *addr* until `shutdown` or SIGTERM/SIGINT."""
        uvicorn_serve(self, self.app, addr)

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain (see `seawall_serving.Service.drain`), then stop uvicorn and return."""
        uvicorn_shutdown(self, timeout)

    # -- internals -----------------------------------------------------------------------

    def _mount_new(self, before: set[str]) -> None:
        routes = self.service.routes()
        for path, kind in routes.items():
            if path in before:
                continue
            self._mount(self._router, path, kind)
            if self._app is not None:
                self._mount(self._app.router, path, kind)

    def _mount(self, router: APIRouter, path: str, kind: str) -> None:
        """Add the routes serving *path* to *router*: documented, then any method."""
        app = _ServiceApp(self._serve_asgi, path)
        if kind in {"invoke", "stream"}:
            router.add_api_route(path, _endpoint(app), **self._operation(path, kind))
        elif path in _PROBES:
            if router is self._router:  # probes belong to the app, not to the router
                return
            summary, description, responses = _PROBES[path]
            router.add_api_route(
                path,
                _endpoint(app),
                methods=["GET"],
                status_code=200,
                summary=summary,
                description=description,
                response_description=responses[200]["description"],
                responses=responses,
                operation_id=kind,
                name=f"seawall_serving:{kind}",
                response_class=_ServiceResponse,
                response_model=None,
                tags=["probes"],
            )
        # Every other method reaches the service too, which answers 405 problem+json.
        # An ASGI app as endpoint is what Starlette routes without a method filter.
        router.add_route(path, cast("Any", app), include_in_schema=False)

    def _operation(self, path: str, kind: str) -> dict[str, Any]:
        base = path.rpartition("/")[0] or "/"
        slug = "".join(c if c.isalnum() else "_" for c in base).strip("_") or "root"
        config = self.config
        tenant = {
            "name": config.tenant_header,
            "in": "header",
            "required": config.default_tenant is None,
            "description": "The tenant: 1 to 64 letters, digits, '.', '_' or '-'.",
            "schema": {"type": "string"},
        }
        if kind == "invoke":
            summary = f"Invoke the agent at {base}"
            success = {
                "description": "The agent's output.",
                "content": {_JSON: {"schema": _INVOKE_SCHEMA}},
            }
        else:
            summary = f"Stream the agent at {base}"
            success = {
                "description": _STREAM_DESCRIPTION,
                "content": {SSE_TYPE: {"schema": {"type": "string"}}},
            }
        return {
            "methods": ["POST"],
            "status_code": 200,
            "summary": summary,
            "operation_id": f"{kind}_{slug}",
            "name": f"seawall_serving:{kind}:{base}",
            "response_class": _ServiceResponse,
            "response_model": None,
            "response_description": success["description"],
            "responses": {200: success, **_problem_responses(AGENT_PROBLEM_STATUSES)},
            # FastAPI must not read the body: the service does, with its limits.
            "openapi_extra": {
                "parameters": [tenant],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _REQUEST_SCHEMA}},
                },
            },
        }

    async def _serve_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Mounted in an app whose lifespan never ran: the first request starts us.
        self._mark_started()
        await asgi_serve(self, scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Any) -> AsyncIterator[None]:
        self._mark_started()
        yield
        if not self.service.draining:
            await self.service.adrain()
