"""The agent `load.py` serves: ``trivial_agent:agent``, an async invoke returning its input."""

from __future__ import annotations

from typing import Any


class Trivial:
    """The least an agent can do, so the benchmark measures the server."""

    async def invoke(self, input: Any) -> Any:  # noqa: A002 -- the Agent protocol's name
        """Return *input* unchanged."""
        return input


agent = Trivial()
