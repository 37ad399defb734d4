"""Pipeline: policies around plain functions, first listed outermost."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import seawall
import seawall.testing
from seawall.testing import FakeClock


pytestmark = pytest.mark.timeout(20)


class FlakyError(ConnectionError):
    """A transient failure."""


def _primitives(
    clock: FakeClock, log: list[str]
) -> tuple[seawall.Retrier, seawall.CircuitBreaker, seawall.RateLimiter]:
    """A retrier, breaker and limiter that write what they do to *log*."""

    def judge(exc: Exception) -> bool:
        log.append("breaker")
        return True

    def on_event(event: seawall.Event) -> None:
        if isinstance(event, seawall.RetryScheduled):
            log.append("retry")
        elif isinstance(event, seawall.AcquireWaited):
            log.append("limit")

    retrier = seawall.Retrier(max_attempts=3, initial_delay=0, hooks=(on_event,), clock=clock)
    breaker = seawall.CircuitBreaker(max_failures=10, is_failure=judge, clock=clock)
    limiter = seawall.RateLimiter(rate=1, burst=1, hooks=(on_event,), clock=clock)
    assert limiter.try_acquire()  # every later token is waited for, hence logged
    return retrier, breaker, limiter


def _flaky(log: list[str], failures: int = 2) -> Any:
    """A sync function failing *failures* times, then returning "ok"."""
    state = {"left": failures}

    def fn(x: str) -> str:
        log.append("call")
        if state["left"]:
            state["left"] -= 1
            raise FlakyError
        return "ok"

    return fn


FIRST_OUTERMOST = ["limit", "call", "breaker", "retry", "call", "breaker", "retry", "call"]
BREAKER_OUTERMOST = ["limit", "call", "retry", "limit", "call", "retry", "limit", "call"]


class TestOrder:
    """The first policy listed is the outermost; the middleware's rule is the reverse."""

    def test_first_listed_is_outermost(self, clock: FakeClock) -> None:
        """Pipeline(limiter, retrier, breaker) takes one token and guards every attempt."""
        log: list[str] = []
        retrier, breaker, limiter = _primitives(clock, log)
        assert seawall.Pipeline(limiter, retrier, breaker).call(_flaky(log), "x") == "ok"
        assert log == FIRST_OUTERMOST

    def test_reversed_pipeline(self, clock: FakeClock) -> None:
        """Pipeline(breaker, retrier, limiter) guards once and takes a token per attempt."""
        log: list[str] = []
        retrier, breaker, limiter = _primitives(clock, log)
        assert seawall.Pipeline(breaker, retrier, limiter).call(_flaky(log), "x") == "ok"
        assert log == BREAKER_OUTERMOST

    def test_same_as_stacked_decorators(self, clock: FakeClock) -> None:
        """Pipeline(a, b, c) reads like @a @b @c, top-down."""
        log: list[str] = []
        retrier, breaker, limiter = _primitives(clock, log)
        stacked = limiter(retrier(breaker(_flaky(log))))
        assert stacked("x") == "ok"
        assert log == FIRST_OUTERMOST

    def test_middleware_lists_the_other_way(self, clock: FakeClock) -> None:
        """as_llm_middleware(breaker, retry, limit) is Pipeline(limiter, retrier, breaker)."""
        log: list[str] = []
        retrier, breaker, limiter = _primitives(clock, log)

        class Model:
            generate = staticmethod(_flaky(log))

        wrapped = seawall.apply_middleware(
            Model(),
            seawall.as_llm_middleware(
                seawall.with_circuit_breaker(breaker),
                seawall.with_retry(retrier),
                seawall.with_rate_limit(limiter),
            ),
        )
        assert wrapped.generate("x") == "ok"
        assert log == FIRST_OUTERMOST

    @pytest.mark.anyio
    async def test_first_listed_is_outermost_async(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """acall keeps the same order."""
        log: list[str] = []
        retrier, breaker, limiter = _primitives(clock, log)
        sync_fn = _flaky(log)

        async def fn(x: str) -> str:
            await anyio.lowlevel.checkpoint()
            return str(sync_fn(x))

        assert await seawall.Pipeline(limiter, retrier, breaker).acall(fn, "x") == "ok"
        assert log == FIRST_OUTERMOST


class TestCalls:
    """call, acall and the decorator run the function through every policy."""

    def test_empty_pipeline_just_calls(self) -> None:
        """No policy at all: the function is called."""

        def add(a: int, b: int = 0) -> int:
            return a + b

        assert seawall.Pipeline().call(add, 1, b=2) == 3

    def test_decorator_sync(self, clock: FakeClock) -> None:
        """A decorated sync function is retried and keeps its name."""
        log: list[str] = []
        pipeline = seawall.Pipeline(seawall.Retrier(initial_delay=0, clock=clock))
        fn = _flaky(log, failures=1)
        decorated = pipeline(fn)
        assert decorated("x") == "ok"
        assert decorated.__name__ == "fn"
        assert log == ["call", "call"]

    @pytest.mark.anyio
    async def test_decorator_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """A decorated coroutine function stays a coroutine function and is retried."""
        calls: list[int] = []
        pipeline = seawall.Pipeline(
            seawall.Fallback("fallback"),
            seawall.Retrier(initial_delay=1, jitter=seawall.Jitter.NONE, clock=clock),
        )

        @pipeline
        async def fn() -> str:
            calls.append(1)
            await anyio.lowlevel.checkpoint()
            raise FlakyError

        assert await fn() == "fallback"
        assert len(calls) == 3
        assert clock.sleeps == [1.0, 2.0]

    @pytest.mark.anyio
    async def test_timeout_and_bulkhead_policies(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Timeout and Bulkhead are pipeline policies too."""
        pipeline = seawall.Pipeline(seawall.Bulkhead(1), seawall.Timeout(2, clock=clock))

        async def hang() -> None:
            await anyio.Event().wait()

        with pytest.raises(seawall.CallTimeoutError):
            await pipeline.acall(hang)
        assert clock.now() == 2.0

    def test_repr_and_policies(self) -> None:
        """The repr lists the policies; a RateLimiter appears through its adapter."""
        retrier = seawall.Retrier(name="r")
        pipeline = seawall.Pipeline(retrier, seawall.RateLimiter(rate=1, burst=1))
        assert pipeline.policies[0] is retrier
        assert repr(pipeline).startswith("Pipeline(Retrier(name='r'")


class TestInvalid:
    """Bad policies and functions are refused with a message naming them."""

    def test_policy_without_call(self) -> None:
        """A policy needs call() or acall()."""
        with pytest.raises(TypeError, match=r"^policies\[1\] must have a call\(\) or acall\(\)"):
            seawall.Pipeline(seawall.Retrier(), object())

    def test_async_only_policy_refuses_sync_calls(self) -> None:
        """A policy with only acall() cannot run a sync call, and says which."""

        class AsyncOnly:
            async def acall(self, fn: Any) -> Any:
                return await fn()

        pipeline = seawall.Pipeline(AsyncOnly())
        with pytest.raises(TypeError, match=r"policies\[0\] .* has no call\(\) method"):
            pipeline.call(len, "x")

    @pytest.mark.anyio
    async def test_sync_only_policy_refuses_async_calls(self, anyio_backend: str) -> None:
        """A policy with only call() cannot run an async call."""

        class SyncOnly:
            def call(self, fn: Any) -> Any:
                return fn()

        async def fn() -> None: ...

        with pytest.raises(TypeError, match=r"policies\[0\] .* has no acall\(\) method"):
            await seawall.Pipeline(SyncOnly()).acall(fn)

    def test_decorator_refuses_generators_and_non_callables(self) -> None:
        """Generator functions and non-callables cannot be decorated."""

        def gen() -> Any:
            yield 1

        with pytest.raises(TypeError, match=r"generator function"):
            seawall.Pipeline()(gen)
        with pytest.raises(TypeError, match=r"^fn must be callable"):
            seawall.Pipeline()(3)  # type: ignore[arg-type]


class TestPipelineReportsCalls:
    def test_limiter_policy_reports_each_call(self, clock: FakeClock) -> None:
        """A limiter in a pipeline reports every call it admits as a rate_limiter call."""
        hook = seawall.testing.RecordingHook()
        limiter = seawall.RateLimiter(rate=1, burst=1, hooks=(hook,), clock=clock)
        pipeline = seawall.Pipeline(limiter)
        assert pipeline.call(lambda: 7) == 7
        assert pipeline.call(lambda: 8) == 8  # waits one second for its token
        ended = hook.of_type(seawall.CallEnded)
        assert [(e.started.primitive, e.outcome, e.duration) for e in ended] == [
            ("rate_limiter", seawall.Outcome.SUCCESS, 0.0),
            ("rate_limiter", seawall.Outcome.SUCCESS, 1.0),
        ]

    @pytest.mark.anyio
    async def test_limiter_policy_reports_each_async_call(self, clock: FakeClock) -> None:
        """The async path reports the same, with the failure of the protected call."""
        hook = seawall.testing.RecordingHook()
        limiter = seawall.RateLimiter(rate=1, burst=1, hooks=(hook,), clock=clock)
        pipeline = seawall.Pipeline(limiter)
        error = ValueError("boom")

        async def fail() -> None:
            raise error

        with pytest.raises(ValueError, match="boom"):
            await pipeline.acall(fail)
        (ended,) = hook.of_type(seawall.CallEnded)
        assert ended.outcome is seawall.Outcome.FAILURE
        assert ended.exception is error
