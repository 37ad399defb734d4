"""What every adapter shares: registration, the address syntax, signals, start and stop."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from seawall_serving._config import Config
from seawall_serving._service import Service
from seawall_serving._types import Agent, Handler


__all__ = ("AdapterBase", "bind", "parse_addr", "signals_start_shutdown")

logger: Final = logging.getLogger("seawall_serving")


def parse_addr(addr: str) -> tuple[str | None, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``":port"`` (every interface: host ``None``)."""
    if not isinstance(addr, str):
        msg = f"addr must be a string like ':8080' or '127.0.0.1:8080', got {addr!r}"
        raise TypeError(msg)
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:  # noqa: PLR2004
        msg = f"addr must be 'host:port' or ':port' with a port from 0 to 65535, got {addr!r}"
        raise ValueError(msg)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), int(port_text)


def bind(addr: str) -> socket.socket:
    """Listen on *addr*; ``:port`` is every interface, IPv6 too where the OS can."""
    host, port = parse_addr(addr)
    if host is None and socket.has_dualstack_ipv6():
        return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server((host or "0.0.0.0", port))  # noqa: S104 -- ':port' is all


@contextmanager
def signals_start_shutdown(shutdown: Callable[[], object]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT start *shutdown* in a new thread (main thread only).

    The handlers are restored on exit. A second signal during a drain is logged and
    ignored: the drain timeout bounds the shutdown already.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    started = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if started.is_set():
            logger.warning("%s during shutdown: already draining", name)
            return
        started.set()
        logger.info("%s received: draining", name)
        threading.Thread(target=shutdown, name="seawall-serving-shutdown", daemon=True).start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class AdapterBase:
    """Registration and the started/stopped state, for the adapters in this package."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = Config() if config is None else config
        self._service = Service(self.config)
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._address: tuple[str, int] | None = None
        self._server: Any = None  # the framework's server object, once serving

    def __repr__(self) -> str:
        return f"{type(self).__name__}(address={self._address!r}, service={self.service!r})"

    def register_agent(self, path: str, agent: Agent) -> None:
        """Mount ``POST {path}/invoke`` (JSON) and ``POST {path}/stream`` (SSE) for *agent*."""
        self.service.register_agent(path, agent)

    def register_handler(self, path: str, handler: Handler) -> None:
        """Mount *handler* (``Request -> Response``, sync or async) at *path*, any method."""
        self.service.register_handler(path, handler)

    def add_readiness_check(
        self, name: str, check: Callable[[], Any], *, required: bool = True
    ) -> None:
        """Add a check to ``/readyz``; see `seawall_serving.Service.add_readiness_check`."""
        self.service.add_readiness_check(name, check, required=required)

    def _mark_started(self) -> None:
        """Mark the service ready, once: from a lifespan startup, a listen or a request."""
        if not self._started.is_set():
            self.service.mark_ready()
            self._started.set()

    def _listening(self, host: str, port: int) -> None:
        """Record the bound address and say so in the log (the CLI's users read it)."""
        self._address = (host, port)
        shown = f"[{host}]" if ":" in host else host
        fields = {"host": host, "port": port, "adapter": type(self).__name__}
        logger.info("serving on %s:%d", shown, port, extra={"serving": fields})

    @property
    def service(self) -> Service:
        """The framework-independent `seawall_serving.Service` behind this adapter."""
        return self._service

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)`` once serving (useful with port 0), else ``None``."""
        return self._address

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the server listens (or *timeout* passes); returns whether it does."""
        return self._started.wait(timeout)
