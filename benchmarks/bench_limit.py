"""Rate limiter: the non-waiting path against a plain call and aiolimiter, in one run."""

from __future__ import annotations

import aiolimiter
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, passthrough, work


SYNC = "sync limiter, token available"
ASYNC = "async limiter, token available"

# A bucket so large and fast that no benchmark round ever has to wait.
RATE = 1e12
BURST = 1e9


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_try_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    assert benchmark(limiter.try_acquire) is True


@pytest.mark.benchmark(group=SYNC)
def test_seawall_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    benchmark(limiter.acquire)


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    assert benchmark(limiter(work)) == 1


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_aacquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    bench_async(benchmark, limiter.aacquire)


@pytest.mark.benchmark(group=ASYNC)
def test_async_aiolimiter_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = aiolimiter.AsyncLimiter(max_rate=BURST, time_period=BURST / RATE)
    bench_async(benchmark, limiter.acquire)
