"""`Secret`: a value that never shows itself in a repr, a log line or an error."""

from __future__ import annotations

from typing import Any, Final, Generic, TypeVar, final, get_args


__all__ = ("MASK", "Secret")

T_co = TypeVar("T_co", covariant=True)

#: What a secret looks like wherever it is shown.
MASK: Final = "**********"


@final
class Secret(Generic[T_co]):
    """A setting's value that is masked wherever it is shown.

    ``repr`` and ``str`` are ``Secret('**********')``; `seawall_serving.config.dump`
    writes ``"**********"``; errors about a secret setting name the setting and the
    problem, never the value. Read the value with `get_secret_value`, at the point of
    use::

        @dataclass(frozen=True, kw_only=True)
        class Database:
            url: str
            password: Secret[str]

        connect(config.url, password=config.password.get_secret_value())

    Two secrets are equal when their values are, so a reload that changes only a
    secret is a change. ``Secret[T]`` also works as a field type of pydantic models.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_secret_value",)

    def __init__(self, value: T_co) -> None:
        self._secret_value = value

    def get_secret_value(self) -> T_co:
        """Return the value itself (keep it out of logs)."""
        return self._secret_value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return bool(self._secret_value == other._secret_value)

    def __hash__(self) -> int:
        return hash(self._secret_value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validate ``Secret[T]`` in pydantic models as ``T``, then wrap it."""
        from pydantic_core import core_schema  # noqa: PLC0415 -- optional dependency

        args = get_args(source)
        inner = handler.generate_schema(args[0] if args else Any)

        def unwrap(value: object) -> object:
            return value.get_secret_value() if isinstance(value, Secret) else value

        return core_schema.no_info_before_validator_function(
            unwrap,
            core_schema.no_info_after_validator_function(cls, inner),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _: MASK),
        )
