"""The contracts: what an agent is, what a handler is, what an adapter must do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, final, runtime_checkable


if TYPE_CHECKING:
    from seawall_serving._service import Service


__all__ = (
    "Agent",
    "Handler",
    "Request",
    "Response",
    "ServerAdapter",
    "StreamingAgent",
)


@runtime_checkable
class Agent(Protocol):
    """Anything with an ``invoke`` method: sync, or a coroutine function.

    ``invoke`` receives the request's ``input`` (any JSON value) and returns the
    output (anything `json.dumps` accepts). A sync ``invoke`` runs in a worker thread,
    so it never blocks the event loop.

    .. versionadded:: 0.1.0
    """

    def invoke(self, input: Any, /) -> Any: ...  # noqa: A002 -- the wire format's name


@runtime_checkable
class StreamingAgent(Agent, Protocol):
    """An agent that can also stream: ``stream`` returns an iterator of events.

    The iterator may be sync (a generator) or async (an async generator); each event is
    a JSON value sent as one SSE ``data`` event. An agent without ``stream`` can still
    be called on ``/stream``: its ``invoke`` output becomes the only ``data`` event.

    .. versionadded:: 0.1.0
    """

    def stream(self, input: Any, /) -> Iterator[Any] | AsyncIterator[Any]: ...  # noqa: A002


@final
@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as every adapter hands it to a registered handler.

    Attributes:
        method: The method, upper case (``"POST"``).
        path: The path, without the query string.
        query: The raw query string, without ``?`` (``""`` when absent).
        headers: Header names in lower case; repeated headers joined with ``", "``.
        body: The whole body (already checked against ``Config.max_body_size``).
        tenant_id: The validated tenant, or ``None``.
        run_id: The id of this request, also sent as ``X-Request-ID``.

    .. versionadded:: 0.1.0
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    query: str = ""
    tenant_id: str | None = None
    run_id: str = ""


@final
@dataclass(frozen=True, slots=True)
class Response:
    """A complete response: status, headers and body.

    Attributes:
        status: The HTTP status code.
        body: The body bytes.
        headers: Header pairs, in order; ``Content-Length`` is added by the adapter.
        content_type: The ``Content-Type`` header.

    .. versionadded:: 0.1.0
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


#: A handler for `ServerAdapter.register_handler`: a sync function or a coroutine
#: function from `Request` to `Response`. A sync handler runs in a worker thread.
Handler = Callable[[Request], "Response | Awaitable[Response]"]


class ServerAdapter(Protocol):
    """What every server adapter does, whatever framework is underneath.

    Adapters are created with a `seawall_serving.Config` (directly, or by name with
    `seawall_serving.new`), get agents and handlers registered, then serve until
    `shutdown` or SIGTERM/SIGINT.

    .. versionadded:: 0.1.0
    """

    @property
    def service(self) -> Service:
        """The framework-independent `seawall_serving.Service` behind the adapter."""
        ...

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)`` while serving (useful with port 0), else ``None``."""
        ...

    def register_agent(self, path: str, agent: Agent) -> None:
        """Mount ``POST {path}/invoke`` (JSON) and ``POST {path}/stream`` (SSE)."""
        ...

    def register_handler(self, path: str, handler: Handler) -> None:
        """Mount *handler* at exactly *path*, for any method."""
        ...

    def serve(self, addr: str = ":8080") -> None:
        """Listen on *addr* (``host:port``; ``:port`` means every interface) until shut down.

        Installs SIGTERM and SIGINT handlers when called from the main thread; either
        signal starts a graceful shutdown with ``Config.drain_timeout``.
        """
        ...

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain, then stop; safe from any thread, returns once stopped.

        Readiness fails, new requests get 503, in-flight work may finish within
        *timeout* (default ``Config.drain_timeout``), then the rest is ended with a
        documented error.
        """
        ...


AsyncSend = Callable[[bytes], Awaitable[None]]
AsyncStart = Callable[[int, list[tuple[str, str]]], Awaitable[None]]
