"""Options of the circuit breaker: the sliding-window kinds and the validated option set.

Everything here is validated and normalised once, when a breaker is built; the core
reads plain floats and ints on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from seawall._classify import ErrorKind, classify
from seawall._validate import check_fraction, check_positive_int, to_seconds


if TYPE_CHECKING:
    from datetime import timedelta


__all__ = (
    "DEFAULT_HALF_OPEN_MAX",
    "DEFAULT_MAX_FAILURES",
    "DEFAULT_MINIMUM_CALLS",
    "DEFAULT_NAME",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WINDOW",
    "BreakerOptions",
    "CountWindow",
    "TimeWindow",
    "default_judge",
)

DEFAULT_MAX_FAILURES = 5
DEFAULT_TIMEOUT = 30.0
DEFAULT_HALF_OPEN_MAX = 2
DEFAULT_MINIMUM_CALLS = 10
DEFAULT_NAME = "circuit-breaker"
# With a growing timeout and no explicit cap, the open duration stops growing here.
DEFAULT_MAX_TIMEOUT_FACTOR = 10.0


@final
@dataclass(frozen=True, slots=True)
class CountWindow:
    """A sliding window over the last *size* recorded calls (failure-rate mode).

    Args:
        size: How many of the most recent outcomes the failure rate covers. Default 100.

    Raises:
        TypeError: *size* is not an int.
        ValueError: *size* is smaller than 1.

    .. versionadded:: 0.1.0
    """

    size: int = 100

    def __post_init__(self) -> None:
        check_positive_int("CountWindow.size", self.size)


@final
@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A sliding window over the calls of the last *seconds* (failure-rate mode).

    The window is a ring of *buckets* buckets of ``seconds / buckets`` each; it slides
    one bucket at a time, so it covers between ``seconds - seconds / buckets`` and
    *seconds* of history.

    Args:
        seconds: The length of the window, in seconds or as a `timedelta`. Default 60 s.
        buckets: How many buckets the window is cut into. Default 10.

    Raises:
        TypeError: *seconds* is not a number or a timedelta, or *buckets* not an int.
        ValueError: *seconds* is not positive, or *buckets* is smaller than 1.

    .. versionadded:: 0.1.0
    """

    seconds: float | timedelta = 60.0
    buckets: int = 10

    def __post_init__(self) -> None:
        to_seconds("TimeWindow.seconds", self.seconds, allow_zero=False)
        check_positive_int("TimeWindow.buckets", self.buckets)


DEFAULT_WINDOW = CountWindow(100)


def default_judge(exc: Exception) -> bool | None:
    """Say whether *exc* counts against the dependency: the default failure predicate.

    Transient, unknown and quota-exhausted errors are failures. A caller error (a 4xx
    other than 408/429, a validation error) is not: the dependency answered, so it is
    recorded as a success. An exception that `classify` calls cancelled records nothing
    (``None``), like a real cancellation.
    """
    kind = classify(exc).kind
    if kind is ErrorKind.CALLER_ERROR:
        return False
    if kind is ErrorKind.CANCELLED:
        return None
    return True


def _optional_int(name: str, value: int | None) -> int | None:
    return None if value is None else check_positive_int(name, value)


def _optional_seconds(name: str, value: float | timedelta | None) -> float | None:
    return None if value is None else to_seconds(name, value, allow_zero=False)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerOptions:
    """The normalised, validated options of one breaker (durations in float seconds).

    Build it with `from_params`, which names the offending parameter in its errors.
    """

    max_failures: int | None
    timeout: float
    half_open_max: int
    success_threshold: int
    failure_rate_threshold: float | None
    window: CountWindow | TimeWindow
    minimum_calls: int
    slow_call_threshold: float | None
    timeout_multiplier: float
    max_timeout: float
    probe_timeout: float

    @classmethod
    def from_params(
        cls,
        *,
        max_failures: int | None,
        timeout: float | timedelta,
        half_open_max: int,
        success_threshold: int | None,
        failure_rate_threshold: float | None,
        window: CountWindow | TimeWindow,
        minimum_calls: int | None,
        slow_call_threshold: float | timedelta | None,
        timeout_multiplier: float,
        max_timeout: float | timedelta | None,
        probe_timeout: float | timedelta | None,
    ) -> BreakerOptions:
        """Validate and normalise the parameters of `CircuitBreaker`.

        Raises:
            TypeError: A parameter has the wrong type; the message names it.
            ValueError: A parameter is out of range; the message names it.
        """
        base_timeout = to_seconds("timeout", timeout, allow_zero=False)
        probes = check_positive_int("half_open_max", half_open_max)
        if not isinstance(window, (CountWindow, TimeWindow)):
            msg = f"window must be a CountWindow or a TimeWindow, got {type(window).__name__}"
            raise TypeError(msg)
        threshold = (
            None
            if failure_rate_threshold is None
            else check_fraction("failure_rate_threshold", failure_rate_threshold)
        )
        return cls(
            max_failures=_optional_int("max_failures", max_failures),
            timeout=base_timeout,
            half_open_max=probes,
            success_threshold=_optional_int("success_threshold", success_threshold) or probes,
            failure_rate_threshold=threshold,
            window=window,
            minimum_calls=_minimum_calls(minimum_calls, window),
            slow_call_threshold=_optional_seconds("slow_call_threshold", slow_call_threshold),
            timeout_multiplier=_multiplier(timeout_multiplier),
            max_timeout=_max_timeout(max_timeout, base_timeout),
            probe_timeout=_optional_seconds("probe_timeout", probe_timeout) or base_timeout,
        )


def _minimum_calls(value: int | None, window: CountWindow | TimeWindow) -> int:
    if value is None:
        if isinstance(window, CountWindow):
            return min(DEFAULT_MINIMUM_CALLS, window.size)
        return DEFAULT_MINIMUM_CALLS
    check_positive_int("minimum_calls", value)
    if isinstance(window, CountWindow) and value > window.size:
        msg = (
            f"minimum_calls must be <= the CountWindow size ({window.size}), got {value}: "
            "the window could never hold enough calls to trip"
        )
        raise ValueError(msg)
    return value


def _multiplier(value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        msg = f"timeout_multiplier must be a number, got {type(value).__name__}"
        raise TypeError(msg)
    if not value >= 1 or value == float("inf"):
        msg = f"timeout_multiplier must be a finite number >= 1, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _max_timeout(value: float | timedelta | None, base: float) -> float:
    if value is None:
        return base * DEFAULT_MAX_TIMEOUT_FACTOR
    seconds = to_seconds("max_timeout", value, allow_zero=False)
    if seconds < base:
        msg = f"max_timeout must be >= timeout ({base} s), got {seconds} s"
        raise ValueError(msg)
    return seconds
