"""What a rate limiter reports: its hook events and its statistics."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import final

from seawall._hooks import Event


__all__ = (
    "AcquireCancelled",
    "AcquireWaited",
    "KeyedRateLimiterStatistics",
    "RateLimited",
    "RateLimiterStatistics",
)


@final
@dataclass(frozen=True, slots=True)
class RateLimited(Event):
    """The limiter refused tokens.

    Either ``try_acquire`` returned ``False``, or the wait was longer than ``max_wait``
    and `seawall.RateLimitedError` was raised.

    Attributes:
        name: The limiter's name.
        cost: The tokens asked for.
        retry_after: The wait those tokens needed, in seconds.
        key: The key, for a `seawall.KeyedRateLimiter`; ``None`` otherwise.

    .. versionadded:: 0.1.0
    """

    cost: float
    retry_after: float
    key: Hashable | None = None


@final
@dataclass(frozen=True, slots=True)
class AcquireWaited(Event):
    """A blocking acquire got its tokens, at once or after waiting for them.

    Reported for every grant of a blocking acquisition (``acquire``, ``aacquire``, a
    decorated function, a ``with`` block; ``reserve`` and ``areserve`` of a
    `seawall.LLMRateLimiter`), with ``wait=0.0`` when granted at once, so that a
    histogram of waits sees those too; after the wait, outside the limiter's lock.
    ``try_acquire`` reports nothing when it succeeds. The grants without a wait come
    with every call, so, like `seawall.CallStarted`, they are built only when a hook
    wants call events (see `seawall.Hook`); grants after a wait always are.

    Attributes:
        name: The limiter's name.
        cost: The tokens granted.
        wait: Seconds between the reservation and its ready time; 0.0 when granted at
            once.
        key: The key, for a `seawall.KeyedRateLimiter`; ``None`` otherwise.

    .. versionadded:: 0.1.0
    """

    cost: float
    wait: float
    key: Hashable | None = None


@final
@dataclass(frozen=True, slots=True)
class AcquireCancelled(Event):
    """A waiting caller was cancelled and gave its reservation back.

    Attributes:
        name: The limiter's name.
        cost: The tokens that had been reserved.
        restored: The tokens that went back into the bucket (those no later
            reservation depends on); 0 when the tokens had already been granted.
        key: The key, for a `seawall.KeyedRateLimiter`; ``None`` otherwise.

    .. versionadded:: 0.1.0
    """

    cost: float
    restored: float
    key: Hashable | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimiterStatistics:
    """A consistent snapshot of a `seawall.RateLimiter`, taken under its lock.

    Every acquisition ends up in one of ``grants``, ``rejections`` or ``cancelled``, or
    is still ``waiting``.

    Attributes:
        rate: Tokens added per second.
        burst: The capacity of the bucket.
        tokens_available: Tokens available now: at most ``burst``, negative while
            reservations have put the bucket into debt.
        grants: Acquisitions granted (at once or after a wait).
        tokens_granted: Tokens granted, in total.
        rejections: Acquisitions refused (``try_acquire`` returning ``False``, or
            `seawall.RateLimitedError` because of ``max_wait``).
        waiting: Callers waiting for their reservation now.
        waits: Acquisitions granted after a wait (included in ``grants``).
        total_wait: Seconds waited by those acquisitions, in total.
        cancelled: Waiters that were cancelled and gave their reservation back.
        tokens_restored: Tokens those cancellations put back into the bucket.

    .. versionadded:: 0.1.0
    """

    rate: float
    burst: float
    tokens_available: float
    grants: int
    tokens_granted: float
    rejections: int
    waiting: int
    waits: int
    total_wait: float
    cancelled: int
    tokens_restored: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class KeyedRateLimiterStatistics:
    """A consistent snapshot of a `seawall.KeyedRateLimiter`, taken under its lock.

    Attributes:
        rate: Tokens added per second, per key.
        burst: The capacity of each key's bucket.
        max_keys: The bound on tracked keys, or ``None``.
        keys: Keys tracked now (buckets in memory).
        keys_dropped: Buckets dropped because they had refilled with nobody waiting
            (exact: such a bucket is indistinguishable from a new one).
        keys_evicted: Busy buckets evicted to respect ``max_keys`` (each may over-admit
            its key once, see `seawall.KeyedRateLimiter`).
        grants: Acquisitions granted, over all keys.
        tokens_granted: Tokens granted, over all keys.
        rejections: Acquisitions refused, over all keys.
        waiting: Callers waiting for their reservation now, over all keys.
        waits: Acquisitions granted after a wait.
        total_wait: Seconds waited by those acquisitions, in total.
        cancelled: Waiters that were cancelled and gave their reservation back.
        tokens_restored: Tokens those cancellations put back.

    .. versionadded:: 0.1.0
    """

    rate: float
    burst: float
    max_keys: int | None
    keys: int
    keys_dropped: int
    keys_evicted: int
    grants: int
    tokens_granted: float
    rejections: int
    waiting: int
    waits: int
    total_wait: float
    cancelled: int
    tokens_restored: float
