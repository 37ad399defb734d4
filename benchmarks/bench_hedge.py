"""Hedger: a call whose primary answers before the delay, against creating a task."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, work


ASYNC = "async hedge, primary answers first"
SYNC = "sync hedge, primary answers first"


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
def test_async_seawall_acall(benchmark: BenchmarkFixture) -> None:
    hedger = seawall.Hedger(delay=10.0)
    bench_async(benchmark, lambda: hedger.acall(awork))


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture) -> None:
    hedger = seawall.Hedger(delay=10.0)
    assert benchmark(hedger.call, work) == 1
