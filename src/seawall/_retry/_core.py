"""The pure core of the retrier: backoff maths and the retry-or-give-up decision.

Nothing here reads a clock, draws a random number, sleeps or takes a lock: the shells pass
the attempt number, the elapsed time and a random draw in, and act on the decision that
comes back. This is the part that the property tests exercise.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final, TypeAlias, final

from seawall._validate import check_positive_int, to_seconds


__all__ = (
    "GiveUp",
    "GiveUpReason",
    "Jitter",
    "Retry",
    "RetryDecision",
    "RetryPolicy",
    "compute_backoff",
    "decide",
    "next_backoff",
)

DEFAULT_MAX_ATTEMPTS: Final = 3
DEFAULT_INITIAL_DELAY: Final = 0.1
DEFAULT_MAX_DELAY: Final = 5.0
DEFAULT_MULTIPLIER: Final = 2.0

# Decorrelated jitter grows the previous delay by up to this factor (AWS's constant).
_DECORRELATED_GROWTH: Final = 3.0


class Jitter(enum.Enum):
    """How the retrier randomises its exponential backoff.

    With ``base = min(max_delay, initial_delay * multiplier ** (attempt - 1))`` and a
    uniform draw ``r`` in ``[0, 1)`` (the semantics of the AWS Architecture Blog's
    "Exponential Backoff And Jitter"):

    * ``NONE``: ``base``; no randomness, the plain capped exponential.
    * ``FULL``: ``base * r``, anywhere in ``[0, base)``; the default, and the one that
      spreads a crowd of clients out best.
    * ``EQUAL``: ``base / 2 + base / 2 * r``; never less than half the backoff.
    * ``DECORRELATED``: ``min(max_delay, uniform(initial_delay, previous * 3))``, where
      ``previous`` is the previous backoff (``initial_delay`` before the first retry);
      ``multiplier`` plays no part.

    .. versionadded:: 0.1.0
    """

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


class GiveUpReason(enum.Enum):
    """Why a retrier stopped retrying a call.

    .. versionadded:: 0.1.0
    """

    NOT_RETRYABLE = "not_retryable"
    """The failure is not worth retrying (the ``is_retryable`` predicate said no)."""
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    """``max_attempts`` attempts have been made."""
    RETRY_AFTER_OVER_CAP = "retry_after_over_cap"
    """The server asked to wait longer than ``max_retry_after``."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    """The next attempt could not start before the ``deadline``."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """The shared `RetryBudget` has too few tokens left for a retry."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """The numeric options of a retrier, validated once, when built.

    Durations are float seconds here; `seawall.Retrier` converts `timedelta` values
    before building its policy.

    Attributes:
        max_attempts: Attempts in total, the first one included (default 3).
        initial_delay: Backoff after the first failure, before jitter (default 0.1 s).
        max_delay: Upper bound of every backoff, jitter included (default 5 s).
        multiplier: Growth factor of the backoff per attempt, at least 1 (default 2.0).
        jitter: The jitter mode (default `Jitter.FULL`).
        deadline: Total time budget of a call in seconds, or ``None`` (default).
        max_retry_after: The longest server-requested wait that is honoured; ``None``
            (default) means ``max_delay``.

    .. versionadded:: 0.1.0
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_delay: float = DEFAULT_INITIAL_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    multiplier: float = DEFAULT_MULTIPLIER
    jitter: Jitter = Jitter.FULL
    deadline: float | None = None
    max_retry_after: float | None = None

    def __post_init__(self) -> None:
        check_positive_int("max_attempts", self.max_attempts)
        initial = to_seconds("initial_delay", self.initial_delay)
        maximum = to_seconds("max_delay", self.max_delay)
        if not math.isfinite(maximum):
            raise ValueError(f"max_delay must be finite, got {self.max_delay!r}")
        if initial > maximum:
            raise ValueError(f"initial_delay must be <= max_delay, got {initial!r} > {maximum!r}")
        multiplier = self.multiplier
        if not isinstance(multiplier, (int, float)) or isinstance(multiplier, bool):
            raise TypeError(f"multiplier must be a number, got {type(multiplier).__name__}")
        if not (math.isfinite(multiplier) and multiplier >= 1):
            raise ValueError(f"multiplier must be a finite number >= 1, got {multiplier!r}")
        if not isinstance(self.jitter, Jitter):
            raise TypeError(f"jitter must be a seawall.Jitter, got {type(self.jitter).__name__}")
        # Normalised in place: ints become floats once, here, not on every failure.
        object.__setattr__(self, "initial_delay", initial)
        object.__setattr__(self, "max_delay", maximum)
        object.__setattr__(self, "multiplier", float(multiplier))
        if self.deadline is not None:
            deadline = to_seconds("deadline", self.deadline, allow_zero=False)
            object.__setattr__(self, "deadline", deadline)
        if self.max_retry_after is not None:
            cap = to_seconds("max_retry_after", self.max_retry_after)
            object.__setattr__(self, "max_retry_after", cap)

    @property
    def retry_after_cap(self) -> float:
        """The longest Retry-After honoured: ``max_retry_after``, else ``max_delay``."""
        return self.max_delay if self.max_retry_after is None else self.max_retry_after


@final
@dataclass(frozen=True, slots=True)
class Retry:
    """Decision: wait *delay* seconds, then make the next attempt.

    Attributes:
        delay: Seconds to wait; the backoff, or a longer Retry-After.
        backoff: The jittered backoff alone; decorrelated jitter grows from it.
    """

    delay: float
    backoff: float


@final
@dataclass(frozen=True, slots=True)
class GiveUp:
    """Decision: stop, and let the last outcome through.

    Attributes:
        reason: Why the retrier stops.
    """

    reason: GiveUpReason


RetryDecision: TypeAlias = "Retry | GiveUp"

# Decisions without a payload are shared: giving up allocates nothing.
_GIVE_UP: Final = {reason: GiveUp(reason) for reason in GiveUpReason}


def compute_backoff(
    attempt: int, *, initial_delay: float, max_delay: float, multiplier: float
) -> float:
    """Return the capped exponential backoff after the *attempt*-th failure, unjittered.

    ``min(max_delay, initial_delay * multiplier ** (attempt - 1))``, computed so that a
    huge *attempt* or *multiplier* yields ``max_delay`` instead of an `OverflowError`
    (or an hour spent raising a Python int to a huge power).

    Args:
        attempt: The number of the attempt that just failed, from 1.
        initial_delay: The backoff after the first failure, in seconds.
        max_delay: The cap, in seconds.
        multiplier: The growth factor per attempt, at least 1.

    Returns:
        A delay in ``[0, max_delay]``.

    Raises:
        ValueError: If *attempt* is below 1.

    .. versionadded:: 0.1.0
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if initial_delay <= 0.0:
        return 0.0
    try:
        # math.pow works in floats: it raises OverflowError instead of building a
        # gigantic int, which is what `int ** int` would do.
        growth = math.pow(multiplier, attempt - 1)
    except OverflowError:
        return max_delay
    return min(max_delay, initial_delay * growth)


def next_backoff(policy: RetryPolicy, attempt: int, previous: float | None, rnd: float) -> float:
    """Return the jittered backoff after the *attempt*-th failure.

    Args:
        policy: The retry options.
        attempt: The number of the attempt that just failed, from 1.
        previous: The previous backoff (decorrelated jitter only); ``None`` before the
            first retry.
        rnd: A uniform random draw in ``[0, 1)``; ignored by `Jitter.NONE`.

    Returns:
        A delay in ``[0, max_delay]``, whatever *rnd* is.

    .. versionadded:: 0.1.0
    """
    jitter = policy.jitter
    if jitter is Jitter.DECORRELATED:
        low = policy.initial_delay
        high = max(low, (low if previous is None else previous) * _DECORRELATED_GROWTH)
        delay = low + (high - low) * rnd
    else:
        base = compute_backoff(
            attempt,
            initial_delay=policy.initial_delay,
            max_delay=policy.max_delay,
            multiplier=policy.multiplier,
        )
        if jitter is Jitter.NONE:
            delay = base
        elif jitter is Jitter.FULL:
            delay = base * rnd
        else:
            half = base / 2.0
            delay = half + half * rnd
    # The clamp also tames a random source that strays outside [0, 1).
    return min(policy.max_delay, max(0.0, delay))


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    retryable: bool,
    retry_after: float | None = None,
    elapsed: float | None = None,
    budget_allows: bool = True,
    previous: float | None = None,
    rnd: float = 0.0,
) -> Retry | GiveUp:
    """Decide what follows a failed attempt: another attempt after a delay, or giving up.

    The checks run in this order, and the first that fails names the reason:

    1. the failure is retryable (`GiveUpReason.NOT_RETRYABLE`);
    2. fewer than ``max_attempts`` attempts were made (`GiveUpReason.ATTEMPTS_EXHAUSTED`);
    3. a Retry-After, if any, is at most the cap (`GiveUpReason.RETRY_AFTER_OVER_CAP`);
       the delay is then ``max(backoff, retry_after)``;
    4. with a deadline, the next attempt starts strictly before it, that is
       ``elapsed + delay < deadline`` (`GiveUpReason.DEADLINE_EXCEEDED`);
    5. the retry budget allows a retry (`GiveUpReason.BUDGET_EXHAUSTED`).

    Args:
        policy: The retry options.
        attempt: The number of the attempt that just failed, from 1.
        retryable: Whether the failure is worth retrying.
        retry_after: Seconds the server asked to wait, or ``None``. Negative values
            count as 0 and NaN as ``None``.
        elapsed: Seconds since the call started; needed only with a deadline.
        budget_allows: Whether the retry budget (if any) still allows a retry.
        previous: The previous backoff, for decorrelated jitter.
        rnd: A uniform random draw in ``[0, 1)``, for jitter.

    Returns:
        `Retry` with the delay, or `GiveUp` with the reason.

    .. versionadded:: 0.1.0
    """
    if not retryable:
        return _GIVE_UP[GiveUpReason.NOT_RETRYABLE]
    if attempt >= policy.max_attempts:
        return _GIVE_UP[GiveUpReason.ATTEMPTS_EXHAUSTED]
    backoff = next_backoff(policy, attempt, previous, rnd)
    delay = backoff
    if retry_after is not None and not math.isnan(retry_after):
        if retry_after > policy.retry_after_cap:
            return _GIVE_UP[GiveUpReason.RETRY_AFTER_OVER_CAP]
        delay = max(delay, retry_after)
    if policy.deadline is not None and (elapsed or 0.0) + delay >= policy.deadline:
        return _GIVE_UP[GiveUpReason.DEADLINE_EXCEEDED]
    if not budget_allows:
        return _GIVE_UP[GiveUpReason.BUDGET_EXHAUSTED]
    return Retry(delay, backoff)
