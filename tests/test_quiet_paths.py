"""Quiet paths: no thread started, no log record built, no sleep when nothing is to wait.

Every primitive is driven through its success path, sync and async (asyncio and trio),
and through the paths that must answer at once: an open breaker's rejection, a retrier
retrying (and giving up) with a zero delay, an empty rate limiter's refusal with
``max_wait=0``, a full bulkhead's refusal, a fallback taken. Each case runs on
`seawall.testing.FakeClock` (which records every ``sleep`` and ``asleep``) and on the
default `seawall.SystemClock` (whose ``sleep`` and ``asleep`` are patched here to record
too). While watched:

* ``threading.Thread.start`` counts the threads started;
* a record factory (``logging.setLogRecordFactory``) counts the `logging.LogRecord`
  objects built, with the root and ``seawall`` loggers at DEBUG so that a record is built
  for any level;
* the clock's record of sleeps must stay empty.

The sync `seawall.Timeout` and the sync `seawall.Hedger` run calls in a worker pool
that their first call creates, with its first thread: those cases (``pool=True``) are
watched after one warm-up call. Every other case is watched from its first call.

The one sleep allowed is the virtual deadline timer of the async `Timeout` and
`Hedger` on a `FakeClock`: with a clock other than `SystemClock` they watch the
deadline from a task that sleeps on the clock until it (``timer``); with `SystemClock`
they use a cancel scope and never sleep.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import seawall
from seawall.testing import FakeClock


CALLS = 5
HOUR = 3600.0
DEADLINE = 10.0  # the hedge delay and the timeout: far longer than any call here


class Watch:
    """What the watched calls did: threads started, records built, real-clock sleeps."""

    def __init__(self) -> None:
        self.active = False
        self.threads: list[str] = []
        self.records: list[str] = []
        self.system_sleeps: list[float] = []

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Record what happens inside the block."""
        self.active = True
        try:
            yield
        finally:
            self.active = False


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watch]:
    """Count thread starts, log records and SystemClock sleeps while `Watch.watching`."""
    watch = Watch()

    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        if watch.active:
            watch.threads.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)

    sleep = seawall.SystemClock.sleep
    asleep = seawall.SystemClock.asleep

    def recording_sleep(seconds: float) -> None:
        if watch.active:
            watch.system_sleeps.append(seconds)
        sleep(seconds)

    async def recording_asleep(clock: seawall.SystemClock, seconds: float) -> None:
        if watch.active:
            watch.system_sleeps.append(seconds)
        await asleep(clock, seconds)

    monkeypatch.setattr(seawall.SystemClock, "sleep", staticmethod(recording_sleep))
    monkeypatch.setattr(seawall.SystemClock, "asleep", recording_asleep)

    factory = logging.getLogRecordFactory()

    def counting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if watch.active:
            watch.records.append(f"{record.name}: {record.getMessage()}")
        return record

    loggers = [logging.getLogger(), logging.getLogger("seawall")]
    levels = [logger.level for logger in loggers]
    logging.setLogRecordFactory(counting_factory)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        logging.setLogRecordFactory(factory)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@pytest.fixture(params=["fake_clock", "system_clock"])
def clock(request: pytest.FixtureRequest) -> FakeClock | None:
    """A FakeClock, or None for the primitives' default SystemClock (overrides conftest)."""
    return FakeClock() if request.param == "fake_clock" else None


# -- the cases ----------------------------------------------------------------------------


@dataclass
class Case:
    """One way to use a primitive: *op* makes one call."""

    op: Callable[[], Any]
    pool: bool = False  # the first call legitimately starts a worker thread
    timer: float | None = None  # the virtual deadline an async call may sleep on (FakeClock)
    close: Callable[[], None] | None = None


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def fail() -> int:
    raise ConnectionError("down")


async def afail() -> int:
    raise ConnectionError("down")


class Flaky:
    """Fails with a retryable error twice, then succeeds, on every third call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls % 3:
            raise ConnectionError("flaky")
        return 1

    async def acall(self) -> int:
        return self()


def raises(fn: Callable[[], Any], error: type[BaseException]) -> Callable[[], None]:
    def call() -> None:
        with pytest.raises(error):
            fn()

    return call


def araises(fn: Callable[[], Awaitable[Any]], error: type[BaseException]) -> Callable[[], Any]:
    async def call() -> None:
        with pytest.raises(error):
            await fn()

    return call


def _open_breaker(clock: FakeClock | None) -> seawall.CircuitBreaker:
    breaker = seawall.CircuitBreaker(timeout=HOUR, clock=clock)
    breaker.trip()
    return breaker


def _drained(clock: FakeClock | None) -> seawall.RateLimiter:
    limiter = seawall.RateLimiter(rate=1 / HOUR, burst=1, clock=clock)
    assert limiter.try_acquire()
    return limiter


def _full_bulkhead(clock: FakeClock | None, **options: Any) -> seawall.Bulkhead:
    bulkhead = seawall.Bulkhead(1, clock=clock, **options)
    bulkhead.acquire()  # the one slot stays taken
    return bulkhead


def _zero_delay_retrier(clock: FakeClock | None) -> seawall.Retrier:
    return seawall.Retrier(max_attempts=3, initial_delay=0, clock=clock)


def _llm(clock: FakeClock | None) -> seawall.LLMRateLimiter:
    return seawall.LLMRateLimiter(
        requests_per_minute=6e13,
        tokens_per_minute=6e15,
        request_burst=1e9,
        token_burst=1e11,
        clock=clock,
    )


def _sync_llm(clock: FakeClock | None) -> Case:
    limiter = _llm(clock)

    def reserve() -> None:
        lease = limiter.try_reserve(100)
        assert lease is not None
        lease.settle(50)
        limiter.reserve(100).settle(100)

    return Case(reserve)


def _sync_hedger(clock: FakeClock | None, *, decorate: bool) -> Case:
    hedger = seawall.Hedger(delay=DEADLINE, clock=clock)
    op = hedger(work) if decorate else (lambda: hedger.call(work))
    return Case(op, pool=True, close=hedger.close)


def _sync_timeout(clock: FakeClock | None, *, decorate: bool) -> Case:
    timeout = seawall.Timeout(DEADLINE, clock=clock)
    op = timeout(work) if decorate else (lambda: timeout.call(work))
    return Case(op, pool=True, close=timeout.close)


def _sync_bulkhead_acquire(clock: FakeClock | None) -> Case:
    bulkhead = seawall.Bulkhead(2, clock=clock)

    def acquire_release() -> None:
        bulkhead.acquire()
        bulkhead.release()

    return Case(acquire_release)


SYNC_CASES: dict[str, Callable[[FakeClock | None], Case]] = {
    "breaker_decorator": lambda c: Case(seawall.CircuitBreaker(clock=c)(work)),
    "breaker_call": lambda c: Case(lambda: seawall.CircuitBreaker(clock=c).call(work)),
    "breaker_open_rejects": lambda c: Case(
        raises(_open_breaker(c)(work), seawall.CircuitOpenError)
    ),
    "retrier_decorator": lambda c: Case(seawall.Retrier(clock=c)(work)),
    "retrier_call": lambda c: Case(lambda: seawall.Retrier(clock=c).call(work)),
    "retrier_zero_delay_retries": lambda c: Case(_zero_delay_retrier(c)(Flaky())),
    "retrier_zero_delay_gives_up": lambda c: Case(
        raises(_zero_delay_retrier(c)(fail), ConnectionError)
    ),
    "hedger_call": lambda c: _sync_hedger(c, decorate=False),
    "hedger_decorator": lambda c: _sync_hedger(c, decorate=True),
    "rate_limiter_try_acquire": lambda c: Case(
        seawall.RateLimiter(rate=1e12, burst=1e9, clock=c).try_acquire
    ),
    "rate_limiter_acquire": lambda c: Case(
        seawall.RateLimiter(rate=1e12, burst=1e9, clock=c).acquire
    ),
    "rate_limiter_decorator": lambda c: Case(
        seawall.RateLimiter(rate=1e12, burst=1e9, clock=c)(work)
    ),
    "rate_limiter_refuses": lambda c: Case(_drained(c).try_acquire),
    "rate_limiter_max_wait_zero_refuses": lambda c: Case(
        raises(lambda: _drained(c).acquire(max_wait=0), seawall.RateLimitedError)
    ),
    "keyed_limiter_try_acquire": lambda c: Case(
        lambda: seawall.KeyedRateLimiter(1e12, 1e9, clock=c).try_acquire("key")
    ),
    "keyed_limiter_acquire": lambda c: Case(
        lambda: seawall.KeyedRateLimiter(1e12, 1e9, clock=c).acquire("key")
    ),
    "llm_limiter_reserve": _sync_llm,
    "timeout_call": lambda c: _sync_timeout(c, decorate=False),
    "timeout_decorator": lambda c: _sync_timeout(c, decorate=True),
    "bulkhead_call": lambda c: Case(lambda: seawall.Bulkhead(2, clock=c).call(work)),
    "bulkhead_decorator": lambda c: Case(seawall.Bulkhead(2, clock=c)(work)),
    "bulkhead_acquire_release": _sync_bulkhead_acquire,
    "bulkhead_full_refuses": lambda c: Case(
        raises(_full_bulkhead(c)(work), seawall.BulkheadFullError)
    ),
    "bulkhead_max_wait_zero_refuses": lambda c: Case(
        raises(_full_bulkhead(c, max_queue=1, max_wait=0)(work), seawall.BulkheadFullError)
    ),
    "fallback_call": lambda c: Case(lambda: seawall.Fallback(0, clock=c).call(work)),
    "fallback_decorator": lambda c: Case(seawall.Fallback(0, clock=c)(work)),
    "fallback_taken": lambda c: Case(seawall.Fallback(0, clock=c)(fail)),
}


def _async_llm(clock: FakeClock | None) -> Case:
    limiter = _llm(clock)

    async def reserve() -> None:
        (await limiter.areserve(100)).settle(50)

    return Case(reserve)


def _async_hedger(clock: FakeClock | None, *, decorate: bool, delay: float = DEADLINE) -> Case:
    hedger = seawall.Hedger(delay=delay, clock=clock)
    op = hedger(awork) if decorate else (lambda: hedger.acall(awork))
    return Case(op, timer=delay, close=hedger.close)


def _async_timeout(clock: FakeClock | None, *, how: str) -> Case:
    timeout = seawall.Timeout(DEADLINE, clock=clock)

    async def scoped() -> int:
        async with timeout.scope():
            return await awork()

    ops: dict[str, Callable[[], Awaitable[int]]] = {
        "acall": lambda: timeout.acall(awork),
        "decorator": timeout(awork),
        "scope": scoped,
    }
    return Case(ops[how], timer=DEADLINE, close=timeout.close)


def _async_bulkhead_acquire(clock: FakeClock | None) -> Case:
    bulkhead = seawall.Bulkhead(2, clock=clock)

    async def acquire_release() -> None:
        await bulkhead.aacquire()
        bulkhead.release()

    return Case(acquire_release)


def _async_flaky(clock: FakeClock | None) -> Case:
    return Case(_zero_delay_retrier(clock)(Flaky().acall))


ASYNC_CASES: dict[str, Callable[[FakeClock | None], Case]] = {
    "breaker_decorator": lambda c: Case(seawall.CircuitBreaker(clock=c)(awork)),
    "breaker_acall": lambda c: Case(lambda: seawall.CircuitBreaker(clock=c).acall(awork)),
    "breaker_open_rejects": lambda c: Case(
        araises(_open_breaker(c)(awork), seawall.CircuitOpenError)
    ),
    "retrier_decorator": lambda c: Case(seawall.Retrier(clock=c)(awork)),
    "retrier_acall": lambda c: Case(lambda: seawall.Retrier(clock=c).acall(awork)),
    "retrier_zero_delay_retries": _async_flaky,
    "retrier_zero_delay_gives_up": lambda c: Case(
        araises(_zero_delay_retrier(c)(afail), ConnectionError)
    ),
    "hedger_acall": lambda c: _async_hedger(c, decorate=False),
    "hedger_decorator": lambda c: _async_hedger(c, decorate=True),
    "hedger_zero_delay": lambda c: _async_hedger(c, decorate=False, delay=0),
    "rate_limiter_aacquire": lambda c: Case(
        seawall.RateLimiter(rate=1e12, burst=1e9, clock=c).aacquire
    ),
    "rate_limiter_decorator": lambda c: Case(
        seawall.RateLimiter(rate=1e12, burst=1e9, clock=c)(awork)
    ),
    "rate_limiter_max_wait_zero_refuses": lambda c: Case(
        araises(lambda: _drained(c).aacquire(max_wait=0), seawall.RateLimitedError)
    ),
    "keyed_limiter_aacquire": lambda c: Case(
        lambda: seawall.KeyedRateLimiter(1e12, 1e9, clock=c).aacquire("key")
    ),
    "llm_limiter_areserve": _async_llm,
    "timeout_acall": lambda c: _async_timeout(c, how="acall"),
    "timeout_decorator": lambda c: _async_timeout(c, how="decorator"),
    "timeout_scope": lambda c: _async_timeout(c, how="scope"),
    "bulkhead_acall": lambda c: Case(lambda: seawall.Bulkhead(2, clock=c).acall(awork)),
    "bulkhead_decorator": lambda c: Case(seawall.Bulkhead(2, clock=c)(awork)),
    "bulkhead_aacquire_release": _async_bulkhead_acquire,
    "bulkhead_full_refuses": lambda c: Case(
        araises(_full_bulkhead(c)(awork), seawall.BulkheadFullError)
    ),
    "bulkhead_max_wait_zero_refuses": lambda c: Case(
        araises(_full_bulkhead(c, max_queue=1, max_wait=0)(awork), seawall.BulkheadFullError)
    ),
    "fallback_acall": lambda c: Case(lambda: seawall.Fallback(0, clock=c).acall(awork)),
    "fallback_decorator": lambda c: Case(seawall.Fallback(0, clock=c)(awork)),
    "fallback_taken": lambda c: Case(seawall.Fallback(0, clock=c)(afail)),
}


# -- the checks ---------------------------------------------------------------------------


def _check(case: Case, clock: FakeClock | None, watch: Watch) -> None:
    assert watch.threads == [], "threads started"
    assert watch.records == [], "log records built"
    slept = watch.system_sleeps if clock is None else clock.sleeps
    allowed = case.timer if clock is not None else None
    assert [seconds for seconds in slept if seconds != allowed] == [], "slept"


@pytest.mark.parametrize("name", list(SYNC_CASES))
def test_sync(name: str, clock: FakeClock | None, watch: Watch) -> None:
    case = SYNC_CASES[name](clock)
    try:
        if case.pool:
            case.op()  # creates the worker pool and its first thread
        with watch.watching():
            for _ in range(CALLS):
                case.op()
    finally:
        if case.close is not None:
            case.close()
    _check(case, clock, watch)


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(ASYNC_CASES))
async def test_async(
    name: str, clock: FakeClock | None, watch: Watch, request: pytest.FixtureRequest
) -> None:
    case = ASYNC_CASES[name](clock)
    try:
        with watch.watching():
            for _ in range(CALLS):
                await case.op()
    finally:
        if case.close is not None:
            case.close()
    _check(case, clock, watch)


def test_every_primitive_is_covered() -> None:
    """A new primitive gets cases here: each of these names one, sync and async."""
    primitives = (
        *("breaker", "retrier", "hedger", "rate_limiter", "keyed_limiter"),
        *("llm_limiter", "timeout", "bulkhead", "fallback"),
    )
    for cases in (SYNC_CASES, ASYNC_CASES):
        assert {name for name in cases if name.startswith(primitives)} == set(cases)
        for primitive in primitives:
            assert any(name.startswith(primitive) for name in cases), primitive
