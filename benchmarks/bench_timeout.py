"""Timeout: a call that ends well within its limit (10 s), against the means it uses.

Async: seawall puts the call under an anyio cancel scope with a deadline, so its
references are ``anyio.fail_after``, ``asyncio.timeout`` (Python 3.11+) and
``asyncio.wait_for``. Peer: hyx ``@timeout`` (asyncio only: it runs the call as a new
task under ``asyncio.wait_for``).

Sync: Python cannot interrupt a thread, so a sync call runs in a worker thread while
the caller waits up to the limit; the reference is a one-thread
``ThreadPoolExecutor``'s ``submit(fn).result(timeout)``. No peer offers a sync timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Awaitable, Callable, Iterator

import anyio
import hyx.timeout
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, bench_async_built, passthrough, work


SYNC = "sync timeout, call in time"
ASYNC = "async timeout, call in time"

LIMIT = 10.0


@pytest.fixture
def timeout() -> Iterator[seawall.Timeout]:
    """A 10 s timeout; its worker pool (sync calls) is shut down after the test."""
    timeout = seawall.Timeout(LIMIT)
    yield timeout
    timeout.close()


# -- sync ---------------------------------------------------------------------------------


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_thread_pool_submit_and_wait(benchmark: BenchmarkFixture) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert benchmark(lambda: pool.submit(work).result(LIMIT)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture, timeout: seawall.Timeout) -> None:
    assert benchmark(timeout.call, work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture, timeout: seawall.Timeout) -> None:
    assert benchmark(timeout(work)) == 1


# -- async --------------------------------------------------------------------------------


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_anyio_fail_after(benchmark: BenchmarkFixture) -> None:
    async def fail_after() -> int:
        with anyio.fail_after(LIMIT):
            return await awork()

    bench_async(benchmark, fail_after)


@pytest.mark.benchmark(group=ASYNC)
def test_async_asyncio_timeout(benchmark: BenchmarkFixture) -> None:
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is new in Python 3.11")
    else:

        async def in_time() -> int:
            async with asyncio.timeout(LIMIT):
                return await awork()

        bench_async(benchmark, in_time)


@pytest.mark.benchmark(group=ASYNC)
def test_async_asyncio_wait_for(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, lambda: asyncio.wait_for(awork(), LIMIT))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_acall(benchmark: BenchmarkFixture, timeout: seawall.Timeout) -> None:
    bench_async(benchmark, lambda: timeout.acall(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_decorator(benchmark: BenchmarkFixture, timeout: seawall.Timeout) -> None:
    bench_async(benchmark, timeout(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_scope(benchmark: BenchmarkFixture, timeout: seawall.Timeout) -> None:
    async def scoped() -> int:
        async with timeout.scope():
            return await awork()

    bench_async(benchmark, scoped)


@pytest.mark.benchmark(group=ASYNC)
def test_async_hyx(benchmark: BenchmarkFixture) -> None:
    # hyx's decorator binds to the running loop when it is applied.
    def build() -> Callable[[], Awaitable[object]]:
        guarded: Callable[[], Awaitable[object]] = hyx.timeout.timeout(LIMIT)(awork)
        return guarded

    bench_async_built(benchmark, build)
