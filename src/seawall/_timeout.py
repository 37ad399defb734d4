"""`Timeout`: bound how long a call may run; cancel it (async) or abandon it (sync).

A timeout is not a deadline shared by several calls (see the retrier's ``deadline``)
and it never retries: it ends one call that ran too long with `CallTimeoutError`.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, final

import anyio

from seawall._clock import Clock, SystemClock, call_after, resolve_clock
from seawall._decorate import decorate_with_calls
from seawall._errors import CallTimeoutError
from seawall._hooks import Event, Hook, emit, normalize_hooks
from seawall._observe import observer_for
from seawall._threads import DaemonPool, default_workers
from seawall._validate import check_name, to_seconds


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from datetime import timedelta
    from types import TracebackType

    from anyio.abc import TaskGroup

    from seawall._observe import CallStarted, Observer


__all__ = ("TimedOut", "Timeout", "TimeoutScope", "TimeoutStatistics", "wait_event")

DEFAULT_NAME: Final = "timeout"

P = ParamSpec("P")
T = TypeVar("T")


@final
@dataclass(frozen=True, slots=True)
class TimedOut(Event):
    """A call ran past its timeout: cancelled (async) or abandoned (sync).

    Reported just before `seawall.CallTimeoutError` is raised to the caller (so before
    the `seawall.CallEnded` of the call, with hooks).

    Attributes:
        name: The timeout policy's name.
        timeout: The timeout that was exceeded, in seconds.

    .. versionadded:: 0.1.0
    """

    timeout: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutStatistics:
    """A snapshot of a `Timeout`'s counters.

    Attributes:
        name: The timeout policy's name.
        timeout: The timeout, in seconds.
        calls: Calls started under the timeout (``call``, ``acall``, the decorator and
            each ``scope()``).
        timeouts: Calls that ran past the timeout.

    .. versionadded:: 0.1.0
    """

    name: str
    timeout: float
    calls: int
    timeouts: int


@final
class Timeout:
    """End a call that runs longer than *seconds* with `seawall.CallTimeoutError`.

    One instance is one policy ("a search takes at most 2 s"), shared by threads and
    tasks, sync and async callers::

        timeout = seawall.Timeout(2.0, name="search")

        result = await timeout.acall(client.search, query)  # asyncio or trio
        result = timeout.call(sync_client.search, query)  # a worker thread

        async with timeout.scope():  # a block of async code
            ...


        @timeout  # sync functions and coroutine functions
        async def search(query: str) -> list[str]: ...

    **Async** (`acall`, `scope`, coroutine functions): the call runs in the caller's
    task under an anyio cancel scope. When *seconds* pass, the scope is cancelled, so
    the call sees an ordinary cancellation at its next checkpoint (and may clean up);
    the cancellation stops at the scope and the caller gets `CallTimeoutError` instead.
    A call that returns before reaching a checkpoint after the deadline keeps its
    result, as with `anyio.fail_after`. A cancellation from outside (the caller's own
    scope, or its task group) is not a timeout: it propagates as a cancellation and is
    not counted. How the deadline is measured depends on the clock, chosen once, at
    construction:

    * with `seawall.SystemClock` (the default), a cancel scope with a deadline on the
      event loop's clock (`anyio.move_on_after`): no extra task, nearly free;
    * with any other clock (e.g. `seawall.testing.FakeClock`), the call runs in a task
      group next to a watchdog task that sleeps ``clock.asleep(seconds)`` and then
      cancels the scope; so virtual time drives the timeout, which fires exactly when
      the clock reaches the deadline.

    **Sync** (`call`, sync functions): Python cannot interrupt a thread, so the call
    runs in a worker thread (with a copy of the caller's context variables) while the
    caller waits up to *seconds*. On expiry the caller gets `CallTimeoutError` and the
    worker is abandoned: it runs on to its end, its result is dropped and its
    exception retrieved and dropped (a call still queued for a worker is cancelled).
    The pool is created on the first sync call, one per instance, with
    `concurrent.futures.ThreadPoolExecutor`'s default size, but its workers are daemon
    threads: an abandoned call keeps its worker busy until it finishes, yet never keeps
    the process from exiting. `close` shuts it down. With `SystemClock` the
    caller waits on an OS event bounded by *seconds*; with another clock the deadline
    is set with ``seawall._clock.call_after``: a clock with ``call_at`` (such as
    `FakeClock`) fires it when virtual time reaches it, any other clock gets a helper
    thread that calls ``clock.sleep(seconds)`` and then wakes the caller. So with
    `FakeClock` a sync call times out only if virtual time moves past the deadline
    while it runs (the call sleeps on the clock, or a test advances it); an instant
    call never times out and moves no virtual time.
    Only time out sync calls that are safe to abandon.

    Args:
        seconds: The timeout, in seconds (> 0, finite) or as a `timedelta`.
        name: Used in errors, events and the repr. Default ``"timeout"``.
        clock: The clock that measures the timeout and the duration of calls.
            Default: the system clock.
        hooks: Callables that receive `TimedOut` events, and each call (`call`,
            `acall`, a `scope` block, a decorated function) as a
            `seawall.CallStarted` / `seawall.CallEnded` pair (primitive
            ``"timeout"``; a call that timed out ends `seawall.Outcome.TIMEOUT`, after
            its `TimedOut`). Default none. A hook that raises is logged and ignored.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_executor",
        "_hooks",
        "_lock",
        "_name",
        "_observer",
        "_real_time",
        "_seconds",
        "_timeouts",
    )

    def __init__(
        self,
        seconds: float | timedelta,
        *,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
        hooks: Iterable[Hook] | None = None,
    ) -> None:
        self._seconds = to_seconds("seconds", seconds, allow_zero=False)
        if not math.isfinite(self._seconds):
            msg = f"seconds must be finite, got {seconds!r}"
            raise ValueError(msg)
        self._name = check_name(name)
        self._clock = resolve_clock(clock)
        self._real_time = type(self._clock) is SystemClock
        self._hooks = normalize_hooks(hooks)
        # Built only with hooks: without, a call tests this one None.
        self._observer = observer_for(self._hooks, self._clock, self._name, "timeout")
        self._lock = threading.Lock()
        self._executor: DaemonPool | None = None
        self._calls = 0
        self._timeouts = 0

    @property
    def seconds(self) -> float:
        """The timeout, in seconds."""
        return self._seconds

    @property
    def name(self) -> str:
        """The policy's name."""
        return self._name

    @property
    def clock(self) -> Clock:
        """The clock that measures the timeout."""
        return self._clock

    def statistics(self) -> TimeoutStatistics:
        """Return a snapshot of the counters (see `TimeoutStatistics`)."""
        with self._lock:
            return TimeoutStatistics(
                name=self._name,
                timeout=self._seconds,
                calls=self._calls,
                timeouts=self._timeouts,
            )

    def __repr__(self) -> str:
        with self._lock:
            calls, timeouts = self._calls, self._timeouts
        return (
            f"Timeout(name={self._name!r}, seconds={self._seconds!r}, "
            f"calls={calls}, timeouts={timeouts})"
        )

    def close(self) -> None:
        """Shut the sync worker pool down without waiting for abandoned calls.

        Calls still queued are cancelled. A later sync call creates a new pool; async
        calls never need one.
        """
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    # -- async -------------------------------------------------------------------------

    def scope(self) -> TimeoutScope:
        """Return an async context manager that times out the block it guards.

        ``async with timeout.scope(): ...`` raises `CallTimeoutError` from the
        ``async with`` when the block runs past the timeout (it is cancelled first).
        Each ``scope()`` is single-use; call it again for the next block. With hooks,
        the block is reported as one call.
        """
        return TimeoutScope(self, self._observer)

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``; cancel it after the timeout.

        Returns:
            What *fn* returns.

        Raises:
            seawall.CallTimeoutError: The call ran past the timeout and was cancelled.
        """
        async with TimeoutScope(self, self._observer):
            return await fn(*args, **kwargs)

    async def _acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`acall` without the reporting, for the decorator (which reports)."""
        async with TimeoutScope(self, None):
            return await fn(*args, **kwargs)

    # -- sync --------------------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` in a worker thread and wait up to the timeout.

        Returns:
            What *fn* returns.

        Raises:
            seawall.CallTimeoutError: The call ran past the timeout; it was abandoned.
        """
        # Delegating costs a frame, nothing next to the hand-over to a worker thread.
        if self._observer is not None:
            return self._observer.call(self._call, fn, *args, **kwargs)
        return self._call(fn, *args, **kwargs)

    def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`call` without the reporting: what the observer and the decorator run."""
        self._count_call()
        done = threading.Event()
        if not self._real_time:
            # Armed before the call starts, so that the deadline counts from here even
            # when the call itself moves a virtual clock.
            call_after(
                self._clock,
                self._seconds,
                done.set,
                name=f"seawall-timeout-{self._name}-timer",
            )
        # The pool runs fn in a copy of this thread's context variables.
        future = self._pool().submit(fn, *args, **kwargs)
        future.add_done_callback(lambda _: done.set())
        try:
            if self._real_time:
                done.wait(self._seconds)
            else:
                done.wait()
        except BaseException:  # KeyboardInterrupt while waiting: abandon, not a timeout
            _abandon(future)
            raise
        if future.done() and not future.cancelled():
            return future.result()
        _abandon(future)
        raise self._expired()

    def _pool(self) -> DaemonPool:
        executor = self._executor
        if executor is None:
            with self._lock:
                executor = self._executor
                if executor is None:
                    executor = self._executor = DaemonPool(
                        default_workers(), f"seawall-timeout-{self._name}"
                    )
        return executor

    # -- shared ------------------------------------------------------------------------

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1

    def _expired(self) -> CallTimeoutError:
        with self._lock:
            self._timeouts += 1
        if self._hooks:
            emit(self._hooks, TimedOut(self._name, self._seconds))
        msg = f"timeout {self._name!r}: the call ran longer than {self._seconds:g} s"
        return CallTimeoutError(msg, primitive_name=self._name, timeout=self._seconds)

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn* so that each call runs under the timeout.

        Coroutine functions go through the async path (cancellation), anything else
        through `call` (a worker thread). The kind is decided once, here, and so is the
        reporting of calls to hooks.

        Raises:
            TypeError: *fn* is not callable, or is a (sync or async) generator function.
        """
        return decorate_with_calls(
            fn,
            self._call,
            self._acall,
            generator_hint="use timeout.scope() inside it instead",
            observer=self._observer,
        )


@final
class TimeoutScope:
    """The async context manager returned by `Timeout.scope`; one use only.

    With an *observer* (the timeout's, when it has hooks) the block is reported as one
    call, ended after the `TimedOut` event of a timeout.
    """

    __slots__ = ("_began", "_call", "_observer", "_scope", "_task_group", "_timeout")

    def __init__(self, timeout: Timeout, observer: Observer | None = None) -> None:
        self._timeout = timeout
        self._observer = observer
        self._scope: anyio.CancelScope | None = None
        self._task_group: TaskGroup | None = None
        self._call: CallStarted | None = None
        self._began = 0.0

    def __repr__(self) -> str:
        return f"<TimeoutScope of {self._timeout!r}>"

    async def __aenter__(self) -> None:
        if self._scope is not None:
            raise RuntimeError("a timeout scope can be entered only once")
        observer = self._observer
        if observer is not None:
            self._call, self._began = observer.start()
        try:
            timeout = self._timeout
            timeout._count_call()  # noqa: SLF001 -- the scope is part of the policy
            seconds = timeout.seconds
            if timeout._real_time:  # noqa: SLF001 -- same
                scope = anyio.move_on_after(seconds)
                scope.__enter__()
            else:
                task_group = anyio.create_task_group()
                await task_group.__aenter__()
                scope = anyio.CancelScope()
                scope.__enter__()
                task_group.start_soon(_watchdog, timeout.clock, seconds, scope)
                self._task_group = task_group
            self._scope = scope
        except BaseException as exc:  # cancelled while starting the watchdog: the call ends
            self._end(exc)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        scope = self._scope
        if scope is None:  # pragma: no cover - __aexit__ without __aenter__
            raise AssertionError("unreachable")
        try:
            task_group = self._task_group
            if task_group is None:
                scope.__exit__(exc_type, exc, traceback)
            else:
                try:
                    scope.__exit__(exc_type, exc, traceback)
                finally:
                    # Stop the watchdog; the body's own outcome is not passed to the
                    # group, so that an exception is re-raised as is, never in a group.
                    task_group.cancel_scope.cancel()
                    await task_group.__aexit__(None, None, None)
        except BaseException as raised:  # a failure to clean up
            self._end(raised)
            raise
        # Only our deadline (or watchdog) cancels this scope. Its __exit__ return value
        # does not tell (trio's says True when there was no exception at all).
        if scope.cancelled_caught:
            error = self._timeout._expired()  # noqa: SLF001 -- part of the policy
            self._end(error)
            raise error from None
        if self._call is not None:
            self._end(exc)  # the block's own outcome, which goes on unchanged

    def _end(self, exc: BaseException | None) -> None:
        """Report the end of the block's call, if one was reported as started."""
        call = self._call
        if call is not None and self._observer is not None:
            self._call = None
            self._observer.end(call, self._began, exc)


async def _watchdog(clock: Clock, seconds: float, scope: anyio.CancelScope) -> None:
    await clock.asleep(seconds)
    scope.cancel()


async def wait_event(event: anyio.Event, seconds: float | None, clock: Clock) -> None:
    """Wait until *event* is set, or at most *seconds* measured on *clock*.

    Returns in both cases (the caller checks what happened). With `SystemClock` a
    cancel scope with a deadline; with another clock a watchdog task sleeping on the
    clock, as `Timeout` does. Cancellation from outside propagates.
    """
    if seconds is None:
        await event.wait()
    elif seconds <= 0:
        return  # no time to wait: the caller sees whether the event is set, no sleep(0)
    elif type(clock) is SystemClock:
        with anyio.move_on_after(seconds):
            await event.wait()
    else:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(_watchdog, clock, seconds, task_group.cancel_scope)
            await event.wait()
            task_group.cancel_scope.cancel()


def _abandon(future: concurrent.futures.Future[Any]) -> None:
    """Cancel *future* if it has not started; otherwise drop its outcome when it comes."""
    if not future.cancel():
        future.add_done_callback(_drop)


def _drop(future: concurrent.futures.Future[Any]) -> None:
    # Retrieve the exception so that it counts as seen; the outcome itself is dropped.
    if not future.cancelled():
        future.exception()
