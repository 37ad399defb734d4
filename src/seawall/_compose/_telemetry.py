"""Model calls as hook events, with the GenAI attributes the model reports.

`with_telemetry` (to be written) wraps a model so that each ``generate`` or stream is
reported as a `ModelCallStarted` / `ModelCallEnded` pair, the end event carrying what
the response told: the model that answered, token usage, finish reasons, and for
streams the time to the first chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from seawall._hooks import Event


if TYPE_CHECKING:
    from seawall._observe import Outcome


__all__ = ("ModelCallEnded", "ModelCallStarted")


@final
@dataclass(frozen=True, slots=True)
class ModelCallStarted(Event):
    """A model call started: one ``generate`` or one stream.

    Attributes:
        name: The telemetry middleware's name.
        operation: The GenAI operation, ``"chat"`` by default.
        provider: The provider (``gen_ai.provider.name``), or ``None`` when unknown.
        request_model: The model asked for (``gen_ai.request.model``), or ``None``.
        stream: Whether this is a stream, whose end is reported where the consumer
            finishes it (so a hook should not make anything current for it).

    .. versionadded:: 0.1.0
    """

    operation: str
    provider: str | None
    request_model: str | None
    stream: bool


@final
@dataclass(frozen=True, slots=True)
class ModelCallEnded(Event):
    """The model call *started* ended; always reported, exactly once.

    Every response field is ``None`` (or empty) when the response did not report it.

    Attributes:
        name: The telemetry middleware's name.
        started: The `ModelCallStarted` event of this call (the same object).
        outcome: How it ended.
        exception: What it raised, or ``None``.
        duration: Seconds from start to end, on the middleware's clock.
        response_model: The model that answered (``gen_ai.response.model``).
        response_id: The response's id (``gen_ai.response.id``).
        input_tokens: Prompt tokens (``gen_ai.usage.input_tokens``).
        output_tokens: Completion tokens (``gen_ai.usage.output_tokens``).
        finish_reasons: Why generation stopped, one per choice.
        time_to_first_chunk: For streams, seconds from start to the first chunk.

    .. versionadded:: 0.1.0
    """

    started: ModelCallStarted
    outcome: Outcome
    exception: BaseException | None
    duration: float
    response_model: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: tuple[str, ...] = ()
    time_to_first_chunk: float | None = None
