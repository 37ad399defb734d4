"""Error classification: what an exception says about the call that raised it.

`classify` turns any exception into a `Classification` (a kind, the server's requested wait,
the HTTP status), and `is_retryable` is the retrier's default predicate built on it. Nothing
here imports an HTTP or LLM client: statuses, headers and provider error codes are read by
duck typing, and transport errors are recognised by class name. The first rule that applies
wins:

=====  ===================================================  ===============================
Step   The exception (or, for names, a class in its MRO)     Kind
=====  ===================================================  ===============================
1      ``asyncio.CancelledError``, trio's ``Cancelled``,     CANCELLED
       ``concurrent.futures.CancelledError``,
       ``KeyboardInterrupt``, ``SystemExit``,
       ``GeneratorExit``
2      an exception group                                    see "Exception groups" below
3      seawall's ``RejectedError`` (open breaker, ...)       TRANSIENT, its ``retry_after``
4      HTTP status 429 with a quota code                     QUOTA_EXHAUSTED
4      HTTP status 408, 425, 429                             TRANSIENT
4      HTTP status 501, 505                                  CALLER_ERROR
4      any other HTTP status 5xx (500, 502, 503, 504, 529)   TRANSIENT
4      any other HTTP status 4xx (400, 401, 403, 404, 422)   CALLER_ERROR
5      a quota code, no 4xx/5xx status                       QUOTA_EXHAUSTED
6      ``overloaded_error``, no 4xx/5xx status               TRANSIENT
7      ``TimeoutError``, ``ConnectionError`` (builtin or     TRANSIENT
       requests'), ``TimeoutException``, ``NetworkError``,
       ``RemoteProtocolError`` (httpx), ``APITimeoutError``,
       ``APIConnectionError`` (openai, anthropic),
       ``Timeout``, ``ChunkedEncodingError`` (requests),
       ``ClientConnectionError``, ``ServerTimeoutError``,
       ``ServerDisconnectedError``, ``ClientPayloadError``
       (aiohttp), ``TooSlowError`` (trio)
7      ``UnsupportedProtocol``, ``InvalidURL``,              CALLER_ERROR
       ``LocalProtocolError`` (httpx), ``ValueError``,
       ``TypeError`` (and so pydantic's ``ValidationError``)
8      anything else                                         UNKNOWN
=====  ===================================================  ===============================

Where the facts come from:

- **Status**: the first int in 100..599 among ``exc.status_code``, ``exc.status`` (aiohttp,
  urllib), ``exc.response.status_code`` (requests, httpx, openai, anthropic) and
  ``exc.response.status``. Only a 4xx or 5xx status decides the kind; a 2xx status (an
  error event inside a streamed 200 response) is reported but decides nothing.
- **Quota and overload codes**: ``exc.code``, ``exc.type`` and ``exc.body`` (a flat dict, or
  one nesting them under ``"error"``). Quota codes are ``insufficient_quota``,
  ``billing_hard_limit_reached``, ``billing_not_active`` and ``quota_exceeded``; the overload
  code is anthropic's ``overloaded_error``.
- **Class names** are matched on ``__name__`` along the MRO, most derived class first, so
  ``requests.exceptions.InvalidURL`` (a ``ValueError``) and ``httpx.LocalProtocolError`` (a
  transport error) are caller errors. The verdict is cached per exception type.
- **Retry-After** (any kind but CANCELLED): an ``exc.retry_after`` attribute (seconds, a
  ``timedelta`` or header text), else the ``retry-after-ms`` and then ``retry-after`` header of
  ``exc.response.headers`` or ``exc.headers``. Header containers are asked with ``.get`` for
  the lowercase name (httpx, requests, aiohttp and http.client ignore case); a plain dict is
  also searched in any case. A header holds delta-seconds (fractions allowed) or an
  HTTP-date, read against the current UTC wall time; a past date gives 0. Negative, infinite
  or unreadable values are ignored.

Exception groups: if every leaf is CANCELLED the group is CANCELLED; if any leaf is
CALLER_ERROR or QUOTA_EXHAUSTED, the first such leaf decides (retrying cannot fix it); if
any leaf is TRANSIENT, the group is TRANSIENT with the largest ``retry_after`` of its leaves;
otherwise it is the first non-cancelled leaf's verdict (UNKNOWN).

Causes: an UNKNOWN exception raised ``from`` another (a wrapper around a timeout, say) takes
the verdict of the first cause along the ``__cause__`` chain that is not UNKNOWN, following
at most four links.

Classification never raises: a property that raises, a garbage header or an odd type of
status gives the same answer as a missing one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Final, final

from ._errors import RejectedError


__all__ = ("Classification", "ErrorKind", "classify", "is_retryable")


@final
class ErrorKind(enum.Enum):
    """What an exception says about the call that raised it.

    .. versionadded:: 0.1.0
    """

    TRANSIENT = "transient"
    """The dependency failed for now (timeout, connection error, 429, 5xx); retry may help."""

    CALLER_ERROR = "caller_error"
    """The request itself is wrong (4xx, validation error); repeating it cannot help."""

    QUOTA_EXHAUSTED = "quota_exhausted"
    """The account is out of quota or credit; waiting a few seconds will not help."""

    CANCELLED = "cancelled"
    """The caller gave up (task cancellation, interrupt, shutdown); never a failure."""

    UNKNOWN = "unknown"
    """Nothing recognisable; a breaker counts it, the default retrier does not retry it."""


@final
@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict of `classify`.

    Attributes:
        kind: What the exception says about the call.
        retry_after: Seconds the server (or a seawall primitive) asked the caller to wait
            before trying again, or ``None`` when it did not say. Always finite and >= 0.
            Defaults to ``None``.
        status_code: The HTTP status the exception carried, or ``None``. Defaults to ``None``.

    .. versionadded:: 0.1.0
    """

    kind: ErrorKind
    retry_after: float | None = None
    status_code: int | None = None


# -- rules, as data ------------------------------------------------------------------------

_CANCEL_TYPES: Final = (
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)

_KIND_BY_CLASS_NAME: Final = MappingProxyType(
    {
        # Builtins; by name so that asyncio's and concurrent.futures' own TimeoutError
        # (distinct classes on Python 3.10) and requests' ConnectionError match as well.
        "TimeoutError": ErrorKind.TRANSIENT,
        "ConnectionError": ErrorKind.TRANSIENT,
        "ValueError": ErrorKind.CALLER_ERROR,
        "TypeError": ErrorKind.CALLER_ERROR,
        # httpx (and httpx2): timeouts, network failures, a server breaking the protocol.
        "TimeoutException": ErrorKind.TRANSIENT,
        "NetworkError": ErrorKind.TRANSIENT,
        "RemoteProtocolError": ErrorKind.TRANSIENT,
        "UnsupportedProtocol": ErrorKind.CALLER_ERROR,
        "InvalidURL": ErrorKind.CALLER_ERROR,
        "LocalProtocolError": ErrorKind.CALLER_ERROR,
        # openai, anthropic and the other SDKs generated the same way.
        "APITimeoutError": ErrorKind.TRANSIENT,
        "APIConnectionError": ErrorKind.TRANSIENT,
        # requests.
        "Timeout": ErrorKind.TRANSIENT,
        "ChunkedEncodingError": ErrorKind.TRANSIENT,
        # aiohttp.
        "ClientConnectionError": ErrorKind.TRANSIENT,
        "ServerTimeoutError": ErrorKind.TRANSIENT,
        "ServerDisconnectedError": ErrorKind.TRANSIENT,
        "ClientPayloadError": ErrorKind.TRANSIENT,
        # trio.fail_after; anyio's and asyncio's deadlines raise TimeoutError already.
        "TooSlowError": ErrorKind.TRANSIENT,
    }
)

_QUOTA_CODES: Final = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "quota_exceeded"}
)
_OVERLOADED_CODES: Final = frozenset({"overloaded_error"})

_FIRST_STATUS: Final = 100
_LAST_STATUS: Final = 599
_FIRST_CLIENT_ERROR: Final = 400
_FIRST_SERVER_ERROR: Final = 500
_TOO_MANY_REQUESTS: Final = 429
_TRANSIENT_4XX: Final = frozenset({408, 425, _TOO_MANY_REQUESTS})
_PERMANENT_5XX: Final = frozenset({501, 505})

_RETRY_AFTER_MS: Final = "retry-after-ms"
_RETRY_AFTER: Final = "retry-after"

# Every attribute the duck-typed rules read from an exception itself.
_DUCK_ATTRIBUTES: Final = frozenset(
    {"status_code", "status", "response", "headers", "retry_after", "code", "type", "body"}
)

_MAX_CAUSES: Final = 4
_MAX_GROUP_NESTING: Final = 8
_TYPE_CACHE_SIZE: Final = 512

_CANCELLED: Final = Classification(ErrorKind.CANCELLED)
_UNKNOWN: Final = Classification(ErrorKind.UNKNOWN)


# -- public API ----------------------------------------------------------------------------


def classify(exc: BaseException) -> Classification:
    """Classify *exc* by the rules in this module's docstring.

    Args:
        exc: Any exception, from any library; it is only read, never raised.

    Returns:
        The verdict. It never raises, whatever *exc* carries.

    .. versionadded:: 0.1.0
    """
    return _classify_with_causes(exc, 0)


def is_retryable(exc: BaseException) -> bool:
    """Return whether *exc* is worth retrying: ``classify(exc).kind`` is TRANSIENT.

    This is the retrier's default ``is_retryable``.

    Args:
        exc: Any exception.

    Returns:
        ``True`` for timeouts, connection errors, HTTP 408/425/429 and 5xx (except 501 and
        505), provider overload and seawall's own rejections; ``False`` otherwise.

    .. versionadded:: 0.1.0
    """
    return _classify_with_causes(exc, 0).kind is ErrorKind.TRANSIENT


# -- the decision --------------------------------------------------------------------------


def _classify_with_causes(exc: BaseException, nesting: int) -> Classification:
    verdict = _classify_one(exc, nesting)
    if verdict.kind is not ErrorKind.UNKNOWN:
        return verdict
    cause = exc.__cause__
    for _ in range(_MAX_CAUSES):
        if cause is None:
            break
        from_cause = _classify_one(cause, nesting)
        if from_cause.kind is not ErrorKind.UNKNOWN:
            return from_cause
        cause = cause.__cause__
    return verdict


def _classify_one(exc: BaseException, nesting: int) -> Classification:
    facts = _type_facts(type(exc))
    if facts.cancelled:
        return _CANCELLED
    if facts.group:
        return _classify_group(exc, nesting)
    if isinstance(exc, RejectedError):
        return Classification(ErrorKind.TRANSIENT, _seconds_from_value(exc.retry_after))
    if not facts.duck_typed and exc.__dict__.keys().isdisjoint(_DUCK_ATTRIBUTES):
        # The common case of a plain exception: nothing to read, no allocation.
        return facts.by_name
    response = _attr(exc, "response")
    status = _status_of(exc, response)
    retry_after = _retry_after_of(exc, response)
    if status is not None and status >= _FIRST_CLIENT_ERROR:
        kind = _kind_for_status(status, exc)
    else:
        codes = _error_codes(exc)
        if not codes.isdisjoint(_QUOTA_CODES):
            kind = ErrorKind.QUOTA_EXHAUSTED
        elif not codes.isdisjoint(_OVERLOADED_CODES):
            kind = ErrorKind.TRANSIENT
        elif status is None and retry_after is None:
            return facts.by_name
        else:
            kind = facts.by_name.kind
    return Classification(kind, retry_after, status)


def _kind_for_status(status: int, exc: BaseException) -> ErrorKind:
    if status in _TRANSIENT_4XX:
        if status == _TOO_MANY_REQUESTS and not _error_codes(exc).isdisjoint(_QUOTA_CODES):
            return ErrorKind.QUOTA_EXHAUSTED
        return ErrorKind.TRANSIENT
    if status in _PERMANENT_5XX or status < _FIRST_SERVER_ERROR:
        return ErrorKind.CALLER_ERROR
    return ErrorKind.TRANSIENT


def _classify_group(group: BaseException, nesting: int) -> Classification:
    leaves = _attr(group, "exceptions")
    if not isinstance(leaves, tuple) or nesting >= _MAX_GROUP_NESTING:
        return _UNKNOWN
    verdicts = [
        _classify_with_causes(leaf, nesting + 1)
        for leaf in leaves
        if isinstance(leaf, BaseException)
    ]
    if not verdicts:
        return _UNKNOWN
    live = [verdict for verdict in verdicts if verdict.kind is not ErrorKind.CANCELLED]
    if not live:
        return _CANCELLED
    for verdict in live:
        if verdict.kind is ErrorKind.CALLER_ERROR or verdict.kind is ErrorKind.QUOTA_EXHAUSTED:
            return verdict
    transient = [verdict for verdict in live if verdict.kind is ErrorKind.TRANSIENT]
    if not transient:
        return live[0]
    waits = [verdict.retry_after for verdict in live if verdict.retry_after is not None]
    return Classification(ErrorKind.TRANSIENT, max(waits, default=None), transient[0].status_code)


# -- facts that depend only on the type: computed once per type ----------------------------


@final
@dataclass(frozen=True, slots=True)
class _TypeFacts:
    cancelled: bool
    group: bool
    # The verdict of the class-name rules alone, shared by every plain instance of the type.
    by_name: Classification
    # Whether the class itself may answer a duck-typed read (a class attribute, a property,
    # a slot or a custom __getattr__); if not, only the instance __dict__ can.
    duck_typed: bool


# The only module-level mutable object of seawall: a cache of facts that follow from a class
# alone, so it changes no behaviour, only speed. Emptied when full, so that classes created at
# run time (a test's, a plugin's) cannot grow it without bound. Each dict operation is atomic,
# and two threads racing on a miss compute the same value.
_FACTS_BY_TYPE: Final[dict[type[BaseException], _TypeFacts]] = {}


def _type_facts(cls: type[BaseException]) -> _TypeFacts:
    facts = _FACTS_BY_TYPE.get(cls)
    if facts is None:
        facts = _compute_type_facts(cls)
        if len(_FACTS_BY_TYPE) >= _TYPE_CACHE_SIZE:
            _FACTS_BY_TYPE.clear()
        _FACTS_BY_TYPE[cls] = facts
    return facts


def _compute_type_facts(cls: type[BaseException]) -> _TypeFacts:
    mro = cls.__mro__
    cancelled = issubclass(cls, _CANCEL_TYPES) or any(
        base.__name__ == "Cancelled" and _is_trio_module(base.__module__) for base in mro
    )
    # By name, because on Python 3.10 the group classes come from the exceptiongroup backport.
    group = any(base.__name__ == "BaseExceptionGroup" for base in mro)
    kind = next(
        (
            _KIND_BY_CLASS_NAME[base.__name__]
            for base in mro
            if base.__name__ in _KIND_BY_CLASS_NAME
        ),
        ErrorKind.UNKNOWN,
    )
    by_name = _UNKNOWN if kind is ErrorKind.UNKNOWN else Classification(kind)
    duck_typed = cls.__getattribute__ is not BaseException.__getattribute__ or any(
        name in vars(base) for base in mro for name in (*_DUCK_ATTRIBUTES, "__getattr__")
    )
    return _TypeFacts(cancelled=cancelled, group=group, by_name=by_name, duck_typed=duck_typed)


def _is_trio_module(module: object) -> bool:
    return isinstance(module, str) and (module == "trio" or module.startswith("trio."))


# -- duck-typed reads: each tolerates anything ---------------------------------------------


def _attr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 -- a foreign property may raise anything; we must not
        return None


def _status_of(exc: BaseException, response: object) -> int | None:
    for value in (_attr(exc, "status_code"), _attr(exc, "status")):
        status = _as_status(value)
        if status is not None:
            return status
    if response is None:
        return None
    for value in (_attr(response, "status_code"), _attr(response, "status")):
        status = _as_status(value)
        if status is not None:
            return status
    return None


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        status = int(value)
        if _FIRST_STATUS <= status <= _LAST_STATUS:
            return status
    return None


def _error_codes(exc: BaseException) -> frozenset[str]:
    values = [_attr(exc, "code"), _attr(exc, "type")]
    body = _attr(exc, "body")
    if isinstance(body, dict):
        error = body.get("error")
        values += (body.get("code"), body.get("type"), error)
        if isinstance(error, dict):
            values += (error.get("code"), error.get("type"))
    # Only strings: an unhashable value (a list, a dict) could not even be looked up.
    return frozenset(value for value in values if isinstance(value, str))


def _retry_after_of(exc: BaseException, response: object) -> float | None:
    seconds = _seconds_from_value(_attr(exc, "retry_after"))
    if seconds is not None:
        return seconds
    if response is not None:
        seconds = _seconds_from_headers(_attr(response, "headers"))
        if seconds is not None:
            return seconds
    return _seconds_from_headers(_attr(exc, "headers"))


def _seconds_from_value(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return _clean_seconds(float(value))
        except OverflowError:  # an int too large for a float
            return None
    if isinstance(value, timedelta):
        return _clean_seconds(value.total_seconds())
    return _seconds_from_text(value)


def _seconds_from_headers(headers: object) -> float | None:
    if headers is None:
        return None
    millis = _parse_delta(_header(headers, _RETRY_AFTER_MS))
    if millis is not None:
        return millis / 1000
    return _seconds_from_text(_header(headers, _RETRY_AFTER))


def _header(headers: object, name: str) -> object:
    # Header containers (httpx, requests, aiohttp, http.client) ignore case, so one lookup of
    # the lowercase name is enough; only a plain dict must be scanned for other spellings.
    get = _attr(headers, "get")
    if not callable(get):
        return None
    try:
        value = get(name)
        if value is None and isinstance(headers, dict):
            value = next(
                (v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None
            )
    except Exception:  # noqa: BLE001 -- a foreign mapping may raise anything; we must not
        return None
    return value


def _seconds_from_text(value: object) -> float | None:
    text = _as_text(value)
    if text is None:
        return None
    seconds = _parse_delta(text)
    if seconds is not None:
        return seconds
    return _parse_http_date(text)


def _parse_delta(value: object) -> float | None:
    text = _as_text(value)
    if text is None:
        return None
    try:
        return _clean_seconds(float(text))
    except ValueError:
        return None


def _parse_http_date(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC of unknown origin (RFC 5322)
        when = when.replace(tzinfo=timezone.utc)
    try:
        seconds = (when - _utc_now()).total_seconds()
    except OverflowError:
        return None
    return max(seconds, 0.0)


def _as_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        return value.strip()
    return None


def _clean_seconds(seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _utc_now() -> datetime:
    # The one wall-clock read of seawall: an HTTP-date Retry-After is wall time. A function
    # of its own so that tests can replace it.
    return datetime.now(timezone.utc)
