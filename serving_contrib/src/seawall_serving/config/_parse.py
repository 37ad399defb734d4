"""Parsing strings from the environment, and describing values in error messages."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from typing import Final


__all__ = ("describe", "parse_bool", "parse_duration", "parse_float", "parse_int", "split_list")

TRUE: Final = frozenset({"true", "1", "yes", "on"})
FALSE: Final = frozenset({"false", "0", "no", "off"})
DURATION_UNITS: Final = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
DURATION_PART: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|us|µs|s|m|h|d)")
INT_RE: Final = re.compile(r"[+-]?\d+(?:_\d+)*")
DURATION_HELP: Final = "a duration: seconds, or a string such as '1.5s', '250ms', '2m' or '1h30m'"
LONGEST_SHOWN: Final = 60


def parse_bool(text: str) -> bool:
    """Parse true/false, 1/0, yes/no, on/off (any case, surrounding blanks ignored)."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    msg = "expected a boolean: true/false, 1/0, yes/no or on/off"
    raise ValueError(msg)


def parse_int(text: str) -> int:
    """Parse a decimal integer (``_`` separators allowed, no fraction)."""
    stripped = text.strip()
    if not INT_RE.fullmatch(stripped):
        msg = "expected an integer"
        raise ValueError(msg)
    return int(stripped)


def parse_float(text: str) -> float:
    """Parse a number (an integer, a decimal, or exponent notation)."""
    try:
        return float(text.strip())
    except ValueError:
        msg = "expected a number"
        raise ValueError(msg) from None


def duration_from_seconds(seconds: float) -> timedelta:
    """Make a `timedelta` of *seconds*, refusing NaN, infinities and overflows."""
    if not math.isfinite(seconds):
        msg = f"expected {DURATION_HELP}; a duration must be finite"
        raise ValueError(msg)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        msg = "the duration is out of range"
        raise ValueError(msg) from None


def parse_duration(text: str) -> timedelta:
    """Parse seconds (``"1.5"``) or units (``"1.5s"``, ``"250ms"``, ``"2m"``, ``"1h30m"``).

    Units: ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``, ``d``; parts add up, and a
    leading ``-`` negates the whole.
    """
    body = text.strip()
    sign = 1.0
    if body.startswith("-"):
        sign, body = -1.0, body[1:]
    if not body:
        msg = f"expected {DURATION_HELP}"
        raise ValueError(msg)
    try:
        return duration_from_seconds(sign * float(body))
    except ValueError:
        pass
    total, position = 0.0, 0
    while position < len(body):
        match = DURATION_PART.match(body, position)
        if match is None:
            msg = f"expected {DURATION_HELP}"
            raise ValueError(msg)
        total += float(match[1]) * DURATION_UNITS[match[2]]
        position = match.end()
    return duration_from_seconds(sign * total)


def split_list(text: str) -> tuple[list[object], bool]:
    """Split an environment variable into items: a JSON array, or comma-separated.

    Returns:
        The items, and whether they came from JSON (so carry JSON types) rather than
        being strings to parse.

    Raises:
        ValueError: The text starts with ``[`` but is not a JSON array.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        items = json_value(stripped, "array")
        if not isinstance(items, list):  # pragma: no cover -- "[" starts only arrays
            msg = "expected a JSON array"
            raise ValueError(msg)
        return items, True
    if not stripped:
        return [], False
    return [part.strip() for part in stripped.split(",")], False


def json_value(text: str, kind: str) -> object:
    """Decode *text* as JSON, with a message naming the position on failure."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"expected a JSON {kind}: {exc.msg} at column {exc.colno}"
        raise ValueError(msg) from None
    except RecursionError:
        msg = f"expected a JSON {kind}: nested too deeply"
        raise ValueError(msg) from None


def describe(value: object, *, from_env: bool, secret: bool) -> str:
    """Say what was received, for "expected X, got Y" (never a secret's value)."""
    if value is None:
        return "null"
    kind = type(value).__name__
    if secret:
        return f"{'a string' if from_env else kind} (a secret: value hidden)"
    shown = repr(value)
    if len(shown) > LONGEST_SHOWN:
        shown = shown[: LONGEST_SHOWN - 3] + "..."
    return shown if from_env else f"{kind} {shown}"
