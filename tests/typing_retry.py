"""Type-checked, never run: the Retrier keeps the types of what it wraps.

mypy (strict) must accept every assignment below; a decorator or call that lost the
signature (``Callable[..., Any]``) would still pass, so the last block checks that wrong
uses are rejected, through ``type: ignore`` comments that ``warn_unused_ignores`` keeps honest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import seawall


retrier = seawall.Retrier(max_attempts=3, jitter=seawall.Jitter.EQUAL)


@retrier
def fetch(key: str, *, default: int = 0) -> int:
    """A sync function."""
    return default


@retrier
async def afetch(key: str, *, default: int = 0) -> int:
    """A coroutine function."""
    return default


sync_ok: Callable[[str], int] = fetch
async_ok: Callable[[str], Coroutine[Any, Any, int]] = afetch
value: int = retrier.call(fetch, "k", default=1)


async def use_async() -> None:
    """acall returns the awaited type; the async attempt loop yields Attempt objects."""
    result: int = await retrier.acall(afetch, "k", default=2)
    direct: int = await afetch("k")
    loop: AsyncIterator[seawall.Attempt] = aiter(retrier)
    async for attempt in loop:
        with attempt:
            number: int = attempt.number
    del result, direct, number


def use_sync() -> None:
    """The sync attempt loop and statistics are typed."""
    loop: Iterator[seawall.Attempt] = iter(retrier)
    for attempt in loop:
        with attempt:
            pass
    stats: seawall.RetrierStatistics = retrier.statistics()
    budget: seawall.RetryBudgetStatistics = seawall.RetryBudget().statistics()
    reason: seawall.GiveUpReason = seawall.GiveUpReason.DEADLINE_EXCEEDED
    del stats, budget, reason


def wrong_uses() -> None:
    """The signature survives decoration: wrong arguments are type errors."""
    fetch(1)  # type: ignore[arg-type]
    fetch("k", default="x")  # type: ignore[arg-type]
    retrier.call(fetch, 1)  # type: ignore[arg-type]
    wrong: Callable[[int], int] = fetch  # type: ignore[assignment]
    text: str = retrier.call(fetch, "k")  # type: ignore[assignment]
    del wrong, text
