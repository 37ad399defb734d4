"""Type-checked, never run: FaultInjector.wrap keeps the types of what it wraps.

mypy (strict) must accept every assignment below; a wrapper that lost the signature
(``Callable[..., Any]``) would still pass, so the last block checks that wrong uses are
rejected, through ``type: ignore`` comments that ``warn_unused_ignores`` keeps honest.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from seawall.testing import (
    FakeClock,
    Fault,
    FaultInjector,
    FaultStatistics,
    InjectedError,
    InjectedHTTPError,
    Latency,
)


faults = FaultInjector(
    error_rate=0.1,
    errors=(InjectedError(), TimeoutError, lambda: InjectedHTTPError(503, retry_after=2)),
    latency=Latency.mixture(
        (0.99, Latency.lognormal(median=0.2, sigma=0.6)),
        (0.01, Latency.pareto(scale=2.0, alpha=1.5)),
    ).capped(30.0),
    seed=42,
    clock=FakeClock(),
)
weighted = FaultInjector(errors=((0.7, KeyError("a")), (0.3, ValueError)))


def fetch(key: str, *, default: int = 0) -> int:
    """A sync function."""
    return default


async def afetch(key: str, *, default: int = 0) -> int:
    """A coroutine function."""
    return default


def words(text: str) -> Iterator[str]:
    """A sync stream."""
    yield from text.split()


async def awords(text: str) -> AsyncIterator[str]:
    """An async stream."""
    for word in text.split():
        yield word


class Model:
    """A model with generate() and stream()."""

    def generate(self, prompt: str) -> str:
        """Answer."""
        return prompt

    def stream(self, prompt: str) -> Iterator[str]:
        """Answer in chunks."""
        yield prompt


sync_ok: Callable[[str], int] = faults.wrap(fetch)
async_ok: Callable[[str], Coroutine[Any, Any, int]] = faults.wrap(afetch)
stream_ok: Callable[[str], Iterator[str]] = faults.wrap(words)
astream_ok: Callable[[str], AsyncIterator[str]] = faults.wrap(awords)
model: Model = faults.wrap_model(Model())
answer: str = model.generate("hi")
faults.script(Fault.ok(), Fault.delay(1.0), Fault.error(KeyError("k")), Fault.http(429))
stats: FaultStatistics = faults.statistics()
total: float = stats.injected_latency
delay: float = Latency.fixed(1.0).sample(random.Random(0))


def wrong_uses() -> None:
    """The signature survives wrapping: wrong arguments are type errors."""
    wrapped = faults.wrap(fetch)
    wrapped(1)  # type: ignore[arg-type]
    wrapped("k", default="x")  # type: ignore[arg-type]
    wrong: Callable[[int], int] = faults.wrap(fetch)  # type: ignore[arg-type]
    text: str = faults.wrap(fetch)("k")  # type: ignore[assignment]
    FaultInjector(error_rate="high")  # type: ignore[arg-type]
    Fault.error("not an exception")  # type: ignore[arg-type]
    del wrong, text
