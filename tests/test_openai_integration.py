"""seawall's LLM middleware around the real openai SDK, against a local fake server.

The server speaks just enough of the OpenAI API (``POST /v1/chat/completions``, JSON and
Server-Sent Events) and is scripted per request to fail: 429 with Retry-After, 500, a
latency spike (blocked on an event the test controls) and a disconnect mid-stream. The
SDK runs with ``max_retries=0`` so that every retry is seawall's, timed by a FakeClock.
The async client runs on asyncio and trio.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncGenerator, Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import openai
import pytest

import seawall
from seawall.testing import FakeClock


pytestmark = [
    pytest.mark.timeout(30),
    # On trio, the SDK's stream leaves its inner async generators (SSE decoding, httpx2's
    # byte iterator) for the garbage collector even after `AsyncStream.close()`; trio
    # warns about that, asyncio does not. Ours are closed: only the SDK's are ignored.
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <async_generator object "
        r"(SSEDecoder|AsyncStream|Response)\.:pytest.PytestUnraisableExceptionWarning"
    ),
]

MODEL = "gpt-test"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


# -- the fake server ---------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted response.

    ``status`` other than 200 sends an error body; ``chunks`` (for streams) are the
    contents sent before ``[DONE]``, or before closing the socket when ``disconnect``;
    ``block`` makes the handler wait on that event first (a latency spike).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[str] = field(default_factory=lambda: ["Hel", "lo"])
    disconnect: bool = False
    block: threading.Event | None = None


class FakeOpenAI:
    """A scripted OpenAI-compatible server on 127.0.0.1, in daemon threads."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib name
                """Keep the test output quiet."""

            def do_POST(self) -> None:
                """Answer one chat completion as scripted."""
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    reply = fake.script.pop(0) if fake.script else Reply()
                fake.arrived.set()
                if reply.block is not None:
                    reply.block.wait(20)
                if reply.status != 200:
                    self._send_json(reply.status, {"error": {"message": "scripted"}}, reply)
                elif body.get("stream"):
                    self._send_stream(reply)
                else:
                    self._send_json(200, _completion("".join(reply.chunks)), reply)

            def _send_json(self, status: int, payload: dict[str, Any], reply: Reply) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _send_stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = [_chunk(text) for text in reply.chunks]
                if not reply.disconnect:
                    events.append("[DONE]")
                for event in events:
                    data = f"data: {event}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                if reply.disconnect:
                    # No terminating chunk: the client sees the connection drop mid-body.
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll interval only makes shutdown() prompt; nothing waits on time.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The base URL to give the SDK."""
        return f"http://127.0.0.1:{self.port}/v1"


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _chunk(text: str) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """A running fake server, shut down after the test."""
    fake = FakeOpenAI()
    fake.thread.start()
    try:
        yield fake
    finally:
        for reply in fake.script:
            if reply.block is not None:
                reply.block.set()
        fake.server.shutdown()
        fake.server.server_close()


# -- model adapters ----------------------------------------------------------------------


class AsyncChatModel:
    """A seawall model over ``openai.AsyncOpenAI``."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client

    async def generate(self, messages: list[Any]) -> str:
        """Return the completion's text."""
        response = await self.client.chat.completions.create(model=MODEL, messages=messages)
        return response.choices[0].message.content or ""

    async def stream(self, messages: list[Any]) -> AsyncGenerator[str, None]:
        """Yield the completion's text deltas."""
        response = await self.client.chat.completions.create(
            model=MODEL, messages=messages, stream=True
        )
        async with response:
            async for chunk in response:
                yield chunk.choices[0].delta.content or ""


class SyncChatModel:
    """A seawall model over ``openai.OpenAI``."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client

    def generate(self, messages: list[Any]) -> str:
        """Return the completion's text."""
        response = self.client.chat.completions.create(model=MODEL, messages=messages)
        return response.choices[0].message.content or ""

    def stream(self, messages: list[Any]) -> Generator[str, None, None]:
        """Yield the completion's text deltas."""
        with self.client.chat.completions.create(
            model=MODEL, messages=messages, stream=True
        ) as response:
            for chunk in response:
                yield chunk.choices[0].delta.content or ""


def _async_client(server: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0)


def _sync_client(server: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)


def _resilient(model: Any, clock: FakeClock, *, max_failures: int = 5) -> Any:
    """The guide's stack: rate limit → retry → circuit breaker → model."""
    breaker = seawall.CircuitBreaker(max_failures=max_failures, timeout=30, clock=clock)
    retrier = seawall.Retrier(
        max_attempts=3, initial_delay=0.5, jitter=seawall.Jitter.NONE, clock=clock
    )
    limiter = seawall.RateLimiter(rate=100, burst=100, clock=clock)
    return seawall.apply_middleware(
        model,
        seawall.as_llm_middleware(
            seawall.with_circuit_breaker(breaker),
            seawall.with_retry(retrier),
            seawall.with_rate_limit(limiter),
        ),
    )


async def _acollect(stream: Any) -> tuple[list[str], BaseException | None]:
    received: list[str] = []
    try:
        async for chunk in stream:
            received.append(chunk)  # noqa: PERF401 -- keep the chunks read before an exception
    except Exception as exc:
        return received, exc
    return received, None


def _collect(stream: Iterator[str]) -> tuple[list[str], BaseException | None]:
    received: list[str] = []
    try:
        received.extend(stream)
    except Exception as exc:
        return received, exc
    return received, None


# -- async client ------------------------------------------------------------------------


class TestAsyncRetries:
    """Retries of the async client honour Retry-After and stop at the first chunk."""

    @pytest.mark.anyio
    async def test_retry_after_is_honoured(
        self, anyio_backend: str, server: FakeOpenAI, clock: FakeClock
    ) -> None:
        """A 429 with Retry-After: 2 is retried after exactly 2 virtual seconds."""
        server.script = [Reply(429, {"Retry-After": "2"}), Reply(chunks=["ok"])]
        async with _async_client(server) as client:
            model = _resilient(AsyncChatModel(client), clock)
            with anyio.fail_after(20):
                assert await model.generate(MESSAGES) == "ok"
        assert clock.sleeps == [2.0]
        assert len(server.requests) == 2

    @pytest.mark.anyio
    async def test_stream_failing_before_first_chunk_is_retried(
        self, anyio_backend: str, server: FakeOpenAI, clock: FakeClock
    ) -> None:
        """A 500 when opening the stream is retried; the second stream is delivered."""
        server.script = [Reply(500), Reply(chunks=["a", "b", "c"])]
        async with _async_client(server) as client:
            model = _resilient(AsyncChatModel(client), clock)
            with anyio.fail_after(20):
                assert await _acollect(model.stream(MESSAGES)) == (["a", "b", "c"], None)
        assert clock.sleeps == [0.5]
        assert len(server.requests) == 2

    @pytest.mark.anyio
    async def test_stream_failing_after_first_chunk_is_not_retried(
        self, anyio_backend: str, server: FakeOpenAI, clock: FakeClock
    ) -> None:
        """A disconnect mid-stream reaches the consumer after the chunks delivered."""
        server.script = [Reply(chunks=["a", "b"], disconnect=True), Reply(chunks=["never"])]
        async with _async_client(server) as client:
            model = _resilient(AsyncChatModel(client), clock)
            with anyio.fail_after(20):
                chunks, error = await _acollect(model.stream(MESSAGES))
        assert chunks == ["a", "b"]
        assert error is not None
        assert len(server.requests) == 1
        assert clock.sleeps == []


class TestAsyncBreaker:
    """The breaker opens on server errors and then rejects without a request."""

    @pytest.mark.anyio
    async def test_breaker_opens_and_rejects(
        self, anyio_backend: str, server: FakeOpenAI, clock: FakeClock
    ) -> None:
        """Three 500s open the breaker; the next call never reaches the server."""
        server.script = [Reply(500), Reply(500), Reply(500)]
        async with _async_client(server) as client:
            model = _resilient(AsyncChatModel(client), clock, max_failures=3)
            with anyio.fail_after(20):
                with pytest.raises(openai.InternalServerError):
                    await model.generate(MESSAGES)
                assert len(server.requests) == 3
                with pytest.raises(seawall.CircuitOpenError):
                    await model.generate(MESSAGES)
                with pytest.raises(seawall.CircuitOpenError):
                    await _acollect_raising(model.stream(MESSAGES))
        assert len(server.requests) == 3


async def _acollect_raising(stream: Any) -> list[str]:
    return [chunk async for chunk in stream]


class TestAsyncLatencySpike:
    """A timeout inside the retry turns a latency spike into a retried attempt."""

    @pytest.mark.anyio
    async def test_slow_request_times_out_and_is_retried(
        self, anyio_backend: str, server: FakeOpenAI
    ) -> None:
        """The blocked request times out on the virtual clock; the retry succeeds."""
        clock = FakeClock(autojump=False)  # time moves only when the test says so
        spike = threading.Event()
        server.script = [Reply(block=spike), Reply(chunks=["fast"])]
        retrier = seawall.Retrier(max_attempts=2, initial_delay=0, clock=clock)
        timeout = seawall.Timeout(5.0, clock=clock)
        result: list[str] = []
        async with _async_client(server) as client:
            model = seawall.apply_middleware(
                AsyncChatModel(client), seawall.with_timeout(timeout), seawall.with_retry(retrier)
            )
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:

                    async def run() -> None:
                        result.append(await model.generate(MESSAGES))

                    tg.start_soon(run)
                    await anyio.to_thread.run_sync(server.arrived.wait, 10)
                    clock.advance(5.0)
            spike.set()
        assert result == ["fast"]
        assert timeout.statistics().timeouts == 1
        assert len(server.requests) == 2


# -- sync client -------------------------------------------------------------------------


class TestSyncClient:
    """The same guarantees with the sync openai client."""

    def test_retry_after_is_honoured(self, server: FakeOpenAI, clock: FakeClock) -> None:
        """The sync retrier sleeps exactly the server's Retry-After on the fake clock."""
        server.script = [Reply(429, {"Retry-After": "2"}), Reply(chunks=["ok"])]
        with _sync_client(server) as client:
            model = _resilient(SyncChatModel(client), clock)
            assert model.generate(MESSAGES) == "ok"
        assert clock.sleeps == [2.0]

    def test_breaker_opens_and_rejects(self, server: FakeOpenAI, clock: FakeClock) -> None:
        """Server errors open the breaker; the rejected call sends no request."""
        server.script = [Reply(500), Reply(500), Reply(500)]
        with _sync_client(server) as client:
            model = _resilient(SyncChatModel(client), clock, max_failures=3)
            with pytest.raises(openai.InternalServerError):
                model.generate(MESSAGES)
            with pytest.raises(seawall.CircuitOpenError):
                model.generate(MESSAGES)
        assert len(server.requests) == 3

    def test_streams_retry_only_before_first_chunk(
        self, server: FakeOpenAI, clock: FakeClock
    ) -> None:
        """A 500 at open is retried; a later disconnect is not."""
        server.script = [
            Reply(500),
            Reply(chunks=["a", "b"]),
            Reply(chunks=["x"], disconnect=True),
            Reply(chunks=["never"]),
        ]
        with _sync_client(server) as client:
            model = _resilient(SyncChatModel(client), clock)
            assert _collect(model.stream(MESSAGES)) == (["a", "b"], None)
            chunks, error = _collect(model.stream(MESSAGES))
        assert chunks == ["x"]
        assert error is not None
        assert len(server.requests) == 3
