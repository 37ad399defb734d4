"""Success path of a retrier, against a plain call and the peers, in one run.

Every retrier allows 3 attempts and would back off on failure; the measured call
succeeds at once, so none of them ever waits. Peers: tenacity ``@retry`` (stop after 3
attempts), stamina ``@retry`` (on `Exception`, 3 attempts), backoff ``@on_exception``
(exponential, on `Exception`, 3 tries) and hyx ``@retry`` (async only, on `Exception`,
3 attempts).
"""

from __future__ import annotations

import backoff
import hyx.retry
import pytest
import stamina
import tenacity
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import apassthrough, awork, bench_async, passthrough, work


SYNC = "sync retry success"
ASYNC = "async retry success"


@pytest.mark.benchmark(group=SYNC)
def test_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.Retrier()(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_seawall_call(benchmark: BenchmarkFixture) -> None:
    assert benchmark(seawall.Retrier().call, work) == 1


@pytest.mark.benchmark(group=SYNC)
def test_tenacity(benchmark: BenchmarkFixture) -> None:
    guarded = tenacity.retry(stop=tenacity.stop_after_attempt(3))(work)
    assert benchmark(guarded) == 1


@pytest.mark.benchmark(group=SYNC)
def test_stamina(benchmark: BenchmarkFixture) -> None:
    assert benchmark(stamina.retry(on=Exception, attempts=3)(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_backoff(benchmark: BenchmarkFixture) -> None:
    guarded = backoff.on_exception(backoff.expo, Exception, max_tries=3)(work)
    assert benchmark(guarded) == 1


@pytest.mark.benchmark(group=ASYNC)
def test_async_plain(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, awork)


@pytest.mark.benchmark(group=ASYNC)
def test_async_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, apassthrough(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, seawall.Retrier()(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_acall(benchmark: BenchmarkFixture) -> None:
    retrier = seawall.Retrier()
    bench_async(benchmark, lambda: retrier.acall(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_tenacity(benchmark: BenchmarkFixture) -> None:
    guarded = tenacity.retry(stop=tenacity.stop_after_attempt(3))(awork)
    bench_async(benchmark, guarded)


@pytest.mark.benchmark(group=ASYNC)
def test_async_stamina(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, stamina.retry(on=Exception, attempts=3)(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_backoff(benchmark: BenchmarkFixture) -> None:
    guarded = backoff.on_exception(backoff.expo, Exception, max_tries=3)(awork)
    bench_async(benchmark, guarded)


@pytest.mark.benchmark(group=ASYNC)
def test_async_hyx(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, hyx.retry.retry(on=Exception, attempts=3)(awork))
