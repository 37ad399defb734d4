"""Timeout: async calls cancelled at the deadline, sync calls abandoned in a worker.

Async tests use `FakeClock`, whose watchdog fires exactly at the virtual deadline.
Sync tests with a `FakeClock` get their deadline from ``FakeClock.call_at``: a call
that must be slow sleeps on the clock past the deadline (which fires it), then blocks
on a `threading.Event` the test controls; an instant call never times out. `GatedClock`
(no ``call_at``) covers the fallback helper thread, whose sleep waits until the test
opens the gate.
"""

from __future__ import annotations

import contextvars
import pickle
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from seawall import (
    CallEnded,
    CallTimeoutError,
    Outcome,
    SystemClock,
    TimedOut,
    Timeout,
    TimeoutStatistics,
)
from seawall.testing import FakeClock, RecordingHook


# Bound on waiting for a worker thread: a safety net, never reached.
SAFETY = 10.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class GatedClock:
    """A virtual clock whose sync ``sleep`` moves time only once the test opens the gate."""

    def __init__(self) -> None:
        self.fake = FakeClock()
        self.gate = threading.Event()

    def now(self) -> float:
        """The virtual time."""
        return self.fake.now()

    def sleep(self, seconds: float) -> None:
        """Wait for the gate, then move virtual time."""
        self.gate.wait()
        self.fake.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Delegate to the fake clock."""
        await self.fake.asleep(seconds)


@pytest.fixture
def gated() -> Iterator[GatedClock]:
    """A gated clock; the gate opens at teardown so no helper thread stays blocked."""
    clock = GatedClock()
    yield clock
    clock.gate.set()


class TestConstruction:
    """Options are validated when the policy is built."""

    def test_instantiate_outside_event_loop(self) -> None:
        """A timeout is built without an event loop and works in one later."""
        timeout = Timeout(1.0)

        async def fast() -> int:
            return 1

        assert anyio.run(timeout.acall, fast) == 1

    @pytest.mark.parametrize(
        ("seconds", "error"),
        [(0, ValueError), (-1, ValueError), (float("nan"), ValueError),
         (float("inf"), ValueError), ("1", TypeError), (True, TypeError)],
    )  # fmt: skip
    def test_bad_seconds(self, seconds: Any, error: type[Exception]) -> None:
        """seconds must be a positive finite duration; the error names it."""
        with pytest.raises(error, match="seconds"):
            Timeout(seconds)

    def test_timedelta(self) -> None:
        """A timedelta is normalised to float seconds."""
        assert Timeout(timedelta(milliseconds=1500)).seconds == 1.5

    def test_bad_name_clock_hooks(self) -> None:
        """name, clock and hooks are checked; errors name them."""
        with pytest.raises(ValueError, match="name"):
            Timeout(1, name="")
        with pytest.raises(TypeError, match="clock"):
            Timeout(1, clock=object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="hooks"):
            Timeout(1, hooks=print)  # type: ignore[arg-type]

    def test_repr_and_properties(self, clock: FakeClock) -> None:
        """The repr shows the name, the timeout and the counters."""
        timeout = Timeout(2, name="search", clock=clock)
        assert repr(timeout) == "Timeout(name='search', seconds=2.0, calls=0, timeouts=0)"
        assert (timeout.name, timeout.seconds, timeout.clock) == ("search", 2.0, clock)
        assert "TimeoutScope" in repr(timeout.scope())

    def test_error_pickles(self) -> None:
        """CallTimeoutError keeps its attributes through pickle."""
        error = CallTimeoutError("m", primitive_name="t", timeout=2.0)
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.primitive_name, copy.timeout, str(copy)) == ("t", 2.0, "m")


@pytest.mark.anyio
class TestAsyncTimeout:
    """acall, scope() and coroutine functions under a virtual clock."""

    async def test_fires_at_the_virtual_deadline(self, clock: FakeClock) -> None:
        """The inner call is cancelled exactly at the deadline and the caller gets the error."""
        timeout = Timeout(5, name="t", clock=clock)
        seen: list[float] = []

        async def slow() -> str:
            try:
                await clock.asleep(60)
            except anyio.get_cancelled_exc_class():
                seen.append(clock.now())
                raise
            return "late"

        with pytest.raises(CallTimeoutError) as info:
            await timeout.acall(slow)
        assert seen == [5.0]
        assert clock.now() == 5.0
        assert (info.value.primitive_name, info.value.timeout) == ("t", 5.0)
        assert info.value.__suppress_context__
        assert isinstance(info.value, TimeoutError)

    async def test_fast_call_keeps_its_result(self, clock: FakeClock) -> None:
        """A call that ends before the deadline returns; the watchdog is stopped."""
        timeout = Timeout(5, clock=clock)

        async def quick(x: int) -> int:
            await clock.asleep(4.5)
            return x * 2

        assert await timeout.acall(quick, 21) == 42
        assert clock.now() == 4.5
        assert timeout.statistics().timeouts == 0

    async def test_exception_is_not_wrapped(self, clock: FakeClock) -> None:
        """The call's own exception propagates as is, not in an exception group."""
        error = ValueError("mine")

        async def fails() -> None:
            await clock.asleep(1)
            raise error

        with pytest.raises(ValueError, match="mine") as info:
            await Timeout(5, clock=clock).acall(fails)
        assert info.value is error

    async def test_outside_cancellation_is_not_a_timeout(self, clock: FakeClock) -> None:
        """Cancelling the caller's own scope propagates as cancellation, uncounted."""
        hook = RecordingHook()
        timeout = Timeout(5, clock=clock, hooks=(hook,))
        seen: list[float] = []

        async def slow() -> None:
            try:
                await clock.asleep(60)
            except anyio.get_cancelled_exc_class():
                seen.append(clock.now())
                raise

        async with anyio.create_task_group() as tg:

            async def caller() -> None:
                with anyio.CancelScope() as scope:
                    tg.start_soon(cancel_at, scope, 2.0)
                    await timeout.acall(slow)
                assert scope.cancelled_caught

            async def cancel_at(scope: anyio.CancelScope, at: float) -> None:
                await clock.asleep(at)
                scope.cancel()

            tg.start_soon(caller)
        assert seen == [2.0]
        assert timeout.statistics() == TimeoutStatistics(
            name="timeout", timeout=5.0, calls=1, timeouts=0
        )
        assert hook.of_type(TimedOut) == []
        assert [e.outcome for e in hook.of_type(CallEnded)] == [Outcome.CANCELLED]

    async def test_already_cancelled_caller(self, clock: FakeClock) -> None:
        """A caller cancelled before the call gets cancellation, not a timeout."""
        timeout = Timeout(5, clock=clock)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await timeout.acall(clock.asleep, 60)
        assert scope.cancelled_caught
        assert timeout.statistics().timeouts == 0

    async def test_scope(self, clock: FakeClock) -> None:
        """async with timeout.scope() times out a block, and is single-use."""
        timeout = Timeout(3, clock=clock)
        cm = timeout.scope()
        with pytest.raises(CallTimeoutError):
            async with cm:
                await clock.asleep(10)
        assert clock.now() == 3.0
        with pytest.raises(RuntimeError, match="only once"):
            async with cm:
                pass
        async with timeout.scope():
            await clock.asleep(1)
        assert timeout.statistics().calls == 2  # the refused re-entry is no call

    async def test_decorator(self, clock: FakeClock) -> None:
        """A decorated coroutine function times out and keeps its metadata."""

        @Timeout(1, clock=clock)
        async def fetch(delay: float) -> float:
            """Fetch."""
            await clock.asleep(delay)
            return delay

        assert await fetch(0.5) == 0.5
        with pytest.raises(CallTimeoutError):
            await fetch(2)
        assert fetch.__name__ == "fetch"
        assert fetch.__doc__ == "Fetch."

    async def test_concurrent_calls_share_one_instance(self, clock: FakeClock) -> None:
        """Many tasks under one timeout: the slow ones time out at the deadline only."""
        timeout = Timeout(5, clock=clock)
        outcomes: dict[int, object] = {}

        async def one(i: int) -> None:
            try:
                outcomes[i] = await timeout.acall(clock.asleep, i + 0.5)
            except CallTimeoutError:
                outcomes[i] = clock.now()

        async with anyio.create_task_group() as tg:
            for i in range(1, 10):
                tg.start_soon(one, i)
        assert outcomes == {i: None if i < 5 else 5.0 for i in range(1, 10)}
        assert timeout.statistics().timeouts == 5

    async def test_system_clock_fast_path(self) -> None:
        """With SystemClock (a deadline on the loop's clock) results and errors pass."""
        timeout = Timeout(60)
        assert isinstance(timeout.clock, SystemClock)

        async def quick() -> int:
            await anyio.lowlevel.checkpoint()
            return 3

        assert await timeout.acall(quick) == 3
        with pytest.raises(ValueError, match="boom"):
            await timeout.acall(_aboom)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await timeout.acall(anyio.Event().wait)
        assert scope.cancelled_caught
        assert timeout.statistics().timeouts == 0

    async def test_system_clock_expiry_raises(self) -> None:
        """With SystemClock a passed deadline raises CallTimeoutError (no timing checked)."""
        timeout = Timeout(1e-9)
        with pytest.raises(CallTimeoutError):
            await timeout.acall(anyio.Event().wait)
        assert timeout.statistics().timeouts == 1


def _lookup(key: str) -> int:
    return {"present": 1}[key]


async def _aboom() -> None:
    await anyio.lowlevel.checkpoint()
    raise ValueError("boom")


class TestSyncTimeout:
    """call() and sync functions: a worker thread, abandoned on expiry."""

    def test_abandons_the_worker_and_raises(self, clock: FakeClock) -> None:
        """A blocked call times out at the virtual deadline; its late result is dropped."""
        release = threading.Event()
        finished = threading.Event()
        timeout = Timeout(5, name="t", clock=clock)

        def stuck() -> str:
            clock.sleep(5)  # slow in virtual time: reaches the deadline
            release.wait(SAFETY)
            finished.set()
            return "late"

        with pytest.raises(CallTimeoutError) as info:
            timeout.call(stuck)
        assert info.value.timeout == 5.0
        assert clock.now() == 5.0
        assert not finished.is_set()  # still running: abandoned, not interrupted
        release.set()
        assert finished.wait(SAFETY)
        assert timeout.statistics() == TimeoutStatistics(name="t", timeout=5.0, calls=1, timeouts=1)
        timeout.close()

    def test_abandoned_exception_is_retrieved(self, clock: FakeClock) -> None:
        """An abandoned call that raises later: its exception is dropped, not reported."""
        release = threading.Event()
        done = threading.Event()
        timeout = Timeout(1, clock=clock)

        def stuck() -> None:
            try:
                clock.sleep(1)
                release.wait(SAFETY)
                raise RuntimeError("late failure")
            finally:
                done.set()

        with pytest.raises(CallTimeoutError):
            timeout.call(stuck)
        release.set()
        assert done.wait(SAFETY)
        timeout.close()

    def test_gated_clock_fallback_times_out(self, gated: GatedClock) -> None:
        """A clock without call_at: a helper thread sleeps on the clock, then times out."""
        release = threading.Event()
        timeout = Timeout(5, name="g", clock=gated)

        def stuck() -> None:
            assert any(t.name == "seawall-timeout-g-timer" for t in threading.enumerate())
            gated.gate.set()  # the helper's sleep returns: the deadline passes
            release.wait(SAFETY)

        with pytest.raises(CallTimeoutError):
            timeout.call(stuck)
        release.set()
        assert gated.now() == 5.0
        timeout.close()

    def test_instant_calls_never_time_out(self, clock: FakeClock) -> None:
        """With FakeClock an instant call returns, and moves no virtual time."""
        timeout = Timeout(5, clock=clock)
        for _ in range(200):
            assert timeout.call(int, "7") == 7
        assert clock.now() == 0
        assert timeout.statistics().timeouts == 0
        timeout.close()

    def test_advancing_the_clock_times_out_a_running_call(self, clock: FakeClock) -> None:
        """The test thread moves virtual time while the call runs in a worker."""
        release = threading.Event()
        started = threading.Event()
        timeout = Timeout(5, clock=clock)
        outcome: list[BaseException] = []

        def stuck() -> None:
            started.set()
            release.wait(SAFETY)

        def caller() -> None:
            try:
                timeout.call(stuck)
            except CallTimeoutError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=caller, daemon=True)
        thread.start()
        assert started.wait(SAFETY)  # the deadline is armed before the call starts
        clock.advance(4)
        assert outcome == []
        clock.advance(1)
        thread.join(SAFETY)
        assert not thread.is_alive()
        assert len(outcome) == 1
        release.set()
        timeout.close()

    def test_result_before_the_deadline(self, gated: GatedClock) -> None:
        """With time frozen the worker's result is returned, args and kwargs passed."""
        timeout = Timeout(5, clock=gated)

        def add(a: int, b: int = 0) -> int:
            return a + b

        assert timeout.call(add, 1, b=2) == 3
        assert timeout.statistics().timeouts == 0
        timeout.close()

    def test_exception_before_the_deadline(self, gated: GatedClock) -> None:
        """The worker's exception propagates to the caller."""
        timeout = Timeout(5, clock=gated)
        with pytest.raises(KeyError):
            timeout.call(_lookup, "missing")
        timeout.close()

    def test_context_variables_reach_the_worker(self, gated: GatedClock) -> None:
        """The worker runs in a copy of the caller's context."""
        timeout = Timeout(5, clock=gated)
        token = request_id.set("req-1")
        try:
            assert timeout.call(request_id.get) == "req-1"
        finally:
            request_id.reset(token)
        timeout.close()

    def test_system_clock_result(self) -> None:
        """With SystemClock the caller wakes on the result (no deadline reached)."""
        timeout = Timeout(60)
        assert timeout.call(str.upper, "a") == "A"
        timeout.close()

    def test_decorator_and_close(self, gated: GatedClock) -> None:
        """A decorated sync function runs in the pool; close() and reuse work."""
        timeout = Timeout(5, clock=gated)

        @timeout
        def where() -> str:
            """Where."""
            return threading.current_thread().name

        assert where().startswith("seawall-timeout-timeout")
        timeout.close()
        timeout.close()
        assert where().startswith("seawall-timeout-timeout")
        assert where.__doc__ == "Where."
        timeout.close()

    def test_decorator_rejects_generators(self) -> None:
        """Generator functions and non-callables cannot be decorated."""

        async def agen() -> Any:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            Timeout(1)(agen)
        with pytest.raises(TypeError, match="callable"):
            Timeout(1)(None)  # type: ignore[arg-type]


class TestHooks:
    """TimedOut events."""

    def test_timed_out_event(self, clock: FakeClock) -> None:
        """A timeout reports TimedOut(name, timeout) once."""
        hook = RecordingHook()
        release = threading.Event()
        timeout = Timeout(2, name="t", clock=clock, hooks=(hook,))

        def slow() -> None:
            clock.sleep(3)
            release.wait(SAFETY)

        with pytest.raises(CallTimeoutError):
            timeout.call(slow)
        release.set()
        assert hook.of_type(TimedOut) == [TimedOut("t", 2.0)]
        timeout.close()

    @pytest.mark.anyio
    async def test_timed_out_event_async(self, clock: FakeClock) -> None:
        """An async timeout reports TimedOut too; successes report nothing."""
        hook = RecordingHook()
        timeout = Timeout(2, clock=clock, hooks=(hook,))
        await timeout.acall(clock.asleep, 1)
        with pytest.raises(CallTimeoutError):
            await timeout.acall(clock.asleep, 3)
        assert hook.of_type(TimedOut) == [TimedOut("timeout", 2.0)]
