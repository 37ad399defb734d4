"""Circuit breakers: the success path and the rejection of an open breaker, with the peers.

Success path: a closed breaker with default settings and a call that succeeds. Peers:
pybreaker ``CircuitBreaker()`` (sync only: its async support needs tornado),
circuitbreaker ``CircuitBreaker()`` (sync and async), purgatory's
``SyncCircuitBreakerFactory`` / ``AsyncCircuitBreakerFactory`` with the in-memory unit of
work, and hyx ``consecutive_breaker()`` (async only).

Rejection: every breaker is opened by real means for an hour (seawall ``trip()``,
pybreaker ``open()``, the others by one failure with a threshold of 1), then each call
is refused and the caller catches the error. ``plain`` is a bare raise-and-catch of a
new exception (a call to a function that raises it, caught by the caller); the
``raise_circuit_open_error`` row builds and raises seawall's own `CircuitOpenError`
with its message and fields, the floor of what a rejection has to do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import circuitbreaker
import hyx.circuitbreaker
import purgatory
import pybreaker
import pytest
from hyx.circuitbreaker.exceptions import BreakerFailing
from purgatory.domain.model import OpenedState
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import (
    Rejection,
    afail,
    apassthrough,
    araise_rejection,
    awork,
    bench_async,
    bench_async_rejected,
    fail,
    passthrough,
    raise_rejection,
    rejected,
    work,
)


SYNC = "sync breaker success"
ASYNC = "async breaker success"
SYNC_OPEN = "sync breaker rejection (open)"
ASYNC_OPEN = "async breaker rejection (open)"

HOUR = 3600.0


def _tripped(guarded: Callable[[], object], error: type[BaseException]) -> None:
    """Call *guarded* (which fails) once, to open a breaker with a threshold of 1."""
    with contextlib.suppress(error):
        guarded()


def _atripped(guarded: Callable[[], Awaitable[object]], error: type[BaseException]) -> None:
    async def once() -> None:
        with contextlib.suppress(error):
            await guarded()

    asyncio.run(once())


# -- success, sync ---------------------------------------------------------------------


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
def test_pybreaker(benchmark: BenchmarkFixture) -> None:
    assert benchmark(pybreaker.CircuitBreaker()(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_circuitbreaker(benchmark: BenchmarkFixture) -> None:
    assert benchmark(circuitbreaker.CircuitBreaker()(work)) == 1


@pytest.mark.benchmark(group=SYNC)
def test_purgatory(benchmark: BenchmarkFixture) -> None:
    breakers = purgatory.SyncCircuitBreakerFactory()
    assert benchmark(breakers("work")(work)) == 1


# -- success, async --------------------------------------------------------------------


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


@pytest.mark.benchmark(group=ASYNC)
def test_async_circuitbreaker(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, circuitbreaker.CircuitBreaker()(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_purgatory(benchmark: BenchmarkFixture) -> None:
    breakers = purgatory.AsyncCircuitBreakerFactory()
    bench_async(benchmark, breakers("work")(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_hyx(benchmark: BenchmarkFixture) -> None:
    bench_async(benchmark, hyx.circuitbreaker.consecutive_breaker()(awork))


# -- rejection by an open breaker, sync --------------------------------------------------


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_plain(benchmark: BenchmarkFixture) -> None:
    benchmark(rejected(raise_rejection, Rejection))


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_passthrough(benchmark: BenchmarkFixture) -> None:
    benchmark(rejected(passthrough(raise_rejection), Rejection))


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_raise_circuit_open_error(benchmark: BenchmarkFixture) -> None:
    def raise_error() -> None:
        msg = "circuit breaker 'b' is open; retry in 1 s"
        raise seawall.CircuitOpenError(msg, primitive_name="b", retry_after=1.0)

    benchmark(rejected(raise_error, seawall.CircuitOpenError))


def _open_seawall() -> seawall.CircuitBreaker:
    breaker = seawall.CircuitBreaker(timeout=HOUR)
    breaker.trip()
    return breaker


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    benchmark(rejected(_open_seawall()(work), seawall.CircuitOpenError))


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_seawall_call(benchmark: BenchmarkFixture) -> None:
    breaker = _open_seawall()
    benchmark(rejected(lambda: breaker.call(work), seawall.CircuitOpenError))


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_pybreaker(benchmark: BenchmarkFixture) -> None:
    breaker = pybreaker.CircuitBreaker(reset_timeout=HOUR)
    breaker.open()
    benchmark(rejected(breaker(work), pybreaker.CircuitBreakerError))


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_circuitbreaker(benchmark: BenchmarkFixture) -> None:
    breaker = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=HOUR)
    _tripped(breaker(fail), ConnectionError)
    benchmark(rejected(breaker(work), circuitbreaker.CircuitBreakerError))


@pytest.mark.benchmark(group=SYNC_OPEN)
def test_open_purgatory(benchmark: BenchmarkFixture) -> None:
    breakers = purgatory.SyncCircuitBreakerFactory(default_threshold=1, default_ttl=HOUR)
    _tripped(breakers("work")(fail), ConnectionError)
    guarded = breakers("work")(work)

    def call() -> None:
        try:
            guarded()
        except OpenedState as exc:
            # purgatory raises the same exception object every time: without this its
            # traceback (and the frames it holds) would grow with every rejection.
            exc.__traceback__ = None

    benchmark(call)


# -- rejection by an open breaker, async -------------------------------------------------


@pytest.mark.benchmark(group=ASYNC_OPEN)
def test_async_open_plain(benchmark: BenchmarkFixture) -> None:
    bench_async_rejected(benchmark, araise_rejection, Rejection)


@pytest.mark.benchmark(group=ASYNC_OPEN)
def test_async_open_passthrough(benchmark: BenchmarkFixture) -> None:
    bench_async_rejected(benchmark, apassthrough(araise_rejection), Rejection)


@pytest.mark.benchmark(group=ASYNC_OPEN)
def test_async_open_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    guarded = _open_seawall()(awork)
    bench_async_rejected(benchmark, guarded, seawall.CircuitOpenError)


@pytest.mark.benchmark(group=ASYNC_OPEN)
def test_async_open_seawall_acall(benchmark: BenchmarkFixture) -> None:
    breaker = _open_seawall()
    bench_async_rejected(benchmark, lambda: breaker.acall(awork), seawall.CircuitOpenError)


@pytest.mark.benchmark(group=ASYNC_OPEN)
def test_async_open_circuitbreaker(benchmark: BenchmarkFixture) -> None:
    breaker = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=HOUR)
    _atripped(breaker(afail), ConnectionError)
    bench_async_rejected(benchmark, breaker(awork), circuitbreaker.CircuitBreakerError)


@pytest.mark.benchmark(group=ASYNC_OPEN)
def test_async_open_purgatory(benchmark: BenchmarkFixture) -> None:
    breakers = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=HOUR)
    _atripped(breakers("work")(afail), ConnectionError)
    guarded = breakers("work")(awork)

    async def call() -> None:
        try:
            await guarded()
        except OpenedState as exc:
            exc.__traceback__ = None  # the same object every time, as in the sync row

    bench_async(benchmark, call)


@pytest.mark.benchmark(group=ASYNC_OPEN)
# hyx reads datetime.utcnow() on every rejection, deprecated from Python 3.12.
@pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")
def test_async_open_hyx(benchmark: BenchmarkFixture) -> None:
    breaker = hyx.circuitbreaker.consecutive_breaker(failure_threshold=1, recovery_time_secs=HOUR)
    _atripped(breaker(afail), ConnectionError)
    bench_async_rejected(benchmark, breaker(awork), BreakerFailing)
