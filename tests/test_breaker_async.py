"""The circuit breaker's async shell on asyncio and trio: acall(), the decorator, guard()."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest

import seawall
from seawall import (
    CallEnded,
    CallRejected,
    CallStarted,
    CircuitBreaker,
    CircuitBreakerStatistics,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    CountWindow,
)
from seawall.testing import FakeClock, RecordingHook


pytestmark = pytest.mark.anyio


class BoomError(ConnectionError):
    """A transient failure of the dependency."""


class BadRequestError(Exception):
    """A caller error: the dependency answered 400."""

    status_code = 400


async def aboom() -> None:
    raise BoomError


async def aok(value: int = 1) -> int:
    return value


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """Read the state through a call, so that mypy does not narrow it between steps."""
    return breaker.state


def make(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("max_failures", 2)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("name", "dep")
    return CircuitBreaker(clock=clock, **kwargs)


async def trip_by_failures(breaker: CircuitBreaker, n: int = 2) -> None:
    for _ in range(n):
        with pytest.raises(BoomError):
            await breaker.acall(aboom)


class TestCall:
    async def test_acall_returns_result(self, clock: FakeClock) -> None:
        """acall() passes arguments through and returns the awaited result."""
        breaker = make(clock)
        assert await breaker.acall(aok, 7) == 7
        assert breaker.statistics().successes == 1

    async def test_acall_reraises_and_counts_failure(self, clock: FakeClock) -> None:
        """A failing acall re-raises the original exception and counts it."""
        breaker = make(clock)
        with pytest.raises(BoomError):
            await breaker.acall(aboom)
        assert breaker.statistics().consecutive_failures == 1

    async def test_acall_in_cancelled_scope_records_nothing(self, clock: FakeClock) -> None:
        """acall in a cancelled scope is cancelled at fn's first await and counts nothing."""
        breaker = make(clock)

        async def checkpointing() -> str:
            await anyio.lowlevel.checkpoint()
            return "ok"

        with anyio.CancelScope() as scope:
            scope.cancel()
            await breaker.acall(checkpointing)
        assert scope.cancelled_caught
        stats = breaker.statistics()
        assert (stats.cancelled, stats.failures, stats.successes) == (1, 0, 0)
        assert stats.calls_in_flight == 0


class TestDecorator:
    async def test_decorate_coroutine_function(self, clock: FakeClock) -> None:
        """@breaker wraps a coroutine function and keeps its metadata."""
        breaker = make(clock)

        @breaker
        async def add(a: int, b: int) -> int:
            """Add."""
            return a + b

        assert await add(1, 2) == 3
        assert add.__name__ == "add"
        assert breaker.statistics().successes == 1

    async def test_decorate_async_generator_records_on_finish(self, clock: FakeClock) -> None:
        """An async generator's outcome is recorded when it finishes."""
        breaker = make(clock)

        @breaker
        async def numbers(n: int) -> AsyncGenerator[int, None]:
            for i in range(n):
                yield i

        agen = numbers(3)
        assert await agen.__anext__() == 0
        assert breaker.statistics().calls_in_flight == 1
        assert [i async for i in agen] == [1, 2]
        stats = breaker.statistics()
        assert (stats.successes, stats.calls_in_flight) == (1, 0)

    async def test_decorate_async_generator_failure(self, clock: FakeClock) -> None:
        """An async generator that raises counts a failure."""
        breaker = make(clock)

        @breaker
        async def broken() -> AsyncGenerator[int, None]:
            yield 1
            raise BoomError

        with pytest.raises(BoomError):
            _ = [i async for i in broken()]
        assert breaker.statistics().failures == 1

    async def test_async_generator_closed_early_records_nothing(self, clock: FakeClock) -> None:
        """Closing an async generator early counts a cancellation and frees the slot."""
        breaker = make(clock, half_open_max=1)
        breaker.trip()
        clock.advance(10)

        @breaker
        async def stream() -> AsyncGenerator[int, None]:
            for i in range(10):
                yield i

        agen = stream()
        await agen.__anext__()
        await agen.aclose()
        stats = breaker.statistics()
        assert (stats.cancelled, stats.successes, stats.probes_in_flight) == (1, 0, 0)
        assert [i async for i in stream()] == list(range(10))

    async def test_async_generator_forwards_asend_and_athrow(self, clock: FakeClock) -> None:
        """asend() and athrow() reach the wrapped async generator."""
        breaker = make(clock)

        @breaker
        async def echo() -> AsyncGenerator[int, int]:
            received = yield 0
            try:
                yield received * 2
            except KeyError:
                yield -1

        agen = echo()
        await agen.__anext__()
        assert await agen.asend(21) == 42
        assert await agen.athrow(KeyError()) == -1
        await agen.aclose()


class TestGuard:
    async def test_guard_records_success_and_failure(self, clock: FakeClock) -> None:
        """async with breaker.guard() records the block's outcome and re-raises."""
        breaker = make(clock)
        async with breaker.guard():
            pass
        with pytest.raises(BoomError):
            async with breaker.guard():
                raise BoomError
        stats = breaker.statistics()
        assert (stats.successes, stats.failures) == (1, 1)

    async def test_guard_is_single_use(self, clock: FakeClock) -> None:
        """A guard serves one call; entering it twice raises."""
        breaker = make(clock)
        guard = breaker.guard()
        async with guard:
            pass
        with pytest.raises(RuntimeError, match="one call"):
            async with guard:
                pass

    async def test_guard_rejects_when_open(self, clock: FakeClock) -> None:
        """Entering a guard on an open breaker raises CircuitOpenError."""
        breaker = make(clock)
        breaker.trip()
        with pytest.raises(CircuitOpenError):
            async with breaker.guard():
                pytest.fail("the block must not run")


class TestRejection:
    async def test_rejection_carries_name_and_retry_after(self, clock: FakeClock) -> None:
        """An open breaker raises CircuitOpenError with its name and retry_after."""
        breaker = make(clock, name="llm")
        await trip_by_failures(breaker)
        await clock.asleep(4)
        with pytest.raises(CircuitOpenError) as info:
            await breaker.acall(aok)
        assert info.value.primitive_name == "llm"
        assert info.value.retry_after == pytest.approx(6.0)
        assert breaker.statistics().rejections == 1


class TestRecovery:
    async def test_timeout_half_open_then_close(self, clock: FakeClock) -> None:
        """After timeout, successful probes close the circuit."""
        breaker = make(clock, half_open_max=1)
        await trip_by_failures(breaker)
        await clock.asleep(10)
        assert state_of(breaker) is CircuitState.HALF_OPEN
        assert await breaker.acall(aok) == 1
        assert state_of(breaker) is CircuitState.CLOSED

    async def test_probe_failure_reopens(self, clock: FakeClock) -> None:
        """A failed probe re-opens the circuit for another timeout."""
        breaker = make(clock)
        await trip_by_failures(breaker)
        await clock.asleep(10)
        with pytest.raises(BoomError):
            await breaker.acall(aboom)
        assert state_of(breaker) is CircuitState.OPEN

    async def test_half_open_rejects_beyond_half_open_max(self, clock: FakeClock) -> None:
        """Only half_open_max probes run at once; the rest are rejected."""
        breaker = make(clock, half_open_max=2)
        breaker.trip()
        clock.advance(10)
        rejected: list[float | None] = []

        async def probe() -> None:
            try:
                await breaker.acall(clock.asleep, 1.0)
            except CircuitOpenError as exc:
                rejected.append(exc.retry_after)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(probe)
        assert rejected == [1.0, 1.0, 1.0]
        assert state_of(breaker) is CircuitState.CLOSED

    async def test_success_threshold(self, clock: FakeClock) -> None:
        """success_threshold probe successes are needed to close."""
        breaker = make(clock, half_open_max=1, success_threshold=3)
        breaker.trip()
        await clock.asleep(10)
        for _ in range(2):
            await breaker.acall(aok)
            assert state_of(breaker) is CircuitState.HALF_OPEN
        await breaker.acall(aok)
        assert state_of(breaker) is CircuitState.CLOSED

    async def test_vanished_probe_lease_expires(self, clock: FakeClock) -> None:
        """A probe that never reports stops blocking after probe_timeout."""
        breaker = make(clock, half_open_max=1, probe_timeout=3)
        breaker.trip()
        clock.advance(10)
        await breaker.guard().__aenter__()  # the caller vanishes without __aexit__
        with pytest.raises(CircuitOpenError):
            await breaker.acall(aok)
        await clock.asleep(3)
        assert await breaker.acall(aok) == 1
        assert breaker.statistics().expired_probes == 1

    async def test_growing_timeout(self, clock: FakeClock) -> None:
        """Repeated trips grow the open duration up to max_timeout."""
        breaker = make(clock, timeout=1, timeout_multiplier=2, max_timeout=3)
        seen = []
        breaker.trip()
        for _ in range(3):
            seen.append(breaker.statistics().open_timeout)
            await clock.asleep(seen[-1])
            with pytest.raises(BoomError):
                await breaker.acall(aboom)
        assert seen == [1.0, 2.0, 3.0]

    async def test_stale_outcome_is_ignored(self, clock: FakeClock) -> None:
        """A call admitted before a reset does not count after it."""
        breaker = make(clock, max_failures=1)

        def reset_then_fail() -> None:
            breaker.reset()
            raise BoomError

        with pytest.raises(BoomError):
            async with breaker.guard():
                reset_then_fail()
        stats = breaker.statistics()
        assert (stats.state, stats.ignored_outcomes) == (CircuitState.CLOSED, 1)


class TestFailureModes:
    async def test_slow_call_counts_as_failure(self, clock: FakeClock) -> None:
        """A call slower than slow_call_threshold (in virtual time) fails."""
        breaker = make(clock, max_failures=1, slow_call_threshold=0.5)
        await breaker.acall(clock.asleep, 1.0)
        stats = breaker.statistics()
        assert (stats.slow_calls, stats.state) == (1, CircuitState.OPEN)

    async def test_rate_mode(self, clock: FakeClock) -> None:
        """The failure rate over the window trips once minimum_calls are in."""
        breaker = make(clock, max_failures=None, failure_rate_threshold=0.5, window=CountWindow(4))
        await breaker.acall(aok)
        with contextlib.suppress(BoomError):
            await breaker.acall(aboom)
        await breaker.acall(aok)
        assert state_of(breaker) is CircuitState.CLOSED
        with pytest.raises(BoomError):
            await breaker.acall(aboom)
        assert state_of(breaker) is CircuitState.OPEN

    async def test_result_predicate(self, clock: FakeClock) -> None:
        """is_failure_result counts a returned value as a failure, still returning it."""
        breaker = make(clock, max_failures=1, is_failure_result=lambda r: r == 0)
        assert await breaker.acall(aok, 0) == 0
        assert state_of(breaker) is CircuitState.OPEN

    async def test_caller_errors_do_not_count(self, clock: FakeClock) -> None:
        """Caller errors (4xx, ValueError) are recorded as successes."""
        breaker = make(clock, max_failures=1)
        for exc in (BadRequestError(), ValueError("bad input")):
            with pytest.raises(type(exc)):
                await breaker.acall(_araiser(exc))
        stats = breaker.statistics()
        assert (stats.state, stats.successes, stats.failures) == (CircuitState.CLOSED, 2, 0)


class TestManualControl:
    async def test_trip_reset(self, clock: FakeClock) -> None:
        """trip() opens and reset() closes at once."""
        breaker = make(clock)
        breaker.trip()
        with pytest.raises(CircuitOpenError):
            await breaker.acall(aok)
        breaker.reset()
        assert await breaker.acall(aok) == 1

    async def test_force_open_stays_open(self, clock: FakeClock) -> None:
        """force_open() rejects until reset, whatever the time."""
        breaker = make(clock)
        breaker.force_open()
        await clock.asleep(1e6)
        with pytest.raises(CircuitOpenError) as info:
            await breaker.acall(aok)
        assert info.value.retry_after is None

    async def test_disable_is_metrics_only(self, clock: FakeClock) -> None:
        """disable() admits everything and counts, never rejecting."""
        breaker = make(clock, max_failures=1)
        breaker.disable()
        await trip_by_failures(breaker, 5)
        stats = breaker.statistics()
        assert (stats.state, stats.failures, stats.rejections) == (CircuitState.DISABLED, 5, 0)


class TestHooks:
    async def test_hooks_receive_events(self, clock: FakeClock) -> None:
        """State changes and rejections reach the hooks in order."""
        hook = RecordingHook()
        breaker = make(clock, hooks=(hook,), half_open_max=1)
        await trip_by_failures(breaker)
        with pytest.raises(CircuitOpenError):
            await breaker.acall(aok)
        await clock.asleep(10)
        await breaker.acall(aok)
        own = [e for e in hook.events if not isinstance(e, (CallStarted, CallEnded))]
        assert [type(e) for e in own] == [
            CircuitStateChanged,
            CallRejected,
            CircuitStateChanged,
            CircuitStateChanged,
        ]
        assert len(hook.of_type(CallStarted)) == len(hook.of_type(CallEnded)) == 4
        assert hook.of_type(CallRejected) == [CallRejected("dep", CircuitState.OPEN, 10.0)]

    async def test_raising_hook_does_not_break_the_call(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the call and the state are unaffected."""

        def bad_hook(_: object) -> None:
            raise RuntimeError("hook bug")

        breaker = make(clock, hooks=(bad_hook,))
        with caplog.at_level(logging.ERROR, logger="seawall"):
            await trip_by_failures(breaker)
        assert state_of(breaker) is CircuitState.OPEN
        assert "hook" in caplog.text


class TestIntrospection:
    async def test_statistics(self, clock: FakeClock) -> None:
        """statistics() is a frozen snapshot whose counts add up."""
        breaker = make(clock, max_failures=3)
        await breaker.acall(aok)
        await trip_by_failures(breaker, 1)
        stats = breaker.statistics()
        assert isinstance(stats, CircuitBreakerStatistics)
        assert stats.calls_admitted == 2 == stats.successes + stats.failures

    async def test_repr(self, clock: FakeClock) -> None:
        """The repr shows the name and the state."""
        breaker = make(clock)
        breaker.trip()
        assert repr(breaker).startswith("CircuitBreaker(name='dep', state=open")

    async def test_instantiate_outside_event_loop(self) -> None:
        """A breaker built at import time works inside any event loop."""
        assert await IMPORT_TIME_BREAKER.acall(aok) == 1


class TestValidation:
    async def test_invalid_parameters(self) -> None:
        """Bad parameters raise ValueError/TypeError naming the parameter."""
        with pytest.raises(ValueError, match="half_open_max"):
            CircuitBreaker(half_open_max=0)
        with pytest.raises(TypeError, match="timeout"):
            CircuitBreaker(timeout="soon")  # type: ignore[arg-type]


class TestCancellation:
    async def test_cancel_during_call(self, clock: FakeClock) -> None:
        """A cancelled probe counts nothing and leaks no probe slot."""
        breaker = make(clock, half_open_max=1)
        breaker.trip()
        clock.advance(10)
        started = anyio.Event()

        async def slow() -> None:
            started.set()
            await clock.asleep(100)

        async with anyio.create_task_group() as tg:
            tg.start_soon(breaker.acall, slow)
            await started.wait()
            assert breaker.statistics().probes_in_flight == 1
            tg.cancel_scope.cancel()
        stats = breaker.statistics()
        assert (stats.cancelled, stats.failures, stats.probes_in_flight) == (1, 0, 0)
        assert stats.state is CircuitState.HALF_OPEN
        assert await breaker.acall(aok) == 1

    async def test_cancel_during_guard(self, clock: FakeClock) -> None:
        """A cancel scope around a guard records a cancellation, not a failure."""
        breaker = make(clock, max_failures=1)
        with anyio.CancelScope() as scope:
            async with breaker.guard():
                scope.cancel()
                await clock.asleep(1)
        stats = breaker.statistics()
        assert (stats.cancelled, stats.failures, stats.state) == (1, 0, CircuitState.CLOSED)


IMPORT_TIME_BREAKER = CircuitBreaker(name="import-time")


def _araiser(exc: BaseException) -> Any:
    async def raise_it() -> None:
        raise exc

    return raise_it


class TestAsyncCallableObjects:
    async def test_decorated_async_callable_instance_counts_failures(
        self, clock: FakeClock
    ) -> None:
        """An instance with `async def __call__` is wrapped as async: failures count."""

        class Flaky:
            async def __call__(self) -> str:
                await anyio.lowlevel.checkpoint()
                raise ConnectionError("down")

        breaker = seawall.CircuitBreaker(max_failures=2, clock=clock)
        guarded = breaker(Flaky())
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await guarded()
        assert breaker.state is seawall.CircuitState.OPEN
        assert breaker.statistics().failures == 2


class TestLockFreePaths:
    """acall and decorated coroutines take the same lock-free paths as sync calls."""

    @pytest.mark.parametrize("how", ["acall", "decorator"])
    async def test_successes_failures_and_rejections(self, clock: FakeClock, how: str) -> None:
        """Counts, the consecutive count and the refusal match the locked paths'."""
        breaker = make(clock, name="llm", max_failures=2)

        async def through(fn: Any) -> Any:
            return await (breaker.acall(fn) if how == "acall" else breaker(fn)())

        assert await through(aok) == 1
        with pytest.raises(BoomError):
            await through(aboom)
        assert breaker.statistics().consecutive_failures == 1
        assert await through(aok) == 1
        assert breaker.statistics().consecutive_failures == 0
        await trip_by_failures(breaker)
        clock.advance(4)
        with pytest.raises(CircuitOpenError) as info:
            await through(aok)
        assert info.value.retry_after == pytest.approx(6.0)
        assert str(info.value) == "circuit breaker 'llm' is open; retry after 6 s"
        breaker.force_open()
        with pytest.raises(CircuitOpenError, match=r"is forced_open; until reset$"):
            await through(aok)
        stats = breaker.statistics()
        assert (stats.calls_admitted, stats.successes, stats.failures) == (5, 2, 3)
        assert (stats.rejections, stats.calls_in_flight) == (2, 0)

    async def test_cancelled_call_records_nothing(self, clock: FakeClock) -> None:
        """A call cancelled in CLOSED leaves the lock-free counts consistent."""
        breaker = make(clock)

        @breaker
        async def wait_forever() -> None:
            await clock.asleep(100)

        with anyio.move_on_after(0):
            await wait_forever()
        stats = breaker.statistics()
        assert (stats.calls_admitted, stats.cancelled, stats.calls_in_flight) == (1, 1, 0)
