"""Fallback: a call that succeeds, so its fallback value is never used.

Reference: a hand-written ``try``/``except Exception`` returning the value. Peer: hyx
``@fallback`` (async only; an async handler, on `Exception`).
"""

from __future__ import annotations

from typing import Any

import hyx.fallback
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, passthrough, work


SYNC = "sync fallback, call succeeds"
ASYNC = "async fallback, call succeeds"

VALUE = 0


def _try_except() -> int:
    try:
        return work()
    except Exception:  # noqa: BLE001 -- what a fallback does by hand
        return VALUE


async def _atry_except() -> int:
    try:
        return await awork()
    except Exception:  # noqa: BLE001 -- same
        return VALUE


async def _handler(*_: Any, **__: Any) -> int:
    return VALUE


# -- sync ---------------------------------------------------------------------------------


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_try_except(benchmark: BenchmarkFixture) -> None:
    assert benchmark(_try_except) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.Fallback(VALUE).call, work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.Fallback(VALUE)(work)) == 1


# -- async --------------------------------------------------------------------------------


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_try_except(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, _atry_except)


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_acall(benchmark: BenchmarkFixture) -> None:
    fallback = seawall.Fallback(VALUE)
    bench_async(benchmark, lambda: fallback.acall(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, seawall.Fallback(VALUE)(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_hyx(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, hyx.fallback.fallback(_handler, on=Exception)(awork))
