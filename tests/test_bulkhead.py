"""Bulkhead: a concurrency limit with a bounded FIFO queue, for threads and tasks.

Async waits with ``max_wait`` run on `FakeClock` (a watchdog on virtual time). Sync
waits with a `FakeClock` register their ``max_wait`` deadline with
``FakeClock.call_at``: a queued sync caller is refused only when the test moves
virtual time past it (``advance``); `GatedClock` (no ``call_at``) covers the fallback
helper thread that sleeps on the clock. Threads are coordinated
with events and bounded spins on the bulkhead's statistics, never with sleeps.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from seawall import (
    Bulkhead,
    BulkheadFullError,
    BulkheadRejected,
    BulkheadStatistics,
    RejectedError,
)
from seawall.testing import FakeClock, RecordingHook


# Bound on waiting for another thread: a safety net, never reached.
SAFETY = 10.0


def spin_until(predicate: Any) -> None:
    """Wait (without sleeping) until another thread makes *predicate* true."""
    deadline = time.monotonic() + SAFETY
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"


class GatedClock:
    """A clock without ``call_at``, whose sync ``sleep`` waits for the test's gate.

    It exercises the fallback deadline of sync waits: a helper thread that sleeps on
    the clock and then wakes the waiter.
    """

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.fake = FakeClock()

    def now(self) -> float:
        return self.fake.now()

    def sleep(self, seconds: float) -> None:
        assert self.gate.wait(SAFETY), "the test never opened the gate"
        self.fake.sleep(seconds)

    async def asleep(self, seconds: float) -> None:  # pragma: no cover - unused
        await self.fake.asleep(seconds)


def run_in_thread(fn: Any) -> tuple[threading.Thread, list[object]]:
    """Start *fn* in a thread; the list receives its result or its exception."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


async def until_queued(bulkhead: Bulkhead, n: int) -> None:
    """Let other tasks run until *n* callers are queued."""
    await until(lambda: bulkhead.statistics().queued == n)


async def until_in_flight(bulkhead: Bulkhead, n: int) -> None:
    """Let other tasks run until *n* slots are held (trio schedules in random order)."""
    await until(lambda: bulkhead.statistics().in_flight == n)


async def until(predicate: Any) -> None:
    """Let other tasks run until *predicate* is true."""
    for _ in range(1000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never became true")


class TestConstruction:
    """Options are validated when the bulkhead is built."""

    def test_instantiate_outside_event_loop(self) -> None:
        """A bulkhead is built without an event loop and used from one later."""
        bulkhead = Bulkhead(1, max_queue=1)

        async def main() -> int:
            async with bulkhead:
                return bulkhead.statistics().in_flight

        assert anyio.run(main) == 1
        assert bulkhead.statistics().in_flight == 0

    @pytest.mark.parametrize(
        ("kwargs", "error", "param"),
        [
            ({"max_concurrent": 0}, ValueError, "max_concurrent"),
            ({"max_concurrent": 1.5}, TypeError, "max_concurrent"),
            ({"max_concurrent": True}, TypeError, "max_concurrent"),
            ({"max_queue": -1}, ValueError, "max_queue"),
            ({"max_queue": None}, TypeError, "max_queue"),
            ({"max_wait": -1}, ValueError, "max_wait"),
            ({"max_wait": "1"}, TypeError, "max_wait"),
            ({"name": ""}, ValueError, "name"),
            ({"clock": 3}, TypeError, "clock"),
            ({"hooks": [1]}, TypeError, "hooks"),
        ],
    )
    def test_invalid_parameters(
        self, kwargs: dict[str, Any], error: type[Exception], param: str
    ) -> None:
        """Bad options raise at construction, naming the parameter."""
        kwargs.setdefault("max_concurrent", 2)
        with pytest.raises(error, match=param):
            Bulkhead(**kwargs)

    def test_properties_and_repr(self) -> None:
        """Properties echo the options; the repr shows the live state."""
        bulkhead = Bulkhead(2, max_queue=3, max_wait=timedelta(seconds=1.5), name="llm")
        assert (bulkhead.name, bulkhead.max_concurrent, bulkhead.max_queue) == ("llm", 2, 3)
        assert bulkhead.max_wait == 1.5
        with bulkhead:
            assert repr(bulkhead) == (
                "Bulkhead(name='llm', max_concurrent=2, max_queue=3, in_flight=1, queued=0)"
            )

    def test_statistics(self) -> None:
        """statistics() is a frozen snapshot of options and counters."""
        bulkhead = Bulkhead(1)
        bulkhead.call(int)
        with bulkhead, pytest.raises(BulkheadFullError):
            bulkhead.call(int)
        assert bulkhead.statistics() == BulkheadStatistics(
            name="bulkhead",
            max_concurrent=1,
            max_queue=0,
            in_flight=0,
            queued=0,
            admitted=2,
            rejected=1,
            cancelled=0,
        )


class TestSyncAdmission:
    """Threads: admit up to N, queue FIFO, reject beyond the queue."""

    def test_rejects_at_once_without_queue(self) -> None:
        """With max_queue=0 a busy bulkhead refuses at once; retry_after is None."""
        hook = RecordingHook()
        bulkhead = Bulkhead(2, name="db", hooks=(hook,))
        with bulkhead, bulkhead, pytest.raises(BulkheadFullError) as info:
            bulkhead.call(int)
        error = info.value
        assert isinstance(error, RejectedError)
        assert (error.primitive_name, error.retry_after) == ("db", None)
        assert hook.of_type(BulkheadRejected) == [BulkheadRejected("db", 2, 0)]
        assert bulkhead.statistics().in_flight == 0

    def test_fifo_handover_between_threads(self) -> None:
        """Queued threads get the slot in arrival order."""
        bulkhead = Bulkhead(1, max_queue=3)
        order: list[int] = []
        threads = []
        bulkhead.acquire()
        for i in range(3):
            thread = threading.Thread(target=bulkhead.call, args=(order.append, i))
            thread.start()
            threads.append(thread)
            spin_until(lambda n=i + 1: bulkhead.statistics().queued == n)
        with pytest.raises(BulkheadFullError):
            bulkhead.call(int)
        bulkhead.release()
        for thread in threads:
            thread.join(SAFETY)
        assert order == [0, 1, 2]
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.queued, stats.admitted, stats.rejected) == (0, 0, 4, 1)

    def test_max_wait_sync(self, clock: FakeClock) -> None:
        """A queued thread is refused once virtual time moves max_wait past its arrival."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, max_queue=1, max_wait=5, clock=clock, hooks=(hook,))
        with bulkhead:
            thread, outcome = run_in_thread(lambda: bulkhead.call(int))
            spin_until(lambda: bulkhead.statistics().queued == 1)
            clock.advance(4.5)  # not yet
            assert outcome == []
            assert bulkhead.statistics().queued == 1
            clock.advance(0.5)
            thread.join(SAFETY)
            assert not thread.is_alive()
        assert clock.now() == 5.0
        assert len(outcome) == 1
        assert isinstance(outcome[0], BulkheadFullError)
        assert "max_wait" in str(outcome[0])
        assert hook.of_type(BulkheadRejected) == [BulkheadRejected("bulkhead", 1, 0)]
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.queued, stats.rejected) == (0, 0, 1)

    def test_max_wait_sync_handover_in_virtual_time(self, clock: FakeClock) -> None:
        """With FakeClock, a queued thread waits until a slot is handed over; no time moves."""
        bulkhead = Bulkhead(1, max_queue=1, max_wait=5, clock=clock)
        bulkhead.acquire()
        thread, outcome = run_in_thread(lambda: bulkhead.call(str, "ok"))
        spin_until(lambda: bulkhead.statistics().queued == 1)
        bulkhead.release()
        thread.join(SAFETY)
        assert outcome == ["ok"]
        assert clock.now() == 0
        clock.advance(10)  # the stale deadline fires harmlessly
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.admitted, stats.rejected) == (0, 2, 0)

    def test_max_wait_zero_sync_refuses_at_once(self, clock: FakeClock) -> None:
        """max_wait=0 with a virtual clock: a queued thread is refused at once."""
        bulkhead = Bulkhead(1, max_queue=1, max_wait=0, clock=clock)
        with bulkhead, pytest.raises(BulkheadFullError, match="max_wait"):
            bulkhead.call(int)
        assert clock.now() == 0

    def test_max_wait_sync_fallback_helper_thread(self) -> None:
        """A clock without call_at: a helper thread sleeps on the clock, then refuses."""
        gated = GatedClock()
        bulkhead = Bulkhead(1, max_queue=1, max_wait=5, clock=gated, name="gb")
        try:
            with bulkhead:
                thread, outcome = run_in_thread(lambda: bulkhead.call(int))
                spin_until(lambda: bulkhead.statistics().queued == 1)
                assert any(t.name == "seawall-bulkhead-gb-timer" for t in threading.enumerate())
                assert outcome == []
                gated.gate.set()
                thread.join(SAFETY)
                assert not thread.is_alive()
        finally:
            gated.gate.set()
        assert len(outcome) == 1
        assert isinstance(outcome[0], BulkheadFullError)
        assert gated.now() == 5.0

    def test_max_wait_system_clock_handover(self) -> None:
        """With SystemClock, a waiter handed a slot before max_wait is admitted."""
        bulkhead = Bulkhead(1, max_queue=1, max_wait=SAFETY)
        results: list[str] = []
        bulkhead.acquire()
        thread = threading.Thread(target=lambda: results.append(bulkhead.call(str, "ok")))
        thread.start()
        spin_until(lambda: bulkhead.statistics().queued == 1)
        bulkhead.release()
        thread.join(SAFETY)
        assert results == ["ok"]

    def test_release_without_slot(self) -> None:
        """release() with nothing held is a RuntimeError."""
        with pytest.raises(RuntimeError, match="without a slot"):
            Bulkhead(1).release()

    def test_exception_releases(self) -> None:
        """A failing call gives its slot back and its exception propagates."""
        bulkhead = Bulkhead(1)
        with pytest.raises(KeyError):
            bulkhead.call(_lookup, "k")
        assert bulkhead.statistics().in_flight == 0

    def test_decorator(self) -> None:
        """A decorated sync function holds a slot while it runs."""
        bulkhead = Bulkhead(1)

        @bulkhead
        def inside() -> int:
            """Inside."""
            return bulkhead.statistics().in_flight

        assert inside() == 1
        assert inside.__doc__ == "Inside."

    def test_decorator_rejects_generators(self) -> None:
        """Generator functions and non-callables cannot be decorated."""

        def gen() -> Any:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            Bulkhead(1)(gen)
        with pytest.raises(TypeError, match="callable"):
            Bulkhead(1)(1)  # type: ignore[arg-type]


@pytest.mark.anyio
class TestAsyncAdmission:
    """Tasks on asyncio and trio: admit, queue FIFO, reject, max_wait."""

    async def test_admits_up_to_n(self) -> None:
        """N tasks run together; the next is refused when there is no queue."""
        bulkhead = Bulkhead(3)
        gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(bulkhead.acall, gate.wait)
            await until_in_flight(bulkhead, 3)
            with pytest.raises(BulkheadFullError):
                await bulkhead.acall(gate.wait)
            gate.set()
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.admitted, stats.rejected) == (0, 3, 1)

    async def test_fifo_queue_and_rejection(self) -> None:
        """Waiters are served in arrival order; beyond max_queue they are refused."""
        hook = RecordingHook()
        bulkhead = Bulkhead(1, max_queue=2, hooks=(hook,))
        order: list[int] = []

        async def record(i: int) -> None:
            order.append(i)

        async with anyio.create_task_group() as tg, bulkhead:
            for i in range(2):
                tg.start_soon(bulkhead.acall, record, i)
                await until_queued(bulkhead, i + 1)
            with pytest.raises(BulkheadFullError, match="queue is full"):
                await bulkhead.acall(record, 99)
        assert order == [0, 1]
        assert hook.of_type(BulkheadRejected) == [BulkheadRejected("bulkhead", 1, 2)]
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.queued, stats.admitted, stats.rejected) == (0, 0, 3, 1)

    async def test_max_wait(self, clock: FakeClock) -> None:
        """A queued task is refused exactly at max_wait on the virtual clock."""
        bulkhead = Bulkhead(1, max_queue=1, max_wait=2.5, clock=clock)
        async with bulkhead:
            with pytest.raises(BulkheadFullError, match="max_wait"):
                await bulkhead.acall(anyio.lowlevel.checkpoint)
            assert clock.now() == 2.5
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.queued, stats.rejected) == (0, 0, 1)

    async def test_handover_before_max_wait(self, clock: FakeClock) -> None:
        """A waiter handed a slot before max_wait runs; the watchdog is stopped."""
        bulkhead = Bulkhead(1, max_queue=1, max_wait=10, clock=clock)
        ran: list[float] = []

        async def holder() -> None:
            async with bulkhead:
                await clock.asleep(3)

        async def record() -> None:
            ran.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await until_in_flight(bulkhead, 1)
            await bulkhead.acall(record)
        assert ran == [3.0]
        assert bulkhead.statistics().rejected == 0

    async def test_cancel_during_acquire(self) -> None:
        """A cancelled waiter leaves the queue; no slot leaks; cancellation is no rejection."""
        bulkhead = Bulkhead(1, max_queue=2)
        ran: list[str] = []

        async def record(label: str) -> None:
            ran.append(label)

        doomed_scope = anyio.CancelScope()

        async def doomed() -> None:
            with doomed_scope:
                await bulkhead.acall(record, "doomed")

        async with anyio.create_task_group() as tg:
            await bulkhead.aacquire()
            tg.start_soon(doomed)
            await until_queued(bulkhead, 1)
            tg.start_soon(bulkhead.acall, record, "second")
            await until_queued(bulkhead, 2)
            doomed_scope.cancel()
            await until_queued(bulkhead, 1)
            bulkhead.release()
        assert ran == ["second"]
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.queued, stats.cancelled, stats.rejected) == (0, 0, 1, 0)

    async def test_cancel_after_handover_passes_the_slot_on(self) -> None:
        """A waiter cancelled after being handed a slot passes it to the next waiter."""
        bulkhead = Bulkhead(1, max_queue=2)
        ran: list[str] = []

        async def record(label: str) -> None:
            ran.append(label)

        async def first() -> None:
            with first_scope:
                await bulkhead.acall(record, "first")

        first_scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            await bulkhead.aacquire()
            tg.start_soon(first)
            await until_queued(bulkhead, 1)
            tg.start_soon(bulkhead.acall, record, "second")
            await until_queued(bulkhead, 2)
            bulkhead.release()  # hands the slot to "first"...
            first_scope.cancel()  # ...which is cancelled before it resumes
        assert "second" in ran
        stats = bulkhead.statistics()
        assert (stats.in_flight, stats.queued) == (0, 0)
        assert stats.admitted + stats.cancelled == 3

    async def test_decorator_and_context_manager(self) -> None:
        """A decorated coroutine function and async with both hold a slot."""
        bulkhead = Bulkhead(1)

        @bulkhead
        async def inside() -> int:
            return bulkhead.statistics().in_flight

        assert await inside() == 1
        async with bulkhead:
            with pytest.raises(BulkheadFullError):
                await inside()
        assert bulkhead.statistics().in_flight == 0


class TestThreadsAndTasks:
    """One instance shared by threads and event loops, handing slots across them."""

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_thread_releases_to_a_task(self, backend: str) -> None:
        """A slot released by a plain thread wakes the task waiting on an event loop."""
        bulkhead = Bulkhead(1, max_queue=1)
        bulkhead.acquire()
        results: list[int] = []

        async def waiter() -> None:
            results.append(await bulkhead.acall(_aone))

        thread = threading.Thread(target=anyio.run, args=(waiter,), kwargs={"backend": backend})
        thread.start()
        spin_until(lambda: bulkhead.statistics().queued == 1)
        bulkhead.release()
        thread.join(SAFETY)
        assert results == [1]
        assert bulkhead.statistics().in_flight == 0

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_task_releases_to_a_thread(self, backend: str) -> None:
        """A slot released by a task hands over to a waiting thread."""
        bulkhead = Bulkhead(1, max_queue=1)
        holding = threading.Event()
        results: list[str] = []

        async def holder() -> None:
            async with bulkhead:
                holding.set()
                await anyio.to_thread.run_sync(
                    spin_until, lambda: bulkhead.statistics().queued == 1
                )

        thread = threading.Thread(target=lambda: results.append(bulkhead.call(str, "t")))
        loop_thread = threading.Thread(
            target=anyio.run, args=(holder,), kwargs={"backend": backend}
        )
        loop_thread.start()
        assert holding.wait(SAFETY)
        thread.start()
        loop_thread.join(SAFETY)
        thread.join(SAFETY)
        assert results == ["t"]
        assert bulkhead.statistics().in_flight == 0


def _lookup(key: str) -> int:
    return {"present": 1}[key]


async def _aone() -> int:
    return 1


class TestStress:
    """Many threads and tasks on both backends at once: the invariants hold."""

    @pytest.mark.parametrize("max_queue", [1000, 4])
    def test_threads_and_both_backends(self, max_queue: int) -> None:
        """Never more than N inside; afterwards nothing held and the counts add up."""
        limit = 3
        bulkhead = Bulkhead(limit, max_queue=max_queue)
        lock = threading.Lock()
        state = {"inside": 0, "peak": 0, "entered": 0, "refused": 0, "cancelled": 0}
        errors: list[BaseException] = []

        def enter() -> None:
            with lock:
                state["inside"] += 1
                state["entered"] += 1
                state["peak"] = max(state["peak"], state["inside"])

        def leave() -> None:
            with lock:
                state["inside"] -= 1

        async def work() -> None:
            enter()
            try:
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
            finally:
                leave()

        def sync_work() -> None:
            enter()
            try:
                sum(range(2000))
            finally:
                leave()

        async def one_task(i: int) -> None:
            try:
                if i % 5 == 0:  # cancelled at its first checkpoint: queued or running
                    with anyio.move_on_after(0) as scope:
                        await bulkhead.acall(work)
                    if scope.cancelled_caught:
                        with lock:
                            state["cancelled"] += 1
                else:
                    await bulkhead.acall(work)
            except BulkheadFullError:
                with lock:
                    state["refused"] += 1

        async def loop_main() -> None:
            async with anyio.create_task_group() as tg:
                for i in range(150):
                    tg.start_soon(one_task, i)

        def run_loop(backend: str) -> None:
            try:
                anyio.run(loop_main, backend=backend)
            except BaseException as exc:
                errors.append(exc)

        def one_call() -> None:
            try:
                bulkhead.call(sync_work)
            except BulkheadFullError:
                with lock:
                    state["refused"] += 1

        def run_threads() -> None:
            for _ in range(60):
                one_call()

        threads = [
            threading.Thread(target=run_loop, args=("asyncio",)),
            threading.Thread(target=run_loop, args=("trio",)),
            *(threading.Thread(target=run_threads) for _ in range(4)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SAFETY * 3)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        stats = bulkhead.statistics()
        total = 2 * 150 + 4 * 60
        assert state["peak"] <= limit
        assert (stats.in_flight, stats.queued, state["inside"]) == (0, 0, 0)
        assert stats.rejected == state["refused"]
        assert stats.admitted == state["entered"]
        assert stats.admitted + stats.rejected + stats.cancelled == total
        assert stats.cancelled <= state["cancelled"]
        if max_queue == 1000:
            assert stats.rejected == 0
