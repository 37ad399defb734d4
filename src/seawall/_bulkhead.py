"""`Bulkhead`: at most N calls at once, with an optional bounded FIFO queue of waiters.

A bulkhead limits concurrency, not rate (see `seawall.RateLimiter` for that): it
isolates one dependency so that its slowness cannot take every thread or task.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar, final

import anyio

from seawall._clock import Clock, SystemClock, call_after, resolve_clock
from seawall._decorate import decorate_with_calls
from seawall._errors import BulkheadFullError
from seawall._hooks import Event, Hook, emit, normalize_hooks
from seawall._observe import observer_for
from seawall._timeout import wait_event
from seawall._validate import check_name, check_positive_int, to_seconds


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from datetime import timedelta
    from types import TracebackType


__all__ = (
    "Bulkhead",
    "BulkheadAcquired",
    "BulkheadRejected",
    "BulkheadReleased",
    "BulkheadStatistics",
)

DEFAULT_NAME: Final = "bulkhead"

P = ParamSpec("P")
T = TypeVar("T")


@final
@dataclass(frozen=True, slots=True)
class BulkheadRejected(Event):
    """The bulkhead refused a call: no slot and no queue place, or ``max_wait`` ran out.

    Reported just before `seawall.BulkheadFullError` is raised to the caller.

    Attributes:
        name: The bulkhead's name.
        in_flight: Calls holding a slot when the call was refused.
        queued: Callers waiting in the queue when the call was refused.

    .. versionadded:: 0.1.0
    """

    in_flight: int
    queued: int


@final
@dataclass(frozen=True, slots=True)
class BulkheadAcquired(Event):
    """A caller got a slot, at once or after queueing.

    Reported after the slot is taken, outside the lock, by `seawall.Bulkhead.acquire`
    and `seawall.Bulkhead.aacquire` and so by every call, ``with`` block and decorated
    function. With `BulkheadReleased` it lets a metrics hook follow the calls in flight
    (+1 here, -1 there: the events of different callers may be reported out of order).

    Attributes:
        name: The bulkhead's name.
        in_flight: Slots held just after this one was taken.
        queued: Callers still waiting in the queue then.
        wait: Seconds the caller spent queued, on the bulkhead's clock; 0.0 when a slot
            was free at once.

    .. versionadded:: 0.1.0
    """

    in_flight: int
    queued: int
    wait: float


@final
@dataclass(frozen=True, slots=True)
class BulkheadReleased(Event):
    """A caller gave its slot back (`seawall.Bulkhead.release`, or the end of a call).

    Reported after the slot is freed or handed to the head of the queue, outside the
    lock. A handed-over slot stays in flight: the waiter that gets it reports its own
    `BulkheadAcquired` when it resumes.

    Attributes:
        name: The bulkhead's name.
        in_flight: Slots held just after the release (a slot handed to a waiter counts
            as held).
        queued: Callers still waiting in the queue then.

    .. versionadded:: 0.1.0
    """

    in_flight: int
    queued: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadStatistics:
    """A consistent snapshot of a `Bulkhead`, taken under its lock.

    Attributes:
        name: The bulkhead's name.
        max_concurrent: The number of slots.
        max_queue: The most callers that may wait for a slot.
        in_flight: Slots held now (a slot handed to a waiter that has not resumed yet
            counts as held).
        queued: Callers waiting for a slot now.
        admitted: Calls that got a slot, at once or after waiting.
        rejected: Calls refused: the queue was full, or ``max_wait`` ran out.
        cancelled: Waiters cancelled (or interrupted) while queued; not rejections.

    .. versionadded:: 0.1.0
    """

    name: str
    max_concurrent: int
    max_queue: int
    in_flight: int
    queued: int
    admitted: int
    rejected: int
    cancelled: int


class _Waiter:
    """One queued caller. ``granted`` is set under the bulkhead's lock on handover."""

    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = False

    def wake(self) -> bool:  # pragma: no cover - overridden
        """Wake the waiter, from any thread; False when it can never resume."""
        raise NotImplementedError


@final
class _ThreadWaiter(_Waiter):
    __slots__ = ("event",)

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def wake(self) -> bool:
        self.event.set()
        return True


@final
class _TaskWaiter(_Waiter):
    __slots__ = ("event", "schedule", "thread")

    def __init__(self) -> None:
        super().__init__()
        self.event = anyio.Event()
        self.thread = threading.get_ident()
        self.schedule = _threadsafe_scheduler()

    def wake(self) -> bool:
        if threading.get_ident() == self.thread:
            self.event.set()
            return True
        # Another thread (a sync caller, or another event loop): an anyio Event may
        # only be set from its own loop, so the set is scheduled there.
        try:
            self.schedule(self.event.set)
        except RuntimeError:  # its event loop is closed: the waiter never resumes
            return False
        return True


def _threadsafe_scheduler() -> Callable[[Callable[[], object]], object]:
    """Return a function that runs a callback soon on the current event loop's thread."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return loop.call_soon_threadsafe
    import trio.lowlevel  # noqa: PLC0415 -- only reachable when trio runs the loop

    return trio.lowlevel.current_trio_token().run_sync_soon


@final
class Bulkhead:
    """Run at most ``max_concurrent`` calls at once; queue up to ``max_queue`` more.

    One instance guards one dependency and is shared by every thread and task that
    calls it (asyncio and trio tasks, even on several event loops, and plain
    threads)::

        bulkhead = seawall.Bulkhead(10, max_queue=20, max_wait=1.0, name="llm")

        result = await bulkhead.acall(client.generate, prompt)  # asyncio or trio
        result = bulkhead.call(sync_client.generate, prompt)  # threads

        async with bulkhead:  # or `with bulkhead:`; holds one slot for the block
            ...


        @bulkhead  # sync functions and coroutine functions
        async def generate(prompt: str) -> str: ...

    **Admission.** A caller takes a free slot at once. When every slot is busy it joins
    the FIFO queue if the queue holds fewer than ``max_queue`` callers; otherwise it is
    refused at once with `seawall.BulkheadFullError` (``retry_after`` is ``None``: a
    bulkhead cannot tell when a slot frees). With the default ``max_queue=0`` a busy
    bulkhead refuses at once. A released slot is handed to the head of the queue, never
    to a newcomer, so waiters are served in arrival order, sync and async alike.

    **Waiting.** A queued caller waits at most ``max_wait`` seconds (``None``: as long
    as needed), then is refused with `BulkheadFullError`. Async waiters wait on an
    `anyio.Event`; with `seawall.SystemClock` under a cancel scope with a deadline,
    with any other clock (e.g. `seawall.testing.FakeClock`) next to a watchdog task
    that sleeps with ``clock.asleep(max_wait)``, so virtual time drives the wait. Sync
    waiters wait on a `threading.Event`, bounded by ``max_wait`` with `SystemClock`;
    with another clock the deadline is set with ``seawall._clock.call_after``: a clock
    with ``call_at`` (such as `FakeClock`) wakes the waiter when virtual time reaches
    it, any other clock gets a helper thread that calls ``clock.sleep(max_wait)`` and
    then wakes the waiter. So with `FakeClock` a queued sync caller is refused only
    once virtual time moves ``max_wait`` past its arrival (another thread sleeps on
    the clock or advances it) without a slot handed to it; a ``max_wait`` of 0 refuses
    at once.

    **Threads and tasks.** The queue and counters live under one `threading.Lock`,
    never held across an await or while user code runs. A slot released by a thread
    (or by a task of another event loop) to a waiting task is handed over under the
    lock at once, and the task is woken on its own event loop (thread-safe scheduling),
    so handover works in every direction.

    **Cancellation.** A waiter that is cancelled (anyio or trio cancellation,
    `KeyboardInterrupt` in a sync wait) leaves the queue; if it had already been handed
    a slot, it passes the slot on to the next waiter. Nothing leaks. Cancellation is
    never counted as a rejection.

    **Checkpoints.** `acall` and ``async with`` are checkpoints only when they wait: a
    free slot is taken without yielding to the event loop (as `seawall.RateLimiter`
    does), and fairness never needs one because the queue order is fixed under the lock.

    Args:
        max_concurrent: The number of slots, >= 1.
        max_queue: The most callers that may wait for a slot, >= 0. Default 0.
        max_wait: The longest a queued caller waits, in seconds (>= 0) or as a
            `timedelta`; ``None`` (the default) waits as long as needed.
        name: Used in errors, events and the repr. Default ``"bulkhead"``.
        clock: The clock that measures ``max_wait``, the queueing time of
            `BulkheadAcquired` and the duration of calls. Default: the system clock.
        hooks: Callables that receive `BulkheadAcquired`, `BulkheadReleased` and
            `BulkheadRejected` events, outside the lock, and each call (`call`,
            `acall`, a ``with`` block, a decorated function) as a
            `seawall.CallStarted` / `seawall.CallEnded` pair (primitive
            ``"bulkhead"``; a refused call ends `seawall.Outcome.REJECTED`). Default
            none. A hook that raises is logged and ignored.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_admitted",
        "_cancelled",
        "_clock",
        "_hooks",
        "_in_flight",
        "_lock",
        "_max_concurrent",
        "_max_queue",
        "_max_wait",
        "_name",
        "_observer",
        "_queue",
        "_real_time",
        "_rejected",
    )

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_queue: int = 0,
        max_wait: float | timedelta | None = None,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
        hooks: Iterable[Hook] | None = None,
    ) -> None:
        self._max_concurrent = check_positive_int("max_concurrent", max_concurrent)
        self._max_queue = check_positive_int("max_queue", max_queue, minimum=0)
        self._max_wait = None if max_wait is None else to_seconds("max_wait", max_wait)
        self._name = check_name(name)
        self._clock = resolve_clock(clock)
        self._real_time = type(self._clock) is SystemClock
        self._hooks = normalize_hooks(hooks)
        # Built only with hooks: without, `call` and `acall` test this one None.
        self._observer = observer_for(self._hooks, self._clock, self._name, "bulkhead")
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self._admitted = 0
        self._rejected = 0
        self._cancelled = 0

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return self._name

    @property
    def max_concurrent(self) -> int:
        """The number of slots."""
        return self._max_concurrent

    @property
    def max_queue(self) -> int:
        """The most callers that may wait for a slot."""
        return self._max_queue

    @property
    def max_wait(self) -> float | None:
        """The longest a queued caller waits, in seconds, or ``None``."""
        return self._max_wait

    def statistics(self) -> BulkheadStatistics:
        """Return a consistent snapshot (see `BulkheadStatistics`)."""
        with self._lock:
            return BulkheadStatistics(
                name=self._name,
                max_concurrent=self._max_concurrent,
                max_queue=self._max_queue,
                in_flight=self._in_flight,
                queued=len(self._queue),
                admitted=self._admitted,
                rejected=self._rejected,
                cancelled=self._cancelled,
            )

    def __repr__(self) -> str:
        with self._lock:
            in_flight, queued = self._in_flight, len(self._queue)
        return (
            f"Bulkhead(name={self._name!r}, max_concurrent={self._max_concurrent}, "
            f"max_queue={self._max_queue}, in_flight={in_flight}, queued={queued})"
        )

    # -- acquiring and releasing -------------------------------------------------------

    def _try_enter_locked(self) -> bool:
        # While anyone queues every slot is held (a release hands its slot over), so a
        # free slot means nobody is waiting: taking it never jumps the queue.
        if self._in_flight < self._max_concurrent:
            self._in_flight += 1
            self._admitted += 1
            return True
        return False

    def _refuse(self, in_flight: int, queued: int, why: str) -> BulkheadFullError:
        if self._hooks:
            emit(self._hooks, BulkheadRejected(self._name, in_flight, queued))
        msg = f"bulkhead {self._name!r}: {why} ({in_flight} in flight, {queued} queued)"
        return BulkheadFullError(msg, primitive_name=self._name, retry_after=None)

    def _queue_full_locked(self) -> tuple[int, int] | None:
        """Count a refusal and return the state to report, or None when there is room."""
        queued = len(self._queue)
        if queued < self._max_queue:
            return None
        self._rejected += 1
        return self._in_flight, queued

    def _release(self, report: bool = True) -> None:
        """Free one slot: hand it to the head of the queue, or give it back.

        Reports `BulkheadReleased` (with hooks) unless *report* is false: a cancelled
        waiter passing on a slot it never reported as acquired.
        """
        while True:
            with self._lock:
                if not self._queue:
                    self._in_flight -= 1
                    if not self._hooks or not report:
                        return
                    in_flight, queued = self._in_flight, 0
                    break
                waiter = self._queue.popleft()
                waiter.granted = True
                in_flight, queued = self._in_flight, len(self._queue)
            if waiter.wake():
                break
            # The waiter's event loop is gone; pass its slot on to the next one.
        if self._hooks and report:
            emit(self._hooks, BulkheadReleased(self._name, in_flight, queued))

    def _acquired(self, in_flight: int, queued: int, queued_at: float | None) -> None:
        """Report `BulkheadAcquired`; *queued_at* is when the caller joined the queue."""
        wait = 0.0 if queued_at is None else max(0.0, self._clock.now() - queued_at)
        emit(self._hooks, BulkheadAcquired(self._name, in_flight, queued, wait))

    def _settle(self, waiter: _Waiter, queued_at: float) -> tuple[int, int] | None:
        """After a wait: keep the slot handed over, or leave the queue and count a refusal."""
        with self._lock:
            if waiter.granted:
                self._admitted += 1
                in_flight, queued = self._in_flight, len(self._queue)
            else:
                self._queue.remove(waiter)
                self._rejected += 1
                return self._in_flight, len(self._queue)
        if self._hooks:
            self._acquired(in_flight, queued, queued_at)
        return None

    def _abort(self, waiter: _Waiter) -> None:
        """Clean up after a cancelled waiter: leave the queue, or pass its slot on."""
        with self._lock:
            self._cancelled += 1
            if not waiter.granted:
                self._queue.remove(waiter)
                return
        self._release(report=False)

    def acquire(self) -> None:
        """Take a slot, blocking the calling thread while queued; pair with `release`.

        Raises:
            seawall.BulkheadFullError: The queue was full, or ``max_wait`` ran out.
        """
        with self._lock:
            if self._try_enter_locked():
                if not self._hooks:
                    return
                entered = self._in_flight, len(self._queue)
            else:
                entered = None
                refused = self._queue_full_locked()
            if entered is None and refused is None:
                waiter = _ThreadWaiter()
                self._queue.append(waiter)
                queued_at = self._clock.now() if self._hooks else 0.0
                if self._max_wait is not None and not self._real_time:
                    # Armed under the lock, so that max_wait counts from the moment
                    # the caller joins the queue (may set the event at once).
                    call_after(
                        self._clock,
                        self._max_wait,
                        waiter.event.set,
                        name=f"seawall-bulkhead-{self._name}-timer",
                    )
        if entered is not None:  # with hooks only
            self._acquired(*entered, None)
            return
        if refused is not None:
            raise self._refuse(*refused, "every slot is busy and the queue is full")
        try:
            self._block(waiter)
        except BaseException:  # KeyboardInterrupt while queued: leave nothing behind
            self._abort(waiter)
            raise
        refused = self._settle(waiter, queued_at)
        if refused is not None:
            raise self._refuse(*refused, f"no slot within max_wait={self._max_wait:g} s")

    def _block(self, waiter: _ThreadWaiter) -> None:
        max_wait = self._max_wait
        if max_wait is not None and self._real_time:
            waiter.event.wait(max_wait)
        else:  # no max_wait, or the deadline was armed on the clock in acquire()
            waiter.event.wait()

    async def aacquire(self) -> None:
        """Take a slot, suspending the calling task while queued; pair with `release`.

        A checkpoint only when it has to wait (see the class docstring).

        Raises:
            seawall.BulkheadFullError: The queue was full, or ``max_wait`` ran out.
        """
        with self._lock:
            if self._try_enter_locked():
                if not self._hooks:
                    return
                entered = self._in_flight, len(self._queue)
            else:
                entered = None
                refused = self._queue_full_locked()
            if entered is None and refused is None:
                waiter = _TaskWaiter()
                self._queue.append(waiter)
                queued_at = self._clock.now() if self._hooks else 0.0
        if entered is not None:  # with hooks only
            self._acquired(*entered, None)
            return
        if refused is not None:
            raise self._refuse(*refused, "every slot is busy and the queue is full")
        try:
            await wait_event(waiter.event, self._max_wait, self._clock)
        except BaseException:  # anyio/trio cancellation included: leave nothing behind
            self._abort(waiter)
            raise
        refused = self._settle(waiter, queued_at)
        if refused is not None:
            raise self._refuse(*refused, f"no slot within max_wait={self._max_wait:g} s")

    def release(self) -> None:
        """Give back a slot taken with `acquire` or `aacquire`; never blocks.

        Raises:
            RuntimeError: No slot is held.
        """
        with self._lock:
            if self._in_flight == 0:
                raise RuntimeError(f"bulkhead {self._name!r}: release() without a slot held")
        self._release()

    # -- calls -------------------------------------------------------------------------

    # `call` and `acall` repeat the few lines of `_call` / `_acall` rather than calling
    # them: the extra frame and the re-packing of *args and **kwargs would cost a third
    # of the bulkhead's overhead on the path without hooks.

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` in the calling thread while holding a slot.

        Raises:
            seawall.BulkheadFullError: No slot, and no queue place or no slot in time.
        """
        if self._observer is not None:
            return self._observer.call(self._call, fn, *args, **kwargs)
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self._release()

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` while holding a slot.

        Raises:
            seawall.BulkheadFullError: No slot, and no queue place or no slot in time.
        """
        if self._observer is not None:
            return await self._observer.acall(self._acall, fn, *args, **kwargs)
        await self.aacquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`call` without the reporting: what the observer and the decorator run."""
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self._release()

    async def _acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`acall` without the reporting: what the observer and the decorator run."""
        await self.aacquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    def __enter__(self) -> None:
        observer = self._observer
        if observer is None:
            self.acquire()
            return
        observer.enter_block()
        try:
            self.acquire()
        except BaseException as exc:  # refused or interrupted: the call ends here
            observer.exit_block(exc)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        observer = self._observer
        if observer is None:
            self._release()
            return
        try:
            self._release()
        finally:
            observer.exit_block(exc)

    async def __aenter__(self) -> None:
        observer = self._observer
        if observer is None:
            await self.aacquire()
            return
        observer.enter_block()
        try:
            await self.aacquire()
        except BaseException as exc:  # refused or cancelled: the call ends here
            observer.exit_block(exc)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)  # releasing never waits

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn* so that each call holds a slot while it runs.

        Coroutine functions are run as by `acall`, anything else as by `call`. The kind
        is decided once, here, and so is the reporting of calls to hooks.

        Raises:
            TypeError: *fn* is not callable, or is a (sync or async) generator function:
                use ``with bulkhead:`` / ``async with bulkhead:`` inside it instead.
        """
        return decorate_with_calls(
            fn,
            self._call,
            self._acall,
            generator_hint="use `with bulkhead:` / `async with bulkhead:` inside it instead",
            observer=self._observer,
        )
