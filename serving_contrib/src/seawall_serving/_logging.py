"""`JsonFormatter`: one JSON object per log line, with the record's structured fields."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, final


__all__ = ("JsonFormatter",)


@final
class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects, for log collectors.

    Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``,
    the fields of the record's ``serving`` extra (the access log's method, path,
    status, duration, run and tenant ids), and ``exception`` (type and traceback) when
    the record has one. Values that are not JSON are written with ``str``.

    .. versionadded:: 0.1.0
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "serving", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
