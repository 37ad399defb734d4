"""Options of the hedger: the adaptive-delay settings and the validated option set.

Everything here is validated and normalised once, when a hedger is built; the core and
the shells read plain floats and ints on the hot path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from seawall._validate import check_positive_int, to_seconds


if TYPE_CHECKING:
    from datetime import timedelta


__all__ = (
    "DEFAULT_BUDGET_CAP",
    "DEFAULT_CANCEL_TIMEOUT",
    "DEFAULT_DELAY",
    "DEFAULT_MAX_HEDGES",
    "DEFAULT_NAME",
    "AdaptiveDelay",
    "HedgeOptions",
)

DEFAULT_DELAY: Final = 0.2
DEFAULT_MAX_HEDGES: Final = 1
DEFAULT_CANCEL_TIMEOUT: Final = 1.0
DEFAULT_BUDGET_CAP: Final = 10.0
DEFAULT_NAME: Final = "hedger"
# Worker threads of the sync shell per attempt a call may run (primary + hedges).
WORKERS_PER_ATTEMPT: Final = 8


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveDelay:
    """Hedge at an observed latency percentile instead of a fixed delay.

    The hedger keeps the latencies of the last *window* successful calls (the winning
    attempt's time from its start to its result, or to its first chunk for streams).
    Once it holds *min_samples* of them, the hedge delay is their *percentile*
    (nearest rank), clamped to ``[floor, ceiling]``; before that, the hedger's fixed
    ``delay`` applies.

    Args:
        percentile: The latency percentile to hedge at, in (0, 1]. Default 0.95 (p95).
        window: How many recent latencies are kept, >= 1. Default 1000.
        min_samples: Latencies needed before the percentile is used, in
            ``[1, window]``. Default 20.
        floor: The shortest adaptive delay, in seconds or as a `timedelta`. Default
            0.01 s.
        ceiling: The longest adaptive delay, >= *floor*. Default 2 s.

    Raises:
        TypeError: If an argument has the wrong type; the message names it.
        ValueError: If an argument is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    percentile: float = 0.95
    window: int = 1000
    min_samples: int = 20
    floor: float | timedelta = 0.01
    ceiling: float | timedelta = 2.0

    def __post_init__(self) -> None:
        percentile = self.percentile
        if not isinstance(percentile, (int, float)) or isinstance(percentile, bool):
            raise TypeError(f"percentile must be a number, got {type(percentile).__name__}")
        if math.isnan(percentile) or not 0 < percentile <= 1:
            raise ValueError(f"percentile must be in (0, 1], got {percentile!r}")
        check_positive_int("window", self.window)
        check_positive_int("min_samples", self.min_samples)
        if self.min_samples > self.window:
            raise ValueError(
                f"min_samples must be <= window ({self.window}), got {self.min_samples}"
            )
        floor = to_seconds("floor", self.floor)
        ceiling = to_seconds("ceiling", self.ceiling)
        if not math.isfinite(ceiling):
            raise ValueError(f"ceiling must be finite, got {self.ceiling!r}")
        if ceiling < floor:
            raise ValueError(f"ceiling must be >= floor ({floor!r}), got {self.ceiling!r}")
        # Normalised once: the core reads plain floats.
        object.__setattr__(self, "percentile", float(percentile))
        object.__setattr__(self, "floor", floor)
        object.__setattr__(self, "ceiling", ceiling)

    @property
    def floor_seconds(self) -> float:
        """The floor in float seconds."""
        return to_seconds("floor", self.floor)

    @property
    def ceiling_seconds(self) -> float:
        """The ceiling in float seconds."""
        return to_seconds("ceiling", self.ceiling)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeOptions:
    """The validated, normalised configuration of one hedger (private)."""

    delay: float
    max_hedges: int
    adaptive: AdaptiveDelay | None
    budget: float | None
    budget_cap: float
    cancel_timeout: float
    max_workers: int


def build_options(
    *,
    delay: float | timedelta,
    max_hedges: int,
    adaptive: AdaptiveDelay | None,
    budget: float | None,
    budget_cap: float,
    cancel_timeout: float | timedelta,
    max_workers: int | None,
) -> HedgeOptions:
    """Validate the hedger's arguments, naming the culprit, and normalise them."""
    delay_s = to_seconds("delay", delay)
    if not math.isfinite(delay_s):
        raise ValueError(f"delay must be finite, got {delay!r}")
    check_positive_int("max_hedges", max_hedges, minimum=0)
    if adaptive is not None and not isinstance(adaptive, AdaptiveDelay):
        raise TypeError(
            f"adaptive must be a seawall.AdaptiveDelay or None, got {type(adaptive).__name__}"
        )
    if budget is not None:
        budget = _check_number("budget", budget)
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be in (0, 1], got {budget!r}")
    budget_cap = _check_number("budget_cap", budget_cap)
    if not 1 <= budget_cap < math.inf:
        raise ValueError(f"budget_cap must be a finite number >= 1, got {budget_cap!r}")
    cancel_s = to_seconds("cancel_timeout", cancel_timeout)
    if max_workers is None:
        max_workers = WORKERS_PER_ATTEMPT * (max_hedges + 1)
    check_positive_int("max_workers", max_workers)
    return HedgeOptions(
        delay=delay_s,
        max_hedges=max_hedges,
        adaptive=adaptive,
        budget=budget,
        budget_cap=budget_cap,
        cancel_timeout=cancel_s,
        max_workers=max_workers,
    )


def _check_number(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return float(value)
