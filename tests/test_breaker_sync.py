"""The circuit breaker's sync shell: call(), the decorator, guard(); all timing on FakeClock."""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import pickle
import traceback
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

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


class BoomError(ConnectionError):
    """A transient failure of the dependency."""


class BadRequestError(Exception):
    """A caller error: the dependency answered 400."""

    status_code = 400


def boom() -> None:
    raise BoomError


def ok(value: int = 1) -> int:
    return value


def keyword_only(*, x: int) -> int:
    return x


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """Read the state through a call, so that mypy does not narrow it between steps."""
    return breaker.state


def make(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("max_failures", 2)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("name", "dep")
    return CircuitBreaker(clock=clock, **kwargs)


def trip_by_failures(breaker: CircuitBreaker, n: int = 2) -> None:
    for _ in range(n):
        with pytest.raises(BoomError):
            breaker.call(boom)


class TestCall:
    def test_call_returns_result(self, clock: FakeClock) -> None:
        """call() passes arguments through and returns the result."""
        breaker = make(clock)
        assert breaker.call(ok, 7) == 7
        assert breaker.call(keyword_only, x=3) == 3
        assert breaker.statistics().successes == 2

    def test_call_reraises_and_counts_failure(self, clock: FakeClock) -> None:
        """A failing call re-raises the original exception and counts it."""
        breaker = make(clock)
        with pytest.raises(BoomError):
            breaker.call(boom)
        stats = breaker.statistics()
        assert (stats.failures, stats.consecutive_failures) == (1, 1)


class TestDecorator:
    def test_decorate_sync_function(self, clock: FakeClock) -> None:
        """@breaker wraps a sync function and keeps its metadata."""
        breaker = make(clock)

        @breaker
        def add(a: int, b: int) -> int:
            """Add."""
            return a + b

        assert add(1, 2) == 3
        assert add.__name__ == "add"
        assert add.__doc__ == "Add."
        assert breaker.statistics().successes == 1

    def test_decorate_method(self, clock: FakeClock) -> None:
        """The wrapper binds as a method like the function it wraps."""
        breaker = make(clock)

        class Client:
            @breaker
            def get(self, value: int) -> int:
                return value

        assert Client().get(4) == 4

    def test_decorate_generator_records_on_finish(self, clock: FakeClock) -> None:
        """A generator's outcome is recorded when it finishes."""
        breaker = make(clock)

        @breaker
        def numbers(n: int) -> Generator[int, None, str]:
            yield from range(n)
            return "done"

        gen = numbers(3)
        assert next(gen) == 0
        assert breaker.statistics().calls_in_flight == 1
        assert list(gen) == [1, 2]
        stats = breaker.statistics()
        assert (stats.successes, stats.calls_in_flight) == (1, 0)

    def test_decorate_generator_failure(self, clock: FakeClock) -> None:
        """A generator that raises counts a failure."""
        breaker = make(clock)

        @breaker
        def broken() -> Generator[int, None, None]:
            yield 1
            raise BoomError

        with pytest.raises(BoomError):
            list(broken())
        assert breaker.statistics().failures == 1

    def test_generator_closed_early_records_nothing(self, clock: FakeClock) -> None:
        """Closing a generator early counts a cancellation and frees the slot."""
        breaker = make(clock, half_open_max=1)
        breaker.trip()
        clock.advance(10)

        @breaker
        def stream() -> Generator[int, None, None]:
            yield from range(10)

        gen = stream()
        next(gen)
        gen.close()
        stats = breaker.statistics()
        assert (stats.cancelled, stats.successes, stats.failures) == (1, 0, 0)
        assert stats.probes_in_flight == 0
        assert list(stream()) == list(range(10))

    def test_generator_forwards_send(self, clock: FakeClock) -> None:
        """send() reaches the wrapped generator."""
        breaker = make(clock)

        @breaker
        def echo() -> Generator[int, int, None]:
            received = yield 0
            yield received * 2

        gen = echo()
        next(gen)
        assert gen.send(21) == 42


class TestGuard:
    def test_guard_records_success_and_failure(self, clock: FakeClock) -> None:
        """with breaker.guard() records the block's outcome and re-raises."""
        breaker = make(clock)
        with breaker.guard():
            pass
        with pytest.raises(BoomError), breaker.guard():
            raise BoomError
        stats = breaker.statistics()
        assert (stats.successes, stats.failures) == (1, 1)

    def test_guard_is_single_use(self, clock: FakeClock) -> None:
        """A guard serves one call; entering it twice raises."""
        breaker = make(clock)
        guard = breaker.guard()
        with guard:
            pass
        with pytest.raises(RuntimeError, match="one call"), guard:
            pass

    def test_guard_rejects_when_open(self, clock: FakeClock) -> None:
        """Entering a guard on an open breaker raises CircuitOpenError."""
        breaker = make(clock)
        breaker.trip()
        with pytest.raises(CircuitOpenError), breaker.guard():
            pytest.fail("the block must not run")


class TestRejection:
    def test_rejection_carries_name_and_retry_after(self, clock: FakeClock) -> None:
        """An open breaker raises CircuitOpenError with its name and retry_after."""
        breaker = make(clock, name="llm")
        trip_by_failures(breaker)
        clock.advance(4)
        calls: list[int] = []
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(calls.append, 1)
        assert calls == []
        assert info.value.primitive_name == "llm"
        assert info.value.retry_after == pytest.approx(6.0)
        assert "llm" in str(info.value)
        assert breaker.statistics().rejections == 1


class TestRecovery:
    def test_timeout_half_open_then_close(self, clock: FakeClock) -> None:
        """After timeout, successful probes close the circuit."""
        breaker = make(clock, half_open_max=1)
        trip_by_failures(breaker)
        assert state_of(breaker) is CircuitState.OPEN
        clock.advance(10)
        assert state_of(breaker) is CircuitState.HALF_OPEN
        assert breaker.call(ok) == 1
        assert state_of(breaker) is CircuitState.CLOSED

    def test_probe_failure_reopens(self, clock: FakeClock) -> None:
        """A failed probe re-opens the circuit for another timeout."""
        breaker = make(clock)
        trip_by_failures(breaker)
        clock.advance(10)
        with pytest.raises(BoomError):
            breaker.call(boom)
        assert state_of(breaker) is CircuitState.OPEN
        assert breaker.statistics().retry_after == pytest.approx(10.0)

    def test_half_open_rejects_beyond_half_open_max(self, clock: FakeClock) -> None:
        """Only half_open_max probes run at once; the rest are rejected."""
        breaker = make(clock, half_open_max=2)
        breaker.trip()
        clock.advance(10)
        with breaker.guard(), breaker.guard():
            with pytest.raises(CircuitOpenError) as info:
                breaker.call(ok)
            assert info.value.retry_after == pytest.approx(1.0)
            assert breaker.statistics().probes_in_flight == 2
        assert state_of(breaker) is CircuitState.CLOSED

    def test_success_threshold(self, clock: FakeClock) -> None:
        """success_threshold probe successes are needed to close."""
        breaker = make(clock, half_open_max=1, success_threshold=3)
        breaker.trip()
        clock.advance(10)
        for _ in range(2):
            breaker.call(ok)
            assert state_of(breaker) is CircuitState.HALF_OPEN
        breaker.call(ok)
        assert state_of(breaker) is CircuitState.CLOSED

    def test_vanished_probe_lease_expires(self, clock: FakeClock) -> None:
        """A probe that never reports stops blocking after probe_timeout."""
        breaker = make(clock, half_open_max=1, probe_timeout=timedelta(seconds=3))
        breaker.trip()
        clock.advance(10)
        guard = breaker.guard()
        guard.__enter__()  # the caller vanishes without __exit__
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
        clock.advance(3)
        assert breaker.call(ok) == 1
        stats = breaker.statistics()
        assert (stats.expired_probes, stats.state) == (1, CircuitState.CLOSED)

    def test_growing_timeout(self, clock: FakeClock) -> None:
        """Repeated trips grow the open duration up to max_timeout; closing resets it."""
        breaker = make(clock, timeout=1, timeout_multiplier=2, max_timeout=3)
        seen = []
        breaker.trip()
        for _ in range(3):
            seen.append(breaker.statistics().open_timeout)
            clock.advance(seen[-1])
            with pytest.raises(BoomError):
                breaker.call(boom)
        assert seen == [1.0, 2.0, 3.0]
        clock.advance(3)
        breaker.call(ok)
        breaker.call(ok)
        breaker.trip()
        assert breaker.statistics().open_timeout == 1.0

    def test_stale_outcome_is_ignored(self, clock: FakeClock) -> None:
        """A call admitted before a reset does not count after it."""
        breaker = make(clock, max_failures=1)

        def reset_then_fail() -> None:
            breaker.reset()
            raise BoomError

        with pytest.raises(BoomError), breaker.guard():
            reset_then_fail()
        stats = breaker.statistics()
        assert (stats.state, stats.ignored_outcomes, stats.failures) == (CircuitState.CLOSED, 1, 0)


class TestFailureModes:
    def test_slow_call_counts_as_failure(self, clock: FakeClock) -> None:
        """A call slower than slow_call_threshold (on the injected clock) fails."""
        breaker = make(clock, max_failures=1, slow_call_threshold=0.5)
        assert breaker.call(clock.sleep, 1.0) is None
        stats = breaker.statistics()
        assert (stats.slow_calls, stats.state) == (1, CircuitState.OPEN)

    def test_rate_mode(self, clock: FakeClock) -> None:
        """The failure rate over the window trips once minimum_calls are in."""
        breaker = make(
            clock,
            max_failures=None,
            failure_rate_threshold=0.5,
            window=CountWindow(4),
            minimum_calls=4,
        )
        breaker.call(ok)
        with contextlib.suppress(BoomError):
            breaker.call(boom)
        breaker.call(ok)
        assert state_of(breaker) is CircuitState.CLOSED
        with pytest.raises(BoomError):
            breaker.call(boom)
        assert state_of(breaker) is CircuitState.OPEN

    def test_result_predicate(self, clock: FakeClock) -> None:
        """is_failure_result counts a returned value as a failure, still returning it."""
        breaker = make(clock, max_failures=1, is_failure_result=lambda r: r is None)
        assert breaker.call(lambda: None) is None
        assert state_of(breaker) is CircuitState.OPEN

    def test_caller_errors_do_not_count(self, clock: FakeClock) -> None:
        """Caller errors (4xx, ValueError) are recorded as successes."""
        breaker = make(clock, max_failures=1)
        for exc in (BadRequestError(), ValueError("bad input")):
            with pytest.raises(type(exc)):
                breaker.call(_raiser(exc))
        stats = breaker.statistics()
        assert (stats.state, stats.successes, stats.failures) == (CircuitState.CLOSED, 2, 0)

    def test_custom_is_failure(self, clock: FakeClock) -> None:
        """is_failure decides which exceptions count."""
        breaker = make(clock, max_failures=1, is_failure=lambda exc: isinstance(exc, KeyError))
        with pytest.raises(BoomError):
            breaker.call(boom)
        assert state_of(breaker) is CircuitState.CLOSED
        with pytest.raises(KeyError):
            breaker.call(_raiser(KeyError("k")))
        assert state_of(breaker) is CircuitState.OPEN

    def test_raising_predicate_counts_failure(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A predicate that raises is logged and the outcome counts as a failure."""

        def broken(_: object) -> bool:
            raise RuntimeError

        breaker = make(clock, max_failures=1, is_failure_result=broken)
        with caplog.at_level(logging.ERROR, logger="seawall"):
            assert breaker.call(ok) == 1
        assert state_of(breaker) is CircuitState.OPEN
        assert "is_failure_result raised" in caplog.text


class TestManualControl:
    def test_trip_reset(self, clock: FakeClock) -> None:
        """trip() opens and reset() closes at once."""
        breaker = make(clock)
        breaker.trip()
        assert state_of(breaker) is CircuitState.OPEN
        breaker.reset()
        assert breaker.call(ok) == 1

    def test_force_open_stays_open(self, clock: FakeClock) -> None:
        """force_open() rejects until reset, whatever the time."""
        breaker = make(clock)
        breaker.force_open()
        clock.advance(1e6)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ok)
        assert info.value.retry_after is None
        breaker.reset()
        assert breaker.call(ok) == 1

    def test_disable_is_metrics_only(self, clock: FakeClock) -> None:
        """disable() admits everything and counts, never rejecting."""
        breaker = make(clock, max_failures=1)
        breaker.disable()
        trip_by_failures(breaker, 5)
        stats = breaker.statistics()
        assert (stats.state, stats.failures, stats.rejections) == (CircuitState.DISABLED, 5, 0)


class TestHooks:
    def test_hooks_receive_events(self, clock: FakeClock) -> None:
        """State changes and rejections reach the hooks in order."""
        hook = RecordingHook()
        breaker = make(clock, hooks=(hook,), half_open_max=1)
        trip_by_failures(breaker)
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
        clock.advance(10)
        breaker.call(ok)
        own = [e for e in hook.events if not isinstance(e, (CallStarted, CallEnded))]
        assert len(hook.of_type(CallStarted)) == len(hook.of_type(CallEnded)) == 4
        assert own == [
            CircuitStateChanged(
                "dep", CircuitState.CLOSED, CircuitState.OPEN, "consecutive_failures", 2
            ),
            CallRejected("dep", CircuitState.OPEN, 10.0),
            CircuitStateChanged(
                "dep", CircuitState.OPEN, CircuitState.HALF_OPEN, "timeout_elapsed", 3
            ),
            CircuitStateChanged(
                "dep", CircuitState.HALF_OPEN, CircuitState.CLOSED, "probes_succeeded", 4
            ),
        ]

    def test_raising_hook_does_not_break_the_call(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the call and the state are unaffected."""

        def bad_hook(_: object) -> None:
            raise RuntimeError("hook bug")

        breaker = make(clock, hooks=(bad_hook,))
        with caplog.at_level(logging.ERROR, logger="seawall"):
            trip_by_failures(breaker)
        assert state_of(breaker) is CircuitState.OPEN
        assert "hook" in caplog.text

    def test_hook_sees_committed_state(self, clock: FakeClock) -> None:
        """A hook may call back into the breaker: the lock is not held."""
        states: list[CircuitState] = []
        breaker: CircuitBreaker

        def hook(event: object) -> None:
            if isinstance(event, CircuitStateChanged):
                states.append(breaker.statistics().state)

        breaker = make(clock, hooks=(hook,))
        breaker.trip()
        assert states == [CircuitState.OPEN]


class TestIntrospection:
    def test_statistics(self, clock: FakeClock) -> None:
        """statistics() is a frozen snapshot whose counts add up."""
        breaker = make(clock, max_failures=3)
        breaker.call(ok)
        trip_by_failures(breaker, 1)
        stats = breaker.statistics()
        assert isinstance(stats, CircuitBreakerStatistics)
        assert stats.calls_admitted == 2 == stats.successes + stats.failures
        assert stats.state is CircuitState.CLOSED
        assert stats.generation == 1
        with pytest.raises(AttributeError):
            stats.failures = 0  # type: ignore[misc]

    def test_repr(self, clock: FakeClock) -> None:
        """The repr shows the name, state and counters."""
        breaker = make(clock)
        text = repr(breaker)
        assert text.startswith("CircuitBreaker(name='dep', state=closed")
        assert "consecutive_failures=0" in text
        assert repr(breaker.guard()) == "<CallGuard ready>"

    def test_defaults(self) -> None:
        """Defaults follow the guide: 5 failures, 30 s, 2 probes."""
        breaker = CircuitBreaker()
        assert breaker.name == "circuit-breaker"
        assert "max_failures=5, timeout=30.0, half_open_max=2" in repr(breaker)

    def test_instantiate_outside_event_loop(self) -> None:
        """A breaker is built at import time, bound to no event loop."""
        assert CircuitBreaker(name="import-time").call(ok) == 1


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "error", "fragment"),
        [
            ({"max_failures": 0}, ValueError, "max_failures"),
            ({"timeout": -1}, ValueError, "timeout"),
            ({"half_open_max": "2"}, TypeError, "half_open_max"),
            ({"failure_rate_threshold": 2}, ValueError, "failure_rate_threshold"),
            ({"name": ""}, ValueError, "name"),
            ({"name": 3}, TypeError, "name"),
            ({"is_failure": 3}, TypeError, "is_failure"),
            ({"is_failure_result": "x"}, TypeError, "is_failure_result"),
            ({"hooks": print}, TypeError, "hooks"),
            ({"clock": object()}, TypeError, "clock"),
        ],
    )
    def test_invalid_parameters(
        self, kwargs: dict[str, Any], error: type[Exception], fragment: str
    ) -> None:
        """Bad parameters raise ValueError/TypeError naming the parameter."""
        with pytest.raises(error, match=fragment):
            CircuitBreaker(**kwargs)


class TestCancellation:
    def test_cancel_during_call(self, clock: FakeClock) -> None:
        """KeyboardInterrupt in a probe counts nothing and frees the slot."""
        breaker = make(clock, half_open_max=1)
        breaker.trip()
        clock.advance(10)

        def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            breaker.call(interrupted)
        stats = breaker.statistics()
        assert (stats.cancelled, stats.failures, stats.probes_in_flight) == (1, 0, 0)
        assert stats.state is CircuitState.HALF_OPEN
        assert breaker.call(ok) == 1


def _raiser(exc: BaseException) -> Any:
    def raise_it() -> None:
        raise exc

    return raise_it


class TestUserPredicateAnswers:
    def test_a_predicate_returning_none_means_not_a_failure(self) -> None:
        """A user is_failure that returns None is read as false, not as cancellation."""
        clock = FakeClock()

        def judge(exc: Exception) -> bool:
            return None  # type: ignore[return-value]

        breaker = seawall.CircuitBreaker(is_failure=judge, clock=clock)

        def boom() -> None:
            raise ConnectionError("down")

        for _ in range(3):
            with pytest.raises(ConnectionError):
                breaker.call(boom)
        stats = breaker.statistics()
        assert (stats.successes, stats.failures, stats.cancelled) == (3, 0, 0)


def old_message(name: str, state: CircuitState, retry_after: float | None) -> str:
    """The rejection message as every earlier version formatted it, at once."""
    wait = "until reset" if retry_after is None else f"retry after {retry_after:.3g} s"
    return f"circuit breaker {name!r} is {state.value}; {wait}"


def refusal(breaker: CircuitBreaker, how: str) -> CircuitOpenError:
    """The error of one rejected call, through *how*: call, the decorator or a guard."""

    def guarded() -> None:
        with breaker.guard():
            pytest.fail("the block must not run")

    attempt = {"call": lambda: breaker.call(ok), "decorator": breaker(ok), "guard": guarded}[how]
    with pytest.raises(CircuitOpenError) as info:
        attempt()
    return info.value


HOW = pytest.mark.parametrize("how", ["call", "decorator", "guard"])


class TestLockFreeRejections:
    """OPEN and FORCED_OPEN refuse without the lock; the error is the one it always was."""

    @HOW
    def test_open_error_is_unchanged(self, clock: FakeClock, how: str) -> None:
        """Name, retry_after, message, args, repr and pickling as the constructor's."""
        breaker = make(clock, name="llm", timeout=7200.0)
        breaker.trip()
        clock.advance(0.25)
        error = refusal(breaker, how)
        assert type(error) is CircuitOpenError
        assert (error.primitive_name, error.retry_after) == ("llm", 7199.75)
        expected = CircuitOpenError(
            old_message("llm", CircuitState.OPEN, 7199.75),
            primitive_name="llm",
            retry_after=7199.75,
        )
        assert str(error) == str(expected) == "circuit breaker 'llm' is open; retry after 7.2e+03 s"
        assert error.args == expected.args
        assert repr(error) == repr(expected)
        for copied in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
            assert type(copied) is CircuitOpenError
            assert (str(copied), copied.primitive_name, copied.retry_after) == (
                str(expected),
                "llm",
                7199.75,
            )
        assert breaker.statistics().rejections == 1

    @pytest.mark.parametrize("read", [str, repr, lambda e: e.args, pickle.dumps])
    def test_message_formatted_by_any_first_read(
        self, clock: FakeClock, read: Callable[[CircuitOpenError], object]
    ) -> None:
        """Whichever reads the message first, every later read agrees."""
        breaker = make(clock, name="db")
        breaker.trip()
        error = refusal(breaker, "call")
        read(error)
        assert error.args == ("circuit breaker 'db' is open; retry after 10 s",)
        assert str(error) == error.args[0]

    def test_message_in_tracebacks_and_assignable_args(self, clock: FakeClock) -> None:
        """Printing an uncaught rejection shows the message; args can be replaced."""
        breaker = make(clock, name="db")
        breaker.trip()
        error = refusal(breaker, "decorator")
        printed = "".join(traceback.format_exception(error))
        assert "CircuitOpenError: circuit breaker 'db' is open; retry after 10 s" in printed
        error.args = ("replaced",)
        assert (str(error), error.args, repr(error)) == (
            "replaced",
            ("replaced",),
            "CircuitOpenError('replaced')",
        )

    @HOW
    def test_forced_open_error_is_unchanged(self, clock: FakeClock, how: str) -> None:
        """FORCED_OPEN: retry_after None and the "until reset" message."""
        breaker = make(clock, name="llm")
        breaker.force_open()
        error = refusal(breaker, how)
        assert error.retry_after is None
        assert error.args == (old_message("llm", CircuitState.FORCED_OPEN, None),)
        assert pickle.loads(pickle.dumps(error)).args == error.args

    def test_half_open_full_error_is_unchanged(self, clock: FakeClock) -> None:
        """HALF_OPEN with every slot taken refuses under the lock, with the same message."""
        breaker = make(clock, name="llm", half_open_max=1)
        breaker.trip()
        clock.advance(10)
        with breaker.guard():
            error = refusal(breaker, "call")
        assert error.retry_after == 1.0
        assert str(error) == old_message("llm", CircuitState.HALF_OPEN, 1.0)

    def test_open_ends_exactly_at_its_time(self, clock: FakeClock) -> None:
        """Just before the open period ends a call is refused; at its end it is a probe."""
        breaker = make(clock, timeout=10.0, half_open_max=1)
        breaker.trip()
        clock.advance(9.5)
        assert refusal(breaker, "call").retry_after == pytest.approx(0.5)
        clock.advance(0.5)
        assert breaker.call(ok) == 1
        stats = breaker.statistics()
        assert (stats.state, stats.rejections, stats.successes) == (CircuitState.CLOSED, 1, 1)

    def test_commands_open_and_close_the_gate(self, clock: FakeClock) -> None:
        """reset, disable, trip and force_open take effect on the very next call."""
        breaker = make(clock)
        breaker.force_open()
        refusal(breaker, "decorator")
        breaker.reset()
        assert breaker.call(ok) == 1
        breaker.trip()
        assert refusal(breaker, "call").retry_after == 10.0
        breaker.disable()
        assert breaker(ok)() == 1
        stats = breaker.statistics()
        assert (stats.calls_admitted, stats.successes, stats.rejections) == (2, 2, 2)

    @pytest.mark.parametrize("state", ["open", "forced_open", "half_open"])
    @HOW
    def test_a_rejection_leaves_no_reference_cycle(
        self, clock: FakeClock, how: str, state: str
    ) -> None:
        """The error is never held by a frame of its own traceback: no garbage to collect."""
        breaker = make(clock, half_open_max=1)
        breaker.trip()
        if state == "forced_open":
            breaker.force_open()
        elif state == "half_open":
            clock.advance(10)
            breaker.guard().__enter__()  # a probe that never reports: every slot taken
        attempt = {"call": lambda: breaker.call(ok), "decorator": breaker(ok)}.get(how)

        def guarded() -> None:
            with breaker.guard():
                pytest.fail("the block must not run")

        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                with contextlib.suppress(CircuitOpenError):
                    (attempt or guarded)()
            assert gc.collect() == 0
        finally:
            gc.enable()
        assert breaker.statistics().rejections == 20

    def test_hooks_still_see_every_rejection(self, clock: FakeClock) -> None:
        """With hooks, rejections go through the lock and each one is reported."""
        hook = RecordingHook()
        breaker = make(clock, hooks=(hook,))
        breaker.trip()
        breaker.force_open()
        for how in ("call", "decorator", "guard"):
            refusal(breaker, how)
        assert (
            hook.of_type(CallRejected) == [CallRejected("dep", CircuitState.FORCED_OPEN, None)] * 3
        )


class TestLockFreeSuccesses:
    """A success in CLOSED with nothing to reset is a bare count, taken without the lock."""

    @HOW
    def test_failure_then_success_resets_the_count(self, clock: FakeClock, how: str) -> None:
        """After a failure the next success goes through the lock and resets the count."""
        breaker = make(clock, max_failures=2)
        for _ in range(3):
            trip_by_failures(breaker, 1)
            assert breaker.statistics().consecutive_failures == 1
            if how == "guard":
                with breaker.guard():
                    pass
            else:
                assert (breaker.call(ok) if how == "call" else breaker(ok)()) == 1
            assert breaker.statistics().consecutive_failures == 0
        stats = breaker.statistics()
        assert (stats.state, stats.successes, stats.failures) == (CircuitState.CLOSED, 3, 3)

    def test_caller_errors_are_successes_lock_free(self, clock: FakeClock) -> None:
        """An exception judged not a failure is recorded as a success."""
        breaker = make(clock)

        def bad_request() -> None:
            raise BadRequestError

        with pytest.raises(BadRequestError):
            breaker(bad_request)()
        assert breaker.statistics().successes == 1

    def test_failing_result_takes_the_lock(self, clock: FakeClock) -> None:
        """A result judged a failure counts as one, on every path."""
        breaker = make(clock, is_failure_result=lambda result: result is None, max_failures=9)
        assert breaker(ok)() == 1
        assert breaker.call(lambda: None) is None
        stats = breaker.statistics()
        assert (stats.successes, stats.failures, stats.consecutive_failures) == (1, 1, 1)

    def test_without_the_gil_every_path_takes_the_lock(
        self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On a free-threaded Python nothing is published, and nothing changes but speed."""
        monkeypatch.setattr("seawall._breaker._shell._always_has_gil", lambda: False)
        breaker = make(clock, name="db")
        core = breaker._core
        assert (core.fast_token, core.quiet_token, core.gate) == (0, 0, None)
        assert breaker.call(ok) == breaker(ok)() == 1
        trip_by_failures(breaker)
        error = refusal(breaker, "call")
        assert str(error) == old_message("db", CircuitState.OPEN, 10.0)
        breaker.force_open()
        assert (core.fast_token, core.quiet_token, core.gate) == (0, 0, None)
        stats = breaker.statistics()
        assert (stats.calls_admitted, stats.successes, stats.failures) == (4, 2, 2)
        assert stats.rejections == 1

    @pytest.mark.parametrize(("flag", "expected"), [(None, True), (0, True), (1, False)])
    def test_only_free_threaded_builds_lack_the_gil(
        self, monkeypatch: pytest.MonkeyPatch, flag: int | None, expected: bool
    ) -> None:
        """From 3.13 the build says (Py_GIL_DISABLED), whatever the GIL's state now."""
        import sysconfig

        from seawall._breaker._shell import _always_has_gil

        monkeypatch.delattr("sys._is_gil_enabled", raising=False)
        assert _always_has_gil() is True
        monkeypatch.setattr("sys._is_gil_enabled", lambda: True, raising=False)
        monkeypatch.setattr(sysconfig, "get_config_var", {"Py_GIL_DISABLED": flag}.get)
        assert _always_has_gil() is expected
