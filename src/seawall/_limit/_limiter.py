"""The rate limiter's shells: one token bucket shared by threads, asyncio tasks and trio tasks.

The shells read the clock, ask the core (`._bucket`) under a short lock, wait outside
it, and report events; every decision about tokens is the core's. One rule is written
out in the shells' fast paths, for speed: `BucketCore.try_take` on a bucket nobody
waits on. The tests hold every form to the core's decisions and float state, bit for
bit (``test_limit_sync``, ``test_limit_async``).
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any, Final, NoReturn, ParamSpec, TypeVar, cast, final

from seawall._clock import Clock, asleep_until, resolve_clock, sleep_until
from seawall._errors import RateLimitedError
from seawall._hooks import Hook, emit, normalize_hooks, wants_call_events
from seawall._observe import observer_for
from seawall._validate import check_name, is_async_callable

from ._bucket import (
    EPSILON_TOKENS,
    NEVER,
    BucketCore,
    Rejection,
    Reservation,
    check_burst,
    check_cost,
    check_max_wait,
    check_rate,
)
from ._events import AcquireCancelled, AcquireWaited, RateLimited, RateLimiterStatistics


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
    from datetime import timedelta
    from types import TracebackType


__all__ = ("DEFAULT_COST", "DEFAULT_NAME", "LimiterBase", "RateLimiter")

DEFAULT_NAME: Final = "rate-limiter"

DEFAULT_COST: Final = 1
"""The cost of a call that names none.

The fast paths test ``cost is DEFAULT_COST``: that cost needs no validation (burst is
at least 1) and its step, ``1 / rate``, is computed once. Any other 1 (``1.0``, say)
takes the full check, which accepts it too.
"""

P = ParamSpec("P")
T = TypeVar("T")


class LimiterBase:
    """What every rate-limiter shell shares: counters, waiting, cancelling, reporting.

    The subclasses own the buckets and the fast paths; this class takes over once a
    caller has a `Reservation` to wait for, or has been refused.
    """

    __slots__ = (
        "_burst",
        "_cancelled",
        "_clock",
        "_grants",
        "_hooks",
        "_hooks_want_grants",
        "_lock",
        "_name",
        "_now",
        "_rate",
        "_rejections",
        "_slack",
        "_tau",
        "_tokens_granted",
        "_tokens_restored",
        "_total_wait",
        "_unit",
        "_unit_grants",
        "_waiting",
        "_waits",
    )

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        name: str,
        clock: Clock | None,
        hooks: Iterable[Hook] | None,
    ) -> None:
        self._rate = check_rate(rate)
        self._burst = check_burst(burst)
        self._name = check_name(name)
        self._clock = resolve_clock(clock)
        # Looked up once, so that the fast paths read the time with one call.
        self._now = self._clock.now
        # For the fast paths that inline `BucketCore.try_take`: the buckets' own
        # constants (`BucketCore.tau`, `BucketCore.slack`), computed the same way, and
        # the step of the default cost, ``cost / rate`` for cost 1, computed once.
        self._tau = self._burst / self._rate
        self._slack = EPSILON_TOKENS / self._rate
        self._unit = 1 / self._rate
        self._hooks = normalize_hooks(hooks)
        # Grants without a wait come with every acquire: only for hooks that want them.
        self._hooks_want_grants = wants_call_events(self._hooks)
        self._lock = threading.Lock()
        self._grants = 0
        self._tokens_granted: float = 0
        # Grants of the default cost made by the fast paths, each one grant of one
        # token: one counter instead of two saves an int allocation per call. Read
        # the totals with `_granted_locked`.
        self._unit_grants = 0
        self._rejections = 0
        self._waiting = 0
        self._waits = 0
        self._total_wait = 0.0
        self._cancelled = 0
        self._tokens_restored = 0.0

    @property
    def name(self) -> str:
        """The limiter's name, as given."""
        return self._name

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """The capacity of a bucket; a new bucket starts full."""
        return self._burst

    # -- after the core has decided ----------------------------------------------------

    def _granted_locked(self) -> tuple[int, float]:
        # (grants, tokens granted), counting the fast paths' unit grants in both.
        unit = self._unit_grants
        return self._grants + unit, self._tokens_granted + unit

    def _count_decision_locked(self, decision: Reservation | Rejection | None, cost: float) -> None:
        if decision is None:
            self._grants += 1
            self._tokens_granted += cost
        elif isinstance(decision, Rejection):
            self._rejections += 1
        else:
            self._waiting += 1

    def _follow(
        self, decision: Reservation | Rejection | None, cost: float, key: Hashable | None
    ) -> Reservation | None:
        # Outside the lock, once the core has decided: report a grant made at once to
        # the hooks that want it, raise for a refusal, or return the reservation.
        if decision is None:
            if self._hooks_want_grants:
                emit(self._hooks, AcquireWaited(self._name, cost, 0.0, key))
            return None
        if isinstance(decision, Rejection):
            self._refuse(cost, decision.retry_after, key)
        return decision

    def _refuse(self, cost: float, retry_after: float, key: Hashable | None) -> NoReturn:
        if self._hooks:
            emit(self._hooks, RateLimited(self._name, cost, retry_after, key))
        where = "" if key is None else f" for key {key!r}"
        msg = (
            f"rate limiter {self._name!r}{where}: {cost:g} token(s) need a wait of "
            f"{retry_after:.3g} s, longer than max_wait"
        )
        raise RateLimitedError(msg, primitive_name=self._name, retry_after=retry_after)

    def _wait(self, core: BucketCore, reservation: Reservation, key: Hashable | None) -> None:
        try:
            sleep_until(self._clock, reservation.ready_at, core.slack)
        except BaseException:  # cancellation included: give the reservation back
            self._cancel(core, reservation, key)
            raise
        self._complete(core, reservation, key)

    async def _await(
        self, core: BucketCore, reservation: Reservation, key: Hashable | None
    ) -> None:
        try:
            await asleep_until(self._clock, reservation.ready_at, core.slack)
        except BaseException:  # anyio/trio cancellation included
            self._cancel(core, reservation, key)
            raise
        self._complete(core, reservation, key)

    def _complete(self, core: BucketCore, reservation: Reservation, key: Hashable | None) -> None:
        cost = reservation.cost
        wait = reservation.ready_at - reservation.reserved_at
        with self._lock:
            core.complete(reservation)
            self._waiting -= 1
            self._grants += 1
            self._tokens_granted += cost
            self._waits += 1
            self._total_wait += wait
        if self._hooks:
            emit(self._hooks, AcquireWaited(self._name, cost, wait, key))

    def _cancel(self, core: BucketCore, reservation: Reservation, key: Hashable | None) -> None:
        with self._lock:
            restored = core.cancel(reservation, self._clock.now())
            self._waiting -= 1
            if restored is None:  # its ready time had passed: the tokens were granted
                self._grants += 1
                self._tokens_granted += reservation.cost
            else:
                self._cancelled += 1
                self._tokens_restored += restored
        if restored is not None and self._hooks:
            emit(self._hooks, AcquireCancelled(self._name, reservation.cost, restored, key))


@final
class RateLimiter(LimiterBase):
    """A token bucket: at most ``burst + rate * t`` tokens in any window of t seconds.

    One instance models one limit (a provider's requests per second, say) and is shared
    by every thread and task that calls under it. The bucket holds up to ``burst``
    tokens, starts full, and refills at ``rate`` tokens per second. The Go guide's
    ``limiter.Wait(ctx)`` reads::

        limiter = seawall.RateLimiter(rate=10, burst=20)

        limiter.acquire()  # sync: blocks until a token is granted
        await limiter.aacquire()  # asyncio or trio
        if limiter.try_acquire(): ...  # never blocks


        @limiter  # one token per call; sync or coroutine functions
        async def generate(messages): ...


        async with limiter:  # or `with limiter:`; one token, nothing to release
            ...

    **Fair waiting.** Waiting callers hold *reservations*, as in Go's
    ``golang.org/x/time/rate``: a reservation takes its tokens at once (the bucket may go
    into debt) and fixes the time at which they are granted; later reservations queue
    behind it. A large cost is therefore never starved by a stream of small ones, and
    `try_acquire` never jumps ahead of a waiter.

    **Costs** are ints or floats in (0, burst]: a cost above ``burst`` could never be
    granted and raises `ValueError` at once; fractional costs are fine.

    **Waiting and cancellation.** ``max_wait`` bounds the wait: when the reservation
    would wait longer, `seawall.RateLimitedError` is raised at once, carrying the wait
    needed as ``retry_after``, and nothing is taken. A waiter that is cancelled (anyio or
    trio cancellation, `KeyboardInterrupt` during a sync wait) gives its reservation
    back: the tokens that no later reservation depends on return to the bucket (Go's
    ``Reservation.Cancel`` rule), so FIFO order and the window invariant still hold.

    **Checkpoints.** `aacquire` (and the async decorator and ``async with``) is a
    checkpoint only when it waits. When the tokens are available and nobody is queued
    it takes them and returns without yielding to the event loop, like aiolimiter: an
    anyio checkpoint costs about 8 µs on asyncio (even ``checkpoint_if_cancelled``
    about 4 µs), ten times the whole acquisition. Fairness does not need one: the
    queue order is fixed when reserving, not by the scheduler, and a caller finding
    anyone queued reserves behind them instead of taking tokens at once.

    Args:
        rate: Tokens added per second, > 0.
        burst: The capacity of the bucket, >= 1; the bucket starts full.
        name: Used in errors, events and the repr. Default ``"rate-limiter"``.
        clock: The time source. Default: the monotonic system clock. Its ``now``
            method is looked up once, here.
        hooks: Callables receiving `RateLimited`, `AcquireWaited` (every grant of a
            blocking acquisition) and `AcquireCancelled` events, outside the lock; and
            each call of a decorated function or ``with`` block as a
            `seawall.CallStarted` / `seawall.CallEnded` pair (primitive
            ``"rate_limiter"``, the wait for the token included). `acquire`,
            `aacquire` and `try_acquire` alone are not calls. Default none.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_core", "_observer")

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
        hooks: Iterable[Hook] | None = None,
    ) -> None:
        super().__init__(rate, burst, name=name, clock=clock, hooks=hooks)
        self._core = BucketCore(self._rate, self._burst)
        # Built only with hooks: the decorator and `with` report calls only then.
        self._observer = observer_for(self._hooks, self._clock, self._name, "rate_limiter")

    def __repr__(self) -> str:
        with self._lock:
            available = self._core.available(self._clock.now())
            waiting = self._waiting
        return (
            f"RateLimiter(name={self._name!r}, rate={self._rate:g}, burst={self._burst:g}, "
            f"available={available:.6g}, waiting={waiting})"
        )

    def statistics(self) -> RateLimiterStatistics:
        """Return a consistent snapshot of the bucket and the counters."""
        with self._lock:
            grants, tokens_granted = self._granted_locked()
            return RateLimiterStatistics(
                rate=self._rate,
                burst=self._burst,
                tokens_available=self._core.available(self._clock.now()),
                grants=grants,
                tokens_granted=tokens_granted,
                rejections=self._rejections,
                waiting=self._waiting,
                waits=self._waits,
                total_wait=self._total_wait,
                cancelled=self._cancelled,
                tokens_restored=self._tokens_restored,
            )

    # -- acquiring ---------------------------------------------------------------------
    #
    # Every way in starts with the same fast path, written out in each (a helper call
    # would cost as much as the path itself): under one lock acquire/release pair and
    # one clock read, `BucketCore.try_take`'s rule for a bucket nobody waits on
    # (``tail == NEVER``), which takes the tokens by advancing ``full_at``. No
    # reservation, no event unless a hook wants grants, no sleep, no thread. Anything
    # else (tokens short, or someone queued) goes to the core under the same lock.
    # acquire/release rather than `with`: about 100 ns cheaper; the try still releases
    # the lock if the clock raises or an interrupt lands in between.

    def try_acquire(self, cost: float = 1) -> bool:
        """Take *cost* tokens if they are available now and nobody is waiting.

        Never blocks and never queues.

        Returns:
            Whether the tokens were taken.

        Raises:
            ValueError: *cost* is not in (0, burst].
            TypeError: *cost* is not an int or float.
        """
        if cost is DEFAULT_COST:
            step = self._unit
        else:
            cost = check_cost(cost, self._burst)
            step = cost / self._rate
        core = self._core
        lock = self._lock
        clock_now = self._now  # a local: calling a slot's callable directly costs more
        lock.acquire()
        try:
            now = clock_now()
            if core.tail == NEVER:
                start = core.full_at
                if start < now:  # noqa: PLR1730 -- max() costs more than the rest
                    start = now
                end = start + step
                if end - self._tau - now <= self._slack:
                    core.full_at = end
                    if cost is DEFAULT_COST:
                        self._unit_grants += 1
                    else:
                        self._grants += 1
                        self._tokens_granted += cost
                    return True
            elif core.try_take(now, cost):  # someone queued, but their time has come
                self._grants += 1
                self._tokens_granted += cost
                return True
            self._rejections += 1
            retry_after = core.ready_time(now, cost) - now if self._hooks else 0.0
        finally:
            lock.release()
        if self._hooks:
            emit(self._hooks, RateLimited(self._name, cost, retry_after))
        return False

    def acquire(self, cost: float = 1, *, max_wait: float | timedelta | None = None) -> None:
        """Take *cost* tokens, blocking the calling thread until they are granted.

        Returns at once, without sleeping, when the tokens are available.

        Args:
            cost: Tokens, an int or float in (0, burst]. Default 1.
            max_wait: The longest acceptable wait, in seconds or as a `timedelta`;
                ``None`` (the default) waits as long as needed.

        Raises:
            seawall.RateLimitedError: The wait would exceed *max_wait*; nothing taken.
            ValueError: *cost* is not in (0, burst], or *max_wait* < 0.
            TypeError: *cost* or *max_wait* has the wrong type.
        """
        reservation = self._take(cost, max_wait)
        if reservation is not None:
            self._wait(self._core, reservation, None)

    async def aacquire(self, cost: float = 1, *, max_wait: float | timedelta | None = None) -> None:
        """Take *cost* tokens, suspending the calling task until they are granted.

        Works on asyncio and trio. Does not yield when the tokens are available, like
        aiolimiter: a checkpoint only when it has to wait (see the class docstring).
        Arguments and errors as for `acquire`.
        """
        reservation = self._take(cost, max_wait)
        if reservation is not None:
            await self._await(self._core, reservation, None)

    def _take(self, cost: float, max_wait: float | timedelta | None) -> Reservation | None:
        """Take *cost* tokens now, or reserve them: what `acquire` and `aacquire` share.

        Returns the reservation to wait for, or ``None`` when the tokens were granted at
        once. Raises as `acquire` does when the wait would exceed *max_wait*.
        """
        if cost is DEFAULT_COST:
            step = self._unit
        else:
            cost = check_cost(cost, self._burst)
            step = cost / self._rate
        if max_wait is not None:
            max_wait = check_max_wait(max_wait)
        core = self._core
        lock = self._lock
        clock_now = self._now
        lock.acquire()
        try:
            now = clock_now()
            start = core.full_at
            if start < now:  # noqa: PLR1730 -- max() costs more than the rest
                start = now
            end = start + step
            if end - self._tau - now <= self._slack and core.tail == NEVER:
                core.full_at = end
                if cost is DEFAULT_COST:
                    self._unit_grants += 1
                else:
                    self._grants += 1
                    self._tokens_granted += cost
                decision = None
            else:
                decision = self._reserve_locked(now, cost, max_wait)
        finally:
            lock.release()
        if decision is not None or self._hooks_want_grants:
            return self._follow(decision, cost, None)
        return None

    def _reserve_locked(
        self, now: float, cost: float, max_wait: float | None
    ) -> Reservation | Rejection | None:
        decision = self._core.reserve(now, cost, max_wait)
        self._count_decision_locked(decision, cost)
        return decision

    # -- decorator and context managers ------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn* so that each call first acquires one token.

        A coroutine function acquires with `aacquire`, anything else with `acquire`
        (blocking); the kind is decided once, here, and so is the reporting of calls to
        hooks.

        Raises:
            TypeError: *fn* is an async generator function: use ``async with limiter:``
                inside it, so that the wait happens where it can be awaited.
        """
        if inspect.isasyncgenfunction(fn):
            msg = "cannot decorate an async generator function; use `async with limiter:` in it"
            raise TypeError(msg)
        wrapper: Callable[..., object]
        if is_async_callable(fn):
            wrapper = self._wrap_coroutine(cast("Callable[..., Awaitable[Any]]", fn))
        else:
            wrapper = self._wrap_function(fn)
        if self._observer is not None:
            wrapper = self._observer.wrap(wrapper)
        return cast("Callable[P, T]", functools.update_wrapper(wrapper, fn))

    def _wrap_function(self, fn: Callable[P, T]) -> Callable[P, T]:
        # The fast path of `acquire` for one token, with what it reads bound here once.
        core = self._core
        lock = self._lock
        clock_now = self._now
        unit = self._unit
        tau = self._tau
        slack = self._slack
        want_grants = self._hooks_want_grants

        def limiter_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            lock.acquire()
            try:
                now = clock_now()
                start = core.full_at
                if start < now:  # noqa: PLR1730 -- max() costs more than the rest
                    start = now
                end = start + unit
                if end - tau - now <= slack and core.tail == NEVER:
                    core.full_at = end
                    self._unit_grants += 1
                    decision = None
                else:
                    decision = self._reserve_locked(now, 1, None)
            finally:
                lock.release()
            if decision is not None or want_grants:
                reservation = self._follow(decision, 1, None)
                if reservation is not None:
                    self._wait(core, reservation, None)
            return fn(*args, **kwargs)

        return limiter_wrapper

    def _wrap_coroutine(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        # As `_wrap_function`, with the wait of `aacquire`.
        core = self._core
        lock = self._lock
        clock_now = self._now
        unit = self._unit
        tau = self._tau
        slack = self._slack
        want_grants = self._hooks_want_grants

        async def limiter_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            lock.acquire()
            try:
                now = clock_now()
                start = core.full_at
                if start < now:  # noqa: PLR1730 -- max() costs more than the rest
                    start = now
                end = start + unit
                if end - tau - now <= slack and core.tail == NEVER:
                    core.full_at = end
                    self._unit_grants += 1
                    decision = None
                else:
                    decision = self._reserve_locked(now, 1, None)
            finally:
                lock.release()
            if decision is not None or want_grants:
                reservation = self._follow(decision, 1, None)
                if reservation is not None:
                    await self._await(core, reservation, None)
            return await fn(*args, **kwargs)

        return limiter_wrapper

    def __enter__(self) -> None:
        observer = self._observer
        if observer is not None:
            observer.enter_block()
        try:
            self.acquire()
        except BaseException as exc:  # interrupted while waiting: the call ends here
            if observer is not None:
                observer.exit_block(exc)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Nothing to release: tokens are spent, not borrowed; with hooks, end the call."""
        if self._observer is not None:
            self._observer.exit_block(exc)

    async def __aenter__(self) -> None:
        observer = self._observer
        if observer is not None:
            observer.enter_block()
        try:
            await self.aacquire()
        except BaseException as exc:  # cancelled while waiting: the call ends here
            if observer is not None:
                observer.exit_block(exc)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Nothing to release: tokens are spent, not borrowed; with hooks, end the call."""
        if self._observer is not None:
            self._observer.exit_block(exc)
