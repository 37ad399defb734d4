"""A retry budget shared by calls and retriers: gRPC-style retry throttling.

It caps how much extra load retries can add while a dependency is failing; it is not a
rate limiter, and it never delays anything: it only says whether a retry may happen.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final, final


__all__ = ("BudgetCore", "RetryBudget", "RetryBudgetStatistics")

DEFAULT_MAX_TOKENS: Final = 10
DEFAULT_TOKEN_RATIO: Final = 0.1

# Tokens are kept as integer thousandths, as gRPC does, so that many small deposits of
# token_ratio add up exactly instead of drifting in binary floating point.
_UNITS: Final = 1000


def _to_units(name: str, value: float) -> int:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    units = round(value * _UNITS)
    if units < 1:
        raise ValueError(f"{name} must be >= {1 / _UNITS}, got {value!r}")
    return units


@final
class BudgetCore:
    """The token accounting of a retry budget: pure, no lock, no clock.

    The bucket starts full. Each failed attempt takes one token, each success gives back
    ``token_ratio`` of one, and the count stays within ``[0, max_tokens]``. A retry is
    allowed only while more than half of ``max_tokens`` remain.

    Args:
        max_tokens: Capacity of the bucket, > 0; stored to a thousandth of a token.
        token_ratio: Tokens given back per success, >= 0.001.

    Raises:
        TypeError: If an argument is not a number.
        ValueError: If an argument is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_max", "_ratio", "_tokens")

    def __init__(self, max_tokens: float, token_ratio: float) -> None:
        self._max = _to_units("max_tokens", max_tokens)
        self._ratio = _to_units("token_ratio", token_ratio)
        self._tokens = self._max

    @property
    def tokens(self) -> float:
        """The tokens left."""
        return self._tokens / _UNITS

    @property
    def max_tokens(self) -> float:
        """The capacity of the bucket."""
        return self._max / _UNITS

    @property
    def token_ratio(self) -> float:
        """The tokens given back per success."""
        return self._ratio / _UNITS

    def allows_retry(self) -> bool:
        """Return whether more than half of ``max_tokens`` remain."""
        return 2 * self._tokens > self._max

    def record_failure(self) -> bool:
        """Take one token for a failed attempt; return whether a retry is allowed."""
        self._tokens = max(0, self._tokens - _UNITS)
        return 2 * self._tokens > self._max

    def record_success(self) -> None:
        """Give back ``token_ratio`` for a successful attempt."""
        self._tokens = min(self._max, self._tokens + self._ratio)

    def __repr__(self) -> str:
        return f"BudgetCore(tokens={self.tokens!r}, max_tokens={self.max_tokens!r})"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudgetStatistics:
    """A snapshot of a `RetryBudget`.

    Attributes:
        tokens: The tokens left.
        max_tokens: The capacity of the bucket.
        token_ratio: The tokens given back per success.
        successes: Successful attempts reported.
        failures: Failed attempts reported.
        throttled: Failures reported while too few tokens were left for a retry.

    .. versionadded:: 0.1.0
    """

    tokens: float
    max_tokens: float
    token_ratio: float
    successes: int
    failures: int
    throttled: int


@final
class RetryBudget:
    """A retry budget shared across calls and retriers, as in gRPC retry throttling.

    While a dependency is healthy, successes keep the bucket full and retries flow. When
    it starts failing, every failed attempt takes a token, and once half the bucket is
    gone retries stop, so that retries cannot multiply an outage. Successes refill it
    slowly, by ``token_ratio`` each. Pass one instance to every `Retrier` that calls the
    same dependency::

        budget = seawall.RetryBudget(max_tokens=10, token_ratio=0.1)
        chat = seawall.Retrier(name="chat", budget=budget)
        embed = seawall.Retrier(name="embed", budget=budget)

    A retrier reports only retryable failures (a caller error says nothing about the
    dependency's health) and successes. Thread-safe: a small lock guards the counters
    and is never held while user code runs.

    Args:
        max_tokens: Capacity of the bucket (default 10); the bucket starts full.
        token_ratio: Tokens given back per success (default 0.1).

    Raises:
        TypeError: If an argument is not a number.
        ValueError: If an argument is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_core", "_failures", "_lock", "_successes", "_throttled")

    def __init__(
        self,
        *,
        max_tokens: float = DEFAULT_MAX_TOKENS,
        token_ratio: float = DEFAULT_TOKEN_RATIO,
    ) -> None:
        self._core = BudgetCore(max_tokens, token_ratio)
        self._lock = threading.Lock()
        self._successes = 0
        self._failures = 0
        self._throttled = 0

    @property
    def tokens(self) -> float:
        """The tokens left."""
        return self._core.tokens

    def allows_retry(self) -> bool:
        """Return whether a retry would be allowed now, without changing anything."""
        return self._core.allows_retry()

    def record_failure(self) -> bool:
        """Take one token for a failed attempt and return whether a retry is allowed.

        `Retrier` calls this for you; call it yourself only for retries you make
        without one.
        """
        with self._lock:
            self._failures += 1
            allowed = self._core.record_failure()
            if not allowed:
                self._throttled += 1
        return allowed

    def record_success(self) -> None:
        """Give back ``token_ratio`` tokens for a successful attempt."""
        with self._lock:
            self._successes += 1
            self._core.record_success()

    def statistics(self) -> RetryBudgetStatistics:
        """Return a consistent snapshot of the budget's state and counters."""
        core = self._core
        with self._lock:
            return RetryBudgetStatistics(
                tokens=core.tokens,
                max_tokens=core.max_tokens,
                token_ratio=core.token_ratio,
                successes=self._successes,
                failures=self._failures,
                throttled=self._throttled,
            )

    def __repr__(self) -> str:
        core = self._core
        return (
            f"RetryBudget(tokens={core.tokens!r}, max_tokens={core.max_tokens!r}, "
            f"token_ratio={core.token_ratio!r})"
        )
