"""The async hedger with the real clock: the native fast path on asyncio, the same on trio.

On asyncio with `seawall.SystemClock`, `Hedger.acall` starts the primary as a plain
asyncio task timed by a shared loop timer, and opens a task group only when the hedge
time comes or the primary fails (see `seawall._hedge._async`). Every test here runs on
asyncio and on trio, where the task group is used from the start: the semantics must
be the same. ``slow_paths`` counts the calls that opened the task group, which tells
the two paths apart.

No test waits on the real clock to check timing. Hedge times are made to pass at once
(``delay=0``, or ``TINY``, never measured) or never (``HOUR``), and the attempts are
ordered with events. Where a test gives the primary and the hedges different parts,
the ``number_attempts`` hook tells each attempt its number.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import sys
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import AdaptiveDelay, HedgeLaunched, Hedger, HedgeReason, HedgerStatistics, HedgeWon
from seawall._hedge._async import AsyncCall, Deadlines, _asyncio_loop
from seawall.testing import FakeClock, RecordingHook


if TYPE_CHECKING:
    from collections.abc import Iterator


pytestmark = pytest.mark.anyio

HOUR = 3600.0
TINY = 0.001  # a real delay, for a hedge time that is not at once; never measured
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("TENANT", default="none")
ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("ATTEMPT", default=-1)


def number_attempts(event: seawall.Event) -> None:
    """A hook that tells each attempt its number, in ATTEMPT.

    It runs in the attempt's own task and context, just before the function: on trio,
    attempts started together run in any order, so the order of the calls alone does
    not tell the primary from a hedge.
    """
    if isinstance(event, seawall.AttemptStarted):
        ATTEMPT.set(event.attempt)


def task_count() -> int:
    """The number of tasks alive in the running event loop."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        import trio

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(count(c) for n in task.child_nurseries for c in n.child_tasks)

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return count(root)


def stats(hedger: Hedger, **counts: int) -> HedgerStatistics:
    """The statistics *hedger* should have: *counts* over all-zero counters."""
    base: dict[str, Any] = {
        "calls": 0,
        "hedges_launched": 0,
        "hedges_won": 0,
        "primary_wins": 0,
        "failures": 0,
        "budget_denied": 0,
    }
    current = hedger.statistics()
    return HedgerStatistics(
        name=hedger.name,
        budget_tokens=current.budget_tokens,
        current_delay=current.current_delay,
        **(base | counts),
    )


@pytest.fixture
def slow_paths(monkeypatch: pytest.MonkeyPatch) -> list[AsyncCall[Any]]:
    """The calls that ran in a task group (`AsyncCall.outcome`), in order."""
    calls: list[AsyncCall[Any]] = []
    outcome = AsyncCall.outcome

    async def counted(self: AsyncCall[Any]) -> Any:
        calls.append(self)
        return await outcome(self)

    monkeypatch.setattr(AsyncCall, "outcome", counted)
    return calls


class Attempts:
    """An async callable whose n-th call runs ``plans[n]`` (a coroutine function of n).

    n is the attempt's number when the `number_attempts` hook gave it one, else the
    order of the call. Records each call's start, its cancellation, and its end, in
    one ``log``.
    """

    def __init__(self, *plans: Any) -> None:
        self.plans = plans
        self.log: list[str] = []

    @property
    def calls(self) -> int:
        """How many calls started."""
        return sum(1 for entry in self.log if entry.startswith("start"))

    async def __call__(self) -> Any:
        n = ATTEMPT.get()
        if n < 0:
            n = self.calls
        self.log.append(f"start {n}")
        try:
            return await self.plans[n](n)
        except anyio.get_cancelled_exc_class():
            self.log.append(f"cancelled {n}")
            raise
        finally:
            self.log.append(f"end {n}")


async def answer(n: int) -> str:
    """Answer after one checkpoint."""
    await anyio.lowlevel.checkpoint()
    return f"r{n}"


async def answer_at_once(n: int) -> str:
    """Answer without ever suspending."""
    return f"r{n}"


def fail_with(error: Exception, *, suspend: bool = True) -> Any:
    """A plan that raises *error* (after one checkpoint, if *suspend*)."""

    async def plan(n: int) -> str:
        if suspend:
            await anyio.lowlevel.checkpoint()
        raise error

    return plan


def wait_for(event: anyio.Event, then: Any = answer) -> Any:
    """A plan that waits for *event*, then runs *then*."""

    async def plan(n: int) -> str:
        await event.wait()
        return str(await then(n))

    return plan


async def forever(n: int) -> str:
    """Wait until cancelled."""
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


def on_asyncio(backend: str, native: int, otherwise: int) -> int:
    """*native* on asyncio (the fast path applies), *otherwise* on trio."""
    return native if backend == "asyncio" else otherwise


class TestPrimaryAnswersFirst:
    """The fast path proper: the primary answers before the delay."""

    @pytest.mark.parametrize("hooked", [False, True])
    @pytest.mark.parametrize("plan", [answer, answer_at_once])
    async def test_no_task_group_no_hedge(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]], hooked: bool, plan: Any
    ) -> None:
        """One task, no group on asyncio; the result, the counters and the tasks are exact."""
        hook = RecordingHook()
        hedger = Hedger(delay=HOUR, hooks=(hook,) if hooked else (), name="svc")
        attempts = Attempts(plan, plan, plan)
        before = task_count()
        for n in range(3):
            assert await hedger.acall(attempts) == f"r{n}"
        assert attempts.log == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
        assert len(slow_paths) == on_asyncio(anyio_backend, 0, 3)
        assert hedger.statistics() == stats(hedger, calls=3, primary_wins=3)
        assert task_count() == before
        if hooked:
            assert hook.of_type(HedgeLaunched) == []
            assert [(w.attempt, w.hedged) for w in hook.of_type(HedgeWon)] == [(0, False)] * 3

    async def test_arguments_and_decorator(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]]
    ) -> None:
        """Positional and keyword arguments reach the function; the decorator is the same."""
        hedger = Hedger(delay=HOUR)

        async def echo(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            await anyio.lowlevel.checkpoint()
            return args, kwargs

        assert await hedger.acall(echo, 1, 2, key="k") == ((1, 2), {"key": "k"})
        assert await hedger(echo)(3, key="j") == ((3,), {"key": "j"})
        assert len(slow_paths) == on_asyncio(anyio_backend, 0, 2)

    async def test_primary_runs_in_a_copy_of_the_context(self, anyio_backend: str) -> None:
        """The caller's context variables are seen; what the primary sets stays its own."""
        hedger = Hedger(delay=HOUR)
        seen: list[str] = []

        async def fn() -> str:
            seen.append(TENANT.get())
            TENANT.set("changed")
            await anyio.lowlevel.checkpoint()
            return TENANT.get()

        token = TENANT.set("acme")
        try:
            assert await hedger.acall(fn) == "changed"
            assert TENANT.get() == "acme"
        finally:
            TENANT.reset(token)
        assert seen == ["acme"]

    async def test_primary_runs_in_its_own_task(self, anyio_backend: str) -> None:
        """The primary is another task than the caller's, as with the task group."""
        hedger = Hedger(delay=HOUR)

        async def which() -> int:
            await anyio.lowlevel.checkpoint()
            return anyio.get_current_task().id

        assert await hedger.acall(which) != anyio.get_current_task().id

    async def test_adaptive_delay_learns_from_fast_calls(self, anyio_backend: str) -> None:
        """Fast wins feed the latency window: the delay switches after min_samples."""
        adaptive = AdaptiveDelay(percentile=0.5, window=10, min_samples=3, floor=0.3, ceiling=0.3)
        hedger = Hedger(delay=HOUR, adaptive=adaptive)
        for _ in range(2):
            await hedger.acall(Attempts(answer))
            assert hedger.statistics().current_delay == HOUR
        await hedger.acall(Attempts(answer))
        assert hedger.statistics().current_delay == 0.3  # the clamped percentile

    async def test_budget_is_earned_by_fast_calls(self, anyio_backend: str) -> None:
        """Every call earns its budget share, fast or not; a hedge spends a token."""
        hedger = Hedger(delay=HOUR, budget=0.25, budget_cap=1)
        flaky = Attempts(fail_with(ConnectionResetError()), answer)
        assert await hedger.acall(flaky) == "r1"  # earns (capped at 1), spends 1
        assert hedger.statistics().budget_tokens == 0
        for tokens in (0.25, 0.5, 0.75, 1.0, 1.0):
            await hedger.acall(Attempts(answer))
            assert hedger.statistics().budget_tokens == tokens

    async def test_many_concurrent_fast_calls(self, anyio_backend: str) -> None:
        """200 concurrent calls answering first: 200 primary wins, no task left."""
        hedger = Hedger(delay=HOUR)
        results: list[str] = []
        before = task_count()

        async def one(i: int) -> None:
            async def fn() -> str:
                for _ in range(i % 4):
                    await anyio.lowlevel.checkpoint()
                return str(i)

            results.append(await hedger.acall(fn))

        async with anyio.create_task_group() as task_group:
            for i in range(200):
                task_group.start_soon(one, i)
        assert sorted(results, key=int) == [str(i) for i in range(200)]
        assert hedger.statistics() == stats(hedger, calls=200, primary_wins=200)
        assert task_count() == before


class TestHedgeTimeComes:
    """The delay passes: the call goes on in the task group, adopting the primary."""

    async def test_hedge_wins_and_the_primary_is_cancelled_and_awaited(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]]
    ) -> None:
        """The hedge starts after the delay and wins; the primary ended before acall did."""
        hook = RecordingHook()
        hedger = Hedger(delay=0, hooks=(number_attempts, hook))
        attempts = Attempts(forever, answer)
        before = task_count()
        assert await hedger.acall(attempts) == "r1"
        log = attempts.log  # on trio, the hedge may start first (see number_attempts)
        assert sorted(log) == ["cancelled 0", "end 0", "end 1", "start 0", "start 1"]
        assert log.index("end 1") < log.index("cancelled 0") < log.index("end 0") == 4
        assert [e.reason for e in hook.of_type(HedgeLaunched)] == [HedgeReason.DELAY_ELAPSED]
        assert hedger.statistics() == stats(hedger, calls=1, hedges_launched=1, hedges_won=1)
        assert len(slow_paths) == 1
        assert task_count() == before

    @pytest.mark.parametrize("delay", [0, TINY])
    async def test_stuck_primary_is_hedged(self, anyio_backend: str, delay: float) -> None:
        """At once or after a real (tiny) delay, the stuck primary is hedged and loses."""
        hedger = Hedger(delay=delay, hooks=(number_attempts,))
        attempts = Attempts(forever, answer)
        assert await hedger.acall(attempts) == "r1"
        assert attempts.log[-2:] == ["cancelled 0", "end 0"]
        assert hedger.statistics().hedges_launched == 1

    async def test_adopted_primary_can_still_win(self, anyio_backend: str) -> None:
        """The primary answers after the hedge started: it wins, the hedge is cancelled."""
        hook = RecordingHook()
        hedger = Hedger(delay=0, hooks=(number_attempts, hook))
        release = anyio.Event()

        async def hedge(n: int) -> str:
            release.set()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")  # pragma: no cover

        attempts = Attempts(wait_for(release), hedge)
        assert await hedger.acall(attempts) == "r0"
        assert "cancelled 1" in attempts.log
        assert attempts.log[-1] in {"end 0", "end 1"}
        assert [(w.attempt, w.hedged) for w in hook.of_type(HedgeWon)] == [(0, True)]
        assert hedger.statistics() == stats(hedger, calls=1, hedges_launched=1, primary_wins=1)

    async def test_adopted_primary_failing_permanently_lets_the_hedge_win(
        self, anyio_backend: str
    ) -> None:
        """A permanent failure while the hedge runs does not end the call: the hedge wins."""
        hedger = Hedger(delay=0, hooks=(number_attempts,))
        release, finish = anyio.Event(), anyio.Event()

        async def hedge(n: int) -> str:
            release.set()
            await finish.wait()
            return f"r{n}"

        async def primary(n: int) -> str:
            await release.wait()
            try:
                raise ValueError("bad request")
            finally:
                finish.set()

        attempts = Attempts(primary, hedge)
        assert await hedger.acall(attempts) == "r1"
        assert attempts.log[-1] == "end 1"
        assert hedger.statistics() == stats(hedger, calls=1, hedges_launched=1, hedges_won=1)

    async def test_every_attempt_fails_with_the_primary_exception(self, anyio_backend: str) -> None:
        """Both fail: the primary's exception object, the hedge's as a note, no group."""
        hedger = Hedger(delay=0, name="svc", hooks=(number_attempts,))
        e0, e1 = ConnectionError("e0"), ConnectionError("e1")
        release = anyio.Event()

        async def hedge(n: int) -> str:
            try:
                raise e1
            finally:
                release.set()

        with pytest.raises(ConnectionError) as info:
            await hedger.acall(Attempts(wait_for(release, fail_with(e0)), hedge))
        assert info.value is e0
        if sys.version_info >= (3, 11):
            assert info.value.__notes__ == [
                "seawall: hedger 'svc': attempt 1 also failed: ConnectionError('e1')"
            ]
        assert hedger.statistics() == stats(hedger, calls=1, hedges_launched=1, failures=1)

    async def test_primary_ignoring_cancellation_is_waited_for(
        self, anyio_backend: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A losing primary that finishes anyway: warned about, and awaited."""
        hedger = Hedger(delay=0, cancel_timeout=0, hooks=(number_attempts,), name="svc")

        async def stubborn(n: int) -> str:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    for _ in range(5):
                        await anyio.lowlevel.checkpoint()
            return "late"

        attempts = Attempts(stubborn, answer)
        with caplog.at_level(logging.WARNING, logger="seawall"):
            assert await hedger.acall(attempts) == "r1"
        assert attempts.log[-1] == "end 0"
        [record] = caplog.records
        assert "'svc'" in record.getMessage()
        assert "[0]" in record.getMessage()
        assert hedger.statistics() == stats(hedger, calls=1, hedges_launched=1, hedges_won=1)

    async def test_caller_deadline_inside_the_primary(self, anyio_backend: str) -> None:
        """Documented: on asyncio the primary does not see the caller's anyio deadline."""
        hedger = Hedger(delay=HOUR)

        async def deadline() -> float:
            await anyio.lowlevel.checkpoint()
            return anyio.current_effective_deadline()

        with anyio.fail_after(HOUR):
            seen = await hedger.acall(deadline)
        assert (seen == float("inf")) == (anyio_backend == "asyncio")


class TestPrimaryFails:
    """A failing primary before the delay: hedged at once, or the call ends."""

    @pytest.mark.parametrize("suspend", [False, True])
    async def test_retryable_failure_hedges_at_once(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]], suspend: bool
    ) -> None:
        """A retryable failure launches the hedge at once (not at the hour), which wins."""
        hook = RecordingHook()
        hedger = Hedger(delay=HOUR, hooks=(hook,))
        attempts = Attempts(fail_with(ConnectionResetError("reset"), suspend=suspend), answer)
        assert await hedger.acall(attempts) == "r1"
        assert [e.reason for e in hook.of_type(HedgeLaunched)] == [HedgeReason.ATTEMPT_FAILED]
        assert hedger.statistics() == stats(hedger, calls=1, hedges_launched=1, hedges_won=1)
        assert len(slow_paths) == 1

    @pytest.mark.parametrize("suspend", [False, True])
    async def test_permanent_failure_propagates_unchanged(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]], suspend: bool
    ) -> None:
        """The very exception, no group, no note, no hedge; on asyncio, no task group."""
        hedger = Hedger(delay=HOUR)
        error = ValueError("bad request")
        with pytest.raises(ValueError, match="bad request") as info:
            await hedger.acall(Attempts(fail_with(error, suspend=suspend)))
        assert info.value is error
        assert getattr(error, "__notes__", []) == []
        assert hedger.statistics() == stats(hedger, calls=1, failures=1)
        assert len(slow_paths) == on_asyncio(anyio_backend, 0, 1)

    async def test_no_hedge_allowed_fails_at_once(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]]
    ) -> None:
        """max_hedges=0: a retryable failure ends the call; no timer, no task group."""
        hedger = Hedger(max_hedges=0)
        error = TimeoutError("slow")
        with pytest.raises(TimeoutError) as info:
            await hedger.acall(Attempts(fail_with(error)))
        assert info.value is error
        assert await hedger.acall(Attempts(answer)) == "r0"
        assert hedger._engine.deadlines is None
        assert len(slow_paths) == on_asyncio(anyio_backend, 0, 2)

    async def test_empty_budget_fails_the_call(self, anyio_backend: str) -> None:
        """A retryable failure whose hedge the budget refuses ends with that failure."""
        hedger = Hedger(delay=HOUR, budget=0.01, budget_cap=1)
        await hedger.acall(Attempts(fail_with(ConnectionError()), answer))  # the only token
        error = ConnectionError("again")
        with pytest.raises(ConnectionError) as info:
            await hedger.acall(Attempts(fail_with(error)))
        assert info.value is error
        assert hedger.statistics().budget_denied == 1


class TestCancellation:
    """Cancelling the caller cancels the primary (and hedges) and waits for them."""

    async def test_caller_cancelled_before_the_delay(self, anyio_backend: str) -> None:
        """A cancel scope around the call: the primary is cancelled and awaited."""
        hedger = Hedger(delay=HOUR)
        started = anyio.Event()

        async def stuck(n: int) -> str:
            started.set()
            return await forever(n)

        attempts = Attempts(stuck)
        before = task_count()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(hedger.acall, attempts)
                await started.wait()
                scope.cancel()
        assert attempts.log == ["start 0", "cancelled 0", "end 0"]
        assert task_count() == before
        assert hedger.statistics() == stats(hedger)

    async def test_caller_cancelled_after_the_hedge_started(self, anyio_backend: str) -> None:
        """Both attempts are cancelled and awaited; the launch is counted, no call is."""
        hedger = Hedger(delay=0)
        started = anyio.Event()

        async def stuck(n: int) -> str:
            started.set()
            return await forever(n)

        attempts = Attempts(forever, stuck)
        before = task_count()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(hedger.acall, attempts)
                await started.wait()
                scope.cancel()
        assert sorted(attempts.log) == sorted(
            ["start 0", "start 1", "cancelled 0", "cancelled 1", "end 0", "end 1"]
        )
        assert task_count() == before
        assert hedger.statistics() == stats(hedger, hedges_launched=1)

    async def test_caller_in_a_cancelled_scope(self, anyio_backend: str) -> None:
        """An already cancelled scope: the primary starts, is cancelled, is awaited."""
        hedger = Hedger(delay=HOUR)
        attempts = Attempts(forever)
        before = task_count()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await hedger.acall(attempts)
        assert scope.cancelled_caught
        assert attempts.log == ["start 0", "cancelled 0", "end 0"]
        assert task_count() == before
        assert hedger.statistics() == stats(hedger)

    async def test_cleanup_after_cancellation_is_waited_for(self, anyio_backend: str) -> None:
        """A primary's shielded cleanup spanning several turns of the loop is not cut short.

        The primary is cancelled once: the cleanup it then runs under a shield is not
        hit again while the caller's cancel scope keeps cancelling the caller.
        """
        hedger = Hedger(delay=HOUR)
        started = anyio.Event()
        log: list[str] = []

        async def fn() -> str:
            started.set()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    for _ in range(5):
                        await anyio.lowlevel.checkpoint()
                log.append("cleaned up")
            raise AssertionError("unreachable")  # pragma: no cover

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(hedger.acall, fn)
                await started.wait()
                scope.cancel()
        assert log == ["cleaned up"]

    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    async def test_native_task_cancel(self, anyio_backend: str) -> None:
        """asyncio only: Task.cancel() of the caller; the primary ends before the caller."""
        hedger = Hedger(delay=HOUR)
        started = asyncio.Event()

        async def stuck(n: int) -> str:
            started.set()
            return await forever(n)

        attempts = Attempts(stuck)
        before = asyncio.all_tasks()
        caller = asyncio.get_running_loop().create_task(hedger.acall(attempts))
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert attempts.log == ["start 0", "cancelled 0", "end 0"]
        assert asyncio.all_tasks() == before

    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    async def test_wait_for_timeout(self, anyio_backend: str) -> None:
        """asyncio only: asyncio.wait_for's timeout cancels the call and its primary."""
        hedger = Hedger(delay=HOUR)
        attempts = Attempts(forever)
        before = asyncio.all_tasks()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(hedger.acall(attempts), 0.001)
        assert attempts.log == ["start 0", "cancelled 0", "end 0"]
        assert asyncio.all_tasks() == before


class TestStress:
    """Many concurrent calls on the real clock, with every kind of outcome."""

    async def test_mixed_outcomes(self, anyio_backend: str) -> None:
        """Counters add up; every call ends once; no task is left behind."""
        rng = random.Random(4321)
        hedger = Hedger(delay=TINY, max_hedges=2, budget=0.5)
        outcomes: list[str] = []
        before = task_count()

        def plan() -> Any:
            turns = rng.randrange(4)
            kind = rng.choice(["ok", "ok", "ok", "retryable", "permanent"])

            async def run(n: int) -> str:
                for _ in range(turns):
                    await anyio.lowlevel.checkpoint()
                if kind == "retryable":
                    raise ConnectionError(n)
                if kind == "permanent":
                    raise ValueError(n)
                return f"r{n}"

            return run

        async def one() -> None:
            try:
                outcomes.append(await hedger.acall(Attempts(plan(), plan(), plan())))
            except (ConnectionError, ValueError):
                outcomes.append("failed")

        async with anyio.create_task_group() as task_group:
            for _ in range(300):
                task_group.start_soon(one)
        counters = hedger.statistics()
        failed = outcomes.count("failed")
        assert len(outcomes) == counters.calls == 300
        assert counters.failures == failed
        assert counters.primary_wins + counters.hedges_won == 300 - failed
        assert counters.hedges_launched <= 600
        assert task_count() == before


class TestNotNative:
    """Where the native path does not apply."""

    async def test_fake_clock_uses_the_task_group(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]], clock: FakeClock
    ) -> None:
        """Another clock drives the delay itself: the task group from the start."""
        hedger = Hedger(delay=0.2, clock=clock)
        assert await hedger.acall(Attempts(answer)) == "r0"
        assert len(slow_paths) == 1
        assert hedger._engine.deadlines is None

    async def test_streams_use_the_task_group(
        self, anyio_backend: str, slow_paths: list[AsyncCall[Any]]
    ) -> None:
        """astream races in the task group on every backend."""
        hedger = Hedger(delay=HOUR)

        async def stream() -> Any:
            yield 1
            yield 2

        assert [chunk async for chunk in hedger.astream(stream)] == [1, 2]
        assert len(slow_paths) == 1


# -- plain asyncio ---------------------------------------------------------------------


def test_not_an_asyncio_task() -> None:
    """A callback of a running loop (as trio's guest mode runs) is not an asyncio task."""
    seen: list[object] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen.append(_asyncio_loop())
        done = asyncio.Event()

        def callback() -> None:
            seen.append(_asyncio_loop())
            done.set()

        loop.call_soon(callback)
        await done.wait()

    asyncio.run(main())
    assert seen[1] is None
    assert isinstance(seen[0], asyncio.AbstractEventLoop)
    assert _asyncio_loop() is None


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_exit_in_the_primary_is_not_swallowed(error: type[BaseException]) -> None:
    """KeyboardInterrupt or SystemExit in the primary's task leaves asyncio.run."""
    hedger = Hedger(delay=HOUR)

    async def fn() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(error):
        asyncio.run(hedger.acall(fn))


def test_hedger_on_several_loops() -> None:
    """One hedger, used by successive event loops: each gets its own deadlines."""
    hedger = Hedger(delay=0)

    async def main() -> str:
        attempts = Attempts(forever, answer)
        return str(await hedger.acall(attempts))

    assert asyncio.run(main()) == "r1"
    first = hedger._engine.deadlines
    assert asyncio.run(main()) == "r1"
    assert hedger._engine.deadlines is not first
    assert hedger.statistics().hedges_won == 2


class TestDeadlines:
    """The shared hedge-time timer of one event loop."""

    @staticmethod
    def run(test: Any) -> None:
        asyncio.run(test())

    def test_times_fire_in_order_whatever_the_order_added(self) -> None:
        """A later time added first does not hold back an earlier one added next."""

        async def test() -> None:
            loop = asyncio.get_running_loop()
            deadlines = Deadlines(loop, loop.time)
            late, early = loop.create_future(), loop.create_future()
            now = loop.time()
            deadlines.add(now + HOUR, late)
            assert deadlines.armed == now + HOUR
            deadlines.add(now - 1, early)
            assert deadlines.armed == now - 1
            await early
            assert not late.done()
            assert deadlines.armed == now + HOUR  # re-armed for the next one
            late.cancel()

        self.run(test)

    def test_finished_entries_are_dropped(self) -> None:
        """Entries of calls that ended first never pile up beyond about twice the pending."""

        async def test() -> None:
            loop = asyncio.get_running_loop()
            deadlines = Deadlines(loop, loop.time)
            pending = [loop.create_future() for _ in range(10)]
            for future in pending:
                deadlines.add(loop.time() + HOUR, future)
            for _ in range(10_000):
                done = loop.create_future()
                done.set_result(None)
                deadlines.add(loop.time() + HOUR, done)
                assert deadlines.size <= 2 * 256 + 1
            assert not any(future.done() for future in pending)
            for future in pending:
                future.cancel()

        self.run(test)

    def test_finished_waiters_are_skipped(self) -> None:
        """A waiter resolved or cancelled before its time is left alone when it comes."""

        async def test() -> None:
            loop = asyncio.get_running_loop()
            deadlines = Deadlines(loop, loop.time)
            resolved, cancelled, due = (loop.create_future() for _ in range(3))
            resolved.set_result(None)
            cancelled.cancel()
            for future in (resolved, cancelled, due):
                deadlines.add(loop.time() - 1, future)
            await due
            assert deadlines.size == 0
            assert deadlines.armed == float("inf")

        self.run(test)

    def test_timer_firing_early_is_rearmed(self) -> None:
        """If the loop's timer fires before the clock says the time came, it waits on."""
        times: Iterator[float] = iter([10.0, 9.0, 10.0, 10.0])

        async def test() -> None:
            loop = asyncio.get_running_loop()
            deadlines = Deadlines(loop, lambda: next(times))
            waiter = loop.create_future()
            deadlines.add(10.0, waiter)  # armed with 0 s left (the clock reads 10)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert not waiter.done()  # fired, but the clock read 9: re-armed
            await waiter  # fired again, the clock reads 10

        self.run(test)

    def test_repr(self) -> None:
        """The repr shows the entries held and the armed time."""

        async def test() -> None:
            loop = asyncio.get_running_loop()
            deadlines = Deadlines(loop, loop.time)
            assert repr(deadlines) == "<Deadlines: 0 entries, armed for inf>"

        self.run(test)


def test_statistics_type() -> None:
    """The helper above builds the public statistics type."""
    assert isinstance(stats(Hedger()), seawall.HedgerStatistics)
