"""`JsonFormatter`: one JSON object per log line, with the record's structured fields.

Also the two safety nets that keep secrets out of the logs: `Redactor` (values under
secret-looking keys) and `log_failure` (an exception's traceback without its message).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final, Literal, final

from seawall_serving._tenant import current_tenant


__all__ = (
    "DEFAULT_REDACT",
    "REDACTED",
    "TRUNCATED",
    "JsonFormatter",
    "Redactor",
    "current_log_ids",
    "log_failure",
    "qualified_name",
    "withheld_traceback",
)

#: What redaction writes in place of a value.
REDACTED: Final = "[REDACTED]"
#: What redaction writes in place of containers nested too deep to check.
TRUNCATED: Final = "[TRUNCATED]"

#: The key names `JsonFormatter` redacts by default (see `Redactor` for the matching).
DEFAULT_REDACT: Final = (
    "authorization",
    "api_key",
    "apikey",
    "x-api-key",
    "password",
    "passwd",
    "secret",
    "token",
    "cookie",
)

_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS: Final = re.compile(r"[^a-z0-9]+")
_MAX_DEPTH: Final = 8
_CAUSE: Final = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT: Final = "\nDuring handling of the above exception, another exception occurred:\n\n"


def qualified_name(exc: BaseException) -> str:
    """Return the fully qualified class name of *exc* (no ``builtins.``), as ``error.type``."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def current_log_ids() -> tuple[str, str] | None:
    """Return the hex trace and span ids of the current OpenTelemetry span, if valid.

    Never imports OpenTelemetry: without it loaded there can be no current span.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _words(key: str) -> tuple[str, ...]:
    """``"X-Api-Key"``, ``"x_api_key"`` and ``"xApiKey"`` all give ``("x", "api", "key")``."""
    return tuple(w for w in _SEPARATORS.split(_CAMEL.sub("_", key).lower()) if w)


@final
class Redactor:
    """Decides which keys name secrets, and copies mappings with their values redacted.

    A key matches a term when the term's words appear in it in order, side by side,
    whatever the case and separators: the term ``api_key`` matches ``X-API-Key``,
    ``apiKey`` and ``upstream_api_key``; ``token`` matches ``access_token`` and
    ``refreshToken`` but not ``input_tokens``. A term of several words also matches a
    key that runs them together (``api_key`` matches ``apikey``).
    """

    __slots__ = ("_cache", "_joined", "_terms")

    def __init__(self, terms: Iterable[str]) -> None:
        if isinstance(terms, str):
            msg = "redact must be an iterable of key names, not a single string"
            raise TypeError(msg)
        words = []
        for term in terms:
            if not isinstance(term, str) or not _words(term):
                msg = f"redact must hold non-empty key names, got {term!r}"
                raise ValueError(msg)
            words.append(_words(term))
        self._terms: tuple[tuple[str, ...], ...] = tuple(words)
        self._joined = tuple("".join(w) for w in self._terms if len(w) > 1)
        self._cache: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"Redactor({['_'.join(t) for t in self._terms]!r})"

    def is_secret(self, key: str) -> bool:
        """Whether the value under *key* must not be logged."""
        known = self._cache.get(key)
        if known is not None:
            return known
        words = _words(key)
        found = any(
            words[i : i + len(term)] == term
            for term in self._terms
            for i in range(len(words) - len(term) + 1)
        )
        if not found and self._joined:
            joined = "".join(words)
            found = any(term in joined for term in self._joined)
        if len(self._cache) < 1024:  # noqa: PLR2004 -- keys come from code, a few dozen
            self._cache[key] = found
        return found

    def redact(self, value: Any, depth: int = 0) -> Any:
        """Return *value* with the values of secret keys replaced, in nested mappings too.

        Mappings become dicts and lists or tuples are copied when anything inside them
        changes; other values are returned as they are. Containers nested deeper than
        eight levels (or in a cycle) become ``[TRUNCATED]``: unread, they may hide secrets.
        """
        if depth > _MAX_DEPTH:
            return TRUNCATED if isinstance(value, (Mapping, list, tuple)) else value
        if isinstance(value, Mapping):
            return {
                key: REDACTED
                if isinstance(key, str) and self.is_secret(key)
                else self.redact(item, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            items = [self.redact(item, depth + 1) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return tuple(items) if isinstance(value, tuple) else items
        return value


@final
class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects, for log collectors.

    Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``;
    ``trace_id`` and ``span_id`` (hex) when an OpenTelemetry span is current (or the
    record carries them); ``tenant_id`` inside a request with a tenant; the fields of
    the record's ``serving`` extra (the access log's method, path, status, duration,
    run and tenant ids, and its request's trace and span ids); and ``exception``
    (type and traceback) when the record has one. Values that are not JSON are
    written with ``str``.

    It never writes request headers or bodies. As a safety net, values under keys that
    name secrets (*redact*, by default `DEFAULT_REDACT`: ``authorization``, ``api_key``,
    ``x-api-key``, ``password``, ``secret``, ``token``, ``cookie``...) are replaced by
    ``[REDACTED]``, in the ``serving`` fields and in mappings passed as the message's
    arguments (``log.info("headers: %s", headers)``), however deeply nested.

    Args:
        fmt, datefmt, style, validate, defaults: As for `logging.Formatter` (so
            ``logging.config`` can make one); the JSON line ignores them.
        redact: The key names whose values are never written (see `Redactor` for how
            keys match); ``()`` turns redaction off.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        validate: bool = True,
        *,
        defaults: Mapping[str, Any] | None = None,
        redact: Iterable[str] = DEFAULT_REDACT,
    ) -> None:
        super().__init__(fmt, datefmt, style, validate, defaults=defaults)
        self.redactor = Redactor(redact)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": self._message(record),
        }
        ids = _record_ids(record) or current_log_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        tenant = current_tenant()
        if tenant is not None:
            entry["tenant_id"] = tenant
        fields = getattr(record, "serving", None)
        if isinstance(fields, Mapping):
            entry.update(self.redactor.redact(fields))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)

    def _message(self, record: logging.LogRecord) -> str:
        """`logging.LogRecord.getMessage`, with secrets redacted from mapping arguments."""
        message = str(record.msg)
        if record.args:
            message %= self.redactor.redact(record.args)
        return message


def _record_ids(record: logging.LogRecord) -> tuple[str, str] | None:
    """Ids the record carries: OpenTelemetry's logging instrumentation sets these."""
    trace_id = getattr(record, "otelTraceID", None)
    span_id = getattr(record, "otelSpanID", None)
    if isinstance(trace_id, str) and isinstance(span_id, str) and trace_id.strip("0"):
        return trace_id, span_id
    return None


def withheld_traceback(exc: BaseException) -> str:
    """Format *exc*'s traceback, and its causes', with each exception's type but no message.

    Exception messages often hold what the failing code was given: keys, tokens, the
    user's input. The frames (file, line, function, source line) are kept.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for error, following in reversed(chain):
        if error.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(error.__traceback__))
        parts.append(f"{qualified_name(error)}: (message withheld)\n")
        if following:
            parts.append(following)
    return "".join(parts).rstrip("\n")


def log_failure(
    log: logging.Logger,
    exc: BaseException,
    msg: str,
    *args: object,
    level: int = logging.ERROR,
    fields: Mapping[str, Any] | None = None,
) -> None:
    """Log *msg* with *exc*'s type and traceback, but not its message (see `withheld_traceback`).

    The traceback is the record's ``exc_text``, which every `logging.Formatter` prints
    as it prints an ``exc_info``; the type is also the ``error_type`` field.
    """
    if not log.isEnabledFor(level):
        return
    serving = {**(fields or {}), "error_type": qualified_name(exc)}
    frame = inspect.currentframe()
    caller = None if frame is None else frame.f_back
    if caller is None:  # pragma: no cover -- Pythons without frames
        fn, lno, func = "(unknown file)", 0, "(unknown function)"
    else:
        fn, lno, func = caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_name
    record = log.makeRecord(log.name, level, fn, lno, msg, args, None, func, {"serving": serving})
    record.exc_text = withheld_traceback(exc)
    log.handle(record)
