"""Helpers shared by the benchmark modules.

An async call cannot be timed alone without timing the event loop start-up, so every
async benchmark awaits the operation ``BATCH`` times inside one running loop; the
per-call cost is the reported time divided by ``BATCH``, and ratios between rows of
the same group are unaffected.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from pytest_benchmark.fixture import BenchmarkFixture


BATCH = 1000


def bench_async(benchmark: BenchmarkFixture, op: Callable[[], Awaitable[object]]) -> None:
    """Benchmark BATCH sequential awaits of *op* in one asyncio event loop."""

    async def run() -> None:
        for _ in range(BATCH):
            await op()

    loop = asyncio.new_event_loop()
    try:
        benchmark(lambda: loop.run_until_complete(run()))
    finally:
        loop.close()


def passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The cheapest honest decorator: call through, nothing else."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def apassthrough(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The async twin of `passthrough`."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def work() -> int:
    """The protected function: as cheap as a call can be."""
    return 1


async def awork() -> int:
    """The async protected function."""
    return 1
