"""Hedged async streams on asyncio and trio: the race to the first chunk."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from seawall import HedgeLaunched, Hedger, HedgeReason
from seawall.testing import FakeClock, RecordingHook


pytestmark = pytest.mark.anyio


class Streams:
    """A stream factory: the n-th stream waits ``first[n]`` virtual seconds, then yields.

    It yields ``(n, 0)``, ``(n, 1)``, ``(n, 2)`` (0.01 s apart), or raises
    ``errors[n]`` before its first chunk; ``closed`` records each stream's ``finally``.
    """

    def __init__(
        self, clock: FakeClock, first: list[float], errors: dict[int, Exception] | None = None
    ) -> None:
        self.clock = clock
        self.first = first
        self.errors = errors or {}
        self.started: list[tuple[int, float]] = []
        self.closed: list[int] = []
        self.exits: dict[int, str] = {}

    def __call__(self, *args: Any) -> AsyncIterator[tuple[int, int]]:
        n = len(self.started)
        self.started.append((n, self.clock.now()))
        return self._stream(n)

    async def _stream(self, n: int) -> AsyncIterator[tuple[int, int]]:
        try:
            await self.clock.asleep(self.first[n])
            self._maybe_fail(n)
            for i in range(3):
                yield (n, i)
                await self.clock.asleep(0.01)
        except BaseException as exc:
            self.exits[n] = type(exc).__name__
            raise
        finally:
            self.closed.append(n)

    def _maybe_fail(self, n: int) -> None:
        if n in self.errors:
            raise self.errors[n]


@pytest.fixture
def hook() -> RecordingHook:
    """A fresh recording hook."""
    return RecordingHook()


@pytest.fixture
def hedger(clock: FakeClock, hook: RecordingHook) -> Hedger:
    """A hedger with a 0.2 s delay and one hedge, on virtual time."""
    return Hedger(delay=0.2, clock=clock, hooks=(hook,), name="llm")


async def collect(stream: AsyncIterator[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every chunk of *stream*."""
    return [chunk async for chunk in stream]


class TestStreamRace:
    """Which stream wins, and what happens to the others."""

    async def test_fast_first_chunk_is_not_hedged(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A stream yielding before the delay is delivered whole, without a hedge."""
        streams = Streams(clock, [0.1])
        assert await collect(hedger.astream(streams, "prompt")) == [(0, 0), (0, 1), (0, 2)]
        assert hook.of_type(HedgeLaunched) == []
        assert streams.closed == [0]

    async def test_slow_first_chunk_is_hedged_and_the_first_to_yield_wins(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """The hedge starts at 0.2 s, yields first, and the primary is closed before delivery."""
        streams = Streams(clock, [1.0, 0.1])
        seen: list[tuple[int, int]] = []
        async for chunk in hedger.astream(streams):
            if not seen:
                assert streams.closed == [0]  # closed before the first chunk arrived here
            seen.append(chunk)
        assert seen == [(1, 0), (1, 1), (1, 2)]
        assert streams.started == [(0, 0.0), (1, 0.2)]
        assert hook.of_type(HedgeLaunched) == [HedgeLaunched("llm", 1, HedgeReason.DELAY_ELAPSED)]
        assert streams.exits[0] in {"CancelledError", "Cancelled"}

    async def test_loser_that_yielded_late_is_closed(
        self, anyio_backend: str, clock: FakeClock
    ) -> None:
        """Two streams yielding at once: one wins, the other is closed with aclose."""
        hedger = Hedger(delay=0.2, clock=clock)
        streams = Streams(clock, [0.3, 0.1])  # both yield at t = 0.3
        chunks = await collect(hedger.astream(streams))
        winner = chunks[0][0]
        assert chunks == [(winner, 0), (winner, 1), (winner, 2)]
        assert sorted(streams.closed) == [0, 1]
        assert streams.exits[1 - winner] in {"GeneratorExit", "CancelledError", "Cancelled"}

    async def test_failure_before_first_chunk_triggers_a_hedge(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock, hook: RecordingHook
    ) -> None:
        """A retryable error before the first chunk starts the hedge at once."""
        streams = Streams(clock, [0.05, 0.05], {0: ConnectionError("reset")})
        assert await collect(hedger.astream(streams)) == [(1, 0), (1, 1), (1, 2)]
        assert streams.started[1] == (1, 0.05)
        assert hook.of_type(HedgeLaunched)[0].reason is HedgeReason.ATTEMPT_FAILED

    async def test_all_streams_fail(self, anyio_backend: str, clock: FakeClock) -> None:
        """Every stream failing before its first chunk raises the primary's exception."""
        hedger = Hedger(delay=0.2, clock=clock, name="llm")
        errors: dict[int, Exception] = {0: ConnectionError("a"), 1: ConnectionError("b")}
        with pytest.raises(ConnectionError, match="a") as info:
            await collect(hedger.astream(Streams(clock, [0.05, 0.05], errors)))
        assert info.value is errors[0]
        if sys.version_info >= (3, 11):
            assert len(info.value.__notes__) == 1

    async def test_empty_stream_wins(self, anyio_backend: str, hedger: Hedger) -> None:
        """A stream that ends without a chunk is a success with nothing to deliver."""

        async def empty() -> AsyncIterator[int]:
            return
            yield  # pragma: no cover

        assert [x async for x in hedger.astream(empty)] == []

    async def test_winner_is_closed_when_the_consumer_stops_early(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """Breaking out after one chunk closes the winning stream."""
        streams = Streams(clock, [0.1])
        stream = hedger.astream(streams)
        async for _ in stream:
            break
        await stream.aclose()
        assert streams.closed == [0]
        assert streams.exits[0] == "GeneratorExit"

    async def test_cancelled_consumer_closes_every_stream(
        self, anyio_backend: str, hedger: Hedger, clock: FakeClock
    ) -> None:
        """Cancelling the consumer during the race cancels and closes both streams."""
        streams = Streams(clock, [5.0, 5.0])
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect, hedger.astream(streams))
                await clock.asleep(0.5)
                scope.cancel()
        assert sorted(streams.closed) == [0, 1]


class TestStreamDecorator:
    """@hedger on async generator functions."""

    async def test_async_generator_function(self, anyio_backend: str, clock: FakeClock) -> None:
        """The decorated generator is hedged on its first chunk and stays an async generator."""
        hedger = Hedger(delay=0.2, clock=clock)
        calls: list[str] = []

        @hedger
        async def chat(prompt: str) -> AsyncIterator[str]:
            calls.append(prompt)
            n = len(calls)
            await clock.asleep(1.0 if n == 1 else 0.1)
            for word in ("a", "b"):
                yield f"{word}{n}"

        import inspect

        assert inspect.isasyncgenfunction(chat)
        assert [w async for w in chat("hi")] == ["a2", "b2"]
        assert calls == ["hi", "hi"]
        assert chat.__name__ == "chat"
