"""The hedger's async shell on asyncio and trio: acall, the decorator, cancellation."""

from __future__ import annotations

import logging
import random
import sys
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import AdaptiveDelay, HedgeLaunched, Hedger, HedgeReason, HedgeWon
from seawall.testing import FakeClock, RecordingHook


pytestmark = pytest.mark.anyio


class Script:
    """An async callable whose n-th call sleeps ``latencies[n]`` virtual seconds.

    Then it returns ``"r<n>"``, or raises ``errors[n]`` when one is given. It records
    which calls started, finished, and saw cancellation.
    """

    def __init__(
        self,
        clock: FakeClock,
        latencies: list[float],
        errors: dict[int, Exception] | None = None,
    ) -> None:
        self.clock = clock
        self.latencies = latencies
        self.errors = errors or {}
        self.started: list[tuple[int, float]] = []
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> str:
        n = len(self.started)
        self.started.append((n, self.clock.now()))
        try:
            if self.latencies[n]:
                await self.clock.asleep(self.latencies[n])
            else:
                await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(n)
            raise
        finally:
            self.finished.append(n)
        if n in self.errors:
            raise self.errors[n]
        return f"r{n}"


def notes(exc: BaseException) -> list[str]:
    """The notes of *exc* (none before Python 3.11)."""
    return list(getattr(exc, "__notes__", []))


def task_count() -> int:
    """The number of tasks alive in the running event loop."""
    try:
        import asyncio

        return len(asyncio.all_tasks())
    except RuntimeError:
        import trio

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(count(c) for n in task.child_nurseries for c in n.child_tasks)

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return count(root)


@pytest.fixture
def hook() -> RecordingHook:
    """A fresh recording hook."""
    return RecordingHook()


@pytest.fixture
def hedger(clock: FakeClock, hook: RecordingHook) -> Hedger:
    """A hedger with a 0.2 s delay and one hedge, on virtual time."""
    return Hedger(delay=0.2, clock=clock, hooks=(hook,), name="svc")


class TestHedging:
    """When hedges start, who wins, and what propagates."""

    async def test_fast_primary_launches_no_hedge(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A primary answering before the delay wins alone."""
        script = Script(clock, [0.1])
        assert await hedger.acall(script, "q", key=1) == "r0"
        assert [n for n, _ in script.started] == [0]
        assert hook.of_type(HedgeLaunched) == []
        assert clock.now() == pytest.approx(0.1)

    async def test_slow_primary_is_hedged_at_exactly_the_delay(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """The hedge starts at t = delay (virtual) and wins; the primary is cancelled."""
        script = Script(clock, [1.0, 0.1])
        assert await hedger.acall(script) == "r1"
        assert script.started == [(0, 0.0), (1, 0.2)]
        assert script.cancelled == [0]
        assert hook.of_type(HedgeLaunched) == [HedgeLaunched("svc", 1, HedgeReason.DELAY_ELAPSED)]
        assert clock.now() == pytest.approx(0.3)

    async def test_primary_can_still_win_after_a_hedge(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """A hedge that is slower than the rest of the primary loses and is cancelled."""
        script = Script(clock, [0.3, 1.0])
        assert await hedger.acall(script) == "r0"
        assert script.cancelled == [1]

    async def test_retryable_failure_hedges_at_once(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A primary failing retryably at 0.05 s is hedged at 0.05 s, not at the delay."""
        script = Script(clock, [0.05, 0.01], {0: ConnectionError("down")})
        assert await hedger.acall(script) == "r1"
        assert script.started[1] == (1, 0.05)
        assert hook.of_type(HedgeLaunched)[0].reason is HedgeReason.ATTEMPT_FAILED

    async def test_permanent_failure_of_lone_primary_ends_the_call(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """A non-retryable failure with nothing else running propagates at once, unhedged."""
        error = ValueError("bad request")
        script = Script(clock, [0.05], {0: error})
        with pytest.raises(ValueError, match="bad request") as info:
            await hedger.acall(script)
        assert info.value is error
        assert len(script.started) == 1
        assert clock.now() == pytest.approx(0.05)

    async def test_permanent_failure_waits_for_running_hedge(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """A primary failing permanently after the hedge started lets the hedge win."""
        script = Script(clock, [0.3, 0.2], {0: ValueError("bad")})
        assert await hedger.acall(script) == "r1"

    async def test_all_fail_raises_the_primary_exception_with_notes(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Every attempt failing raises the primary's exception object, others as notes."""
        hedger = Hedger(delay=0.2, max_hedges=2, clock=clock, name="svc")
        errors: dict[int, Exception] = {n: ConnectionError(f"e{n}") for n in range(3)}
        script = Script(clock, [0.5, 0.1, 0.1], errors)
        with pytest.raises(ConnectionError) as info:
            await hedger.acall(script)
        assert info.value is errors[0]
        if sys.version_info >= (3, 11):
            assert notes(info.value) == [
                "seawall: hedger 'svc': attempt 1 also failed: ConnectionError('e1')",
                "seawall: hedger 'svc': attempt 2 also failed: ConnectionError('e2')",
            ]
        assert hedger.statistics().failures == 1

    async def test_max_hedges_bounds_launches(
        self, anyio_backend: str, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """With max_hedges=2, hedges start at 0.2 and 0.4 and no more."""
        hedger = Hedger(delay=0.2, max_hedges=2, clock=clock, hooks=(hook,))
        script = Script(clock, [5.0, 5.0, 5.0])
        assert await hedger.acall(script) == "r0"
        assert [t for _, t in script.started] == [0.0, pytest.approx(0.2), pytest.approx(0.4)]
        assert len(hook.of_type(HedgeLaunched)) == 2

    async def test_zero_max_hedges_never_hedges(self, anyio_backend: str, clock: FakeClock) -> None:
        """max_hedges=0 runs the primary alone, even when it fails retryably."""
        hedger = Hedger(max_hedges=0, clock=clock)
        script = Script(clock, [1.0], {0: TimeoutError()})
        with pytest.raises(TimeoutError):
            await hedger.acall(script)
        assert len(script.started) == 1


class TestCancellation:
    """Losers are cancelled and awaited; nothing outlives the call."""

    async def test_loser_is_cancelled_and_awaited(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """The loser saw cancellation and finished before acall returned."""
        script = Script(clock, [1.0, 0.1])
        await hedger.acall(script)
        assert script.cancelled == [0]
        assert sorted(script.finished) == [0, 1]

    async def test_no_task_left_running(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """The event loop has the same tasks before and after a hedged call."""
        before = task_count()
        await hedger.acall(Script(clock, [1.0, 0.1]))
        await hedger.acall(Script(clock, [0.1]))
        assert task_count() == before

    async def test_cancelling_the_caller_cancels_every_attempt(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """A caller cancelled mid-race cancels both attempts and records no outcome."""
        script = Script(clock, [5.0, 5.0])
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(hedger.acall, script)
                await clock.asleep(0.5)
                scope.cancel()
        assert sorted(script.cancelled) == [0, 1]
        assert sorted(script.finished) == [0, 1]
        stats = hedger.statistics()
        assert (stats.calls, stats.hedges_launched) == (0, 1)

    async def test_stuck_loser_is_reported_after_cancel_timeout(
        self, anyio_backend: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A loser shielding itself for 5 s: a warning at cancel_timeout, then the call waits."""
        hedger = Hedger(delay=0.2, cancel_timeout=1.0, clock=clock, name="svc")
        calls: list[int] = []

        async def fn() -> str:
            calls.append(len(calls))
            if len(calls) == 1:
                with anyio.CancelScope(shield=True):
                    await clock.asleep(5.0)
                return "stuck"
            await clock.asleep(0.1)
            return "hedge"

        with caplog.at_level(logging.WARNING, logger="seawall"):
            assert await hedger.acall(fn) == "hedge"
        assert clock.now() == pytest.approx(5.0)
        [record] = caplog.records
        assert "'svc'" in record.getMessage()
        assert "[0]" in record.getMessage()

    async def test_cancel_during_acall_leaves_budget_consistent(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """A cancelled call keeps the token its hedge spent and leaves no task behind."""
        hedger = Hedger(delay=0.2, budget=0.5, budget_cap=1, clock=clock)
        before = task_count()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(hedger.acall, Script(clock, [5.0, 5.0]))
                await clock.asleep(0.3)
                scope.cancel()
        assert task_count() == before
        assert hedger.statistics().budget_tokens == 0
        assert hedger.statistics().hedges_launched == 1


class TestAdaptiveDelay:
    """The delay follows the observed latency percentile once enough samples exist."""

    async def test_adaptive_delay_kicks_in_after_min_samples(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Fixed delay for the first calls, then the p50 of the latencies, clamped."""
        adaptive = AdaptiveDelay(percentile=0.5, window=10, min_samples=3, floor=0.01, ceiling=1)
        hedger = Hedger(delay=0.2, adaptive=adaptive, clock=clock)
        for latency in (0.05, 0.07, 0.06):
            assert hedger.statistics().current_delay == 0.2
            await hedger.acall(Script(clock, [latency]))
        assert hedger.statistics().current_delay == pytest.approx(0.06)
        start = clock.now()
        script = Script(clock, [1.0, 0.01])
        assert await hedger.acall(script) == "r1"
        assert script.started[1][1] - start == pytest.approx(0.06)

    async def test_adaptive_delay_is_clamped(self, anyio_backend: str, clock: FakeClock) -> None:
        """Latencies above the ceiling give the ceiling."""
        adaptive = AdaptiveDelay(percentile=0.95, window=5, min_samples=1, ceiling=0.5)
        hedger = Hedger(adaptive=adaptive, clock=clock)
        await hedger.acall(Script(clock, [0.1, 0.1]))  # hedged at 0.2; the hedge wins at 0.3
        assert hedger.statistics().current_delay == pytest.approx(0.1)
        await hedger.acall(Script(clock, [0.09]))
        await hedger.acall(Script(clock, [0.08]))
        assert hedger.statistics().current_delay == pytest.approx(0.1)


class TestBudget:
    """The hedge budget caps the share of hedged calls."""

    async def test_budget_caps_hedging(
        self, anyio_backend: str, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """Budget 0.25, cap 1: calls 1, 5, 9, 13 and 17 of 20 slow calls are hedged."""
        hedger = Hedger(delay=0.2, budget=0.25, budget_cap=1, clock=clock, hooks=(hook,))
        for _ in range(20):
            assert await hedger.acall(Script(clock, [1.0, 1.0])) in {"r0", "r1"}
        stats = hedger.statistics()
        assert stats.hedges_launched == len(hook.of_type(HedgeLaunched)) == 5
        assert stats.hedges_launched <= 1 + 0.25 * 20
        assert stats.budget_denied == 15
        assert 0 <= (stats.budget_tokens or 0) < 1

    async def test_refused_retryable_failure_fails_the_call(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """A retryable failure with an empty budget ends the call with that failure."""
        hedger = Hedger(budget=0.01, budget_cap=1, clock=clock)
        await hedger.acall(Script(clock, [1.0, 0.1]))  # spends the only token
        with pytest.raises(ConnectionError):
            await hedger.acall(Script(clock, [0.1], {0: ConnectionError()}))


class TestHooks:
    """The events reported to hooks."""

    async def test_events_of_a_hedged_call(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A hedged win reports HedgeLaunched then HedgeWon with the call's latency."""
        await hedger.acall(Script(clock, [1.0, 0.1]))
        (launched,) = hook.of_type(HedgeLaunched)
        (won,) = hook.of_type(HedgeWon)
        assert launched == HedgeLaunched("svc", 1, HedgeReason.DELAY_ELAPSED)
        assert isinstance(won, HedgeWon)
        assert (won.attempt, won.hedged) == (1, True)
        assert won.latency == pytest.approx(0.3)

    async def test_unhedged_win_is_reported(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A fast primary reports one HedgeWon with hedged=False."""
        await hedger.acall(Script(clock, [0.1]))
        assert hook.of_type(HedgeLaunched) == []
        assert hook.of_type(HedgeWon) == [HedgeWon("svc", 0, hedged=False, latency=0.1)]

    async def test_raising_hook_is_isolated(
        self, anyio_backend: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged, once per event; the call's result is unchanged."""
        hook = RecordingHook()

        def bad(event: seawall.Event) -> None:
            raise RuntimeError(event)

        hedger = Hedger(clock=clock, hooks=(bad, hook))
        with caplog.at_level(logging.ERROR, logger="seawall"):
            assert await hedger.acall(Script(clock, [1.0, 0.1])) == "r1"
        assert len(hook.of_type(HedgeLaunched)) == len(hook.of_type(HedgeWon)) == 1
        assert len(caplog.records) == len(hook.events) == 8


class TestDecorator:
    """@hedger on coroutine functions."""

    async def test_coroutine_function(self, anyio_backend: str, clock: FakeClock) -> None:
        """The decorated coroutine function is hedged and keeps its name and arguments."""
        hedger = Hedger(clock=clock)
        seen: list[tuple[int, str]] = []

        @hedger
        async def fetch(x: int, *, tag: str) -> str:
            """Fetch something."""
            seen.append((x, tag))
            await clock.asleep(1.0 if len(seen) == 1 else 0.1)
            return f"{tag}{x}{len(seen)}"

        assert await fetch(7, tag="t") == "t72"
        assert seen == [(7, "t"), (7, "t")]
        assert fetch.__name__ == "fetch"
        assert fetch.__doc__ == "Fetch something."

    async def test_async_callable_object(self, anyio_backend: str, clock: FakeClock) -> None:
        """An object with ``async def __call__`` is treated as a coroutine function."""
        script = Script(clock, [0.1])
        wrapped = Hedger(clock=clock)(script)
        assert await wrapped() == "r0"

    def test_sync_generator_is_rejected(self, clock: FakeClock) -> None:
        """A sync generator function cannot be hedged."""

        def gen() -> Any:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            Hedger(clock=clock)(gen)

    def test_not_callable(self) -> None:
        """Decorating a non-callable is a TypeError."""
        with pytest.raises(TypeError, match="fn must be callable"):
            Hedger()(42)  # type: ignore[arg-type]


class TestIntrospection:
    """statistics(), repr, validation, construction."""

    async def test_statistics(self, anyio_backend: str, hedger: Hedger, clock: FakeClock) -> None:
        """Counters after a primary win, a hedge win and a failure."""
        await hedger.acall(Script(clock, [0.1]))
        await hedger.acall(Script(clock, [1.0, 0.1]))
        with pytest.raises(ValueError, match="x"):
            await hedger.acall(Script(clock, [0.1], {0: ValueError("x")}))
        assert hedger.statistics() == seawall.HedgerStatistics(
            name="svc",
            calls=3,
            hedges_launched=1,
            hedges_won=1,
            primary_wins=1,
            failures=1,
            budget_denied=0,
            budget_tokens=None,
            current_delay=0.2,
        )

    def test_repr(self, clock: FakeClock) -> None:
        """The repr shows the configuration and the current delay."""
        hedger = Hedger(delay=0.5, max_hedges=2, budget=0.1, name="db", clock=clock)
        assert repr(hedger) == (
            "Hedger(name='db', delay=0.5, max_hedges=2, adaptive=None, budget=0.1, "
            "current_delay=0.5)"
        )
        assert hedger.name == "db"
        assert hedger.clock is clock

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"delay": -1}, ValueError, "delay"),
            ({"delay": "1"}, TypeError, "delay"),
            ({"delay": float("inf")}, ValueError, "delay"),
            ({"max_hedges": -1}, ValueError, "max_hedges"),
            ({"max_hedges": 1.5}, TypeError, "max_hedges"),
            ({"budget": 0}, ValueError, "budget"),
            ({"budget": 1.5}, ValueError, "budget"),
            ({"budget": "x"}, TypeError, "budget"),
            ({"budget_cap": 0.5}, ValueError, "budget_cap"),
            ({"cancel_timeout": -1}, ValueError, "cancel_timeout"),
            ({"max_workers": 0}, ValueError, "max_workers"),
            ({"is_retryable": 3}, TypeError, "is_retryable"),
            ({"adaptive": 0.95}, TypeError, "adaptive"),
            ({"name": ""}, ValueError, "name"),
            ({"name": 3}, TypeError, "name"),
            ({"hooks": 3}, TypeError, "iterable"),
            ({"clock": object()}, TypeError, "clock"),
        ],
    )
    def test_invalid_parameters(
        self, kwargs: dict[str, Any], error: type[Exception], match: str
    ) -> None:
        """Each invalid argument is rejected with an error naming it."""
        with pytest.raises(error, match=match):
            Hedger(**kwargs)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"percentile": 0}, "percentile"),
            ({"percentile": 1.5}, "percentile"),
            ({"window": 0}, "window"),
            ({"min_samples": 0}, "min_samples"),
            ({"window": 5, "min_samples": 6}, "min_samples"),
            ({"floor": -1}, "floor"),
            ({"floor": 1, "ceiling": 0.5}, "ceiling"),
        ],
    )
    def test_invalid_adaptive_delay(self, kwargs: dict[str, Any], match: str) -> None:
        """AdaptiveDelay validates each field by name."""
        with pytest.raises(ValueError, match=match):
            AdaptiveDelay(**kwargs)

    def test_instantiate_outside_event_loop(self) -> None:
        """Building a hedger binds to no event loop and starts no thread."""
        import threading

        before = threading.active_count()
        hedger = Hedger()
        assert threading.active_count() == before
        assert anyio.run(hedger.acall, anyio.lowlevel.checkpoint) is None
        assert anyio.run(hedger.acall, anyio.lowlevel.checkpoint, backend="trio") is None


class TestStress:
    """Many concurrent hedged calls with random latencies under virtual time."""

    async def test_many_concurrent_calls(self, anyio_backend: str, clock: FakeClock) -> None:
        """Launches stay within calls x max_hedges; every call ends exactly once."""
        rng = random.Random(1234)
        hedger = Hedger(delay=0.2, max_hedges=2, clock=clock, budget=0.5)
        results: list[str] = []
        failures: list[BaseException] = []
        calls = 200
        before = task_count()

        async def one(i: int) -> None:
            latencies = [rng.choice([0.05, 0.1, 0.5, 1.0]) for _ in range(3)]
            errors: dict[int, Exception] = {
                n: ConnectionError(n) for n in range(3) if rng.random() < 0.2
            }
            try:
                results.append(f"{i}:" + await hedger.acall(Script(clock, latencies, errors)))
            except ConnectionError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(calls):
                tg.start_soon(one, i)
        stats = hedger.statistics()
        assert len(results) + len(failures) == calls
        assert len({r.split(":")[0] for r in results}) == len(results)
        assert stats.calls == calls
        assert stats.failures == len(failures)
        assert stats.hedges_launched <= calls * 2
        assert stats.hedges_won + stats.primary_wins == len(results)
        assert task_count() == before


class TestSystemClock:
    """The real-clock wait (an event under a deadline) on both backends, without timing."""

    async def test_fast_primary_needs_no_hedge(self) -> None:
        """A primary that answers at once wins; nothing else is launched."""
        hook = RecordingHook()
        hedger = Hedger(delay=3600, hooks=(hook,))

        async def answer() -> str:
            await anyio.lowlevel.checkpoint()
            return "primary"

        assert await hedger.acall(answer) == "primary"
        assert hook.of_type(HedgeLaunched) == []
        assert hedger.statistics().primary_wins == 1

    async def test_retryable_failure_hedges_at_once(self) -> None:
        """A primary failing retryably launches the hedge at once, which wins."""
        hook = RecordingHook()
        hedger = Hedger(delay=3600, hooks=(hook,))
        calls: list[int] = []

        async def flaky() -> str:
            calls.append(len(calls))
            await anyio.lowlevel.checkpoint()
            if len(calls) == 1:
                raise ConnectionResetError("reset")
            return "hedge"

        assert await hedger.acall(flaky) == "hedge"
        assert [e.reason for e in hook.of_type(HedgeLaunched)] == [HedgeReason.ATTEMPT_FAILED]

    async def test_zero_delay_hedge_wins_and_the_primary_is_cancelled(self) -> None:
        """With delay 0 the hedge starts at once; the stuck primary is cancelled and awaited."""
        hedger = Hedger(delay=0)
        never = anyio.Event()
        primary_cancelled: list[bool] = []
        calls: list[int] = []

        async def attempt() -> str:
            calls.append(len(calls))
            if len(calls) == 1:
                try:
                    await never.wait()
                except anyio.get_cancelled_exc_class():
                    primary_cancelled.append(True)
                    raise
            return "hedge"

        assert await hedger.acall(attempt) == "hedge"
        assert primary_cancelled == [True]
