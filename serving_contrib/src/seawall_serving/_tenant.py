"""The tenant of the current request, in a context variable."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Final


__all__ = ("TENANT", "check_tenant", "current_tenant")

TENANT: Final[ContextVar[str | None]] = ContextVar("seawall_serving.tenant", default=None)
_TENANT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def current_tenant() -> str | None:
    """Return the tenant of the request being served, or ``None`` outside a request.

    Set from the tenant header (``X-Tenant-ID`` by default) before the agent runs, and
    visible from the agent's ``invoke`` and ``stream``, sync or async, including the
    worker thread that runs a sync agent.

    .. versionadded:: 0.1.0
    """
    return TENANT.get()


def check_tenant(value: str) -> str | None:
    """Say why *value* is not a valid tenant id, or return ``None`` when it is.

    A tenant id is 1 to 64 ASCII letters, digits, ``.``, ``_`` or ``-``, and starts
    with a letter or a digit: safe in logs, metric labels and Redis keys.
    """
    if _TENANT_RE.fullmatch(value):
        return None
    if not value:
        return "is empty"
    if len(value) > 64:  # noqa: PLR2004 -- the documented bound
        return f"is {len(value)} characters long; the limit is 64"
    return "may hold only letters, digits, '.', '_' and '-', starting with a letter or digit"
