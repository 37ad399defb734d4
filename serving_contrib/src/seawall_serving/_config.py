"""`Config`: the settings every adapter honours."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final, final

import seawall


__all__ = ("Config",)

TENANT_HEADER_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def _seconds(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"Config.{name} must be a number of seconds, got {value!r}"
        raise TypeError(msg)
    if not math.isfinite(value) or value <= 0:
        msg = f"Config.{name} must be a finite number of seconds > 0, got {value!r}"
        raise ValueError(msg)


def _positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"Config.{name} must be an int, got {value!r}"
        raise TypeError(msg)
    if value <= 0:
        msg = f"Config.{name} must be > 0, got {value!r}"
        raise ValueError(msg)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """How a server adapter reads, writes, limits, identifies tenants and drains.

    Every adapter honours every field it can reach; the docs list the few a framework
    keeps to itself (for example uvicorn owns its keep-alive timer).

    Attributes:
        read_timeout: Seconds a client may take to send a request's headers and body;
            past it the request gets 408 (or the connection closes if nothing came).
        write_timeout: Seconds one write to the client may block before the connection
            is dropped (a client that stopped reading).
        idle_timeout: Seconds a keep-alive connection may sit idle between requests.
        max_body_size: The largest request body accepted, in bytes (413 beyond).
        drain_timeout: Seconds in-flight requests and streams get to finish on
            shutdown before they are ended with a 503 or a terminal ``error`` event.
        request_timeout: Seconds an ``invoke`` may run before it is cancelled with a
            504, or ``None`` for no limit (streams are bounded by the client).
        ping_interval: Seconds of silence after which a stream gets a ``: ping``
            comment, which keeps proxies from closing it.
        tenant_header: The header naming the tenant.
        default_tenant: The tenant of requests without the header; ``None`` makes the
            header required (400 ``missing_tenant``).
        tenant_limiter: Per-tenant rate limits: one token per request from the
            tenant's bucket, or 429 with ``Retry-After``.
        max_in_flight: Requests (invokes and streams) served at once before new ones get
            503 ``overloaded``; ``None`` for no limit.
        readiness_timeout: Seconds a readiness check may take before it counts as failed.
        readiness_cache: Seconds a readiness result is reused, so probes stay cheap.
        access_log: Whether to log one structured JSON record per request to the
            ``seawall_serving.access`` logger.
        clock: The clock for timeouts, pings and durations; `seawall.SystemClock` by
            default, `seawall.testing.FakeClock` in tests.

    .. versionadded:: 0.1.0
    """

    read_timeout: float = 10.0
    write_timeout: float = 30.0
    idle_timeout: float = 120.0
    max_body_size: int = 1 << 20
    drain_timeout: float = 25.0
    request_timeout: float | None = None
    ping_interval: float = 15.0
    tenant_header: str = "X-Tenant-ID"
    default_tenant: str | None = None
    tenant_limiter: seawall.KeyedRateLimiter | None = None
    max_in_flight: int | None = None
    readiness_timeout: float = 2.0
    readiness_cache: float = 1.0
    access_log: bool = True
    clock: seawall.Clock = field(default_factory=seawall.SystemClock, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "read_timeout",
            "write_timeout",
            "idle_timeout",
            "drain_timeout",
            "ping_interval",
            "readiness_timeout",
            "readiness_cache",
        ):
            _seconds(name, getattr(self, name))
        _seconds("request_timeout", self.request_timeout, allow_none=True)
        _positive_int("max_body_size", self.max_body_size)
        _positive_int("max_in_flight", self.max_in_flight, allow_none=True)
        if not isinstance(self.tenant_header, str) or not TENANT_HEADER_RE.match(
            self.tenant_header
        ):
            msg = f"Config.tenant_header must be an HTTP header name, got {self.tenant_header!r}"
            raise ValueError(msg)
        if self.default_tenant is not None:
            from seawall_serving._tenant import check_tenant  # noqa: PLC0415 -- import cycle

            if check_tenant(self.default_tenant) is not None:
                msg = (
                    "Config.default_tenant must be 1 to 64 characters of letters, digits, "
                    f"'.', '_' or '-', starting with a letter or digit; got {self.default_tenant!r}"
                )
                raise ValueError(msg)
        if self.tenant_limiter is not None and not isinstance(
            self.tenant_limiter, seawall.KeyedRateLimiter
        ):
            msg = (
                "Config.tenant_limiter must be a seawall.KeyedRateLimiter, "
                f"got {type(self.tenant_limiter).__name__}"
            )
            raise TypeError(msg)
        if not isinstance(self.access_log, bool):
            msg = f"Config.access_log must be a bool, got {self.access_log!r}"
            raise TypeError(msg)
