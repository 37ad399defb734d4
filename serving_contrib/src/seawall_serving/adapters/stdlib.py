"""The ``stdlib`` adapter: an HTTP/1.1 server with no dependency beyond seawall's own.

It runs on anyio, so on asyncio (the default) or trio, with keep-alive, chunked request
bodies, ``Expect: 100-continue``, and every timeout of `seawall_serving.Config`. It
serves the routes of its `seawall_serving.Service` and nothing else: no TLS (put a
proxy or a load balancer in front), no HTTP/2.
"""

from __future__ import annotations

import http
import logging
import socket
import threading
from typing import Any, Final, Literal, final

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel

from seawall_serving._base import AdapterBase, bind, parse_addr, signals_start_shutdown
from seawall_serving._config import Config
from seawall_serving._service import BodyTooLargeError, ClientDisconnectedError, StreamCall
from seawall_serving._types import Response
from seawall_serving._wire import problem_response


__all__ = ("StdlibAdapter",)

logger: Final = logging.getLogger("seawall_serving")

MAX_HEAD: Final = 16 * 1024
MAX_HEADERS: Final = 100
#: Connections taken from the backlog per wake-up of the accept loop.
ACCEPT_BATCH: Final = 256
#: Seconds the accept loop pauses when accepting fails (out of file descriptors).
ACCEPT_BACKOFF: Final = 0.1
#: Seconds a connection accepted just before shutdown gets to send its first request.
FRESH_GRACE: Final = 2.0
CHUNK: Final = 65536
_RECEIVE_ERRORS: Final = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
_SEND_ERRORS: Final = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
    TimeoutError,
)
_REASONS: Final = {s.value: s.phrase for s in http.HTTPStatus}


class _BadRequestError(Exception):
    def __init__(self, code: str = "bad_request") -> None:
        super().__init__(code)
        self.code = code


@final
class _Connection:
    """One client connection: a receive buffer and the writes of its responses."""

    __slots__ = ("adapter", "buf", "client", "eof", "idle_scope", "local", "served", "stream")

    def __init__(self, adapter: StdlibAdapter, stream: anyio.abc.SocketStream) -> None:
        self.adapter = adapter
        self.stream = stream
        self.buf = bytearray()
        self.eof = False
        self.idle_scope: anyio.CancelScope | None = None
        self.served = 0
        # For the request spans: who is calling, and on which of our addresses.
        self.client = _host(stream, anyio.abc.SocketAttribute.remote_address)
        self.local = _host(stream, anyio.abc.SocketAttribute.local_address)

    async def fill(self) -> bool:
        """Read more bytes into the buffer; ``False`` at end of stream."""
        if self.eof:
            return False
        try:
            data = await self.stream.receive(CHUNK)
        except _RECEIVE_ERRORS:
            self.eof = True
            return False
        self.buf += data
        return True

    async def write(self, data: bytes) -> None:
        try:
            with anyio.fail_after(self.adapter.config.write_timeout):
                await self.stream.send(data)
        except _SEND_ERRORS:
            raise ClientDisconnectedError from None

    async def read_head(self) -> bytes | None:
        """Read the request head; ``None`` when the client closed or idled out first."""
        config = self.adapter.config
        if not self.buf:
            wait = config.idle_timeout
            if self.adapter.closing:
                if self.served:
                    return None
                wait = min(wait, config.read_timeout, FRESH_GRACE)
            with anyio.CancelScope() as scope:
                self.idle_scope = scope
                with anyio.move_on_after(wait):
                    await self.fill()
            self.idle_scope = None
            if not self.buf:
                return None
        with anyio.fail_after(config.read_timeout):
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(self.buf[:end])
                    del self.buf[: end + 4]
                    return head
                if len(self.buf) > MAX_HEAD:
                    raise _BadRequestError("headers_too_large")
                if not await self.fill():
                    return None

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self.fill():
                raise _BadRequestError
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > MAX_HEAD or not await self.fill():
                raise _BadRequestError

    async def read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            size_text = (await self.read_line()).partition(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequestError from None
            if size < 0:
                raise _BadRequestError
            if size == 0:
                while await self.read_line():  # trailers, ignored
                    pass
                return bytes(body)
            if len(body) + size > limit:
                raise BodyTooLargeError
            body += await self.read_exactly(size)
            if await self.read_exactly(2) != b"\r\n":
                raise _BadRequestError


def _host(stream: anyio.abc.SocketStream, attribute: Any) -> tuple[str | None, int | None]:
    """Return the (host, port) of a socket attribute, or (None, None) without one."""
    address = stream.extra(attribute, None)  # noqa: S610 -- anyio, not Django
    if isinstance(address, tuple) and len(address) >= 2:  # noqa: PLR2004 -- host, port
        return str(address[0]), int(address[1])
    return None, None


def _parse_head(head: bytes) -> tuple[str, str, str, bool, dict[str, str]]:
    """Parse a head into (method, path, query, HTTP/1.1?, lower-cased headers)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover -- latin-1 decodes every byte
        raise _BadRequestError from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in {"HTTP/1.1", "HTTP/1.0"}:  # noqa: PLR2004
        raise _BadRequestError
    method, target, version = parts
    if not method.isalpha() or not method.isupper() or not target.startswith("/"):
        raise _BadRequestError
    path, _, query = target.partition("?")
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequestError("headers_too_large")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise _BadRequestError
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return method, path, query, version == "HTTP/1.1", headers


def _head_bytes(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@final
class StdlibAdapter(AdapterBase):
    """Serve agents with nothing but seawall and the standard library.

    Example::

        adapter = seawall_serving.StdlibAdapter(seawall_serving.Config(read_timeout=10))
        adapter.register_agent("/v1/chat", agent)
        adapter.serve(":8080")  # until SIGTERM or SIGINT; then drains and returns

    Args:
        config: The settings; `seawall_serving.Config()` by default.
        backend: The anyio backend for `serve`: ``"asyncio"`` or ``"trio"``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, config: Config | None = None, *, backend: Literal["asyncio", "trio"] = "asyncio"
    ) -> None:
        super().__init__(config)
        if backend not in {"asyncio", "trio"}:
            msg = f"backend must be 'asyncio' or 'trio', got {backend!r}"
            raise ValueError(msg)
        self._backend = backend
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._stop: anyio.Event | None = None
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self.closing = False
        self._stopping = False

    def serve(self, addr: str = ":8080") -> None:
        """Listen on *addr* until `shutdown` (or SIGTERM/SIGINT from the main thread)."""
        parse_addr(addr)
        with signals_start_shutdown(self.shutdown):
            anyio.run(self.serve_async, addr, backend=self._backend)

    async def serve_async(self, addr: str = ":8080") -> None:
        """`serve` inside a running event loop; returns once shut down."""
        listener = bind(addr)
        listener.setblocking(False)  # noqa: FBT003 -- the socket API
        bound = listener.getsockname()
        self._listening(str(bound[0]), int(bound[1]))
        self._token = anyio.lowlevel.current_token()
        stop = self._stop = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                accepting = anyio.CancelScope()
                closed = anyio.Event()
                tg.start_soon(self._accept, listener, accepting, closed, tg)
                self._mark_started()
                await stop.wait()
                accepting.cancel()
                await closed.wait()  # no connection arrives after this
                self.closing = True
                # Close idle keep-alive connections now; give connections that have not
                # sent their first request yet a moment to send it (and get 503
                # draining), as Go's http.Server does, rather than resetting them.
                grace = anyio.current_time() + min(self.config.read_timeout, FRESH_GRACE)
                for connection in list(self._connections):
                    scope = connection.idle_scope
                    if scope is None:
                        continue
                    if connection.served:
                        scope.cancel()
                    else:
                        scope.deadline = min(scope.deadline, grace)
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain (see `seawall_serving.Service.drain`), then stop listening and return."""
        if not self._started.is_set():
            self._stopped.set()
            return
        self.service.drain(timeout)
        with self._lock:
            first, self._stopping = not self._stopping, True
        token, stop = self._token, self._stop
        # Only the first caller wakes the loop: serve_async cannot end before it does,
        # so the loop is alive to run stop.set. Later callers just wait.
        if first and token is not None and stop is not None and not self._stopped.is_set():
            anyio.from_thread.run_sync(stop.set, token=token)
        self._stopped.wait()

    async def _accept(
        self,
        listener: socket.socket,
        scope: anyio.CancelScope,
        closed: anyio.Event,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        """Accept every pending connection at each wake-up, then wait for more.

        Accepting one connection per turn of a saturated event loop (as a plain
        ``listener.serve`` does) leaves new clients queued behind the busy ones for
        seconds; taking the whole backlog at once, as asyncio's own servers and Go's
        accept loop do, keeps a burst of new connections from starving.
        """
        try:
            with listener, scope:
                while True:
                    await anyio.wait_readable(listener)
                    for _ in range(ACCEPT_BATCH):
                        try:
                            client, _peer = listener.accept()
                        except BlockingIOError:
                            break
                        except OSError as exc:  # EMFILE and friends: back off, keep serving
                            logger.error("accept failed: %s", exc)  # noqa: TRY400
                            await self.config.clock.asleep(ACCEPT_BACKOFF)
                            break
                        tg.start_soon(self._serve_socket, client)
        finally:
            closed.set()

    async def _serve_socket(self, client: socket.socket) -> None:
        client.setblocking(False)  # noqa: FBT003 -- the socket API
        if client.family in {socket.AF_INET, socket.AF_INET6}:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            stream = await anyio.abc.SocketStream.from_socket(client)
        except OSError:  # the client left before we got to it
            client.close()
            return
        await self._serve_connection(stream)

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        connection = _Connection(self, stream)
        with self._lock:
            self._connections.add(connection)
        try:
            async with stream:
                while await self._serve_request(connection):
                    pass
        except ClientDisconnectedError:
            pass
        except Exception:
            logger.exception("connection failed")
        finally:
            with self._lock:
                self._connections.discard(connection)

    async def _serve_request(  # noqa: C901, PLR0911 -- the HTTP/1.1 request cycle, in order
        self, connection: _Connection
    ) -> bool:
        """Serve one request; returns whether the connection stays open."""
        try:
            head = await connection.read_head()
        except TimeoutError:
            await self._write(
                connection, "GET", problem_response("request_timeout"), keep_alive=False
            )
            return False
        except _BadRequestError as exc:
            await self._write(connection, "GET", problem_response(exc.code), keep_alive=False)
            return False
        if head is None:
            return False
        try:
            method, path, query, http11, headers = _parse_head(head)
            body_kind = _body_kind(headers)
        except _BadRequestError as exc:
            await self._write(connection, "GET", problem_response(exc.code), keep_alive=False)
            return False
        connection_header = headers.get("connection", "").lower()
        keep_alive = (
            ("close" not in connection_header) if http11 else ("keep-alive" in connection_header)
        )
        consumed = body_kind is None

        async def read_body(limit: int) -> bytes:
            nonlocal consumed
            if body_kind is None:
                return b""
            if headers.get("expect", "").lower() == "100-continue":
                await connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if body_kind == "chunked":
                body = await connection.read_chunked(limit)
            else:
                if body_kind > limit:
                    raise BodyTooLargeError
                body = await connection.read_exactly(body_kind)
            consumed = True
            return body

        try:
            result = await self.service.handle(
                method,
                path,
                headers,
                read_body,
                query=query,
                server_port=connection.local[1],
                client_address=connection.client[0],
            )
        except _BadRequestError as exc:
            await self._write(connection, method, problem_response(exc.code), keep_alive=False)
            return False
        connection.served += 1
        keep_alive = keep_alive and consumed and not self.service.draining
        if isinstance(result, StreamCall):
            return await self._stream(connection, result, keep_alive=keep_alive)
        if any(name == "Connection" for name, _ in result.headers):
            keep_alive = False
        await self._write(connection, method, result, keep_alive=keep_alive)
        return keep_alive

    async def _write(
        self, connection: _Connection, method: str, response: Response, *, keep_alive: bool
    ) -> None:
        headers = [("Content-Type", response.content_type)]
        headers.extend(pair for pair in response.headers if pair[0] != "Connection")
        headers.append(("Content-Length", str(len(response.body))))
        headers.append(("Connection", "keep-alive" if keep_alive else "close"))
        head = _head_bytes(response.status, headers)
        await connection.write(head if method == "HEAD" else head + response.body)

    async def _stream(self, connection: _Connection, call: StreamCall, *, keep_alive: bool) -> bool:
        chunked = False

        async def start(status: int, headers: list[tuple[str, str]]) -> None:
            nonlocal chunked
            chunked = not any(name == "Content-Length" for name, _ in headers)
            extra = [("Transfer-Encoding", "chunked")] if chunked else []
            extra.append(("Connection", "keep-alive" if keep_alive else "close"))
            await connection.write(_head_bytes(status, headers + extra))

        async def send(data: bytes) -> None:
            if chunked:
                await connection.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                await connection.write(data)

        async def disconnected() -> None:
            # An SSE client sends nothing while it reads; end of stream means it left.
            while await connection.fill():
                pass

        await call.run(start, send, disconnected=disconnected)
        if connection.eof:
            return False
        if chunked:
            await connection.write(b"0\r\n\r\n")
        return keep_alive and not self.service.draining


def _body_kind(headers: dict[str, str]) -> int | Literal["chunked"] | None:
    """How the body is framed: its length, ``"chunked"``, or ``None`` for no body."""
    encoding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if encoding is not None:
        if length is not None or encoding.lower() != "chunked":
            raise _BadRequestError
        return "chunked"
    if length is None:
        return None
    if not length.isdigit():
        raise _BadRequestError
    return int(length) or None
