"""Success path of a circuit breaker, against a plain call and the peers, in one run."""

from __future__ import annotations

import contextlib

import pybreaker
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, passthrough, work


SYNC = "sync breaker success"
ASYNC = "async breaker success"


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.CircuitBreaker()(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.CircuitBreaker().call, work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_pybreaker_decorator(benchmark: BenchmarkFixture) -> None:
    assert benchmark(pybreaker.CircuitBreaker()(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_rejection(benchmark: BenchmarkFixture) -> None:
    breaker = seawall.CircuitBreaker()
    breaker.force_open()
    guarded = breaker(work)

    def rejected() -> None:
        with contextlib.suppress(seawall.CircuitOpenError):
            guarded()

    benchmark(rejected)


@pytest.mark.benchmark(group=SYNC)
def test_bare_raise_and_catch(benchmark: BenchmarkFixture) -> None:
    error = seawall.CircuitOpenError("open", primitive_name="b", retry_after=1.0)

    def raise_and_catch() -> None:
        try:
            raise error
        except seawall.CircuitOpenError:
            pass

    benchmark(raise_and_catch)


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, seawall.CircuitBreaker()(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_acall(benchmark: BenchmarkFixture) -> None:
    breaker = seawall.CircuitBreaker()
    bench_async(benchmark, lambda: breaker.acall(awork))
