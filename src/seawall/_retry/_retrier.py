"""`Retrier`: the sync and async shells over the retry core, and the attempt loop.

Every shell is a loop that runs an attempt, hands a failure to `Engine.failed`, and
sleeps for the delay it returns; the decisions themselves live in `._core`.

A retrier with hooks has an `Observer` on its engine. ``call``, ``acall`` and the
decorators then run the observed loops below (``_observed_sync``, ``_observed_async``),
which report the call and each of its attempts; chosen by one ``is not None`` test in
``call`` / ``acall`` and at decoration time in the decorator, so the unobserved fast
paths are the same as without instrumentation.
"""

from __future__ import annotations

import functools
import inspect
import random
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, cast, final

from seawall._classify import is_retryable as default_is_retryable
from seawall._clock import resolve_clock
from seawall._hooks import normalize_hooks
from seawall._observe import AttemptKind, Observer, observer_for
from seawall._retry._budget import RetryBudget
from seawall._retry._core import (
    DEFAULT_INITIAL_DELAY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_DELAY,
    DEFAULT_MULTIPLIER,
    Jitter,
    RetryPolicy,
)
from seawall._retry._engine import Engine, RetrierStatistics, RunState
from seawall._validate import check_callable, check_name, is_async_callable, to_seconds


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
    from datetime import timedelta
    from types import TracebackType

    from seawall._clock import Clock
    from seawall._hooks import Hook
    from seawall._observe import AttemptStarted


__all__ = ("Attempt", "Retrier")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_NAME: Final = "retrier"
PRIMITIVE: Final = "retry"

# States of an attempt loop.
_NEW: Final = 0
_RUNNING: Final = 1
_RETRY: Final = 2
_DONE: Final = 3


@final
class Retrier:
    """Retries a flaky call with capped, jittered exponential backoff.

    One instance models one dependency: share it between threads and tasks, and between
    sync and async callers. It keeps no per-call state of its own, so it is reentrant.
    Use it in one of three ways::

        retrier = seawall.Retrier(max_attempts=4, initial_delay=0.2, name="llm")

        # 1. As a decorator, on a sync or a coroutine function.
        @retrier
        async def complete(prompt: str) -> str: ...

        # 2. By an explicit call (the Go guide's retrier.Execute(ctx, fn)).
        answer = retrier.call(client.complete, prompt)
        answer = await retrier.acall(async_client.complete, prompt)

        # 3. As an attempt loop around a block of code.
        for attempt in retrier:  # `async for` in async code
            with attempt:
                answer = client.complete(prompt)

    After attempt *n* fails, the retrier waits a backoff of
    ``min(max_delay, initial_delay * multiplier ** (n - 1))``, jittered (see `Jitter`), or
    the server's Retry-After if that is longer. It gives up (see `GiveUpReason`) when the
    failure is not retryable, after ``max_attempts`` attempts, when the server asks for
    more than ``max_retry_after``, when the next attempt would not start before the
    ``deadline``, or when the shared ``budget`` runs low. Giving up lets the last real
    exception through, the same object with its traceback, with a note saying how many
    attempts were made (Python 3.11+). Cancellation, `KeyboardInterrupt` and
    `SystemExit` are never retried and never counted as failures.

    Args:
        max_attempts: Attempts in total, the first one included (default 3).
        initial_delay: Backoff after the first failure, before jitter: seconds or a
            `~datetime.timedelta` (default 0.1 s). 0 disables waiting: a zero delay
            never calls the clock's sleep.
        max_delay: Upper bound of every backoff, jitter included (default 5 s).
        multiplier: Growth factor of the backoff per attempt, >= 1 (default 2.0).
        jitter: The jitter mode (default `Jitter.FULL`).
        is_retryable: Predicate over an attempt's exception saying whether it is worth
            another attempt (default `seawall.is_retryable`).
        retry_on_result: Predicate over an attempt's result; when it returns true, the
            result is treated as a failure and retried (default ``None``: results are
            always accepted). When the retrier gives up on a result, it returns that
            last result rather than raising. Not used by the attempt loop, which has
            no result.
        deadline: Total time budget of a call in seconds, attempts and waits included,
            measured on *clock*, or ``None`` (default) for no limit. The retrier gives
            up at once, without sleeping, when the next attempt could not start before
            the deadline. It does not interrupt a running attempt; pair it with a
            timeout for that.
        max_retry_after: The longest server-requested wait (``Retry-After`` header,
            `seawall.RejectedError.retry_after`, read through `seawall.classify`) that
            is honoured; the retrier waits ``max(backoff, retry_after)`` and gives up
            at once, without sleeping, when the server asks for more. ``None``
            (default) means *max_delay*, so that no wait ever exceeds *max_delay*.
        budget: A `RetryBudget` shared with other calls and retriers, or ``None``
            (default) for no budget.
        rng: Random source of the jitter: a callable returning floats in ``[0, 1)``
            (default `random.random`). Pass a seeded ``random.Random(seed).random``
            for reproducible delays.
        hooks: Callables that receive the retrier's events (default none); a hook
            that raises is logged and ignored. Each call (`call`, `acall`, a decorated
            function) reports `seawall.CallStarted` (primitive ``"retry"``) and, at
            its end, `seawall.CallEnded`; in between, each attempt reports
            `seawall.AttemptStarted` (number from 1, kind ``ORIGINAL`` then
            ``RETRY``) and `seawall.AttemptEnded`, whose outcome says how the
            function ended (a result rejected by *retry_on_result* is a ``SUCCESS``
            attempt). After a failed attempt's `AttemptEnded` come either
            `RetryScheduled` (before the wait and the next attempt) or `RetryGaveUp`
            (before `CallEnded`). All of them are reported in the caller's thread or
            task. An attempt loop reports its attempts but no call (see `Attempt`).
        name: The name reported in events, notes and statistics (default
            ``"retrier"``).
        clock: The clock that times the deadline and performs the waits (default: the
            system clock); `seawall.testing.FakeClock` in tests.

    Raises:
        TypeError: If an argument has the wrong type; the message names it.
        ValueError: If an argument is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_engine",)

    def __init__(
        self,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        initial_delay: float | timedelta = DEFAULT_INITIAL_DELAY,
        max_delay: float | timedelta = DEFAULT_MAX_DELAY,
        multiplier: float = DEFAULT_MULTIPLIER,
        jitter: Jitter = Jitter.FULL,
        is_retryable: Callable[[Exception], bool] = default_is_retryable,
        retry_on_result: Callable[[Any], bool] | None = None,
        deadline: float | timedelta | None = None,
        max_retry_after: float | timedelta | None = None,
        budget: RetryBudget | None = None,
        rng: Callable[[], float] | None = None,
        hooks: Iterable[Hook] | None = None,
        name: str = DEFAULT_NAME,
        clock: Clock | None = None,
    ) -> None:
        policy = RetryPolicy(
            max_attempts=max_attempts,
            initial_delay=to_seconds("initial_delay", initial_delay),
            max_delay=to_seconds("max_delay", max_delay),
            multiplier=multiplier,
            jitter=jitter,
            deadline=None if deadline is None else to_seconds("deadline", deadline),
            max_retry_after=(
                None if max_retry_after is None else to_seconds("max_retry_after", max_retry_after)
            ),
        )
        check_callable("is_retryable", is_retryable)
        if retry_on_result is not None:
            check_callable("retry_on_result", retry_on_result)
        if rng is not None:
            check_callable("rng", rng)
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a seawall.RetryBudget, got {type(budget).__name__}")
        check_name(name)
        frozen_hooks = normalize_hooks(hooks)
        resolved_clock = resolve_clock(clock)
        self._engine = Engine(
            name=name,
            policy=policy,
            is_retryable=is_retryable,
            retry_on_result=retry_on_result,
            budget=budget,
            rng=random.random if rng is None else rng,
            hooks=frozen_hooks,
            clock=resolved_clock,
            observer=(observer_for(frozen_hooks, resolved_clock, name, PRIMITIVE)),
        )

    @property
    def name(self) -> str:
        """The retrier's name."""
        return self._engine.name

    @property
    def budget(self) -> RetryBudget | None:
        """The shared retry budget, if any."""
        return self._engine.budget

    def statistics(self) -> RetrierStatistics:
        """Return a snapshot of the retrier's counters (see `RetrierStatistics`)."""
        return self._engine.statistics()

    def __repr__(self) -> str:
        policy = self._engine.policy
        return (
            f"Retrier(name={self._engine.name!r}, max_attempts={policy.max_attempts}, "
            f"initial_delay={policy.initial_delay!r}, max_delay={policy.max_delay!r}, "
            f"multiplier={policy.multiplier!r}, jitter=Jitter.{policy.jitter.name}, "
            f"deadline={policy.deadline!r}, max_retry_after={policy.max_retry_after!r}, "
            f"budget={self._engine.budget!r})"
        )

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn*, a sync or a coroutine function, so that each call is retried.

        The kind of function is checked once, here, and so is whether calls are
        reported to hooks. The wrapper keeps *fn*'s name, docstring and signature
        (``__wrapped__``), for people and type checkers alike.

        Raises:
            TypeError: If *fn* is not callable, or is a (sync or async) generator
                function, whose calls cannot be retried as a whole.
        """
        check_callable("fn", fn)
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"cannot retry the generator function {fn!r}: retry a function")
        observed = self._engine.observer is not None
        if is_async_callable(fn):
            async_fn = cast("Callable[P, Awaitable[object]]", fn)
            if observed:
                return cast("Callable[P, T]", self._wrap_async_observed(async_fn))
            return cast("Callable[P, T]", self._wrap_async(async_fn))
        if observed:
            return self._wrap_sync_observed(fn)
        return self._wrap_sync(fn)

    # The fast path (first attempt succeeds) is written out in the wrappers below and in
    # call/acall rather than shared through a helper: a helper would cost one more Python
    # frame per call, which is about as much as the rest of the wrapper. It only counts;
    # every decision is in Engine.failed.

    def _wrap_sync(self, fn: Callable[P, T]) -> Callable[P, T]:
        engine = self._engine
        retry = self._retry_sync
        clock, deadline, budget = engine.clock, engine.deadline, engine.budget
        on_result, count_first_try = engine.retry_on_result, engine.count_first_try

        @functools.wraps(fn)
        def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            start = clock.now() if deadline is not None else 0.0
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 -- the retry predicate decides
                return retry(fn, args, kwargs, RunState(start), exc=exc, result=None)
            if on_result is not None and on_result(result):
                return retry(fn, args, kwargs, RunState(start), exc=None, result=result)
            count_first_try()
            if budget is not None:
                budget.record_success()
            return result

        return retrying

    def _wrap_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        engine = self._engine
        retry = self._retry_async
        clock, deadline, budget = engine.clock, engine.deadline, engine.budget
        on_result, count_first_try = engine.retry_on_result, engine.count_first_try

        @functools.wraps(fn)
        async def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            start = clock.now() if deadline is not None else 0.0
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 -- the retry predicate decides
                return await retry(fn, args, kwargs, RunState(start), exc=exc, result=None)
            if on_result is not None and on_result(result):
                return await retry(fn, args, kwargs, RunState(start), exc=None, result=result)
            count_first_try()
            if budget is not None:
                budget.record_success()
            return result

        return retrying

    def _wrap_sync_observed(self, fn: Callable[P, T]) -> Callable[P, T]:
        observed = self._observed_sync

        @functools.wraps(fn)
        def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            return observed(fn, args, kwargs)

        return retrying

    def _wrap_async_observed(
        self, fn: Callable[P, Awaitable[T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        observed = self._observed_async

        @functools.wraps(fn)
        async def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            return await observed(fn, args, kwargs)

        return retrying

    # -- sync shell --------------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)``, retrying it as configured, and return its result.

        Raises:
            Exception: The last attempt's exception, when the retrier gives up.
        """
        # The fast path: no allocation, no lock and no clock read unless configured.
        engine = self._engine
        if engine.observer is not None:
            return self._observed_sync(fn, args, kwargs)
        start = engine.clock.now() if engine.deadline is not None else 0.0
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- the retry predicate decides, not us
            return self._retry_sync(fn, args, kwargs, RunState(start), exc=exc, result=None)
        if engine.retry_on_result is not None and engine.retry_on_result(result):
            return self._retry_sync(fn, args, kwargs, RunState(start), exc=None, result=result)
        engine.count_first_try()
        if engine.budget is not None:
            engine.budget.record_success()
        return result

    def _retry_sync(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run: RunState,
        *,
        exc: Exception | None,
        result: T | None,
    ) -> T:
        engine = self._engine
        while True:
            delay = engine.failed(run, exc)
            if delay is None:
                if exc is not None:
                    raise exc
                return cast("T", result)
            if delay > 0:
                engine.clock.sleep(delay)
            try:
                result = fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 -- the retry predicate decides
                exc = error
                continue
            exc = None
            if engine.retry_on_result is None or not engine.retry_on_result(result):
                engine.succeeded(run)
                return result

    def _observed_sync(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        """Run a whole call, reporting it and each of its attempts to the hooks."""
        observer = cast("Observer", self._engine.observer)
        return observer.call(self._attempts_sync, observer, fn, args, kwargs)

    def _attempts_sync(
        self,
        observer: Observer,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        engine = self._engine
        on_result = engine.retry_on_result
        run = engine.start()
        kind = AttemptKind.ORIGINAL
        while True:
            started, began = observer.attempt_start(run.attempt, kind)
            error: Exception | None
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 -- the retry predicate decides
                observer.attempt_end(started, began, exc)
                error = exc
            except BaseException as exc:  # cancellation: reported, never retried
                observer.attempt_end(started, began, exc)
                raise
            else:
                observer.attempt_end(started, began, None)
                if on_result is None or not on_result(result):
                    engine.succeeded(run)
                    return result
                error = None
            delay = engine.failed(run, error)
            if delay is None:
                if error is not None:
                    raise error
                return result
            if delay > 0:
                engine.clock.sleep(delay)
            kind = AttemptKind.RETRY

    # -- async shell -------------------------------------------------------------------

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``, retrying it as configured, and return its result.

        Works on asyncio and trio; waits go through the clock's ``asleep``.

        Raises:
            Exception: The last attempt's exception, when the retrier gives up.
        """
        engine = self._engine
        if engine.observer is not None:
            return await self._observed_async(fn, args, kwargs)
        start = engine.clock.now() if engine.deadline is not None else 0.0
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- the retry predicate decides, not us
            return await self._retry_async(fn, args, kwargs, RunState(start), exc=exc, result=None)
        if engine.retry_on_result is not None and engine.retry_on_result(result):
            return await self._retry_async(
                fn, args, kwargs, RunState(start), exc=None, result=result
            )
        engine.count_first_try()
        if engine.budget is not None:
            engine.budget.record_success()
        return result

    async def _retry_async(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run: RunState,
        *,
        exc: Exception | None,
        result: T | None,
    ) -> T:
        engine = self._engine
        while True:
            delay = engine.failed(run, exc)
            if delay is None:
                if exc is not None:
                    raise exc
                return cast("T", result)
            if delay > 0:
                await engine.clock.asleep(delay)
            try:
                result = await fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 -- the retry predicate decides
                exc = error
                continue
            exc = None
            if engine.retry_on_result is None or not engine.retry_on_result(result):
                engine.succeeded(run)
                return result

    async def _observed_async(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        """Run a whole call, reporting it and each of its attempts to the hooks."""
        observer = cast("Observer", self._engine.observer)
        return await observer.acall(self._attempts_async, observer, fn, args, kwargs)

    async def _attempts_async(
        self,
        observer: Observer,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        engine = self._engine
        on_result = engine.retry_on_result
        run = engine.start()
        kind = AttemptKind.ORIGINAL
        while True:
            started, began = observer.attempt_start(run.attempt, kind)
            error: Exception | None
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 -- the retry predicate decides
                observer.attempt_end(started, began, exc)
                error = exc
            except BaseException as exc:  # cancellation: reported, never retried
                observer.attempt_end(started, began, exc)
                raise
            else:
                observer.attempt_end(started, began, None)
                if on_result is None or not on_result(result):
                    engine.succeeded(run)
                    return result
                error = None
            delay = engine.failed(run, error)
            if delay is None:
                if error is not None:
                    raise error
                return result
            if delay > 0:
                await engine.clock.asleep(delay)
            kind = AttemptKind.RETRY

    # -- attempt loops -----------------------------------------------------------------

    def __iter__(self) -> Iterator[Attempt]:
        """Start a sync attempt loop: ``for attempt in retrier: with attempt: ...``.

        The loop sleeps between attempts with the clock's ``sleep``; do not use it in
        async code (use ``async for``). Hooks see each ``with attempt:`` block as an
        attempt, but the loop is not reported as a call (see `Attempt`).
        """
        return _AttemptLoop(self._engine)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """Start an async attempt loop: ``async for attempt in retrier: with attempt: ...``.

        Hooks see each ``with attempt:`` block as an attempt, but the loop is not
        reported as a call (see `Attempt`).
        """
        return _AttemptLoop(self._engine)


@final
class Attempt:
    """One attempt of an attempt loop; use it as a context manager around the work.

    Leaving the ``with`` block normally ends the loop. An exception that the retrier
    will retry is swallowed, and the loop waits and goes on. On giving up (the last
    attempt, or a failure that is not retryable), the exception propagates out of the
    ``with`` block, annotated like those of `Retrier.call`. An attempt that is never
    entered counts as a success and ends the loop.

    Hooks receive `seawall.AttemptStarted` when the ``with`` block is entered and
    `seawall.AttemptEnded` when it is left (before `RetryScheduled` or
    `RetryGaveUp`), in the thread or task running the loop; an attempt never entered
    reports nothing. The loop as a whole reports no `seawall.CallStarted` /
    `seawall.CallEnded` pair: a ``break`` or ``return`` out of a ``for`` or
    ``async for`` loop is invisible to its iterator, so the retrier could not
    promise the end of such a call. Wrap the loop in a span of your own, or use
    `Retrier.call`, when you need one.

    Example::

        for attempt in retrier:
            with attempt:
                response = session.get(url)

    Attributes:
        number: The attempt's number, from 1.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_loop", "number")

    def __init__(self, loop: _AttemptLoop, number: int) -> None:
        self._loop = loop
        self.number = number

    def __enter__(self) -> Attempt:
        loop = self._loop
        if loop.observer is not None:
            loop.attempt_started(self.number)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return self._loop.attempt_ended(exc)

    def __repr__(self) -> str:
        return f"Attempt(number={self.number})"


@final
class _AttemptLoop:
    """The state of one attempt loop, sync or async: a tiny state machine.

    ``_NEW`` → ``_RUNNING`` (an attempt is out) → ``_RETRY`` (it failed and will be
    retried after ``_delay``) → ``_RUNNING`` → ... → ``_DONE``.
    """

    __slots__ = ("_began", "_delay", "_engine", "_run", "_started", "_state", "observer")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._run = RunState(0.0)
        self._state = _NEW
        self._delay = 0.0
        self.observer = engine.observer
        # The attempt reported as started and not yet as ended, if any.
        self._started: AttemptStarted | None = None
        self._began = 0.0

    def __iter__(self) -> _AttemptLoop:
        return self

    def __aiter__(self) -> _AttemptLoop:
        return self

    def __next__(self) -> Attempt:
        delay = self._advance()
        if delay is None:
            raise StopIteration
        if delay > 0:
            self._engine.clock.sleep(delay)
        return Attempt(self, self._run.attempt)

    async def __anext__(self) -> Attempt:
        delay = self._advance()
        if delay is None:
            raise StopAsyncIteration
        if delay > 0:
            await self._engine.clock.asleep(delay)
        return Attempt(self, self._run.attempt)

    def _advance(self) -> float | None:
        """Move to the next attempt: return the wait before it, or ``None`` to stop."""
        state = self._state
        if state == _NEW:
            self._run = self._engine.start()
            self._state = _RUNNING
            return 0.0
        if state == _RETRY:
            self._state = _RUNNING
            return self._delay
        if state == _RUNNING:  # The attempt was never entered: nothing failed.
            self._engine.succeeded(self._run)
        self._state = _DONE
        return None

    def attempt_started(self, number: int) -> None:
        """Report the start of attempt *number*'s block, if it is the current one."""
        observer = self.observer
        if (
            observer is None
            or self._state != _RUNNING
            or self._started is not None
            or number != self._run.attempt
        ):
            return  # an old or re-entered attempt: nothing to report
        kind = AttemptKind.ORIGINAL if number == 1 else AttemptKind.RETRY
        self._started, self._began = observer.attempt_start(number, kind)

    def attempt_ended(self, exc: BaseException | None) -> bool:
        """Record how an attempt's block ended; return whether to swallow *exc*."""
        started = self._started
        if started is not None:  # reported before RetryScheduled or RetryGaveUp
            self._started = None
            cast("Observer", self.observer).attempt_end(started, self._began, exc)
        if self._state != _RUNNING:
            return False
        if exc is None:
            self._state = _DONE
            self._engine.succeeded(self._run)
            return False
        if not isinstance(exc, Exception):  # Cancellation: neither retried nor counted.
            self._state = _DONE
            return False
        delay = self._engine.failed(self._run, exc)
        if delay is None:
            self._state = _DONE
            return False
        self._delay = delay
        self._state = _RETRY
        return True

    def __repr__(self) -> str:
        state: Literal["new", "running", "retry", "done"] = ("new", "running", "retry", "done")[
            self._state
        ]
        return f"<attempt loop of {self._engine.name!r}: attempt {self._run.attempt}, {state}>"
