"""Shared by the tests: real servers on loopback, and agents that record what happened."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

import seawall_serving


#: The HTTP adapters, each with the module it needs; every conformance test runs on each.
HTTP_ADAPTERS: dict[str, str | None] = {
    "stdlib": None,
    "stdlib-trio": "trio",  # the stdlib adapter on trio instead of asyncio
    "asgi": "uvicorn",
    "fastapi": "fastapi",
    "aiohttp": "aiohttp",
    "flask": "flask",
}


def adapter_params() -> list[Any]:
    """pytest params for every HTTP adapter, skipped when its framework is missing."""
    params = []
    for name, module in HTTP_ADAPTERS.items():
        marks = []
        if module is not None and importlib.util.find_spec(module) is None:
            marks.append(pytest.mark.skip(reason=f"{module} is not installed"))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


class Server:
    """A running adapter: its base URL, the adapter, and the thread serving it."""

    def __init__(self, adapter: seawall_serving.ServerAdapter, thread: threading.Thread) -> None:
        self.adapter = adapter
        self.thread = thread
        assert adapter.address is not None
        _host, port = adapter.address
        self.url = f"http://127.0.0.1:{port}"
        self.port = port

    @property
    def service(self) -> seawall_serving.Service:
        return self.adapter.service


@contextlib.contextmanager
def running(
    name: str,
    config: seawall_serving.Config | None = None,
    *,
    agents: dict[str, Any] | None = None,
    handlers: dict[str, Any] | None = None,
    drain: float = 5.0,
) -> Iterator[Server]:
    """Serve with adapter *name* on 127.0.0.1, an ephemeral port, in a thread."""
    config = config or seawall_serving.Config(default_tenant="t-default")
    adapter: seawall_serving.ServerAdapter
    if name == "stdlib-trio":
        adapter = seawall_serving.StdlibAdapter(config, backend="trio")
    else:
        adapter = seawall_serving.new(name, config)
    for path, agent in (agents or {}).items():
        adapter.register_agent(path, agent)
    for path, handler in (handlers or {}).items():
        adapter.register_handler(path, handler)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            adapter.serve("127.0.0.1:0")
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
            raise

    thread = threading.Thread(target=serve, name=f"serve-{name}", daemon=True)
    thread.start()
    for _ in range(400):
        if adapter.address is not None or errors or not thread.is_alive():
            break
        thread.join(0.025)
    assert adapter.address is not None, f"{name} did not start: {errors!r}"
    try:
        yield Server(adapter, thread)
    finally:
        adapter.shutdown(drain)
        thread.join(30)
        assert not thread.is_alive(), f"{name} did not stop"
        assert not errors, errors


class Echo:
    """Async invoke and stream; records the tenant it saw."""

    def __init__(self) -> None:
        self.tenants: list[str | None] = []

    async def invoke(self, input: Any) -> Any:
        self.tenants.append(seawall_serving.current_tenant())
        return {"echo": input, "tenant": seawall_serving.current_tenant()}

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        self.tenants.append(seawall_serving.current_tenant())
        for i in range(3):
            yield {"i": i, "input": input}


class SyncEcho:
    """Sync invoke and a sync generator stream (run in worker threads)."""

    def invoke(self, input: Any) -> Any:
        return {"echo": input, "tenant": seawall_serving.current_tenant()}

    def stream(self, input: Any) -> Iterator[Any]:
        for i in range(3):
            yield {"i": i, "tenant": seawall_serving.current_tenant()}


class InvokeOnly:
    async def invoke(self, input: Any) -> Any:
        return {"only": input}


class Failing:
    """Raises on invoke, and in the stream after one event (or before, on 'early')."""

    def __init__(self, exc: Exception | None = None) -> None:
        self.exc = exc or RuntimeError("secret internal detail: password=hunter2")

    async def invoke(self, input: Any) -> Any:
        raise self.exc

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        if input != "early":
            yield {"first": True}
        raise self.exc


class Gate:
    """An agent whose stream yields one event, then waits until released or cancelled.

    ``started`` is set once the stream is running, ``cancelled`` once it was cancelled,
    ``finished`` once its generator exited (however it ended). Thread-safe events, so
    the test thread can wait on them while the server's loop runs the agent.
    """

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.release = threading.Event()

    async def invoke(self, input: Any) -> Any:
        self.started.set()
        try:
            while not self.release.is_set():
                await anyio.to_thread.run_sync(self.release.wait, 0.05)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        finally:
            self.finished.set()
        return {"released": True}

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        try:
            yield {"step": 0}
            self.started.set()
            while not self.release.is_set():
                await anyio.to_thread.run_sync(self.release.wait, 0.05)
            yield {"step": 1}
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        finally:
            self.finished.set()
