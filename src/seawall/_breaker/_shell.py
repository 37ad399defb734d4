"""The circuit breaker's shells: one instance shared by threads, asyncio tasks and trio tasks.

The shells only read the clock, ask the core, run the user's code and report outcomes
and events; every decision is the core's (`._core`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, final

import anyio

from seawall._clock import Clock, resolve_clock
from seawall._errors import circuit_open_error
from seawall._hooks import Hook, emit, normalize_hooks
from seawall._observe import observer_for
from seawall._validate import check_name, is_async_callable

from ._core import BreakerCore
from ._events import CallRejected, CircuitBreakerStatistics, CircuitState, CircuitStateChanged
from ._options import (
    DEFAULT_HALF_OPEN_MAX,
    DEFAULT_MAX_FAILURES,
    DEFAULT_NAME,
    DEFAULT_TIMEOUT,
    DEFAULT_WINDOW,
    BreakerOptions,
    CountWindow,
    TimeWindow,
    default_judge,
)


if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Iterable
    from datetime import timedelta
    from types import TracebackType

    from seawall._observe import CallStarted, Observer


__all__ = ("CircuitBreaker",)

P = ParamSpec("P")
T = TypeVar("T")
Y = TypeVar("Y")
S = TypeVar("S")
R = TypeVar("R")

logger = logging.getLogger("seawall")

_Events = list[CircuitStateChanged | CallRejected]

_OPEN = CircuitState.OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN


@final
class CircuitBreaker:
    """Stop calling a failing dependency for a while, then probe it before trusting it again.

    One instance models one downstream dependency and is shared by every thread and task
    that calls it. It is CLOSED (calls pass) until a failure criterion is met, then OPEN
    (calls fail fast with `CircuitOpenError`) for ``timeout`` seconds, then HALF_OPEN:
    at most ``half_open_max`` concurrent probes pass; ``success_threshold`` successes
    close it, one failure opens it again. `CircuitState` lists every legal edge.

    The Go guide's ``cb.Execute(ctx, fn)`` reads::

        breaker = seawall.CircuitBreaker(max_failures=5, timeout=30, half_open_max=2)

        result = breaker.call(model.generate, messages)  # sync
        result = await breaker.acall(model.agenerate, messages)  # asyncio or trio


        @breaker  # sync functions, coroutine functions, sync and async generators
        async def generate(messages): ...


        async with breaker.guard():  # or `with breaker.guard():`
            ...

    **Failure criteria.** Consecutive mode (``max_failures`` failures in a row) and rate
    mode (``failure_rate_threshold`` over a sliding ``window``, once it holds at least
    ``minimum_calls`` calls) are both active when configured, and either one trips the
    circuit; ``max_failures=None`` turns the consecutive mode off. A call slower than
    ``slow_call_threshold`` that would have been a success counts as a failure, for both
    criteria and for probes (`CircuitBreakerStatistics.slow_calls` counts them).

    **What is a failure.** An exception for which ``is_failure(exc)`` is true, or a
    result for which ``is_failure_result(result)`` is true (the result is still
    returned). By default transient, unknown and quota-exhausted errors are failures;
    caller errors (`seawall.classify` says ``CALLER_ERROR``) are recorded as successes,
    because the dependency did answer. A predicate that raises is logged on the
    ``seawall`` logger and the outcome counts as a failure. Cancellation (anything that
    is not an `Exception`: anyio/trio cancellation, `KeyboardInterrupt`, `SystemExit`,
    `GeneratorExit`) records nothing and frees the call's probe slot.

    **Probes and generations.** Each probe holds a lease on its slot for
    ``probe_timeout`` seconds; a probe whose caller vanished loses its slot at the next
    admission decision after that. Every state entry starts a new generation; outcomes
    of calls admitted in an earlier generation (or after their lease was reclaimed) are
    ignored and counted in ``ignored_outcomes``.

    **Rejections.** `CircuitOpenError` carries the breaker's name and ``retry_after``:
    the seconds until HALF_OPEN when OPEN; when HALF_OPEN with every slot taken, 1 s or
    the time until the oldest probe lease expires, whichever is shorter; ``None`` when
    FORCED_OPEN.

    Args:
        max_failures: Consecutive failures that open a closed circuit, or ``None`` to
            turn the consecutive mode off. Default 5.
        timeout: How long the circuit stays open, in seconds or as a `timedelta`.
            Default 30 s.
        half_open_max: The most probes in flight at once in HALF_OPEN. Default 2.
        success_threshold: Probe successes that close the circuit. Default
            ``half_open_max``; it may be larger, as probes run one after another.
        failure_rate_threshold: Turns the rate mode on: the failure rate, in (0, 1],
            at or above which the circuit opens. Default ``None`` (off).
        window: The rate mode's sliding window: `CountWindow` (last N calls) or
            `TimeWindow` (last N seconds). Default ``CountWindow(100)``.
        minimum_calls: Calls the window must hold before the rate is judged. Default
            10, or the `CountWindow` size if smaller.
        slow_call_threshold: Seconds above which a successful call counts as a failure,
            measured with the breaker's clock. Default ``None`` (off).
        timeout_multiplier: Each trip after the first, without closing in between,
            multiplies the open duration by this (>= 1). Default 1.0 (no growth).
        max_timeout: Cap on the grown open duration. Default ``10 * timeout``.
        probe_timeout: How long a probe holds its slot before it is presumed lost.
            Default ``timeout``.
        is_failure: ``is_failure(exc) -> bool`` for exceptions. Default: by
            `seawall.classify`, as above.
        is_failure_result: ``is_failure_result(result) -> bool`` for return values of
            `call`, `acall` and decorated functions (not generators, not `guard`).
            Default ``None``: results never count as failures.
        name: Used in errors, events and the repr. Default ``"circuit-breaker"``.
        hooks: Callables receiving `CircuitStateChanged` and `CallRejected` events,
            after the change is committed and outside the lock, and each call as a
            `seawall.CallStarted` / `seawall.CallEnded` pair (primitive
            ``"circuit_breaker"``; a rejected call ends `seawall.Outcome.REJECTED`,
            and generators report with ``stream=True``). Default none.
        clock: The time source. Default: the monotonic system clock.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_bump_admissions",
        "_bump_rejections",
        "_bump_successes",
        "_clock",
        "_core",
        "_forced_open_head",
        "_hooks",
        "_is_failure_result",
        "_judge",
        "_lock",
        "_message_head",
        "_name",
        "_observer",
        "_open_head",
        "_success_needs_now",
        "_times_calls",
    )

    def __init__(
        self,
        *,
        max_failures: int | None = DEFAULT_MAX_FAILURES,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        half_open_max: int = DEFAULT_HALF_OPEN_MAX,
        success_threshold: int | None = None,
        failure_rate_threshold: float | None = None,
        window: CountWindow | TimeWindow = DEFAULT_WINDOW,
        minimum_calls: int | None = None,
        slow_call_threshold: float | timedelta | None = None,
        timeout_multiplier: float = 1.0,
        max_timeout: float | timedelta | None = None,
        probe_timeout: float | timedelta | None = None,
        is_failure: Callable[[Exception], bool] | None = None,
        is_failure_result: Callable[[Any], bool] | None = None,
        name: str = DEFAULT_NAME,
        hooks: Iterable[Hook] | None = None,
        clock: Clock | None = None,
    ) -> None:
        options = BreakerOptions.from_params(
            max_failures=max_failures,
            timeout=timeout,
            half_open_max=half_open_max,
            success_threshold=success_threshold,
            failure_rate_threshold=failure_rate_threshold,
            window=window,
            minimum_calls=minimum_calls,
            slow_call_threshold=slow_call_threshold,
            timeout_multiplier=timeout_multiplier,
            max_timeout=max_timeout,
            probe_timeout=probe_timeout,
        )
        check_name(name)
        for param, predicate in (
            ("is_failure", is_failure),
            ("is_failure_result", is_failure_result),
        ):
            if predicate is not None and not callable(predicate):
                msg = f"{param} must be callable or None, got {type(predicate).__name__}"
                raise TypeError(msg)
        self._name = name
        self._hooks = normalize_hooks(hooks)
        self._clock = resolve_clock(clock)
        self._lock = threading.Lock()
        self._core = core = BreakerCore(
            options, name=name, record_events=bool(self._hooks), fast_paths=_always_has_gil()
        )
        # The core's lock-free counters, bound once (see `BreakerCore` for the protocol).
        self._bump_admissions = core.admissions.bump
        self._bump_successes = core.successes.bump
        self._bump_rejections = core.rejections.bump
        # The start of each rejection message (see `circuit_open_error`).
        self._message_head = head = f"circuit breaker {name!r} is "
        self._open_head = f"{head}{_OPEN.value}; "
        self._forced_open_head = f"{head}{_FORCED_OPEN.value}; "
        # Built only with hooks: without, `call` and `acall` test this one None.
        self._observer = observer_for(self._hooks, self._clock, name, "circuit_breaker")
        # None from the judge means "record nothing" (cancellation); only the default
        # judge may say so: a user predicate's answer is taken as true or false.
        self._judge: Callable[[Exception], bool | None] = (
            default_judge if is_failure is None else _as_bool(is_failure)
        )
        self._is_failure_result = is_failure_result
        # Read the clock around a call only when an option needs it.
        self._times_calls = options.slow_call_threshold is not None
        self._success_needs_now = self._times_calls or (
            options.failure_rate_threshold is not None and isinstance(options.window, TimeWindow)
        )

    # -- introspection -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name, as given. Default ``"circuit-breaker"``."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state; OPEN turns HALF_OPEN here once its time is up."""
        with self._lock:
            self._core.tick(self._clock.now())
            events = self._take_events_locked()
        self._emit(events)
        return self._core.state

    def statistics(self) -> CircuitBreakerStatistics:
        """Return a consistent snapshot of the breaker's state and counters.

        Like `state`, it first moves OPEN to HALF_OPEN if the open duration is over.
        """
        with self._lock:
            now = self._clock.now()
            self._core.tick(now)
            snapshot = self._core.statistics(now)
            events = self._take_events_locked()
        self._emit(events)
        return snapshot

    def __repr__(self) -> str:
        core = self._core
        options = core.options
        return (
            f"CircuitBreaker(name={self._name!r}, state={core.state.value}, "
            f"generation={core.generation}, consecutive_failures={core.consecutive_failures}, "
            f"max_failures={options.max_failures}, timeout={options.timeout}, "
            f"half_open_max={options.half_open_max})"
        )

    # -- manual control ----------------------------------------------------------------

    def trip(self) -> None:
        """Open the circuit now, for the current open duration (a no-op when forced open)."""
        self._command(BreakerCore.trip)

    def reset(self) -> None:
        """Close the circuit now and forget its failures, from any state."""
        self._command(BreakerCore.reset)

    def force_open(self) -> None:
        """Reject every call until `reset` (or `disable`) is called."""
        self._command(BreakerCore.force_open)

    def disable(self) -> None:
        """Admit every call and only keep statistics, until `reset`, `trip` or `force_open`."""
        self._command(BreakerCore.disable)

    def _command(self, action: Callable[[BreakerCore, float], None]) -> None:
        with self._lock:
            action(self._core, self._clock.now())
            events = self._take_events_locked()
        self._emit(events)

    # -- calls -------------------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: The breaker refused the call; *fn* was not called.
        """
        if self._observer is not None:
            return self._observer.call(self._wrap_function(fn), *args, **kwargs)
        # The lock-free cases of `_admit` and `_report` inlined (see `_admit`).
        core = self._core
        ticket = core.fast_token
        if ticket:
            self._bump_admissions()
        else:
            gate = core.gate
            if gate is not None:
                until, state = gate
                if state is _FORCED_OPEN:
                    self._bump_rejections()
                    raise circuit_open_error(self._forced_open_head, self._name, None)
                now = self._clock.now()
                if now < until:
                    self._bump_rejections()
                    raise circuit_open_error(self._open_head, self._name, until - now)
            ticket = self._admit()
        started = self._clock.now() if self._times_calls else 0.0
        failed: bool | None = None
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            failed = self._judge_exception(exc)
            raise
        else:
            failed = False if self._is_failure_result is None else self._judge_result(result)
            if not failed and ticket == core.quiet_token:
                self._bump_successes()
                ticket = 0  # recorded: nothing left for `finally`
            return result
        finally:
            if ticket:
                self._report(ticket, failed, started)

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker and return its result.

        Adds no checkpoint of its own (the breaker never waits); the awaits inside *fn*
        are the checkpoints, and a cancellation there records nothing.

        Raises:
            CircuitOpenError: The breaker refused the call; *fn* was not called.
        """
        if self._observer is not None:
            return await self._observer.acall(self._wrap_coroutine(fn), *args, **kwargs)
        core = self._core
        ticket = core.fast_token
        if ticket:
            self._bump_admissions()
        else:
            gate = core.gate
            if gate is not None:
                until, state = gate
                if state is _FORCED_OPEN:
                    self._bump_rejections()
                    raise circuit_open_error(self._forced_open_head, self._name, None)
                now = self._clock.now()
                if now < until:
                    self._bump_rejections()
                    raise circuit_open_error(self._open_head, self._name, until - now)
            ticket = self._admit()
        started = self._clock.now() if self._times_calls else 0.0
        failed: bool | None = None
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            failed = self._judge_exception(exc)
            raise
        else:
            failed = False if self._is_failure_result is None else self._judge_result(result)
            if not failed and ticket == core.quiet_token:
                self._bump_successes()
                ticket = 0
            return result
        finally:
            if ticket:
                self._report(ticket, failed, started)

    def guard(self) -> CallGuard:
        """Return a fresh guard for one call: ``with breaker.guard():`` or ``async with``.

        Entering admits the call (or raises `CircuitOpenError`); leaving records the
        outcome of the block: no exception is a success, an exception is judged by
        ``is_failure``, cancellation records nothing. The guard never swallows
        exceptions and serves one call only. With hooks, the block (admission included)
        is reported as one call.
        """
        return CallGuard(
            self._admit, self._report, self._judge_exception, self._stopwatch(), self._observer
        )

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn*: a sync function, coroutine function, or sync/async generator.

        The kind is decided once, here, and so is the reporting of calls to hooks
        (none without hooks). A generator is admitted when it starts and its outcome
        recorded when it finishes or raises; one closed early records nothing.
        """
        wrapper: Callable[..., object]
        if inspect.isasyncgenfunction(fn):
            wrapper = self._wrap_async_generator(cast("Callable[..., AsyncGenerator[Any]]", fn))
        elif is_async_callable(fn):
            wrapper = self._wrap_coroutine(cast("Callable[..., Awaitable[Any]]", fn))
        elif inspect.isgeneratorfunction(fn):
            wrapper = self._wrap_generator(cast("Callable[..., Generator[Any]]", fn))
        else:
            wrapper = self._wrap_function(fn)
        if self._observer is not None:
            wrapper = self._observer.wrap(wrapper)
        return cast("Callable[P, T]", functools.update_wrapper(wrapper, fn))

    # -- the shared plumbing -----------------------------------------------------------

    def _admit(self) -> int:
        """Admit a call and return its ticket, or raise `CircuitOpenError`.

        The two commonest answers are taken without the lock, from decisions the core
        publishes for that purpose (`BreakerCore` says why each read is safe): CLOSED or
        DISABLED admits with `fast_token`; OPEN, while the clock says it is still open,
        and FORCED_OPEN refuse through `gate`. Anything else asks the core under the lock.

        The callers on the hot path inline the lock-free cases. Every refusal raises the
        error straight from the call that builds it: held in a local variable, the error
        would form a reference cycle with its traceback's frame, left for the garbage
        collector (which added about a quarter to the cost of a rejection).
        """
        core = self._core
        ticket = core.fast_token
        if ticket:
            self._bump_admissions()
            return ticket
        gate = core.gate
        if gate is not None:
            until, state = gate
            if state is _FORCED_OPEN:
                self._bump_rejections()
                raise circuit_open_error(self._forced_open_head, self._name, None)
            # The clock is read after the gate: by monotonicity, open at the read too.
            now = self._clock.now()
            if now < until:
                self._bump_rejections()
                raise circuit_open_error(self._open_head, self._name, until - now)
        lock = self._lock
        # acquire/release rather than `with`: measurably cheaper, and as safe here.
        lock.acquire()
        try:
            decision = core.admit(self._clock.now() if core.admit_needs_now else 0.0)
            events = core.events
            if events:
                core.events = []
        finally:
            lock.release()
        if events:
            self._emit(events)
        if isinstance(decision, int):
            return decision
        head = f"{self._message_head}{decision.state.value}; "
        raise circuit_open_error(head, self._name, decision.retry_after)

    def _report(self, ticket: int, failed: bool | None, started: float) -> None:
        core = self._core
        if failed is False and ticket == core.quiet_token:
            self._bump_successes()  # lock-free: see `BreakerCore.quiet_token`
            return
        lock = self._lock
        lock.acquire()
        try:
            if failed is None:
                core.cancelled(ticket)
            elif failed:
                core.failed(ticket, self._clock.now())
            else:
                now = self._clock.now() if self._success_needs_now else 0.0
                core.succeeded(ticket, now, started)
            events = core.events
            if events:
                core.events = []
        finally:
            lock.release()
        if events:
            self._emit(events)

    def _stopwatch(self) -> Clock | None:
        return self._clock if self._times_calls else None

    def _judge_exception(self, exc: Exception) -> bool | None:
        try:
            return self._judge(exc)
        except Exception:
            logger.exception("%r: is_failure raised on %r; counted as a failure", self, exc)
            return True

    def _judge_result(self, result: object) -> bool:
        predicate = self._is_failure_result
        if predicate is None:
            return False
        try:
            return bool(predicate(result))
        except Exception:
            logger.exception("%r: is_failure_result raised; counted as a failure", self)
            return True

    def _take_events_locked(self) -> _Events:
        events = self._core.events
        if events:
            self._core.events = []
        return events

    def _emit(self, events: _Events) -> None:
        hooks = self._hooks
        for event in events:
            emit(hooks, event)

    # -- decorator wrappers (built once per decorated function) -------------------------

    # The two wrappers below repeat the few lines of `call` / `acall` instead of calling
    # them: decorated functions are the hot path, and the extra frame plus re-packing
    # *args and **kwargs cost about a third of the breaker's overhead.

    def _wrap_function(self, fn: Callable[P, T]) -> Callable[P, T]:
        # Everything the call needs is bound here, once, so that each call reads closure
        # cells rather than attributes; the lock-free cases of `_admit` and `_report`
        # are inlined (see `_admit`).
        core, name, clock_now = self._core, self._name, self._clock.now
        admit, report, judge = self._admit, self._report, self._judge_exception
        bump_admissions, bump_successes = self._bump_admissions, self._bump_successes
        bump_rejections = self._bump_rejections
        open_head, forced_open_head = self._open_head, self._forced_open_head
        judge_result = None if self._is_failure_result is None else self._judge_result
        stopwatch = clock_now if self._times_calls else None

        def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            ticket = core.fast_token
            if ticket:
                bump_admissions()
            else:
                gate = core.gate
                if gate is not None:
                    until, state = gate
                    if state is _FORCED_OPEN:
                        bump_rejections()
                        raise circuit_open_error(forced_open_head, name, None)
                    now = clock_now()
                    if now < until:
                        bump_rejections()
                        raise circuit_open_error(open_head, name, until - now)
                ticket = admit()
            started = 0.0 if stopwatch is None else stopwatch()
            failed: bool | None = None
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                failed = judge(exc)
                raise
            else:
                failed = False if judge_result is None else judge_result(result)
                if not failed and ticket == core.quiet_token:
                    bump_successes()
                    ticket = 0  # recorded: nothing left for `finally`
                return result
            finally:
                if ticket:
                    report(ticket, failed, started)

        return breaker_wrapper

    def _wrap_coroutine(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        core, name, clock_now = self._core, self._name, self._clock.now
        admit, report, judge = self._admit, self._report, self._judge_exception
        bump_admissions, bump_successes = self._bump_admissions, self._bump_successes
        bump_rejections = self._bump_rejections
        open_head, forced_open_head = self._open_head, self._forced_open_head
        judge_result = None if self._is_failure_result is None else self._judge_result
        stopwatch = clock_now if self._times_calls else None

        async def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            ticket = core.fast_token
            if ticket:
                bump_admissions()
            else:
                gate = core.gate
                if gate is not None:
                    until, state = gate
                    if state is _FORCED_OPEN:
                        bump_rejections()
                        raise circuit_open_error(forced_open_head, name, None)
                    now = clock_now()
                    if now < until:
                        bump_rejections()
                        raise circuit_open_error(open_head, name, until - now)
                ticket = admit()
            started = 0.0 if stopwatch is None else stopwatch()
            failed: bool | None = None
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                failed = judge(exc)
                raise
            else:
                failed = False if judge_result is None else judge_result(result)
                if not failed and ticket == core.quiet_token:
                    bump_successes()
                    ticket = 0
                return result
            finally:
                if ticket:
                    report(ticket, failed, started)

        return breaker_wrapper

    def _wrap_generator(
        self, fn: Callable[P, Generator[Y, S, R]]
    ) -> Callable[P, Generator[Y, S, R]]:
        def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> Generator[Y, S, R]:
            ticket = self._admit()
            started = self._clock.now() if self._times_calls else 0.0
            failed: bool | None = None
            try:
                value = yield from fn(*args, **kwargs)
            except Exception as exc:
                failed = self._judge_exception(exc)
                raise
            else:
                failed = False
                return value
            finally:
                self._report(ticket, failed, started)

        return breaker_wrapper

    def _wrap_async_generator(
        self, fn: Callable[P, AsyncGenerator[Y, S]]
    ) -> Callable[P, AsyncGenerator[Y, S]]:
        async def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Y, S]:
            ticket = self._admit()
            started = self._clock.now() if self._times_calls else 0.0
            failed: bool | None = None
            inner = fn(*args, **kwargs)
            try:
                item = await inner.__anext__()
                while True:
                    # Forward send() and throw() like `yield from` does for sync generators.
                    try:
                        sent = yield item
                    except Exception as thrown:  # noqa: BLE001, PERF203 -- handed on to the wrapped generator
                        item = await inner.athrow(thrown)
                    else:
                        item = await inner.asend(sent)
            except StopAsyncIteration:
                failed = False
            except Exception as exc:
                failed = self._judge_exception(exc)
                raise
            finally:
                self._report(ticket, failed, started)
                if failed is None:
                    with anyio.CancelScope(shield=True):  # finish closing even when cancelled
                        await inner.aclose()

        return breaker_wrapper


def _always_has_gil() -> bool:
    """Whether every thread runs under the GIL, which the lock-free paths rely on.

    True before Python 3.13 and on every build but the free-threaded one, whose GIL
    can be switched on and off while it runs: there the breaker always takes its lock.
    """
    if not hasattr(sys, "_is_gil_enabled"):  # before 3.13: no free-threaded build
        return True
    import sysconfig  # noqa: PLC0415 -- only needed, and loaded, from Python 3.13

    return not sysconfig.get_config_var("Py_GIL_DISABLED")


def _as_bool(predicate: Callable[[Exception], object]) -> Callable[[Exception], bool]:
    def judge(exc: Exception) -> bool:
        return bool(predicate(exc))

    return judge


@final
class CallGuard:
    """One call through a `CircuitBreaker`, as a sync or async context manager.

    Made by `CircuitBreaker.guard`; the per-call state lives here, never on the breaker.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_admit",
        "_began",
        "_call",
        "_judge",
        "_observer",
        "_report",
        "_started",
        "_stopwatch",
        "_ticket",
    )

    # Set by __enter__ only when there is an observer (so never read without one).
    _call: CallStarted
    _began: float

    def __init__(
        self,
        admit: Callable[[], int],
        report: Callable[[int, bool | None, float], None],
        judge: Callable[[Exception], bool | None],
        stopwatch: Clock | None,
        observer: Observer | None = None,
    ) -> None:
        self._admit = admit
        self._report = report
        self._judge = judge
        self._stopwatch = stopwatch
        self._observer = observer
        self._ticket = 0  # 0: not entered yet; -1: used up
        self._started = 0.0

    def __repr__(self) -> str:
        status = {0: "ready", -1: "done"}.get(self._ticket, "active")
        return f"<CallGuard {status}>"

    def __enter__(self) -> None:
        if self._ticket:
            msg = "a breaker guard serves one call; take a fresh one from breaker.guard()"
            raise RuntimeError(msg)
        observer = self._observer
        if observer is None:
            self._ticket = self._admit()
        else:
            # The reported call includes admission, so a rejection is reported inside it.
            call, began = observer.start()
            self._call, self._began = call, began
            try:
                self._ticket = self._admit()
            except BaseException as exc:
                observer.end(call, began, exc)
                raise
        if self._stopwatch is not None:
            self._started = self._stopwatch.now()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        ticket, self._ticket = self._ticket, -1
        if exc is None:
            failed: bool | None = False
        elif isinstance(exc, Exception):
            failed = self._judge(exc)
        else:
            failed = None  # cancellation: record nothing, free the slot
        observer = self._observer
        if observer is None:
            self._report(ticket, failed, self._started)
            return
        try:
            self._report(ticket, failed, self._started)
        finally:
            observer.end(self._call, self._began, exc)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)
