"""Hedger: a call whose primary answers before the delay, against the cost of its means.

An async hedged call runs its primary as a task, so its reference is creating a task
and waiting for it (``create_task_and_wait``; an anyio task group for scale). A sync
hedged call runs its primary in a worker thread while the caller waits, so its
reference is submitting to a one-thread pool and waiting (``thread_pool_submit_and_wait``).
The hedge delay is 10 s: no hedge is ever launched. None of the peer libraries hedges.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator

import anyio
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, passthrough, work


ASYNC = "async hedge, primary answers first"
SYNC = "sync hedge, primary answers first"

DELAY = 10.0


@pytest.fixture
def hedger() -> Iterator[seawall.Hedger]:
    """A hedger that never hedges here; its worker pool is shut down after the test."""
    hedger = seawall.Hedger(delay=DELAY)
    yield hedger
    hedger.close()


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_create_task_and_wait(benchmark: BenchmarkFixture) -> None:
    async def task_and_wait() -> int:
        return await asyncio.get_running_loop().create_task(awork())

    bench_async(benchmark, task_and_wait)


@pytest.mark.benchmark(group=ASYNC)
def test_async_anyio_task_group_and_wait(benchmark: BenchmarkFixture) -> None:
    async def task_group_and_wait() -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(awork)

    bench_async(benchmark, task_group_and_wait)


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_acall(benchmark: BenchmarkFixture, hedger: seawall.Hedger) -> None:
    bench_async(benchmark, lambda: hedger.acall(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_decorator(benchmark: BenchmarkFixture, hedger: seawall.Hedger) -> None:
    bench_async(benchmark, hedger(awork))


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_thread_pool_submit_and_wait(benchmark: BenchmarkFixture) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert benchmark(lambda: pool.submit(work).result()) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture, hedger: seawall.Hedger) -> None:
    assert benchmark(hedger.call, work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture, hedger: seawall.Hedger) -> None:
    assert benchmark(hedger(work)) == 1
