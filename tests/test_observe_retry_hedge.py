"""Call and attempt events of the retrier and the hedger (issue 5).

Sequences are compared through `shape`, which turns events into plain tuples (durations
rounded, cancellation exceptions named) so that a whole sequence fits in one
assertion; `check_pairs` then checks that every start has exactly one end holding that
very start event. `Tracer` is a tracing hook in miniature: it makes a "span" current in
a context variable from each start to its end, as an OpenTelemetry hook would, and
records the span that was current when each one started, so tests can check which
context each event is reported in.
"""

from __future__ import annotations

import contextvars
import random
import threading
from collections import defaultdict
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import (
    AttemptEnded,
    AttemptKind,
    AttemptStarted,
    CallEnded,
    CallStarted,
    GiveUpReason,
    HedgeLaunched,
    Hedger,
    HedgeReason,
    HedgeWon,
    Jitter,
    Outcome,
    Retrier,
    RetryGaveUp,
    RetryScheduled,
)
from seawall.testing import FakeClock, RecordingHook


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Sequence


# Bound on waiting for a worker thread: a safety net, never reached.
SAFETY = 10.0

ORIGINAL, RETRY, HEDGE = AttemptKind.ORIGINAL, AttemptKind.RETRY, AttemptKind.HEDGE
SUCCESS, FAILURE, REJECTED, CANCELLED = (
    Outcome.SUCCESS,
    Outcome.FAILURE,
    Outcome.REJECTED,
    Outcome.CANCELLED,
)

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("CURRENT", default="root")
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("TENANT", default="none")
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("CALLER", default="?")

Shape = tuple[object, ...]


def exc_shape(exc: BaseException | None) -> object:
    """An exception as compared in shapes: itself, or a name for cancellation and exits."""
    if exc is None or isinstance(exc, Exception):
        return exc
    if type(exc).__name__ in {"CancelledError", "Cancelled"}:
        return "<cancelled>"
    return f"<{type(exc).__name__}>"


def shape(events: Iterable[seawall.Event]) -> list[Shape]:
    """The events as tuples: kind first, then the fields worth comparing."""
    out: list[Shape] = []
    for e in events:
        if isinstance(e, CallStarted):
            out.append(("call", e.name, e.primitive, e.stream))
        elif isinstance(e, CallEnded):
            out.append(("call_end", e.outcome, exc_shape(e.exception), round(e.duration, 9)))
        elif isinstance(e, AttemptStarted):
            out.append(("attempt", e.attempt, e.kind))
        elif isinstance(e, AttemptEnded):
            out.append(
                (
                    "attempt_end",
                    e.started.attempt,
                    e.outcome,
                    exc_shape(e.exception),
                    round(e.duration, 9),
                )
            )
        elif isinstance(e, RetryScheduled):
            out.append(("retry", e.attempt, round(e.delay, 9), e.exception, e.result_retried))
        elif isinstance(e, RetryGaveUp):
            out.append(("gave_up", e.attempts, e.reason, exc_shape(e.exception)))
        elif isinstance(e, HedgeLaunched):
            out.append(("launched", e.attempt, e.reason))
        elif isinstance(e, HedgeWon):
            out.append(("won", e.attempt, e.hedged, round(e.latency, 9)))
        else:  # pragma: no cover - only the events above are expected
            out.append(("other", e))
    return out


def check_pairs(events: Sequence[seawall.Event], name: str, primitive: str) -> None:
    """Every start has exactly one later end, holding that very start event."""
    still_open: dict[int, seawall.Event] = {}
    for event in events:
        assert event.name == name
        if isinstance(event, CallStarted | AttemptStarted):
            assert event.primitive == primitive
            assert id(event) not in still_open
            still_open[id(event)] = event
        elif isinstance(event, CallEnded | AttemptEnded):
            assert still_open.pop(id(event.started)) is event.started
    assert still_open == {}


class Tracer:
    """A tracing hook in miniature: a "span" is current in CURRENT from start to end.

    ``parents`` maps each span ("call", "attempt <n>") to the span current when it
    started; ``threads`` maps each event to the thread that reported it; ``errors``
    keeps what failed (resetting a token from another context raises ValueError).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[seawall.Event] = []
        self.tokens: dict[int, contextvars.Token[str]] = {}
        self.parents: dict[str, str] = {}
        self.threads: dict[int, int] = {}
        self.errors: list[BaseException] = []

    def __call__(self, event: seawall.Event) -> None:
        with self.lock:
            self.events.append(event)
            self.threads[id(event)] = threading.get_ident()
        try:
            if isinstance(event, CallStarted | AttemptStarted):
                label = "call" if isinstance(event, CallStarted) else f"attempt {event.attempt}"
                self.parents[label] = CURRENT.get()
                self.tokens[id(event)] = CURRENT.set(label)
            elif isinstance(event, CallEnded | AttemptEnded):
                CURRENT.reset(self.tokens.pop(id(event.started)))
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def of_type(self, kind: type[Any]) -> list[Any]:
        """The recorded events of *kind*, in order."""
        return [event for event in self.events if isinstance(event, kind)]


class Work:
    """A sync or async callable taking ``took`` virtual seconds per call.

    Each call raises or returns the next of *outcomes* (an exception is raised,
    anything else returned), then ``"ok"`` once they run out. ``seen`` records the
    span current (CURRENT) inside each call.
    """

    def __init__(
        self, clock: FakeClock, outcomes: Iterable[object] = (), took: float = 0.5
    ) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.took = took
        self.seen: list[str] = []

    def _next(self) -> object:
        self.seen.append(CURRENT.get())
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def __call__(self) -> object:
        if self.took:
            self.clock.sleep(self.took)
        return self._next()

    async def arun(self) -> object:
        """The async flavour of a call."""
        if self.took:
            await self.clock.asleep(self.took)
        else:
            await anyio.lowlevel.checkpoint()
        return self._next()


# -- retrier scenarios ------------------------------------------------------------------


@dataclass
class Scenario:
    """A retried call: the retrier's options, the attempts' outcomes, what to expect."""

    options: dict[str, Any]
    outcomes: list[object]
    expected: list[Shape]
    returns: object = "ok"  # or the exception the call raises
    loop: bool = True  # whether an attempt loop can run it (no retry_on_result)
    seen: list[str] = field(default_factory=list)


def success_after_failures() -> Scenario:
    """Two retryable failures, then a result."""
    e0, e1 = ConnectionError("0"), ConnectionError("1")
    return Scenario(
        {},
        [e0, e1],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, FAILURE, e0, 0.5),
            ("retry", 1, 0.1, e0, False),
            ("attempt", 2, RETRY),
            ("attempt_end", 2, FAILURE, e1, 0.5),
            ("retry", 2, 0.2, e1, False),
            ("attempt", 3, RETRY),
            ("attempt_end", 3, SUCCESS, None, 0.5),
            ("call_end", SUCCESS, None, 1.8),
        ],
    )


def attempts_exhausted() -> Scenario:
    """Three retryable failures: the retrier gives up and the last one propagates."""
    errors = [ConnectionError(str(n)) for n in range(3)]
    return Scenario(
        {},
        list(errors),
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, FAILURE, errors[0], 0.5),
            ("retry", 1, 0.1, errors[0], False),
            ("attempt", 2, RETRY),
            ("attempt_end", 2, FAILURE, errors[1], 0.5),
            ("retry", 2, 0.2, errors[1], False),
            ("attempt", 3, RETRY),
            ("attempt_end", 3, FAILURE, errors[2], 0.5),
            ("gave_up", 3, GiveUpReason.ATTEMPTS_EXHAUSTED, errors[2]),
            ("call_end", FAILURE, errors[2], 1.8),
        ],
        returns=errors[2],
    )


def not_retryable() -> Scenario:
    """A caller error: one attempt, then RetryGaveUp and the call's end."""
    error = ValueError("bad request")
    return Scenario(
        {},
        [error],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, FAILURE, error, 0.5),
            ("gave_up", 1, GiveUpReason.NOT_RETRYABLE, error),
            ("call_end", FAILURE, error, 0.5),
        ],
        returns=error,
    )


def retry_after() -> Scenario:
    """A rejection with Retry-After 1.5 s: the wait honours it; the attempt is REJECTED."""
    busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=1.5)
    return Scenario(
        {},
        [busy],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, REJECTED, busy, 0.5),
            ("retry", 1, 1.5, busy, False),
            ("attempt", 2, RETRY),
            ("attempt_end", 2, SUCCESS, None, 0.5),
            ("call_end", SUCCESS, None, 2.5),
        ],
    )


def retry_after_over_cap() -> Scenario:
    """A Retry-After above the cap: the retrier gives up at once."""
    busy = seawall.CircuitOpenError("open", primitive_name="b", retry_after=30.0)
    return Scenario(
        {},
        [busy],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, REJECTED, busy, 0.5),
            ("gave_up", 1, GiveUpReason.RETRY_AFTER_OVER_CAP, busy),
            ("call_end", REJECTED, busy, 0.5),
        ],
        returns=busy,
    )


def budget_refusal() -> Scenario:
    """A budget of 4 tokens allows one retry; the second failure is refused a retry."""
    errors = [ConnectionError(str(n)) for n in range(5)]
    return Scenario(
        {
            "max_attempts": 5,
            "initial_delay": 0,
            "budget": seawall.RetryBudget(max_tokens=4, token_ratio=0.5),
        },
        list(errors),
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, FAILURE, errors[0], 0.5),
            ("retry", 1, 0.0, errors[0], False),
            ("attempt", 2, RETRY),
            ("attempt_end", 2, FAILURE, errors[1], 0.5),
            ("gave_up", 2, GiveUpReason.BUDGET_EXHAUSTED, errors[1]),
            ("call_end", FAILURE, errors[1], 1.0),
        ],
        returns=errors[1],
    )


def result_rejected() -> Scenario:
    """A result rejected by retry_on_result: the attempt still ended SUCCESS."""
    return Scenario(
        {"retry_on_result": lambda result: result == "busy"},
        ["busy"],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, SUCCESS, None, 0.5),
            ("retry", 1, 0.1, None, True),
            ("attempt", 2, RETRY),
            ("attempt_end", 2, SUCCESS, None, 0.5),
            ("call_end", SUCCESS, None, 1.1),
        ],
        loop=False,
    )


def gave_up_on_result() -> Scenario:
    """Every result rejected: the last one is returned, and the call ends SUCCESS."""
    return Scenario(
        {"retry_on_result": lambda result: result == "busy", "max_attempts": 2},
        ["busy", "busy"],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, SUCCESS, None, 0.5),
            ("retry", 1, 0.1, None, True),
            ("attempt", 2, RETRY),
            ("attempt_end", 2, SUCCESS, None, 0.5),
            ("gave_up", 2, GiveUpReason.ATTEMPTS_EXHAUSTED, None),
            ("call_end", SUCCESS, None, 1.1),
        ],
        returns="busy",
        loop=False,
    )


def interrupted() -> Scenario:
    """KeyboardInterrupt in an attempt: it and the call end CANCELLED, no give-up."""
    interrupt = KeyboardInterrupt()
    return Scenario(
        {},
        [interrupt],
        [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, CANCELLED, "<KeyboardInterrupt>", 0.5),
            ("call_end", CANCELLED, "<KeyboardInterrupt>", 0.5),
        ],
        returns=interrupt,
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "success_after_failures": success_after_failures,
    "attempts_exhausted": attempts_exhausted,
    "not_retryable": not_retryable,
    "retry_after": retry_after,
    "retry_after_over_cap": retry_after_over_cap,
    "budget_refusal": budget_refusal,
    "result_rejected": result_rejected,
    "gave_up_on_result": gave_up_on_result,
    "interrupted": interrupted,
}
LOOP_SCENARIOS = [name for name in SCENARIOS if SCENARIOS[name]().loop]


def make_retrier(scenario: Scenario, clock: FakeClock, hook: seawall.Hook) -> Retrier:
    """The scenario's retrier: deterministic delays 0.1, 0.2, ... unless overridden."""
    options: dict[str, Any] = {"jitter": Jitter.NONE, "name": "db", **scenario.options}
    return Retrier(clock=clock, hooks=(hook,), **options)


def without_call_events(expected: list[Shape]) -> list[Shape]:
    """*expected* as an attempt loop reports it: no call pair."""
    return [item for item in expected if item[0] not in {"call", "call_end"}]


class TestRetrierSync:
    """Retrier.call, the sync decorator and the sync attempt loop."""

    @pytest.mark.parametrize("how", ["call", "decorator"])
    @pytest.mark.parametrize("name", list(SCENARIOS))
    def test_event_sequence(self, name: str, how: str, clock: FakeClock) -> None:
        """The whole sequence, paired, in the caller's thread and the call's span."""
        scenario = SCENARIOS[name]()
        tracer = Tracer()
        retrier = make_retrier(scenario, clock, tracer)
        work = Work(clock, scenario.outcomes)
        run: Callable[[], object] = (lambda: retrier.call(work)) if how == "call" else retrier(work)
        if isinstance(scenario.returns, BaseException):
            with pytest.raises(type(scenario.returns)) as info:
                run()
            assert info.value is scenario.returns
        else:
            assert run() == scenario.returns
        assert shape(tracer.events) == scenario.expected
        check_pairs(tracer.events, "db", "retry")
        assert set(tracer.threads.values()) == {threading.get_ident()}
        attempts = [f"attempt {n}" for n in range(1, len(work.seen) + 1)]
        assert work.seen == attempts  # each attempt ran inside its own span
        assert tracer.parents == {"call": "root"} | dict.fromkeys(attempts, "call")
        assert tracer.errors == []
        assert CURRENT.get() == "root"

    @pytest.mark.parametrize("name", LOOP_SCENARIOS)
    def test_attempt_loop(self, name: str, clock: FakeClock) -> None:
        """Each with-attempt block is an attempt; the loop reports no call."""
        scenario = SCENARIOS[name]()
        hook = RecordingHook()
        retrier = make_retrier(scenario, clock, hook)
        work = Work(clock, scenario.outcomes)

        def loop() -> None:
            for attempt in retrier:
                with attempt:
                    work()

        if isinstance(scenario.returns, BaseException):
            with pytest.raises(type(scenario.returns)):
                loop()
        else:
            loop()
        assert shape(hook.events) == without_call_events(scenario.expected)
        check_pairs(hook.events, "db", "retry")

    def test_attempt_loop_left_by_break_leaves_no_attempt_open(self, clock: FakeClock) -> None:
        """A break after a swallowed failure: the attempt had already ended."""
        hook = RecordingHook()
        retrier = Retrier(jitter=Jitter.NONE, clock=clock, hooks=(hook,), name="db")
        error = ConnectionError()
        for attempt in retrier:
            with attempt:
                raise error
            break  # pragma: no branch - the block swallowed the failure
        assert shape(hook.events) == [
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, FAILURE, error, 0.0),
            ("retry", 1, 0.1, error, False),
        ]
        check_pairs(hook.events, "db", "retry")

    def test_attempt_never_entered_reports_nothing(self, clock: FakeClock) -> None:
        """An attempt never entered, or entered again, reports no attempt."""
        hook = RecordingHook()
        retrier = Retrier(clock=clock, hooks=(hook,), name="db")
        for _ in retrier:
            pass
        assert hook.events == []
        loop = iter(retrier)
        first = next(loop)
        with first:
            pass
        with first:  # the loop is done: not a new attempt
            pass
        assert shape(hook.events) == [
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, SUCCESS, None, 0.0),
        ]

    def test_decorated_function_reports_each_call(self, clock: FakeClock) -> None:
        """One call pair per call of a decorated function, each with its attempts."""
        hook = RecordingHook()
        observed = Retrier(clock=clock, hooks=(hook,), name="db")(Work(clock, took=0))
        assert observed() == "ok"
        assert observed() == "ok"
        assert [item[0] for item in shape(hook.events)] == 2 * [
            "call",
            "attempt",
            "attempt_end",
            "call_end",
        ]
        check_pairs(hook.events, "db", "retry")


@pytest.mark.anyio
class TestRetrierAsync:
    """Retrier.acall, the async decorator and the async attempt loop."""

    @pytest.mark.parametrize("how", ["acall", "decorator"])
    @pytest.mark.parametrize("name", list(SCENARIOS))
    async def test_event_sequence(
        self, anyio_backend: str, name: str, how: str, clock: FakeClock
    ) -> None:
        """The whole sequence, paired, in the caller's task and the call's span."""
        scenario = SCENARIOS[name]()
        tracer = Tracer()
        retrier = make_retrier(scenario, clock, tracer)
        work = Work(clock, scenario.outcomes)
        decorated = retrier(work.arun)

        async def run() -> object:
            return await (retrier.acall(work.arun) if how == "acall" else decorated())

        if isinstance(scenario.returns, BaseException):
            with pytest.raises(type(scenario.returns)) as info:
                await run()
            assert info.value is scenario.returns
        else:
            assert await run() == scenario.returns
        assert shape(tracer.events) == scenario.expected
        check_pairs(tracer.events, "db", "retry")
        attempts = [f"attempt {n}" for n in range(1, len(work.seen) + 1)]
        assert work.seen == attempts
        assert tracer.parents == {"call": "root"} | dict.fromkeys(attempts, "call")
        assert tracer.errors == []
        assert CURRENT.get() == "root"

    @pytest.mark.parametrize("name", LOOP_SCENARIOS)
    async def test_attempt_loop(self, anyio_backend: str, name: str, clock: FakeClock) -> None:
        """Each with-attempt block of an async for loop is an attempt; no call."""
        scenario = SCENARIOS[name]()
        hook = RecordingHook()
        retrier = make_retrier(scenario, clock, hook)
        work = Work(clock, scenario.outcomes)

        async def loop() -> None:
            async for attempt in retrier:
                with attempt:
                    await work.arun()

        if isinstance(scenario.returns, BaseException):
            with pytest.raises(type(scenario.returns)):
                await loop()
        else:
            await loop()
        assert shape(hook.events) == without_call_events(scenario.expected)
        check_pairs(hook.events, "db", "retry")

    async def test_cancelled_attempt(self, anyio_backend: str, clock: FakeClock) -> None:
        """Cancelling the caller's scope mid-attempt ends the attempt and the call CANCELLED."""
        hook = RecordingHook()
        retrier = Retrier(clock=clock, hooks=(hook,), name="db")

        async def forever() -> None:
            await anyio.sleep_forever()

        async with anyio.create_task_group() as task_group:

            async def cancel_later() -> None:
                await clock.asleep(1.0)
                task_group.cancel_scope.cancel()

            task_group.start_soon(cancel_later)
            await retrier.acall(forever)
        assert shape(hook.events) == [
            ("call", "db", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, CANCELLED, "<cancelled>", 1.0),
            ("call_end", CANCELLED, "<cancelled>", 1.0),
        ]
        check_pairs(hook.events, "db", "retry")

    async def test_cancelled_during_backoff(self, anyio_backend: str, clock: FakeClock) -> None:
        """Cancelled while waiting to retry: no attempt is open; the call ends CANCELLED."""
        hook = RecordingHook()
        retrier = Retrier(initial_delay=5, jitter=Jitter.NONE, clock=clock, hooks=(hook,))
        error = ConnectionError()
        with anyio.CancelScope() as scope:

            async def fail_then_cancel() -> None:
                scope.cancel()  # delivered at the next checkpoint: the backoff's sleep
                raise error

            await retrier.acall(fail_then_cancel)
        assert shape(hook.events) == [
            ("call", "retrier", "retry", False),
            ("attempt", 1, ORIGINAL),
            ("attempt_end", 1, FAILURE, error, 0.0),
            ("retry", 1, 5.0, error, False),
            ("call_end", CANCELLED, "<cancelled>", 0.0),
        ]


class ByCaller:
    """A hook recording each event with the CALLER of the thread or task reporting it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, seawall.Event]] = []

    def __call__(self, event: seawall.Event) -> None:
        self.events.append((CALLER.get(), event))


def check_calls(events: Sequence[seawall.Event]) -> int:
    """Parse one caller's events as whole retried calls; return how many there were."""
    position = 0
    calls = 0

    def take() -> seawall.Event:
        nonlocal position
        position += 1
        return events[position - 1]

    while position < len(events):
        call = take()
        assert isinstance(call, CallStarted)
        number = 0
        while isinstance(events[position], AttemptStarted):
            number += 1
            attempt = take()
            assert isinstance(attempt, AttemptStarted)
            assert attempt.attempt == number
            assert attempt.kind is (ORIGINAL if number == 1 else RETRY)
            ended = take()
            assert isinstance(ended, AttemptEnded)
            assert ended.started is attempt
            if isinstance(events[position], RetryScheduled):
                assert take().attempt == number  # type: ignore[attr-defined]
        assert number >= 1
        if isinstance(events[position], RetryGaveUp):
            assert take().attempts == number  # type: ignore[attr-defined]
        ended_call = take()
        assert isinstance(ended_call, CallEnded)
        assert ended_call.started is call
        calls += 1
    return calls


def check_stress(hook: ByCaller, callers: int, calls_each: int, retrier: Retrier) -> None:
    """Every start has one end, and each caller's calls have consecutive attempts."""
    events = [event for _, event in hook.events]
    check_pairs(events, "shared", "retry")
    by_caller: dict[str, list[seawall.Event]] = defaultdict(list)
    for caller, event in hook.events:
        by_caller[caller].append(event)
    assert len(by_caller) == callers
    for caller_events in by_caller.values():
        assert check_calls(caller_events) == calls_each
    stats = retrier.statistics()
    assert stats.calls == callers * calls_each
    assert stats.attempts == sum(isinstance(event, AttemptEnded) for event in events)


class TestRetrierStress:
    """Many threads and tasks through one retrier with hooks."""

    def test_threads(self, clock: FakeClock) -> None:
        """16 threads x 50 calls: every start has one end; attempts are consecutive."""
        hook = ByCaller()
        retrier = Retrier(
            max_attempts=4, initial_delay=0.001, clock=clock, hooks=(hook,), name="shared"
        )
        errors: list[BaseException] = []

        def caller(index: int) -> None:
            CALLER.set(f"thread {index}")
            rng = random.Random(index)
            try:
                for _ in range(50):
                    outcomes = [ConnectionError() for _ in range(rng.randrange(5))]
                    with suppress(ConnectionError):
                        retrier.call(Work(clock, outcomes, took=0))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SAFETY)
        assert errors == []
        check_stress(hook, 16, 50, retrier)

    @pytest.mark.anyio
    async def test_tasks(self, anyio_backend: str, clock: FakeClock) -> None:
        """200 tasks: every start has one end; each task's attempts are consecutive."""
        hook = ByCaller()
        retrier = Retrier(
            max_attempts=4,
            initial_delay=0.01,
            rng=random.Random(1).random,
            clock=clock,
            hooks=(hook,),
            name="shared",
        )

        async def caller(index: int) -> None:
            CALLER.set(f"task {index}")
            outcomes = [ConnectionError() for _ in range(index % 5)]
            with suppress(ConnectionError):
                await retrier.acall(Work(clock, outcomes, took=0).arun)

        async with anyio.create_task_group() as task_group:
            for index in range(200):
                task_group.start_soon(caller, index)
        check_stress(hook, 200, 1, retrier)


# -- hedger -----------------------------------------------------------------------------


class Script:
    """An async callable whose n-th call sleeps ``latencies[n]`` virtual seconds.

    Then it returns ``"r<n>"``, or raises ``errors[n]``. ``seen`` records the span
    (CURRENT) and the TENANT current in each call.
    """

    def __init__(
        self, clock: FakeClock, latencies: list[float], errors: dict[int, Exception] | None = None
    ) -> None:
        self.clock = clock
        self.latencies = latencies
        self.errors = errors or {}
        self.calls = 0
        self.seen: dict[int, tuple[str, str]] = {}

    async def __call__(self) -> str:
        n = self.calls
        self.calls += 1
        self.seen[n] = (CURRENT.get(), TENANT.get())
        TENANT.set(f"changed by {n}")
        await self.clock.asleep(self.latencies[n])
        if n in self.errors:
            raise self.errors[n]
        return f"r{n}"


@pytest.fixture
def tracer() -> Tracer:
    """A fresh tracing hook."""
    return Tracer()


@pytest.fixture
def hedger(clock: FakeClock, tracer: Tracer) -> Hedger:
    """A hedger with one hedge after 0.2 s, traced."""
    return Hedger(delay=0.2, clock=clock, hooks=(tracer,), name="svc")


@pytest.mark.anyio
class TestHedgerAsync:
    """Hedger.acall and the coroutine decorator."""

    async def test_primary_wins_before_the_delay(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """One attempt, no hedge: the call pair around the primary's pair."""
        script = Script(clock, [0.1])
        assert await hedger.acall(script) == "r0"
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, SUCCESS, None, 0.1),
            ("won", 0, False, 0.1),
            ("call_end", SUCCESS, None, 0.1),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_hedge_wins_and_the_loser_ends_cancelled(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """The hedge wins; the cancelled primary ends CANCELLED before the call ends."""
        script = Script(clock, [1.0, 0.1])
        assert await hedger.acall(script) == "r1"
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("launched", 1, HedgeReason.DELAY_ELAPSED),
            ("attempt", 1, HEDGE),
            ("attempt_end", 1, SUCCESS, None, 0.1),
            ("won", 1, True, 0.3),
            ("attempt_end", 0, CANCELLED, "<cancelled>", 0.3),
            ("call_end", SUCCESS, None, 0.3),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_attempts_run_in_their_own_context(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """Each attempt's span is current in it, child of the call's; nothing leaks back."""
        script = Script(clock, [1.0, 0.1])
        token = TENANT.set("acme")
        try:
            assert await hedger.acall(script) == "r1"
            assert TENANT.get() == "acme"  # the attempts' changes stayed theirs
        finally:
            TENANT.reset(token)
        assert script.seen == {0: ("attempt 0", "acme"), 1: ("attempt 1", "acme")}
        assert tracer.parents == {"call": "root", "attempt 0": "call", "attempt 1": "call"}
        assert tracer.errors == []
        assert CURRENT.get() == "root"

    async def test_every_attempt_fails(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """Both attempts end FAILURE; the call ends with the primary's exception."""
        e0, e1 = ConnectionError("0"), ConnectionError("1")
        with pytest.raises(ConnectionError) as info:
            await hedger.acall(Script(clock, [0.1, 0.1], {0: e0, 1: e1}))
        assert info.value is e0
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, FAILURE, e0, 0.1),
            ("launched", 1, HedgeReason.ATTEMPT_FAILED),
            ("attempt", 1, HEDGE),
            ("attempt_end", 1, FAILURE, e1, 0.1),
            ("call_end", FAILURE, e0, 0.2),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_cancelling_the_call_ends_every_attempt(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """A cancel scope around the call: both attempts, then the call, end CANCELLED."""
        async with anyio.create_task_group() as task_group:

            async def cancel_later() -> None:
                await clock.asleep(1.0)
                task_group.cancel_scope.cancel()

            task_group.start_soon(cancel_later)
            await hedger.acall(Script(clock, [5.0, 5.0]))
        shapes = shape(tracer.events)
        assert shapes[:3] == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("launched", 1, HedgeReason.DELAY_ELAPSED),
        ]
        assert sorted(shapes[4:6], key=str) == [
            ("attempt_end", 0, CANCELLED, "<cancelled>", 1.0),
            ("attempt_end", 1, CANCELLED, "<cancelled>", 0.8),
        ]
        assert shapes[3:4] + shapes[6:] == [
            ("attempt", 1, HEDGE),
            ("call_end", CANCELLED, "<cancelled>", 1.0),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_decorated_coroutine_reports_one_call(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """A decorated coroutine function: one call pair per call, attempts inside."""
        script = Script(clock, [1.0, 0.1])
        fetch = hedger(script)
        assert await fetch() == "r1"
        assert [item[0] for item in shape(tracer.events)] == [
            "call",
            "attempt",
            "launched",
            "attempt",
            "attempt_end",
            "won",
            "attempt_end",
            "call_end",
        ]
        check_pairs(tracer.events, "svc", "hedge")


def untimed(events: Iterable[seawall.Event]) -> list[Shape]:
    """`shape` without the durations and latencies, which the real clock makes vary."""
    timed = {"call_end", "attempt_end", "won"}
    return [item[:-1] if item[0] in timed else item for item in shape(events)]


class TaskRecorder:
    """A hook that records the anyio task id each attempt event is reported from."""

    def __init__(self) -> None:
        self.tasks: dict[tuple[str, int], int] = {}

    def __call__(self, event: seawall.Event) -> None:
        if isinstance(event, AttemptStarted):
            self.tasks["start", event.attempt] = anyio.get_current_task().id
        elif isinstance(event, AttemptEnded):
            self.tasks["end", event.started.attempt] = anyio.get_current_task().id


@pytest.mark.anyio
class TestHedgerRealClock:
    """Hedger.acall on the real clock: on asyncio, the native fast path (see _hedge._async).

    Hedge times never come (an hour) or come at once (0); the events must be those of
    the virtual-clock tests above.
    """

    async def test_primary_wins_before_the_delay(self, anyio_backend: str, tracer: Tracer) -> None:
        """The call pair around the primary's pair, reported from the primary's task."""
        tasks = TaskRecorder()
        hedger = Hedger(delay=3600, hooks=(tracer, tasks), name="svc")
        seen: list[str] = []

        async def fn() -> str:
            seen.append(CURRENT.get())
            await anyio.lowlevel.checkpoint()
            return "ok"

        assert await hedger.acall(fn) == "ok"
        assert seen == ["attempt 0"]
        assert untimed(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, SUCCESS, None),
            ("won", 0, False),
            ("call_end", SUCCESS, None),
        ]
        check_pairs(tracer.events, "svc", "hedge")
        assert tracer.parents == {"call": "root", "attempt 0": "call"}
        assert tracer.errors == []
        assert CURRENT.get() == "root"
        assert tasks.tasks["start", 0] == tasks.tasks["end", 0] != anyio.get_current_task().id

    async def test_hedge_wins_and_the_primary_ends_cancelled(
        self, anyio_backend: str, tracer: Tracer
    ) -> None:
        """The stuck primary is hedged, loses, and ends CANCELLED before the call ends."""
        tasks = TaskRecorder()
        hedger = Hedger(delay=0, hooks=(tracer, tasks), name="svc")

        async def fn() -> str:
            # The tracer made this attempt's span current: it tells the primary from
            # the hedge, which on trio may call first.
            attempt = CURRENT.get()
            if attempt == "attempt 0":
                await anyio.sleep_forever()
            await anyio.lowlevel.checkpoint()
            return f"r{attempt[-1]}"

        assert await hedger.acall(fn) == "r1"
        expected: list[Shape] = [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("launched", 1, HedgeReason.DELAY_ELAPSED),
            ("attempt", 1, HEDGE),
            ("attempt_end", 1, SUCCESS, None),
            ("won", 1, True),
            ("attempt_end", 0, CANCELLED, "<cancelled>"),
            ("call_end", SUCCESS, None),
        ]
        events = untimed(tracer.events)
        if anyio_backend == "trio":
            # With delay 0 the task group launches the hedge before the primary's task
            # has run: its start may come after the launch, or even after the hedge's.
            assert sorted(map(repr, events)) == sorted(map(repr, expected))
            assert events[0] == expected[0]
            assert events[4:] == expected[4:]
        else:  # the native path: the primary's task runs before the hedge time comes
            assert events == expected
        check_pairs(tracer.events, "svc", "hedge")
        assert tracer.parents == {"call": "root", "attempt 0": "call", "attempt 1": "call"}
        assert tracer.errors == []
        caller = anyio.get_current_task().id
        assert tasks.tasks["start", 0] == tasks.tasks["end", 0] != caller
        assert (
            tasks.tasks["start", 1]
            == tasks.tasks["end", 1]
            not in {caller, tasks.tasks["start", 0]}
        )

    async def test_primary_fails_permanently(self, anyio_backend: str, tracer: Tracer) -> None:
        """A lone primary failing permanently: both pairs end FAILURE with its exception."""
        hedger = Hedger(delay=3600, hooks=(tracer,), name="svc")
        error = ValueError("bad request")

        async def fn() -> str:
            await anyio.lowlevel.checkpoint()
            raise error

        with pytest.raises(ValueError, match="bad request") as info:
            await hedger.acall(fn)
        assert info.value is error
        assert untimed(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, FAILURE, error),
            ("call_end", FAILURE, error),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_cancelling_the_call_ends_the_primary(
        self, anyio_backend: str, tracer: Tracer
    ) -> None:
        """A cancel scope around the call: the primary, then the call, end CANCELLED."""
        hedger = Hedger(delay=3600, hooks=(tracer,), name="svc")
        started = anyio.Event()

        async def fn() -> None:
            started.set()
            await anyio.sleep_forever()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(hedger.acall, fn)
            await started.wait()
            task_group.cancel_scope.cancel()
        assert untimed(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, CANCELLED, "<cancelled>"),
            ("call_end", CANCELLED, "<cancelled>"),
        ]
        check_pairs(tracer.events, "svc", "hedge")


class Streams:
    """A stream factory: the n-th stream waits ``first[n]`` virtual seconds.

    Then it yields ``n * 10``, ``n * 10 + 1``, ``n * 10 + 2`` (0.01 s apart).
    """

    def __init__(self, clock: FakeClock, first: list[float]) -> None:
        self.clock = clock
        self.first = first
        self.calls = 0

    def __call__(self) -> AsyncIterator[int]:
        n = self.calls
        self.calls += 1
        return self._stream(n)

    async def _stream(self, n: int) -> AsyncIterator[int]:
        await self.clock.asleep(self.first[n])
        for i in range(3):
            yield n * 10 + i
            await self.clock.asleep(0.01)


@pytest.mark.anyio
class TestHedgerStreams:
    """Hedger.astream and decorated async generator functions: stream=True calls."""

    async def test_hedged_stream(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """Attempts race to the first chunk; the call ends with the winner's stream."""
        chunks = [chunk async for chunk in hedger.astream(Streams(clock, [1.0, 0.1]))]
        assert chunks == [10, 11, 12]
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", True),
            ("attempt", 0, ORIGINAL),
            ("launched", 1, HedgeReason.DELAY_ELAPSED),
            ("attempt", 1, HEDGE),
            ("attempt_end", 1, SUCCESS, None, 0.1),
            ("won", 1, True, 0.3),
            ("attempt_end", 0, CANCELLED, "<cancelled>", 0.3),
            ("call_end", SUCCESS, None, 0.33),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_stream_closed_early(
        self, anyio_backend: str, clock: FakeClock, tracer: Tracer
    ) -> None:
        """A consumer that stops after one chunk: the call ends CANCELLED (closed)."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(tracer,), name="svc")
        async with aclosing(hedger.astream(Streams(clock, [0.1]))) as stream:
            async for chunk in stream:
                assert chunk == 0
                break
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", True),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, SUCCESS, None, 0.1),
            ("won", 0, False, 0.1),
            ("call_end", CANCELLED, "<GeneratorExit>", 0.1),
        ]
        check_pairs(tracer.events, "svc", "hedge")

    async def test_decorated_generator_reports_one_call(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, tracer: Tracer
    ) -> None:
        """A decorated async generator function: one stream call, not two."""
        streams = Streams(clock, [0.1])

        @hedger
        async def words() -> AsyncIterator[int]:
            async for chunk in streams():
                yield chunk

        assert [chunk async for chunk in words()] == [0, 1, 2]
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", True),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, SUCCESS, None, 0.1),
            ("won", 0, False, 0.1),
            ("call_end", SUCCESS, None, 0.13),
        ]


class Blocking:
    """A sync callable for worker threads: call n returns ``"r<n>"`` or raises errors[n].

    Calls in *blocked* first sleep 0.2 virtual seconds (which fires the hedge), then
    wait for `release`. ``seen`` records the span and TENANT current in each call.
    """

    def __init__(
        self,
        clock: FakeClock,
        blocked: set[int] | None = None,
        errors: dict[int, Exception] | None = None,
    ) -> None:
        self.clock = clock
        self.blocked = blocked or set()
        self.errors = errors or {}
        self.lock = threading.Lock()
        self.calls = 0
        self.release = threading.Event()
        self.seen: dict[int, tuple[str, str]] = {}

    def __call__(self) -> str:
        with self.lock:
            n = self.calls
            self.calls += 1
        self.seen[n] = (CURRENT.get(), TENANT.get())
        TENANT.set(f"changed by {n}")
        if n in self.blocked:
            self.clock.sleep(0.2)
            self.release.wait(SAFETY)
        if n in self.errors:
            raise self.errors[n]
        return f"r{n}"


class Ends:
    """A hook that lets a test wait until a number of AttemptEnded have been reported."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.count = 0

    def __call__(self, event: seawall.Event) -> None:
        if isinstance(event, AttemptEnded):
            with self.cond:
                self.count += 1
                self.cond.notify_all()

    def wait_for(self, count: int) -> None:
        """Wait (bounded) until *count* attempts have ended."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.count >= count, SAFETY)


class TestHedgerSync:
    """Hedger.call and the sync decorator: attempts in worker threads."""

    def test_primary_wins(self, clock: FakeClock, tracer: Tracer) -> None:
        """The attempt pair comes from a worker thread, the call pair from the caller."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(tracer,), name="svc")
        assert hedger.call(Blocking(clock)) == "r0"
        assert shape(tracer.events) == [
            ("call", "svc", "hedge", False),
            ("attempt", 0, ORIGINAL),
            ("attempt_end", 0, SUCCESS, None, 0.0),
            ("won", 0, False, 0.0),
            ("call_end", SUCCESS, None, 0.0),
        ]
        check_pairs(tracer.events, "svc", "hedge")
        me = threading.get_ident()
        assert [tracer.threads[id(e)] == me for e in tracer.events] == [
            True,
            False,
            False,
            True,
            True,
        ]
        hedger.close()

    def test_hedge_wins_and_the_abandoned_primary_ends_later(
        self, clock: FakeClock, tracer: Tracer
    ) -> None:
        """The abandoned primary ends when its function returns, after the call."""
        ends = Ends()
        hedger = Hedger(delay=0.2, clock=clock, hooks=(tracer, ends), name="svc")
        fn = Blocking(clock, blocked={0})
        token = TENANT.set("acme")
        try:
            assert hedger.call(fn) == "r1"
            ends.wait_for(1)  # the hedge's end
            assert TENANT.get() == "acme"
        finally:
            TENANT.reset(token)
        assert tracer.of_type(AttemptEnded)[0].started.attempt == 1
        fn.release.set()
        ends.wait_for(2)
        me = threading.get_ident()
        by_thread: dict[int, list[seawall.Event]] = defaultdict(list)
        for event in tracer.events:
            by_thread[tracer.threads[id(event)]].append(event)
        assert shape(by_thread.pop(me)) == [
            ("call", "svc", "hedge", False),
            ("launched", 1, HedgeReason.DELAY_ELAPSED),
            ("won", 1, True, 0.2),
            ("call_end", SUCCESS, None, 0.2),
        ]
        assert sorted(shape(events) for events in by_thread.values()) == [
            [("attempt", 0, ORIGINAL), ("attempt_end", 0, SUCCESS, None, 0.2)],
            [("attempt", 1, HEDGE), ("attempt_end", 1, SUCCESS, None, 0.0)],
        ]
        order = [type(event).__name__ for event in tracer.events]
        assert order.index("HedgeWon") > tracer.events.index(tracer.of_type(AttemptEnded)[0])
        assert order[-1] == "AttemptEnded"  # the primary's, after CallEnded
        check_pairs(tracer.events, "svc", "hedge")
        assert fn.seen == {0: ("attempt 0", "acme"), 1: ("attempt 1", "acme")}
        assert tracer.parents == {"call": "root", "attempt 0": "call", "attempt 1": "call"}
        assert tracer.errors == []
        hedger.close()

    def test_every_attempt_fails(self, clock: FakeClock, tracer: Tracer) -> None:
        """Both attempts end FAILURE in their threads; the call fails with the primary's."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(tracer,), name="svc")
        e0, e1 = ConnectionError("0"), ConnectionError("1")
        with pytest.raises(ConnectionError) as info:
            hedger.call(Blocking(clock, errors={0: e0, 1: e1}))
        assert info.value is e0
        shapes = shape(tracer.events)
        assert shapes[0] == ("call", "svc", "hedge", False)
        assert shapes[-1] == ("call_end", FAILURE, e0, 0.0)
        assert sorted(shapes[1:-1], key=str) == sorted(
            [
                ("attempt", 0, ORIGINAL),
                ("attempt_end", 0, FAILURE, e0, 0.0),
                ("launched", 1, HedgeReason.ATTEMPT_FAILED),
                ("attempt", 1, HEDGE),
                ("attempt_end", 1, FAILURE, e1, 0.0),
            ],
            key=str,
        )
        check_pairs(tracer.events, "svc", "hedge")
        hedger.close()

    def test_decorated_function_reports_one_call(self, clock: FakeClock, tracer: Tracer) -> None:
        """A decorated sync function: one call pair around its attempt."""
        hedger = Hedger(delay=0.2, clock=clock, hooks=(tracer,), name="svc")
        fetch = hedger(Blocking(clock))
        assert fetch() == "r0"
        assert [item[0] for item in shape(tracer.events)] == [
            "call",
            "attempt",
            "attempt_end",
            "won",
            "call_end",
        ]
        hedger.close()

    def test_context_flows_into_attempts_without_hooks(self, clock: FakeClock) -> None:
        """A ContextVar set by the caller is seen by the attempt; its changes stay there."""
        hedger = Hedger(delay=0.2, clock=clock)
        fn = Blocking(clock)
        token = TENANT.set("acme")
        try:
            assert hedger.call(fn) == "r0"
            assert TENANT.get() == "acme"
        finally:
            TENANT.reset(token)
        assert fn.seen == {0: ("root", "acme")}
        hedger.close()


class TestWithoutHooks:
    """No hooks: no observer is built, and the unobserved paths run."""

    def test_hooks_declining_call_events_build_no_observer(self, clock: FakeClock) -> None:
        """Hooks that all say wants_call_events = False get no call or attempt events."""

        class Quiet:
            wants_call_events = False

            def __init__(self) -> None:
                self.events: list[seawall.Event] = []

            def __call__(self, event: seawall.Event) -> None:
                self.events.append(event)

        quiet = Quiet()
        retrier = Retrier(max_attempts=2, initial_delay=1, clock=clock, hooks=(quiet,))
        hedger = Hedger(clock=clock, hooks=(quiet,))
        assert retrier._engine.observer is None
        assert hedger._engine.observer is None
        assert retrier.call(Work(clock, [ConnectionError()])) == "ok"
        assert [type(e) for e in quiet.events] == [RetryScheduled]
        hedger.close()

    def test_no_observer_exists(self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
        """Retrier and Hedger without hooks (or with none) never build an Observer."""
        from seawall import _observe
        from seawall._hedge._hedger import _hedged_stream

        def forbidden(*args: object) -> None:
            raise AssertionError("an Observer was built without hooks")

        monkeypatch.setattr(_observe, "Observer", forbidden)
        for retrier in (Retrier(clock=clock), Retrier(clock=clock, hooks=())):
            assert retrier._engine.observer is None
            assert retrier.call(Work(clock, [ConnectionError()])) == "ok"
            assert retrier(Work(clock))() == "ok"
            for attempt in retrier:
                with attempt:
                    pass
        for hedger in (Hedger(clock=clock), Hedger(clock=clock, hooks=())):
            assert hedger._engine.observer is None
            assert hedger._stream is _hedged_stream
            assert hedger.call(Blocking(clock)) == "r0"
            assert hedger(Blocking(clock))() == "r0"
            hedger.close()

    @pytest.mark.anyio
    async def test_async_paths_build_nothing(
        self, anyio_backend: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """acall, astream and the async decorators run without any observer."""
        from seawall import _observe

        def forbidden(*args: object) -> None:
            raise AssertionError("an event was built without hooks")

        for event in ("CallStarted", "AttemptStarted"):
            monkeypatch.setattr(_observe, event, forbidden)
        retrier = Retrier(clock=clock)
        assert await retrier.acall(Work(clock, [ConnectionError()]).arun) == "ok"
        assert await retrier(Work(clock).arun)() == "ok"
        async for attempt in retrier:
            with attempt:
                pass
        hedger = Hedger(delay=0.2, clock=clock)
        assert await hedger.acall(Script(clock, [1.0, 0.1])) == "r1"
        assert await hedger(Script(clock, [0.1]))() == "r0"
        assert [c async for c in hedger.astream(Streams(clock, [1.0, 0.1]))] == [10, 11, 12]
