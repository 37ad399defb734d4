"""One token bucket per key (tenant, user, model), in bounded memory.

Buckets that have refilled with nobody waiting are dropped, which is exact: such a
bucket behaves like a new one. It is not a global limit over all keys.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final, final

from seawall._hooks import emit
from seawall._validate import check_positive_int

from ._bucket import NEVER, BucketCore, Reservation, check_cost, check_max_wait
from ._events import KeyedRateLimiterStatistics, RateLimited
from ._limiter import DEFAULT_COST, DEFAULT_NAME, LimiterBase


if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable
    from datetime import timedelta

    from seawall._clock import Clock
    from seawall._hooks import Hook


__all__ = ("KeyedRateLimiter",)

# How many of the least recently used buckets each operation looks at for dropping.
# Two is enough to keep up with one new key per operation, plus one to catch up.
PRUNE_PER_OPERATION: Final = 2
# Below this many buckets no full sweep happens; above it a sweep runs whenever the
# number of buckets has doubled since the last one, so sweeps cost O(1) amortised.
MIN_SWEEP_SIZE: Final = 1024


@final
class KeyedRateLimiter(LimiterBase):
    """A token bucket per key, for per-tenant, per-user or per-model limits.

    Each key gets its own bucket of ``burst`` tokens refilled at ``rate`` per second,
    created full on first use, with the semantics of `seawall.RateLimiter` (FIFO
    reservations, ``max_wait``, cancellation)::

        per_tenant = seawall.KeyedRateLimiter(rate=5, burst=10)
        await per_tenant.aacquire(tenant_id)
        if not per_tenant.try_acquire(tenant_id, cost=2): ...

    **Bounded memory.** Buckets are kept in least-recently-used order. Each operation
    drops up to two of the oldest buckets if they have refilled and nobody waits on
    them, and a full sweep runs whenever the number of buckets doubles (from 1,024 on):
    O(1) amortised per operation. Dropping is exact, since a full, idle bucket is
    indistinguishable from a new one, so memory tracks only the keys that are busy now,
    about ``distinct keys per second * burst / rate``.

    **max_keys.** When set and a new key would exceed it, the least recently used
    bucket goes: dropped if idle, otherwise evicted although it is busy. Its key
    then starts afresh with a full bucket: it may be over-admitted by up to ``burst``
    tokens once, and its pending waiters (who keep their reservations) no longer hold
    back newcomers. New keys are never refused, so a flood of keys cannot lock out new
    tenants. ``max_keys=None`` (the default) relies on dropping alone and never
    over-admits.

    Keys must be hashable. One lock guards all buckets; it is held only for the
    bookkeeping, never during a wait.

    Args:
        rate: Tokens added per second to each key's bucket, > 0.
        burst: The capacity of each key's bucket, >= 1.
        max_keys: The most buckets kept, >= 1, or ``None`` for no hard bound. Default
            ``None``.
        name: Used in errors, events and the repr. Default ``"rate-limiter"``.
        clock: The time source. Default: the monotonic system clock. Its ``now``
            method is looked up once, here.
        hooks: Callables receiving `RateLimited`, `AcquireWaited` (every grant of
            `acquire` and `aacquire`) and `AcquireCancelled` events, with ``key`` set.
            Default none.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_buckets", "_dropped", "_evicted", "_max_keys", "_sweep_at")

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int | None = None,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
        hooks: Iterable[Hook] | None = None,
    ) -> None:
        super().__init__(rate, burst, name=name, clock=clock, hooks=hooks)
        self._max_keys = None if max_keys is None else check_positive_int("max_keys", max_keys)
        self._buckets: OrderedDict[Hashable, BucketCore] = OrderedDict()
        self._sweep_at = MIN_SWEEP_SIZE
        self._dropped = 0
        self._evicted = 0

    def __len__(self) -> int:
        """Return the number of buckets in memory (keys tracked)."""
        return len(self._buckets)

    def __repr__(self) -> str:
        return (
            f"KeyedRateLimiter(name={self._name!r}, rate={self._rate:g}, "
            f"burst={self._burst:g}, keys={len(self._buckets)}, max_keys={self._max_keys}, "
            f"waiting={self._waiting})"
        )

    @property
    def max_keys(self) -> int | None:
        """The bound on tracked keys, or ``None``."""
        return self._max_keys

    def statistics(self) -> KeyedRateLimiterStatistics:
        """Return a consistent snapshot of the counters, over all keys."""
        with self._lock:
            grants, tokens_granted = self._granted_locked()
            return KeyedRateLimiterStatistics(
                rate=self._rate,
                burst=self._burst,
                max_keys=self._max_keys,
                keys=len(self._buckets),
                keys_dropped=self._dropped,
                keys_evicted=self._evicted,
                grants=grants,
                tokens_granted=tokens_granted,
                rejections=self._rejections,
                waiting=self._waiting,
                waits=self._waits,
                total_wait=self._total_wait,
                cancelled=self._cancelled,
                tokens_restored=self._tokens_restored,
            )

    def available(self, key: Hashable) -> float:
        """Return the tokens available now for *key* (``burst`` for an unknown key)."""
        with self._lock:
            bucket = self._buckets.get(key)
            return self._burst if bucket is None else bucket.available(self._clock.now())

    # -- acquiring ---------------------------------------------------------------------
    #
    # The fast path of `seawall.RateLimiter` (see there), after finding the key's bucket
    # under the same lock.

    def try_acquire(self, key: Hashable, cost: float = 1) -> bool:
        """Take *cost* tokens from *key*'s bucket if available now and nobody waits there.

        Never blocks. Errors as for `seawall.RateLimiter.try_acquire`.
        """
        if cost is DEFAULT_COST:
            step = self._unit
        else:
            cost = check_cost(cost, self._burst)
            step = cost / self._rate
        lock = self._lock
        clock_now = self._now
        lock.acquire()
        try:
            now = clock_now()
            bucket = self._bucket_locked(key, now)
            if bucket.tail == NEVER:
                start = bucket.full_at
                if start < now:  # noqa: PLR1730 -- max() costs more than the rest
                    start = now
                end = start + step
                if end - self._tau - now <= self._slack:
                    bucket.full_at = end
                    if cost is DEFAULT_COST:
                        self._unit_grants += 1
                    else:
                        self._grants += 1
                        self._tokens_granted += cost
                    return True
            elif bucket.try_take(now, cost):  # someone queued, but their time has come
                self._grants += 1
                self._tokens_granted += cost
                return True
            self._rejections += 1
            retry_after = bucket.ready_time(now, cost) - now if self._hooks else 0.0
        finally:
            lock.release()
        if self._hooks:
            emit(self._hooks, RateLimited(self._name, cost, retry_after, key))
        return False

    def acquire(
        self, key: Hashable, cost: float = 1, *, max_wait: float | timedelta | None = None
    ) -> None:
        """Take *cost* tokens from *key*'s bucket, blocking until they are granted.

        Arguments and errors as for `seawall.RateLimiter.acquire`.
        """
        if cost is not DEFAULT_COST:
            cost = check_cost(cost, self._burst)
        if max_wait is not None:
            max_wait = check_max_wait(max_wait)
        decision = self._reserve(key, cost, max_wait)
        if decision is not None:
            self._wait(decision[0], decision[1], key)

    async def aacquire(
        self, key: Hashable, cost: float = 1, *, max_wait: float | timedelta | None = None
    ) -> None:
        """Take *cost* tokens from *key*'s bucket, suspending the task until granted.

        Does not yield when the tokens are available, like aiolimiter: a checkpoint
        only when it waits. Arguments and errors as for `seawall.RateLimiter.acquire`.
        """
        if cost is not DEFAULT_COST:
            cost = check_cost(cost, self._burst)
        if max_wait is not None:
            max_wait = check_max_wait(max_wait)
        decision = self._reserve(key, cost, max_wait)
        if decision is not None:
            await self._await(decision[0], decision[1], key)

    def _reserve(
        self, key: Hashable, cost: float, max_wait: float | None
    ) -> tuple[BucketCore, Reservation] | None:
        step = self._unit if cost is DEFAULT_COST else cost / self._rate
        lock = self._lock
        clock_now = self._now
        lock.acquire()
        try:
            now = clock_now()
            bucket = self._bucket_locked(key, now)
            start = bucket.full_at
            if start < now:  # noqa: PLR1730 -- max() costs more than the rest
                start = now
            end = start + step
            if end - self._tau - now <= self._slack and bucket.tail == NEVER:
                bucket.full_at = end
                if cost is DEFAULT_COST:
                    self._unit_grants += 1
                else:
                    self._grants += 1
                    self._tokens_granted += cost
                decision = None
            else:
                decision = bucket.reserve(now, cost, max_wait)
                self._count_decision_locked(decision, cost)
        finally:
            lock.release()
        if decision is not None or self._hooks_want_grants:
            reservation = self._follow(decision, cost, key)
            if reservation is not None:
                return bucket, reservation
        return None

    # -- bounded memory ----------------------------------------------------------------

    def _bucket_locked(self, key: Hashable, now: float) -> BucketCore:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
        # Drop a few of the least recently used buckets if they have refilled with
        # nobody waiting (`BucketCore.idle`, inlined), but not the one asked for: it is
        # in use, and keeping it saves making it again.
        dropped = 0
        while dropped < PRUNE_PER_OPERATION and buckets:
            oldest_key = next(iter(buckets))
            oldest = buckets[oldest_key]
            if oldest is bucket or oldest.full_at > now or oldest.tail != NEVER:
                break
            del buckets[oldest_key]
            dropped += 1
        if dropped:
            self._dropped += dropped
        if bucket is not None:
            return bucket
        # Make room before inserting, so that the new (idle) bucket is never swept away.
        if len(buckets) >= self._sweep_at:
            self._sweep_locked(now)
        if self._max_keys is not None and len(buckets) >= self._max_keys:
            self._evict_locked(now)
        bucket = buckets[key] = BucketCore(self._rate, self._burst)
        return bucket

    def _sweep_locked(self, now: float) -> None:
        buckets = self._buckets
        idle = [key for key, bucket in buckets.items() if bucket.idle(now)]
        for key in idle:
            del buckets[key]
        self._dropped += len(idle)
        self._sweep_at = max(MIN_SWEEP_SIZE, 2 * len(buckets))

    def _evict_locked(self, now: float) -> None:
        # O(1): only the least recently used bucket goes. It is usually idle (a drop,
        # exact); a busy one is evicted and counted, as documented.
        _, bucket = self._buckets.popitem(last=False)
        if bucket.idle(now):
            self._dropped += 1
        else:
            self._evicted += 1
