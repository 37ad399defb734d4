"""LLM middleware: order, each with_* option, stream semantics, the model proxy."""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

import seawall
from seawall.testing import FakeClock, RecordingHook


pytestmark = pytest.mark.timeout(20)


class FlakyError(ConnectionError):
    """A transient failure: retryable, and a breaker failure."""


@dataclass
class Script:
    """What a scripted stream does: yield *chunks*, then raise *error* if any."""

    chunks: list[Any] = field(default_factory=list)
    error: BaseException | None = None


class SyncModel:
    """A sync model whose outcomes are scripted; it logs every call and stream open."""

    def __init__(
        self, outcomes: list[Any] | None = None, streams: list[Script] | None = None
    ) -> None:
        self.outcomes = list(outcomes or [])
        self.streams = list(streams or [])
        self.log: list[str] = []
        self.extra = "forwarded"
        self.closed = 0

    def generate(self, prompt: str, *, tokens: int = 0) -> Any:
        self.log.append("call")
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def stream(self, prompt: str, *, tokens: int = 0) -> Generator[Any, None, None]:
        script = self.streams.pop(0)
        self.log.append("open")
        try:
            yield from script.chunks
            if script.error is not None:
                raise script.error
        finally:
            self.closed += 1


class AsyncModel:
    """The async twin of `SyncModel`; ``stream`` is an async generator function."""

    def __init__(
        self, outcomes: list[Any] | None = None, streams: list[Script] | None = None
    ) -> None:
        self.outcomes = list(outcomes or [])
        self.streams = list(streams or [])
        self.log: list[str] = []
        self.extra = "forwarded"
        self.closed = 0

    async def generate(self, prompt: str, *, tokens: int = 0) -> Any:
        self.log.append("call")
        await anyio.lowlevel.checkpoint()
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def stream(self, prompt: str, *, tokens: int = 0) -> AsyncGenerator[Any, None]:
        script = self.streams.pop(0)
        self.log.append("open")
        try:
            for chunk in script.chunks:
                await anyio.lowlevel.checkpoint()
                yield chunk
            if script.error is not None:
                raise script.error
        finally:
            self.closed += 1


class AwaitStreamModel(AsyncModel):
    """``stream`` is a coroutine function returning an async iterator (SDK style)."""

    async def stream(self, prompt: str, *, tokens: int = 0) -> AsyncIterator[Any]:  # type: ignore[override]
        return super().stream(prompt, tokens=tokens)


class GenerateOnly:
    """A model without ``stream``."""

    def generate(self, prompt: str) -> str:
        return prompt.upper()


def collect(stream: Iterator[Any]) -> tuple[list[Any], BaseException | None]:
    """Drain a sync stream: the chunks received and the exception that ended it."""
    received: list[Any] = []
    try:
        received.extend(stream)  # keeps the chunks read before an exception
    except Exception as exc:
        return received, exc
    return received, None


async def acollect(stream: Any) -> tuple[list[Any], BaseException | None]:
    """Drain an async stream (or an awaitable of one) like `collect`."""
    if inspect.isawaitable(stream):
        stream = await stream
    received: list[Any] = []
    try:
        async for chunk in stream:
            received.append(chunk)  # noqa: PERF401 -- keep the chunks read before an exception
    except Exception as exc:
        return received, exc
    return received, None


def retrier(clock: FakeClock, **kwargs: Any) -> seawall.Retrier:
    """A retrier without jitter on *clock*."""
    kwargs.setdefault("initial_delay", 0.5)
    return seawall.Retrier(jitter=seawall.Jitter.NONE, clock=clock, **kwargs)


# -- order -----------------------------------------------------------------------------


def _ordered_primitives(
    clock: FakeClock, log: list[str]
) -> tuple[seawall.CircuitBreaker, seawall.Retrier, seawall.RateLimiter]:
    """A breaker, retrier and limiter whose hooks write to *log*."""

    def judge(exc: Exception) -> bool:
        log.append("breaker")
        return True

    def on_retry(event: seawall.Event) -> None:
        if isinstance(event, seawall.RetryScheduled):
            log.append("retry")

    def on_limit(event: seawall.Event) -> None:
        if isinstance(event, seawall.AcquireWaited):
            log.append("limit")

    breaker = seawall.CircuitBreaker(max_failures=10, is_failure=judge, clock=clock)
    retry = seawall.Retrier(
        max_attempts=3, initial_delay=0, hooks=(on_retry,), clock=clock, name="r"
    )
    # Empty bucket: every token must be waited for, so every acquisition is logged.
    limiter = seawall.RateLimiter(rate=1, burst=1, hooks=(on_limit,), clock=clock)
    assert limiter.try_acquire()
    return breaker, retry, limiter


GUIDE_ORDER = ["limit", "call", "breaker", "retry", "call", "breaker", "retry", "call"]
REVERSED_ORDER = ["limit", "call", "retry", "limit", "call", "retry", "limit", "call"]


class TestOrder:
    """The last middleware listed is the outermost, as in the Go guide."""

    def test_guide_order_sync(self, clock: FakeClock) -> None:
        """as_llm_middleware(cb, retry, limit) runs limit → retry → breaker → call."""
        log: list[str] = []
        breaker, retry, limiter = _ordered_primitives(clock, log)
        model = SyncModel([FlakyError(), FlakyError(), "ok"])
        model.log = log
        wrapped = seawall.apply_middleware(
            model,
            seawall.as_llm_middleware(
                seawall.with_circuit_breaker(breaker),
                seawall.with_retry(retry),
                seawall.with_rate_limit(limiter),
            ),
        )
        assert wrapped.generate("hi") == "ok"
        assert log == GUIDE_ORDER
        assert breaker.statistics().calls_admitted == 3
        assert limiter.statistics().grants == 2  # the pre-taken token and one request

    def test_reversed_list_reverses_order_sync(self, clock: FakeClock) -> None:
        """Listing limit, retry, breaker makes the breaker outermost and the limiter inner."""
        log: list[str] = []
        breaker, retry, limiter = _ordered_primitives(clock, log)
        model = SyncModel([FlakyError(), FlakyError(), "ok"])
        model.log = log
        wrapped = seawall.apply_middleware(
            model,
            seawall.with_rate_limit(limiter),
            seawall.with_retry(retry),
            seawall.with_circuit_breaker(breaker),
        )
        assert wrapped.generate("hi") == "ok"
        assert log == REVERSED_ORDER
        assert breaker.statistics().calls_admitted == 1

    def test_apply_middleware_matches_as_llm_middleware(self, clock: FakeClock) -> None:
        """apply_middleware(m, a, b, c) is as_llm_middleware(a, b, c)(m)."""
        log: list[str] = []
        breaker, retry, limiter = _ordered_primitives(clock, log)
        model = SyncModel([FlakyError(), FlakyError(), "ok"])
        model.log = log
        wrapped = seawall.apply_middleware(
            model,
            seawall.with_circuit_breaker(breaker),
            seawall.with_retry(retry),
            seawall.with_rate_limit(limiter),
        )
        assert wrapped.generate("hi") == "ok"
        assert log == GUIDE_ORDER

    @pytest.mark.anyio
    async def test_guide_order_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """The same order holds for an async model."""
        log: list[str] = []
        breaker, retry, limiter = _ordered_primitives(clock, log)
        model = AsyncModel([FlakyError(), FlakyError(), "ok"])
        model.log = log
        wrapped = seawall.apply_middleware(
            model,
            seawall.as_llm_middleware(
                seawall.with_circuit_breaker(breaker),
                seawall.with_retry(retry),
                seawall.with_rate_limit(limiter),
            ),
        )
        assert await wrapped.generate("hi") == "ok"
        assert log == GUIDE_ORDER

    @pytest.mark.anyio
    async def test_reversed_list_reverses_order_async(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """The reversed list gives the reversed order for an async model too."""
        log: list[str] = []
        breaker, retry, limiter = _ordered_primitives(clock, log)
        model = AsyncModel([FlakyError(), FlakyError(), "ok"])
        model.log = log
        wrapped = seawall.apply_middleware(
            model,
            seawall.as_llm_middleware(
                seawall.with_rate_limit(limiter),
                seawall.with_retry(retry),
                seawall.with_circuit_breaker(breaker),
            ),
        )
        assert await wrapped.generate("hi") == "ok"
        assert log == REVERSED_ORDER


# -- the proxy -------------------------------------------------------------------------


class TestProxy:
    """The wrapped model keeps its methods, their kinds, and forwards the rest."""

    def test_sync_model_stays_sync(self, clock: FakeClock) -> None:
        """A sync generate and a generator stream stay sync."""
        wrapped = seawall.apply_middleware(SyncModel(), seawall.with_retry(retrier(clock)))
        assert not inspect.iscoroutinefunction(wrapped.generate)
        assert inspect.isgeneratorfunction(wrapped.stream)

    def test_async_model_stays_async(self, clock: FakeClock) -> None:
        """An async generate and an async generator stream stay async."""
        wrapped = seawall.apply_middleware(AsyncModel(), seawall.with_retry(retrier(clock)))
        assert inspect.iscoroutinefunction(wrapped.generate)
        assert inspect.isasyncgenfunction(wrapped.stream)

    def test_awaitable_stream_stays_awaitable(self, clock: FakeClock) -> None:
        """A coroutine stream (await it for the iterator) stays a coroutine function."""
        wrapped = seawall.apply_middleware(AwaitStreamModel(), seawall.with_retry(retrier(clock)))
        assert inspect.iscoroutinefunction(wrapped.stream)

    def test_attributes_are_forwarded(self, clock: FakeClock) -> None:
        """Other attributes come from the inner model, through every layer."""
        model = SyncModel()
        wrapped = seawall.apply_middleware(
            model, seawall.with_retry(retrier(clock)), seawall.with_retry(retrier(clock))
        )
        assert wrapped.extra == "forwarded"
        assert wrapped.outcomes is model.outcomes
        with pytest.raises(AttributeError):
            _ = wrapped.missing  # type: ignore[attr-defined]

    def test_no_stream_without_inner_stream(self, clock: FakeClock) -> None:
        """A model without stream gets a wrapper without stream."""
        wrapped = seawall.apply_middleware(GenerateOnly(), seawall.with_retry(retrier(clock)))
        assert not hasattr(wrapped, "stream")
        assert wrapped.generate("a") == "A"

    def test_signature_and_name_are_kept(self, clock: FakeClock) -> None:
        """The wrapper's signature and name are the inner method's."""
        wrapped = seawall.apply_middleware(SyncModel(), seawall.with_retry(retrier(clock)))
        assert wrapped.generate.__name__ == "generate"
        assert list(inspect.signature(wrapped.generate).parameters) == ["prompt", "tokens"]

    def test_is_a_model_and_has_a_repr(self, clock: FakeClock) -> None:
        """The wrapper satisfies seawall.Model and says what wraps what."""
        wrapped = seawall.apply_middleware(
            SyncModel(), seawall.with_retry(retrier(clock, name="llm"))
        )
        assert isinstance(wrapped, seawall.Model)
        assert "with_retry('llm')" in repr(wrapped)
        assert (
            repr(seawall.as_llm_middleware(seawall.with_retry(retrier(clock, name="llm"))))
            == "as_llm_middleware(with_retry('llm'))"
        )

    def test_no_middleware_returns_the_model(self) -> None:
        """apply_middleware with no middleware returns the model itself."""
        model = SyncModel()
        assert seawall.apply_middleware(model) is model


# -- with_retry --------------------------------------------------------------------------


class TestWithRetry:
    """Retry re-runs generate, and re-opens a stream only before its first chunk."""

    def test_generate_is_retried_sync(self, clock: FakeClock) -> None:
        """A transient failure of generate is retried after the backoff."""
        model = SyncModel([FlakyError(), "ok"])
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert wrapped.generate("hi") == "ok"
        assert clock.sleeps == [0.5]

    def test_stream_failing_before_first_chunk_is_reopened_sync(self, clock: FakeClock) -> None:
        """A stream that fails before its first chunk is closed and opened again."""
        model = SyncModel(streams=[Script(error=FlakyError()), Script(["a", "b"])])
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert collect(wrapped.stream("hi")) == (["a", "b"], None)
        assert model.log == ["open", "open"]
        assert model.closed == 2

    def test_stream_failing_after_first_chunk_is_not_retried_sync(self, clock: FakeClock) -> None:
        """A failure after the first chunk reaches the consumer after that chunk."""
        error = FlakyError()
        model = SyncModel(streams=[Script(["a"], error), Script(["never"])])
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert collect(wrapped.stream("hi")) == (["a"], error)
        assert model.log == ["open"]

    def test_empty_stream_sync(self, clock: FakeClock) -> None:
        """An empty stream is a success with no chunks."""
        model = SyncModel(streams=[Script()])
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert collect(wrapped.stream("hi")) == ([], None)

    @pytest.mark.anyio
    async def test_generate_is_retried_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """An async generate is retried with the clock's asleep."""
        model = AsyncModel([FlakyError(), "ok"])
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert await wrapped.generate("hi") == "ok"
        assert clock.sleeps == [0.5]

    @pytest.mark.anyio
    @pytest.mark.parametrize("model_type", [AsyncModel, AwaitStreamModel])
    async def test_stream_before_and_after_first_chunk_async(
        self, anyio_backend: str, clock: FakeClock, model_type: type[AsyncModel]
    ) -> None:
        """Async streams: reopened before the first chunk, never after it."""
        error = FlakyError()
        model = model_type(
            streams=[Script(error=FlakyError()), Script(["a", "b"], error), Script(["never"])]
        )
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert await acollect(wrapped.stream("hi")) == (["a", "b"], error)
        assert model.log == ["open", "open"]
        assert model.closed == 2

    @pytest.mark.anyio
    async def test_empty_stream_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """An empty async stream ends at once."""
        model = AsyncModel(streams=[Script()])
        wrapped = seawall.apply_middleware(model, seawall.with_retry(retrier(clock)))
        assert await acollect(wrapped.stream("hi")) == ([], None)


# -- with_circuit_breaker ----------------------------------------------------------------


class TestWithCircuitBreaker:
    """The breaker guards generate, and records a stream's outcome when it ends."""

    def test_generate_opens_and_rejects_sync(self, clock: FakeClock) -> None:
        """After max_failures the breaker rejects without calling the model."""
        breaker = seawall.CircuitBreaker(max_failures=2, clock=clock)
        model = SyncModel([FlakyError(), FlakyError(), "never"])
        wrapped = seawall.apply_middleware(model, seawall.with_circuit_breaker(breaker))
        for _ in range(2):
            with pytest.raises(FlakyError):
                wrapped.generate("hi")
        with pytest.raises(seawall.CircuitOpenError):
            wrapped.generate("hi")
        assert model.log == ["call", "call"]

    @pytest.mark.anyio
    async def test_generate_opens_and_rejects_async(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """The async generate is guarded the same way."""
        breaker = seawall.CircuitBreaker(max_failures=1, clock=clock)
        model = AsyncModel([FlakyError(), "never"])
        wrapped = seawall.apply_middleware(model, seawall.with_circuit_breaker(breaker))
        with pytest.raises(FlakyError):
            await wrapped.generate("hi")
        with pytest.raises(seawall.CircuitOpenError):
            await wrapped.generate("hi")
        assert model.log == ["call"]

    def test_stream_outcomes_sync(self, clock: FakeClock) -> None:
        """Exhausted: success; raised: failure; closed early: nothing recorded."""
        breaker = seawall.CircuitBreaker(max_failures=5, clock=clock)
        model = SyncModel(
            streams=[Script(["a", "b"]), Script(["a"], FlakyError()), Script(["a", "b"])]
        )
        wrapped = seawall.apply_middleware(model, seawall.with_circuit_breaker(breaker))
        assert collect(wrapped.stream("hi"))[0] == ["a", "b"]
        stats = breaker.statistics()
        assert (stats.successes, stats.failures) == (1, 0)
        assert collect(wrapped.stream("hi"))[0] == ["a"]
        stats = breaker.statistics()
        assert (stats.successes, stats.failures) == (1, 1)
        early = wrapped.stream("hi")
        assert next(early) == "a"
        assert breaker.statistics().calls_in_flight == 1
        early.close()
        stats = breaker.statistics()
        assert (stats.successes, stats.failures, stats.calls_in_flight) == (1, 1, 0)
        assert model.closed == 3

    @pytest.mark.anyio
    async def test_stream_outcomes_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """The async stream's outcome is recorded at its end, or not at all if closed early."""
        breaker = seawall.CircuitBreaker(max_failures=5, clock=clock)
        model = AsyncModel(
            streams=[Script(["a", "b"]), Script(["a"], FlakyError()), Script(["a", "b"])]
        )
        wrapped = seawall.apply_middleware(model, seawall.with_circuit_breaker(breaker))
        assert (await acollect(wrapped.stream("hi")))[0] == ["a", "b"]
        assert (await acollect(wrapped.stream("hi")))[0] == ["a"]
        early = wrapped.stream("hi")
        assert await anext(early) == "a"
        await early.aclose()
        stats = breaker.statistics()
        assert (stats.successes, stats.failures, stats.calls_in_flight) == (1, 1, 0)

    @pytest.mark.anyio
    async def test_open_breaker_rejects_stream_before_opening(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """An open breaker rejects a stream at its first chunk; the model is not called."""
        breaker = seawall.CircuitBreaker(clock=clock)
        breaker.trip()
        model = AsyncModel(streams=[Script(["a"])])
        wrapped = seawall.apply_middleware(model, seawall.with_circuit_breaker(breaker))
        chunks, error = await acollect(wrapped.stream("hi"))
        assert chunks == []
        assert isinstance(error, seawall.CircuitOpenError)
        assert model.log == []


# -- with_rate_limit ---------------------------------------------------------------------


class TestWithRateLimit:
    """A RateLimiter takes one token per call; an LLMRateLimiter reserves and settles."""

    def test_one_token_per_generate_sync(self, clock: FakeClock) -> None:
        """Each generate takes one token, waiting on the clock when the bucket is empty."""
        limiter = seawall.RateLimiter(rate=2, burst=1, clock=clock)
        wrapped = seawall.apply_middleware(SyncModel(["a", "b"]), seawall.with_rate_limit(limiter))
        assert [wrapped.generate("x"), wrapped.generate("y")] == ["a", "b"]
        assert limiter.statistics().grants == 2
        assert clock.sleeps == [0.5]

    def test_stream_is_admitted_at_start_sync(self, clock: FakeClock) -> None:
        """A stream takes its token when iteration starts, once for all its chunks."""
        limiter = seawall.RateLimiter(rate=1, burst=5, clock=clock)
        wrapped = seawall.apply_middleware(
            SyncModel(streams=[Script(["a", "b", "c"])]), seawall.with_rate_limit(limiter)
        )
        stream = wrapped.stream("x")
        assert limiter.statistics().grants == 0
        assert next(stream) == "a"
        assert limiter.statistics().grants == 1
        assert list(stream) == ["b", "c"]
        assert limiter.statistics().grants == 1

    @pytest.mark.anyio
    async def test_generate_and_stream_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """Async calls and streams take one token each, waiting on virtual time."""
        limiter = seawall.RateLimiter(rate=1, burst=1, clock=clock)
        wrapped = seawall.apply_middleware(
            AsyncModel(["a"], streams=[Script(["b"])]), seawall.with_rate_limit(limiter)
        )
        assert await wrapped.generate("x") == "a"
        assert await acollect(wrapped.stream("x")) == (["b"], None)
        assert limiter.statistics().grants == 2
        assert clock.sleeps == [1.0]

    def test_llm_generate_reserves_and_settles_sync(self, clock: FakeClock) -> None:
        """The estimate comes from the call's arguments and usage settles the lease."""
        hook = RecordingHook()
        limiter = seawall.LLMRateLimiter(60, 10_000, clock=clock, hooks=(hook,))
        wrapped = seawall.apply_middleware(
            SyncModel([{"usage": 70}]),
            seawall.with_rate_limit(
                limiter,
                estimate=lambda _prompt, tokens=0: tokens,
                usage=lambda result: result["usage"],
            ),
        )
        assert wrapped.generate("x", tokens=100) == {"usage": 70}
        [settled] = hook.of_type(seawall.TokensSettled)
        assert (settled.estimated, settled.actual) == (100, 70)

    def test_llm_failed_call_keeps_estimate_sync(self, clock: FakeClock) -> None:
        """A call that raises leaves its lease unsettled."""
        limiter = seawall.LLMRateLimiter(60, 10_000, clock=clock)
        wrapped = seawall.apply_middleware(
            SyncModel([FlakyError()]),
            seawall.with_rate_limit(limiter, estimate=lambda *_, **__: 50, usage=lambda _: 1),
        )
        with pytest.raises(FlakyError):
            wrapped.generate("x")
        stats = limiter.statistics()
        assert (stats.tokens_reserved, stats.settled) == (50, 0)

    def test_llm_stream_settles_from_the_last_usage_sync(self, clock: FakeClock) -> None:
        """The last usage reported by a chunk settles the lease at the stream's end."""
        hook = RecordingHook()
        limiter = seawall.LLMRateLimiter(60, 10_000, clock=clock, hooks=(hook,))
        chunks = [{"text": "a"}, {"text": "b", "usage": 30}, {"text": ""}]
        wrapped = seawall.apply_middleware(
            SyncModel(streams=[Script(chunks)]),
            seawall.with_rate_limit(
                limiter, estimate=lambda *_, **__: 100, usage=lambda chunk: chunk.get("usage")
            ),
        )
        stream = wrapped.stream("x")
        assert next(stream) == {"text": "a"}
        assert limiter.statistics().grants == 1
        assert hook.of_type(seawall.TokensSettled) == []
        assert list(stream) == chunks[1:]
        [settled] = hook.of_type(seawall.TokensSettled)
        assert settled.actual == 30

    @pytest.mark.anyio
    async def test_llm_stream_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """Async: reserve at start, settle at the end; closed early keeps the estimate."""
        hook = RecordingHook()
        limiter = seawall.LLMRateLimiter(60, 10_000, clock=clock, hooks=(hook,))
        chunks = [{"text": "a"}, {"text": "", "usage": 12}]
        wrapped = seawall.apply_middleware(
            AsyncModel([{"text": "r"}], streams=[Script(chunks), Script(chunks)]),
            seawall.with_rate_limit(
                limiter, estimate=lambda *_, **__: 40, usage=lambda chunk: chunk.get("usage")
            ),
        )
        assert await wrapped.generate("x") == {"text": "r"}  # no usage: not settled
        assert await acollect(wrapped.stream("x")) == (chunks, None)
        early = wrapped.stream("x")
        assert await anext(early) == chunks[0]
        await early.aclose()
        assert [e.actual for e in hook.of_type(seawall.TokensSettled)] == [12]
        assert limiter.statistics().grants == 3


# -- with_hedge --------------------------------------------------------------------------


class TestWithHedge:
    """The hedger races generate, and async streams on their time to first chunk."""

    @pytest.mark.anyio
    async def test_generate_is_hedged_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """A slow primary loses to the hedge launched after the delay."""
        release = anyio.Event()
        calls: list[int] = []

        class Slow:
            async def generate(self) -> str:
                calls.append(len(calls))
                if len(calls) == 1:
                    await release.wait()
                    return "slow"
                return "fast"

        hedger = seawall.Hedger(delay=1.0, clock=clock)
        wrapped = seawall.apply_middleware(Slow(), seawall.with_hedge(hedger))
        assert await wrapped.generate() == "fast"
        assert clock.now() == 1.0

    def test_generate_is_hedged_sync(self, clock: FakeClock) -> None:
        """A sync generate runs through the thread-based hedger."""
        hedger = seawall.Hedger(clock=clock)
        try:
            wrapped = seawall.apply_middleware(SyncModel(["ok"]), seawall.with_hedge(hedger))
            assert wrapped.generate("x") == "ok"
        finally:
            hedger.close()

    @pytest.mark.anyio
    async def test_stream_failing_first_is_hedged(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """A stream failing before its first chunk launches a hedge that wins."""
        model = AsyncModel(streams=[Script(error=FlakyError()), Script(["a", "b"])])
        hedger = seawall.Hedger(delay=5.0, clock=clock)
        wrapped = seawall.apply_middleware(model, seawall.with_hedge(hedger))
        assert await acollect(wrapped.stream("x")) == (["a", "b"], None)
        assert model.log == ["open", "open"]

    def test_sync_stream_passes_through(self, clock: FakeClock) -> None:
        """Sync streams are not hedged: one stream, unchanged."""
        model = SyncModel(streams=[Script(["a"], FlakyError())])
        wrapped = seawall.apply_middleware(model, seawall.with_hedge(seawall.Hedger(clock=clock)))
        chunks, error = collect(wrapped.stream("x"))
        assert chunks == ["a"]
        assert isinstance(error, FlakyError)


# -- with_timeout ------------------------------------------------------------------------


class GateClock:
    """A clock whose sync sleep blocks until the test opens the gate (sync timeouts)."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def now(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.gate.wait(10)

    async def asleep(self, seconds: float) -> None:  # pragma: no cover - sync tests only
        raise NotImplementedError


class TestWithTimeout:
    """The timeout bounds generate and a stream's first chunk; stall bounds the gaps."""

    @pytest.mark.anyio
    async def test_generate_times_out_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """A generate that never answers is cancelled after the timeout."""

        class Hung:
            async def generate(self) -> str:
                await anyio.Event().wait()
                return "never"

        timeout = seawall.Timeout(3.0, clock=clock)
        wrapped = seawall.apply_middleware(Hung(), seawall.with_timeout(timeout))
        with pytest.raises(seawall.CallTimeoutError):
            await wrapped.generate()
        assert clock.now() == 3.0

    @pytest.mark.anyio
    async def test_stream_stall_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """A stream that stops sending raises CallTimeoutError after *stall* seconds."""
        stuck = anyio.Event()

        class Stalling:
            def generate(self) -> str:  # pragma: no cover - not called
                return ""

            async def stream(self) -> AsyncIterator[str]:
                yield "a"
                await clock.asleep(1.5)  # slow, within the stall limit
                yield "b"
                await stuck.wait()
                yield "never"

        timeout = seawall.Timeout(10.0, clock=clock)
        wrapped = seawall.apply_middleware(Stalling(), seawall.with_timeout(timeout, stall=2.0))
        chunks, error = await acollect(wrapped.stream())
        assert chunks == ["a", "b"]
        assert isinstance(error, seawall.CallTimeoutError)
        assert error.timeout == 2.0
        assert clock.now() == 3.5

    @pytest.mark.anyio
    async def test_first_chunk_is_bounded_by_the_timeout(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """The time to first chunk is bounded by the timeout's seconds, not by stall."""

        class SlowStart:
            def generate(self) -> str:  # pragma: no cover - not called
                return ""

            async def stream(self) -> AsyncIterator[str]:
                await anyio.Event().wait()
                yield "never"

        timeout = seawall.Timeout(4.0, clock=clock)
        wrapped = seawall.apply_middleware(SlowStart(), seawall.with_timeout(timeout, stall=1.0))
        chunks, error = await acollect(wrapped.stream())
        assert (chunks, type(error)) == ([], seawall.CallTimeoutError)
        assert clock.now() == 4.0

    @pytest.mark.anyio
    async def test_consumer_time_does_not_count(self, anyio_backend: str, clock: FakeClock) -> None:
        """Time the consumer spends between chunks is not a stall."""
        model = AsyncModel(streams=[Script(["a", "b"])])
        timeout = seawall.Timeout(1.0, clock=clock)
        wrapped = seawall.apply_middleware(model, seawall.with_timeout(timeout, stall=1.0))
        received = []
        async for chunk in wrapped.stream("x"):
            received.append(chunk)
            await clock.asleep(5.0)
        assert received == ["a", "b"]

    def test_generate_times_out_sync(self) -> None:
        """A sync generate blocked past the timeout is abandoned with CallTimeoutError."""
        release = threading.Event()
        clock = FakeClock()

        class Blocked:
            def generate(self) -> str:
                clock.sleep(2.0)  # slow in virtual time: passes the deadline
                release.wait(10)
                return "late"

        timeout = seawall.Timeout(1.0, clock=clock)
        wrapped = seawall.apply_middleware(Blocked(), seawall.with_timeout(timeout))
        try:
            with pytest.raises(seawall.CallTimeoutError):
                wrapped.generate()
        finally:
            release.set()
            timeout.close()

    def test_stream_stall_sync(self) -> None:
        """A sync stream's stalled read is abandoned with CallTimeoutError."""
        clock = GateClock()
        release = threading.Event()

        class Stalling:
            def generate(self) -> str:  # pragma: no cover - not called
                return ""

            def stream(self) -> Iterator[str]:
                yield "a"
                yield "b"
                release.wait(10)
                yield "late"

        timeout = seawall.Timeout(1.0, clock=clock)
        wrapped = seawall.apply_middleware(Stalling(), seawall.with_timeout(timeout, stall=1.0))
        stream = wrapped.stream()
        try:
            assert [next(stream), next(stream)] == ["a", "b"]
            clock.gate.set()  # every pending alarm fires: the stalled read times out
            with pytest.raises(seawall.CallTimeoutError):
                next(stream)
        finally:
            release.set()
            clock.gate.set()
            timeout.close()


# -- with_bulkhead -----------------------------------------------------------------------


class TestWithBulkhead:
    """The bulkhead bounds concurrent calls; a stream holds its slot until it ends."""

    def test_stream_holds_its_slot_sync(self, clock: FakeClock) -> None:
        """While a stream is open, another call is refused; after it ends, admitted."""
        bulkhead = seawall.Bulkhead(1, clock=clock)
        model = SyncModel(["ok"], streams=[Script(["a", "b"])])
        wrapped = seawall.apply_middleware(model, seawall.with_bulkhead(bulkhead))
        stream = wrapped.stream("x")
        assert next(stream) == "a"
        with pytest.raises(seawall.BulkheadFullError):
            wrapped.generate("x")
        assert list(stream) == ["b"]
        assert wrapped.generate("x") == "ok"

    @pytest.mark.anyio
    async def test_stream_holds_its_slot_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """The async stream holds its slot, and frees it when closed early."""
        bulkhead = seawall.Bulkhead(1, clock=clock)
        model = AsyncModel(["ok"], streams=[Script(["a", "b"])])
        wrapped = seawall.apply_middleware(model, seawall.with_bulkhead(bulkhead))
        stream = wrapped.stream("x")
        assert await anext(stream) == "a"
        with pytest.raises(seawall.BulkheadFullError):
            await wrapped.generate("x")
        await stream.aclose()
        assert await wrapped.generate("x") == "ok"


# -- with_fallback -----------------------------------------------------------------------


class TestWithFallback:
    """The fallback answers failed generate calls; streams pass through."""

    def test_generate_falls_back_sync(self) -> None:
        """A failing sync generate returns the fallback value."""
        wrapped = seawall.apply_middleware(
            SyncModel([FlakyError()]), seawall.with_fallback(seawall.Fallback("sorry"))
        )
        assert wrapped.generate("x") == "sorry"

    @pytest.mark.anyio
    async def test_generate_falls_back_async(self, anyio_backend: str) -> None:
        """A failing async generate returns the fallback value."""
        wrapped = seawall.apply_middleware(
            AsyncModel([FlakyError()]), seawall.with_fallback(seawall.Fallback("sorry"))
        )
        assert await wrapped.generate("x") == "sorry"

    @pytest.mark.anyio
    async def test_stream_passes_through(self, anyio_backend: str) -> None:
        """A failing stream is not replaced."""
        error = FlakyError()
        wrapped = seawall.apply_middleware(
            AsyncModel(streams=[Script(["a"], error)]),
            seawall.with_fallback(seawall.Fallback("sorry")),
        )
        assert await acollect(wrapped.stream("x")) == (["a"], error)

    def test_sync_stream_passes_through(self) -> None:
        """A failing sync stream is not replaced either."""
        error = FlakyError()
        wrapped = seawall.apply_middleware(
            SyncModel(streams=[Script(["a"], error)]),
            seawall.with_fallback(seawall.Fallback("sorry")),
        )
        assert collect(wrapped.stream("x")) == (["a"], error)


# -- all together ------------------------------------------------------------------------


class TestFullStack:
    """Every option at once, on a stream and on generate."""

    @pytest.mark.anyio
    async def test_every_option_async(self, anyio_backend: str, clock: FakeClock) -> None:
        """A full stack streams after a retried failure and answers generate."""
        model = AsyncModel(["ok"], streams=[Script(error=FlakyError()), Script(["a", "b"])])
        wrapped = seawall.apply_middleware(
            model,
            seawall.as_llm_middleware(
                seawall.with_timeout(seawall.Timeout(5, clock=clock), stall=1),
                seawall.with_circuit_breaker(seawall.CircuitBreaker(clock=clock)),
                seawall.with_hedge(seawall.Hedger(delay=10, max_hedges=0, clock=clock)),
                seawall.with_retry(retrier(clock)),
                seawall.with_bulkhead(seawall.Bulkhead(2, clock=clock)),
                seawall.with_rate_limit(seawall.RateLimiter(rate=1, burst=2, clock=clock)),
                seawall.with_fallback(seawall.Fallback("fallback")),
            ),
        )
        assert await acollect(wrapped.stream("x")) == (["a", "b"], None)
        assert await wrapped.generate("x") == "ok"

    def test_every_option_sync(self, clock: FakeClock) -> None:
        """The same stack (minus timeout and hedge threads) on a sync model."""
        model = SyncModel(["ok"], streams=[Script(error=FlakyError()), Script(["a", "b"])])
        wrapped = seawall.apply_middleware(
            model,
            seawall.with_circuit_breaker(seawall.CircuitBreaker(clock=clock)),
            seawall.with_retry(retrier(clock)),
            seawall.with_bulkhead(seawall.Bulkhead(2, clock=clock)),
            seawall.with_rate_limit(seawall.RateLimiter(rate=1, burst=2, clock=clock)),
            seawall.with_fallback(seawall.Fallback("fallback")),
        )
        assert collect(wrapped.stream("x")) == (["a", "b"], None)
        assert wrapped.generate("x") == "ok"


# -- invalid arguments -------------------------------------------------------------------


class TestInvalidArguments:
    """Bad arguments raise errors that name them."""

    @pytest.mark.parametrize(
        ("option", "param"),
        [
            (seawall.with_circuit_breaker, "breaker"),
            (seawall.with_retry, "retrier"),
            (seawall.with_rate_limit, "limiter"),
            (seawall.with_hedge, "hedger"),
            (seawall.with_timeout, "timeout"),
            (seawall.with_bulkhead, "bulkhead"),
            (seawall.with_fallback, "fallback"),
        ],
    )
    def test_wrong_policy_type(self, option: Any, param: str) -> None:
        """Each option checks its policy's type."""
        with pytest.raises(TypeError, match=f"^{param} must be"):
            option(object())

    def test_llm_limiter_needs_estimate(self) -> None:
        """An LLMRateLimiter without estimate is refused."""
        limiter = seawall.LLMRateLimiter(60, 1000)
        with pytest.raises(TypeError, match=r"estimate is required"):
            seawall.with_rate_limit(limiter)
        with pytest.raises(TypeError, match=r"estimate must be callable"):
            seawall.with_rate_limit(limiter, estimate=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"usage must be callable"):
            seawall.with_rate_limit(limiter, estimate=len, usage=5)  # type: ignore[arg-type]

    def test_plain_limiter_takes_no_estimate(self) -> None:
        """estimate and usage are for LLM limiters only."""
        limiter = seawall.RateLimiter(rate=1, burst=1)
        with pytest.raises(TypeError, match=r"^estimate applies"):
            seawall.with_rate_limit(limiter, estimate=len)
        with pytest.raises(TypeError, match=r"^usage applies"):
            seawall.with_rate_limit(limiter, usage=len)

    def test_stall_must_be_positive(self) -> None:
        """stall is checked and named."""
        timeout = seawall.Timeout(1)
        with pytest.raises(ValueError, match=r"^stall must be > 0"):
            seawall.with_timeout(timeout, stall=0)
        with pytest.raises(TypeError, match=r"^stall must be"):
            seawall.with_timeout(timeout, stall="1")  # type: ignore[arg-type]

    def test_model_needs_generate(self, clock: FakeClock) -> None:
        """A model without a callable generate (or with a non-callable stream) is refused."""
        with pytest.raises(TypeError, match=r"^model must have a callable generate"):
            seawall.apply_middleware(object())  # type: ignore[type-var]
        with pytest.raises(TypeError, match=r"^model must have a callable generate"):
            seawall.with_retry(retrier(clock))(object())  # type: ignore[type-var]

        class BadStream:
            stream = 3

            def generate(self) -> None: ...

        with pytest.raises(TypeError, match=r"^model.stream must be callable"):
            seawall.apply_middleware(BadStream())

    def test_middlewares_must_be_callable(self) -> None:
        """Non-callable middlewares and options are named by position."""
        with pytest.raises(TypeError, match=r"^middlewares\[1\] must be callable"):
            seawall.apply_middleware(GenerateOnly(), lambda m: m, 3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^options\[0\] must be callable"):
            seawall.as_llm_middleware("x")  # type: ignore[arg-type]


class _ClosingStream:
    """An SDK-like stream whose aclose awaits before it releases its connection."""

    def __init__(self, log: list[str], name: str, *, slow: bool) -> None:
        self.log, self.name, self.slow, self.sent = log, name, slow, False

    def __aiter__(self) -> _ClosingStream:
        return self

    async def __anext__(self) -> str:
        if self.slow:
            await anyio.sleep_forever()
        if self.sent:
            raise StopAsyncIteration
        self.sent = True
        return f"chunk from {self.name}"

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()  # like awaiting response.aclose()
        self.log.append(f"closed {self.name}")


@pytest.mark.anyio
class TestStreamsCloseUnderCancellation:
    """Streams are closed completely even when the close runs in a cancelled scope."""

    async def test_first_chunk_timeout_closes_the_stream(self, clock: FakeClock) -> None:
        """A stream whose first chunk times out still finishes its awaiting aclose."""
        log: list[str] = []

        class Model:
            async def generate(self) -> str:
                return "unused"

            async def stream(self) -> _ClosingStream:
                return _ClosingStream(log, "only", slow=True)

        model = seawall.apply_middleware(
            Model(), seawall.with_timeout(seawall.Timeout(5, clock=clock))
        )
        with pytest.raises(seawall.CallTimeoutError):
            async for _ in await model.stream():
                pass
        assert log == ["closed only"]

    async def test_losing_hedged_stream_is_closed(self, clock: FakeClock) -> None:
        """The stream that lost the race to its first chunk is closed completely."""
        log: list[str] = []
        opened: list[int] = []

        class Model:
            async def generate(self) -> str:
                return "unused"

            async def stream(self) -> _ClosingStream:
                opened.append(len(opened))
                return _ClosingStream(log, str(opened[-1]), slow=opened[-1] == 0)

        hedger = seawall.Hedger(delay=1, clock=clock)
        model = seawall.apply_middleware(Model(), seawall.with_hedge(hedger))
        chunks = [chunk async for chunk in await model.stream()]
        assert chunks == ["chunk from 1"]
        assert sorted(log) == ["closed 0", "closed 1"]
