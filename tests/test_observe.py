"""The call reporter every primitive shares: events, outcomes and each kind of wrapper."""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncGenerator, Generator

import anyio
import anyio.lowlevel
import pytest

from seawall import (
    AttemptEnded,
    AttemptKind,
    AttemptStarted,
    BulkheadFullError,
    CallEnded,
    CallStarted,
    CallTimeoutError,
    CircuitOpenError,
    Outcome,
    RateLimitedError,
    WouldBlock,
)
from seawall._observe import Observer, outcome_of
from seawall.testing import FakeClock, RecordingHook


class BoomError(Exception):
    """The failure the tests raise."""


def make(clock: FakeClock, hook: RecordingHook, primitive: str = "bulkhead") -> Observer:
    """An observer named "dep" reporting to *hook*."""
    return Observer((hook,), clock, "dep", primitive)


def pair(hook: RecordingHook) -> tuple[CallStarted, CallEnded]:
    """The only call *hook* saw, checking that its events are exactly that pair."""
    assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
    started, ended = hook.events
    assert isinstance(started, CallStarted)
    assert isinstance(ended, CallEnded)
    assert ended.started is started
    return started, ended


class TestOutcomeOf:
    """outcome_of maps what a call raised to an Outcome."""

    @pytest.mark.parametrize(
        ("exc", "outcome"),
        [
            (None, Outcome.SUCCESS),
            (BoomError(), Outcome.FAILURE),
            (ValueError(), Outcome.FAILURE),
            (TimeoutError(), Outcome.FAILURE),
            (CircuitOpenError("x", primitive_name="b", retry_after=1.0), Outcome.REJECTED),
            (BulkheadFullError("x", primitive_name="b", retry_after=None), Outcome.REJECTED),
            (RateLimitedError("x", primitive_name="l", retry_after=0.5), Outcome.REJECTED),
            (WouldBlock("x", primitive_name="l", retry_after=None), Outcome.REJECTED),
            (CallTimeoutError("x", primitive_name="t", timeout=1.0), Outcome.TIMEOUT),
            (KeyboardInterrupt(), Outcome.CANCELLED),
            (SystemExit(), Outcome.CANCELLED),
            (GeneratorExit(), Outcome.CANCELLED),
        ],
    )
    def test_mapping(self, exc: BaseException | None, outcome: Outcome) -> None:
        """Success, failure, rejection, timeout and cancellation are told apart."""
        assert outcome_of(exc) is outcome

    @pytest.mark.anyio
    async def test_task_cancellation(self) -> None:
        """anyio/trio cancellation is CANCELLED."""
        caught: list[BaseException] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                await anyio.lowlevel.checkpoint()
            except anyio.get_cancelled_exc_class() as exc:
                caught.append(exc)
                raise
        assert scope.cancelled_caught
        assert outcome_of(caught[0]) is Outcome.CANCELLED


class TestObserver:
    """start, end and the attempt pair."""

    def test_start_and_end(self, clock: FakeClock) -> None:
        """The end event holds its start event, the outcome and the clock's duration."""
        hook = RecordingHook()
        observer = make(clock, hook)
        started, began = observer.start()
        clock.advance(1.5)
        observer.end(started, began, None)
        assert started == CallStarted("dep", "bulkhead", stream=False)
        assert hook.events == [
            started,
            CallEnded("dep", started, Outcome.SUCCESS, None, 1.5),
        ]

    def test_stream_flag(self, clock: FakeClock) -> None:
        """start(stream=True) flags the call as a stream."""
        hook = RecordingHook()
        started, _ = make(clock, hook).start(stream=True)
        assert started.stream

    def test_attempts(self, clock: FakeClock) -> None:
        """attempt_start and attempt_end report an AttemptStarted / AttemptEnded pair."""
        hook = RecordingHook()
        observer = make(clock, hook, "retry")
        error = BoomError()
        started, began = observer.attempt_start(2, AttemptKind.RETRY)
        clock.advance(0.25)
        observer.attempt_end(started, began, error)
        assert hook.events == [
            AttemptStarted("dep", "retry", 2, AttemptKind.RETRY),
            AttemptEnded("dep", started, Outcome.FAILURE, error, 0.25),
        ]
        ended = hook.events[1]
        assert isinstance(ended, AttemptEnded)
        assert ended.started is started

    def test_repr(self, clock: FakeClock) -> None:
        """The repr names the primitive, the name and the number of hooks."""
        assert repr(make(clock, RecordingHook())) == "Observer(bulkhead 'dep', hooks=1)"

    def test_raising_hook_is_isolated(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the call and the other hooks carry on."""
        hook = RecordingHook()

        def bad(event: object) -> None:
            raise RuntimeError("bad hook")

        observer = Observer((bad, hook), clock, "dep", "bulkhead")
        assert observer.call(lambda: 7) == 7
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        assert [r.message.startswith("seawall hook") for r in caplog.records] == [True, True]


class TestCall:
    """Observer.call and Observer.acall."""

    def test_success(self, clock: FakeClock) -> None:
        """The result is returned; the call ends SUCCESS with its duration."""
        hook = RecordingHook()

        def work(a: int, *, b: int) -> int:
            clock.sleep(2)
            return a + b

        assert make(clock, hook).call(work, 1, b=2) == 3
        started, ended = pair(hook)
        assert started == CallStarted("dep", "bulkhead")
        assert (ended.outcome, ended.exception, ended.duration) == (Outcome.SUCCESS, None, 2.0)

    def test_failure_reraised_unchanged(self, clock: FakeClock) -> None:
        """The exception goes on as the same object, with its traceback and context."""
        hook = RecordingHook()
        cause = KeyError("cause")
        error = BoomError("boom")

        def fail() -> None:
            try:
                raise cause
            except KeyError:
                raise error from cause

        with pytest.raises(BoomError) as info:
            make(clock, hook).call(fail)
        assert info.value is error
        assert error.__cause__ is cause
        assert info.traceback[-1].name == "fail"
        _, ended = pair(hook)
        assert (ended.outcome, ended.exception) == (Outcome.FAILURE, error)

    def test_keyboard_interrupt(self, clock: FakeClock) -> None:
        """KeyboardInterrupt is reported CANCELLED and re-raised."""
        hook = RecordingHook()

        def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            make(clock, hook).call(interrupted)
        _, ended = pair(hook)
        assert ended.outcome is Outcome.CANCELLED

    @pytest.mark.anyio
    async def test_acall_success(self, clock: FakeClock) -> None:
        """acall awaits the function; the duration is virtual time."""
        hook = RecordingHook()

        async def work(a: int) -> int:
            await clock.asleep(3)
            return a * 2

        assert await make(clock, hook).acall(work, 4) == 8
        _, ended = pair(hook)
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 3.0)

    @pytest.mark.anyio
    async def test_acall_failure(self, clock: FakeClock) -> None:
        """acall re-raises the same exception and reports FAILURE."""
        hook = RecordingHook()
        error = BoomError()

        async def fail() -> None:
            raise error

        with pytest.raises(BoomError) as info:
            await make(clock, hook).acall(fail)
        assert info.value is error
        _, ended = pair(hook)
        assert (ended.outcome, ended.exception) == (Outcome.FAILURE, error)

    @pytest.mark.anyio
    async def test_acall_cancelled(self, clock: FakeClock) -> None:
        """A cancelled call ends CANCELLED, reported before the cancellation goes on."""
        hook = RecordingHook()
        with anyio.move_on_after(0) as scope:  # the real clock is never waited on
            await make(clock, hook).acall(clock.asleep, 60)
        assert scope.cancelled_caught
        _, ended = pair(hook)
        assert ended.outcome is Outcome.CANCELLED
        assert isinstance(ended.exception, anyio.get_cancelled_exc_class())


class TestWrap:
    """Observer.wrap keeps the kind and metadata of each wrapper kind."""

    def test_function(self, clock: FakeClock) -> None:
        """A plain function stays one, with its name and docstring."""
        hook = RecordingHook()

        def work(x: int) -> int:
            """Double x."""
            return 2 * x

        wrapped = make(clock, hook).wrap(work)
        assert (wrapped.__name__, wrapped.__doc__) == ("work", "Double x.")
        assert not inspect.iscoroutinefunction(wrapped)
        assert wrapped(4) == 8
        started, ended = pair(hook)
        assert not started.stream
        assert ended.outcome is Outcome.SUCCESS

    def test_function_failure(self, clock: FakeClock) -> None:
        """A failure is reported and re-raised unchanged."""
        hook = RecordingHook()
        error = BoomError()

        def fail() -> None:
            raise error

        with pytest.raises(BoomError) as info:
            make(clock, hook).wrap(fail)()
        assert info.value is error
        assert pair(hook)[1].exception is error

    @pytest.mark.anyio
    async def test_coroutine_function(self, clock: FakeClock) -> None:
        """A coroutine function stays one; each await is one call."""
        hook = RecordingHook()

        async def work(x: int) -> int:
            await clock.asleep(1)
            return x + 1

        wrapped = make(clock, hook).wrap(work)
        assert inspect.iscoroutinefunction(wrapped)
        assert wrapped.__name__ == "work"
        assert await wrapped(1) == 2
        _, ended = pair(hook)
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 1.0)

    def test_generator_to_the_end(self, clock: FakeClock) -> None:
        """A generator reports one stream call, from first next() to its return."""
        hook = RecordingHook()

        def gen(n: int) -> Generator[int, None, str]:
            for i in range(n):
                clock.sleep(1)
                yield i
            return "done"

        wrapped = make(clock, hook).wrap(gen)
        assert inspect.isgeneratorfunction(wrapped)
        iterator = wrapped(3)
        assert hook.events == []  # nothing happens before the first next()
        assert next(iterator) == 0
        assert [type(e) for e in hook.events] == [CallStarted]
        assert list(iterator) == [1, 2]
        started, ended = pair(hook)
        assert started.stream
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 3.0)

    def test_generator_return_value(self, clock: FakeClock) -> None:
        """The generator's return value survives (yield from sees it)."""
        hook = RecordingHook()

        def gen() -> Generator[int, None, str]:
            yield 1
            return "done"

        wrapped = make(clock, hook).wrap(gen)

        def outer() -> Generator[int, None, str]:
            return (yield from wrapped())

        iterator = outer()
        assert next(iterator) == 1
        with pytest.raises(StopIteration) as info:
            next(iterator)
        assert info.value.value == "done"

    def test_generator_closed_early(self, clock: FakeClock) -> None:
        """A generator closed before its end reports CANCELLED (GeneratorExit)."""
        hook = RecordingHook()
        closed: list[bool] = []

        def gen() -> Generator[int, None, None]:
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        iterator = make(clock, hook).wrap(gen)()
        assert next(iterator) == 1
        iterator.close()
        assert closed == [True]
        _, ended = pair(hook)
        assert ended.outcome is Outcome.CANCELLED
        assert isinstance(ended.exception, GeneratorExit)

    def test_generator_send_and_throw(self, clock: FakeClock) -> None:
        """send() and throw() reach the wrapped generator; a handled throw goes on."""
        hook = RecordingHook()
        seen: list[object] = []

        def gen() -> Generator[int, str, None]:
            while True:
                try:
                    seen.append((yield len(seen)))
                except BoomError as exc:  # noqa: PERF203 -- the generator handles throws
                    seen.append(exc)

        iterator = make(clock, hook).wrap(gen)()
        next(iterator)
        assert iterator.send("a") == 1
        error = BoomError()
        assert iterator.throw(error) == 2
        assert seen == ["a", error]
        assert [type(e) for e in hook.events] == [CallStarted]
        iterator.close()
        assert pair(hook)[1].outcome is Outcome.CANCELLED

    def test_generator_failure(self, clock: FakeClock) -> None:
        """An exception inside the generator is reported and re-raised unchanged."""
        hook = RecordingHook()
        error = BoomError()

        def gen() -> Generator[int, None, None]:
            yield 1
            raise error

        iterator = make(clock, hook).wrap(gen)()
        next(iterator)
        with pytest.raises(BoomError) as info:
            next(iterator)
        assert info.value is error
        _, ended = pair(hook)
        assert (ended.outcome, ended.exception) == (Outcome.FAILURE, error)

    @pytest.mark.anyio
    async def test_async_generator_to_the_end(self, clock: FakeClock) -> None:
        """An async generator reports one stream call over its whole iteration."""
        hook = RecordingHook()

        async def agen(n: int) -> AsyncGenerator[int]:
            for i in range(n):
                await clock.asleep(1)
                yield i

        wrapped = make(clock, hook).wrap(agen)
        assert inspect.isasyncgenfunction(wrapped)
        assert wrapped.__name__ == "agen"
        assert [i async for i in wrapped(3)] == [0, 1, 2]
        started, ended = pair(hook)
        assert started.stream
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 3.0)

    @pytest.mark.anyio
    async def test_async_generator_closed_early(self, clock: FakeClock) -> None:
        """aclose() before the end reaches the inner generator and reports CANCELLED."""
        hook = RecordingHook()
        closed: list[bool] = []

        async def agen() -> AsyncGenerator[int]:
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        iterator = make(clock, hook).wrap(agen)()
        assert await iterator.__anext__() == 1
        await iterator.aclose()
        assert closed == [True]
        _, ended = pair(hook)
        assert ended.outcome is Outcome.CANCELLED

    @pytest.mark.anyio
    async def test_async_generator_asend_and_athrow(self, clock: FakeClock) -> None:
        """asend() and athrow() are forwarded; a handled athrow keeps the stream going."""
        hook = RecordingHook()
        seen: list[object] = []

        async def agen() -> AsyncGenerator[int, str]:
            while True:
                try:
                    seen.append((yield len(seen)))
                except BoomError as exc:  # noqa: PERF203 -- the generator handles throws
                    seen.append(exc)

        iterator = make(clock, hook).wrap(agen)()
        assert await iterator.__anext__() == 0
        assert await iterator.asend("a") == 1
        error = BoomError()
        assert await iterator.athrow(error) == 2
        assert seen == ["a", error]
        assert [type(e) for e in hook.events] == [CallStarted]
        await iterator.aclose()
        assert pair(hook)[1].outcome is Outcome.CANCELLED

    @pytest.mark.anyio
    async def test_async_generator_athrow_unhandled(self, clock: FakeClock) -> None:
        """An athrow() the inner generator does not handle ends the call as a failure."""
        hook = RecordingHook()

        async def agen() -> AsyncGenerator[int]:
            yield 1
            yield 2

        iterator = make(clock, hook).wrap(agen)()
        await iterator.__anext__()
        error = BoomError()
        with pytest.raises(BoomError) as info:
            await iterator.athrow(error)
        assert info.value is error
        _, ended = pair(hook)
        assert (ended.outcome, ended.exception) == (Outcome.FAILURE, error)

    @pytest.mark.anyio
    async def test_async_generator_handles_throw_and_returns(self, clock: FakeClock) -> None:
        """An inner generator that ends when thrown into ends the call as a success."""
        hook = RecordingHook()

        async def agen() -> AsyncGenerator[int]:
            try:
                yield 1
            except BoomError:
                return

        iterator = make(clock, hook).wrap(agen)()
        await iterator.__anext__()
        with pytest.raises(StopAsyncIteration):
            await iterator.athrow(BoomError())
        assert pair(hook)[1].outcome is Outcome.SUCCESS

    @pytest.mark.anyio
    async def test_async_generator_cancelled(self, clock: FakeClock) -> None:
        """Cancellation inside the async generator is reported CANCELLED."""
        hook = RecordingHook()

        async def agen() -> AsyncGenerator[int]:
            yield 1
            await clock.asleep(60)
            yield 2

        iterator = make(clock, hook).wrap(agen)()
        with anyio.move_on_after(0) as scope:  # the real clock is never waited on
            async for _ in iterator:
                pass
        assert scope.cancelled_caught
        _, ended = pair(hook)
        assert ended.outcome is Outcome.CANCELLED


class TestGuard:
    """Observer.guard: a block reported as one call."""

    def test_sync_success(self, clock: FakeClock) -> None:
        """The block's duration is reported."""
        hook = RecordingHook()
        with make(clock, hook).guard():
            clock.advance(2)
        _, ended = pair(hook)
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 2.0)

    def test_sync_failure(self, clock: FakeClock) -> None:
        """An exception leaving the block is reported and not swallowed."""
        hook = RecordingHook()
        error = BoomError()
        with pytest.raises(BoomError) as info, make(clock, hook).guard():
            raise error
        assert info.value is error
        assert pair(hook)[1].exception is error

    @pytest.mark.anyio
    async def test_async(self, clock: FakeClock) -> None:
        """async with works the same way."""
        hook = RecordingHook()
        async with make(clock, hook).guard():
            await clock.asleep(1)
        _, ended = pair(hook)
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 1.0)

    def test_reuse_is_an_error(self, clock: FakeClock) -> None:
        """A guard serves one block; entering it again raises and reports nothing."""
        hook = RecordingHook()
        guard = make(clock, hook).guard()
        with guard:
            pass
        with pytest.raises(RuntimeError, match="already entered"), guard:
            pass  # pragma: no cover
        pair(hook)
        assert "entered=True" in repr(guard)


class TestBlocks:
    """enter_block / exit_block: calls of a shared context manager, kept per context."""

    def test_nesting_of_several_observers(self, clock: FakeClock) -> None:
        """Blocks of two observers pair up, whatever the exit order."""
        hook = RecordingHook()
        outer = Observer((hook,), clock, "a", "bulkhead")
        inner = Observer((hook,), clock, "b", "rate_limiter")
        outer.enter_block()
        clock.advance(1)
        inner.enter_block()
        clock.advance(1)
        outer.exit_block(None)  # out of order, on purpose
        clock.advance(1)
        inner.exit_block(None)
        starts = hook.of_type(CallStarted)
        ends = hook.of_type(CallEnded)
        assert [(e.name, e.primitive) for e in starts] == [("a", "bulkhead"), ("b", "rate_limiter")]
        assert [(e.started, e.duration) for e in ends] == [(starts[0], 2.0), (starts[1], 2.0)]

    def test_same_observer_nested(self, clock: FakeClock) -> None:
        """Nested blocks of one observer end innermost first."""
        hook = RecordingHook()
        observer = make(clock, hook)
        observer.enter_block()
        observer.enter_block()
        error = BoomError()
        observer.exit_block(error)
        observer.exit_block(None)
        first, second = hook.of_type(CallStarted)
        assert [(e.started, e.exception) for e in hook.of_type(CallEnded)] == [
            (second, error),
            (first, None),
        ]

    def test_exit_without_enter_does_nothing(self, clock: FakeClock) -> None:
        """A block entered elsewhere cannot be paired: nothing is reported."""
        hook = RecordingHook()
        make(clock, hook).exit_block(None)
        assert hook.events == []

    def test_per_thread(self, clock: FakeClock) -> None:
        """A block entered in another thread is not ended by this one."""
        hook = RecordingHook()
        observer = make(clock, hook)
        thread = threading.Thread(target=observer.enter_block)
        thread.start()
        thread.join()
        observer.exit_block(None)
        assert [type(e) for e in hook.events] == [CallStarted]

    @pytest.mark.anyio
    async def test_per_task(self, clock: FakeClock) -> None:
        """Concurrent tasks each end their own block."""
        hook = RecordingHook()
        observer = make(clock, hook)

        async def block(seconds: float) -> None:
            observer.enter_block()
            await clock.asleep(seconds)
            observer.exit_block(None)

        async with anyio.create_task_group() as tg:
            tg.start_soon(block, 2)
            tg.start_soon(block, 1)
        ends = hook.of_type(CallEnded)
        assert sorted(e.duration for e in ends) == [1.0, 2.0]
        assert {id(e.started) for e in ends} == {id(e) for e in hook.of_type(CallStarted)}
