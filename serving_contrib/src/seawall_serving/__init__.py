"""seawall-serving: any agent as a production HTTP (or gRPC) service.

Register agents on an adapter, then serve::

    adapter = seawall_serving.new("stdlib", seawall_serving.Config(drain_timeout=20))
    adapter.register_agent("/v1/chat", agent)  # POST /v1/chat/invoke, /v1/chat/stream
    adapter.serve(":8080")

Adapters: ``stdlib`` and ``asgi`` need nothing beyond seawall; ``fastapi``, ``aiohttp``,
``flask`` and ``grpc`` are extras of the same names. All of them behave alike: one
`Service` does the routing, tenants, limits, errors and draining for each.
"""

from __future__ import annotations

from seawall_serving._config import Config as Config
from seawall_serving._logging import JsonFormatter as JsonFormatter
from seawall_serving._registry import available_adapters as available_adapters
from seawall_serving._registry import new as new
from seawall_serving._service import Service as Service
from seawall_serving._service import StreamCall as StreamCall
from seawall_serving._tenant import current_tenant as current_tenant
from seawall_serving._types import Agent as Agent
from seawall_serving._types import Handler as Handler
from seawall_serving._types import Request as Request
from seawall_serving._types import Response as Response
from seawall_serving._types import ServerAdapter as ServerAdapter
from seawall_serving._types import StreamingAgent as StreamingAgent
from seawall_serving._wire import PROBLEMS as PROBLEMS
from seawall_serving._wire import InvalidInput as InvalidInput
from seawall_serving._wire import Problem as Problem
from seawall_serving.adapters.asgi import AsgiAdapter as AsgiAdapter
from seawall_serving.adapters.stdlib import StdlibAdapter as StdlibAdapter


__all__ = (
    "PROBLEMS",
    "Agent",
    "AsgiAdapter",
    "Config",
    "Handler",
    "InvalidInput",
    "JsonFormatter",
    "Problem",
    "Request",
    "Response",
    "ServerAdapter",
    "Service",
    "StdlibAdapter",
    "StreamCall",
    "StreamingAgent",
    "available_adapters",
    "current_tenant",
    "new",
)


def _fixup_module_metadata() -> None:
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("seawall_serving._"):
            obj.__module__ = __name__


_fixup_module_metadata()
