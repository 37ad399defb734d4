"""The LLM rate limiter: requests per minute and tokens per minute, checked together.

A pair of token buckets reserved atomically, with an estimate settled against the real
usage afterwards. It does not count tokens itself, nor limit concurrency.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn, final

from seawall._clock import Clock, asleep_until, resolve_clock, sleep_until
from seawall._errors import RateLimitedError
from seawall._hooks import Event, Hook, emit, normalize_hooks, wants_call_events
from seawall._validate import check_name

from ._bucket import BucketCore, Rejection, Reservation, check_max_wait
from ._events import AcquireCancelled, AcquireWaited, RateLimited


if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator, Iterable
    from datetime import timedelta
    from types import TracebackType


__all__ = (
    "DEFAULT_NAME",
    "LLMCore",
    "LLMLease",
    "LLMRateLimiter",
    "LLMRateLimiterStatistics",
    "Ticket",
    "TokensSettled",
)

DEFAULT_NAME: Final = "llm-rate-limiter"
SECONDS_PER_MINUTE: Final = 60.0


# -- argument checks --------------------------------------------------------------------


def _check_number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an int or float, got {type(value).__name__}")
    return value


def _check_per_minute(name: str, value: float) -> float:
    _check_number(name, value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_burst(name: str, value: float | None, per_minute: float) -> float:
    if value is None:  # one minute's worth, as providers count; at least one unit
        return max(1.0, per_minute)
    _check_number(name, value)
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"{name} must be a finite number >= 1, got {value!r}")
    return float(value)


def check_estimated_tokens(estimated_tokens: float, token_burst: float) -> float:
    """Check ``estimated_tokens``: a number in [0, token_burst]."""
    _check_number("estimated_tokens", estimated_tokens)
    if not estimated_tokens >= 0:  # also catches NaN
        raise ValueError(f"estimated_tokens must be >= 0, got {estimated_tokens!r}")
    if estimated_tokens > token_burst:
        msg = (
            f"estimated_tokens must be <= token_burst ({token_burst:g}), got "
            f"{estimated_tokens!r}: it could never be granted"
        )
        raise ValueError(msg)
    return estimated_tokens


def check_actual_tokens(actual_tokens: float) -> float:
    """Check ``actual_tokens``: a finite number >= 0 (it may exceed the burst)."""
    _check_number("actual_tokens", actual_tokens)
    if not (math.isfinite(actual_tokens) and actual_tokens >= 0):
        raise ValueError(f"actual_tokens must be a finite number >= 0, got {actual_tokens!r}")
    return actual_tokens


# -- events and statistics --------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class TokensSettled(Event):
    """A lease of a `seawall.LLMRateLimiter` was settled against the real usage.

    Attributes:
        name: The limiter's name.
        estimated: The tokens reserved for the request.
        actual: The tokens the request really used.
        delta: ``actual - estimated``: charged when positive, refunded when negative.
        refunded: The tokens that went back into the bucket (>= 0); less than
            ``-delta`` when the refund came late (see `seawall.LLMLease.settle`).

    .. versionadded:: 0.1.0
    """

    estimated: float
    actual: float
    delta: float
    refunded: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class LLMRateLimiterStatistics:
    """A consistent snapshot of a `seawall.LLMRateLimiter`, taken under its lock.

    Every reservation ends up in one of ``grants``, ``rejections`` or ``cancelled``,
    or is still ``waiting``.

    Attributes:
        requests_per_minute: The request limit.
        tokens_per_minute: The token limit.
        request_burst: The capacity of the request bucket.
        token_burst: The capacity of the token bucket.
        requests_available: Requests available now (negative while in debt).
        tokens_available: Tokens available now (negative while in debt, e.g. after
            a charge).
        grants: Requests granted (leases handed out).
        tokens_reserved: The estimates of those requests, in total.
        rejections: Reservations refused (``try_reserve`` returning ``None``, or
            `seawall.RateLimitedError` because of ``max_wait``).
        waiting: Reservations waiting for their grant now.
        waits: Grants that had to wait (included in ``grants``).
        total_wait: Seconds waited by those grants, in total.
        cancelled: Waiters cancelled before their grant, who gave it back.
        settled: Leases settled.
        tokens_settled: The actual usage reported by those settlements, in total.
        tokens_charged: Tokens charged because the usage exceeded the estimate.
        tokens_refunded: Tokens that went back because the usage was below the
            estimate (possibly less than the difference, see `seawall.LLMLease.settle`).

    .. versionadded:: 0.1.0
    """

    requests_per_minute: float
    tokens_per_minute: float
    request_burst: float
    token_burst: float
    requests_available: float
    tokens_available: float
    grants: int
    tokens_reserved: float
    rejections: int
    waiting: int
    waits: int
    total_wait: float
    cancelled: int
    settled: int
    tokens_settled: float
    tokens_charged: float
    tokens_refunded: float


# -- the pure core ----------------------------------------------------------------------


@final
class Ticket:
    """One request's reservation on both buckets, granted at one time ``at``.

    Attributes:
        estimated: The tokens reserved.
        at: When both the request and the tokens are granted.
        reserved_at: When the reservation was made.
        requests: The request bucket's `Reservation`, or ``None`` if granted at once.
        tokens: The token bucket's `Reservation`, or ``None`` if granted at once or
            if *estimated* is 0.
        request_start: The request bucket's timeline before the reservation, less the
            seconds that cancellations of earlier tickets gave back since.
        token_start: The same for the token bucket.
        cancelled: Whether its waiter gave it back.
        actual: The settled usage, or ``None`` while unsettled (kept by the shell).
    """

    __slots__ = (
        "actual",
        "at",
        "cancelled",
        "estimated",
        "request_start",
        "requests",
        "reserved_at",
        "token_start",
        "tokens",
    )

    def __init__(  # noqa: PLR0917 -- private record built in one place
        self,
        estimated: float,
        at: float,
        reserved_at: float,
        requests: Reservation | None,
        tokens: Reservation | None,
        request_start: float,
        token_start: float,
    ) -> None:
        self.estimated = estimated
        self.at = at
        self.reserved_at = reserved_at
        self.requests = requests
        self.tokens = tokens
        self.request_start = request_start
        self.token_start = token_start
        self.cancelled = False
        self.actual: float | None = None

    def __repr__(self) -> str:
        return f"Ticket(estimated={self.estimated!r}, at={self.at!r})"


@final
class LLMCore:
    """Two `BucketCore` timelines, requests and tokens, reserved at one common time.

    Pure: no lock, no clock. A reservation asks both buckets for their ready time,
    takes the later one, ``at``, and commits one request and the estimate on both at
    ``at``. Both buckets therefore hold the same FIFO queue, and a reservation never
    gets ahead of an earlier one in either dimension.

    **Cancellation.** Committing at a common ``at`` replays the bucket that did not
    need to wait as if its grant happened at ``at``; `BucketCore.cancel` gives the
    cost back but not that replay, which would leave the bucket emptier than before
    (until ``at``), and cancelling waiters in queue order would give back almost
    nothing. So the core keeps, in order, the waiting tickets committed since the last
    change it cannot undo (a grant at once, a settlement, a completed wait). Cancelling
    a ticket first applies the bucket's own rule (only what no later reservation
    depends on); if every change after it has been cancelled too, both buckets are
    then rolled back exactly to where they were before the oldest of those cancelled
    tickets (keeping what earlier cancellations gave back meanwhile). Cancelling
    several waiters, in any order, thus leaves nothing behind.

    Args:
        request_rate: Requests added per second, > 0.
        request_burst: The request bucket's capacity, >= 1.
        token_rate: Tokens added per second, > 0.
        token_burst: The token bucket's capacity, >= 1.
    """

    __slots__ = ("_requests", "_slack", "_tokens", "_undo")

    def __init__(
        self, request_rate: float, request_burst: float, token_rate: float, token_burst: float
    ) -> None:
        self._requests = BucketCore(request_rate, request_burst)
        self._tokens = BucketCore(token_rate, token_burst)
        self._slack = max(self._requests.slack, self._tokens.slack)
        # The waiting (or cancelled) tickets committed since the last change that cannot
        # be undone, oldest first; see cancel(). Emptied by every such change, so it
        # holds at most the tickets queued meanwhile.
        self._undo: list[Ticket] = []

    def __repr__(self) -> str:
        return f"LLMCore(requests={self._requests!r}, tokens={self._tokens!r})"

    @property
    def requests(self) -> BucketCore:
        """The request bucket (cost 1 per request)."""
        return self._requests

    @property
    def tokens(self) -> BucketCore:
        """The token bucket."""
        return self._tokens

    @property
    def slack(self) -> float:
        """Seconds within which a grant counts as due now."""
        return self._slack

    def ready_time(self, now: float, estimated: float) -> float:
        """Return when a request of *estimated* tokens reserved at *now* is granted."""
        return max(self._requests.ready_time(now, 1), self._tokens.ready_time(now, estimated))

    def reserve(self, now: float, estimated: float, max_wait: float | None) -> Ticket | Rejection:
        """Reserve one request and *estimated* tokens at one grant time.

        Args:
            now: The current time.
            estimated: Tokens, in [0, token burst]; 0 reserves the request alone (it
                still waits for its turn and for any token debt to be paid).
            max_wait: The longest acceptable wait in seconds, or ``None``; 0 means
                "only if granted now".

        Returns:
            A `Ticket` (waiting needed when ``ticket.at > now``), or a `Rejection` with
            the needed wait, in which case nothing changed.
        """
        requests = self._requests
        tokens = self._tokens
        at = max(requests.ready_time(now, 1), tokens.ready_time(now, estimated))
        if max_wait is not None and at - now - max_wait > self._slack:
            return Rejection(at - now)
        request_start = max(requests.full_at, now)
        token_start = max(tokens.full_at, now)
        request_reservation = requests.commit(now, 1, at)
        token_reservation = tokens.commit(now, estimated, at) if estimated > 0 else None
        # This core undoes cancelled tickets across both buckets itself (see `cancel`),
        # so the buckets must not also undo their own latest reservation.
        requests.seal()
        tokens.seal()
        ticket = Ticket(
            estimated,
            at,
            now,
            request_reservation,
            token_reservation,
            request_start,
            token_start,
        )
        if request_reservation is None:
            self._undo.clear()  # granted at once: it cannot be cancelled
        else:
            self._undo.append(ticket)
        return ticket

    def complete(self, ticket: Ticket) -> None:
        """Forget *ticket*'s reservations: its waiter was granted at ``ticket.at``."""
        if ticket.requests is not None:
            self._requests.complete(ticket.requests)
        if ticket.tokens is not None:
            self._tokens.complete(ticket.tokens)
        self._barrier(ticket)

    def _barrier(self, ticket: Ticket) -> None:
        # A granted ticket cannot be undone, nor can anything committed before it.
        undo = self._undo
        for index in range(len(undo) - 1, -1, -1):
            if undo[index] is ticket:
                del undo[: index + 1]
                return

    def cancel(self, ticket: Ticket, now: float) -> float | None:
        """Give back a waiting *ticket* on both buckets.

        Returns:
            The tokens restored to the token bucket (>= 0), or ``None`` when the grant
            time had passed (the grant stands) or the ticket was not waiting.
        """
        if ticket.requests is None or ticket.cancelled:
            return None
        requests_before = self._requests.full_at
        tokens_before = self._tokens.full_at
        if self._requests.cancel(ticket.requests, now) is None:
            if ticket.tokens is not None:
                self._tokens.complete(ticket.tokens)
            self._barrier(ticket)
            return None
        ticket.cancelled = True
        restored = 0.0
        if ticket.tokens is not None:
            restored = self._tokens.cancel(ticket.tokens, now) or 0.0
        undo = self._undo
        if not undo or undo[-1] is not ticket:
            # Later tickets are still live. What this cancellation gave back stays
            # given back even if they are rolled back later: credit it to them.
            requests_back = requests_before - self._requests.full_at
            tokens_back = tokens_before - self._tokens.full_at
            if requests_back > 0 or tokens_back > 0:
                for later in reversed(undo):
                    if later is ticket:
                        break
                    later.request_start -= requests_back
                    later.token_start -= tokens_back
        else:
            # Everything after the oldest of the trailing cancelled tickets is undone:
            # put both buckets back where they were before it.
            oldest = ticket
            while undo and undo[-1].cancelled:
                oldest = undo.pop()
            _rewind(self._requests, now, oldest.request_start)
            _rewind(self._tokens, now, oldest.token_start)
        return restored

    def settle(self, ticket: Ticket, now: float, actual: float) -> float:
        """Settle a granted *ticket* against the *actual* usage.

        Returns:
            The tokens charged (> 0) or, negated, the tokens refunded (<= 0).
        """
        delta = actual - ticket.estimated
        if delta == 0:
            return 0.0
        self._undo.clear()
        applied = self._tokens.adjust(now, delta, ticket.at)
        return applied if delta > 0 else -applied


def _rewind(bucket: BucketCore, now: float, start: float) -> None:
    # Move the bucket's timeline back to `start` (never before now): a refund that no
    # pending reservation depends on, since all of them were committed before `start`.
    gap = bucket.full_at - max(start, now)
    if gap > 0:
        bucket.adjust(now, -gap * bucket.rate, granted_at=max(now, bucket.tail))


# -- the lease --------------------------------------------------------------------------


@final
class LLMLease:
    """A granted request of a `seawall.LLMRateLimiter`, to settle with the real usage.

    Returned by `LLMRateLimiter.reserve`, `LLMRateLimiter.try_reserve` and
    ``await LLMRateLimiter.areserve(...)``, and bound by their ``with`` / ``async with``
    forms. Leaving the block does nothing to the buckets: an unsettled lease keeps its
    estimate, whether the block ended normally, raised or was cancelled (providers
    count the tokens of a failed request too).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_settle", "_ticket")

    def __init__(self, ticket: Ticket, settle: Callable[[Ticket, float], None]) -> None:
        self._ticket = ticket
        self._settle = settle

    def __repr__(self) -> str:
        ticket = self._ticket
        return (
            f"LLMLease(estimated_tokens={ticket.estimated!r}, "
            f"granted_at={ticket.at!r}, actual_tokens={ticket.actual!r})"
        )

    @property
    def estimated_tokens(self) -> float:
        """The tokens reserved for this request."""
        return self._ticket.estimated

    @property
    def granted_at(self) -> float:
        """When the request and its tokens were granted, on the limiter's clock."""
        return self._ticket.at

    @property
    def actual_tokens(self) -> float | None:
        """The usage given to `settle`, or ``None`` while unsettled."""
        return self._ticket.actual

    @property
    def settled(self) -> bool:
        """Whether `settle` has been called."""
        return self._ticket.actual is not None

    def settle(self, actual_tokens: float) -> None:
        """Report the tokens the request really used; at most once per lease.

        Usage above the estimate is charged at once, even into debt, so that later
        requests wait for it: that is how an under-estimate is paid for. Usage below
        it is refunded, but only the part that no later grant depends on: tokens that
        have refilled since `granted_at` (or that requests queued meanwhile were
        promised) are not given back twice, so a refund after a long call may return
        less than the difference, or nothing. Settling after the ``with`` block is
        fine.

        Args:
            actual_tokens: The real usage, a finite number >= 0 (for example the
                response's ``usage.total_tokens``); it may exceed the token burst.

        Raises:
            RuntimeError: The lease was already settled.
            TypeError: *actual_tokens* is not an int or float.
            ValueError: *actual_tokens* is negative, infinite or NaN.
        """
        self._settle(self._ticket, check_actual_tokens(actual_tokens))

    def __enter__(self) -> LLMLease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Nothing to release: an unsettled lease keeps its estimate."""


# -- the shell --------------------------------------------------------------------------


@final
class LLMRateLimiter:
    """Requests per minute and tokens per minute together, as LLM providers limit them.

    Each request reserves one request and an estimate of its tokens (input tokens plus
    the maximum output tokens) before the call, and settles the real usage after it::

        limiter = seawall.LLMRateLimiter(requests_per_minute=500, tokens_per_minute=90_000)

        with limiter.reserve(estimated_tokens=1200) as lease:  # blocks until granted
            response = client.chat(...)
            lease.settle(response.usage.total_tokens)

        async with limiter.areserve(estimated_tokens=1200) as lease:  # asyncio or trio
            ...
            lease.settle(actual_tokens)

        lease = limiter.try_reserve(estimated_tokens=1200)  # a lease, or None

    **Both dimensions, atomically.** The request bucket refills at
    ``requests_per_minute / 60`` per second and the token bucket at
    ``tokens_per_minute / 60``; each holds one minute's worth by default, as providers
    count. Under one lock, a reservation asks both buckets when they could grant it,
    takes the later time, and takes the request and the estimate at that one time.
    Waiting is FIFO across both dimensions: a large estimate is not starved by small
    ones, and `try_reserve` never gets ahead of a waiter. In any window of t seconds
    at most ``request_burst + rate * t`` requests and ``token_burst + rate * t``
    tokens are granted (charges aside, see below).

    **Estimates.** ``estimated_tokens`` is a number in [0, token_burst]: above the
    burst it could never be granted and raises `ValueError` at once; 0 reserves the
    request alone (it still waits for its turn and for any token debt).

    **Settling.** `LLMLease.settle` charges usage above the estimate (the token bucket
    may go into debt, and later callers wait) and refunds usage below it, only as far
    as no later grant depends on it. A lease that is never settled keeps its estimate;
    so does one whose block raised or was cancelled.

    **Waiting and cancellation.** ``max_wait`` bounds the wait: if the grant would come
    later, `seawall.RateLimitedError` is raised at once with the wait needed as
    ``retry_after``, and nothing is taken. A waiter that is cancelled (anyio or trio
    cancellation, `KeyboardInterrupt` during a sync wait) gives both reservations
    back: exactly (both buckets as before it) when every reservation made after it was
    cancelled too and nothing was settled meanwhile, as when a cancel scope ends a
    group of waiters; otherwise as far as no later grant depends on it.
    The lock is never held while waiting or while the caller's code runs.
    ``areserve`` is a checkpoint only when it waits.

    Args:
        requests_per_minute: The request limit, > 0.
        tokens_per_minute: The token limit, > 0.
        request_burst: The request bucket's capacity, >= 1. Default
            ``max(1, requests_per_minute)``.
        token_burst: The token bucket's capacity, >= 1; the largest estimate. Default
            ``max(1, tokens_per_minute)``.
        name: Used in errors, events and the repr. Default ``"llm-rate-limiter"``.
        clock: The time source. Default: the monotonic system clock.
        hooks: Callables receiving `RateLimited`, `AcquireWaited` (every grant of
            `reserve` and `areserve`, ``wait=0.0`` when granted at once),
            `AcquireCancelled` (their ``cost`` is the token estimate; ``restored``
            counts tokens) and `TokensSettled` events, outside the lock. It runs no
            calls, so it reports no `seawall.CallStarted` events. Default none.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_cancelled",
        "_clock",
        "_core",
        "_grants",
        "_hooks",
        "_hooks_want_grants",
        "_lock",
        "_name",
        "_rejections",
        "_request_burst",
        "_requests_per_minute",
        "_settled",
        "_token_burst",
        "_tokens_charged",
        "_tokens_per_minute",
        "_tokens_refunded",
        "_tokens_reserved",
        "_tokens_settled",
        "_total_wait",
        "_waiting",
        "_waits",
    )

    def __init__(
        self,
        requests_per_minute: float,
        tokens_per_minute: float,
        *,
        request_burst: float | None = None,
        token_burst: float | None = None,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
        hooks: Iterable[Hook] | None = None,
    ) -> None:
        rpm = _check_per_minute("requests_per_minute", requests_per_minute)
        tpm = _check_per_minute("tokens_per_minute", tokens_per_minute)
        self._requests_per_minute = rpm
        self._tokens_per_minute = tpm
        self._request_burst = _check_burst("request_burst", request_burst, rpm)
        self._token_burst = _check_burst("token_burst", token_burst, tpm)
        self._name = check_name(name)
        self._clock = resolve_clock(clock)
        self._hooks = normalize_hooks(hooks)
        # Grants without a wait come with every reserve: only for hooks that want them.
        self._hooks_want_grants = wants_call_events(self._hooks)
        self._lock = threading.Lock()
        self._core = LLMCore(
            rpm / SECONDS_PER_MINUTE,
            self._request_burst,
            tpm / SECONDS_PER_MINUTE,
            self._token_burst,
        )
        self._grants = 0
        self._tokens_reserved = 0.0
        self._rejections = 0
        self._waiting = 0
        self._waits = 0
        self._total_wait = 0.0
        self._cancelled = 0
        self._settled = 0
        self._tokens_settled = 0.0
        self._tokens_charged = 0.0
        self._tokens_refunded = 0.0

    def __repr__(self) -> str:
        with self._lock:
            now = self._clock.now()
            requests = self._core.requests.available(now)
            tokens = self._core.tokens.available(now)
            waiting = self._waiting
        return (
            f"LLMRateLimiter(name={self._name!r}, "
            f"requests_per_minute={self._requests_per_minute:g}, "
            f"tokens_per_minute={self._tokens_per_minute:g}, "
            f"requests_available={requests:.6g}, tokens_available={tokens:.6g}, "
            f"waiting={waiting})"
        )

    @property
    def name(self) -> str:
        """The limiter's name, as given."""
        return self._name

    @property
    def requests_per_minute(self) -> float:
        """The request limit."""
        return self._requests_per_minute

    @property
    def tokens_per_minute(self) -> float:
        """The token limit."""
        return self._tokens_per_minute

    @property
    def request_burst(self) -> float:
        """The request bucket's capacity."""
        return self._request_burst

    @property
    def token_burst(self) -> float:
        """The token bucket's capacity, and the largest estimate accepted."""
        return self._token_burst

    def statistics(self) -> LLMRateLimiterStatistics:
        """Return a consistent snapshot of both buckets and the counters."""
        with self._lock:
            now = self._clock.now()
            return LLMRateLimiterStatistics(
                requests_per_minute=self._requests_per_minute,
                tokens_per_minute=self._tokens_per_minute,
                request_burst=self._request_burst,
                token_burst=self._token_burst,
                requests_available=self._core.requests.available(now),
                tokens_available=self._core.tokens.available(now),
                grants=self._grants,
                tokens_reserved=self._tokens_reserved,
                rejections=self._rejections,
                waiting=self._waiting,
                waits=self._waits,
                total_wait=self._total_wait,
                cancelled=self._cancelled,
                settled=self._settled,
                tokens_settled=self._tokens_settled,
                tokens_charged=self._tokens_charged,
                tokens_refunded=self._tokens_refunded,
            )

    # -- reserving ---------------------------------------------------------------------

    def try_reserve(self, estimated_tokens: float) -> LLMLease | None:
        """Reserve a request and *estimated_tokens* if both are available now.

        Never blocks and never queues, and never gets ahead of a waiting caller.

        Returns:
            The lease, or ``None`` when the grant would need a wait (nothing taken).

        Raises:
            ValueError: *estimated_tokens* is negative, NaN or above ``token_burst``.
            TypeError: *estimated_tokens* is not an int or float.
        """
        estimated = check_estimated_tokens(estimated_tokens, self._token_burst)
        with self._lock:
            decision = self._core.reserve(self._clock.now(), estimated, 0.0)
            self._count_locked(decision, estimated)
        if isinstance(decision, Rejection):
            if self._hooks:
                emit(self._hooks, RateLimited(self._name, estimated, decision.retry_after))
            return None
        return LLMLease(decision, self._settle)

    def reserve(
        self, estimated_tokens: float, *, max_wait: float | timedelta | None = None
    ) -> LLMLease:
        """Reserve a request and *estimated_tokens*, blocking the thread until granted.

        Use it as ``with limiter.reserve(n) as lease:`` or ``lease = limiter.reserve(n)``.

        Args:
            estimated_tokens: The tokens the request may use (input plus maximum
                output), an int or float in [0, token_burst].
            max_wait: The longest acceptable wait, in seconds or as a `timedelta`;
                ``None`` (the default) waits as long as needed.

        Returns:
            The granted lease.

        Raises:
            seawall.RateLimitedError: The wait would exceed *max_wait*; nothing taken.
            ValueError: *estimated_tokens* is out of range, or *max_wait* < 0.
            TypeError: *estimated_tokens* or *max_wait* has the wrong type.
        """
        ticket = self._reserve(estimated_tokens, max_wait)
        if ticket.requests is not None:
            self._wait(ticket)
        return LLMLease(ticket, self._settle)

    def areserve(
        self, estimated_tokens: float, *, max_wait: float | timedelta | None = None
    ) -> _PendingLease:
        """Reserve a request and *estimated_tokens*, suspending the task until granted.

        Use it as ``async with limiter.areserve(n) as lease:`` or
        ``lease = await limiter.areserve(n)``; asyncio or trio. The arguments are
        checked at once, when called; the reservation is made when awaited or entered.
        Arguments and errors as for `reserve`.
        """
        estimated = check_estimated_tokens(estimated_tokens, self._token_burst)
        seconds = check_max_wait(max_wait)
        return _PendingLease(self._areserve, estimated, seconds, self._name)

    async def _areserve(self, estimated: float, max_wait: float | None) -> LLMLease:
        ticket = self._reserve(estimated, max_wait)
        if ticket.requests is not None:
            await self._await(ticket)
        return LLMLease(ticket, self._settle)

    def _reserve(self, estimated_tokens: float, max_wait: float | timedelta | None) -> Ticket:
        estimated = check_estimated_tokens(estimated_tokens, self._token_burst)
        seconds = check_max_wait(max_wait)
        with self._lock:
            decision = self._core.reserve(self._clock.now(), estimated, seconds)
            self._count_locked(decision, estimated)
        if isinstance(decision, Rejection):
            self._refuse(estimated, decision.retry_after)
        if self._hooks_want_grants and decision.requests is None:  # granted at once
            emit(self._hooks, AcquireWaited(self._name, estimated, 0.0))
        return decision

    def _count_locked(self, decision: Ticket | Rejection, estimated: float) -> None:
        if isinstance(decision, Rejection):
            self._rejections += 1
        elif decision.requests is None:
            self._grants += 1
            self._tokens_reserved += estimated
        else:
            self._waiting += 1

    def _refuse(self, estimated: float, retry_after: float) -> NoReturn:
        if self._hooks:
            emit(self._hooks, RateLimited(self._name, estimated, retry_after))
        msg = (
            f"LLM rate limiter {self._name!r}: a request of {estimated:g} token(s) needs "
            f"a wait of {retry_after:.3g} s, longer than max_wait"
        )
        raise RateLimitedError(msg, primitive_name=self._name, retry_after=retry_after)

    # -- waiting -----------------------------------------------------------------------

    def _wait(self, ticket: Ticket) -> None:
        try:
            sleep_until(self._clock, ticket.at, self._core.slack)
        except BaseException:  # KeyboardInterrupt included: give both reservations back
            self._cancel(ticket)
            raise
        self._complete(ticket)

    async def _await(self, ticket: Ticket) -> None:
        try:
            await asleep_until(self._clock, ticket.at, self._core.slack)
        except BaseException:  # anyio/trio cancellation included
            self._cancel(ticket)
            raise
        self._complete(ticket)

    def _complete(self, ticket: Ticket) -> None:
        wait = ticket.at - ticket.reserved_at
        with self._lock:
            self._core.complete(ticket)
            self._waiting -= 1
            self._grants += 1
            self._tokens_reserved += ticket.estimated
            self._waits += 1
            self._total_wait += wait
        if self._hooks:
            emit(self._hooks, AcquireWaited(self._name, ticket.estimated, wait))

    def _cancel(self, ticket: Ticket) -> None:
        with self._lock:
            restored = self._core.cancel(ticket, self._clock.now())
            self._waiting -= 1
            if restored is None:  # its grant time had passed: the grant stands
                self._grants += 1
                self._tokens_reserved += ticket.estimated
            else:
                self._cancelled += 1
        if restored is not None and self._hooks:
            emit(self._hooks, AcquireCancelled(self._name, ticket.estimated, restored))

    # -- settling ----------------------------------------------------------------------

    def _settle(self, ticket: Ticket, actual: float) -> None:
        with self._lock:
            if ticket.actual is not None:
                msg = f"this lease was already settled (actual_tokens={ticket.actual!r})"
                raise RuntimeError(msg)
            ticket.actual = actual
            applied = self._core.settle(ticket, self._clock.now(), actual)
            self._settled += 1
            self._tokens_settled += actual
            if applied > 0:
                self._tokens_charged += applied
            else:
                self._tokens_refunded -= applied
        if self._hooks:
            delta = actual - ticket.estimated
            refunded = -applied if applied < 0 else 0.0
            emit(self._hooks, TokensSettled(self._name, ticket.estimated, actual, delta, refunded))


@final
class _PendingLease:
    """What `LLMRateLimiter.areserve` returns: awaitable, or an async context manager.

    Either form reserves when it starts and yields the granted `LLMLease`; leaving the
    ``async with`` block does nothing to the buckets. Single use.
    """

    __slots__ = ("_estimated", "_max_wait", "_name", "_reserve", "_used")

    def __init__(
        self,
        reserve: Callable[[float, float | None], Coroutine[object, None, LLMLease]],
        estimated: float,
        max_wait: float | None,
        name: str,
    ) -> None:
        self._reserve = reserve
        self._estimated = estimated
        self._max_wait = max_wait
        self._name = name
        self._used = False

    def __repr__(self) -> str:
        return f"<pending LLMLease of {self._estimated!r} token(s) from {self._name!r}>"

    def _start(self) -> Generator[object, None, LLMLease]:
        if self._used:
            raise RuntimeError("areserve(...) can be awaited or entered only once")
        self._used = True
        return self._reserve(self._estimated, self._max_wait).__await__()

    def __await__(self) -> Generator[object, None, LLMLease]:
        return self._start()

    async def __aenter__(self) -> LLMLease:
        return await self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Nothing to release: an unsettled lease keeps its estimate."""
