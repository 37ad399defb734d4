"""Model calls as hook events, with the GenAI attributes the model reports.

`with_telemetry` wraps a model so that each ``generate`` or stream is reported as a
`ModelCallStarted` / `ModelCallEnded` pair, the end event carrying what the response
told: the model that answered, token usage, finish reasons, and for streams the time
to the first chunk.

Everything is read by duck typing: no provider SDK is imported. A response (or a
chunk) may be an object or a dict; the shapes understood are OpenAI's
(``ChatCompletion``, ``ChatCompletionChunk``, Responses' ``usage.input_tokens``) and
Anthropic's (``Message``, and the ``message_start`` / ``message_delta`` stream events).
Whatever cannot be read is reported as ``None``, and reading never breaks the call.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

from seawall._clock import resolve_clock
from seawall._hooks import Event, emit, normalize_hooks
from seawall._observe import outcome_of
from seawall._validate import check_name

from ._model import Args, Kwargs, M, _ModelProxy, check_model, wrap_model
from ._streams import aclose_iterator, close_iterator


if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Awaitable,
        Callable,
        Generator,
        Iterable,
        Iterator,
    )

    from seawall._clock import Clock
    from seawall._hooks import Hook, Hooks
    from seawall._observe import Outcome


__all__ = ("ModelCallEnded", "ModelCallStarted", "with_telemetry")

T = TypeVar("T")

DEFAULT_NAME: Final = "llm"
DEFAULT_OPERATION: Final = "chat"

# Top-level module of an SDK's types -> the well-known value of gen_ai.provider.name.
_PROVIDERS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
}
_GOOGLE_GENAI: Final = "gcp.gen_ai"


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
        provider: The provider: ``started.provider`` when that is known, else the one
            recognised from the response's (or first chunk's) type, else ``None``.

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
    provider: str | None = None


def with_telemetry(
    *,
    hooks: Iterable[Hook],
    name: str = DEFAULT_NAME,
    operation: str = DEFAULT_OPERATION,
    provider: str | None = None,
    clock: Clock | None = None,
) -> TelemetryMiddleware:
    """Report every model call that passes through as a pair of events to *hooks*.

    Each ``generate`` (sync or async) and each stream (every form `seawall.Model`
    allows) is reported as a `ModelCallStarted`, then exactly one `ModelCallEnded`,
    whatever happens: a response, an exception, a cancellation, or a stream the
    consumer closes early (`seawall.Outcome.CANCELLED`). A stream starts when the
    consumer asks for its first chunk and ends when it is exhausted, raises or is
    closed; a stream that is never iterated is not a call and reports nothing.

    **Where it goes decides what it sees.** As with every ``with_*`` option, the last
    one listed is the outermost::

        seawall.as_llm_middleware(
            seawall.with_telemetry(hooks=(hook,)),  # innermost: every real attempt
            seawall.with_circuit_breaker(breaker),
            seawall.with_retry(retrier),
            seawall.with_rate_limit(limiter),
        )

        request ──► rate limit ──► retry ──► breaker ──► telemetry ──► model
                                   (re-runs what is inside)

    Listed first (innermost), it reports each attempt that really reaches the model:
    a request retried twice is three event pairs, and a call the breaker rejects is
    none. Listed last (outermost), it reports one pair per request as the caller sees
    it: the duration includes the waits of the policies inside, and the outcome is
    the final one (a `seawall.CircuitOpenError` is a ``REJECTED`` call). Use two, with
    different names, to see both.

    What the events carry, read by duck typing (no SDK is imported):

    * ``request_model``: the ``model=`` keyword argument of the call when it is a
      str, else the wrapped model's ``model`` or ``model_name`` attribute when that
      is a str.
    * ``provider``: *provider*, else recognised from the module of the wrapped
      model's type: ``openai`` → ``"openai"``, ``anthropic`` → ``"anthropic"``,
      ``mistralai`` → ``"mistral_ai"``, ``cohere`` → ``"cohere"``, ``groq`` →
      ``"groq"``, ``google.genai`` → ``"gcp.gen_ai"``. When that is unknown at
      start, the end event's ``provider`` is recognised from the response's type
      (a model adapter usually returns the SDK's own objects). Pass *provider* for
      other or proxied providers (Azure OpenAI speaks through the ``openai`` SDK but
      is ``"azure.ai.openai"``).
    * From the response, as attributes or dict keys: ``model``, ``id``; usage as
      ``usage.prompt_tokens`` / ``usage.completion_tokens`` (OpenAI chat) or
      ``usage.input_tokens`` / ``usage.output_tokens`` (Anthropic, where the input
      count adds ``cache_creation_input_tokens`` and ``cache_read_input_tokens``, as
      the GenAI conventions count them; OpenAI Responses); finish reasons from
      ``choices[*].finish_reason`` or ``stop_reason``.
    * From a stream, the same fields gathered from the chunks as they pass: OpenAI's
      chunks (``model``, ``id``, each choice's ``finish_reason``, and the last
      chunk's ``usage`` with ``stream_options={"include_usage": True}``) and
      Anthropic's events (``message_start`` for the message's id, model and input
      usage, ``message_delta`` for the stop reason and output usage), plus
      ``time_to_first_chunk`` on *clock*. A stream that fails or is closed early
      reports what its chunks told until then.

    A field that cannot be read is ``None``; reading never changes what the call
    returns or raises, and neither does a hook that raises. The model's own arguments,
    results and chunks are never put in an event.

    Args:
        hooks: The hooks that receive the events, such as a
            `seawall.otel.OpenTelemetryHook`, a `seawall.LoggingHook` or a
            `seawall.testing.RecordingHook`. With none (an empty iterable), the
            middleware returns each model unchanged and costs nothing.
        name: The name in the events (default ``"llm"``); a non-empty str.
        operation: The GenAI operation name (default ``"chat"``), e.g.
            ``"text_completion"`` or ``"generate_content"``; a non-empty str.
        provider: The provider name (``gen_ai.provider.name``), or ``None``
            (default) to recognise it as described above; a non-empty str.
        clock: The clock that times the calls (default: the monotonic system clock).

    Returns:
        A middleware for `seawall.apply_middleware` or `seawall.as_llm_middleware`.

    Raises:
        TypeError: *hooks* is missing, a single callable or holds a non-callable;
            *name*, *operation* or *provider* is not a str; *clock* is not a clock.
            The message names the parameter.
        ValueError: *name*, *operation* or *provider* is empty.

    .. versionadded:: 0.1.0
    """
    frozen = normalize_hooks(hooks)
    check_name(name)
    _check_label("operation", operation)
    if provider is not None:
        _check_label("provider", provider)
    settings = _Settings(frozen, name, operation, provider, resolve_clock(clock))
    return TelemetryMiddleware(settings)


def _check_label(param: str, value: object) -> None:
    if not isinstance(value, str):
        msg = f"{param} must be a str, got {type(value).__name__}"
        raise TypeError(msg)
    if not value:
        msg = f"{param} must not be empty"
        raise ValueError(msg)


@final
class _Settings:
    """What `with_telemetry` was given, validated; shared by every model it wraps."""

    __slots__ = ("clock", "hooks", "name", "operation", "provider")

    def __init__(
        self, hooks: Hooks, name: str, operation: str, provider: str | None, clock: Clock
    ) -> None:
        self.hooks = hooks
        self.name = name
        self.operation = operation
        self.provider = provider
        self.clock = clock


@final
class TelemetryMiddleware:
    """The middleware `with_telemetry` returns: wraps a model in a telemetry layer.

    Unlike the policy options, whose layer is the same for every model, it builds one
    layer per model: the layer reads the wrapped model's type and attributes.
    """

    __slots__ = ("_settings",)

    def __init__(self, settings: _Settings) -> None:
        self._settings = settings

    def __call__(self, model: M, /) -> M:
        """Return *model* reported call by call (or *model* itself, without hooks)."""
        if not self._settings.hooks:
            check_model("model", model)
            return model
        return wrap_model(model, _TelemetryLayer(self._settings, model))

    def __repr__(self) -> str:
        return _describe(self._settings)


def _describe(settings: _Settings) -> str:
    return f"with_telemetry({settings.name!r}, hooks={len(settings.hooks)})"


@final
class _TelemetryLayer:
    """The `seawall._compose._model.Layer` of one model seen by `with_telemetry`."""

    __slots__ = ("_model", "_provider", "_settings")

    def __init__(self, settings: _Settings, model: object) -> None:
        self._settings = settings
        # The model under any other seawall layers: its type and attributes are the
        # user's (or the SDK's), not the proxy's.
        while isinstance(model, _ModelProxy):
            model = model._seawall_inner  # noqa: SLF001 -- the proxy of this package
        self._model = model
        self._provider = settings.provider or provider_of(model)

    def describe(self) -> str:
        return _describe(self._settings)

    def _start(self, kwargs: Kwargs, *, stream: bool) -> ModelCallStarted:
        settings = self._settings
        started = ModelCallStarted(
            settings.name,
            settings.operation,
            self._provider,
            self._request_model(kwargs),
            stream,
        )
        emit(settings.hooks, started)
        return started

    def _request_model(self, kwargs: Kwargs) -> str | None:
        requested = _text(kwargs.get("model"))
        if requested is None:
            requested = _text(_field(self._model, "model"))
        if requested is None:
            requested = _text(_field(self._model, "model_name"))
        return requested

    def _end(
        self,
        started: ModelCallStarted,
        began: float,
        exc: BaseException | None,
        gathered: _Gathered | None,
    ) -> None:
        settings = self._settings
        duration = max(0.0, settings.clock.now() - began)
        outcome = outcome_of(exc)
        if gathered is None:
            ended = ModelCallEnded(
                settings.name, started, outcome, exc, duration, provider=started.provider
            )
        else:
            ended = ModelCallEnded(
                settings.name,
                started,
                outcome,
                exc,
                duration,
                response_model=gathered.model,
                response_id=gathered.id,
                input_tokens=gathered.input_tokens,
                output_tokens=gathered.output_tokens,
                finish_reasons=gathered.finish_reasons(),
                time_to_first_chunk=gathered.first_chunk,
                provider=started.provider or gathered.provider,
            )
        emit(settings.hooks, ended)

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        started = self._start(kwargs, stream=False)
        began = self._settings.clock.now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # reported, then re-raised unchanged
            self._end(started, began, exc, None)
            raise
        self._end(started, began, None, _Gathered.of_response(result))
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        started = self._start(kwargs, stream=False)
        began = self._settings.clock.now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:  # reported, then re-raised unchanged
            self._end(started, began, exc, None)
            raise
        self._end(started, began, None, _Gathered.of_response(result))
        return result

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        started = self._start(kwargs, stream=True)
        clock = self._settings.clock
        began = clock.now()
        gathered = _Gathered()
        try:
            iterator = iter(open_stream(*args, **kwargs))
            try:
                for chunk in iterator:
                    if gathered.first_chunk is None:
                        gathered.first(chunk, clock.now() - began)
                    gathered.chunk(chunk)
                    yield chunk
            finally:
                close_iterator(iterator)
        except BaseException as exc:  # GeneratorExit included: closed early
            self._end(started, began, exc, gathered)
            raise
        self._end(started, began, None, gathered)

    async def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        started = self._start(kwargs, stream=True)
        clock = self._settings.clock
        began = clock.now()
        gathered = _Gathered()
        try:
            iterator = await open_stream(*args, **kwargs)
            try:
                async for chunk in iterator:
                    if gathered.first_chunk is None:
                        gathered.first(chunk, clock.now() - began)
                    gathered.chunk(chunk)
                    yield chunk
            finally:
                await aclose_iterator(iterator)
        except BaseException as exc:  # GeneratorExit included: closed early
            self._end(started, began, exc, gathered)
            raise
        self._end(started, began, None, gathered)


# -- reading responses -------------------------------------------------------------------


@final
class _Gathered:
    """The response fields of one call, read from its response or from its chunks.

    Later values overwrite earlier ones: a stream's last usage report is its total.
    """

    __slots__ = (
        "first_chunk",
        "id",
        "input_tokens",
        "model",
        "output_tokens",
        "provider",
        "reasons",
    )

    def __init__(self) -> None:
        self.model: str | None = None
        self.id: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.reasons: dict[int, str] = {}
        self.provider: str | None = None
        self.first_chunk: float | None = None

    def __repr__(self) -> str:
        return f"_Gathered(model={self.model!r}, id={self.id!r})"

    @classmethod
    def of_response(cls, response: object) -> _Gathered:
        """Read a whole response (the result of ``generate``)."""
        gathered = cls()
        gathered.provider = provider_of(response)
        with suppress(Exception):  # an odd response never breaks the call
            gathered.response(response)
        return gathered

    def first(self, chunk: object, elapsed: float) -> None:
        """Note the first chunk of a stream, *elapsed* seconds after it started."""
        self.first_chunk = max(0.0, elapsed)
        self.provider = provider_of(chunk)

    def chunk(self, chunk: object) -> None:
        """Read one chunk of a stream."""
        with suppress(Exception):  # an odd chunk never breaks the stream
            self._chunk(chunk)

    def finish_reasons(self) -> tuple[str, ...]:
        """Return the finish reasons, in the order of their choices."""
        reasons = self.reasons
        return tuple(reasons[index] for index in sorted(reasons))

    def response(self, response: object) -> None:
        """Read a response object or dict: OpenAI's or Anthropic's shape."""
        self.model = _text(_field(response, "model")) or self.model
        self.id = _text(_field(response, "id")) or self.id
        self.usage(_field(response, "usage"))
        self.choices(_field(response, "choices"))
        stop_reason = _text(_field(response, "stop_reason"))
        if stop_reason is not None:
            self.reasons[0] = stop_reason

    def _chunk(self, chunk: object) -> None:
        kind = _field(chunk, "type")
        if kind == "message_delta":  # Anthropic: the stop reason and the output usage
            stop_reason = _text(_field(_field(chunk, "delta"), "stop_reason"))
            if stop_reason is not None:
                self.reasons[0] = stop_reason
            self.usage(_field(chunk, "usage"))
            return
        if isinstance(kind, str) and kind.startswith("message_"):
            # Anthropic's message_start, and the SDK helper's message_stop, carry a
            # snapshot of the whole message.
            message = _field(chunk, "message")
            if message is not None:
                self.response(message)
            return
        # OpenAI's chunks: a response whose choices come one delta at a time.
        self.response(chunk)

    def usage(self, usage: object) -> None:
        """Read a usage report; what it does not say is left as it was."""
        if usage is None:
            return
        prompt = _count(_field(usage, "prompt_tokens"))
        if prompt is None:
            prompt = _count(_field(usage, "input_tokens"))
            if prompt is not None:
                # Anthropic counts cached input apart; the total includes it.
                for cached in ("cache_creation_input_tokens", "cache_read_input_tokens"):
                    prompt += _count(_field(usage, cached)) or 0
        if prompt is not None:
            self.input_tokens = prompt
        completion = _count(_field(usage, "completion_tokens"))
        if completion is None:
            completion = _count(_field(usage, "output_tokens"))
        if completion is not None:
            self.output_tokens = completion

    def choices(self, choices: object) -> None:
        """Read ``choices[*].finish_reason``, keyed by each choice's ``index``."""
        # Only a real sequence: iterating anything else might consume it.
        if not isinstance(choices, Sequence) or isinstance(choices, (str, bytes)):
            return
        for position, choice in enumerate(choices):
            reason = _text(_field(choice, "finish_reason"))
            if reason is not None:
                index = _count(_field(choice, "index"))
                self.reasons[position if index is None else index] = reason


def provider_of(obj: object) -> str | None:
    """Return the GenAI provider of *obj*'s type, from its top-level module, or ``None``."""
    module = getattr(type(obj), "__module__", None)
    if not isinstance(module, str):
        return None
    top, _, rest = module.partition(".")
    if top == "google":
        return _GOOGLE_GENAI if rest == "genai" or rest.startswith("genai.") else None
    return _PROVIDERS.get(top)


def _field(obj: object, key: str) -> object:
    """Return *obj*'s attribute or item *key*, or ``None`` if it cannot be read."""
    if obj is None:
        return None
    try:
        if isinstance(obj, Mapping):
            return obj.get(key)
        return getattr(obj, key, None)
    except Exception:  # noqa: BLE001 -- a property that raises is a field we cannot read
        return None


def _text(value: object) -> str | None:
    """Return *value* as a non-empty str (a str enum gives its value), else ``None``."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str) and value:
        return value
    return None


def _count(value: object) -> int | None:
    """Return *value* if it is a token count (an int >= 0, not a bool), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
