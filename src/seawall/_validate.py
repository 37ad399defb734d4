"""Argument checks shared by the options of every primitive.

Each check names the parameter and says what was wrong, and runs once, when the
primitive is built, never on the hot path.
"""

from __future__ import annotations

import inspect
import math
from datetime import timedelta


__all__ = (
    "check_callable",
    "check_fraction",
    "check_name",
    "check_positive_int",
    "is_async_callable",
    "to_seconds",
)


def to_seconds(
    name: str,
    value: float | timedelta,
    *,
    allow_zero: bool = True,
) -> float:
    """Normalise a duration given as seconds or a `timedelta` to float seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        msg = f"{name} must be a number of seconds or a timedelta, got {type(value).__name__}"
        raise TypeError(msg)
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        msg = f"{name} must be {bound} seconds, got {value!r}"
        raise ValueError(msg)
    return seconds


def check_positive_int(name: str, value: int, *, minimum: int = 1) -> int:
    """Check that *value* is an int of at least *minimum*."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{name} must be an int, got {type(value).__name__}"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be >= {minimum}, got {value}"
        raise ValueError(msg)
    return value


def check_fraction(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check that *value* is a number in (0, 1], or [0, 1] when *allow_zero*."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        msg = f"{name} must be a number, got {type(value).__name__}"
        raise TypeError(msg)
    low_ok = value >= 0 if allow_zero else value > 0
    if math.isnan(value) or not low_ok or value > 1:
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        msg = f"{name} must be in {interval}, got {value!r}"
        raise ValueError(msg)
    return float(value)


def check_name(name: str) -> str:
    """Check a primitive's ``name``: a non-empty str (it appears in errors and events)."""
    if not isinstance(name, str):
        msg = f"name must be a str, got {type(name).__name__}"
        raise TypeError(msg)
    if not name:
        msg = "name must not be empty"
        raise ValueError(msg)
    return name


def check_callable(name: str, value: object) -> None:
    """Check that the parameter *name* got a callable."""
    if not callable(value):
        msg = f"{name} must be callable, got {type(value).__name__}"
        raise TypeError(msg)


def is_async_callable(fn: object) -> bool:
    """Return whether calling *fn* returns a coroutine; decorators ask once, when applied.

    An instance whose class defines ``async def __call__`` is async too; looked up
    statically so that a plain function's method-wrapper never gets in the way. A class
    never is: calling it builds an instance.
    """
    if isinstance(fn, type):
        return False
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        inspect.getattr_static(fn, "__call__", None)
    )
