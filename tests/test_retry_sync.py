"""The retrier's sync shell: decorator, call() and the `for` attempt loop."""

from __future__ import annotations

import logging
import random
import sys
import traceback
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

import seawall
from seawall import (
    AttemptEnded,
    AttemptStarted,
    CallEnded,
    CallStarted,
    GiveUpReason,
    Jitter,
    Retrier,
    RetryGaveUp,
    RetryScheduled,
)
from seawall.testing import FakeClock, RecordingHook


if TYPE_CHECKING:
    from collections.abc import Iterator


class Flaky:
    """A callable that raises the queued exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def notes(exc: BaseException) -> list[str]:
    """The notes of *exc* (none before Python 3.11)."""
    return list(getattr(exc, "__notes__", []))


def run_loop(retrier: Retrier, fn: Flaky) -> None:
    """Call *fn* in a sync attempt loop."""
    for attempt in retrier:
        with attempt:
            fn()


@pytest.fixture
def retrier(clock: FakeClock) -> Retrier:
    """A retrier with deterministic delays: 0.1, 0.2, 0.4, ... (no jitter)."""
    return Retrier(max_attempts=3, jitter=Jitter.NONE, clock=clock, name="svc")


class TestRetries:
    """Retrying, giving up, and what propagates."""

    def test_retries_then_succeeds(self, retrier: Retrier, clock: FakeClock) -> None:
        """Two transient failures, then the result, after waits of 0.1 and 0.2 s."""
        fn = Flaky(ConnectionError(), TimeoutError())
        assert retrier.call(fn, 1, key="v") == "ok"
        assert fn.calls == 3
        assert clock.sleeps == [0.1, 0.2]
        assert clock.now() == pytest.approx(0.3)

    def test_seeded_full_jitter_sleeps(self, clock: FakeClock) -> None:
        """With a seeded rng the sleeps are exactly base * draw."""
        retrier = Retrier(max_attempts=4, rng=random.Random(7).random, clock=clock)
        draws = random.Random(7)
        expected = [0.1 * draws.random(), 0.2 * draws.random(), 0.4 * draws.random()]
        with pytest.raises(ConnectionError):
            retrier.call(Flaky(*[ConnectionError() for _ in range(4)]))
        assert clock.sleeps == expected

    def test_gives_up_with_the_same_exception_and_a_note(
        self, retrier: Retrier, clock: FakeClock
    ) -> None:
        """The last exception propagates as it is, with its traceback and a note."""
        errors = [ConnectionError("1"), ConnectionError("2"), ConnectionError("3")]
        with pytest.raises(ConnectionError) as info:
            retrier.call(Flaky(*errors))
        assert info.value is errors[2]
        assert clock.sleeps == [0.1, 0.2]
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert frames[-1] == "__call__"  # Raised in Flaky.__call__: the original frame.
        if sys.version_info >= (3, 11):
            assert notes(info.value) == [
                "seawall: retrier 'svc' gave up after 3 attempts (attempts_exhausted)"
            ]

    def test_non_retryable_raised_at_once(self, retrier: Retrier, clock: FakeClock) -> None:
        """A caller error is not retried and passes through without a note."""
        error = ValueError("bad input")
        fn = Flaky(error)
        with pytest.raises(ValueError, match="bad input") as info:
            retrier.call(fn)
        assert info.value is error
        assert fn.calls == 1
        assert clock.sleeps == []
        assert notes(error) == []

    def test_non_retryable_after_a_retry_gets_a_note(self, retrier: Retrier) -> None:
        """A caller error after a retry says how many attempts were made."""
        error = ValueError("bad")
        with pytest.raises(ValueError, match="bad"):
            retrier.call(Flaky(ConnectionError(), error))
        if sys.version_info >= (3, 11):
            assert notes(error) == [
                "seawall: retrier 'svc' gave up after 2 attempts (not_retryable)"
            ]

    def test_custom_predicate(self, clock: FakeClock) -> None:
        """is_retryable decides what is retried."""
        retrier = Retrier(is_retryable=lambda e: isinstance(e, KeyError), clock=clock)
        with pytest.raises(ConnectionError):
            retrier.call(Flaky(KeyError(), ConnectionError()))
        assert len(clock.sleeps) == 1

    @pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
    def test_keyboard_interrupt_not_retried(
        self, retrier: Retrier, clock: FakeClock, error: BaseException
    ) -> None:
        """KeyboardInterrupt and SystemExit go straight through, uncounted."""
        fn = Flaky(ConnectionError(), error)
        with pytest.raises(type(error)):
            retrier.call(fn)
        assert fn.calls == 2
        assert notes(error) == []
        stats = retrier.statistics()
        assert (stats.gave_up, stats.successes, stats.attempts) == (0, 0, 1)

    def test_zero_delay_never_sleeps(self, clock: FakeClock) -> None:
        """With initial_delay 0 the clock's sleep is never called."""
        retrier = Retrier(max_attempts=5, initial_delay=0, clock=clock)
        fn = Flaky(*[TimeoutError() for _ in range(4)])
        assert retrier.call(fn) == "ok"
        assert fn.calls == 5
        assert clock.sleeps == []

    def test_timedelta_durations(self, clock: FakeClock) -> None:
        """Durations may be timedeltas."""
        retrier = Retrier(
            initial_delay=timedelta(milliseconds=250), jitter=Jitter.NONE, clock=clock
        )
        retrier.call(Flaky(TimeoutError()))
        assert clock.sleeps == [0.25]


class TestRetryOnResult:
    """retry_on_result: results treated as failures."""

    def test_result_retried_then_accepted(self, clock: FakeClock) -> None:
        """A rejected result is retried like a failure."""
        results = iter([None, None, 42])
        retrier = Retrier(retry_on_result=lambda r: r is None, jitter=Jitter.NONE, clock=clock)
        assert retrier.call(lambda: next(results)) == 42
        assert clock.sleeps == [0.1, 0.2]

    def test_last_result_returned_when_attempts_run_out(self, clock: FakeClock) -> None:
        """Giving up on a result returns that last result."""
        results = iter(["a", "b", "c", "d"])
        hook = RecordingHook()
        retrier = Retrier(retry_on_result=lambda _: True, clock=clock, hooks=(hook,))
        assert retrier.call(lambda: next(results)) == "c"
        gave_up = hook.of_type(RetryGaveUp)
        assert gave_up == [RetryGaveUp("retrier", 3, GiveUpReason.ATTEMPTS_EXHAUSTED, None)]
        assert all(e.result_retried for e in hook.of_type(RetryScheduled))

    def test_exception_then_rejected_result(self, clock: FakeClock) -> None:
        """Exceptions and rejected results share the attempt count."""
        outcomes: Iterator[Exception | str] = iter([ConnectionError(), "bad", "good"])

        def fn() -> str:
            outcome = next(outcomes)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        retrier = Retrier(retry_on_result=lambda r: r == "bad", max_attempts=2, clock=clock)
        assert retrier.call(fn) == "bad"


class TestDeadline:
    """The total time budget of a call."""

    def test_gives_up_instead_of_sleeping_past_the_deadline(self, clock: FakeClock) -> None:
        """Sleeps 0.5 and 1.0 fit in 2 s; the next 2.0 s wait would not: give up at once."""
        retrier = Retrier(
            max_attempts=10, initial_delay=0.5, jitter=Jitter.NONE, deadline=2.0, clock=clock
        )
        fn = Flaky(*[TimeoutError() for _ in range(10)])
        with pytest.raises(TimeoutError) as info:
            retrier.call(fn)
        assert clock.sleeps == [0.5, 1.0]
        assert fn.calls == 3
        assert retrier.statistics().gave_up_deadline_exceeded == 1
        if sys.version_info >= (3, 11):
            assert "deadline_exceeded" in notes(info.value)[0]

    def test_time_spent_in_attempts_counts(self, clock: FakeClock) -> None:
        """The deadline covers attempts too, measured on the injected clock."""
        retrier = Retrier(initial_delay=0.5, jitter=Jitter.NONE, deadline=1.0, clock=clock)

        def slow() -> None:
            clock.advance(0.75)
            raise TimeoutError

        with pytest.raises(TimeoutError):
            retrier.call(slow)
        assert clock.sleeps == []


class TestRetryAfter:
    """The server's Retry-After, honoured up to a cap."""

    def test_retry_after_honoured(self, retrier: Retrier, clock: FakeClock) -> None:
        """The wait is the longer of the backoff and the Retry-After."""
        busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=1.5)
        assert retrier.call(Flaky(busy, TimeoutError())) == "ok"
        assert clock.sleeps == [1.5, 0.2]

    def test_retry_after_attribute(self, retrier: Retrier, clock: FakeClock) -> None:
        """Any retryable exception's retry_after attribute is read through classify."""

        class ThrottledError(TimeoutError):
            retry_after = 0.75

        assert retrier.call(Flaky(ThrottledError())) == "ok"
        assert clock.sleeps == [0.75]

    def test_over_cap_gives_up_without_sleeping(self, retrier: Retrier, clock: FakeClock) -> None:
        """Asking for more than max_delay (the default cap) re-raises at once."""
        busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=30.0)
        with pytest.raises(seawall.CircuitOpenError) as info:
            retrier.call(Flaky(busy))
        assert info.value is busy
        assert clock.sleeps == []
        assert retrier.statistics().gave_up_retry_after_over_cap == 1

    def test_explicit_cap(self, clock: FakeClock) -> None:
        """max_retry_after lets a server-driven wait exceed max_delay."""
        retrier = Retrier(max_retry_after=60, clock=clock)
        busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=30.0)
        assert retrier.call(Flaky(busy)) == "ok"
        assert clock.sleeps == [30.0]


class TestBudget:
    """A retry budget shared between retriers."""

    def test_budget_shared_between_two_retriers_stops_retries(self, clock: FakeClock) -> None:
        """Failures through one retrier use up the budget of the other."""
        budget = seawall.RetryBudget(max_tokens=4, token_ratio=0.5)
        first = Retrier(max_attempts=5, initial_delay=0, budget=budget, clock=clock)
        second = Retrier(max_attempts=5, initial_delay=0, budget=budget, clock=clock)
        fn = Flaky(*[TimeoutError() for _ in range(5)])
        with pytest.raises(TimeoutError):
            first.call(fn)  # 4 -> 3 tokens (retry), 3 -> 2 (not above 2: stop).
        assert fn.calls == 2
        assert budget.tokens == 2
        other = Flaky(*[TimeoutError() for _ in range(5)])
        with pytest.raises(TimeoutError):
            second.call(other)  # 2 -> 1: no retry at all.
        assert other.calls == 1
        assert first.statistics().gave_up_budget_exhausted == 1
        assert second.statistics().gave_up_budget_exhausted == 1
        assert budget.statistics().throttled == 2

    def test_non_retryable_failures_take_no_token(self, clock: FakeClock) -> None:
        """Caller errors say nothing about the dependency and leave the budget alone."""
        budget = seawall.RetryBudget()
        retrier = Retrier(budget=budget, clock=clock)
        with pytest.raises(ValueError, match="x"):
            retrier.call(Flaky(ValueError("x")))
        assert budget.tokens == 10

    def test_success_refills(self, clock: FakeClock) -> None:
        """Every successful call gives back token_ratio."""
        budget = seawall.RetryBudget(max_tokens=10, token_ratio=0.25)
        budget.record_failure()
        retrier = Retrier(budget=budget, clock=clock)
        retrier.call(Flaky())
        assert budget.tokens == 9.25


class TestDecorator:
    """@retrier on sync functions."""

    def test_decorated_function_retries(self, retrier: Retrier, clock: FakeClock) -> None:
        """The decorated function is retried with its arguments."""
        seen = []

        @retrier
        def fetch(key: str, *, default: int = 0) -> int:
            seen.append((key, default))
            if len(seen) < 2:
                raise ConnectionError
            return default

        assert fetch("k", default=5) == 5
        assert seen == [("k", 5), ("k", 5)]
        assert clock.sleeps == [0.1]

    def test_keeps_metadata(self, retrier: Retrier) -> None:
        """__name__, __doc__ and __wrapped__ survive decoration."""

        def fetch(key: str) -> str:
            """Fetch a key."""
            return key

        decorated = retrier(fetch)
        assert decorated.__name__ == "fetch"
        assert decorated.__doc__ == "Fetch a key."
        assert decorated.__wrapped__ is fetch  # type: ignore[attr-defined]

    def test_generators_rejected(self, retrier: Retrier) -> None:
        """A generator function cannot be retried as a whole."""

        def gen() -> Iterator[int]:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            retrier(gen)

    def test_not_callable_rejected(self, retrier: Retrier) -> None:
        """Decorating a non-callable is a TypeError naming fn."""
        with pytest.raises(TypeError, match="fn"):
            retrier(42)  # type: ignore[arg-type]

    def test_one_instance_many_functions(self, retrier: Retrier) -> None:
        """One retrier decorates several functions; statistics cover them all."""
        a, b = retrier(Flaky()), retrier(Flaky(TimeoutError()))
        assert (a(), b()) == ("ok", "ok")
        assert retrier.statistics().calls == 2


class TestAttemptLoop:
    """`for attempt in retrier: with attempt: ...`."""

    def test_retries_then_succeeds(self, retrier: Retrier, clock: FakeClock) -> None:
        """Retryable errors are swallowed, the loop sleeps and ends on success."""
        fn = Flaky(ConnectionError(), ConnectionError())
        numbers = []
        for attempt in retrier:
            with attempt:
                numbers.append(attempt.number)
                fn()
        assert numbers == [1, 2, 3]
        assert clock.sleeps == [0.1, 0.2]
        assert retrier.statistics().successes == 1

    def test_gives_up_out_of_the_with_block(self, retrier: Retrier) -> None:
        """On the last attempt the exception propagates out of the loop."""
        error = ConnectionError("last")
        fn = Flaky(ConnectionError(), ConnectionError(), error)
        with pytest.raises(ConnectionError) as info:
            run_loop(retrier, fn)
        assert info.value is error
        assert fn.calls == 3

    def test_non_retryable_propagates_at_once(self, retrier: Retrier, clock: FakeClock) -> None:
        """A caller error leaves the loop on the first attempt."""
        with pytest.raises(ValueError, match="no"):
            run_loop(retrier, Flaky(ValueError("no")))
        assert clock.sleeps == []

    def test_attempt_not_entered_ends_the_loop(self, retrier: Retrier) -> None:
        """An attempt used without `with` counts as a success."""
        assert [a.number for a in retrier] == [1]
        assert retrier.statistics().successes == 1

    def test_loops_are_independent(self, retrier: Retrier) -> None:
        """Each loop has its own state; the retrier has none."""
        outer = iter(retrier)
        inner = iter(retrier)
        first = next(outer)
        assert next(inner).number == 1
        assert first.number == 1
        assert repr(first) == "Attempt(number=1)"
        assert "attempt 1, running" in repr(outer)

    def test_keyboard_interrupt_leaves_the_loop(self, retrier: Retrier) -> None:
        """KeyboardInterrupt in a block is neither swallowed nor counted."""
        with pytest.raises(KeyboardInterrupt):
            run_loop(retrier, Flaky(KeyboardInterrupt()))
        assert retrier.statistics().attempts == 0


class TestHooks:
    """Events reported to hooks."""

    def test_events(self, clock: FakeClock) -> None:
        """A RetryScheduled per retry and a RetryGaveUp when giving up."""
        hook = RecordingHook()
        retrier = Retrier(jitter=Jitter.NONE, hooks=(hook,), clock=clock, name="db")
        errors = [ConnectionError(1), ConnectionError(2), ConnectionError(3)]
        with pytest.raises(ConnectionError):
            retrier.call(Flaky(*errors))
        retry_events = [e for e in hook.events if isinstance(e, RetryScheduled | RetryGaveUp)]
        assert retry_events == [
            RetryScheduled("db", 1, 0.1, errors[0], False),
            RetryScheduled("db", 2, 0.2, errors[1], False),
            RetryGaveUp("db", 3, GiveUpReason.ATTEMPTS_EXHAUSTED, errors[2]),
        ]

    def test_no_event_on_first_try_success(self, clock: FakeClock) -> None:
        """A call that succeeds at once reports only the call and its one attempt."""
        hook = RecordingHook()
        Retrier(hooks=(hook,), clock=clock).call(Flaky())
        assert [type(e) for e in hook.events] == [
            CallStarted,
            AttemptStarted,
            AttemptEnded,
            CallEnded,
        ]

    def test_raising_hook_does_not_break_the_call(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the call and other hooks go on."""
        hook = RecordingHook()

        def broken(event: seawall.Event) -> None:
            raise RuntimeError("hook bug")

        retrier = Retrier(hooks=(broken, hook), clock=clock)
        with caplog.at_level(logging.ERROR, logger="seawall"):
            assert retrier.call(Flaky(TimeoutError())) == "ok"
        assert len(hook.of_type(RetryScheduled)) == 1
        assert "hook bug" in caplog.text
        assert retrier.statistics().successes == 1


class TestStatistics:
    """statistics() and repr."""

    def test_statistics(self, retrier: Retrier) -> None:
        """Counters add up over successes, retries and give-ups."""
        retrier.call(Flaky())
        retrier.call(Flaky(TimeoutError()))
        with pytest.raises(TimeoutError):
            retrier.call(Flaky(*[TimeoutError() for _ in range(3)]))
        with pytest.raises(ValueError, match="v"):
            retrier.call(Flaky(ValueError("v")))
        stats = retrier.statistics()
        assert stats == seawall.RetrierStatistics(
            name="svc",
            calls=4,
            attempts=1 + 2 + 3 + 1,
            retries=1 + 2,
            successes=2,
            gave_up_not_retryable=1,
            gave_up_attempts_exhausted=1,
            gave_up_retry_after_over_cap=0,
            gave_up_deadline_exceeded=0,
            gave_up_budget_exhausted=0,
        )
        assert stats.gave_up == 2
        assert retrier.statistics() == stats  # Reading does not disturb the counters.

    def test_repr(self, clock: FakeClock) -> None:
        """The repr shows the options."""
        retrier = Retrier(name="llm", deadline=30, clock=clock)
        assert repr(retrier) == (
            "Retrier(name='llm', max_attempts=3, initial_delay=0.1, max_delay=5.0, "
            "multiplier=2.0, jitter=Jitter.FULL, deadline=30.0, max_retry_after=None, "
            "budget=None)"
        )
        assert retrier.name == "llm"
        assert retrier.budget is None


class TestValidation:
    """Invalid parameters are refused at construction, naming the parameter."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "name"),
        [
            ({"max_attempts": 0}, ValueError, "max_attempts"),
            ({"max_attempts": "3"}, TypeError, "max_attempts"),
            ({"initial_delay": -0.1}, ValueError, "initial_delay"),
            ({"initial_delay": "1s"}, TypeError, "initial_delay"),
            ({"max_delay": -1}, ValueError, "max_delay"),
            ({"multiplier": 0.9}, ValueError, "multiplier"),
            ({"jitter": None}, TypeError, "jitter"),
            ({"is_retryable": None}, TypeError, "is_retryable"),
            ({"retry_on_result": 3}, TypeError, "retry_on_result"),
            ({"deadline": 0}, ValueError, "deadline"),
            ({"deadline": timedelta(seconds=-1)}, ValueError, "deadline"),
            ({"max_retry_after": -5}, ValueError, "max_retry_after"),
            ({"budget": 10}, TypeError, "budget"),
            ({"rng": 0.5}, TypeError, "rng"),
            ({"hooks": print}, TypeError, "hooks"),
            ({"hooks": (1,)}, TypeError, "hooks"),
            ({"name": ""}, ValueError, "name"),
            ({"name": 1}, TypeError, "name"),
            ({"clock": object()}, TypeError, "clock"),
        ],
    )
    def test_invalid_parameters(
        self, kwargs: dict[str, Any], error: type[Exception], name: str
    ) -> None:
        """Each bad value raises ValueError or TypeError with the parameter's name."""
        with pytest.raises(error, match=name):
            Retrier(**kwargs)

    def test_positional_arguments_refused(self) -> None:
        """Options are keyword-only."""
        with pytest.raises(TypeError):
            Retrier(3)  # type: ignore[call-arg]
