"""The ``asgi`` adapter: a plain ASGI application, no framework needed.

`AsgiAdapter` is itself the ASGI app: give it to any ASGI server (uvicorn, hypercorn,
granian), or mount it in Starlette, FastAPI or Litestar. `AsgiAdapter.serve` runs it
under uvicorn (``pip install 'seawall-serving[asgi]'``) with seawall's drain order:
readiness fails first, in-flight requests finish, and only then does uvicorn stop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Final, final

from seawall_serving._base import AdapterBase, parse_addr, signals_start_shutdown
from seawall_serving._service import BodyTooLargeError, ClientDisconnectedError, StreamCall
from seawall_serving._types import Response


__all__ = ("AsgiAdapter", "asgi_headers", "asgi_serve", "uvicorn_serve", "uvicorn_shutdown")

logger: Final = logging.getLogger("seawall_serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def asgi_headers(scope: Scope) -> dict[str, str]:
    """Return the request headers of an ASGI scope, names in lower case, repeats joined."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _encode(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> list[list[bytes]]:
    return [[name.lower().encode("latin-1"), value.encode("latin-1")] for name, value in headers]


async def send_response(send: Send, response: Response, *, head: bool = False) -> None:
    """Write a complete `Response` through ASGI *send*."""
    headers = [("content-type", response.content_type), *response.headers]
    headers.append(("content-length", str(len(response.body))))
    await send(
        {"type": "http.response.start", "status": response.status, "headers": _encode(headers)}
    )
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def asgi_serve(adapter: AdapterBase, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI ``http`` request with *adapter*'s service.

    Shared by `AsgiAdapter` and the FastAPI adapter, so both behave the same.
    """
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    method = scope["method"]
    headers = asgi_headers(scope)
    query = scope.get("query_string", b"").decode("latin-1")

    async def read_body(limit: int) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError
            body += message.get("body", b"")
            if len(body) > limit:
                raise BodyTooLargeError
            if not message.get("more_body", False):
                return bytes(body)

    try:
        server = scope.get("server") or (None, None)
        client = scope.get("client") or (None, None)
        result = await adapter.service.handle(
            method,
            path,
            headers,
            read_body,
            query=query,
            scheme=scope.get("scheme", "http"),
            server_port=server[1],
            client_address=client[0],
        )
    except ClientDisconnectedError:
        return
    if isinstance(result, Response):
        await send_response(send, result, head=method == "HEAD")
        return
    await _stream(result, receive, send)


async def _stream(call: StreamCall, receive: Receive, send: Send) -> None:
    async def start(status: int, headers: list[tuple[str, str]]) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": _encode(headers)}
            )
        except OSError:
            raise ClientDisconnectedError from None

    async def write(data: bytes) -> None:
        try:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError:  # uvicorn raises ClientDisconnect (an OSError) once the client left
            raise ClientDisconnectedError from None

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    await call.run(start, write, disconnected=disconnected)
    try:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        return


def uvicorn_serve(adapter: AdapterBase, app: Any, addr: str) -> None:
    """Run ASGI *app* under uvicorn for *adapter* until `uvicorn_shutdown`.

    uvicorn's own signal handling is replaced by seawall's, which drains the service
    (readiness fails, in-flight requests finish) before uvicorn is told to exit.
    """
    try:
        import uvicorn  # noqa: PLC0415 -- optional dependency
    except ImportError as exc:
        msg = "serving ASGI needs uvicorn: pip install 'seawall-serving[asgi]'"
        raise ImportError(msg) from exc
    host, port = parse_addr(addr)
    # uvicorn binds the socket itself: handing it one of ours halves its throughput
    # (measured with hey; uvicorn 0.54 on asyncio), for reasons we have not found.
    config = uvicorn.Config(
        app,
        host=host or "0.0.0.0",  # noqa: S104 -- ':port' means every interface
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_keep_alive=max(1, round(adapter.config.idle_timeout)),
        timeout_graceful_shutdown=max(1, round(adapter.config.write_timeout)),
    )

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # ours drain first; see signals_start_shutdown

        async def startup(self, sockets: Any = None) -> None:
            """Start uvicorn, then note the bound address (port 0 picks one)."""
            await super().startup(sockets)
            name = self.servers[0].sockets[0].getsockname()
            adapter._listening(str(name[0]), int(name[1]))  # noqa: SLF001

    server = _Server(config)
    adapter._server = server  # noqa: SLF001
    with signals_start_shutdown(lambda: uvicorn_shutdown(adapter)):
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when it cannot bind (it logged why)
            msg = f"uvicorn could not start on {addr} (exit status {exc.code})"
            raise OSError(msg) from None
        finally:
            adapter._stopped.set()  # noqa: SLF001


def uvicorn_shutdown(adapter: AdapterBase, timeout: float | None = None) -> None:
    """Drain *adapter*'s service, then stop the uvicorn of `uvicorn_serve` and wait."""
    adapter.service.drain(timeout)
    server = adapter._server  # noqa: SLF001
    if server is None:
        return
    server.should_exit = True
    adapter._stopped.wait()  # noqa: SLF001


@final
class AsgiAdapter(AdapterBase):
    """Agents as a plain ASGI 3 application.

    Example::

        app = seawall_serving.AsgiAdapter(config)
        app.register_agent("/v1/chat", agent)
        # uvicorn module:app, or Starlette(routes=[Mount("/agents", app=app)]),
        # or app.serve(":8080")

    The app counts as started (``/readyz`` may answer 200) from the ASGI lifespan
    startup or, when mounted in a framework that does not forward the lifespan, from
    its first request. It drains on lifespan shutdown if nobody called `shutdown`.

    Args:
        config: The settings; `seawall_serving.Config()` by default.

    .. versionadded:: 0.1.0
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: ``http`` requests and the ``lifespan``."""
        kind = scope["type"]
        if kind == "http":
            self._mark_started()
            await asgi_serve(self, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets are not served here
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._mark_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if not self.service.draining:
                    await self.service.adrain()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def serve(self, addr: str = ":8080") -> None:
        """Serve under uvicorn on *addr* until `shutdown` or SIGTERM/SIGINT."""
        uvicorn_serve(self, self, addr)

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain (see `seawall_serving.Service.drain`), then stop uvicorn and return."""
        uvicorn_shutdown(self, timeout)
