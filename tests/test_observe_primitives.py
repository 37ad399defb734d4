"""Each primitive reports its calls: CallStarted, its own events, then CallEnded.

One class per primitive. Every test checks the exact event sequence of a call
(types, ``primitive``, ``name``, ``outcome``, the exception object, the duration on a
`FakeClock` and ``started is`` the start event), for each entry point: ``call``,
``acall``, context managers and the decorator on each kind of function.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from seawall import (
    AcquireCancelled,
    AcquireWaited,
    Bulkhead,
    BulkheadAcquired,
    BulkheadFullError,
    BulkheadRejected,
    BulkheadReleased,
    CallEnded,
    CallRejected,
    CallStarted,
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Fallback,
    FellBack,
    KeyedRateLimiter,
    LLMRateLimiter,
    Outcome,
    RateLimited,
    RateLimitedError,
    RateLimiter,
    TimedOut,
    Timeout,
)
from seawall._hooks import Event
from seawall.testing import FakeClock, RecordingHook


SAFETY = 10.0  # real seconds a test may spin before it fails; never slept


class BoomError(Exception):
    """The failure the tests raise."""


def spin_until(predicate: Callable[[], bool]) -> None:
    """Wait (without sleeping) until another thread makes *predicate* true."""
    deadline = time.monotonic() + SAFETY
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"


async def until(predicate: Callable[[], bool]) -> None:
    """Let other tasks run until *predicate* is true."""
    for _ in range(100_000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never became true")  # pragma: no cover


def check_call(
    events: list[Event],
    primitive: str,
    inside: list[Event],
    outcome: Outcome,
    *,
    exception: BaseException | None = None,
    duration: float = 0.0,
    stream: bool = False,
    name: str = "dep",
) -> CallEnded:
    """Assert that *events* are exactly one call wrapping the events *inside*."""
    assert len(events) == len(inside) + 2, events
    started, *middle, ended = events
    assert started == CallStarted(name, primitive, stream)
    assert middle == inside
    assert isinstance(ended, CallEnded)
    assert ended.started is started
    assert (ended.name, ended.outcome, ended.duration) == (name, outcome, duration)
    assert ended.exception is exception
    return ended


# -- circuit breaker -------------------------------------------------------------------


def breaker(clock: FakeClock, hook: RecordingHook) -> CircuitBreaker:
    """Two failures open it for 10 s; one probe closes it."""
    return CircuitBreaker(
        max_failures=2, timeout=10, half_open_max=1, name="dep", clock=clock, hooks=(hook,)
    )


def opened(generation: int = 2) -> CircuitStateChanged:
    """The event of the circuit opening after two failures."""
    return CircuitStateChanged(
        "dep", CircuitState.CLOSED, CircuitState.OPEN, "consecutive_failures", generation
    )


def rejected(retry_after: float = 10.0) -> CallRejected:
    """The event of a call refused by the open circuit."""
    return CallRejected("dep", CircuitState.OPEN, retry_after)


class TestCircuitBreaker:
    """call, acall, guard and the four decorator kinds."""

    def test_call_success(self, clock: FakeClock) -> None:
        """A successful call: one pair, its duration on the breaker's clock."""
        hook = RecordingHook()

        def work() -> int:
            clock.sleep(1.5)
            return 1

        assert breaker(clock, hook).call(work) == 1
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=1.5)

    def test_call_failure_trips_inside_the_call(self, clock: FakeClock) -> None:
        """The state change caused by a failure is reported before the call ends."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        errors = [BoomError(), BoomError()]
        for error in errors:
            with pytest.raises(BoomError) as info:
                b.call(_raise, error)
            assert info.value is error
        check_call(hook.events[:2], "circuit_breaker", [], Outcome.FAILURE, exception=errors[0])
        check_call(
            hook.events[2:], "circuit_breaker", [opened()], Outcome.FAILURE, exception=errors[1]
        )

    def test_call_rejected(self, clock: FakeClock) -> None:
        """A refused call is reported: CallRejected inside, outcome REJECTED."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        trip(b)
        hook.clear()
        with pytest.raises(CircuitOpenError) as info:
            b.call(_raise, BoomError())
        check_call(
            hook.events, "circuit_breaker", [rejected()], Outcome.REJECTED, exception=info.value
        )

    def test_probe_transitions_inside_the_call(self, clock: FakeClock) -> None:
        """OPEN -> HALF_OPEN at admission and HALF_OPEN -> CLOSED after it, both inside."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        trip(b)
        clock.advance(10)
        hook.clear()
        b.call(int)
        check_call(
            hook.events,
            "circuit_breaker",
            [
                CircuitStateChanged(
                    "dep", CircuitState.OPEN, CircuitState.HALF_OPEN, "timeout_elapsed", 3
                ),
                CircuitStateChanged(
                    "dep", CircuitState.HALF_OPEN, CircuitState.CLOSED, "probes_succeeded", 4
                ),
            ],
            Outcome.SUCCESS,
        )

    def test_call_keyboard_interrupt(self, clock: FakeClock) -> None:
        """KeyboardInterrupt in the call ends it CANCELLED and records nothing."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        interrupt = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            b.call(_raise, interrupt)
        check_call(hook.events, "circuit_breaker", [], Outcome.CANCELLED, exception=interrupt)
        assert b.statistics().failures == 0

    @pytest.mark.anyio
    async def test_acall(self, clock: FakeClock) -> None:
        """acall: success with its duration, then a rejection."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        assert await b.acall(_asleep_then, clock, 2.0, "ok") == "ok"
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=2.0)
        b.trip()
        hook.clear()
        with pytest.raises(CircuitOpenError) as info:
            await b.acall(_asleep_then, clock, 2.0, "ok")
        check_call(
            hook.events, "circuit_breaker", [rejected()], Outcome.REJECTED, exception=info.value
        )

    @pytest.mark.anyio
    async def test_acall_cancelled(self, clock: FakeClock) -> None:
        """A call cancelled from outside ends CANCELLED and counts nothing."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        with anyio.move_on_after(0):  # the real clock is never waited on
            await b.acall(clock.asleep, 60)
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        ended = hook.of_type(CallEnded)[0]
        assert ended.outcome is Outcome.CANCELLED
        assert isinstance(ended.exception, anyio.get_cancelled_exc_class())
        assert b.statistics().failures == 0

    def test_guard(self, clock: FakeClock) -> None:
        """with guard(): success, failure, and a rejection at admission, each one call."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        with b.guard():
            clock.advance(1)
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=1.0)
        hook.clear()
        error = BoomError()
        with pytest.raises(BoomError), b.guard():
            raise error
        check_call(hook.events, "circuit_breaker", [], Outcome.FAILURE, exception=error)
        b.trip()
        hook.clear()
        with pytest.raises(CircuitOpenError) as info, b.guard():
            pass  # pragma: no cover
        check_call(
            hook.events, "circuit_breaker", [rejected()], Outcome.REJECTED, exception=info.value
        )

    def test_guard_serves_one_call(self, clock: FakeClock) -> None:
        """Entering a used guard again raises and reports no second call."""
        hook = RecordingHook()
        guard = breaker(clock, hook).guard()
        with guard:
            pass
        with pytest.raises(RuntimeError, match="one call"), guard:
            pass  # pragma: no cover
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS)

    @pytest.mark.anyio
    async def test_async_guard(self, clock: FakeClock) -> None:
        """async with guard(): success, then cancellation."""
        hook = RecordingHook()
        b = breaker(clock, hook)
        async with b.guard():
            await clock.asleep(3)
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=3.0)
        hook.clear()
        with anyio.move_on_after(0):
            async with b.guard():
                await clock.asleep(60)
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        assert hook.of_type(CallEnded)[0].outcome is Outcome.CANCELLED

    def test_decorated_function(self, clock: FakeClock) -> None:
        """A decorated function: success, then failure, each one call."""
        hook = RecordingHook()

        @breaker(clock, hook)
        def work(x: int) -> int:
            """Work."""
            clock.sleep(0.5)
            if x < 0:
                raise BoomError(x)
            return x

        assert (work.__name__, work.__doc__) == ("work", "Work.")
        assert work(3) == 3
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=0.5)
        hook.clear()
        with pytest.raises(BoomError) as info:
            work(-1)
        check_call(
            hook.events, "circuit_breaker", [], Outcome.FAILURE, exception=info.value, duration=0.5
        )

    @pytest.mark.anyio
    async def test_decorated_coroutine_function(self, clock: FakeClock) -> None:
        """A decorated coroutine function: the call spans the await."""
        hook = RecordingHook()
        b = breaker(clock, hook)

        @b
        async def work() -> str:
            await clock.asleep(4)
            return "ok"

        assert await work() == "ok"
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=4.0)
        b.trip()
        hook.clear()
        with pytest.raises(CircuitOpenError) as info:
            await work()
        check_call(
            hook.events, "circuit_breaker", [rejected()], Outcome.REJECTED, exception=info.value
        )

    def test_decorated_generator(self, clock: FakeClock) -> None:
        """A generator is one stream call, from the first next() to its end."""
        hook = RecordingHook()
        b = breaker(clock, hook)

        @b
        def gen() -> Generator[int]:
            for i in range(3):
                clock.sleep(1)
                yield i

        assert list(gen()) == [0, 1, 2]
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=3.0, stream=True)
        hook.clear()
        iterator = gen()
        next(iterator)
        iterator.close()
        ended = hook.of_type(CallEnded)[0]
        assert (ended.outcome, ended.started.stream) == (Outcome.CANCELLED, True)
        b.trip()
        hook.clear()
        with pytest.raises(CircuitOpenError) as info:
            next(gen())
        check_call(
            hook.events,
            "circuit_breaker",
            [rejected()],
            Outcome.REJECTED,
            exception=info.value,
            stream=True,
        )

    @pytest.mark.anyio
    async def test_decorated_async_generator(self, clock: FakeClock) -> None:
        """An async generator is one stream call; a failure inside ends it FAILURE."""
        hook = RecordingHook()
        error = BoomError()

        @breaker(clock, hook)
        async def agen(fail: bool) -> AsyncGenerator[int]:
            for i in range(2):
                await clock.asleep(1)
                yield i
            if fail:
                raise error

        assert [i async for i in agen(False)] == [0, 1]
        check_call(hook.events, "circuit_breaker", [], Outcome.SUCCESS, duration=2.0, stream=True)
        hook.clear()
        with pytest.raises(BoomError):
            async for _ in agen(True):
                pass
        check_call(
            hook.events,
            "circuit_breaker",
            [],
            Outcome.FAILURE,
            exception=error,
            duration=2.0,
            stream=True,
        )

    def test_nothing_without_hooks(self, clock: FakeClock) -> None:
        """Without hooks no observer is built and the decorator keeps the plain wrapper."""
        b = CircuitBreaker(clock=clock)
        assert b._observer is None
        assert b.guard()._observer is None
        assert b(int).__code__.co_name == "breaker_wrapper"
        assert breaker(clock, RecordingHook())(int).__code__.co_name == "observed"


def trip(b: CircuitBreaker) -> None:
    """Open *b* with two failures."""
    for _ in range(2):
        with pytest.raises(BoomError):
            b.call(_raise, BoomError())


def _raise(exc: BaseException) -> None:
    raise exc


async def _asleep_then(clock: FakeClock, seconds: float, value: str) -> str:
    await clock.asleep(seconds)
    return value


# -- bulkhead --------------------------------------------------------------------------


def acquired(in_flight: int = 1, queued: int = 0, wait: float = 0.0) -> BulkheadAcquired:
    """A BulkheadAcquired of the bulkhead "dep"."""
    return BulkheadAcquired("dep", in_flight, queued, wait)


def released(in_flight: int = 0, queued: int = 0) -> BulkheadReleased:
    """A BulkheadReleased of the bulkhead "dep"."""
    return BulkheadReleased("dep", in_flight, queued)


class TestBulkhead:
    """call, acall, with / async with, the decorator, and the slot events."""

    def test_call_success(self, clock: FakeClock) -> None:
        """Acquired and released inside the call, with in-flight counts."""
        hook = RecordingHook()
        bulkhead = Bulkhead(2, name="dep", clock=clock, hooks=(hook,))
        assert bulkhead.call(clock.sleep, 1.0) is None
        check_call(hook.events, "bulkhead", [acquired(), released()], Outcome.SUCCESS, duration=1.0)

    def test_call_failure(self, clock: FakeClock) -> None:
        """A failure still releases inside the call and is re-raised unchanged."""
        hook = RecordingHook()
        bulkhead = Bulkhead(2, name="dep", clock=clock, hooks=(hook,))
        error = BoomError()
        with pytest.raises(BoomError) as info:
            bulkhead.call(_raise, error)
        assert info.value is error
        check_call(
            hook.events, "bulkhead", [acquired(), released()], Outcome.FAILURE, exception=error
        )

    def test_call_rejected(self, clock: FakeClock) -> None:
        """A full bulkhead: BulkheadRejected inside a REJECTED call."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))
        bulkhead.acquire()
        assert hook.events == [acquired()]  # the manual API is not a call
        hook.clear()
        with pytest.raises(BulkheadFullError) as info:
            bulkhead.call(int)
        check_call(
            hook.events,
            "bulkhead",
            [BulkheadRejected("dep", 1, 0)],
            Outcome.REJECTED,
            exception=info.value,
        )
        hook.clear()
        bulkhead.release()
        assert hook.events == [released()]

    def test_nested_with_blocks(self, clock: FakeClock) -> None:
        """with bulkhead: each block is a call; a refused one ends REJECTED."""
        hook = RecordingHook()
        bulkhead = Bulkhead(2, name="dep", clock=clock, hooks=(hook,))
        with bulkhead:
            clock.advance(1)
            with bulkhead:
                clock.advance(1)
                with pytest.raises(BulkheadFullError) as info, bulkhead:
                    pass  # pragma: no cover
        outer, inner, refused = hook.of_type(CallStarted)
        assert hook.events == [
            outer,
            acquired(1),
            inner,
            acquired(2),
            refused,
            BulkheadRejected("dep", 2, 0),
            CallEnded("dep", refused, Outcome.REJECTED, info.value, 0.0),
            released(1),
            CallEnded("dep", inner, Outcome.SUCCESS, None, 1.0),
            released(0),
            CallEnded("dep", outer, Outcome.SUCCESS, None, 2.0),
        ]
        assert outer == CallStarted("dep", "bulkhead")

    def test_with_block_failure(self, clock: FakeClock) -> None:
        """An exception leaving the block ends the call FAILURE; it is not swallowed."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))
        error = BoomError()
        with pytest.raises(BoomError), bulkhead:
            raise error
        check_call(
            hook.events, "bulkhead", [acquired(), released()], Outcome.FAILURE, exception=error
        )

    def test_queued_thread_reports_its_wait(self, clock: FakeClock) -> None:
        """A queued call's BulkheadAcquired carries the virtual time it spent queued."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, max_queue=1, name="dep", clock=clock, hooks=(hook,))
        bulkhead.acquire()
        thread = threading.Thread(target=bulkhead.call, args=(int,))
        thread.start()
        spin_until(lambda: bulkhead.statistics().queued == 1)
        clock.advance(3)
        bulkhead.release()
        thread.join(SAFETY)
        assert not thread.is_alive()
        assert hook.of_type(BulkheadAcquired) == [acquired(), acquired(1, 0, 3.0)]
        # The hand-over keeps the slot in flight; the waiter's own release frees it.
        assert sorted(hook.of_type(BulkheadReleased), key=lambda e: -e.in_flight) == [
            released(1),
            released(0),
        ]
        [ended] = hook.of_type(CallEnded)
        assert (ended.outcome, ended.duration) == (Outcome.SUCCESS, 3.0)

    def test_max_wait_refusal_after_queueing(self, clock: FakeClock) -> None:
        """A caller refused after max_wait of virtual time ends REJECTED, never acquired."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, max_queue=1, max_wait=2, name="dep", clock=clock, hooks=(hook,))
        outcome: list[BaseException] = []

        def caller() -> None:
            try:
                bulkhead.call(int)
            except BulkheadFullError as exc:
                outcome.append(exc)

        with bulkhead:
            hook.clear()
            thread = threading.Thread(target=caller)
            thread.start()
            spin_until(lambda: bulkhead.statistics().queued == 1)
            clock.advance(2)
            thread.join(SAFETY)
            [error] = outcome
            check_call(
                hook.events,
                "bulkhead",
                [BulkheadRejected("dep", 1, 0)],
                Outcome.REJECTED,
                exception=error,
                duration=2.0,
            )
            hook.clear()
        assert [type(e) for e in hook.events] == [BulkheadReleased, CallEnded]

    @pytest.mark.anyio
    async def test_acall(self, clock: FakeClock) -> None:
        """acall: acquired and released inside the call; its duration is virtual time."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))
        assert await bulkhead.acall(_asleep_then, clock, 1.0, "ok") == "ok"
        check_call(hook.events, "bulkhead", [acquired(), released()], Outcome.SUCCESS, duration=1.0)

    @pytest.mark.anyio
    async def test_acall_queued_then_rejected(self, clock: FakeClock) -> None:
        """A queued task reports its wait; one beyond the queue is REJECTED."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, max_queue=1, name="dep", clock=clock, hooks=(hook,))

        async def holder() -> None:
            async with bulkhead:
                await clock.asleep(2)

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await until(lambda: bulkhead.statistics().in_flight == 1)
            tg.start_soon(bulkhead.acall, _asleep_then, clock, 1.0, "x")
            await until(lambda: bulkhead.statistics().queued == 1)
            with pytest.raises(BulkheadFullError) as info:
                await bulkhead.acall(_asleep_then, clock, 1.0, "y")
        refused = [e for e in hook.of_type(CallEnded) if e.outcome is Outcome.REJECTED]
        assert [e.exception for e in refused] == [info.value]
        assert BulkheadRejected("dep", 1, 1) in hook.events
        assert hook.of_type(BulkheadAcquired) == [acquired(), acquired(1, 0, 2.0)]
        durations = sorted(e.duration for e in hook.of_type(CallEnded))
        assert durations == [0.0, 2.0, 3.0]  # the refusal, the holder, the queued call

    @pytest.mark.anyio
    async def test_cancelled_while_queued(self, clock: FakeClock) -> None:
        """A task cancelled in the queue ends CANCELLED; it never acquired nor released."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, max_queue=1, name="dep", clock=clock, hooks=(hook,))
        await bulkhead.aacquire()
        hook.clear()
        with anyio.move_on_after(0):
            await bulkhead.acall(_asleep_then, clock, 1.0, "x")
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        assert hook.of_type(CallEnded)[0].outcome is Outcome.CANCELLED
        bulkhead.release()
        assert bulkhead.statistics().in_flight == 0

    @pytest.mark.anyio
    async def test_cancelled_in_the_call(self, clock: FakeClock) -> None:
        """Cancellation while holding the slot: released, then CANCELLED."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))
        with anyio.move_on_after(0):
            await bulkhead.acall(clock.asleep, 60)
        assert [type(e) for e in hook.events] == [
            CallStarted,
            BulkheadAcquired,
            BulkheadReleased,
            CallEnded,
        ]
        assert hook.of_type(CallEnded)[0].outcome is Outcome.CANCELLED

    @pytest.mark.anyio
    async def test_async_with(self, clock: FakeClock) -> None:
        """async with bulkhead: one call per block; a refusal ends REJECTED."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))
        async with bulkhead:
            await clock.asleep(2)
            with pytest.raises(BulkheadFullError) as info:
                async with bulkhead:
                    pass  # pragma: no cover
        outer, refused = hook.of_type(CallStarted)
        assert hook.events == [
            outer,
            acquired(),
            refused,
            BulkheadRejected("dep", 1, 0),
            CallEnded("dep", refused, Outcome.REJECTED, info.value, 0.0),
            released(),
            CallEnded("dep", outer, Outcome.SUCCESS, None, 2.0),
        ]

    def test_decorated_function(self, clock: FakeClock) -> None:
        """A decorated function is one call per invocation."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))

        @bulkhead
        def work(x: int) -> int:
            """Work."""
            clock.sleep(1)
            return x

        assert (work.__name__, work.__doc__) == ("work", "Work.")
        assert work(2) == 2
        check_call(hook.events, "bulkhead", [acquired(), released()], Outcome.SUCCESS, duration=1.0)

    @pytest.mark.anyio
    async def test_decorated_coroutine_function(self, clock: FakeClock) -> None:
        """A decorated coroutine function is one call per await; a refusal is inside."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, name="dep", clock=clock, hooks=(hook,))

        @bulkhead
        async def work() -> str:
            await clock.asleep(1)
            return "ok"

        assert await work() == "ok"
        check_call(hook.events, "bulkhead", [acquired(), released()], Outcome.SUCCESS, duration=1.0)
        await bulkhead.aacquire()
        hook.clear()
        with pytest.raises(BulkheadFullError) as info:
            await work()
        check_call(
            hook.events,
            "bulkhead",
            [BulkheadRejected("dep", 1, 0)],
            Outcome.REJECTED,
            exception=info.value,
        )

    def test_slot_events_under_threads(self) -> None:
        """16 threads: every acquire has its release, the counts stay within bounds."""
        hook = RecordingHook()
        bulkhead = Bulkhead(4, max_queue=16, name="dep", hooks=(hook,))
        rounds = 200
        barrier = threading.Barrier(16)

        def worker(index: int) -> None:
            barrier.wait(SAFETY)
            for i in range(rounds):
                if (index + i) % 2:
                    bulkhead.call(int)
                else:
                    with bulkhead:
                        pass

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SAFETY)
            assert not thread.is_alive()
        got = hook.of_type(BulkheadAcquired)
        gave = hook.of_type(BulkheadReleased)
        assert len(got) == len(gave) == 16 * rounds
        assert all(1 <= e.in_flight <= 4 and 0 <= e.queued <= 12 for e in got)
        assert all(0 <= e.in_flight <= 4 and 0 <= e.queued <= 12 for e in gave)
        assert hook.of_type(BulkheadRejected) == []
        starts, ends = hook.of_type(CallStarted), hook.of_type(CallEnded)
        assert len(starts) == len(ends) == 16 * rounds
        assert {id(e.started) for e in ends} == {id(e) for e in starts}
        assert all(e.outcome is Outcome.SUCCESS for e in ends)
        # Events of different threads may be reported out of order, so the one that
        # frees the last slot is not necessarily the last reported; it exists, though.
        assert released(0) in gave
        assert bulkhead.statistics().in_flight == 0

    def test_nothing_without_hooks(self, clock: FakeClock) -> None:
        """Without hooks no observer is built and the decorator keeps the plain wrapper."""
        bulkhead = Bulkhead(1, clock=clock)
        assert bulkhead._observer is None
        assert bulkhead(int).__code__.co_name == "sync_wrapper"
        with bulkhead:
            assert bulkhead.statistics().in_flight == 1
        assert bulkhead.statistics().in_flight == 0


# -- timeout ---------------------------------------------------------------------------


class TestTimeout:
    """call, acall, scope() and the decorator; TimedOut comes before CallEnded."""

    def test_call_success(self, clock: FakeClock) -> None:
        """A sync call in the worker: one SUCCESS call with its virtual duration."""
        hook = RecordingHook()
        timeout = Timeout(5, name="dep", clock=clock, hooks=(hook,))
        assert timeout.call(_sleep_then, clock, 1.0, "ok") == "ok"
        check_call(hook.events, "timeout", [], Outcome.SUCCESS, duration=1.0)
        timeout.close()

    def test_call_failure(self, clock: FakeClock) -> None:
        """The worker's exception is re-raised as is and reported."""
        hook = RecordingHook()
        timeout = Timeout(5, name="dep", clock=clock, hooks=(hook,))
        error = BoomError()
        with pytest.raises(BoomError) as info:
            timeout.call(_raise, error)
        assert info.value is error
        check_call(hook.events, "timeout", [], Outcome.FAILURE, exception=error)
        timeout.close()

    def test_call_timed_out(self, clock: FakeClock) -> None:
        """A sync timeout: TimedOut, then CallEnded(TIMEOUT) with the error."""
        hook = RecordingHook()
        timeout = Timeout(2, name="dep", clock=clock, hooks=(hook,))
        release = threading.Event()

        def slow() -> None:
            clock.sleep(3)
            release.wait(SAFETY)

        with pytest.raises(CallTimeoutError) as info:
            timeout.call(slow)
        release.set()
        started, timed_out, ended = hook.events
        assert started == CallStarted("dep", "timeout")
        assert timed_out == TimedOut("dep", 2.0)
        assert isinstance(ended, CallEnded)
        assert (ended.started, ended.outcome, ended.exception) == (
            started,
            Outcome.TIMEOUT,
            info.value,
        )
        assert ended.duration >= 2.0
        timeout.close()

    @pytest.mark.anyio
    async def test_acall_success_and_timeout(self, clock: FakeClock) -> None:
        """acall: a success, then a timeout that ends exactly at the deadline."""
        hook = RecordingHook()
        timeout = Timeout(2, name="dep", clock=clock, hooks=(hook,))
        assert await timeout.acall(_asleep_then, clock, 1.0, "ok") == "ok"
        check_call(hook.events, "timeout", [], Outcome.SUCCESS, duration=1.0)
        hook.clear()
        with pytest.raises(CallTimeoutError) as info:
            await timeout.acall(clock.asleep, 60)
        check_call(
            hook.events,
            "timeout",
            [TimedOut("dep", 2.0)],
            Outcome.TIMEOUT,
            exception=info.value,
            duration=2.0,
        )

    @pytest.mark.anyio
    async def test_acall_failure(self, clock: FakeClock) -> None:
        """A failure inside the scope is reported and goes on unchanged."""
        hook = RecordingHook()
        timeout = Timeout(2, name="dep", clock=clock, hooks=(hook,))
        error = BoomError()

        async def fail() -> None:
            await clock.asleep(1)
            raise error

        with pytest.raises(BoomError) as info:
            await timeout.acall(fail)
        assert info.value is error
        check_call(hook.events, "timeout", [], Outcome.FAILURE, exception=error, duration=1.0)

    @pytest.mark.anyio
    async def test_acall_cancelled_from_outside(self, clock: FakeClock) -> None:
        """Cancellation from outside is CANCELLED, never a timeout."""
        hook = RecordingHook()
        timeout = Timeout(5, name="dep", clock=clock, hooks=(hook,))
        with anyio.move_on_after(0):
            await timeout.acall(clock.asleep, 60)
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        ended = hook.of_type(CallEnded)[0]
        assert ended.outcome is Outcome.CANCELLED
        assert isinstance(ended.exception, anyio.get_cancelled_exc_class())

    @pytest.mark.anyio
    async def test_real_clock_path(self) -> None:
        """With the system clock (a cancel scope with a deadline) the call is reported too."""
        hook = RecordingHook()
        timeout = Timeout(60, name="dep", hooks=(hook,))
        await timeout.acall(anyio.lowlevel.checkpoint)
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        assert hook.of_type(CallEnded)[0].outcome is Outcome.SUCCESS

    @pytest.mark.anyio
    async def test_scope(self, clock: FakeClock) -> None:
        """scope(): a block is one call; a timed-out block ends TIMEOUT after TimedOut."""
        hook = RecordingHook()
        timeout = Timeout(2, name="dep", clock=clock, hooks=(hook,))
        async with timeout.scope():
            await clock.asleep(1)
        check_call(hook.events, "timeout", [], Outcome.SUCCESS, duration=1.0)
        hook.clear()
        with pytest.raises(CallTimeoutError) as info:
            async with timeout.scope():
                await clock.asleep(60)
        check_call(
            hook.events,
            "timeout",
            [TimedOut("dep", 2.0)],
            Outcome.TIMEOUT,
            exception=info.value,
            duration=2.0,
        )

    @pytest.mark.anyio
    async def test_scope_reuse_reports_nothing(self, clock: FakeClock) -> None:
        """Entering a used scope again raises before any event."""
        hook = RecordingHook()
        scope = Timeout(2, name="dep", clock=clock, hooks=(hook,)).scope()
        async with scope:
            pass
        with pytest.raises(RuntimeError, match="only once"):
            async with scope:
                pass  # pragma: no cover
        check_call(hook.events, "timeout", [], Outcome.SUCCESS)

    def test_decorated_function(self, clock: FakeClock) -> None:
        """A decorated sync function is one call (not two)."""
        hook = RecordingHook()
        timeout = Timeout(5, name="dep", clock=clock, hooks=(hook,))

        @timeout
        def work(x: int) -> int:
            clock.sleep(1)
            return x

        assert work(4) == 4
        check_call(hook.events, "timeout", [], Outcome.SUCCESS, duration=1.0)
        timeout.close()

    @pytest.mark.anyio
    async def test_decorated_coroutine_function(self, clock: FakeClock) -> None:
        """A decorated coroutine function is one call; its timeout ends TIMEOUT."""
        hook = RecordingHook()

        @Timeout(2, name="dep", clock=clock, hooks=(hook,))
        async def work(seconds: float) -> str:
            await clock.asleep(seconds)
            return "ok"

        assert await work(1) == "ok"
        check_call(hook.events, "timeout", [], Outcome.SUCCESS, duration=1.0)
        hook.clear()
        with pytest.raises(CallTimeoutError) as info:
            await work(5)
        check_call(
            hook.events,
            "timeout",
            [TimedOut("dep", 2.0)],
            Outcome.TIMEOUT,
            exception=info.value,
            duration=2.0,
        )

    def test_nothing_without_hooks(self, clock: FakeClock) -> None:
        """Without hooks no observer is built, for calls, scopes or the decorator."""
        timeout = Timeout(1, clock=clock)
        assert timeout._observer is None
        assert timeout.scope()._observer is None
        assert timeout(int).__code__.co_name == "sync_wrapper"


def _sleep_then(clock: FakeClock, seconds: float, value: str) -> str:
    clock.sleep(seconds)
    return value


# -- fallback --------------------------------------------------------------------------


class TestFallback:
    """call, acall and the decorator; a call that fell back is a success."""

    def test_call_success(self, clock: FakeClock) -> None:
        """A call that needs no fallback: one SUCCESS call, no FellBack."""
        hook = RecordingHook()
        fallback = Fallback(0, name="dep", clock=clock, hooks=(hook,))
        assert fallback.call(_sleep_then, clock, 1.0, "ok") == "ok"
        check_call(hook.events, "fallback", [], Outcome.SUCCESS, duration=1.0)

    def test_fell_back(self, clock: FakeClock) -> None:
        """A failure answered with the fallback: FellBack inside a SUCCESS call."""
        hook = RecordingHook()
        fallback = Fallback("cached", name="dep", clock=clock, hooks=(hook,))
        error = BoomError()
        assert fallback.call(_raise, error) == "cached"
        check_call(hook.events, "fallback", [FellBack("dep", error)], Outcome.SUCCESS)

    def test_result_replaced(self, clock: FakeClock) -> None:
        """A result judged bad is replaced inside a SUCCESS call."""
        hook = RecordingHook()
        fallback = Fallback(0, when_result=lambda r: r < 0, name="dep", clock=clock, hooks=(hook,))
        assert fallback.call(lambda: -1) == 0
        check_call(hook.events, "fallback", [FellBack("dep", None)], Outcome.SUCCESS)

    def test_declined_failure(self, clock: FakeClock) -> None:
        """A failure that ``when`` declines ends FAILURE with the same exception."""
        hook = RecordingHook()
        fallback = Fallback(
            0, when=lambda e: isinstance(e, KeyError), name="dep", clock=clock, hooks=(hook,)
        )
        error = BoomError()
        with pytest.raises(BoomError) as info:
            fallback.call(_raise, error)
        assert info.value is error
        check_call(hook.events, "fallback", [], Outcome.FAILURE, exception=error)

    def test_factory_failure(self, clock: FakeClock) -> None:
        """A factory that raises ends the call FAILURE with the factory's exception."""
        hook = RecordingHook()
        factory_error = KeyError("no cache")

        def factory(exc: Exception | None) -> object:
            raise factory_error

        fallback = Fallback(factory=factory, name="dep", clock=clock, hooks=(hook,))
        with pytest.raises(KeyError):
            fallback.call(_raise, BoomError())
        check_call(hook.events, "fallback", [], Outcome.FAILURE, exception=factory_error)

    @pytest.mark.anyio
    async def test_acall_with_async_factory(self, clock: FakeClock) -> None:
        """acall: the awaited factory's time is inside the call; it ends SUCCESS."""
        hook = RecordingHook()

        async def factory(exc: Exception | None) -> str:
            await clock.asleep(2)
            return "cached"

        fallback = Fallback(factory=factory, name="dep", clock=clock, hooks=(hook,))
        error = BoomError()

        async def fail() -> str:
            await clock.asleep(1)
            raise error

        assert await fallback.acall(fail) == "cached"
        check_call(hook.events, "fallback", [FellBack("dep", error)], Outcome.SUCCESS, duration=3.0)

    @pytest.mark.anyio
    async def test_acall_cancelled(self, clock: FakeClock) -> None:
        """Cancellation never falls back: the call ends CANCELLED."""
        hook = RecordingHook()
        fallback = Fallback(0, name="dep", clock=clock, hooks=(hook,))
        with anyio.move_on_after(0):
            await fallback.acall(clock.asleep, 60)
        assert [type(e) for e in hook.events] == [CallStarted, CallEnded]
        assert hook.of_type(CallEnded)[0].outcome is Outcome.CANCELLED

    def test_decorated_function(self, clock: FakeClock) -> None:
        """A decorated function is one call; its fallback is inside."""
        hook = RecordingHook()
        error = BoomError()

        @Fallback(-1, name="dep", clock=clock, hooks=(hook,))
        def work() -> int:
            raise error

        assert work() == -1
        check_call(hook.events, "fallback", [FellBack("dep", error)], Outcome.SUCCESS)

    @pytest.mark.anyio
    async def test_decorated_coroutine_function(self, clock: FakeClock) -> None:
        """A decorated coroutine function is one call per await."""
        hook = RecordingHook()

        @Fallback(-1, name="dep", clock=clock, hooks=(hook,))
        async def work() -> int:
            await clock.asleep(1)
            return 1

        assert await work() == 1
        check_call(hook.events, "fallback", [], Outcome.SUCCESS, duration=1.0)

    def test_nothing_without_hooks(self) -> None:
        """Without hooks no observer is built and the decorator keeps the plain wrapper."""
        fallback = Fallback(0)
        assert fallback._observer is None
        assert fallback(int).__code__.co_name == "sync_wrapper"


# -- rate limiters ---------------------------------------------------------------------


def limiter(clock: FakeClock, hook: RecordingHook) -> RateLimiter:
    """One token, refilled every 0.5 s."""
    return RateLimiter(rate=2, burst=1, name="dep", clock=clock, hooks=(hook,))


class TestRateLimiter:
    """The decorator and with-blocks are calls; acquisitions alone are not."""

    def test_decorated_function(self, clock: FakeClock) -> None:
        """Each call waits for its token inside the call; the wait is its duration."""
        hook = RecordingHook()

        @limiter(clock, hook)
        def work(x: int) -> int:
            return x

        assert work(1) == 1
        check_call(hook.events, "rate_limiter", [AcquireWaited("dep", 1, 0.0)], Outcome.SUCCESS)
        hook.clear()
        assert work(2) == 2
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.5)],
            Outcome.SUCCESS,
            duration=0.5,
        )

    def test_refusal_inside_a_call_is_rejected(self, clock: FakeClock) -> None:
        """A max_wait refusal raised inside a decorated call ends it REJECTED."""
        hook = RecordingHook()
        lim = limiter(clock, hook)

        @lim
        def work() -> None:
            lim.acquire(max_wait=0)

        with pytest.raises(RateLimitedError) as info:
            work()
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.0), RateLimited("dep", 1, 0.5)],
            Outcome.REJECTED,
            exception=info.value,
        )

    def test_decorated_failure(self, clock: FakeClock) -> None:
        """A failure of the function ends the call FAILURE, unchanged."""
        hook = RecordingHook()
        error = BoomError()
        work = limiter(clock, hook)(_raise)
        with pytest.raises(BoomError) as info:
            work(error)
        assert info.value is error
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.0)],
            Outcome.FAILURE,
            exception=error,
        )

    @pytest.mark.anyio
    async def test_decorated_coroutine_function(self, clock: FakeClock) -> None:
        """An async wait for the token is inside the call."""
        hook = RecordingHook()

        @limiter(clock, hook)
        async def work() -> str:
            await clock.asleep(1)
            return "ok"

        assert await work() == "ok"
        hook.clear()
        assert await work() == "ok"
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.0)],
            Outcome.SUCCESS,
            duration=1.0,
        )

    def test_with_block(self, clock: FakeClock) -> None:
        """with limiter: one call per block, the wait included."""
        hook = RecordingHook()
        lim = limiter(clock, hook)
        with lim:
            clock.advance(0.25)
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.0)],
            Outcome.SUCCESS,
            duration=0.25,
        )
        hook.clear()
        error = BoomError()
        with pytest.raises(BoomError), lim:
            raise error
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.25)],
            Outcome.FAILURE,
            exception=error,
            duration=0.25,
        )

    @pytest.mark.anyio
    async def test_async_with_cancelled_while_waiting(self, clock: FakeClock) -> None:
        """A task cancelled while waiting for its token: AcquireCancelled, CANCELLED."""
        hook = RecordingHook()
        lim = limiter(clock, hook)
        async with lim:
            pass
        hook.clear()
        with anyio.move_on_after(0):
            async with lim:
                pass  # pragma: no cover
        started, cancelled, ended = hook.events
        assert started == CallStarted("dep", "rate_limiter")
        assert cancelled == AcquireCancelled("dep", 1, 1.0)
        assert isinstance(ended, CallEnded)
        assert (ended.started, ended.outcome) == (started, Outcome.CANCELLED)

    @pytest.mark.anyio
    async def test_async_with(self, clock: FakeClock) -> None:
        """async with limiter: the wait for the token is the call's duration."""
        hook = RecordingHook()
        lim = limiter(clock, hook)
        lim.acquire()
        hook.clear()
        async with lim:
            pass
        check_call(
            hook.events,
            "rate_limiter",
            [AcquireWaited("dep", 1, 0.5)],
            Outcome.SUCCESS,
            duration=0.5,
        )

    @pytest.mark.anyio
    async def test_acquisitions_are_not_calls(self, clock: FakeClock) -> None:
        """acquire, aacquire and try_acquire report no call; a granted try reports nothing."""
        hook = RecordingHook()
        lim = limiter(clock, hook)
        assert lim.try_acquire()
        assert hook.events == []
        lim.acquire()
        await lim.aacquire()
        assert hook.events == [AcquireWaited("dep", 1, 0.5), AcquireWaited("dep", 1, 0.5)]

    def test_keyed_limiter(self, clock: FakeClock) -> None:
        """KeyedRateLimiter reports every blocking grant with its key, and no calls."""
        hook = RecordingHook()
        keyed = KeyedRateLimiter(rate=2, burst=1, name="dep", clock=clock, hooks=(hook,))
        assert keyed.try_acquire("a")
        keyed.acquire("b")
        keyed.acquire("b")
        assert hook.events == [AcquireWaited("dep", 1, 0.0, "b"), AcquireWaited("dep", 1, 0.5, "b")]

    @pytest.mark.anyio
    async def test_llm_limiter(self, clock: FakeClock) -> None:
        """LLMRateLimiter: reserve and areserve report every grant, and no calls."""
        hook = RecordingHook()
        llm = LLMRateLimiter(
            requests_per_minute=60, tokens_per_minute=600, name="dep", clock=clock, hooks=(hook,)
        )
        assert llm.try_reserve(100) is not None
        assert hook.events == []
        llm.reserve(100)
        await llm.areserve(100)
        async with llm.areserve(500):
            pass
        assert hook.events == [
            AcquireWaited("dep", 100, 0.0),
            AcquireWaited("dep", 100, 0.0),
            AcquireWaited("dep", 500, 20.0),
        ]

    def test_nothing_without_hooks(self, clock: FakeClock) -> None:
        """Without hooks no observer is built and the decorator keeps the plain wrapper."""
        lim = RateLimiter(rate=1, burst=1, clock=clock)
        assert lim._observer is None
        assert lim(int).__code__.co_name == "limiter_wrapper"
        with lim:
            pass


def test_hooks_see_events_in_one_thread_per_call(clock: FakeClock) -> None:
    """The start and end of a sync call are reported in the caller's thread."""
    seen: list[tuple[type[Any], int]] = []

    def hook(event: Event) -> None:
        if isinstance(event, (CallStarted, CallEnded)):
            seen.append((type(event), threading.get_ident()))

    timeout = Timeout(5, clock=clock, hooks=(hook,))
    timeout.call(int)
    timeout.close()
    Bulkhead(1, clock=clock, hooks=(hook,)).call(int)
    me = threading.get_ident()
    assert seen == [(CallStarted, me), (CallEnded, me)] * 2
