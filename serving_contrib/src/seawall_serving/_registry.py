"""Adapters by name, from the ``seawall_serving.adapters`` entry point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Final

from seawall_serving._config import Config
from seawall_serving._types import ServerAdapter


__all__ = ("available_adapters", "new")

GROUP: Final = "seawall_serving.adapters"


def available_adapters() -> list[str]:
    """Return the names `new` accepts: every adapter registered as an entry point.

    A name is listed even when its framework is not installed; `new` then says which
    extra to install.

    .. versionadded:: 0.1.0
    """
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def new(name: str = "stdlib", config: Config | None = None) -> ServerAdapter:
    """Create the adapter registered as *name* with *config*.

    Other packages add adapters by declaring an entry point in the group
    ``seawall_serving.adapters`` whose object is a class taking a `Config`.

    Raises:
        ValueError: No adapter has that name (the message lists those that exist).
        ImportError: The adapter's framework is missing (the message names the extra).

    .. versionadded:: 0.1.0
    """
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(available_adapters()) or "none"
        msg = f"no server adapter named {name!r}; available: {known}"
        raise ValueError(msg)
    try:
        factory = matches[0].load()
    except ImportError as exc:
        msg = (
            f"the {name!r} adapter needs its framework: "
            f"pip install 'seawall-serving[{name}]' ({exc})"
        )
        raise ImportError(msg) from exc
    adapter: ServerAdapter = factory(config)
    return adapter
