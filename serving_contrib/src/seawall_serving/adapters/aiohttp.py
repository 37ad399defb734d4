"""The ``aiohttp`` adapter: agents as an `aiohttp.web.Application`.

`AiohttpAdapter.app` routes every registered path, the probes and (through a catch-all)
every other path to the adapter's `seawall_serving.Service`, so it answers exactly as
the other adapters do. `AiohttpAdapter.serve` runs it with an `aiohttp.web.AppRunner`
in its own event loop, with seawall's drain order: readiness fails first, in-flight
requests finish, and only then does aiohttp stop. ``pip install 'seawall-serving[aiohttp]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final, final

import anyio
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from seawall_serving._base import AdapterBase, parse_addr, signals_start_shutdown
from seawall_serving._config import Config
from seawall_serving._service import BodyTooLargeError, ClientDisconnectedError, StreamCall
from seawall_serving._types import Agent, Handler, Response
from seawall_serving._wire import problem_response


__all__ = ("AiohttpAdapter",)

logger: Final = logging.getLogger("seawall_serving")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadRequestError(Exception):
    """The request body is not valid HTTP framing (aiohttp's parser said so)."""


def _headers(request: web.Request) -> dict[str, str]:
    """Return the request headers, names in lower case, repeats joined."""
    headers: dict[str, str] = {}
    for raw_name, value in request.headers.items():
        name = raw_name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _apply_headers(response: web.StreamResponse, headers: Any) -> None:
    """Copy the service's header pairs; ``Connection: close`` becomes aiohttp's own."""
    for name, value in headers:
        if name.lower() == "connection":
            if value.lower() == "close":
                response.force_close()
            continue
        response.headers.add(name, value)


def _response(response: Response) -> web.Response:
    """Return the aiohttp form of a complete `Response`."""
    out = web.Response(
        status=response.status,
        body=response.body,
        headers=CIMultiDict([("Content-Type", response.content_type)]),
    )
    _apply_headers(out, response.headers)
    return out


def _gone() -> web.Response:
    """Return a response for a client that has already left; nobody will read it."""
    response = web.Response(status=400)
    response.force_close()
    return response


@final
class AiohttpAdapter(AdapterBase):
    """Agents as an aiohttp application.

    Example::

        adapter = seawall_serving.AiohttpAdapter(config)
        adapter.register_agent("/v1/chat", agent)
        adapter.serve(":8080")  # or web.run_app(adapter.app), or add_subapp(...)

    `serve` cancels an agent as soon as its client disconnects (aiohttp's
    ``handler_cancellation``). Under a runner of your own, enable it too, or a stream
    whose client left is only noticed at its next write (at most
    ``Config.ping_interval`` later).

    The app counts as started (``/readyz`` may answer 200) from its startup signal or
    its first request, and drains on its shutdown signal if nobody called `shutdown`.

    Args:
        config: The settings; `seawall_serving.Config()` by default.

    .. versionadded:: 0.1.0
    """

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._app: web.Application | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closing = False
        self._serving = False
        # Requests whose handler aiohttp cancelled (the client left) but that still run:
        # an invoke finishes on its own, as under uvicorn; a stream ends at once.
        self._orphans: set[asyncio.Task[web.StreamResponse]] = set()

    @property
    def app(self) -> web.Application:
        """The aiohttp application serving every route; built on first use."""
        if self._app is None:
            # The service enforces Config.max_body_size itself, with its own 413.
            app = web.Application(client_max_size=max(self.config.max_body_size + 1, 1 << 20))
            for path in self.service.routes():
                app.router.add_route("*", path, self._handler(path))
            # Every other path (and paths registered once the app is frozen) goes to
            # the service too: its problem+json 404, or the late route.
            app.router.add_route("*", "/{tail:.*}", self._handler(None))
            app.on_startup.append(self._on_startup)
            app.on_shutdown.append(self._on_shutdown)
            self._app = app
        return self._app

    def register_agent(self, path: str, agent: Agent) -> None:
        """Mount ``POST {path}/invoke`` (JSON) and ``POST {path}/stream`` (SSE) for *agent*."""
        before = set(self.service.routes())
        self.service.register_agent(path, agent)
        self._route_new(before)

    def register_handler(self, path: str, handler: Handler) -> None:
        """Mount *handler* (``Request -> Response``, sync or async) at *path*, any method."""
        before = set(self.service.routes())
        self.service.register_handler(path, handler)
        self._route_new(before)

    def serve(self, addr: str = ":8080") -> None:
        """Listen on *addr* until `shutdown` (or SIGTERM/SIGINT from the main thread)."""
        host, port = parse_addr(addr)
        app = self.app
        try:
            with signals_start_shutdown(self.shutdown):
                asyncio.run(self._serve(app, host, port))
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain (see `seawall_serving.Service.drain`), then stop aiohttp and return."""
        self.service.drain(timeout)
        with self._lock:
            self._closing = True
            loop, stop = self._loop, self._stop
        if loop is None or stop is None:  # not serving: nothing more to stop
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop is closed: serve has returned
            return
        self._stopped.wait()

    # -- internals -----------------------------------------------------------------------

    def _route_new(self, before: set[str]) -> None:
        app = self._app
        if app is None or app.frozen:  # a frozen app reaches new paths via the catch-all
            return
        for path in self.service.routes():
            if path not in before:
                app.router.add_route("*", path, self._handler(path))

    async def _serve(self, app: web.Application, host: str | None, port: int) -> None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._stop = stop = asyncio.Event()
            self._serving = True
            if self._closing:
                stop.set()
        config = self.config
        runner = web.AppRunner(
            app,
            handler_cancellation=True,  # a client that leaves cancels its agent
            keepalive_timeout=config.idle_timeout,
            shutdown_timeout=config.write_timeout,
            access_log=None,  # the service writes its own access log
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0]
            self._listening(str(bound[0]), int(bound[1]))
            self._mark_started()
            await stop.wait()
        finally:
            await runner.cleanup()

    async def _on_startup(self, _app: web.Application) -> None:
        if not self._serving:  # serve marks it once it listens
            self._mark_started()

    async def _on_shutdown(self, _app: web.Application) -> None:
        if not self.service.draining:
            await self.service.adrain()

    def _handler(self, path: str | None) -> _Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, request.path if path is None else path)

        return handler

    async def _handle(self, request: web.Request, path: str) -> web.StreamResponse:
        self._mark_started()  # under a runner whose startup signal we missed
        calls: list[StreamCall] = []
        task = asyncio.get_running_loop().create_task(self._respond(request, path, calls))
        try:
            # Shielded: when aiohttp cancels the handler because the client left, the
            # service still finishes the request its own way (and records it).
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            for call in calls:
                call.client_gone()
            self._orphans.add(task)
            task.add_done_callback(self._orphan_done)
            raise

    def _orphan_done(self, task: asyncio.Task[web.StreamResponse]) -> None:
        self._orphans.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("request failed after its client left", exc_info=exc)

    async def _respond(
        self, request: web.Request, path: str, calls: list[StreamCall]
    ) -> web.StreamResponse:
        content = request.content

        async def read_body(limit: int) -> bytes:
            body = bytearray()
            try:
                while chunk := await content.readany():
                    body += chunk
                    if len(body) > limit:
                        raise BodyTooLargeError
            except ConnectionError:
                raise ClientDisconnectedError from None
            except HttpProcessingError:  # e.g. broken chunked framing
                raise _BadRequestError from None
            return bytes(body)

        try:
            result = await self.service.handle(
                request.method,
                path,
                _headers(request),
                read_body,
                query=request.rel_url.raw_query_string,
            )
        except ClientDisconnectedError:
            return _gone()
        except _BadRequestError:
            response = _response(problem_response("bad_request"))
            response.force_close()
            return response
        if isinstance(result, Response):
            return _response(result)
        calls.append(result)
        return await self._stream(request, result)

    async def _stream(self, request: web.Request, call: StreamCall) -> web.StreamResponse:
        writer = _StreamWriter(request, self.config.write_timeout)
        await call.run(writer.start, writer.send)
        return await writer.finish()


@final
class _StreamWriter:
    """One stream's response: `start` and `send` for `StreamCall.run`, then `finish`."""

    __slots__ = ("disconnected", "request", "response", "timeout")

    def __init__(self, request: web.Request, timeout: float) -> None:
        self.request = request
        self.timeout = timeout
        self.response: web.StreamResponse | None = None  # once prepared
        self.disconnected = False

    async def _io(self, operation: Awaitable[object]) -> None:
        try:
            with anyio.fail_after(self.timeout):
                await operation
        except TimeoutError:
            # A client that stopped reading: drop the connection, as the stdlib does.
            self.disconnected = True
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            raise ClientDisconnectedError from None
        except ConnectionError:  # aiohttp's ClientConnectionResetError is one
            self.disconnected = True
            raise ClientDisconnectedError from None

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        response = web.StreamResponse(status=status)
        _apply_headers(response, headers)
        await self._io(response.prepare(self.request))
        self.response = response

    async def send(self, data: bytes) -> None:
        if self.response is None:  # pragma: no cover -- the service starts first
            raise ClientDisconnectedError
        await self._io(self.response.write(data))

    async def finish(self) -> web.StreamResponse:
        """Return what aiohttp should finish: the stream, ended unless the client left."""
        if self.response is None:
            return _gone()
        if not self.disconnected:
            with contextlib.suppress(ClientDisconnectedError):
                await self._io(self.response.write_eof())
        return self.response
