"""Rate limiters: a token available, a token refused, and tasks queueing; with the peers.

Token available: every limiter is configured so large and fast (about 1e9 tokens of
burst, 1e12 a second) that no round ever runs short, so each row is the non-waiting
path. Peers: aiolimiter ``AsyncLimiter.acquire`` (async), pyrate-limiter's token bucket
(``limiter_factory.create_token_bucket_limiter``; ``try_acquire(blocking=False)`` sync,
``try_acquire_async`` async), limits ``MovingWindowRateLimiter`` and
``FixedWindowRateLimiter`` on ``MemoryStorage`` (``hit``; ``limits.aio`` for async) and
hyx ``TokenBucketLimiter.acquire`` (async). seawall's keyed limiter (one key) and LLM
limiter (``try_reserve``/``areserve`` of 100 tokens) are there for scale.

Token refused: the bucket holds 1 token per hour and it was taken; the non-blocking
calls say no (``try_acquire`` returns False, ``hit`` False, ``try_reserve`` None), and
``acquire(max_wait=0)`` raises `RateLimitedError`, caught.

Contended: 10 tasks share one limiter of 20,000 tokens a second and a burst of 10, and
take 1,000 tokens in all each round, so nearly every acquire queues and sleeps. The wall
time of a round is set by the rate, so these rows time the **CPU** spent
(`time.process_time`): what queueing, sleeping and waking cost per grant. ``plain`` is
the same tasks each doing ``await asyncio.sleep(0)`` instead of an acquire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiolimiter
import hyx.ratelimit
import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
import pytest
from pyrate_limiter import Duration, Limiter, limiter_factory
from pytest_benchmark.fixture import BenchmarkFixture

import seawall
from _support import (
    TASKS,
    apassthrough,
    awork,
    bench_async,
    bench_contended,
    passthrough,
    rejected,
    work,
)


SYNC = "sync limiter, token available"
ASYNC = "async limiter, token available"
REFUSED = "sync limiter, token refused"
CONTENDED = f"async limiter, contended ({TASKS} tasks, CPU time)"

# A bucket so large and fast that no benchmark round ever has to wait.
RATE = 1e12
BURST = 1e9
PEER_RATE = 10**9  # pyrate-limiter and limits take whole numbers per second
TOKENS = 100  # per LLM request

# The contended bucket: 1,000 grants a round take about 50 ms of wall time.
CONTENDED_RATE = 20_000.0
CONTENDED_BURST = 10


def _llm(
    rpm: float, tpm: float, request_burst: float, token_burst: float
) -> seawall.LLMRateLimiter:
    return seawall.LLMRateLimiter(
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        request_burst=request_burst,
        token_burst=token_burst,
    )


def _pyrate(rate: int, duration: Duration, burst: int) -> Limiter:
    return limiter_factory.create_token_bucket_limiter(
        rate_per_duration=rate, duration=duration, burst=burst
    )


# -- token available, sync ---------------------------------------------------------------


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


@pytest.mark.benchmark(group=SYNC)
def test_seawall_keyed_try_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.KeyedRateLimiter(RATE, BURST)
    assert benchmark(limiter.try_acquire, "key") is True


@pytest.mark.benchmark(group=SYNC)
def test_seawall_llm_try_reserve(benchmark: BenchmarkFixture) -> None:
    limiter = _llm(RATE * 60, RATE * 60 * TOKENS, BURST, BURST * TOKENS)
    assert benchmark(limiter.try_reserve, TOKENS) is not None


@pytest.mark.benchmark(group=SYNC)
def test_pyrate_limiter_try_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = _pyrate(PEER_RATE, Duration.SECOND, PEER_RATE)
    assert benchmark(lambda: limiter.try_acquire("key", blocking=False)) is True


@pytest.mark.benchmark(group=SYNC)
def test_limits_moving_window_hit(benchmark: BenchmarkFixture) -> None:
    limiter = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(PEER_RATE)
    assert benchmark(limiter.hit, item, "key") is True


@pytest.mark.benchmark(group=SYNC)
def test_limits_fixed_window_hit(benchmark: BenchmarkFixture) -> None:
    limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(PEER_RATE)
    assert benchmark(limiter.hit, item, "key") is True


# -- token available, async --------------------------------------------------------------


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
def test_async_seawall_decorator(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    bench_async(benchmark, limiter(awork))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_keyed_aacquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.KeyedRateLimiter(RATE, BURST)
    bench_async(benchmark, lambda: limiter.aacquire("key"))


@pytest.mark.benchmark(group=ASYNC)
def test_async_seawall_llm_areserve(benchmark: BenchmarkFixture) -> None:
    limiter = _llm(RATE * 60, RATE * 60 * TOKENS, BURST, BURST * TOKENS)

    async def reserve() -> None:
        await limiter.areserve(TOKENS)

    bench_async(benchmark, reserve)


@pytest.mark.benchmark(group=ASYNC)
def test_async_aiolimiter_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = aiolimiter.AsyncLimiter(max_rate=BURST, time_period=BURST / RATE)
    bench_async(benchmark, limiter.acquire)


@pytest.mark.benchmark(group=ASYNC)
def test_async_pyrate_limiter_try_acquire_async(benchmark: BenchmarkFixture) -> None:
    limiter = _pyrate(PEER_RATE, Duration.SECOND, PEER_RATE)
    bench_async(benchmark, lambda: limiter.try_acquire_async("key"))


@pytest.mark.benchmark(group=ASYNC)
def test_async_limits_moving_window_hit(benchmark: BenchmarkFixture) -> None:
    limiter = limits.aio.strategies.MovingWindowRateLimiter(limits.aio.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(PEER_RATE)
    bench_async(benchmark, lambda: limiter.hit(item, "key"))


@pytest.mark.benchmark(group=ASYNC)
def test_async_limits_fixed_window_hit(benchmark: BenchmarkFixture) -> None:
    limiter = limits.aio.strategies.FixedWindowRateLimiter(limits.aio.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(PEER_RATE)
    bench_async(benchmark, lambda: limiter.hit(item, "key"))


@pytest.mark.benchmark(group=ASYNC)
def test_async_hyx_token_bucket(benchmark: BenchmarkFixture) -> None:
    # hyx binds its limiter to the running loop when built, but reads the loop's clock
    # only once the bucket is empty, which this one never is.
    async def build() -> hyx.ratelimit.TokenBucketLimiter:
        return hyx.ratelimit.TokenBucketLimiter(
            max_executions=RATE, per_time_secs=1.0, bucket_size=BURST
        )

    limiter = asyncio.run(build())
    bench_async(benchmark, limiter.acquire)


# -- token refused, sync ------------------------------------------------------------------


def _drained() -> seawall.RateLimiter:
    limiter = seawall.RateLimiter(rate=1 / 3600, burst=1)
    assert limiter.try_acquire()
    return limiter


@pytest.mark.benchmark(group=REFUSED)
def test_refused_plain(benchmark: BenchmarkFixture) -> None:
    assert benchmark(work) == 1


@pytest.mark.benchmark(group=REFUSED)
def test_refused_passthrough(benchmark: BenchmarkFixture) -> None:
    assert benchmark(passthrough(work)) == 1


@pytest.mark.benchmark(group=REFUSED)
def test_refused_seawall_try_acquire(benchmark: BenchmarkFixture) -> None:
    assert benchmark(_drained().try_acquire) is False


@pytest.mark.benchmark(group=REFUSED)
def test_refused_seawall_acquire_max_wait_zero(benchmark: BenchmarkFixture) -> None:
    limiter = _drained()
    benchmark(rejected(lambda: limiter.acquire(max_wait=0), seawall.RateLimitedError))


@pytest.mark.benchmark(group=REFUSED)
def test_refused_seawall_keyed_try_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.KeyedRateLimiter(1 / 3600, 1)
    assert limiter.try_acquire("key")
    assert benchmark(limiter.try_acquire, "key") is False


@pytest.mark.benchmark(group=REFUSED)
def test_refused_seawall_llm_try_reserve(benchmark: BenchmarkFixture) -> None:
    limiter = _llm(1 / 60, TOKENS / 60, 1, TOKENS)
    assert limiter.try_reserve(TOKENS) is not None
    assert benchmark(limiter.try_reserve, TOKENS) is None


@pytest.mark.benchmark(group=REFUSED)
def test_refused_pyrate_limiter_try_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = _pyrate(1, Duration.HOUR, 1)
    assert limiter.try_acquire("key", blocking=False)
    assert benchmark(lambda: limiter.try_acquire("key", blocking=False)) is False


@pytest.mark.benchmark(group=REFUSED)
def test_refused_limits_moving_window_hit(benchmark: BenchmarkFixture) -> None:
    limiter = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerHour(1)
    assert limiter.hit(item, "key")
    assert benchmark(limiter.hit, item, "key") is False


@pytest.mark.benchmark(group=REFUSED)
def test_refused_limits_fixed_window_hit(benchmark: BenchmarkFixture) -> None:
    limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerHour(1)
    assert limiter.hit(item, "key")
    assert benchmark(limiter.hit, item, "key") is False


# -- contended, async ---------------------------------------------------------------------


async def _yield() -> None:
    await asyncio.sleep(0)


def _contended(benchmark: BenchmarkFixture, op: Callable[[], Awaitable[object]]) -> None:
    bench_contended(benchmark, op)


@pytest.mark.benchmark(group=CONTENDED, timer=time.process_time)
def test_contended_plain(benchmark: BenchmarkFixture) -> None:
    _contended(benchmark, _yield)


@pytest.mark.benchmark(group=CONTENDED, timer=time.process_time)
def test_contended_passthrough(benchmark: BenchmarkFixture) -> None:
    _contended(benchmark, apassthrough(_yield))


@pytest.mark.benchmark(group=CONTENDED, timer=time.process_time)
def test_contended_seawall_aacquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.RateLimiter(rate=CONTENDED_RATE, burst=CONTENDED_BURST)
    _contended(benchmark, limiter.aacquire)


@pytest.mark.benchmark(group=CONTENDED, timer=time.process_time)
def test_contended_seawall_keyed_aacquire(benchmark: BenchmarkFixture) -> None:
    limiter = seawall.KeyedRateLimiter(CONTENDED_RATE, CONTENDED_BURST)
    _contended(benchmark, lambda: limiter.aacquire("key"))


@pytest.mark.benchmark(group=CONTENDED, timer=time.process_time)
def test_contended_aiolimiter_acquire(benchmark: BenchmarkFixture) -> None:
    limiter = aiolimiter.AsyncLimiter(
        max_rate=CONTENDED_BURST, time_period=CONTENDED_BURST / CONTENDED_RATE
    )
    _contended(benchmark, limiter.acquire)


@pytest.mark.benchmark(group=CONTENDED, timer=time.process_time)
def test_contended_pyrate_limiter_try_acquire_async(benchmark: BenchmarkFixture) -> None:
    # buffer_ms=0: by default pyrate-limiter adds 50 ms to every wait.
    limiter = limiter_factory.create_token_bucket_limiter(
        rate_per_duration=int(CONTENDED_RATE),
        duration=Duration.SECOND,
        burst=CONTENDED_BURST,
        buffer_ms=0,
    )
    _contended(benchmark, lambda: limiter.try_acquire_async("key"))
