"""Bulkhead: a call that finds a free slot (10 slots, no queue), against plain semaphores.

References: a ``threading.BoundedSemaphore`` taken without blocking (sync), an
``asyncio.Semaphore`` and an ``anyio.CapacityLimiter`` (async). Peer: hyx ``bulkhead``
(asyncio only; ``max_concurrency=10, max_capacity=10``).
"""

from __future__ import annotations

import asyncio
import threading

import anyio
import hyx.bulkhead
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, passthrough, work


SYNC = "sync bulkhead, slot free"
ASYNC = "async bulkhead, slot free"

SLOTS = 10


# -- sync ---------------------------------------------------------------------------------


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_threading_semaphore(benchmark: BenchmarkFixture) -> None:
    semaphore = threading.BoundedSemaphore(SLOTS)

    def guarded() -> int:
        if not semaphore.acquire(blocking=False):
            raise seawall.BulkheadFullError("full", primitive_name="semaphore", retry_after=None)
        try:
            return work()
        finally:
            semaphore.release()

    assert benchmark(guarded) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.Bulkhead(SLOTS).call, work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.Bulkhead(SLOTS)(work)) == 1


# -- async --------------------------------------------------------------------------------


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_asyncio_semaphore(benchmark: BenchmarkFixture) -> None:
    semaphore = asyncio.Semaphore(SLOTS)

    async def guarded() -> int:
        async with semaphore:
            return await awork()

    bench_async(benchmark, guarded)


@pytest.mark.benchmark(group=ASYNC)
def test_async_anyio_capacity_limiter(benchmark: BenchmarkFixture) -> None:
    limiter = anyio.CapacityLimiter(SLOTS)

    async def guarded() -> int:
        async with limiter:
            return await awork()

    bench_async(benchmark, guarded)


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_acall(benchmark: BenchmarkFixture) -> None:
    bulkhead = seawall.Bulkhead(SLOTS)
    bench_async(benchmark, lambda: bulkhead.acall(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, seawall.Bulkhead(SLOTS)(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_hyx(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, hyx.bulkhead.bulkhead(max_concurrency=SLOTS, max_capacity=SLOTS)(awork))
