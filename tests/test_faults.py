"""Tests of seawall.testing's fault injection: FaultInjector, Latency, Fault."""

from __future__ import annotations

import inspect
import math
import pickle
import random
import statistics
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

import seawall
from seawall import ErrorKind, Retrier
from seawall.testing import (
    FakeClock,
    Fault,
    FaultInjector,
    FaultStatistics,
    InjectedError,
    InjectedHTTPError,
    Latency,
)


Y = TypeVar("Y")

# Wrong types for validation tests, typed Any so that mypy lets them through.
NOT_A_NUMBER: Any = "1"
NOT_A_PAIR: Any = (1, 2)
NOT_A_PAIR_EITHER: Any = Latency.fixed(1)


def ok(value: int = 0) -> int:
    """A sync function that returns its argument."""
    return value


async def aok(value: int = 0) -> int:
    """A coroutine function that returns its argument."""
    await anyio.lowlevel.checkpoint()
    return value


def outcomes(faults: FaultInjector, calls: int) -> list[object]:
    """Call a wrapped function *calls* times: each result or the injected error's type."""
    fn = faults.wrap(ok)
    return [attempt(fn, n) for n in range(calls)]


def attempt(fn: Callable[[int], int], value: int = 0) -> object:
    """Call *fn*: its result, or the type of the error it raised."""
    try:
        return fn(value)
    except Exception as exc:
        return type(exc)


def chunks(count: int) -> Iterator[int]:
    """A sync stream of *count* chunks."""
    yield from range(count)


async def achunks(count: int) -> AsyncIterator[int]:
    """An async stream of *count* chunks."""
    for n in range(count):
        await anyio.lowlevel.checkpoint()
        yield n


def drain(stream: Iterator[Y]) -> tuple[list[Y], BaseException | None]:
    """Read *stream* to its end or its first error."""
    seen: list[Y] = []
    try:
        seen.extend(stream)
    except Exception as exc:
        return seen, exc
    return seen, None


async def adrain(stream: AsyncIterator[Y]) -> tuple[list[Y], BaseException | None]:
    """Read an async *stream* to its end or its first error."""
    seen: list[Y] = []
    try:
        async for chunk in stream:
            seen.append(chunk)  # noqa: PERF401 -- the chunks before an error must be kept
    except Exception as exc:
        return seen, exc
    return seen, None


class SyncModel:
    """A model with sync generate() and a sync generator stream()."""

    temperature = 0.5

    def generate(self, prompt: str) -> str:
        """Echo the prompt."""
        return f"echo {prompt}"

    def stream(self, prompt: str) -> Iterator[str]:
        """Stream the prompt word by word."""
        yield from prompt.split()


class AsyncModel:
    """A model with async generate() and an async generator stream()."""

    async def generate(self, prompt: str) -> str:
        """Echo the prompt."""
        await anyio.lowlevel.checkpoint()
        return f"echo {prompt}"

    async def stream(self, prompt: str) -> AsyncIterator[str]:
        """Stream the prompt word by word."""
        for word in prompt.split():
            await anyio.lowlevel.checkpoint()
            yield word


class TestDeterminism:
    """A seed fixes every decision."""

    def test_same_seed_same_outcomes_and_latencies(self) -> None:
        """Two injectors with one seed fail the same calls and sleep the same delays."""
        runs = []
        for _ in range(2):
            clock = FakeClock()
            faults = FaultInjector(
                error_rate=0.3,
                errors=(ValueError("a"), KeyError("b")),
                latency=Latency.lognormal(median=0.1, sigma=0.5),
                fail_after_latency=True,
                seed=7,
                clock=clock,
            )
            runs.append((outcomes(faults, 200), clock.sleeps))
        assert runs[0] == runs[1]
        assert {ValueError, KeyError} <= set(runs[0][0])

    def test_different_seeds_differ(self) -> None:
        """Another seed gives another sequence."""
        first = outcomes(FaultInjector(error_rate=0.5, seed=1), 100)
        second = outcomes(FaultInjector(error_rate=0.5, seed=2), 100)
        assert first != second

    def test_error_rate_does_not_shift_latencies(self) -> None:
        """The draws per call are fixed, so the rate changes which calls fail, not delays."""
        sleeps = []
        for rate in (0.0, 0.5):
            clock = FakeClock()
            faults = FaultInjector(
                error_rate=rate,
                latency=Latency.exponential(mean=1.0),
                fail_after_latency=True,
                seed=3,
                clock=clock,
            )
            outcomes(faults, 50)
            sleeps.append(clock.sleeps)
        assert sleeps[0] == sleeps[1]

    def test_documented_draw_order(self) -> None:
        """Fail, error choice, latency: a Random with the same seed reproduces the call."""
        clock = FakeClock()
        faults = FaultInjector(
            error_rate=0.5,
            errors=(ValueError("a"), KeyError("b")),
            latency=Latency.uniform(1.0, 2.0),
            fail_after_latency=True,
            seed=11,
            clock=clock,
        )
        rng = random.Random(11)
        delays = []
        for outcome in outcomes(faults, 20):
            fail = rng.random() < 0.5
            error = (ValueError, KeyError)[int(rng.random() * 2)]
            delays.append(rng.uniform(1.0, 2.0))
            if fail:
                assert outcome is error
            else:
                assert isinstance(outcome, int)
        assert clock.sleeps == delays


class TestErrorRate:
    """The error rate is a probability per call."""

    @pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 1.0])
    def test_rate_is_plausible_over_10000_calls(self, rate: float) -> None:
        """The share of failed calls is within 4 standard deviations of the rate."""
        faults = FaultInjector(error_rate=rate, seed=2024)
        failed = sum(outcome is InjectedError for outcome in outcomes(faults, 10_000))
        tolerance = 4 * math.sqrt(rate * (1 - rate) / 10_000)
        assert abs(failed / 10_000 - rate) <= tolerance

    def test_uniform_choice_of_errors(self) -> None:
        """Unweighted errors are chosen about equally often."""
        faults = FaultInjector(error_rate=1.0, errors=(ValueError, KeyError), seed=5)
        seen = outcomes(faults, 10_000)
        assert abs(seen.count(ValueError) / 10_000 - 0.5) < 0.03

    def test_weighted_choice_of_errors(self) -> None:
        """Weighted errors are chosen in proportion to their weights."""
        faults = FaultInjector(error_rate=1.0, errors=((7, ValueError), (3, KeyError)), seed=5)
        seen = outcomes(faults, 10_000)
        assert abs(seen.count(ValueError) / 10_000 - 0.7) < 0.03

    def test_factories_build_fresh_errors_and_instances_are_reused(self) -> None:
        """A factory gives a new exception per failure; an instance is raised as it is."""
        instance = ValueError("same")
        faults = FaultInjector(error_rate=1.0, errors=(lambda: KeyError("new"),), seed=0)
        fn = faults.wrap(ok)
        raised = []
        for _ in range(2):
            with pytest.raises(KeyError) as info:
                fn()
            raised.append(info.value)
        assert raised[0] is not raised[1]
        reused = FaultInjector(error_rate=1.0, errors=(instance,)).wrap(ok)
        for _ in range(3):
            with pytest.raises(ValueError, match="same") as caught:
                reused()
            assert caught.value is instance
            # The traceback is reset each time rather than growing.
            assert len(list(_frames(caught.value))) <= 3

    def test_default_error_is_a_transient_connection_error(self) -> None:
        """InjectedError is a ConnectionError that classify calls TRANSIENT."""
        with pytest.raises(InjectedError, match="injected fault") as info:
            FaultInjector(error_rate=1.0).wrap(ok)()
        assert isinstance(info.value, ConnectionError)
        assert seawall.classify(info.value).kind is ErrorKind.TRANSIENT

    def test_wrapped_function_is_not_called_on_failure(self) -> None:
        """An injected failure replaces the call."""
        calls: list[int] = []
        fn = FaultInjector(error_rate=1.0).wrap(calls.append)
        with pytest.raises(InjectedError):
            fn(1)
        assert calls == []


def _frames(exc: BaseException) -> Iterator[object]:
    """The frames of *exc*'s traceback."""
    tb = exc.__traceback__
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


class TestLatencyDistributions:
    """Each distribution's samples match its parameters."""

    @staticmethod
    def samples(latency: Latency, count: int = 20_000) -> list[float]:
        """*count* samples from a seeded source."""
        rng = random.Random(99)
        return [latency.sample(rng) for _ in range(count)]

    def test_fixed(self) -> None:
        """A fixed latency always gives its value; a timedelta is accepted."""
        assert set(self.samples(Latency.fixed(timedelta(milliseconds=250)), 10)) == {0.25}

    def test_uniform(self) -> None:
        """Uniform samples stay in [low, high] with the midpoint as mean."""
        values = self.samples(Latency.uniform(1.0, 3.0))
        assert min(values) >= 1.0
        assert max(values) <= 3.0
        assert statistics.fmean(values) == pytest.approx(2.0, rel=0.02)

    def test_exponential_mean(self) -> None:
        """Exponential samples are >= 0 with the given mean."""
        values = self.samples(Latency.exponential(mean=0.5))
        assert min(values) >= 0
        assert statistics.fmean(values) == pytest.approx(0.5, rel=0.03)

    def test_lognormal_median(self) -> None:
        """Log-normal samples have the given median and a right tail."""
        values = self.samples(Latency.lognormal(median=0.2, sigma=0.6))
        assert min(values) > 0
        assert statistics.median(values) == pytest.approx(0.2, rel=0.03)
        p99 = sorted(values)[int(0.99 * len(values))]
        assert p99 == pytest.approx(0.2 * math.exp(2.326 * 0.6), rel=0.1)

    def test_pareto_scale_and_tail(self) -> None:
        """Pareto samples are >= scale, with median scale * 2 ** (1 / alpha)."""
        values = self.samples(Latency.pareto(scale=0.1, alpha=2.0))
        assert min(values) >= 0.1
        assert statistics.median(values) == pytest.approx(0.1 * 2**0.5, rel=0.03)

    def test_mixture_proportions(self) -> None:
        """A mixture draws each component in proportion to its weight."""
        mixture = Latency.mixture((0.9, Latency.fixed(0.1)), (0.1, Latency.fixed(5.0)))
        values = self.samples(mixture)
        assert set(values) == {0.1, 5.0}
        assert values.count(5.0) / len(values) == pytest.approx(0.1, abs=0.01)

    def test_capped(self) -> None:
        """capped() bounds every sample; capping twice keeps the lower cap."""
        values = self.samples(Latency.pareto(scale=1.0, alpha=0.5).capped(3.0))
        assert max(values) == 3.0
        assert min(values) >= 1.0
        assert max(self.samples(Latency.fixed(9).capped(4).capped(6), 5)) == 4.0


class TestLatencySync:
    """Sync callers wait on the clock's sleep."""

    def test_latency_is_slept_on_the_fake_clock(self, clock: FakeClock) -> None:
        """Every call sleeps its delay in virtual time, then runs."""
        fn = FaultInjector(latency=Latency.fixed(0.25), clock=clock).wrap(ok)
        assert [fn(1), fn(2)] == [1, 2]
        assert clock.sleeps == [0.25, 0.25]
        assert clock.now() == 0.5

    def test_errors_raise_before_latency_by_default(self, clock: FakeClock) -> None:
        """A failing call raises at once without sleeping."""
        fn = FaultInjector(error_rate=1.0, latency=Latency.fixed(2.0), clock=clock).wrap(ok)
        with pytest.raises(InjectedError):
            fn()
        assert clock.sleeps == []

    def test_fail_after_latency(self, clock: FakeClock) -> None:
        """With fail_after_latency the call sleeps first, like a timeout."""
        faults = FaultInjector(
            error_rate=1.0, latency=Latency.fixed(2.0), fail_after_latency=True, clock=clock
        )
        with pytest.raises(InjectedError):
            faults.wrap(ok)()
        assert clock.sleeps == [2.0]

    def test_zero_latency_does_not_sleep(self, clock: FakeClock) -> None:
        """A zero delay makes no call to the clock."""
        FaultInjector(latency=Latency.fixed(0), clock=clock).wrap(ok)()
        assert clock.sleeps == []

    def test_retrier_rides_out_injected_faults(self, clock: FakeClock) -> None:
        """A retrier over a scripted flaky function succeeds in virtual time."""
        faults = FaultInjector(clock=clock)
        faults.script(Fault.http(503), Fault.error(TimeoutError("slow"), latency=1.0))
        retrier = Retrier(
            max_attempts=3, initial_delay=0.5, jitter=seawall.Jitter.NONE, clock=clock
        )
        assert retrier.call(faults.wrap(ok), 7) == 7
        assert clock.sleeps == [0.5, 1.0, 1.0]


@pytest.mark.anyio
class TestLatencyAsync:
    """Async callers await the clock's asleep, on asyncio and trio."""

    async def test_latency_is_awaited_on_the_fake_clock(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """A coroutine function waits its drawn delay in virtual time."""
        fn = FaultInjector(latency=Latency.uniform(1, 2), seed=4, clock=clock).wrap(aok)
        assert await fn(3) == 3
        assert len(clock.sleeps) == 1
        assert 1 <= clock.sleeps[0] <= 2
        assert clock.now() == pytest.approx(clock.sleeps[0])

    async def test_fail_before_and_after_latency(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Async failures raise before the delay by default and after it on request."""
        before = FaultInjector(error_rate=1.0, latency=Latency.fixed(1.0), clock=clock)
        with pytest.raises(InjectedError):
            await before.wrap(aok)()
        assert clock.sleeps == []
        after = FaultInjector(
            error_rate=1.0, latency=Latency.fixed(1.0), fail_after_latency=True, clock=clock
        )
        with pytest.raises(InjectedError):
            await after.wrap(aok)()
        assert clock.sleeps == [1.0]

    async def test_concurrent_tasks_sleep_in_virtual_time(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Tasks sleeping their injected delays overlap in virtual time."""
        fn = FaultInjector(latency=Latency.fixed(3.0), clock=clock).wrap(aok)
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(fn, n)
        assert clock.now() == 3.0
        assert clock.sleeps == [3.0] * 5


class TestWrap:
    """wrap() keeps what it wraps and dispatches once."""

    def test_keeps_metadata_and_signature(self) -> None:
        """Name, docstring, __wrapped__ and signature survive."""
        faults = FaultInjector()
        for fn in (ok, aok, chunks, achunks):
            wrapped: Any = faults.wrap(fn)
            assert wrapped.__name__ == fn.__name__
            assert wrapped.__doc__ == fn.__doc__
            assert wrapped.__wrapped__ is fn
            assert inspect.signature(wrapped) == inspect.signature(fn)

    def test_dispatch_keeps_the_kind_of_function(self) -> None:
        """Coroutine and generator functions stay what they are."""
        faults = FaultInjector()
        assert not inspect.iscoroutinefunction(faults.wrap(ok))
        assert inspect.iscoroutinefunction(faults.wrap(aok))
        assert inspect.isgeneratorfunction(faults.wrap(chunks))
        assert inspect.isasyncgenfunction(faults.wrap(achunks))

    def test_rejects_non_callables(self) -> None:
        """wrap() needs a callable."""
        with pytest.raises(TypeError, match="fn must be callable"):
            FaultInjector().wrap(42)  # type: ignore[arg-type]

    def test_decision_is_per_call_not_per_wrap(self) -> None:
        """Several wrappers share the injector's draws and counters."""
        faults = FaultInjector(error_rate=0.5, seed=8)
        first, second = faults.wrap(ok), faults.wrap(ok)
        for fn in (first, second) * 10:
            attempt(fn)
        assert faults.statistics().calls == 20


class TestStreamsSync:
    """Sync streams: faults before the first chunk, mid-stream breaks, chunk latency."""

    def test_fail_before_first_chunk(self, clock: FakeClock) -> None:
        """A failing stream raises on the first request and yields nothing."""
        stream = FaultInjector(error_rate=1.0, clock=clock).wrap(chunks)(5)
        assert drain(stream)[0] == []

    def test_break_mid_stream(self, clock: FakeClock) -> None:
        """A broken stream delivers k chunks, then raises the chosen error."""
        faults = FaultInjector(
            stream_break_rate=1.0, stream_break_after=3, errors=(KeyError,), clock=clock
        )
        seen, exc = drain(faults.wrap(chunks)(10))
        assert seen == [0, 1, 2]
        assert isinstance(exc, KeyError)
        stats = faults.statistics()
        assert (stats.errors, stats.stream_breaks) == (1, 1)

    def test_short_stream_ends_before_its_break(self, clock: FakeClock) -> None:
        """A stream shorter than its break point ends normally."""
        faults = FaultInjector(stream_break_rate=1.0, stream_break_after=(5, 5), clock=clock)
        assert drain(faults.wrap(chunks)(3)) == ([0, 1, 2], None)
        assert faults.statistics().stream_breaks == 0

    def test_break_positions_within_range(self) -> None:
        """Break points are drawn from the inclusive range."""
        faults = FaultInjector(stream_break_rate=1.0, stream_break_after=(2, 4), seed=1)
        lengths = {len(drain(faults.wrap(chunks)(10))[0]) for _ in range(200)}
        assert lengths == {2, 3, 4}

    def test_latency_before_first_chunk_and_between_chunks(self, clock: FakeClock) -> None:
        """The call latency comes once, the chunk latency before each later chunk."""
        faults = FaultInjector(
            latency=Latency.fixed(1.0), chunk_latency=Latency.fixed(0.1), clock=clock
        )
        assert list(faults.wrap(chunks)(3)) == [0, 1, 2]
        assert clock.sleeps == [1.0, 0.1, 0.1]
        assert faults.statistics().injected_latency == pytest.approx(1.2)

    def test_source_is_closed_on_failure(self) -> None:
        """The wrapped generator is closed when a fault ends the stream."""
        closed = []

        def source() -> Iterator[int]:
            try:
                yield from range(10)
            finally:
                closed.append(True)

        faults = FaultInjector(stream_break_rate=1.0, stream_break_after=2)
        assert drain(faults.wrap(source)())[0] == [0, 1]
        assert closed == [True]


@pytest.mark.anyio
class TestStreamsAsync:
    """Async streams on asyncio and trio."""

    async def test_fail_before_first_chunk(self, anyio_backend: str, clock: FakeClock) -> None:
        """A failing async stream raises before any chunk."""
        stream = FaultInjector(error_rate=1.0, clock=clock).wrap(achunks)(4)
        seen, exc = await adrain(stream)
        assert seen == []
        assert isinstance(exc, InjectedError)

    async def test_break_mid_stream_with_latency(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Chunks arrive with virtual delays until the break."""
        faults = FaultInjector(
            latency=Latency.fixed(0.5),
            chunk_latency=Latency.fixed(0.2),
            stream_break_rate=1.0,
            stream_break_after=2,
            clock=clock,
        )
        seen, exc = await adrain(faults.wrap(achunks)(5))
        assert seen == [0, 1]
        assert isinstance(exc, InjectedError)
        assert clock.sleeps == [0.5, 0.2]
        assert clock.now() == pytest.approx(0.7)


class TestWrapModelSync:
    """wrap_model() over a sync model."""

    def test_generate_and_stream_are_faulty(self, clock: FakeClock) -> None:
        """Both methods go through the injector; other attributes come from the model."""
        faults = FaultInjector(latency=Latency.fixed(1.0), clock=clock)
        model = faults.wrap_model(SyncModel())
        assert model.generate("hi") == "echo hi"
        assert list(model.stream("a b c")) == ["a", "b", "c"]
        assert model.temperature == 0.5
        assert clock.sleeps == [1.0, 1.0]
        assert faults.statistics().calls == 2

    def test_stream_break_before_vs_mid_stream(self) -> None:
        """A scripted stream fails before the first chunk or after k chunks."""
        faults = FaultInjector()
        model = faults.wrap_model(SyncModel())
        faults.script(Fault.http(503), Fault.http(502, after_chunks=2))
        first = drain(model.stream("a b c d"))
        second = drain(model.stream("a b c d"))
        assert first[0] == []
        assert isinstance(first[1], InjectedHTTPError)
        assert second[0] == ["a", "b"]
        assert getattr(second[1], "status_code", None) == 502

    def test_model_without_stream(self) -> None:
        """A model without stream() gives a stand-in without stream()."""

        class Generator:
            def generate(self) -> str:
                return "x"

        model = FaultInjector().wrap_model(Generator())
        assert model.generate() == "x"
        assert not hasattr(model, "stream")
        assert "faulty" in repr(model)

    def test_stream_returning_an_iterator(self) -> None:
        """A plain stream() returning an iterable is wrapped by what it returns."""

        class Plain:
            def generate(self) -> str:
                return "x"

            def stream(self) -> Iterator[int]:
                return iter([1, 2, 3])

        faults = FaultInjector(stream_break_rate=1.0, stream_break_after=1)
        seen, exc = drain(faults.wrap_model(Plain()).stream())
        assert seen == [1]
        assert isinstance(exc, InjectedError)

    def test_rejects_objects_that_are_not_models(self) -> None:
        """generate() is required and stream must be callable."""

        class NoStream:
            stream = 3

            def generate(self) -> None:
                return None

        with pytest.raises(TypeError, match="callable generate"):
            FaultInjector().wrap_model(object())
        with pytest.raises(TypeError, match=r"model\.stream must be callable"):
            FaultInjector().wrap_model(NoStream())


@pytest.mark.anyio
class TestWrapModelAsync:
    """wrap_model() over an async model, on asyncio and trio."""

    async def test_generate_and_stream(self, anyio_backend: str, clock: FakeClock) -> None:
        """Async generate and stream wait in virtual time and then deliver."""
        faults = FaultInjector(latency=Latency.fixed(2.0), clock=clock)
        model = faults.wrap_model(AsyncModel())
        assert await model.generate("hi") == "echo hi"
        assert [word async for word in model.stream("a b")] == ["a", "b"]
        assert clock.sleeps == [2.0, 2.0]

    async def test_generate_fails(self, anyio_backend: str, clock: FakeClock) -> None:
        """A scripted HTTP error reaches the async caller."""
        faults = FaultInjector(clock=clock)
        faults.script(Fault.http(429, retry_after=2))
        with pytest.raises(InjectedHTTPError) as info:
            await faults.wrap_model(AsyncModel()).generate("hi")
        assert info.value.status_code == 429

    async def test_stream_break_before_vs_mid_stream(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """An async stream fails before its first chunk or after k chunks."""
        faults = FaultInjector(clock=clock)
        model = faults.wrap_model(AsyncModel())
        faults.script(Fault.error(KeyError("x")), Fault.error(KeyError("y"), after_chunks=1))
        seen, exc = await adrain(model.stream("a b c"))
        assert seen == []
        assert isinstance(exc, KeyError)
        seen, exc = await adrain(model.stream("a b c"))
        assert seen == ["a"]
        assert isinstance(exc, KeyError)

    async def test_coroutine_stream_method(self, anyio_backend: str, clock: FakeClock) -> None:
        """A coroutine stream() returning an async iterable is wrapped after it is awaited."""

        class Awaited:
            def generate(self) -> str:
                return "x"

            async def stream(self, count: int) -> AsyncIterator[int]:
                await anyio.lowlevel.checkpoint()
                return achunks(count)

        faults = FaultInjector(chunk_latency=Latency.fixed(0.5), clock=clock)
        stream = await faults.wrap_model(Awaited()).stream(3)
        assert await adrain(stream) == ([0, 1, 2], None)
        assert clock.sleeps == [0.5, 0.5]

    async def test_plain_stream_returning_async_iterator(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """A plain stream() returning an async iterable gives an async stream."""

        class Plain:
            def generate(self) -> str:
                return "x"

            def stream(self, count: int) -> AsyncIterator[int]:
                return achunks(count)

        faults = FaultInjector(error_rate=1.0, clock=clock)
        seen, exc = await adrain(faults.wrap_model(Plain()).stream(2))
        assert seen == []
        assert isinstance(exc, InjectedError)


class TestScript:
    """Scripted outcomes come first and take no random draws."""

    def test_script_then_random(self, clock: FakeClock) -> None:
        """The script is consumed in order; then the seeded sequence starts as if fresh."""
        faults = FaultInjector(error_rate=0.5, seed=3, clock=clock)
        faults.script(Fault.error(KeyError("k")), Fault.delay(3.0), Fault.ok())
        seen = outcomes(faults, 13)
        assert seen[:3] == [KeyError, 1, 2]
        assert clock.sleeps == [3.0]
        fresh = outcomes(FaultInjector(error_rate=0.5, seed=3), 10)
        assert [o is InjectedError for o in seen[3:]] == [o is InjectedError for o in fresh]
        assert faults.statistics().scripted == 3

    def test_scripted_error_waits_its_latency(self, clock: FakeClock) -> None:
        """A scripted error with latency sleeps, then raises."""
        faults = FaultInjector(clock=clock)
        faults.script(Fault.error(TimeoutError, latency=timedelta(seconds=4)))
        with pytest.raises(TimeoutError):
            faults.wrap(ok)()
        assert clock.sleeps == [4.0]

    def test_after_chunks_on_a_plain_call_fails_at_once(self) -> None:
        """A plain call has no chunks: a mid-stream fault fails it outright."""
        faults = FaultInjector()
        faults.script(Fault.error(KeyError("k"), after_chunks=3))
        with pytest.raises(KeyError):
            faults.wrap(ok)()

    def test_script_rejects_non_faults(self) -> None:
        """script() takes Fault objects only."""
        with pytest.raises(TypeError, match=r"faults\[1\] must be a Fault"):
            FaultInjector().script(Fault.ok(), ValueError())  # type: ignore[arg-type]


class TestHTTPErrors:
    """InjectedHTTPError is read by seawall.classify like a client's error."""

    @pytest.mark.parametrize(
        ("fault", "kind", "retry_after"),
        [
            (Fault.http(429, retry_after=2), ErrorKind.TRANSIENT, 2.0),
            (Fault.http(429, retry_after=0.5), ErrorKind.TRANSIENT, 0.5),
            (Fault.http(503), ErrorKind.TRANSIENT, None),
            (Fault.http(400), ErrorKind.CALLER_ERROR, None),
            (Fault.http(429, code="insufficient_quota"), ErrorKind.QUOTA_EXHAUSTED, None),
            (
                Fault.http(429, body={"error": {"code": "insufficient_quota"}}),
                ErrorKind.QUOTA_EXHAUSTED,
                None,
            ),
        ],
    )
    def test_classified(self, fault: Fault, kind: ErrorKind, retry_after: float | None) -> None:
        """Status, retry-after header and quota code decide the classification."""
        faults = FaultInjector()
        faults.script(fault)
        with pytest.raises(InjectedHTTPError) as info:
            faults.wrap(ok)()
        verdict = seawall.classify(info.value)
        assert verdict.kind is kind
        assert verdict.retry_after == retry_after
        assert verdict.status_code == info.value.status_code

    def test_attributes_and_pickle(self) -> None:
        """Headers are lowercase and the error survives pickling."""
        exc = InjectedHTTPError(503, retry_after=1.5, headers={"X-Request-ID": "r1"}, code="c")
        assert exc.headers == {"x-request-id": "r1", "retry-after": "1.5"}
        copy = pickle.loads(pickle.dumps(exc))
        assert (copy.status_code, copy.headers, copy.code) == (503, exc.headers, "c")
        assert str(copy) == str(exc)

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"status_code": 99}, ValueError, "status_code must be in 100..599"),
            ({"status_code": "500"}, TypeError, "status_code must be an int"),
            ({"status_code": 500, "code": 1}, TypeError, "code must be a str"),
            ({"status_code": 500, "retry_after": -1}, ValueError, "retry_after"),
        ],
    )
    def test_validation(self, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
        """Bad attributes are rejected when the fault is built."""
        with pytest.raises(error, match=match):
            Fault.http(**kwargs)


class TestStatistics:
    """statistics() counts what was injected."""

    def test_counts(self, clock: FakeClock) -> None:
        """Calls, errors by type, scripted outcomes and latency add up."""
        faults = FaultInjector(latency=Latency.fixed(0.5), clock=clock)
        faults.script(Fault.error(KeyError("a")), Fault.http(503), Fault.error(KeyError("b")))
        outcomes(faults, 5)
        stats = faults.statistics()
        assert isinstance(stats, FaultStatistics)
        assert stats == FaultStatistics(
            calls=5,
            errors=3,
            stream_breaks=0,
            scripted=3,
            injected_latency=1.0,
            errors_by_type={"KeyError": 2, "InjectedHTTPError": 1},
        )

    def test_snapshot_is_a_copy(self) -> None:
        """A snapshot does not change with later calls."""
        faults = FaultInjector(error_rate=1.0)
        stats = faults.statistics()
        outcomes(faults, 2)
        assert stats.errors_by_type == {}
        assert faults.statistics().errors_by_type == {"InjectedError": 2}


class TestRepr:
    """Readable reprs."""

    def test_injector_repr(self) -> None:
        """The injector shows its settings and progress."""
        faults = FaultInjector(error_rate=0.1, latency=Latency.fixed(0.2), seed=42)
        faults.script(Fault.ok())
        text = repr(faults)
        assert text.startswith("FaultInjector(error_rate=0.1, errors=1, ")
        assert "latency=Latency.fixed(seconds=0.2)" in text
        assert "seed=42" in text
        assert "scripted_pending=1" in text

    def test_latency_repr(self) -> None:
        """A latency reads like the expression that built it."""
        latency = Latency.mixture(
            (0.99, Latency.lognormal(median=0.2, sigma=0.6)), (0.01, Latency.pareto(2, 1.5))
        ).capped(30)
        assert repr(latency) == (
            "Latency.mixture((0.99, Latency.lognormal(median=0.2, sigma=0.6)), "
            "(0.01, Latency.pareto(scale=2.0, alpha=1.5))).capped(30.0)"
        )
        assert repr(Latency.uniform(1, 2)) == "Latency.uniform(low=1.0, high=2.0)"
        assert repr(Latency.exponential(3)) == "Latency.exponential(mean=3.0)"

    def test_fault_repr(self) -> None:
        """A fault is a dataclass with a plain repr."""
        assert repr(Fault.delay(2)) == "Fault(exception=None, latency=2.0, after_chunks=0)"


class TestValidation:
    """Every parameter is checked when built, and the error names it."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"error_rate": 1.5}, ValueError, "error_rate must be in"),
            ({"error_rate": -0.1}, ValueError, "error_rate must be in"),
            ({"error_rate": "x"}, TypeError, "error_rate must be a number"),
            ({"stream_break_rate": 2}, ValueError, "stream_break_rate must be in"),
            ({"errors": ()}, ValueError, "errors must not be empty"),
            ({"errors": ValueError()}, TypeError, "wrap a single one"),
            ({"errors": 3}, TypeError, "errors must be an iterable"),
            ({"errors": (3,)}, TypeError, r"errors\[0\] must be an exception or"),
            ({"errors": (KeyboardInterrupt(),)}, TypeError, r"errors\[0\] must be an Exception"),
            ({"errors": (SystemExit,)}, TypeError, r"errors\[0\] must be an Exception subclass"),
            ({"errors": ((1, KeyError), KeyError)}, TypeError, "all .* pairs or no pairs"),
            ({"errors": ((0, KeyError),)}, ValueError, r"errors\[0\] weight must be"),
            ({"errors": ((1, 2, KeyError),)}, TypeError, r"errors\[0\] must be a \(weight"),
            ({"latency": 0.5}, TypeError, "latency must be a Latency"),
            ({"chunk_latency": 1}, TypeError, "chunk_latency must be a Latency"),
            ({"fail_after_latency": 1}, TypeError, "fail_after_latency must be a bool"),
            ({"stream_break_after": 0}, ValueError, "stream_break_after must be >= 1"),
            ({"stream_break_after": (3, 2)}, ValueError, "low <= high"),
            ({"stream_break_after": (1, 2, 3)}, TypeError, r"\(low, high\) pair"),
            ({"stream_break_after": (0, 2)}, ValueError, "stream_break_after low"),
            ({"seed": "s"}, TypeError, "seed must be an int"),
            ({"clock": object()}, TypeError, "clock must provide"),
        ],
    )
    def test_injector(self, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
        """FaultInjector rejects bad arguments by name."""
        with pytest.raises(error, match=match):
            FaultInjector(**kwargs)

    @pytest.mark.parametrize(
        ("build", "error", "match"),
        [
            (lambda: Latency.fixed(-1), ValueError, "seconds must be >= 0"),
            (lambda: Latency.fixed(math.inf), ValueError, "seconds must be finite"),
            (lambda: Latency.fixed(NOT_A_NUMBER), TypeError, "seconds must be a number"),
            (lambda: Latency.uniform(2, 1), ValueError, "high must be >= low"),
            (lambda: Latency.exponential(0), ValueError, "mean must be > 0"),
            (lambda: Latency.lognormal(median=0, sigma=1), ValueError, "median must be > 0"),
            (lambda: Latency.lognormal(median=1, sigma=0), ValueError, "sigma must be"),
            (
                lambda: Latency.lognormal(median=1, sigma=NOT_A_NUMBER),
                TypeError,
                "sigma must be a number",
            ),
            (lambda: Latency.pareto(scale=1, alpha=-1), ValueError, "alpha must be"),
            (lambda: Latency.pareto(scale=0, alpha=1), ValueError, "scale must be > 0"),
            (Latency.mixture, ValueError, "at least one"),
            (
                lambda: Latency.mixture(NOT_A_PAIR),
                TypeError,
                r"components\[0\] must hold a Latency",
            ),
            (lambda: Latency.mixture(NOT_A_PAIR_EITHER), TypeError, r"\(weight, Latency\) pair"),
            (lambda: Latency.mixture((0, Latency.fixed(1))), ValueError, "weight must be"),
            (lambda: Latency.fixed(1).capped(0), ValueError, "max_seconds must be > 0"),
            (lambda: Fault.delay(-1), ValueError, "seconds must be >= 0"),
            (lambda: Fault.error(3), TypeError, "exception must be an exception or"),  # type: ignore[arg-type]
            (lambda: Fault.error(KeyError, after_chunks=-1), ValueError, "after_chunks must be"),
            (lambda: Fault(after_chunks=1), ValueError, "after_chunks needs an exception"),
        ],
    )
    def test_latency_and_fault(self, build: Any, error: type[Exception], match: str) -> None:
        """Latency and Fault constructors reject bad arguments by name."""
        with pytest.raises(error, match=match):
            build()

    def test_factory_must_return_an_exception(self) -> None:
        """A factory that returns something else is reported when it is used."""
        fn = FaultInjector(error_rate=1.0, errors=(lambda: "oops",)).wrap(ok)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must return an Exception"):
            fn()


class TestThreadSafety:
    """One injector shared by many threads."""

    def test_counts_add_up_across_threads(self, clock: FakeClock) -> None:
        """8 threads x 1000 calls: every call counted, every failure counted once."""
        faults = FaultInjector(
            error_rate=0.2,
            latency=Latency.fixed(0.001),
            fail_after_latency=True,
            seed=1,
            clock=clock,
        )
        fn = faults.wrap(ok)
        failures = [0] * 8
        barrier = threading.Barrier(8)

        def worker(index: int) -> None:
            barrier.wait()
            failures[index] = [attempt(fn) for _ in range(1000)].count(InjectedError)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = faults.statistics()
        assert stats.calls == 8000
        assert stats.errors == sum(failures) == stats.errors_by_type["InjectedError"]
        assert len(clock.sleeps) == 8000
        assert stats.injected_latency == pytest.approx(8.0)
        # Same seed, same multiset of outcomes, whatever the interleaving.
        assert sum(failures) == outcomes(FaultInjector(error_rate=0.2, seed=1), 8000).count(
            InjectedError
        )


class TestPublicPath:
    """The public classes present themselves under seawall.testing."""

    def test_module_is_public(self) -> None:
        """__module__ is seawall.testing, and exceptions pickle by that path."""
        for cls in (
            Fault,
            FaultInjector,
            FaultStatistics,
            InjectedError,
            InjectedHTTPError,
            Latency,
        ):
            assert cls.__module__ == "seawall.testing"
        assert isinstance(pickle.loads(pickle.dumps(InjectedError("x"))), InjectedError)

    def test_instantiate_outside_event_loop(self) -> None:
        """Building an injector binds to no event loop."""
        faults = FaultInjector(latency=Latency.fixed(1))
        assert faults.statistics().calls == 0
