"""Tests of seawall.testing: the virtual clock and the recording hook."""

from __future__ import annotations

import threading
from datetime import timedelta

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import seawall
from seawall._hooks import Event, emit, normalize_hooks
from seawall.testing import FakeClock, RecordingHook


class TestFakeClockSync:
    """The sync face of FakeClock."""

    def test_starts_at_start(self) -> None:
        """now() starts where the constructor says."""
        assert FakeClock().now() == 0.0
        assert FakeClock(12.5).now() == 12.5

    def test_sleep_moves_time_and_records(self) -> None:
        """sleep() jumps virtual time forward and is recorded."""
        clock = FakeClock()
        clock.sleep(1.5)
        clock.sleep(0)
        assert clock.now() == 1.5
        assert clock.sleeps == [1.5, 0]

    def test_advance_moves_time_without_recording(self) -> None:
        """advance() is the test's own jump and is not a sleep."""
        clock = FakeClock()
        clock.advance(3)
        assert clock.now() == 3.0
        assert clock.sleeps == []

    @pytest.mark.parametrize("bad", [-1, float("nan")])
    def test_rejects_bad_durations(self, bad: float) -> None:
        """Negative or NaN durations name the parameter."""
        clock = FakeClock()
        with pytest.raises(ValueError, match="seconds must be >= 0"):
            clock.sleep(bad)
        with pytest.raises(ValueError, match="seconds must be >= 0"):
            clock.advance(bad)

    def test_rejects_non_numbers(self) -> None:
        """A non-number duration is a TypeError naming the parameter."""
        with pytest.raises(TypeError, match="seconds must be a number"):
            FakeClock().sleep("1")  # type: ignore[arg-type]

    def test_rejects_infinite_start(self) -> None:
        """The start time must be finite."""
        with pytest.raises(ValueError, match="start must be a finite"):
            FakeClock(float("inf"))

    def test_threads_sleep_without_losing_time(self) -> None:
        """Concurrent sync sleeps from many threads add up exactly."""
        clock = FakeClock()

        def worker() -> None:
            for _ in range(1000):
                clock.sleep(0.5)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert clock.now() == 8 * 1000 * 0.5
        assert len(clock.sleeps) == 8000

    def test_is_a_clock(self) -> None:
        """FakeClock satisfies the public Clock protocol."""
        assert isinstance(FakeClock(), seawall.Clock)

    def test_repr(self) -> None:
        """repr shows the virtual time."""
        assert repr(FakeClock(2.0)) == (
            "FakeClock(now=2.0, autojump=True, sleeping_tasks=0, pending_callbacks=0)"
        )

    @given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=50))
    def test_time_is_the_sum_of_sleeps(self, durations: list[float]) -> None:
        """Virtual time after sync sleeps is their sum, and never goes backwards."""
        clock = FakeClock()
        previous = clock.now()
        for duration in durations:
            clock.sleep(duration)
            assert clock.now() >= previous
            previous = clock.now()
        assert clock.now() == pytest.approx(sum(durations))


class TestFakeClockCallAt:
    """FakeClock.call_at: callbacks run when virtual time reaches their deadline."""

    def test_fires_at_once_when_due(self) -> None:
        """A deadline already reached runs the callback at once, in the caller's thread."""
        clock = FakeClock(5.0)
        threads: list[int] = []
        clock.call_at(5.0, lambda: threads.append(threading.get_ident()))
        clock.call_at(1.0, lambda: threads.append(threading.get_ident()))
        assert threads == [threading.get_ident()] * 2
        assert clock.now() == 5.0
        assert "pending_callbacks=0" in repr(clock)

    def test_fires_on_advance_in_deadline_order(self) -> None:
        """advance() runs the callbacks now due, earliest first, ties in order."""
        clock = FakeClock()
        fired: list[tuple[str, float]] = []
        for label, deadline in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0), ("d", 9.0)]:

            def record(label: str = label) -> None:
                fired.append((label, clock.now()))

            clock.call_at(deadline, record)
        assert fired == []
        clock.advance(0.5)
        assert fired == []
        clock.advance(2.5)
        assert fired == [("a", 3.0), ("a2", 3.0), ("b", 3.0), ("c", 3.0)]
        assert "pending_callbacks=1" in repr(clock)
        clock.advance(6)
        assert fired[-1] == ("d", 9.0)

    def test_fires_on_sleep(self) -> None:
        """sleep() moves time past deadlines and runs their callbacks."""
        clock = FakeClock()
        fired: list[str] = []
        clock.call_at(2.0, lambda: fired.append("two"))
        clock.call_at(1.0, lambda: fired.append("one"))
        clock.sleep(1.0)
        assert fired == ["one"]
        clock.sleep(5.0)
        assert fired == ["one", "two"]

    def test_fires_once(self) -> None:
        """A callback runs once, however often time moves afterwards."""
        clock = FakeClock()
        fired: list[int] = []
        clock.call_at(1.0, lambda: fired.append(1))
        clock.advance(1)
        clock.advance(1)
        clock.sleep(1)
        assert fired == [1]

    def test_callbacks_run_outside_the_lock(self) -> None:
        """A callback may read the clock and register more callbacks: no deadlock."""
        clock = FakeClock()
        fired: list[tuple[str, float]] = []

        def first() -> None:
            fired.append(("first", clock.now()))
            clock.call_at(clock.now(), lambda: fired.append(("due", clock.now())))
            clock.call_at(4.0, lambda: fired.append(("later", clock.now())))

        clock.call_at(2.0, first)
        done = threading.Event()

        def mover() -> None:
            clock.advance(3)
            done.set()

        thread = threading.Thread(target=mover, daemon=True)
        thread.start()
        thread.join(10)
        assert done.is_set(), "advance() deadlocked in a callback"
        assert fired == [("first", 3.0), ("due", 3.0)]
        clock.sleep(1)
        assert fired[-1] == ("later", 4.0)

    def test_thread_safe_registration(self) -> None:
        """Eight threads register callbacks at once; each runs exactly once."""
        clock = FakeClock()
        fired: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def register(worker: int) -> None:
            barrier.wait(10)
            for i in range(200):

                def callback(n: int = worker * 1000 + i) -> None:
                    with lock:
                        fired.append(n)

                clock.call_at(1.0 + i % 7, callback)

        threads = [threading.Thread(target=register, args=(w,), daemon=True) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads)
        assert "pending_callbacks=1600" in repr(clock)
        clock.advance(10)
        assert sorted(fired) == sorted(w * 1000 + i for w in range(8) for i in range(200))

    def test_concurrent_time_movers_fire_each_callback_once(self) -> None:
        """Threads sleeping on the clock at once share the due callbacks, none twice."""
        clock = FakeClock()
        fired: list[int] = []
        lock = threading.Lock()
        for n in range(500):

            def callback(n: int = n) -> None:
                with lock:
                    fired.append(n)

            clock.call_at(0.01 * (n + 1), callback)

        def mover() -> None:
            for _ in range(100):
                clock.sleep(0.01)

        threads = [threading.Thread(target=mover, daemon=True) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads)
        assert sorted(fired) == list(range(500))


class TestSyncDeadlinesOnFakeClock:
    """Regressions: sync deadlines on FakeClock fire only when virtual time moves."""

    def test_instant_timeout_calls_never_time_out(self) -> None:
        """2000 instant calls under a 5 s timeout: no timeout, no virtual time spent."""
        clock = FakeClock()
        timeout = seawall.Timeout(5, clock=clock)
        try:
            for _ in range(2000):
                assert timeout.call(lambda: 1) == 1
        finally:
            timeout.close()
        assert timeout.statistics().timeouts == 0
        assert clock.now() == 0

    def test_instant_hedged_calls_launch_no_hedge(self) -> None:
        """500 instant sync hedged calls: no hedge, no virtual time spent."""
        clock = FakeClock()
        hook = RecordingHook()
        hedger = seawall.Hedger(delay=1, clock=clock, hooks=(hook,))
        try:
            for _ in range(500):
                assert hedger.call(lambda: 1) == 1
        finally:
            hedger.close()
        assert hook.of_type(seawall.HedgeLaunched) == []
        assert hedger.statistics().hedges_launched == 0
        assert clock.now() == 0


@pytest.mark.anyio
class TestFakeClockAsync:
    """The async face of FakeClock, on asyncio and trio."""

    async def test_autojump_runs_call_at_callbacks(self, clock: FakeClock) -> None:
        """An asleep autojump past a deadline runs its callback, in deadline order."""
        fired: list[tuple[str, float]] = []
        clock.call_at(3.0, lambda: fired.append(("three", clock.now())))
        clock.call_at(1.0, lambda: fired.append(("one", clock.now())))
        await clock.asleep(2)
        assert fired == [("one", 2.0)]
        await clock.asleep(5)
        assert fired == [("one", 2.0), ("three", 7.0)]

    async def test_single_sleep_jumps(self, clock: FakeClock) -> None:
        """A lone sleeper moves time to its deadline at once."""
        await clock.asleep(10)
        assert clock.now() == 10
        assert clock.sleeps == [10]

    async def test_zero_sleep_is_a_checkpoint(self, clock: FakeClock) -> None:
        """asleep(0) does not move time but still yields to the scheduler."""
        with anyio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(anyio.get_cancelled_exc_class()):
                await clock.asleep(0)
        assert clock.now() == 0

    async def test_sleepers_wake_in_deadline_order(self, clock: FakeClock) -> None:
        """Concurrent sleepers wake earliest first, each seeing its own deadline."""
        woke: list[tuple[str, float]] = []

        async def sleeper(label: str, seconds: float) -> None:
            await clock.asleep(seconds)
            woke.append((label, clock.now()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, "c", 3.0)
            tg.start_soon(sleeper, "a", 1.0)
            tg.start_soon(sleeper, "b", 2.0)
            tg.start_soon(sleeper, "a2", 1.0)
        # trio starts tasks in no fixed order, so equal deadlines may wake either way.
        assert sorted(woke[:2]) == [("a", 1.0), ("a2", 1.0)]
        assert woke[2:] == [("b", 2.0), ("c", 3.0)]

    async def test_chained_sleeps_accumulate(self, clock: FakeClock) -> None:
        """Tasks that sleep repeatedly interleave on one virtual timeline."""
        log: list[tuple[str, float]] = []

        async def ticker(label: str, period: float, count: int) -> None:
            for _ in range(count):
                await clock.asleep(period)
                log.append((label, clock.now()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, "fast", 1.0, 4)
            tg.start_soon(ticker, "slow", 1.5, 2)
        times = [t for _, t in log]
        assert times == sorted(times)
        assert ("slow", 3.0) in log
        assert ("fast", 4.0) in log
        assert clock.now() == 4.0

    async def test_time_waits_for_busy_tasks(self, clock: FakeClock) -> None:
        """Time does not jump while another task can still run."""
        seen: list[float] = []

        async def busy() -> None:
            for _ in range(100):
                seen.append(clock.now())
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            tg.start_soon(clock.asleep, 5.0)
        assert seen == [0.0] * 100
        assert clock.now() == 5.0

    async def test_cancelled_sleeper_leaves_nothing(self, clock: FakeClock) -> None:
        """A cancelled sleeper is forgotten and does not hold time back."""
        with anyio.move_on_after(0) as scope:
            await clock.asleep(100)
        assert scope.cancelled_caught
        assert "sleeping_tasks=0" in repr(clock)
        await clock.asleep(1)
        assert clock.now() == 1

    async def test_cancelling_the_driver_hands_over(self, clock: FakeClock) -> None:
        """When the task driving the clock is cancelled, another sleeper takes over."""
        done: list[float] = []

        async def long_sleeper() -> None:
            await clock.asleep(5)
            done.append(clock.now())

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(long_sleeper)
                await anyio.lowlevel.checkpoint()
                scope.cancel()
                await clock.asleep(1)
        assert done == [5]

    async def test_manual_mode_waits_for_advance(self) -> None:
        """With autojump off, only advance() wakes sleepers."""
        clock = FakeClock(autojump=False)
        woke: list[float] = []

        async def sleeper() -> None:
            await clock.asleep(2)
            woke.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            assert woke == []
            clock.advance(1)
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            assert woke == []
            clock.advance(1)
        assert woke == [2]

    async def test_many_tasks(self, clock: FakeClock) -> None:
        """A thousand sleepers wake in deadline order on one timeline."""
        woke: list[float] = []

        async def sleeper(seconds: float) -> None:
            await clock.asleep(seconds)
            woke.append(clock.now())

        async with anyio.create_task_group() as tg:
            for i in range(1000):
                tg.start_soon(sleeper, (i * 7919 % 1000) / 100)
        assert woke == sorted(woke)
        assert len(woke) == 1000
        assert clock.now() == 9.99


class TestRecordingHook:
    """RecordingHook and the hook dispatcher."""

    def test_records_and_filters(self) -> None:
        """Events are kept in order and can be filtered by type."""
        hook = RecordingHook()
        first, second = Event(name="a"), Event(name="b")
        emit((hook,), first)
        emit((hook,), second)
        assert hook.events == [first, second]
        assert hook.of_type(Event) == [first, second]
        assert repr(hook) == "RecordingHook(events=2)"
        hook.clear()
        assert hook.events == []

    def test_raising_hook_is_logged_not_raised(self, caplog: pytest.LogCaptureFixture) -> None:
        """A hook that raises is logged with its traceback; later hooks still run."""
        after = RecordingHook()

        def broken(event: Event) -> None:
            raise RuntimeError("hook bug")

        emit((broken, after), Event(name="x"))
        assert after.events == [Event(name="x")]
        assert "hook bug" in caplog.text
        assert caplog.records[0].name == "seawall"

    def test_normalize_hooks(self) -> None:
        """Hooks are validated and frozen into a tuple."""
        hook = RecordingHook()
        assert normalize_hooks(None) == ()
        assert normalize_hooks([hook]) == (hook,)
        with pytest.raises(TypeError, match="not a single callable"):
            normalize_hooks(hook)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"hooks\[1\] must be callable"):
            normalize_hooks([hook, 3])  # type: ignore[list-item]


class TestValidate:
    """The shared argument checks."""

    def test_durations(self) -> None:
        """Durations accept numbers and timedeltas and name the parameter when wrong."""
        from seawall._validate import to_seconds

        assert to_seconds("timeout", timedelta(milliseconds=250)) == 0.25
        assert to_seconds("timeout", 2) == 2.0
        with pytest.raises(ValueError, match="timeout must be > 0"):
            to_seconds("timeout", 0, allow_zero=False)
        with pytest.raises(ValueError, match="delay must be >= 0"):
            to_seconds("delay", -1)
        with pytest.raises(TypeError, match="delay must be a number of seconds"):
            to_seconds("delay", "1")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="delay must be a number of seconds"):
            to_seconds("delay", True)

    def test_ints_and_fractions(self) -> None:
        """Integer and fraction checks name the parameter."""
        from seawall._validate import check_fraction, check_positive_int

        assert check_positive_int("n", 3) == 3
        with pytest.raises(ValueError, match="n must be >= 1"):
            check_positive_int("n", 0)
        with pytest.raises(TypeError, match="n must be an int"):
            check_positive_int("n", 1.5)  # type: ignore[arg-type]
        assert check_fraction("rate", 0.5) == 0.5
        assert check_fraction("rate", 0, allow_zero=True) == 0.0
        with pytest.raises(ValueError, match=r"rate must be in \(0, 1\]"):
            check_fraction("rate", 0)
        with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
            check_fraction("rate", 1.5, allow_zero=True)
        with pytest.raises(TypeError, match="rate must be a number"):
            check_fraction("rate", "x")  # type: ignore[arg-type]


class TestSystemClock:
    """The real clock, checked without waiting on it."""

    def test_is_monotonic_and_a_clock(self) -> None:
        """SystemClock reads a non-decreasing time and satisfies Clock."""
        clock = seawall.SystemClock()
        first = clock.now()
        assert clock.now() >= first
        assert isinstance(clock, seawall.Clock)
        assert repr(clock) == "SystemClock()"

    def test_resolve_clock(self) -> None:
        """None means the system clock; a non-clock is a TypeError naming the parameter."""
        from seawall._clock import SYSTEM_CLOCK, resolve_clock

        assert resolve_clock(None) is SYSTEM_CLOCK
        fake = FakeClock()
        assert resolve_clock(fake) is fake
        with pytest.raises(TypeError, match="clock must provide"):
            resolve_clock(object())  # type: ignore[arg-type]

    @pytest.mark.anyio
    async def test_zero_async_sleep(self, anyio_backend: str) -> None:
        """A zero-second async sleep on the real clock is still a checkpoint."""
        with anyio.CancelScope() as scope:
            scope.cancel()
            await seawall.SystemClock().asleep(0)
        assert scope.cancelled_caught


class TestSharedHelpers:
    """Helpers shared by every primitive: names, callables, waiting until a deadline."""

    def test_check_name(self) -> None:
        """A name must be a non-empty str, and the error says so."""
        from seawall._validate import check_name

        assert check_name("db") == "db"
        with pytest.raises(TypeError, match="name must be a str"):
            check_name(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="name must not be empty"):
            check_name("")

    def test_every_primitive_checks_its_name(self) -> None:
        """Each primitive refuses an empty name, naming the parameter."""
        for build in (
            lambda: seawall.CircuitBreaker(name=""),
            lambda: seawall.Retrier(name=""),
            lambda: seawall.Hedger(name=""),
            lambda: seawall.RateLimiter(rate=1, burst=1, name=""),
            lambda: seawall.KeyedRateLimiter(rate=1, burst=1, name=""),
            lambda: seawall.LLMRateLimiter(requests_per_minute=1, tokens_per_minute=1, name=""),
        ):
            with pytest.raises(ValueError, match="name must not be empty"):
                build()

    def test_is_async_callable(self) -> None:
        """Coroutine functions and instances with an async __call__ are async; classes are not."""
        from seawall._validate import is_async_callable

        async def coroutine_function() -> None:
            return None

        class AsyncCallable:
            async def __call__(self) -> None:
                return None

        assert is_async_callable(coroutine_function)
        assert is_async_callable(AsyncCallable())
        assert not is_async_callable(AsyncCallable)
        assert not is_async_callable(len)

    def test_sleep_until_sleeps_the_remainder(self) -> None:
        """sleep_until sleeps exactly what is left, and not at all when it is late."""
        from seawall._clock import sleep_until

        clock = FakeClock(1.0)
        sleep_until(clock, 3.5)
        sleep_until(clock, 2.0)
        assert clock.sleeps == [2.5]
        assert clock.now() == 3.5

    @pytest.mark.anyio
    async def test_asleep_until_sleeps_the_remainder(self, clock: FakeClock) -> None:
        """asleep_until sleeps exactly what is left, within the slack."""
        from seawall._clock import asleep_until

        await asleep_until(clock, 2.0)
        await asleep_until(clock, 2.0 + 1e-12, slack=1e-9)
        assert clock.sleeps == [2.0]


class TestErrors:
    """The exception tree."""

    def test_everything_derives_from_one_root(self) -> None:
        """Every seawall error is a ResilienceError; rejections carry their fields."""
        rejections = (
            seawall.CircuitOpenError,
            seawall.RateLimitedError,
            seawall.BulkheadFullError,
            seawall.WouldBlock,
        )
        for kind in rejections:
            error = kind("no", primitive_name="p", retry_after=1.5)
            assert isinstance(error, seawall.RejectedError)
            assert isinstance(error, seawall.ResilienceError)
            assert (error.primitive_name, error.retry_after) == ("p", 1.5)

    def test_errors_survive_pickling(self) -> None:
        """Errors keep their fields across processes."""
        import pickle

        rejected = pickle.loads(
            pickle.dumps(seawall.CircuitOpenError("open", primitive_name="db", retry_after=2.0))
        )
        assert (str(rejected), rejected.primitive_name, rejected.retry_after) == ("open", "db", 2.0)
        timed_out = pickle.loads(
            pickle.dumps(seawall.CallTimeoutError("slow", primitive_name="t", timeout=1.5))
        )
        assert (str(timed_out), timed_out.primitive_name, timed_out.timeout) == ("slow", "t", 1.5)

    def test_timeout_error_is_a_builtin_timeout_and_transient(self) -> None:
        """CallTimeoutError is caught as TimeoutError and classified transient."""
        error = seawall.CallTimeoutError("slow", primitive_name="t", timeout=1.0)
        assert isinstance(error, TimeoutError)
        assert isinstance(error, seawall.ResilienceError)
        assert seawall.is_retryable(error)
