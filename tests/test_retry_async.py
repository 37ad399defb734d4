"""The retrier's async shell on asyncio and trio: decorator, acall() and `async for`."""

from __future__ import annotations

import inspect
import logging
import random
import sys
import traceback
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import GiveUpReason, Jitter, Retrier, RetryGaveUp, RetryScheduled
from seawall.testing import FakeClock, RecordingHook


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio


class AsyncFlaky:
    """An async callable that raises the queued exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def notes(exc: BaseException) -> list[str]:
    """The notes of *exc* (none before Python 3.11)."""
    return list(getattr(exc, "__notes__", []))


def errors(kind: type[Exception], count: int) -> list[Exception]:
    """*count* distinct exceptions of *kind*."""
    return [kind(n) for n in range(count)]


async def run_loop(retrier: Retrier, fn: AsyncFlaky) -> None:
    """Await *fn* in an async attempt loop."""
    async for attempt in retrier:
        with attempt:
            await fn()


@pytest.fixture
def retrier(clock: FakeClock) -> Retrier:
    """A retrier with deterministic delays: 0.1, 0.2, 0.4, ... (no jitter)."""
    return Retrier(max_attempts=3, jitter=Jitter.NONE, clock=clock, name="svc")


class TestRetries:
    """Retrying, giving up, and what propagates."""

    async def test_retries_then_succeeds(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """Two transient failures, then the result, after virtual waits of 0.1 and 0.2 s."""
        fn = AsyncFlaky(ConnectionError(), TimeoutError())
        assert await retrier.acall(fn, 1, key="v") == "ok"
        assert fn.calls == 3
        assert clock.sleeps == [0.1, 0.2]
        assert clock.now() == pytest.approx(0.3)

    async def test_seeded_full_jitter_sleeps(self, anyio_backend: str, clock: FakeClock) -> None:
        """With a seeded rng the sleeps are exactly base * draw."""
        retrier = Retrier(max_attempts=4, rng=random.Random(7).random, clock=clock)
        draws = random.Random(7)
        expected = [0.1 * draws.random(), 0.2 * draws.random(), 0.4 * draws.random()]
        with pytest.raises(ConnectionError):
            await retrier.acall(AsyncFlaky(*errors(ConnectionError, 4)))
        assert clock.sleeps == expected

    async def test_gives_up_with_the_same_exception_and_a_note(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """The last exception propagates as it is, with its traceback and a note."""
        errs = errors(ConnectionError, 3)
        with pytest.raises(ConnectionError) as info:
            await retrier.acall(AsyncFlaky(*errs))
        assert info.value is errs[2]
        assert clock.sleeps == [0.1, 0.2]
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert frames[-1] == "__call__"
        if sys.version_info >= (3, 11):
            assert notes(info.value) == [
                "seawall: retrier 'svc' gave up after 3 attempts (attempts_exhausted)"
            ]

    async def test_non_retryable_raised_at_once(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """A caller error is not retried and passes through without a note."""
        error = ValueError("bad input")
        fn = AsyncFlaky(error)
        with pytest.raises(ValueError, match="bad input") as info:
            await retrier.acall(fn)
        assert info.value is error
        assert (fn.calls, clock.sleeps, notes(error)) == (1, [], [])

    @pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
    async def test_keyboard_interrupt_not_retried(
        self, anyio_backend: str, retrier: Retrier, error: BaseException
    ) -> None:
        """KeyboardInterrupt and SystemExit go straight through, uncounted."""
        fn = AsyncFlaky(ConnectionError(), error)
        with pytest.raises(type(error)):
            await retrier.acall(fn)
        assert fn.calls == 2
        stats = retrier.statistics()
        assert (stats.gave_up, stats.successes, stats.attempts) == (0, 0, 1)

    async def test_zero_delay_never_sleeps(self, anyio_backend: str, clock: FakeClock) -> None:
        """With initial_delay 0 the clock's asleep is never called."""
        retrier = Retrier(max_attempts=5, initial_delay=0, clock=clock)
        fn = AsyncFlaky(*errors(TimeoutError, 4))
        assert await retrier.acall(fn) == "ok"
        assert (fn.calls, clock.sleeps) == (5, [])


class TestRetryOnResult:
    """retry_on_result: results treated as failures."""

    async def test_result_retried_then_accepted(self, anyio_backend: str, clock: FakeClock) -> None:
        """A rejected result is retried like a failure."""
        results = iter([None, None, 42])

        async def fn() -> int | None:
            return next(results)

        retrier = Retrier(retry_on_result=lambda r: r is None, jitter=Jitter.NONE, clock=clock)
        assert await retrier.acall(fn) == 42
        assert clock.sleeps == [0.1, 0.2]

    async def test_last_result_returned_when_attempts_run_out(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Giving up on a result returns that last result."""
        results = iter(["a", "b", "c", "d"])

        async def fn() -> str:
            return next(results)

        hook = RecordingHook()
        retrier = Retrier(retry_on_result=lambda _: True, clock=clock, hooks=(hook,))
        assert await retrier.acall(fn) == "c"
        assert hook.of_type(RetryGaveUp) == [
            RetryGaveUp("retrier", 3, GiveUpReason.ATTEMPTS_EXHAUSTED, None)
        ]


class TestDeadline:
    """The total time budget of a call."""

    async def test_gives_up_instead_of_sleeping_past_the_deadline(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Sleeps 0.5 and 1.0 fit in 2 s; the next 2.0 s wait would not: give up at once."""
        retrier = Retrier(
            max_attempts=10, initial_delay=0.5, jitter=Jitter.NONE, deadline=2.0, clock=clock
        )
        fn = AsyncFlaky(*errors(TimeoutError, 10))
        with pytest.raises(TimeoutError):
            await retrier.acall(fn)
        assert (clock.sleeps, fn.calls) == ([0.5, 1.0], 3)
        assert retrier.statistics().gave_up_deadline_exceeded == 1


class TestRetryAfter:
    """The server's Retry-After, honoured up to a cap."""

    async def test_retry_after_honoured(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """The wait is the longer of the backoff and the Retry-After."""
        busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=1.5)
        assert await retrier.acall(AsyncFlaky(busy, TimeoutError())) == "ok"
        assert clock.sleeps == [1.5, 0.2]

    async def test_over_cap_gives_up_without_sleeping(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """Asking for more than max_delay (the default cap) re-raises at once."""
        busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=30.0)
        with pytest.raises(seawall.CircuitOpenError) as info:
            await retrier.acall(AsyncFlaky(busy))
        assert info.value is busy
        assert clock.sleeps == []
        assert retrier.statistics().gave_up_retry_after_over_cap == 1


class TestBudget:
    """A retry budget shared between retriers."""

    async def test_budget_shared_between_two_retriers_stops_retries(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Failures through one retrier use up the budget of the other."""
        budget = seawall.RetryBudget(max_tokens=4, token_ratio=0.5)
        first = Retrier(max_attempts=5, initial_delay=0, budget=budget, clock=clock)
        second = Retrier(max_attempts=5, initial_delay=0, budget=budget, clock=clock)
        fn = AsyncFlaky(*errors(TimeoutError, 5))
        with pytest.raises(TimeoutError):
            await first.acall(fn)
        assert fn.calls == 2
        other = AsyncFlaky(*errors(TimeoutError, 5))
        with pytest.raises(TimeoutError):
            await second.acall(other)
        assert other.calls == 1
        assert second.statistics().gave_up_budget_exhausted == 1


class TestDecorator:
    """@retrier on coroutine functions."""

    async def test_decorated_coroutine_function_retries(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """The decorated coroutine function is retried with its arguments."""
        seen = []

        @retrier
        async def fetch(key: str, *, default: int = 0) -> int:
            seen.append((key, default))
            await anyio.lowlevel.checkpoint()
            if len(seen) < 2:
                raise ConnectionError
            return default

        assert await fetch("k", default=5) == 5
        assert seen == [("k", 5), ("k", 5)]
        assert clock.sleeps == [0.1]

    async def test_keeps_metadata(self, anyio_backend: str, retrier: Retrier) -> None:
        """__name__, __doc__ and __wrapped__ survive; the wrapper is a coroutine function."""

        async def fetch(key: str) -> str:
            """Fetch a key."""
            return key

        decorated = retrier(fetch)
        assert decorated.__name__ == "fetch"
        assert decorated.__doc__ == "Fetch a key."
        assert decorated.__wrapped__ is fetch  # type: ignore[attr-defined]
        assert inspect.iscoroutinefunction(decorated)
        assert await decorated("x") == "x"

    async def test_async_callable_object(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """An object with an async __call__ is wrapped as a coroutine function."""
        fn = AsyncFlaky(TimeoutError())
        decorated = retrier(fn)
        assert inspect.iscoroutinefunction(decorated)
        assert await decorated() == "ok"
        assert (fn.calls, clock.sleeps) == (2, [0.1])

    async def test_async_generators_rejected(self, anyio_backend: str, retrier: Retrier) -> None:
        """An async generator function cannot be retried as a whole."""

        async def gen() -> AsyncIterator[int]:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            retrier(gen)


class TestAttemptLoop:
    """`async for attempt in retrier: with attempt: ...`."""

    async def test_retries_then_succeeds(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """Retryable errors are swallowed, the loop sleeps and ends on success."""
        fn = AsyncFlaky(ConnectionError(), ConnectionError())
        numbers = []
        async for attempt in retrier:
            with attempt:
                numbers.append(attempt.number)
                await fn()
        assert numbers == [1, 2, 3]
        assert clock.sleeps == [0.1, 0.2]
        assert retrier.statistics().successes == 1

    async def test_gives_up_out_of_the_with_block(
        self, anyio_backend: str, retrier: Retrier
    ) -> None:
        """On the last attempt the exception propagates out of the loop."""
        errs = errors(ConnectionError, 3)
        fn = AsyncFlaky(*errs)
        with pytest.raises(ConnectionError) as info:
            await run_loop(retrier, fn)
        assert info.value is errs[2]
        assert fn.calls == 3

    async def test_non_retryable_propagates_at_once(
        self, anyio_backend: str, retrier: Retrier, clock: FakeClock
    ) -> None:
        """A caller error leaves the loop on the first attempt."""
        with pytest.raises(ValueError, match="no"):
            await run_loop(retrier, AsyncFlaky(ValueError("no")))
        assert clock.sleeps == []


class TestHooks:
    """Events reported to hooks."""

    async def test_events(self, anyio_backend: str, clock: FakeClock) -> None:
        """A RetryScheduled per retry and a RetryGaveUp when giving up."""
        hook = RecordingHook()
        retrier = Retrier(jitter=Jitter.NONE, hooks=(hook,), clock=clock, name="db")
        errs = errors(ConnectionError, 3)
        with pytest.raises(ConnectionError):
            await retrier.acall(AsyncFlaky(*errs))
        retry_events = [e for e in hook.events if isinstance(e, RetryScheduled | RetryGaveUp)]
        assert retry_events == [
            RetryScheduled("db", 1, 0.1, errs[0], False),
            RetryScheduled("db", 2, 0.2, errs[1], False),
            RetryGaveUp("db", 3, GiveUpReason.ATTEMPTS_EXHAUSTED, errs[2]),
        ]

    async def test_raising_hook_does_not_break_the_call(
        self, anyio_backend: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the call and other hooks go on."""
        hook = RecordingHook()

        def broken(event: seawall.Event) -> None:
            raise RuntimeError("hook bug")

        retrier = Retrier(hooks=(broken, hook), clock=clock)
        with caplog.at_level(logging.ERROR, logger="seawall"):
            assert await retrier.acall(AsyncFlaky(TimeoutError())) == "ok"
        assert len(hook.of_type(RetryScheduled)) == 1
        assert "hook bug" in caplog.text


class TestStatistics:
    """statistics() and repr."""

    async def test_statistics(self, anyio_backend: str, retrier: Retrier) -> None:
        """Counters add up over successes, retries and give-ups."""
        await retrier.acall(AsyncFlaky())
        await retrier.acall(AsyncFlaky(TimeoutError()))
        with pytest.raises(TimeoutError):
            await retrier.acall(AsyncFlaky(*errors(TimeoutError, 3)))
        with pytest.raises(ValueError, match="v"):
            await retrier.acall(AsyncFlaky(ValueError("v")))
        stats = retrier.statistics()
        assert (stats.calls, stats.attempts, stats.retries, stats.successes) == (4, 7, 3, 2)
        assert (stats.gave_up_not_retryable, stats.gave_up_attempts_exhausted) == (1, 1)

    async def test_repr(self, anyio_backend: str, retrier: Retrier) -> None:
        """The repr shows the options, inside an event loop too."""
        assert repr(retrier).startswith("Retrier(name='svc', max_attempts=3,")


class TestLifecycle:
    """Construction outside a loop, cancellation."""

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_instantiate_outside_event_loop(self, backend: str) -> None:
        """A retrier built outside any event loop works in a later one, on either backend."""
        clock = FakeClock()
        retrier = Retrier(jitter=Jitter.NONE, clock=clock)
        fn = AsyncFlaky(TimeoutError())
        assert anyio.run(retrier.acall, fn, backend=backend) == "ok"
        assert clock.sleeps == [0.1]

    async def test_cancel_during_backoff(self, anyio_backend: str) -> None:
        """Cancelled while waiting: no further attempt, cancellation propagates, no failure."""
        clock = FakeClock(autojump=False)
        budget = seawall.RetryBudget()
        retrier = Retrier(jitter=Jitter.NONE, budget=budget, clock=clock)
        fn = AsyncFlaky(*errors(TimeoutError, 3))
        cancelled = []

        async def call() -> None:
            try:
                await retrier.acall(fn)
            except anyio.get_cancelled_exc_class():
                cancelled.append(True)
                raise

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            while not clock.sleeps:
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        assert cancelled == [True]
        assert fn.calls == 1
        assert clock.sleeps == [0.1]
        assert "sleeping_tasks=0" in repr(clock)
        stats = retrier.statistics()
        assert (stats.attempts, stats.retries, stats.successes, stats.gave_up) == (1, 1, 0, 0)
        assert budget.statistics().failures == 1  # Only the real failure, not the cancel.

    async def test_cancel_during_backoff_in_attempt_loop(self, anyio_backend: str) -> None:
        """Cancelling an `async for` loop while it waits ends it without another attempt."""
        clock = FakeClock(autojump=False)
        retrier = Retrier(jitter=Jitter.NONE, clock=clock)
        numbers = []

        async def loop() -> None:
            async for attempt in retrier:
                with attempt:
                    numbers.append(attempt.number)
                    raise TimeoutError

        async with anyio.create_task_group() as tg:
            tg.start_soon(loop)
            while not clock.sleeps:
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        assert numbers == [1]
        assert retrier.statistics().gave_up == 0
