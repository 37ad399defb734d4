"""The example agent that the deploy image serves: ``seawall-serve agent:build_agent``.

A chat agent whose model call is a stub (it answers from the prompt, over no network),
holding its API key as a real provider client would. ``invoke`` answers once;
``stream`` yields the answer a word at a time.

The agent has no resilience code of its own. The server wraps it in the policies of the
``[resilience]`` tables of its config file (``--config /etc/seawall/config.toml`` in the
image; ``deploy/config.toml`` in the repository)::

    request ─▶ retry ─▶ circuit breaker ─▶ timeout ─▶ ChatAgent.invoke ─▶ the model

and reloads them when the file changes, without a restart. Wrapping the model call in a
breaker, retrier or timeout here as well would double them: each server attempt would
retry again, and two breakers would count the same failures. So let the provider's
errors propagate: the server's retrier retries the transient ones (timeouts, connection
errors, 408, 429, 5xx; see `seawall.is_retryable`), and its breaker opens on repeated
failures and answers 503 ``circuit_open`` with ``Retry-After``. Raise
`seawall_serving.InvalidInput` for bad input: a 422, never retried, and not a failure
for the breaker. What the server does not provide, such as a limiter for the provider's
quota (`seawall.LLMRateLimiter`), still belongs around the model call.

The API key comes from the file named by ``OPENAI_API_KEY_FILE`` (a mounted secret), or
from ``OPENAI_API_KEY``; without either (or with both) the factory fails, so a
misconfigured pod never becomes ready.

Replace `StubModel` with your provider's client: any object with ``generate`` and
``stream``, both async here.
"""

# ruff: noqa: INP001 -- a top-level module copied into the image, not part of a package

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import seawall_serving


__all__ = ("ChatAgent", "StubModel", "build_agent", "read_secret")


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Read the secret *name*: from the file that ``{name}_FILE`` names, or from ``$name``.

    The same rules as seawall-serving's config loader: one trailing newline of the
    file is dropped, and setting both variables is an error.

    Raises:
        ValueError: Both ``{name}`` and ``{name}_FILE`` are set.
    """
    env = os.environ if environ is None else environ
    path = env.get(f"{name}_FILE") or None
    value = env.get(name) or None
    if path is not None and value is not None:
        msg = f"both {name} and {name}_FILE are set; set only one"
        raise ValueError(msg)
    if path is None:
        return value
    text = Path(path).read_bytes().decode("utf-8")
    text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    return text or None


class StubModel:
    """Stands in for a provider client: answers from the last user message.

    It holds the API key as a real client would, and never sends it anywhere.
    """

    def __init__(self, api_key: str, model: str = "stub-1") -> None:
        self._api_key = api_key
        self.model = model

    def __repr__(self) -> str:  # never print the key
        return f"StubModel(model={self.model!r})"

    async def generate(self, messages: list[dict[str, Any]]) -> str:
        """One completion."""
        return f"You said: {_last_user_text(messages)}"

    async def stream(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        """Stream the same completion, a word at a time."""
        text = await self.generate(messages)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield word if i == len(words) - 1 else f"{word} "


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _messages(payload: Any) -> list[dict[str, Any]]:
    """``payload["messages"]``, checked: a 422 ``invalid_input`` otherwise."""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        detail = 'input must be {"messages": [{"role": ..., "content": ...}, ...]}'
        raise seawall_serving.InvalidInput(detail)
    return messages


class ChatAgent:
    """``invoke`` returns ``{"text": ...}``; ``stream`` yields ``{"delta": ...}`` events."""

    def __init__(self, model: Any) -> None:
        self.model = model

    async def invoke(self, input: Any) -> Any:  # noqa: A002 -- the wire format's name
        """Answer once."""
        return {"text": await self.model.generate(_messages(input))}

    async def stream(self, input: Any) -> AsyncIterator[Any]:  # noqa: A002
        """Stream the answer as it comes."""
        async for chunk in self.model.stream(_messages(input)):
            yield {"delta": chunk}


def build_agent(environ: Mapping[str, str] | None = None) -> ChatAgent:
    """Build the agent: the factory ``seawall-serve agent:build_agent`` calls with no arguments.

    Raises:
        ValueError: No API key is configured, or two are (the CLI reports it and exits
            with 2).
    """
    api_key = read_secret("OPENAI_API_KEY", environ)
    if api_key is None:
        msg = "set OPENAI_API_KEY_FILE (a mounted secret) or OPENAI_API_KEY"
        raise ValueError(msg)
    return ChatAgent(StubModel(api_key))
