"""``seawall-serve module:agent``: serve an agent from the shell."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import seawall

from seawall_serving._base import parse_addr
from seawall_serving._config import Config
from seawall_serving._logging import JsonFormatter
from seawall_serving._registry import available_adapters, new


__all__ = ("main",)

_MISSING = object()


def load_agent(spec: str) -> Any:
    """Import ``module:attribute``; an attribute without ``invoke`` is called to make one."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        msg = f"agent must be given as 'module:attribute', got {spec!r}"
        raise ValueError(msg)
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, _MISSING)
        if target is _MISSING:
            msg = f"module {module_name!r} has no attribute {attribute!r}"
            raise ValueError(msg)
    if not callable(getattr(target, "invoke", None)):
        if not callable(target):
            msg = f"{spec!r} is neither an agent (no invoke method) nor a factory of one"
            raise TypeError(msg)
        target = target()
        if not callable(getattr(target, "invoke", None)):
            msg = f"the factory {spec!r} returned {type(target).__name__}, which has no invoke"
            raise TypeError(msg)
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seawall-serve",
        description="Serve an agent over HTTP (or gRPC) until SIGTERM or SIGINT, then drain.",
    )
    parser.add_argument("agent", help="the agent, as module:attribute (or a factory of one)")
    parser.add_argument("--adapter", default="stdlib", help="server adapter (default: stdlib)")
    parser.add_argument("--addr", default=":8080", help="host:port or :port (default: :8080)")
    parser.add_argument("--path", default="/v1/agent", help="mount path (default: /v1/agent)")
    parser.add_argument("--read-timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--write-timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--idle-timeout", type=float, default=120.0, metavar="SECONDS")
    parser.add_argument("--drain-timeout", type=float, default=25.0, metavar="SECONDS")
    parser.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--max-body-size", type=int, default=1 << 20, metavar="BYTES")
    parser.add_argument("--max-in-flight", type=int, default=None, metavar="N")
    parser.add_argument("--default-tenant", default=None, help="tenant of requests without one")
    parser.add_argument(
        "--tenant-rate", type=float, default=None, help="requests per second per tenant"
    )
    parser.add_argument("--tenant-burst", type=float, default=None, help="burst per tenant")
    parser.add_argument("--no-access-log", action="store_true", help="no per-request log lines")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument(
        "--list-adapters", action="store_true", help="print the adapter names and exit"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    limiter = None
    if args.tenant_rate is not None:
        burst = args.tenant_burst if args.tenant_burst is not None else max(1.0, args.tenant_rate)
        limiter = seawall.KeyedRateLimiter(rate=args.tenant_rate, burst=burst, name="tenants")
    return Config(
        read_timeout=args.read_timeout,
        write_timeout=args.write_timeout,
        idle_timeout=args.idle_timeout,
        drain_timeout=args.drain_timeout,
        request_timeout=args.request_timeout,
        max_body_size=args.max_body_size,
        max_in_flight=args.max_in_flight,
        default_tenant=args.default_tenant,
        tenant_limiter=limiter,
        access_log=not args.no_access_log,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 after a clean drain)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--list-adapters" in argv:
        print("\n".join(available_adapters()))
        return 0
    parser = _parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(args.log_level.upper())
    try:
        parse_addr(args.addr)
        config = config_from_args(args)
        agent = load_agent(args.agent)
        adapter = new(args.adapter, config)
        adapter.register_agent(args.path, agent)
    except (ValueError, TypeError, ImportError) as exc:
        parser.error(str(exc))
    log = logging.getLogger("seawall_serving")
    try:
        adapter.serve(args.addr)
    except OSError as exc:  # the address is taken, or not ours to bind
        log.error("cannot listen on %s: %s", args.addr, exc)  # noqa: TRY400 -- no traceback
        return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
