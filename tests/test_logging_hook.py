"""`seawall.LoggingHook`: each event as one stdlib logging record with structured fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import seawall
from seawall.testing import FakeClock


pytestmark = pytest.mark.timeout(20)


class Capture(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Logged:
    """A logger of its own (not propagating) and the records it handled."""

    logger: logging.Logger
    handler: Capture

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.handler.records

    def of(self, event: str) -> list[logging.LogRecord]:
        """The records of one event class."""
        return [r for r in self.records if getattr(r, "seawall_event", None) == event]


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[Logged]:
    """A fresh DEBUG logger with a capturing handler, removed afterwards."""
    logger = logging.getLogger(f"seawall-tests.{request.node.name}")
    handler = Capture()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield Logged(logger, handler)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


@pytest.fixture
def record_factory_calls() -> Iterator[list[str]]:
    """Count LogRecord creations (by message) until the test ends."""
    original = logging.getLogRecordFactory()
    created: list[str] = []

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        created.append(str(record.msg))
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield created
    finally:
        logging.setLogRecordFactory(original)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The seawall_* attributes of *record*."""
    return {k: v for k, v in vars(record).items() if k.startswith("seawall_")}


class SecretError(ConnectionError):
    """A failure whose message must not reach the logs by default."""


@dataclass(frozen=True, slots=True)
class CustomEvent(seawall.Event):
    """An event seawall does not know."""

    payload: str


S = seawall.CircuitState
started_call = seawall.CallStarted("api", "retry")
started_stream = seawall.CallStarted("api", "retry", stream=True)
started_attempt = seawall.AttemptStarted("h", "hedge", 1, seawall.AttemptKind.HEDGE)
started_model = seawall.ModelCallStarted("llm", "chat", "openai", "gpt-4o", stream=False)
started_model_stream = seawall.ModelCallStarted("llm", "chat", None, None, stream=True)

INFO, WARNING, DEBUG = logging.INFO, logging.WARNING, logging.DEBUG

# (event, level, message, fields beyond name/primitive/event)
CASES: list[Any] = [
    pytest.param(
        seawall.CircuitStateChanged("db", S.CLOSED, S.OPEN, "consecutive_failures", 2),
        WARNING,
        "circuit breaker 'db': closed -> open (consecutive_failures)",
        {
            "seawall_state": "open",
            "seawall_old_state": "closed",
            "seawall_reason": "consecutive_failures",
            "seawall_generation": 2,
        },
        id="breaker-opens",
    ),
    pytest.param(
        seawall.CircuitStateChanged("db", S.CLOSED, S.FORCED_OPEN, "manual_force_open", 3),
        WARNING,
        "circuit breaker 'db': closed -> forced_open (manual_force_open)",
        {"seawall_state": "forced_open"},
        id="breaker-forced-open",
    ),
    pytest.param(
        seawall.CircuitStateChanged("db", S.OPEN, S.HALF_OPEN, "timeout_elapsed", 3),
        INFO,
        "circuit breaker 'db': open -> half_open (timeout_elapsed)",
        {"seawall_state": "half_open", "seawall_old_state": "open"},
        id="breaker-half-open",
    ),
    pytest.param(
        seawall.CallRejected("db", S.OPEN, 12.5),
        WARNING,
        "circuit breaker 'db': call rejected while open; retry after 12.5 s",
        {"seawall_state": "open", "seawall_retry_after": 12.5},
        id="breaker-rejects",
    ),
    pytest.param(
        seawall.CallRejected("db", S.FORCED_OPEN, None),
        WARNING,
        "circuit breaker 'db': call rejected while forced_open",
        {"seawall_state": "forced_open", "seawall_retry_after": None},
        id="breaker-rejects-forced",
    ),
    pytest.param(
        seawall.RetryScheduled("api", 2, 0.4, SecretError("token=abc"), result_retried=False),
        INFO,
        "retry 'api': attempt 2 failed with SecretError; retrying in 0.4 s",
        {
            "seawall_attempt": 2,
            "seawall_delay": 0.4,
            "seawall_exception": "SecretError",
            "seawall_result_retried": False,
        },
        id="retry-scheduled",
    ),
    pytest.param(
        seawall.RetryScheduled("api", 1, 0.1234, None, result_retried=True),
        INFO,
        "retry 'api': attempt 1 returned a result to retry; retrying in 0.123 s",
        {"seawall_attempt": 1, "seawall_delay": 0.1234, "seawall_result_retried": True},
        id="retry-scheduled-result",
    ),
    pytest.param(
        seawall.RetryGaveUp("api", 3, seawall.GiveUpReason.ATTEMPTS_EXHAUSTED, TimeoutError()),
        WARNING,
        "retry 'api': gave up after 3 attempts (attempts_exhausted); last failure TimeoutError",
        {
            "seawall_attempt": 3,
            "seawall_reason": "attempts_exhausted",
            "seawall_exception": "TimeoutError",
        },
        id="retry-gave-up",
    ),
    pytest.param(
        seawall.RetryGaveUp("api", 1, seawall.GiveUpReason.NOT_RETRYABLE, None),
        WARNING,
        "retry 'api': gave up after 1 attempt (not_retryable); returning the last result",
        {"seawall_attempt": 1, "seawall_reason": "not_retryable"},
        id="retry-gave-up-result",
    ),
    pytest.param(
        seawall.HedgeLaunched("h", 1, seawall.HedgeReason.DELAY_ELAPSED),
        INFO,
        "hedge 'h': launched hedge 1 (delay_elapsed)",
        {"seawall_attempt": 1, "seawall_reason": "delay_elapsed"},
        id="hedge-launched",
    ),
    pytest.param(
        seawall.HedgeWon("h", 0, hedged=False, latency=0.25),
        DEBUG,
        "hedge 'h': won by the primary in 0.25 s (not hedged)",
        {"seawall_attempt": 0, "seawall_duration": 0.25, "seawall_hedged": False},
        id="hedge-won-primary",
    ),
    pytest.param(
        seawall.HedgeWon("h", 2, hedged=True, latency=1.5),
        INFO,
        "hedge 'h': won by hedge 2 in 1.5 s (hedged)",
        {"seawall_attempt": 2, "seawall_hedged": True},
        id="hedge-won-hedge",
    ),
    pytest.param(
        seawall.RateLimited("lim", 1.0, 0.5),
        WARNING,
        "rate limiter 'lim': refused 1 token; retry after 0.5 s",
        {"seawall_cost": 1.0, "seawall_retry_after": 0.5},
        id="rate-limited",
    ),
    pytest.param(
        seawall.RateLimited("lim", 3.0, 2.0, key="tenant-a"),
        WARNING,
        "rate limiter 'lim': refused 3 tokens for key 'tenant-a'; retry after 2 s",
        {"seawall_cost": 3.0, "seawall_key": "tenant-a"},
        id="rate-limited-key",
    ),
    pytest.param(
        seawall.AcquireWaited("lim", 2.0, 0.75, key=("t", 7)),
        INFO,
        "rate limiter 'lim': waited 0.75 s for 2 tokens for key ('t', 7)",
        {"seawall_cost": 2.0, "seawall_wait": 0.75, "seawall_key": "('t', 7)"},
        id="acquire-waited",
    ),
    pytest.param(
        seawall.AcquireCancelled("lim", 2.0, 1.5),
        INFO,
        "rate limiter 'lim': waiter cancelled; 1.5 of 2 tokens restored",
        {"seawall_cost": 2.0, "seawall_restored": 1.5},
        id="acquire-cancelled",
    ),
    pytest.param(
        seawall.TokensSettled("llm", 1000.0, 1200.0, 200.0, 0.0),
        DEBUG,
        "rate limiter 'llm': used 1200 tokens against an estimate of 1000 (+200)",
        {
            "seawall_estimated": 1000.0,
            "seawall_actual": 1200.0,
            "seawall_delta": 200.0,
            "seawall_refunded": 0.0,
        },
        id="tokens-settled-charge",
    ),
    pytest.param(
        seawall.TokensSettled("llm", 1000.0, 700.0, -300.0, 300.0),
        DEBUG,
        "rate limiter 'llm': used 700 tokens against an estimate of 1000 (-300)",
        {"seawall_delta": -300.0, "seawall_refunded": 300.0},
        id="tokens-settled-refund",
    ),
    pytest.param(
        seawall.TimedOut("t", 5.0),
        WARNING,
        "timeout 't': call timed out after 5 s",
        {"seawall_timeout": 5.0},
        id="timed-out",
    ),
    pytest.param(
        seawall.BulkheadRejected("b", 3, 10),
        WARNING,
        "bulkhead 'b': call rejected (3 in flight, 10 queued)",
        {"seawall_in_flight": 3, "seawall_queued": 10},
        id="bulkhead-rejected",
    ),
    pytest.param(
        seawall.BulkheadAcquired("b", 2, 0, 0.0),
        DEBUG,
        "bulkhead 'b': slot acquired (2 in flight, 0 queued)",
        {"seawall_in_flight": 2, "seawall_queued": 0, "seawall_wait": 0.0},
        id="bulkhead-acquired",
    ),
    pytest.param(
        seawall.BulkheadAcquired("b", 3, 1, 0.2),
        DEBUG,
        "bulkhead 'b': slot acquired after 0.2 s (3 in flight, 1 queued)",
        {"seawall_wait": 0.2},
        id="bulkhead-acquired-after-wait",
    ),
    pytest.param(
        seawall.BulkheadReleased("b", 2, 1),
        DEBUG,
        "bulkhead 'b': slot released (2 in flight, 1 queued)",
        {"seawall_in_flight": 2, "seawall_queued": 1},
        id="bulkhead-released",
    ),
    pytest.param(
        seawall.FellBack("f", SecretError("password=hunter2")),
        INFO,
        "fallback 'f': answered with the fallback after SecretError",
        {"seawall_exception": "SecretError"},
        id="fell-back",
    ),
    pytest.param(
        seawall.FellBack("f", None),
        INFO,
        "fallback 'f': answered with the fallback instead of a rejected result",
        {},
        id="fell-back-result",
    ),
    pytest.param(
        started_call,
        DEBUG,
        "retry 'api': call started",
        {"seawall_stream": False},
        id="call-started",
    ),
    pytest.param(
        started_stream,
        DEBUG,
        "retry 'api': stream started",
        {"seawall_stream": True},
        id="stream-started",
    ),
    pytest.param(
        seawall.CallEnded("api", started_call, seawall.Outcome.FAILURE, SecretError("x"), 0.5),
        DEBUG,
        "retry 'api': call ended: failure (SecretError) in 0.5 s",
        {
            "seawall_outcome": "failure",
            "seawall_duration": 0.5,
            "seawall_exception": "SecretError",
            "seawall_stream": False,
        },
        id="call-ended",
    ),
    pytest.param(
        seawall.CallEnded("api", started_stream, seawall.Outcome.SUCCESS, None, 2.0),
        DEBUG,
        "retry 'api': stream ended: success in 2 s",
        {"seawall_outcome": "success", "seawall_stream": True},
        id="stream-ended",
    ),
    pytest.param(
        started_attempt,
        DEBUG,
        "hedge 'h': attempt 1 started (hedge)",
        {"seawall_attempt": 1, "seawall_kind": "hedge"},
        id="attempt-started",
    ),
    pytest.param(
        seawall.AttemptEnded("h", started_attempt, seawall.Outcome.CANCELLED, None, 0.0002),
        DEBUG,
        "hedge 'h': attempt 1 ended: cancelled in 0.0002 s",
        {
            "seawall_attempt": 1,
            "seawall_kind": "hedge",
            "seawall_outcome": "cancelled",
            "seawall_duration": 0.0002,
        },
        id="attempt-ended",
    ),
    pytest.param(
        started_model,
        DEBUG,
        "llm 'llm': chat call to gpt-4o (openai) started",
        {
            "seawall_operation": "chat",
            "seawall_provider": "openai",
            "seawall_request_model": "gpt-4o",
            "seawall_stream": False,
        },
        id="model-call-started",
    ),
    pytest.param(
        seawall.ModelCallEnded(
            "llm",
            started_model,
            seawall.Outcome.SUCCESS,
            None,
            1.2,
            response_model="gpt-4o-2024",
            response_id="chatcmpl-1",
            input_tokens=12,
            output_tokens=30,
            finish_reasons=("stop",),
            provider="openai",
        ),
        DEBUG,
        "llm 'llm': chat call to gpt-4o (openai) ended: success in 1.2 s; "
        "model gpt-4o-2024; tokens 12 in, 30 out; finish stop",
        {
            "seawall_outcome": "success",
            "seawall_duration": 1.2,
            "seawall_response_model": "gpt-4o-2024",
            "seawall_response_id": "chatcmpl-1",
            "seawall_input_tokens": 12,
            "seawall_output_tokens": 30,
            "seawall_finish_reasons": ["stop"],
            "seawall_time_to_first_chunk": None,
            "seawall_provider": "openai",
        },
        id="model-call-ended",
    ),
    pytest.param(
        seawall.ModelCallEnded(
            "llm",
            started_model_stream,
            seawall.Outcome.TIMEOUT,
            seawall.CallTimeoutError("slow", primitive_name="t", timeout=10.0),
            10.0,
            time_to_first_chunk=0.3,
        ),
        DEBUG,
        "llm 'llm': chat stream ended: timeout (CallTimeoutError) in 10 s; first chunk after 0.3 s",
        {
            "seawall_outcome": "timeout",
            "seawall_exception": "CallTimeoutError",
            "seawall_time_to_first_chunk": 0.3,
            "seawall_finish_reasons": [],
            "seawall_request_model": None,
        },
        id="model-stream-ended",
    ),
]

PRIMITIVES = {
    "Circuit": "circuit_breaker",
    "CallRej": "circuit_breaker",
    "RetrySc": "retry",
    "RetryGa": "retry",
    "HedgeLa": "hedge",
    "HedgeWo": "hedge",
    "RateLim": "rate_limiter",
    "Acquire": "rate_limiter",
    "TokensS": "rate_limiter",
    "TimedOu": "timeout",
    "Bulkhea": "bulkhead",
    "FellBac": "fallback",
    "ModelCa": "llm",
}


def expected_primitive(event: seawall.Event) -> str:
    """The primitive an event belongs to."""
    if isinstance(event, (seawall.CallStarted, seawall.AttemptStarted)):
        return event.primitive
    if isinstance(event, (seawall.CallEnded, seawall.AttemptEnded)):
        return event.started.primitive
    return PRIMITIVES[type(event).__name__[:7]]


class TestEvents:
    """Each event gives one record: its level, its message and its fields."""

    @pytest.mark.parametrize(("event", "level", "message", "extra"), CASES)
    def test_record(
        self,
        logged: Logged,
        event: seawall.Event,
        level: int,
        message: str,
        extra: dict[str, Any],
    ) -> None:
        """Level, message and structured fields, ready for a JSON formatter."""
        seawall.LoggingHook(logged.logger, call_level=DEBUG)(event)
        (record,) = logged.records
        assert record.levelno == level
        assert record.getMessage() == message
        found = fields(record)
        assert found["seawall_name"] == event.name
        assert found["seawall_event"] == type(event).__name__
        assert found["seawall_primitive"] == expected_primitive(event)
        assert {k: found.get(k) for k in extra} == extra
        json.dumps(found)  # every value is JSON-ready
        assert record.name == logged.logger.name  # reserved attributes are untouched
        assert record.exc_info is None

    @pytest.mark.parametrize(("event", "level", "message", "extra"), CASES)
    def test_exception_text_is_not_logged_by_default(
        self,
        logged: Logged,
        event: seawall.Event,
        level: int,
        message: str,
        extra: dict[str, Any],
    ) -> None:
        """No exception message reaches the record unless asked for."""
        seawall.LoggingHook(logged.logger, call_level=DEBUG)(event)
        (record,) = logged.records
        text = json.dumps(fields(record)) + record.getMessage()
        for secret in ("token=abc", "password=hunter2", "slow"):
            assert secret not in text
        assert "seawall_exception_text" not in fields(record)

    def test_exception_text_on_request(self, logged: Logged) -> None:
        """include_exception_text adds the message to the text and to a field."""
        hook = seawall.LoggingHook(logged.logger, include_exception_text=True)
        hook(seawall.RetryScheduled("api", 1, 2.0, SecretError("token=abc"), result_retried=False))
        hook(seawall.FellBack("f", ValueError()))
        first, second = logged.records
        assert first.getMessage() == (
            "retry 'api': attempt 1 failed with SecretError: token=abc; retrying in 2 s"
        )
        assert fields(first)["seawall_exception_text"] == "token=abc"
        assert second.getMessage() == "fallback 'f': answered with the fallback after ValueError"
        assert fields(second)["seawall_exception_text"] == ""

    def test_unprintable_exception(self, logged: Logged) -> None:
        """An exception whose str() raises is still logged, by type."""

        class UnprintableError(Exception):
            def __str__(self) -> str:
                raise RuntimeError

        hook = seawall.LoggingHook(logged.logger, include_exception_text=True)
        hook(seawall.FellBack("f", UnprintableError()))
        (record,) = logged.records
        assert record.getMessage().endswith("after UnprintableError: <unprintable>")

    def test_unknown_event(self, logged: Logged) -> None:
        """An event seawall does not know is logged at level, by class, payload left out."""
        seawall.LoggingHook(logged.logger)(CustomEvent("x", payload="private"))
        (record,) = logged.records
        assert record.levelno == logging.INFO
        assert record.getMessage() == "event 'x': CustomEvent"
        assert fields(record) == {
            "seawall_name": "x",
            "seawall_primitive": None,
            "seawall_event": "CustomEvent",
        }

    def test_every_public_event_is_known(self, logged: Logged) -> None:
        """Every event class seawall exports gets its own message, not the fallback."""
        events = [
            obj
            for name in seawall.__all__
            if isinstance(obj := getattr(seawall, name), type)
            and issubclass(obj, seawall.Event)
            and obj is not seawall.Event
        ]
        from seawall._logging import _FORMATS

        assert sorted(e.__name__ for e in events if e not in _FORMATS) == []


class TestLevels:
    """Levels are configurable, and a disabled level costs nothing."""

    def test_custom_levels(self, logged: Logged) -> None:
        """level and call_level move point and call events; warnings stay warnings."""
        hook = seawall.LoggingHook(logged.logger, level=logging.DEBUG, call_level="INFO")
        hook(seawall.RetryScheduled("api", 1, 0.5, None, result_retried=True))
        hook(started_call)
        hook(seawall.TimedOut("t", 1.0))
        assert [r.levelno for r in logged.records] == [logging.DEBUG, logging.INFO, WARNING]

    def test_disabled_level_builds_no_record(
        self, logged: Logged, record_factory_calls: list[str]
    ) -> None:
        """Below the logger's level: no LogRecord is created, nothing is handled."""
        logged.logger.setLevel(logging.WARNING)
        hook = seawall.LoggingHook(logged.logger)
        hook(started_call)
        hook(seawall.RetryScheduled("api", 1, 0.5, SecretError(), result_retried=False))
        hook(seawall.CircuitStateChanged("db", S.OPEN, S.HALF_OPEN, "timeout_elapsed", 2))
        assert record_factory_calls == []
        assert logged.records == []
        hook(seawall.TimedOut("t", 1.0))
        assert len(record_factory_calls) == 1
        assert len(logged.records) == 1

    def test_one_check_per_disabled_event(self) -> None:
        """A disabled event costs one isEnabledFor call."""

        class CountingLogger(logging.Logger):
            checks = 0

            def isEnabledFor(self, level: int) -> bool:  # noqa: N802 -- stdlib name
                CountingLogger.checks += 1
                return False

        hook = seawall.LoggingHook(CountingLogger("counting"), call_level=DEBUG)
        hook(started_call)
        hook(seawall.CallRejected("db", S.OPEN, 1.0))
        assert CountingLogger.checks == 2


class TestCallEventsByDefault:
    """Without call_level, call events are neither logged nor built."""

    def test_call_events_are_not_logged(self, logged: Logged) -> None:
        """The default hook declines call events and skips the per-call point events."""
        hook = seawall.LoggingHook(logged.logger)
        assert hook.wants_call_events is False
        assert seawall.LoggingHook(logged.logger, call_level="DEBUG").wants_call_events
        hook(started_call)
        hook(seawall.AcquireWaited("api", 1, 0.0))
        hook(seawall.BulkheadReleased("db", 0, 0))
        hook(seawall.AcquireWaited("api", 1, 0.5))  # a real wait is still told
        assert [r.getMessage() for r in logged.records] == [
            "rate limiter 'api': waited 0.5 s for 1 token"
        ]

    def test_primitives_build_no_call_events(self, logged: Logged, clock: FakeClock) -> None:
        """A primitive whose hooks all decline call events builds none; others still come."""
        recording = seawall.testing.RecordingHook()
        quiet = seawall.LoggingHook(logged.logger)
        retrier = seawall.Retrier(max_attempts=2, initial_delay=1, clock=clock, hooks=(quiet,))
        assert retrier(lambda: 1)() == 1
        assert logged.records == []
        both = seawall.Retrier(clock=clock, hooks=(quiet, recording))
        assert both(lambda: 2)() == 2
        assert [type(e) for e in recording.events] == [
            seawall.CallStarted,
            seawall.AttemptStarted,
            seawall.AttemptEnded,
            seawall.CallEnded,
        ]


class TestArguments:
    """The logger and the levels are checked when the hook is built."""

    def test_default_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        """Without a logger, records go to the 'seawall' logger."""
        caplog.set_level(logging.INFO, logger="seawall")
        hook = seawall.LoggingHook()
        assert hook.logger is logging.getLogger("seawall")
        hook(seawall.TimedOut("t", 2.0))
        assert [(r.name, r.getMessage()) for r in caplog.records] == [
            ("seawall", "timeout 't': call timed out after 2 s")
        ]

    def test_logger_by_name(self) -> None:
        """A str names the logger."""
        assert seawall.LoggingHook("myapp.resilience").logger is logging.getLogger(
            "myapp.resilience"
        )

    @pytest.mark.parametrize("logger", [logging.LoggerAdapter(logging.getLogger("x")), 3])
    def test_logger_of_wrong_type(self, logger: Any) -> None:
        """Anything else is refused, naming the parameter (an adapter would drop fields)."""
        with pytest.raises(TypeError, match=r"logger must be a logging\.Logger"):
            seawall.LoggingHook(logger)

    def test_empty_logger_name(self) -> None:
        """An empty name is refused (the root logger is passed as a Logger)."""
        with pytest.raises(ValueError, match="non-empty logger name"):
            seawall.LoggingHook("")

    @pytest.mark.parametrize("param", ["level", "call_level"])
    def test_bad_levels(self, param: str) -> None:
        """Levels are ints >= 0 or known names."""
        for value, error, match in [
            ("LOUD", ValueError, f"{param} must be a level such as logging.INFO"),
            (True, TypeError, f"{param} must be an int or a level name"),
            (2.5, TypeError, f"{param} must be an int or a level name"),
            (-1, ValueError, f"{param} must be >= 0"),
        ]:
            kwargs: dict[str, Any] = {param: value}
            with pytest.raises(error, match=match):
                seawall.LoggingHook(**kwargs)

    def test_include_exception_text_must_be_bool(self) -> None:
        """include_exception_text is a bool."""
        with pytest.raises(TypeError, match="include_exception_text must be a bool"):
            seawall.LoggingHook(include_exception_text=1)  # type: ignore[arg-type]

    def test_repr(self) -> None:
        """The repr shows the logger, the levels and the option."""
        hook = seawall.LoggingHook("app", level="WARNING", include_exception_text=True)
        assert repr(hook) == (
            "LoggingHook(logger='app', level='WARNING', call_level=None, "
            "include_exception_text=True)"
        )

    def test_class_is_final_and_slotted(self) -> None:
        """No instance dict; subclassing is not designed for."""
        hook = seawall.LoggingHook()
        assert not hasattr(hook, "__dict__")
        assert getattr(seawall.LoggingHook, "__final__", False) is True


# -- through real primitives -------------------------------------------------------------


class TestWithPrimitives:
    """Real primitives with a LoggingHook produce the records their events describe."""

    def test_breaker_trip_and_rejection(self, logged: Logged, clock: FakeClock) -> None:
        """Two failures open the breaker (WARNING), the next call is rejected (WARNING)."""
        breaker = seawall.CircuitBreaker(
            max_failures=2,
            timeout=30,
            name="db",
            clock=clock,
            hooks=(seawall.LoggingHook(logged.logger),),
        )

        def fail() -> None:
            raise SecretError("dsn=postgres://user:pw@host")

        for _ in range(2):
            with pytest.raises(SecretError):
                breaker.call(fail)
        with pytest.raises(seawall.CircuitOpenError):
            breaker.call(fail)
        (opened,) = logged.of("CircuitStateChanged")
        assert opened.levelno == WARNING
        assert opened.getMessage() == "circuit breaker 'db': closed -> open (consecutive_failures)"
        (rejected,) = logged.of("CallRejected")
        assert rejected.levelno == WARNING
        assert rejected.getMessage() == (
            "circuit breaker 'db': call rejected while open; retry after 30 s"
        )
        assert all("pw@host" not in r.getMessage() for r in logged.records)

    def test_retry_until_give_up(self, logged: Logged, clock: FakeClock) -> None:
        """Each retry is an INFO record with its delay; giving up is a WARNING."""
        retrier = seawall.Retrier(
            max_attempts=3,
            initial_delay=0.5,
            jitter=seawall.Jitter.NONE,
            name="api",
            clock=clock,
            hooks=(seawall.LoggingHook(logged.logger),),
        )

        def fail() -> None:
            raise ConnectionError("refused")

        with pytest.raises(ConnectionError):
            retrier.call(fail)
        scheduled = logged.of("RetryScheduled")
        assert [(r.levelno, r.getMessage()) for r in scheduled] == [
            (INFO, "retry 'api': attempt 1 failed with ConnectionError; retrying in 0.5 s"),
            (INFO, "retry 'api': attempt 2 failed with ConnectionError; retrying in 1 s"),
        ]
        assert [fields(r)["seawall_delay"] for r in scheduled] == [0.5, 1.0]
        (gave_up,) = logged.of("RetryGaveUp")
        assert gave_up.levelno == WARNING
        assert gave_up.getMessage() == (
            "retry 'api': gave up after 3 attempts (attempts_exhausted); "
            "last failure ConnectionError"
        )
        # Calls and attempts, if the retrier reports them, stay at DEBUG.
        calls = {"CallStarted", "CallEnded", "AttemptStarted", "AttemptEnded"}
        for record in logged.records:
            if fields(record)["seawall_event"] in calls:
                assert record.levelno == DEBUG

    def test_limiter_rejection(self, logged: Logged, clock: FakeClock) -> None:
        """A refused try_acquire is a WARNING with its retry-after."""
        limiter = seawall.RateLimiter(
            rate=2, burst=1, name="search", clock=clock, hooks=(seawall.LoggingHook(logged.logger),)
        )
        assert limiter.try_acquire()
        assert not limiter.try_acquire()
        (record,) = logged.of("RateLimited")
        assert record.levelno == WARNING
        assert record.getMessage() == "rate limiter 'search': refused 1 token; retry after 0.5 s"
        assert fields(record)["seawall_retry_after"] == 0.5

    def test_model_calls_through_with_telemetry(self, logged: Logged, clock: FakeClock) -> None:
        """with_telemetry's events are logged at DEBUG, with the response's fields."""

        class Model:
            model = "gpt-4o"

            def generate(self, prompt: str) -> dict[str, Any]:
                clock.sleep(0.25)
                return {
                    "model": "gpt-4o-2024",
                    "usage": {"prompt_tokens": 5, "completion_tokens": 6},
                }

        model = seawall.apply_middleware(
            Model(),
            seawall.with_telemetry(
                hooks=(seawall.LoggingHook(logged.logger, call_level=DEBUG),), clock=clock
            ),
        )
        model.generate("hi")
        assert [(r.levelno, r.getMessage()) for r in logged.records] == [
            (DEBUG, "llm 'llm': chat call to gpt-4o started"),
            (
                DEBUG,
                (
                    "llm 'llm': chat call to gpt-4o ended: success in 0.25 s; "
                    "model gpt-4o-2024; tokens 5 in, 6 out"
                ),
            ),
        ]
