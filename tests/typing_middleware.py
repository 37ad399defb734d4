"""Type-checked, never run: apply_middleware returns the model's own type.

mypy (strict) must accept every assignment below; the last block checks, through
``type: ignore`` comments that ``warn_unused_ignores`` keeps honest, that the wrapped
model's methods keep their signatures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import seawall


class ChatModel:
    """An async model with a stream."""

    async def generate(self, messages: list[str], *, temperature: float = 0.0) -> str:
        """Answer."""
        return messages[-1]

    async def stream(self, messages: list[str]) -> AsyncIterator[str]:
        """Answer in chunks."""
        yield messages[-1]


class SyncModel:
    """A sync model without a stream."""

    def generate(self, prompt: str) -> int:
        """Answer."""
        return len(prompt)


breaker = seawall.CircuitBreaker()
retrier = seawall.Retrier()
limiter = seawall.RateLimiter(rate=10, burst=10)

chat: ChatModel = seawall.apply_middleware(
    ChatModel(),
    seawall.as_llm_middleware(
        seawall.with_circuit_breaker(breaker),
        seawall.with_retry(retrier),
        seawall.with_rate_limit(limiter),
    ),
)
generate: Callable[..., Coroutine[Any, Any, str]] = chat.generate
plain: SyncModel = seawall.apply_middleware(SyncModel(), seawall.with_retry(retrier))
count: int = plain.generate("abc")
model_ok: seawall.Model = plain
pipeline = seawall.Pipeline(retrier, breaker)
via_pipeline: int = pipeline.call(plain.generate, "abc")


async def use() -> None:
    """The async methods keep their types."""
    text: str = await chat.generate(["hi"], temperature=0.5)
    async for chunk in chat.stream(["hi"]):
        piece: str = chunk
        del piece
    awaited: str = await pipeline.acall(chat.generate, ["hi"])
    del text, awaited


def wrong_uses() -> None:
    """Wrong arguments to the wrapped model are type errors."""
    plain.generate(1)  # type: ignore[arg-type]
    wrong: str = plain.generate("x")  # type: ignore[assignment]
    seawall.apply_middleware(object())  # type: ignore[type-var]
    pipeline.call(plain.generate, 1)  # type: ignore[arg-type]
    del wrong
