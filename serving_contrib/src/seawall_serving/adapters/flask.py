"""The ``flask`` adapter: agents in a Flask (WSGI) application.

`FlaskAdapter.app` is a complete Flask app: give it to any WSGI server (gunicorn,
waitress, uWSGI), or call `FlaskAdapter.serve`, which runs it under werkzeug's threaded
server with seawall's drain order. `FlaskAdapter.blueprint` mounts the same routes in
your own Flask app. Needs ``pip install 'seawall-serving[flask]'``.

WSGI is synchronous and the `seawall_serving.Service` is not. Every worker thread hands
its request to one event loop thread that the adapter owns (an anyio blocking portal,
started on the first request, so after a pre-forking server forks), which costs one hop
into that loop per request; sync agents run in that loop's worker threads as with every
other adapter. A stream crosses back through a small bounded buffer, so a client that
reads slowly makes the agent wait instead of filling memory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, final

import anyio
import anyio.from_thread
import flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from seawall_serving._base import AdapterBase, parse_addr, signals_start_shutdown
from seawall_serving._config import Config
from seawall_serving._service import BodyTooLargeError, ClientDisconnectedError, StreamCall
from seawall_serving._types import Response
from seawall_serving._wire import problem_response


__all__ = ("FlaskAdapter",)

logger: Final = logging.getLogger("seawall_serving")

CHUNK: Final = 65536
#: The name of the adapter's event loop thread.
LOOP_THREAD: Final = "seawall-serving-flask-loop"
#: Frames a stream may have waiting for its WSGI thread before the agent has to wait.
STREAM_BUFFER: Final = 16
#: Seconds between the checks of werkzeug's accept loop for `FlaskAdapter.shutdown`.
POLL_INTERVAL: Final = 0.1
#: The methods the routes accept; the service answers 405 where a route does not.
METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
#: Headers a WSGI application must not set; the WSGI server owns the connection.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Errors http.server answers itself, before the request reaches the app.
_SERVER_ERRORS: Final = {400: "bad_request", 431: "headers_too_large"}
_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)
#: ``anyio.wait_readable`` from anyio 4.7; ``wait_socket_readable`` before.
_wait_readable: Final[Callable[[socket.socket], Any]] = getattr(
    anyio, "wait_readable", None
) or getattr(anyio, "wait_socket_readable")  # noqa: B009 -- removed in a future anyio

_Start = tuple[int, list[tuple[str, str]]]
_Item = _Start | bytes


class _BadRequestError(Exception):
    """The request body is not valid HTTP (a broken chunked encoding, say)."""


class _LoopClosedError(Exception):
    """The adapter's event loop has stopped: the adapter has shut down."""


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """Return the request headers of a WSGI environ, names in lower case."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in {"CONTENT_TYPE", "CONTENT_LENGTH"} and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        headers[name] = str(value)
    return headers


def _response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP]


def _flask_response(response: Response) -> flask.Response:
    """Convert a complete `Response` to Flask's (werkzeug adds ``Content-Length``)."""
    headers = [("Content-Type", response.content_type), *response.headers]
    return flask.Response(response.body, status=response.status, headers=_response_headers(headers))


def _declared_length(environ: Mapping[str, Any], limit: int) -> int | None:
    """Return the body's length, or ``None`` to read to the end of a chunked body."""
    if environ.get("wsgi.input_terminated"):  # the server ends the stream
        return None
    declared = str(environ.get("CONTENT_LENGTH") or "0")
    if not declared.isdigit():
        raise _BadRequestError
    length = int(declared)
    if length > limit:
        raise BodyTooLargeError
    return length


def _read_exactly(environ: Mapping[str, Any], config: Config) -> bytes:
    limit = config.max_body_size
    length = _declared_length(environ, limit)
    if length == 0:
        return b""
    stream = environ["wsgi.input"]
    sock = environ.get("werkzeug.socket")
    read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
    clock = config.clock
    deadline = clock.now() + config.read_timeout
    body = bytearray()
    while length is None or len(body) < length:
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise TimeoutError
        if isinstance(sock, socket.socket):
            sock.settimeout(remaining)
        chunk = read(CHUNK if length is None else min(CHUNK, length - len(body)))
        if not chunk:
            if length is None:  # the end of a chunked body
                break
            raise ClientDisconnectedError  # it left before the end
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


def _read_input(environ: Mapping[str, Any], config: Config) -> bytes | Exception:
    """Read the body in the WSGI thread: return its bytes, or what ``read_body`` raises.

    At most ``max_body_size`` + 1 bytes are read, in chunks. Under werkzeug's server
    the socket's timeout is set to what remains of ``read_timeout`` before each read,
    so the body as a whole must come in time; other servers time each read their way.
    """
    try:
        return _read_exactly(environ, config)
    except (TimeoutError, BodyTooLargeError, ClientDisconnectedError, _BadRequestError) as exc:
        return exc
    except ConnectionError:
        return ClientDisconnectedError()
    except (OSError, ValueError):  # werkzeug's dechunking rejects a broken encoding
        return _BadRequestError()


@final
class _Loop:
    """The adapter's event loop thread (an anyio blocking portal), started on first use."""

    __slots__ = ("_closed", "_lock", "_portal", "_stack")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._stack: contextlib.ExitStack | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def portal(self) -> anyio.from_thread.BlockingPortal:
        """Return the running portal; raise `_LoopClosedError` once `close` was called."""
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._closed:
                raise _LoopClosedError
            if self._portal is None:
                stack = contextlib.ExitStack()
                self._portal = stack.enter_context(
                    anyio.from_thread.start_blocking_portal(name=LOOP_THREAD)
                )
                self._stack = stack
            return self._portal

    def call(self, func: Callable[[], Any]) -> Any:
        """``portal.call(func)``, with a stopped loop as `_LoopClosedError`."""
        try:
            return self.portal().call(func)
        except (RuntimeError, concurrent.futures.CancelledError):
            if self._closed:
                raise _LoopClosedError from None
            raise

    def close(self) -> None:
        """Stop the loop, cancelling what is left in it, and join its thread."""
        with self._lock:
            self._closed = True
            portal, stack = self._portal, self._stack
            self._portal = self._stack = None
        if portal is None or stack is None:
            return
        with contextlib.suppress(RuntimeError):  # already stopping
            portal.call(portal.stop, True)  # noqa: FBT003 -- cancel_remaining
        stack.close()


@final
class _Requests:
    """The WSGI requests inside the adapter (a stream until its body closes)."""

    __slots__ = ("_cond", "_count")

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    def enter(self) -> None:
        with self._cond:
            self._count += 1

    def exit(self) -> None:
        with self._cond:
            self._count -= 1
            if self._count == 0:
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._count == 0, timeout)


@final
class _Bridge:
    """One SSE stream: `StreamCall.run` writes in the loop, a WSGI thread reads.

    The methods run in the loop (the WSGI thread calls them through the portal).
    """

    __slots__ = (
        "_aborted",
        "_call",
        "_receive",
        "_send",
        "_sock",
        "_watch_scope",
        "_watching",
    )

    def __init__(self, call: StreamCall, sock: socket.socket | None) -> None:
        self._call = call
        self._sock = sock
        self._send, self._receive = anyio.create_memory_object_stream[_Item](STREAM_BUFFER)
        self._aborted = False
        self._watch_scope: anyio.CancelScope | None = None
        self._watching: anyio.Event | None = None

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                if self._sock is not None:
                    tg.start_soon(self._watch, self._sock)
                await self._call.run(self._start, self._write)
                tg.cancel_scope.cancel()
        finally:
            self._send.close()

    async def _put(self, item: _Item) -> None:
        try:
            await self._send.send(item)  # waits while the buffer is full: backpressure
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ClientDisconnectedError from None

    async def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        await self._put((status, headers))

    async def _write(self, data: bytes) -> None:
        await self._put(data)

    async def _watch(self, sock: socket.socket) -> None:
        # An SSE client sends nothing while it reads; end of stream means it left.
        if self._aborted:
            return
        done = self._watching = anyio.Event()
        try:
            with anyio.CancelScope() as self._watch_scope:
                while True:
                    try:
                        await _wait_readable(sock)
                        peek = sock.recv(1, socket.MSG_PEEK | _DONTWAIT)
                    except BlockingIOError:
                        continue
                    except (OSError, ValueError, anyio.ClosedResourceError):
                        peek = b""
                    if not peek:
                        self._call.client_gone()
                    return  # or it sent more (pipelining): the writes will tell
        finally:
            done.set()

    async def next_batch(self) -> list[_Item] | None:
        """Return the items sent since the last batch (waiting for one), ``None`` at the end."""
        try:
            items = [await self._receive.receive()]
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            return None
        with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            while True:
                items.append(self._receive.receive_nowait())
        return items

    async def abort(self) -> None:
        """End the stream: the WSGI server closed the body early, so the client is gone.

        Returns once the socket is no longer watched, so the server may close it.
        """
        self._aborted = True
        self._receive.close()
        self._call.client_gone()
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        if self._watching is not None:
            await self._watching.wait()


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("stream failed in the flask adapter", exc_info=future.exception())


@final
class _Body:
    """A stream's WSGI body: the frames from the loop, one batch per item."""

    __slots__ = ("_bridge", "_closed", "_done", "_loop", "_pending", "_requests")

    def __init__(self, loop: _Loop, bridge: _Bridge, requests: _Requests, first: bytes) -> None:
        self._loop = loop
        self._bridge = bridge
        self._requests = requests
        self._pending = first
        self._done = False
        self._closed = False
        requests.enter()  # until the end: shutdown lets the last frames out

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._done:
            raise StopIteration
        try:
            batch = self._loop.call(self._bridge.next_batch)
        except _LoopClosedError:
            batch = None
        if batch is None:
            self._end()
            raise StopIteration
        return b"".join(item for item in batch if isinstance(item, bytes))

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._requests.exit()

    def close(self) -> None:
        """End the response; the WSGI server calls it, early when the client left."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._done:
                self._loop.call(self._bridge.abort)
        except (_LoopClosedError, RuntimeError):
            logger.debug("stream aborted after the loop stopped", exc_info=True)
        finally:
            self._end()

    def __del__(self) -> None:
        # werkzeug skips close() when the socket fails while it discards the unread
        # request; the body then goes at the end of the request, in the same thread.
        self.close()


def _request_handler(config: Config) -> type[WSGIRequestHandler]:
    """Build werkzeug's handler with a socket timeout, quiet, with problem+json errors."""

    class _Handler(WSGIRequestHandler):
        timeout = config.read_timeout  # a slow client cannot hold a thread forever

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Nothing: the service writes the access log."""

        def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
            logger.debug("werkzeug %s: %s", type, message % args if args else message)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            name = _SERVER_ERRORS.get(code)
            if name is None:
                super().send_error(code, message, explain)
                return
            logger.debug("bad request from %s: %s", self.client_address, message)
            response = problem_response(name)
            self.close_connection = True
            self.request_version = "HTTP/1.1"  # an unparsed line left HTTP/0.9: no head
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for key, value in response.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

    return _Handler


@final
class FlaskAdapter(AdapterBase):
    """Agents in a Flask app, served by werkzeug or any WSGI server.

    Example::

        adapter = seawall_serving.FlaskAdapter(config)
        adapter.register_agent("/v1/chat", agent)
        adapter.serve(":8080")  # werkzeug's threaded server, until SIGTERM or SIGINT

        app = adapter.app  # or give this to gunicorn, waitress...
        my_app.register_blueprint(adapter.blueprint, url_prefix="/agents")  # or mount

    Async and sync agents both run on one event loop thread owned by the adapter,
    started on the first request and stopped by `shutdown`. With another WSGI server,
    the app counts as started (``/readyz`` may answer 200) from its first request;
    call `shutdown` from that server's exit hook to drain.

    Args:
        config: The settings; `seawall_serving.Config()` by default.

    .. versionadded:: 0.1.0
    """

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._loop = _Loop()
        self._requests = _Requests()
        blueprint = flask.Blueprint("seawall_serving", __name__)
        blueprint.add_url_rule(
            "/",
            endpoint="root",
            view_func=self._view,
            defaults={"path": ""},
            methods=METHODS,
            provide_automatic_options=False,
            strict_slashes=False,
        )
        blueprint.add_url_rule(
            "/<path:path>",
            endpoint="route",
            view_func=self._view,
            methods=METHODS,
            provide_automatic_options=False,
            merge_slashes=False,
        )
        self._blueprint = blueprint
        app = flask.Flask("seawall_serving")
        # The body is read from wsgi.input up to Config.max_body_size, so the
        # service answers 413 itself; Flask must not refuse earlier.
        app.config["MAX_CONTENT_LENGTH"] = self.config.max_body_size
        app.url_map.merge_slashes = False
        app.register_blueprint(blueprint)
        # Paths and methods no rule matches still get the service's problem+json.
        app.register_error_handler(404, self._unrouted)
        app.register_error_handler(405, self._unrouted)
        self._app = app

    @property
    def app(self) -> flask.Flask:
        """The Flask app serving the service's routes: a WSGI application."""
        return self._app

    @property
    def blueprint(self) -> flask.Blueprint:
        """The same routes as a blueprint, for ``your_app.register_blueprint``.

        Paths are the service's below the blueprint's ``url_prefix``. Requests no rule
        of the blueprint matches stay with your app's own error handlers.
        """
        return self._blueprint

    def serve(self, addr: str = ":8080") -> None:
        """Serve under werkzeug's threaded server on *addr* until `shutdown` or a signal."""
        host, port = parse_addr(addr)
        server: BaseWSGIServer = make_server(
            host or "0.0.0.0",  # noqa: S104 -- ':port' means every interface
            port,
            self._app,
            threaded=True,
            request_handler=_request_handler(self.config),
        )
        self._server = server
        try:
            with signals_start_shutdown(self.shutdown):
                bound = server.socket.getsockname()
                self._listening(str(bound[0]), int(bound[1]))
                self._mark_started()
                server.serve_forever(poll_interval=POLL_INTERVAL)
                self._finish()  # after the drain: the last frames, then the loop
        finally:
            self._loop.close()
            self._stopped.set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain (see `seawall_serving.Service.drain`), stop serving, stop the loop."""
        if not self._started.is_set():
            self._loop.close()
            self._stopped.set()
            return
        self.service.drain(timeout)
        server = self._server
        if server is None:  # the app runs under another WSGI server
            self._finish()
            self._loop.close()
            self._stopped.set()
            return
        server.shutdown()  # serve() returns once the last requests are written
        self._stopped.wait()

    def _finish(self) -> None:
        # Requests still in WSGI threads write their last bytes (a stream's end or
        # terminal error) through the loop; a client that stopped reading cannot hold
        # us longer than a write may take.
        if not self._requests.wait_idle(self.config.write_timeout):
            logger.warning("requests still open after the drain; ending them")

    # -- requests ----------------------------------------------------------------------

    def _view(self, path: str) -> flask.Response:
        return self._dispatch(flask.request.environ, f"/{path}")

    def _unrouted(self, _error: Exception) -> flask.Response:
        return self._dispatch(flask.request.environ, flask.request.path)

    def _dispatch(self, environ: dict[str, Any], path: str) -> flask.Response:
        """Serve one request in this WSGI thread, with one hop into the loop."""
        self._mark_started()  # when served by another WSGI server
        self._requests.enter()
        try:
            return self._serve(environ, path)
        except _LoopClosedError:
            return _flask_response(problem_response("draining"))
        finally:
            self._requests.exit()

    def _serve(self, environ: dict[str, Any], path: str) -> flask.Response:
        self._loop.portal()  # raises once shut down, before reading the body
        config = self.config
        method = str(environ.get("REQUEST_METHOD", "GET"))
        query = str(environ.get("QUERY_STRING", ""))
        headers = _headers(environ)
        outcome = _read_input(environ, config)
        sock = environ.get("werkzeug.socket")
        if not isinstance(sock, socket.socket):
            sock = None
        else:
            with contextlib.suppress(OSError):
                sock.settimeout(config.write_timeout)  # from now on, only writes

        async def read_body(limit: int) -> bytes:
            if isinstance(outcome, Exception):
                raise outcome
            if len(outcome) > limit:
                raise BodyTooLargeError
            return outcome

        async def handle() -> Response | StreamCall:
            return await self.service.handle(method, path, headers, read_body, query=query)

        try:
            result = self._loop.call(handle)
        except _BadRequestError:
            return _flask_response(problem_response("bad_request"))
        except ClientDisconnectedError:  # it left while sending the body
            return flask.Response(b"", status=400)  # nobody reads it
        if isinstance(result, Response):
            return _flask_response(result)
        return self._stream(result, sock)

    def _stream(self, call: StreamCall, sock: socket.socket | None) -> flask.Response:
        bridge = _Bridge(call, sock)
        portal = self._loop.portal()
        try:
            future = portal.start_task_soon(bridge.run)
        except RuntimeError:
            raise _LoopClosedError from None
        future.add_done_callback(_log_failure)
        batch = self._loop.call(bridge.next_batch)
        if not batch or not isinstance(batch[0], tuple):
            # The client left before anything was sent, or the loop is stopping.
            if self._loop.closed:
                raise _LoopClosedError
            return flask.Response(b"", status=200)
        status, headers = batch[0]
        first = b"".join(item for item in batch[1:] if isinstance(item, bytes))
        return flask.Response(
            _Body(self._loop, bridge, self._requests, first),
            status=status,
            headers=_response_headers(headers),
            direct_passthrough=True,
        )
