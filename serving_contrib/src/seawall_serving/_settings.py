"""The server's own settings, read by `seawall_serving.config`, and how a reload applies.

``seawall-serve --config config.toml`` loads `ServeSettings` (defaults < file <
``SEAWALL_*`` environment < command-line flags), builds the `Config`, wraps the agent in
the ``[resilience]`` policies, and watches the file: a valid new file applies at once,
without a restart, to everything read per request (timeouts, limits, tenants, the
access log, the breaker, retry and timeout around the agent); the few settings fixed
when the server starts (adapter, address, mount path, the log level) are logged as
needing a restart.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final

import anyio
import anyio.to_thread
import seawall

from seawall_serving._base import parse_addr
from seawall_serving._config import Config
from seawall_serving._service import check_path
from seawall_serving.config import setting


__all__ = (
    "AgentSettings",
    "BreakerSettings",
    "LoggingSettings",
    "Reloader",
    "ResilienceSettings",
    "ResilientAgent",
    "RetrySettings",
    "ServeSettings",
    "ServerSettings",
    "TenantSettings",
    "TimeoutSettings",
    "build_config",
)

logger: Final = logging.getLogger("seawall_serving")

#: The environment prefix of every setting: ``SEAWALL_SERVER__ADDR``.
ENV_PREFIX: Final = "SEAWALL"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """``[server]``: how the server listens, reads, writes, limits and drains."""

    adapter: str = setting(default="stdlib", doc="The server adapter (restart to change).")
    addr: str = setting(default=":8080", doc="host:port or :port (restart to change).")
    read_timeout: float = 10.0
    write_timeout: float = 30.0
    idle_timeout: float = 120.0
    drain_timeout: float = 25.0
    request_timeout: float | None = None
    max_body_size: int = 1 << 20
    max_in_flight: int | None = None


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """``[agent]``: where the agent is mounted (restart to change)."""

    path: str = "/v1/agent"


@dataclass(frozen=True, kw_only=True)
class TenantSettings:
    """``[tenants]``: the tenant header, the default tenant, per-tenant rate limits."""

    header: str = "X-Tenant-ID"
    default: str | None = None
    rate: float | None = setting(default=None, doc="Requests per second per tenant.")
    burst: float | None = setting(default=None, doc="Bucket size per tenant (default: rate).")


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    """``[logging]``: the log level (restart to change) and the access log."""

    level: LogLevel = "INFO"
    access_log: bool = True


@dataclass(frozen=True, kw_only=True)
class BreakerSettings:
    """``[resilience.breaker]``: a `seawall.CircuitBreaker` around the agent."""

    enabled: bool = False
    max_failures: int = 5
    open_seconds: float = 30.0
    half_open_max: int = 2


@dataclass(frozen=True, kw_only=True)
class RetrySettings:
    """``[resilience.retry]``: a `seawall.Retrier` around each invoke (1: no retry)."""

    max_attempts: int = 1
    initial_delay: float = 0.2
    max_delay: float = 5.0


@dataclass(frozen=True, kw_only=True)
class TimeoutSettings:
    """``[resilience.timeout]``: a `seawall.Timeout` on each attempt (none by default)."""

    seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class ResilienceSettings:
    """``[resilience]``: the policies around the agent, reloaded without a restart."""

    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    timeout: TimeoutSettings = field(default_factory=TimeoutSettings)


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Everything ``seawall-serve`` reads from ``--config`` and ``SEAWALL_*`` variables.

    .. versionadded:: 0.1.0
    """

    server: ServerSettings = field(default_factory=ServerSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    tenants: TenantSettings = field(default_factory=TenantSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)

    def __post_init__(self) -> None:
        """Check what the types cannot: the values `Config` and seawall accept.

        So a file whose values are of the right type but out of range (a negative
        timeout, a zero rate) is refused by the loader, at start or on reload, with
        the last good settings kept, instead of failing once applied.
        """
        parse_addr(self.server.addr)
        check_path(self.agent.path, "agent.path")
        build_config(self, limiter=tenant_limiter(self.tenants))
        _policies(self.resilience, (), None)


#: Settings read once, when the server starts.
RESTART_ONLY: Final = (
    ("server", "adapter"),
    ("server", "addr"),
    ("server", "idle_timeout"),
    ("agent", "path"),
    ("logging", "level"),
)


def tenant_limiter(tenants: TenantSettings) -> seawall.KeyedRateLimiter | None:
    """Build the per-tenant limiter the settings ask for; ``None`` without a rate."""
    if tenants.rate is None:
        return None
    burst = tenants.burst if tenants.burst is not None else max(1.0, tenants.rate)
    return seawall.KeyedRateLimiter(rate=tenants.rate, burst=burst, name="tenants")


def build_config(
    settings: ServeSettings,
    *,
    limiter: seawall.KeyedRateLimiter | None = None,
    clock: seawall.Clock | None = None,
) -> Config:
    """Build the server `Config` from *settings* (raising what `Config` raises)."""
    server = settings.server
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    return Config(
        read_timeout=server.read_timeout,
        write_timeout=server.write_timeout,
        idle_timeout=server.idle_timeout,
        drain_timeout=server.drain_timeout,
        request_timeout=server.request_timeout,
        max_body_size=server.max_body_size,
        max_in_flight=server.max_in_flight,
        tenant_header=settings.tenants.header,
        default_tenant=settings.tenants.default,
        tenant_limiter=limiter,
        access_log=settings.logging.access_log,
        **extra,
    )


@final
@dataclass(frozen=True, slots=True)
class _Policies:
    retrier: seawall.Retrier | None
    breaker: seawall.CircuitBreaker | None
    timeout: seawall.Timeout | None
    settings: ResilienceSettings


def _policies(
    settings: ResilienceSettings,
    hooks: tuple[seawall.Hook, ...],
    clock: seawall.Clock | None,
    previous: _Policies | None = None,
) -> _Policies:
    """Build the policies; a breaker whose settings did not change keeps its state."""
    breaker = None
    if settings.breaker.enabled:
        if previous is not None and previous.settings.breaker == settings.breaker:
            breaker = previous.breaker
        else:
            breaker = seawall.CircuitBreaker(
                max_failures=settings.breaker.max_failures,
                timeout=settings.breaker.open_seconds,
                half_open_max=settings.breaker.half_open_max,
                name="agent",
                hooks=hooks,
                clock=clock,
            )
    retrier = None
    if settings.retry.max_attempts > 1:
        retrier = seawall.Retrier(
            max_attempts=settings.retry.max_attempts,
            initial_delay=settings.retry.initial_delay,
            max_delay=settings.retry.max_delay,
            name="agent",
            hooks=hooks,
            clock=clock,
        )
    timeout = None
    if settings.timeout.seconds is not None:
        timeout = seawall.Timeout(settings.timeout.seconds, name="agent", hooks=hooks, clock=clock)
    return _Policies(retrier, breaker, timeout, settings)


@final
class ResilientAgent:
    """An agent behind the ``[resilience]`` policies: retry, then breaker, then timeout.

    The policies are swapped in one assignment on reload; a call in progress finishes
    under the policies it started with.
    """

    __slots__ = ("_agent", "_clock", "_hooks", "_invoke_is_async", "_policies")

    def __init__(
        self,
        agent: Any,
        settings: ResilienceSettings,
        hooks: tuple[seawall.Hook, ...] = (),
        *,
        clock: seawall.Clock | None = None,
    ) -> None:
        self._agent = agent
        self._hooks = hooks
        self._clock = clock
        self._invoke_is_async = inspect.iscoroutinefunction(agent.invoke)
        self._policies = _policies(settings, hooks, clock)

    @property
    def breaker(self) -> seawall.CircuitBreaker | None:
        """The breaker in use, or ``None``."""
        return self._policies.breaker

    def reconfigure(self, settings: ResilienceSettings) -> None:
        """Apply new ``[resilience]`` settings to the next calls."""
        self._policies = _policies(settings, self._hooks, self._clock, self._policies)

    async def _once(self, policies: _Policies, input_: Any) -> Any:
        async def call() -> Any:
            if self._invoke_is_async:
                return await self._agent.invoke(input_)
            result = await anyio.to_thread.run_sync(
                self._agent.invoke, input_, abandon_on_cancel=True
            )
            if inspect.isawaitable(result):
                result = await result
            return result

        guarded: Callable[[], Any] = call
        if policies.breaker is not None:
            breaker = policies.breaker

            async def guarded() -> Any:
                return await breaker.acall(call)

        if policies.timeout is None:
            return await guarded()
        return await policies.timeout.acall(guarded)

    async def invoke(self, input: Any) -> Any:  # noqa: A002 -- the Agent protocol's name
        """Invoke the agent under the current policies."""
        policies = self._policies
        if policies.retrier is None:
            return await self._once(policies, input)
        return await policies.retrier.acall(self._once, policies, input)

    async def stream(self, input: Any) -> AsyncIterator[Any]:  # noqa: A002
        """Stream the agent's events under the breaker (no retry once events flow)."""
        policies = self._policies
        source = getattr(self._agent, "stream", None)
        if source is None:
            yield await self.invoke(input)
            return
        if policies.breaker is None:
            async for item in _aiter(source(input)):
                yield item
            return
        async with policies.breaker.guard():
            async for item in _aiter(source(input)):
                yield item


async def _aiter(source: Any) -> AsyncIterator[Any]:
    if inspect.isawaitable(source):
        source = await source
    if hasattr(source, "__aiter__"):
        async for item in source:
            yield item
        return
    iterator = iter(source)
    end = object()
    while (item := await anyio.to_thread.run_sync(next, iterator, end)) is not end:
        yield item


@final
class Reloader:
    """Apply reloaded `ServeSettings` to a running server and its `ResilientAgent`."""

    __slots__ = ("_agent", "_clock", "_limiter", "_lock", "_service", "settings")

    def __init__(
        self,
        service: Any,
        agent: ResilientAgent,
        settings: ServeSettings,
        limiter: seawall.KeyedRateLimiter | None,
    ) -> None:
        self._service = service
        self._agent = agent
        self._clock = service.config.clock
        self._limiter = limiter
        self._lock = threading.Lock()
        self.settings = settings

    def apply(self, new: ServeSettings) -> None:
        """Apply *new*: build and swap the `Config`, the limiter and the policies.

        A tenant whose rate or burst changed starts with a full bucket at the new
        rate; a breaker whose settings changed starts closed. Settings that need a
        restart are logged and left as they are.
        """
        with self._lock:
            old = self.settings
            for section, name in RESTART_ONLY:
                before = getattr(getattr(old, section), name)
                after = getattr(getattr(new, section), name)
                if before != after:
                    logger.warning(
                        "config: %s.%s changed from %r to %r; it applies after a restart",
                        section,
                        name,
                        before,
                        after,
                    )
            # Keep what needs a restart as it is, so the running state stays coherent.
            effective = dataclasses.replace(
                new,
                server=dataclasses.replace(
                    new.server,
                    adapter=old.server.adapter,
                    addr=old.server.addr,
                    idle_timeout=old.server.idle_timeout,
                ),
                agent=old.agent,
                logging=dataclasses.replace(new.logging, level=old.logging.level),
            )
            limiter = self._limiter
            if effective.tenants.rate != old.tenants.rate or (
                effective.tenants.burst != old.tenants.burst
            ):
                limiter = tenant_limiter(effective.tenants)
            config = build_config(effective, limiter=limiter, clock=self._clock)
            self._service.reconfigure(config)
            self._agent.reconfigure(effective.resilience)
            self._limiter = limiter
            self.settings = effective
        logger.info("config: reloaded")
