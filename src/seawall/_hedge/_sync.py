"""The hedger's sync shell: attempts in worker threads, the caller waits for outcomes.

The caller's thread drives the core: it submits attempts to the hedger's worker pool,
then waits on a condition that the attempts' completion callbacks notify. It waits
for the core's next hedge time as follows, chosen once per call from the clock:

* with `seawall.SystemClock`, a real OS wait on the condition, bounded by the time
  left (``until - clock.now()``): it wakes at the first completion or at the deadline;
* with any other clock, the caller arms a wake-up with ``call_after`` (at most one
  pending per call) and waits on the condition alone. A clock with ``call_at`` (e.g.
  `seawall.testing.FakeClock`) fires it when virtual time reaches the hedge time, so
  an instant call never hedges and moves no time, and tests decide when a hedge is
  due (an attempt sleeps on the clock, or the test advances it) without any real
  wait; any other clock gets a helper thread that sleeps on the clock for the time
  left and then notifies the condition.

The worker pool runs every attempt in a copy of the caller's `contextvars` context,
taken when the attempt is submitted (from the caller's thread). With hooks, the
attempt's function is `SyncCall._observed_attempt`, which reports `AttemptStarted` and
`AttemptEnded` from the worker thread around the caller's function: a loser abandoned
by the call ends when its function returns, after the call has ended, with the outcome
it really had; an attempt cancelled while still queued never starts and reports
nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, final

from seawall._clock import SystemClock, call_after
from seawall._hedge._core import SUCCEEDED, Fail, Wait, Win
from seawall._observe import AttemptKind


if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from seawall._hedge._engine import HedgeEngine
    from seawall._observe import Observer


__all__ = ("SyncCall",)

T = TypeVar("T")

_Outcome = tuple[int, BaseException | None, Any]


@final
class SyncCall(Generic[T]):
    """The state of one sync hedged call; never shared with another call."""

    __slots__ = (
        "args",
        "armed",
        "cond",
        "ended",
        "engine",
        "errors",
        "fn",
        "futures",
        "inbox",
        "kwargs",
        "rang",
        "run",
        "start",
        "starts",
        "values",
    )

    def __init__(
        self,
        engine: HedgeEngine,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.engine = engine
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.cond = threading.Condition(threading.Lock())
        self.inbox: list[_Outcome] = []
        self.futures: list[concurrent.futures.Future[T]] = []
        self.errors: list[BaseException | None] = []
        self.values: list[Any] = []
        self.starts: list[float] = []
        self.ended = False
        self.armed = False  # a wake-up is pending on the clock
        self.rang = False  # a wake-up fired and the caller has not looked yet
        self.run, self.start = engine.begin()

    def outcome(self) -> T:
        """Run the call to its end; return the winner's result or raise.

        On the way out (also when the caller is interrupted), attempts still queued
        are cancelled and running ones abandoned: their outcomes are dropped.
        """
        try:
            self._launch(0, at=self.start)
            return self._drive()
        finally:
            with self.cond:
                self.ended = True
            for future in self.futures:
                future.cancel()

    def _drive(self) -> T:
        engine = self.engine
        clock = engine.clock
        run = self.run
        cond = self.cond
        real_time = type(clock) is SystemClock
        while True:
            with cond:
                inbox, self.inbox = self.inbox, []
            now = clock.now()
            for index, error, value in inbox:
                if error is None:
                    self.values[index] = value
                    run.completed(index, SUCCEEDED)
                elif isinstance(error, Exception):
                    self.errors[index] = error
                    run.completed(index, engine.classify(error))
                else:  # KeyboardInterrupt or SystemExit raised in a worker: not a failure.
                    raise error
            decision = engine.advance(run, now, self._launch)
            if type(decision) is Win:
                attempt = decision.attempt
                engine.won(run, attempt, now - self.starts[attempt], now - self.start)
                return cast("T", self.values[attempt])
            if type(decision) is Fail:
                raise engine.failed(self.errors)
            until = cast("Wait", decision).until
            if until is not None and not real_time:
                # Armed outside the condition's lock: a virtual clock may run the
                # wake-up at once, in this thread.
                self._arm(max(0.0, until - clock.now()))
            with cond:
                if self.inbox or self.rang:
                    self.rang = False
                    continue
                if until is None or not real_time:
                    cond.wait()
                else:
                    cond.wait(until - clock.now())

    def _launch(self, index: int, at: float | None = None) -> None:
        self.errors.append(None)
        self.values.append(None)
        self.starts.append(self.engine.clock.now() if at is None else at)
        engine = self.engine
        if engine.observer is None:
            future = engine.executor().submit(self.fn, *self.args, **self.kwargs)
        else:
            future = engine.executor().submit(self._observed_attempt, index)
        self.futures.append(future)
        future.add_done_callback(lambda done: self._done(index, done))

    def _observed_attempt(self, index: int) -> T:
        # Runs in the worker thread, in the copy of the caller's context the pool made.
        observer = cast("Observer", self.engine.observer)
        started, began = observer.attempt_start(
            index, AttemptKind.HEDGE if index else AttemptKind.ORIGINAL
        )
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # reported, then handed to the future unchanged
            observer.attempt_end(started, began, exc)
            raise
        observer.attempt_end(started, began, None)
        return result

    def _done(self, index: int, future: concurrent.futures.Future[T]) -> None:
        # Runs in the worker thread (or here, if it was already done). Retrieving the
        # exception marks it as seen even when the call has moved on.
        if future.cancelled():
            return
        error = future.exception()
        value = None if error is not None else future.result()
        with self.cond:
            if self.ended:
                return  # a loser's late outcome: dropped
            self.inbox.append((index, error, value))
            self.cond.notify()

    def _arm(self, seconds: float) -> None:
        # At most one wake-up pending per call; when it fires the caller re-reads the
        # clock and arms the next one if a hedge is still ahead.
        with self.cond:
            if self.armed:
                return
            self.armed = True
        call_after(
            self.engine.clock,
            seconds,
            self._tick,
            name=f"seawall-hedger-{self.engine.name}-timer",
        )

    def _tick(self) -> None:
        with self.cond:
            self.armed = False
            self.rang = True
            self.cond.notify()
