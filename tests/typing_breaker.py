"""Type-checked, never run: the CircuitBreaker keeps the types of what it wraps.

mypy (strict) must accept every assignment below; the last block checks that wrong uses
are rejected, through ``type: ignore`` comments that ``warn_unused_ignores`` keeps honest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import seawall


breaker = seawall.CircuitBreaker(max_failures=5, timeout=30, half_open_max=2)


@breaker
def fetch(key: str, *, default: int = 0) -> int:
    """A sync function."""
    return default


@breaker
async def afetch(key: str, *, default: int = 0) -> int:
    """A coroutine function."""
    return default


@breaker
def chunks(count: int) -> Iterator[str]:
    """A sync generator."""
    yield from ("x" for _ in range(count))


@breaker
async def achunks(count: int) -> AsyncIterator[str]:
    """An async generator."""
    for _ in range(count):
        yield "x"


sync_ok: Callable[[str], int] = fetch
async_ok: Callable[[str], Coroutine[Any, Any, int]] = afetch
gen_ok: Callable[[int], Iterator[str]] = chunks
agen_ok: Callable[[int], AsyncIterator[str]] = achunks
value: int = breaker.call(fetch, "k", default=1)


async def use_async() -> None:
    """acall returns the awaited type; the guard is an async context manager."""
    result: int = await breaker.acall(afetch, "k", default=2)
    async with breaker.guard():
        pass
    async for chunk in achunks(2):
        text: str = chunk
    del result, text


def use_sync() -> None:
    """The guard, the state and the statistics are typed."""
    with breaker.guard():
        pass
    state: seawall.CircuitState = breaker.state
    stats: seawall.CircuitBreakerStatistics = breaker.statistics()
    del state, stats


def wrong_uses() -> None:
    """The signature survives decoration: wrong arguments are type errors."""
    fetch(1)  # type: ignore[arg-type]
    fetch("k", default="x")  # type: ignore[arg-type]
    breaker.call(fetch, 1)  # type: ignore[arg-type]
    wrong: Callable[[int], int] = fetch  # type: ignore[assignment]
    text: str = breaker.call(fetch, "k")  # type: ignore[assignment]
    del wrong, text
