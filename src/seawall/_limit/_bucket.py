"""The token bucket's pure core: FIFO reservations on a GCRA timeline.

Nothing here locks, sleeps or reads a clock: every method takes ``now`` and returns a
decision. It is not a concurrency limiter: tokens are never given back on completion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, final


__all__ = (
    "EPSILON_TOKENS",
    "NEVER",
    "BucketCore",
    "Rejection",
    "Reservation",
    "check_burst",
    "check_cost",
    "check_max_wait",
    "check_rate",
)

EPSILON_TOKENS: Final = 1e-9
"""Rounding tolerance, in tokens.

Tokens that would be available within ``EPSILON_TOKENS / rate`` seconds count as
available now. Without it, floating-point rounding of times such as ``0.1 + 0.2`` would
turn "exactly one token has refilled" into a wait of 1e-17 s. The window invariant
therefore holds up to ``EPSILON_TOKENS`` (plus the rounding of the caller's own
arithmetic): in any window of length t, granted tokens <= burst + rate * t + 1e-9.
"""

NEVER: Final = -math.inf
"""``full_at`` of a bucket that is full and was never used; ``tail`` with nobody waiting."""


def check_rate(rate: float) -> float:
    """Check ``rate``: tokens per second, a finite number > 0."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"rate must be a number of tokens per second, got {type(rate).__name__}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
    return float(rate)


def check_burst(burst: float) -> float:
    """Check ``burst``: the bucket's capacity, a finite number >= 1."""
    if isinstance(burst, bool) or not isinstance(burst, (int, float)):
        raise TypeError(f"burst must be a number of tokens, got {type(burst).__name__}")
    if not (math.isfinite(burst) and burst >= 1):
        raise ValueError(f"burst must be a finite number >= 1, got {burst!r}")
    return float(burst)


def check_cost(cost: float, burst: float) -> float:
    """Check ``cost``: an int or float in (0, burst]; fractions are allowed.

    A cost above ``burst`` could never be granted, so it is an error rather than an
    endless wait.
    """
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise TypeError(f"cost must be an int or float, got {type(cost).__name__}")
    if not cost > 0:  # also catches NaN
        raise ValueError(f"cost must be > 0, got {cost!r}")
    if cost > burst:
        raise ValueError(
            f"cost must be <= burst ({burst:g}), got {cost!r}: it could never be granted"
        )
    return cost


def check_max_wait(max_wait: float | timedelta | None) -> float | None:
    """Check ``max_wait``: ``None`` (no limit) or seconds >= 0, as a number or timedelta."""
    if max_wait is None:
        return None
    if isinstance(max_wait, timedelta):
        seconds = max_wait.total_seconds()
    elif isinstance(max_wait, (int, float)) and not isinstance(max_wait, bool):
        seconds = float(max_wait)
    else:
        msg = f"max_wait must be None, seconds or a timedelta, got {type(max_wait).__name__}"
        raise TypeError(msg)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"max_wait must be >= 0 seconds or None, got {max_wait!r}")
    return seconds


@final
@dataclass(frozen=True, slots=True)
class Rejection:
    """The core's refusal of a reservation that would wait longer than allowed.

    Attributes:
        retry_after: The wait the reservation would have needed, in seconds.
    """

    retry_after: float


@final
class Reservation:
    """Tokens reserved now and granted at ``ready_at``, later than the reservation.

    Made only when a caller has to wait; the waiter hands it back to the core with
    `BucketCore.complete` once it has its tokens, or `BucketCore.cancel` if it gives up.

    Attributes:
        cost: The tokens reserved.
        ready_at: When the tokens are granted.
        reserved_at: When the reservation was made.
    """

    __slots__ = ("cancelled", "cost", "prior", "ready_at", "reserved_at")

    def __init__(self, cost: float, ready_at: float, reserved_at: float, prior: float) -> None:
        self.cost = cost
        self.ready_at = ready_at
        self.reserved_at = reserved_at
        # The bucket's full_at just before this reservation: restoring it undoes the
        # reservation exactly, while nothing that cannot be undone has happened since.
        self.prior = prior
        self.cancelled = False

    def __repr__(self) -> str:
        return f"Reservation(cost={self.cost!r}, ready_at={self.ready_at!r})"


@final
class BucketCore:
    """A token bucket as a GCRA timeline with FIFO reservations; pure, no lock, no clock.

    **State.** ``full_at`` is the time at which the bucket is full again, given every
    token taken so far (GCRA's "theoretical arrival time"): the tokens available at
    ``now`` are ``burst - rate * (full_at - now)``, capped at ``burst``, and negative
    while the bucket is in debt. A bucket that starts full has ``full_at = -inf``. One
    float replaces the usual (tokens, timestamp) pair, so refilling needs no update and
    accumulates no rounding; taking ``cost`` tokens adds ``cost / rate`` to it.

    **Reservations.** A reservation of ``cost`` at ``now`` is granted at
    ``ready = max(full_at, now) + cost / rate - burst / rate`` (the moment its tokens
    have refilled), but never before the ``ready_at`` of a reservation still pending
    (``tail``): waiting is FIFO, and a large cost is not starved by small ones.
    Reserving takes the tokens at once, so the bucket may go into debt; the next
    reservation queues behind. A grant happens at its ready time, and in any window of
    length t at most ``burst + rate * t`` tokens are granted (up to `EPSILON_TOKENS`).

    **For multi-bucket limiters** (e.g. requests and tokens per minute together): call
    `ready_time` on every bucket, take the latest time ``at`` over all of them, and
    `commit` each bucket's cost at that one ``at``, all under one lock; settle the real
    usage later with `adjust`.

    **Fast paths.** The shells inline `try_take` for a bucket that nobody waits on
    (``tail == NEVER``), reading and advancing ``full_at`` under their own lock; that is
    why ``full_at`` and ``tail`` are plain attributes. Nothing else outside this class
    may write them.

    Args:
        rate: Tokens added per second, > 0 (validated by the caller, see `check_rate`).
        burst: Capacity, >= 1 (see `check_burst`); the bucket starts full.

    Attributes:
        full_at: When the bucket is full again, counting every reservation; `NEVER`
            (``-inf``) if never used.
        tail: The ``ready_at`` of the latest pending reservation, or `NEVER` if none.
    """

    __slots__ = ("_burst", "_pending", "_rate", "_slack", "_tau", "_undo", "full_at", "tail")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        # Seconds to refill a full bucket: GCRA's tolerance.
        self._tau = burst / rate
        self._slack = EPSILON_TOKENS / rate
        # Plain attributes rather than properties: the shells' fast paths read them
        # under their lock without a call (see `try_take`).
        self.full_at: float = NEVER
        self.tail: float = NEVER
        # Reservations whose waiters have not reported back, in reservation order (which
        # is ready_at order). Allocated only while someone waits, to keep idle buckets
        # (one per key in a keyed limiter) small.
        self._pending: dict[Reservation, None] | None = None
        # Reservations committed since the last change that cannot be undone (a grant
        # made at once, a completed wait, a settlement), oldest first. See `cancel`.
        self._undo: list[Reservation] | None = None

    def __repr__(self) -> str:
        waiting = len(self._pending) if self._pending else 0
        return (
            f"BucketCore(rate={self._rate!r}, burst={self._burst!r}, "
            f"full_at={self.full_at!r}, waiting={waiting})"
        )

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """The capacity of the bucket."""
        return self._burst

    @property
    def tau(self) -> float:
        """Seconds to refill an empty bucket: ``burst / rate``."""
        return self._tau

    @property
    def slack(self) -> float:
        """Seconds within which tokens count as available now (``EPSILON_TOKENS / rate``)."""
        return self._slack

    @property
    def waiting(self) -> int:
        """Reservations whose waiters have not completed or cancelled yet."""
        return len(self._pending) if self._pending else 0

    def available(self, now: float) -> float:
        """Return the tokens available at *now*: at most ``burst``, negative in debt."""
        behind = self.full_at - now
        if behind <= self._slack:  # full, up to rounding
            return self._burst
        return self._burst - behind * self._rate

    def idle(self, now: float) -> bool:
        """Return whether the bucket is full with nobody waiting: as good as a new one."""
        return self.full_at <= now and self._pending is None

    def ready_time(self, now: float, cost: float) -> float:
        """Return when *cost* tokens reserved at *now* would be granted (>= now).

        Changes nothing. Returns exactly *now* when no wait is needed.
        """
        start = self.full_at
        start = max(start, now)
        ready = start + cost / self._rate - self._tau
        ready = max(ready, self.tail)
        if ready - now <= self._slack:
            return now
        return ready

    def try_take(self, now: float, cost: float) -> bool:
        """Take *cost* tokens if they are available at *now* and nobody waits; never queue.

        The shells inline this rule, word for word, for a bucket with ``tail == NEVER``;
        there ``_undo`` is already ``None`` (a reservation stays in it only while one
        committed at or after it is pending), so they need not clear it.

        Returns:
            Whether the tokens were taken. On ``False`` nothing changed.
        """
        start = self.full_at
        if start < now:  # noqa: PLR1730 -- max() costs 120 ns on this hot path
            start = now
        end = start + cost / self._rate
        if end - self._tau - now > self._slack or self.tail - now > self._slack:
            return False
        self.full_at = end
        self._undo = None
        return True

    def reserve(
        self, now: float, cost: float, max_wait: float | None = None
    ) -> Reservation | Rejection | None:
        """Reserve *cost* tokens at *now*, behind every pending reservation.

        Args:
            now: The current time.
            cost: Tokens, in (0, burst].
            max_wait: The longest acceptable wait in seconds (up to the same rounding
                tolerance), or ``None`` for no limit.

        Returns:
            ``None`` when the tokens are granted at once (nothing to wait for or give
            back); a `Reservation` when they are granted later, at ``ready_at``; a
            `Rejection` carrying the needed wait when it exceeds *max_wait*, in which
            case nothing changed.
        """
        start = self.full_at
        if start < now:  # noqa: PLR1730 -- max() costs 120 ns on this hot path
            start = now
        step = cost / self._rate
        ready = start + step - self._tau
        if ready < self.tail:  # noqa: PLR1730 -- as above
            ready = self.tail
        wait = ready - now
        if wait <= self._slack:
            self.full_at = start + step
            self._undo = None
            return None
        if max_wait is not None and wait - max_wait > self._slack:  # rounding, as above
            return Rejection(wait)
        return self._commit_later(now, cost, ready, start, step)

    def commit(self, now: float, cost: float, at: float) -> Reservation | None:
        """Take *cost* tokens, granted at *at*; the second half of a multi-bucket reserve.

        *at* must be at least ``ready_time(now, cost)``; a later *at* (because another
        bucket needs longer) is fine: the tokens this bucket refills meanwhile are not
        lost, since the bucket's timeline restarts from *at*.

        Returns:
            ``None`` when *at* <= *now* (granted now), else the `Reservation`.

        Raises:
            ValueError: If *at* is earlier than ``ready_time(now, cost)``.
        """
        ready = self.ready_time(now, cost)
        if at < ready:
            msg = f"at ({at!r}) is earlier than ready_time(now, cost) ({ready!r})"
            raise ValueError(msg)
        start = self.full_at
        start = max(start, now)
        step = cost / self._rate
        if at <= now:
            self.full_at = start + step
            self._undo = None
            return None
        return self._commit_later(now, cost, at, start, step)

    def _commit_later(
        self, now: float, cost: float, at: float, start: float, step: float
    ) -> Reservation:
        # The grant happens at `at`: replay it there, so that a grant delayed past the
        # refill (by the FIFO tail or by a common multi-bucket time) is charged from
        # `at`, never from an earlier, emptier moment.
        reservation = Reservation(cost, at, now, self.full_at)
        self.full_at = max(start, at) + step
        pending = self._pending
        if pending is None:
            pending = self._pending = {}
        pending[reservation] = None
        undo = self._undo
        if undo is None:
            self._undo = [reservation]
        else:
            undo.append(reservation)
        self.tail = at
        return reservation

    def complete(self, reservation: Reservation) -> None:
        """Forget *reservation*: its waiter got the tokens at ``ready_at``. Idempotent."""
        pending = self._pending
        if pending is not None and reservation in pending:
            self._forget(pending, reservation)
            self._granted(reservation)

    def seal(self) -> None:
        """Make every pending reservation final: a later `cancel` uses Go's rule only.

        For limiters that keep several buckets in step, so that a change one bucket
        cannot undo (a settlement, say) stops exact undo in all of them.
        """
        self._undo = None

    def _granted(self, reservation: Reservation) -> None:
        # A grant cannot be undone, nor can anything it was queued behind.
        undo = self._undo
        if undo is not None and reservation in undo:
            del undo[: undo.index(reservation) + 1]
            if not undo:
                self._undo = None

    def cancel(self, reservation: Reservation, now: float) -> float | None:
        """Give back a reservation whose waiter gave up.

        **Exactly, when it is the latest.** If no reservation came after it, or every
        later one was cancelled too, and nothing that cannot be undone happened since (a
        grant made at once, a completed wait, a settlement), the bucket returns to the
        state it had just before the reservation: every token comes back, including the
        refill lost when the grant was set later than needed (behind the FIFO tail, or
        at a multi-bucket common time). Cancelling a queue of waiters in any order
        therefore restores all of them once the last one goes.

        **Otherwise, by Go's ``Reservation.Cancel`` rule.** Later reservations keep
        their ready times, computed as if this reservation's tokens were taken, so only
        what no later reservation depends on comes back at once: ``cost - rate * (tail -
        ready_at)``, with ``tail`` the latest pending ready time; the rest comes back if
        those later reservations are cancelled in turn.

        Either way a refund never fills the bucket above ``burst``, never lets a new
        reservation be granted before a pending one, and keeps the window invariant.

        Returns:
            The tokens restored at *now* (>= 0); or ``None`` when *reservation* was no
            longer pending: its ``ready_at`` has passed (the tokens were granted at that
            moment and stay taken), or it was already completed or cancelled.
        """
        pending = self._pending
        if pending is None or reservation not in pending:
            return None
        tail = self.tail
        self._forget(pending, reservation)
        if reservation.ready_at <= now:
            self._granted(reservation)
            return None
        undo = self._undo
        if undo is not None and undo[-1] is reservation:
            before = self.available(now)
            full_at = undo.pop().prior
            while undo and undo[-1].cancelled:
                full_at = undo.pop().prior
            if not undo:
                self._undo = None
            self.full_at = full_at
            return max(0.0, self.available(now) - before)
        reservation.cancelled = True
        restored = self._restore(now, reservation.cost, reservation.ready_at, tail)
        if restored and undo is not None:
            # The refund happened after every later reservation was made: undoing one of
            # them must keep it, so their snapshots move back by the same amount.
            shift = restored / self._rate
            later = undo.index(reservation) + 1 if reservation in undo else 0
            for entry in undo[later:]:
                entry.prior -= shift
        return restored

    def adjust(self, now: float, delta: float, granted_at: float) -> float:
        """Settle real usage against a grant: charge (*delta* > 0) or refund (*delta* < 0).

        A charge records usage beyond what was reserved: the tokens are taken at *now*,
        even into debt, and later reservations wait for them. A refund gives back tokens
        of a grant made at *granted_at* that were not used, by the same rule as `cancel`:
        only what later grants do not depend on, ``-delta - rate * (latest - granted_at)``
        with ``latest`` the later of *now* and the pending tail. Tokens that have
        refilled since *granted_at* are therefore not refunded twice, and the bucket
        never goes above ``burst``.

        Returns:
            The tokens charged (*delta*) or restored (>= 0).
        """
        self._undo = None
        if delta >= 0:
            start = self.full_at
            start = max(start, now)
            self.full_at = start + delta / self._rate
            return delta
        latest = max(now, self.tail)
        return self._restore(now, -delta, min(granted_at, latest), latest)

    def _restore(self, now: float, tokens: float, granted_at: float, latest: float) -> float:
        restore = tokens - (latest - granted_at) * self._rate
        if restore <= 0:
            return 0.0
        current = self.full_at
        if current <= now:
            return 0.0  # already full
        full_at = current - restore / self._rate
        if full_at < now:  # never above burst
            full_at = now
            restore = (current - now) * self._rate
        self.full_at = full_at
        return restore

    def _forget(self, pending: dict[Reservation, None], reservation: Reservation) -> None:
        if next(reversed(pending)) is reservation:
            # popitem() also trims the deleted slots before it, keeping this O(1).
            pending.popitem()
            if pending:
                self.tail = next(reversed(pending)).ready_at
            else:
                self._pending = None
                self.tail = NEVER
        else:
            del pending[reservation]
