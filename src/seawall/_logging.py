"""`LoggingHook`: every seawall event as one stdlib `logging` record with structured fields.

The record's message is short and readable; the same facts go into the record as
attributes (``extra=``), all prefixed ``seawall_`` so that a JSON formatter (or a
``logging.Filter``) can pick them up without parsing text, and so that they never
clash with the attributes `logging.LogRecord` reserves (``name``, ``msg``, ...).

A disabled level costs one ``isEnabledFor`` check: nothing is formatted and no record
is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias, final

from ._breaker import CallRejected, CircuitState, CircuitStateChanged
from ._bulkhead import BulkheadAcquired, BulkheadRejected, BulkheadReleased
from ._compose._telemetry import ModelCallEnded, ModelCallStarted
from ._fallback import FellBack
from ._hedge import HedgeLaunched, HedgeWon
from ._hooks import Event
from ._limit import AcquireCancelled, AcquireWaited, RateLimited, TokensSettled
from ._observe import AttemptEnded, AttemptStarted, CallEnded, CallStarted, Outcome
from ._retry import RetryGaveUp, RetryScheduled
from ._timeout import TimedOut


__all__ = ("LoggingHook",)

DEFAULT_LOGGER: Final = "seawall"

# What one event becomes: the message template (after the "<primitive> '<name>': "
# prefix), its arguments, and the event's own structured fields.
_Line: TypeAlias = tuple[str, tuple[object, ...], dict[str, object]]
_Format: TypeAlias = Callable[[Any, bool], _Line]

# States whose entry is worth a warning: the breaker starts refusing calls.
_REFUSING: Final = frozenset({CircuitState.OPEN, CircuitState.FORCED_OPEN})


@final
class LoggingHook:
    """A hook that logs each event as one `logging` record, with structured fields.

    Attach it like any hook (``hooks=(seawall.LoggingHook(),)``) to any primitive or
    to `seawall.with_telemetry`. Each event gives one record whose message reads like
    ``retry 'api': attempt 2 failed with ConnectionError; retrying in 0.4 s`` and
    whose attributes hold the same facts for machines:

    ==========================  ===============================================================
    Attribute                   Value
    ==========================  ===============================================================
    ``seawall_name``            The primitive's name (``event.name``).
    ``seawall_primitive``       ``"circuit_breaker"``, ``"retry"``, ``"hedge"``,
                                ``"rate_limiter"``, ``"timeout"``, ``"bulkhead"``,
                                ``"fallback"`` or ``"llm"``; ``None`` for an event seawall
                                does not know.
    ``seawall_event``           The event's class name, e.g. ``"RetryScheduled"``.
    ``seawall_attempt``         The attempt number (retries, hedges, attempts).
    ``seawall_delay``           The retry delay, in seconds.
    ``seawall_state``           The breaker's new state (``"open"``), or the state that
                                refused a call; ``seawall_old_state`` the state left.
    ``seawall_reason``          Why: a breaker transition, a give-up or hedge reason.
    ``seawall_retry_after``     Seconds the caller is told to wait (rejections).
    ``seawall_outcome``         How a call or attempt ended (``"success"``, ``"failure"``,
                                ``"rejected"``, ``"timeout"``, ``"cancelled"``).
    ``seawall_duration``        Seconds a call or attempt took (for a hedge win, the
                                latency of the winning result).
    ``seawall_exception``       The exception's type name, never its text (see below).
    ==========================  ===============================================================

    and, where the event has them: ``seawall_generation``, ``seawall_result_retried``,
    ``seawall_hedged``, ``seawall_cost``, ``seawall_key``, ``seawall_wait``,
    ``seawall_restored``, ``seawall_estimated``, ``seawall_actual``, ``seawall_delta``,
    ``seawall_refunded``, ``seawall_timeout``, ``seawall_in_flight``, ``seawall_queued``,
    ``seawall_stream``, ``seawall_kind``, and for model calls ``seawall_operation``,
    ``seawall_provider``, ``seawall_request_model``, ``seawall_response_model``,
    ``seawall_response_id``, ``seawall_input_tokens``, ``seawall_output_tokens``,
    ``seawall_finish_reasons`` (a list) and ``seawall_time_to_first_chunk``. Enums are
    logged as their values, so every field is a str, a number, a bool, a list or
    ``None``, ready for a JSON formatter.

    Levels:

    * WARNING: a breaker entering OPEN or FORCED_OPEN (`seawall.CircuitStateChanged`),
      and every rejection, give-up and timeout: `seawall.CallRejected`,
      `seawall.RetryGaveUp`, `seawall.RateLimited`, `seawall.BulkheadRejected`,
      `seawall.TimedOut`.
    * *level*: the other point events, those that tell something happened: other
      breaker transitions, `seawall.RetryScheduled`, `seawall.HedgeLaunched`,
      `seawall.HedgeWon` of a hedged call, `seawall.AcquireWaited`,
      `seawall.AcquireCancelled`, `seawall.FellBack`; and events of classes seawall
      does not know.
    * *call_level*: the start and end of calls, attempts and model calls
      (`seawall.CallStarted`, `seawall.CallEnded`, `seawall.AttemptStarted`,
      `seawall.AttemptEnded`, `seawall.ModelCallStarted`, `seawall.ModelCallEnded`),
      and the point events every call reports, as many as calls:
      `seawall.BulkheadAcquired`, `seawall.BulkheadReleased`, `seawall.TokensSettled`,
      `seawall.AcquireWaited` without a wait, and `seawall.HedgeWon` of a call that was
      not hedged. By default (``call_level=None``) these are not logged at all, and the
      hook tells the primitives so (``wants_call_events`` is false): a primitive whose
      hooks all decline builds no call or attempt event, and its success path costs
      what it costs without hooks.

    Nothing is built for a level the logger does not log: one ``isEnabledFor`` check,
    no message, no record.

    Call arguments, results and chunks are never logged. Exceptions are logged by
    type name only, since their messages may quote requests, keys or tokens; set
    *include_exception_text* to add the text (to the message and as
    ``seawall_exception_text``). Rate limiter keys are logged (``seawall_key``, as a
    str), as they are in `seawall.RateLimitedError`.

    Example::

        import logging

        logging.basicConfig(level=logging.INFO)
        retrier = seawall.Retrier(hooks=(seawall.LoggingHook("myapp.resilience"),))

    Args:
        logger: The logger: a `logging.Logger`, a logger name, or ``None`` (default)
            for the ``"seawall"`` logger.
        level: The level of point events that are not warnings (default
            ``logging.INFO``); an int or a level name such as ``"INFO"``.
        call_level: The level of call, attempt and model-call starts and ends, and
            of the point events every call reports; an int, a level name, or
            ``None`` (default) not to log them, nor have them built.
        include_exception_text: Whether to log exceptions' messages as well as their
            types (default ``False``).

    Raises:
        TypeError: *logger* is not a `logging.Logger`, a str or ``None``; a level is
            not an int or a str; *include_exception_text* is not a bool.
        ValueError: *logger* is an empty name; a level is negative or an unknown name.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_call_level", "_include_text", "_level", "_levels", "_logger")

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        level: int | str = logging.INFO,
        call_level: int | str | None = None,
        include_exception_text: bool = False,
    ) -> None:
        self._logger = _resolve_logger(logger)
        self._level = _check_level("level", level)
        self._call_level = None if call_level is None else _check_level("call_level", call_level)
        if not isinstance(include_exception_text, bool):
            msg = (
                "include_exception_text must be a bool, "
                f"got {type(include_exception_text).__name__}"
            )
            raise TypeError(msg)
        self._include_text = include_exception_text
        # The level of each known event type, so that a call costs one lookup.
        levels: dict[type[Event], int | None] = dict.fromkeys(_FORMATS, self._level)
        levels.update(dict.fromkeys(_WARNING_EVENTS, logging.WARNING))
        levels.update(dict.fromkeys(_CALL_EVENTS, self._call_level))
        levels.update(dict.fromkeys(_PER_CALL_EVENTS, self._call_level))
        self._levels: Mapping[type[Event], int | None] = levels

    @property
    def wants_call_events(self) -> bool:
        """Whether call and attempt events are logged: *call_level* is not ``None``.

        Primitives read it once, when they are made (see `seawall.Hook`).
        """
        return self._call_level is not None

    @property
    def logger(self) -> logging.Logger:
        """The logger records go to."""
        return self._logger

    def __repr__(self) -> str:
        return (
            f"LoggingHook(logger={self._logger.name!r}, "
            f"level={logging.getLevelName(self._level)!r}, "
            f"call_level={_level_name(self._call_level)!r}, "
            f"include_exception_text={self._include_text!r})"
        )

    def __call__(self, event: Event) -> None:
        """Log *event* as one record, if the logger logs its level."""
        kind = type(event)
        level = self._levels.get(kind, self._level)
        if isinstance(event, CircuitStateChanged):
            if event.new_state in _REFUSING:
                level = logging.WARNING
        elif isinstance(event, HedgeWon) and event.hedged:
            level = self._level  # worth telling: a call needed hedging
        elif isinstance(event, AcquireWaited) and event.wait == 0:
            level = self._call_level  # every blocking acquire reports one
        logger = self._logger
        if level is None or not logger.isEnabledFor(level):
            return
        entry = _FORMATS.get(kind)
        primitive: str | None = None
        template: str = "%s"
        args: tuple[object, ...] = (kind.__name__,)
        fields: dict[str, object] = {}
        if entry is not None:
            primitive, format_event = entry
            if primitive is None:  # calls and attempts say which primitive they belong to
                primitive = _primitive_of(event)
            template, args, fields = format_event(event, self._include_text)
        label = "event" if primitive is None else primitive.replace("_", " ")
        extra: dict[str, object] = {
            "seawall_name": event.name,
            "seawall_primitive": primitive,
            "seawall_event": kind.__name__,
        }
        extra.update(fields)
        # The template is a constant per event kind: records still group by message.
        logger.log(level, "%s %r: " + template, label, event.name, *args, extra=extra)  # noqa: G003


def _level_name(level: int | None) -> str | None:
    return None if level is None else logging.getLevelName(level)


def _resolve_logger(logger: object) -> logging.Logger:
    if logger is None:
        return logging.getLogger(DEFAULT_LOGGER)
    if isinstance(logger, str):
        if not logger:
            msg = "logger must be a logging.Logger or a non-empty logger name, got ''"
            raise ValueError(msg)
        return logging.getLogger(logger)
    if isinstance(logger, logging.Logger):
        return logger
    # A LoggerAdapter would replace our extra= with its own, losing every field.
    msg = f"logger must be a logging.Logger, a logger name or None, got {type(logger).__name__}"
    raise TypeError(msg)


def _check_level(param: str, value: object) -> int:
    if isinstance(value, str):
        number = logging.getLevelName(value)
        if isinstance(number, int):
            return number
        msg = f"{param} must be a level such as logging.INFO or 'INFO', got {value!r}"
        raise ValueError(msg)
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{param} must be an int or a level name, got {type(value).__name__}"
        raise TypeError(msg)
    if value < 0:
        msg = f"{param} must be >= 0, got {value}"
        raise ValueError(msg)
    return value


def _primitive_of(event: Event) -> str | None:
    if isinstance(event, (CallStarted, AttemptStarted)):
        return event.primitive
    if isinstance(event, (CallEnded, AttemptEnded)):
        return event.started.primitive
    return None  # pragma: no cover -- only call and attempt events are registered so


# -- formatting --------------------------------------------------------------------------


def _number(value: float) -> str:
    """Format seconds or tokens briefly: ``0.4``, ``12.5``, ``30``, ``0.123``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    if text in {"0", "-0"} and value != 0:
        return f"{value:.2g}"
    return text


def _plural(count: float, word: str) -> str:
    return word if count == 1 else f"{word}s"


def _exception(exc: BaseException | None, include_text: bool, fields: dict[str, object]) -> str:
    """Describe *exc* for a message and add its fields; ``""`` when it is ``None``."""
    if exc is None:
        return ""
    type_name = type(exc).__name__
    fields["seawall_exception"] = type_name
    if not include_text:
        return type_name
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 -- a broken __str__ must not lose the record
        text = "<unprintable>"
    fields["seawall_exception_text"] = text
    return f"{type_name}: {text}" if text else type_name


def _state_changed(event: CircuitStateChanged, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_state": event.new_state.value,
        "seawall_old_state": event.old_state.value,
        "seawall_reason": event.reason,
        "seawall_generation": event.generation,
    }
    args = (event.old_state.value, event.new_state.value, event.reason)
    return "%s -> %s (%s)", args, fields


def _call_rejected(event: CallRejected, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_state": event.state.value,
        "seawall_retry_after": event.retry_after,
    }
    if event.retry_after is None:
        return "call rejected while %s", (event.state.value,), fields
    args = (event.state.value, _number(event.retry_after))
    return "call rejected while %s; retry after %s s", args, fields


def _retry_scheduled(event: RetryScheduled, include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_attempt": event.attempt,
        "seawall_delay": event.delay,
        "seawall_result_retried": event.result_retried,
    }
    delay = _number(event.delay)
    if event.exception is None:
        return (
            "attempt %d returned a result to retry; retrying in %s s",
            (
                event.attempt,
                delay,
            ),
            fields,
        )
    failure = _exception(event.exception, include_text, fields)
    return "attempt %d failed with %s; retrying in %s s", (event.attempt, failure, delay), fields


def _retry_gave_up(event: RetryGaveUp, include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_attempt": event.attempts,
        "seawall_reason": event.reason.value,
    }
    attempts = (event.attempts, _plural(event.attempts, "attempt"), event.reason.value)
    if event.exception is None:
        return "gave up after %d %s (%s); returning the last result", attempts, fields
    failure = _exception(event.exception, include_text, fields)
    return "gave up after %d %s (%s); last failure %s", (*attempts, failure), fields


def _hedge_launched(event: HedgeLaunched, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_attempt": event.attempt,
        "seawall_reason": event.reason.value,
    }
    return "launched hedge %d (%s)", (event.attempt, event.reason.value), fields


def _hedge_won(event: HedgeWon, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_attempt": event.attempt,
        "seawall_duration": event.latency,
        "seawall_hedged": event.hedged,
    }
    who = "the primary" if event.attempt == 0 else f"hedge {event.attempt}"
    hedged = "hedged" if event.hedged else "not hedged"
    return "won by %s in %s s (%s)", (who, _number(event.latency), hedged), fields


def _key(key: object, fields: dict[str, object]) -> str:
    if key is None:
        return ""
    fields["seawall_key"] = str(key)
    return f" for key {key!r}"


def _rate_limited(event: RateLimited, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_cost": event.cost,
        "seawall_retry_after": event.retry_after,
    }
    where = _key(event.key, fields)
    args = (_number(event.cost), _plural(event.cost, "token"), where, _number(event.retry_after))
    return "refused %s %s%s; retry after %s s", args, fields


def _acquire_waited(event: AcquireWaited, _include_text: bool) -> _Line:
    fields: dict[str, object] = {"seawall_cost": event.cost, "seawall_wait": event.wait}
    where = _key(event.key, fields)
    args = (_number(event.wait), _number(event.cost), _plural(event.cost, "token"), where)
    return "waited %s s for %s %s%s", args, fields


def _acquire_cancelled(event: AcquireCancelled, _include_text: bool) -> _Line:
    fields: dict[str, object] = {"seawall_cost": event.cost, "seawall_restored": event.restored}
    where = _key(event.key, fields)
    args = (where, _number(event.restored), _number(event.cost), _plural(event.cost, "token"))
    return "waiter cancelled%s; %s of %s %s restored", args, fields


def _tokens_settled(event: TokensSettled, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_estimated": event.estimated,
        "seawall_actual": event.actual,
        "seawall_delta": event.delta,
        "seawall_refunded": event.refunded,
    }
    sign = "+" if event.delta >= 0 else "-"
    args = (_number(event.actual), _number(event.estimated), sign, _number(abs(event.delta)))
    return "used %s tokens against an estimate of %s (%s%s)", args, fields


def _timed_out(event: TimedOut, _include_text: bool) -> _Line:
    fields: dict[str, object] = {"seawall_timeout": event.timeout}
    return "call timed out after %s s", (_number(event.timeout),), fields


def _bulkhead_rejected(event: BulkheadRejected, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_in_flight": event.in_flight,
        "seawall_queued": event.queued,
    }
    return "call rejected (%d in flight, %d queued)", (event.in_flight, event.queued), fields


def _bulkhead_acquired(event: BulkheadAcquired, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_in_flight": event.in_flight,
        "seawall_queued": event.queued,
        "seawall_wait": event.wait,
    }
    if event.wait == 0:
        return "slot acquired (%d in flight, %d queued)", (event.in_flight, event.queued), fields
    args = (_number(event.wait), event.in_flight, event.queued)
    return "slot acquired after %s s (%d in flight, %d queued)", args, fields


def _bulkhead_released(event: BulkheadReleased, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_in_flight": event.in_flight,
        "seawall_queued": event.queued,
    }
    return "slot released (%d in flight, %d queued)", (event.in_flight, event.queued), fields


def _fell_back(event: FellBack, include_text: bool) -> _Line:
    fields: dict[str, object] = {}
    if event.exception is None:
        return "answered with the fallback instead of a rejected result", (), fields
    failure = _exception(event.exception, include_text, fields)
    return "answered with the fallback after %s", (failure,), fields


def _ending(
    outcome: Outcome, exc: BaseException | None, duration: float, include_text: bool
) -> tuple[str, dict[str, object]]:
    """Describe how a call or attempt ended: ``failure (ValueError) in 0.5 s``."""
    fields: dict[str, object] = {"seawall_outcome": outcome.value, "seawall_duration": duration}
    failure = _exception(exc, include_text, fields)
    detail = f" ({failure})" if failure else ""
    return f"{outcome.value}{detail} in {_number(duration)} s", fields


def _call_started(event: CallStarted, _include_text: bool) -> _Line:
    fields: dict[str, object] = {"seawall_stream": event.stream}
    return ("stream started", (), fields) if event.stream else ("call started", (), fields)


def _call_ended(event: CallEnded, include_text: bool) -> _Line:
    ending, fields = _ending(event.outcome, event.exception, event.duration, include_text)
    fields["seawall_stream"] = event.started.stream
    what = "stream" if event.started.stream else "call"
    return "%s ended: %s", (what, ending), fields


def _attempt_started(event: AttemptStarted, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_attempt": event.attempt,
        "seawall_kind": event.kind.value,
    }
    return "attempt %d started (%s)", (event.attempt, event.kind.value), fields


def _attempt_ended(event: AttemptEnded, include_text: bool) -> _Line:
    ending, fields = _ending(event.outcome, event.exception, event.duration, include_text)
    fields["seawall_attempt"] = event.started.attempt
    fields["seawall_kind"] = event.started.kind.value
    return "attempt %d ended: %s", (event.started.attempt, ending), fields


def _model_call(started: ModelCallStarted) -> str:
    """Name a model call: ``chat stream to gpt-4o (openai)``."""
    parts = [started.operation, "stream" if started.stream else "call"]
    if started.request_model is not None:
        parts.append(f"to {started.request_model}")
    if started.provider is not None:
        parts.append(f"({started.provider})")
    return " ".join(parts)


def _model_call_started(event: ModelCallStarted, _include_text: bool) -> _Line:
    fields: dict[str, object] = {
        "seawall_operation": event.operation,
        "seawall_provider": event.provider,
        "seawall_request_model": event.request_model,
        "seawall_stream": event.stream,
    }
    return "%s started", (_model_call(event),), fields


def _model_call_ended(event: ModelCallEnded, include_text: bool) -> _Line:
    ending, fields = _ending(event.outcome, event.exception, event.duration, include_text)
    started = event.started
    fields.update(
        {
            "seawall_operation": started.operation,
            "seawall_provider": event.provider,
            "seawall_request_model": started.request_model,
            "seawall_stream": started.stream,
            "seawall_response_model": event.response_model,
            "seawall_response_id": event.response_id,
            "seawall_input_tokens": event.input_tokens,
            "seawall_output_tokens": event.output_tokens,
            "seawall_finish_reasons": list(event.finish_reasons),
            "seawall_time_to_first_chunk": event.time_to_first_chunk,
        }
    )
    details: list[str] = []
    if event.response_model is not None:
        details.append(f"model {event.response_model}")
    if event.input_tokens is not None or event.output_tokens is not None:
        details.append(f"tokens {event.input_tokens} in, {event.output_tokens} out")
    if event.finish_reasons:
        details.append(f"finish {','.join(event.finish_reasons)}")
    if event.time_to_first_chunk is not None:
        details.append(f"first chunk after {_number(event.time_to_first_chunk)} s")
    summary = "; ".join(details)
    return (
        "%s ended: %s%s",
        (_model_call(started), ending, f"; {summary}" if summary else ""),
        fields,
    )


# Each known event: its primitive (None: the event says) and its formatter.
_FORMATS: Final[Mapping[type[Event], tuple[str | None, _Format]]] = {
    CircuitStateChanged: ("circuit_breaker", _state_changed),
    CallRejected: ("circuit_breaker", _call_rejected),
    RetryScheduled: ("retry", _retry_scheduled),
    RetryGaveUp: ("retry", _retry_gave_up),
    HedgeLaunched: ("hedge", _hedge_launched),
    HedgeWon: ("hedge", _hedge_won),
    RateLimited: ("rate_limiter", _rate_limited),
    AcquireWaited: ("rate_limiter", _acquire_waited),
    AcquireCancelled: ("rate_limiter", _acquire_cancelled),
    TokensSettled: ("rate_limiter", _tokens_settled),
    TimedOut: ("timeout", _timed_out),
    BulkheadRejected: ("bulkhead", _bulkhead_rejected),
    BulkheadAcquired: ("bulkhead", _bulkhead_acquired),
    BulkheadReleased: ("bulkhead", _bulkhead_released),
    FellBack: ("fallback", _fell_back),
    CallStarted: (None, _call_started),
    CallEnded: (None, _call_ended),
    AttemptStarted: (None, _attempt_started),
    AttemptEnded: (None, _attempt_ended),
    ModelCallStarted: ("llm", _model_call_started),
    ModelCallEnded: ("llm", _model_call_ended),
}

_WARNING_EVENTS: Final = (CallRejected, RetryGaveUp, RateLimited, BulkheadRejected, TimedOut)
_CALL_EVENTS: Final = (
    CallStarted,
    CallEnded,
    AttemptStarted,
    AttemptEnded,
    ModelCallStarted,
    ModelCallEnded,
)
# Point events reported for every call (HedgeWon: unless the call was hedged), as
# frequent as the call events, so at their level.
_PER_CALL_EVENTS: Final = (BulkheadAcquired, BulkheadReleased, TokensSettled, HedgeWon)
