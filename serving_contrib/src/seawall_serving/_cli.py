"""``seawall-serve module:agent``: serve an agent from the shell."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

from seawall_serving._base import parse_addr
from seawall_serving._logging import JsonFormatter
from seawall_serving._registry import available_adapters, new
from seawall_serving._settings import (
    ENV_PREFIX,
    Reloader,
    ResilientAgent,
    ServeSettings,
    build_config,
    tenant_limiter,
)
from seawall_serving._telemetry import configure_from_env
from seawall_serving.config import ConfigError, load, watch


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


#: Each flag and the setting it overrides, as (section, key) of `ServeSettings`.
FLAGS: Final = {
    "adapter": ("server", "adapter"),
    "addr": ("server", "addr"),
    "read_timeout": ("server", "read_timeout"),
    "write_timeout": ("server", "write_timeout"),
    "idle_timeout": ("server", "idle_timeout"),
    "drain_timeout": ("server", "drain_timeout"),
    "request_timeout": ("server", "request_timeout"),
    "max_body_size": ("server", "max_body_size"),
    "max_in_flight": ("server", "max_in_flight"),
    "path": ("agent", "path"),
    "default_tenant": ("tenants", "default"),
    "tenant_rate": ("tenants", "rate"),
    "tenant_burst": ("tenants", "burst"),
    "access_log": ("logging", "access_log"),
    "log_level": ("logging", "level"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seawall-serve",
        description=(
            "Serve an agent over HTTP (or gRPC) until SIGTERM or SIGINT, then drain. "
            "Settings come from defaults, then --config, then SEAWALL_* environment "
            "variables (SEAWALL_SERVER__ADDR, SEAWALL_TENANTS__RATE...), then these flags; "
            "a flag pins its setting, so a reload of the file does not change it."
        ),
        argument_default=argparse.SUPPRESS,  # a flag not given is not an override
    )
    parser.add_argument("agent", help="the agent, as module:attribute (or a factory of one)")
    parser.add_argument(
        "--config", metavar="FILE", help="settings file (.toml, .json, .yaml), reloaded on change"
    )
    parser.add_argument("--adapter", help="server adapter (default: stdlib)")
    parser.add_argument("--addr", help="host:port or :port (default: :8080)")
    parser.add_argument("--path", help="mount path (default: /v1/agent)")
    for name in ("read", "write", "idle", "drain", "request"):
        parser.add_argument(f"--{name}-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--max-body-size", type=int, metavar="BYTES")
    parser.add_argument("--max-in-flight", type=int, metavar="N")
    parser.add_argument("--default-tenant", help="tenant of requests without one")
    parser.add_argument("--tenant-rate", type=float, help="requests per second per tenant")
    parser.add_argument("--tenant-burst", type=float, help="burst per tenant")
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no per-request log lines",
    )
    parser.add_argument("--log-level", type=str.upper, help="logging level (default: INFO)")
    parser.add_argument(
        "--list-adapters", action="store_true", help="print the adapter names and exit"
    )
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Return the settings the flags on the command line set, as a nested mapping."""
    overrides: dict[str, dict[str, Any]] = {}
    for flag, (section, key) in FLAGS.items():
        if hasattr(args, flag):
            overrides.setdefault(section, {})[key] = getattr(args, flag)
    return overrides


def main(argv: Sequence[str] | None = None) -> int:  # noqa: C901, PLR0915 -- the CLI, in order
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
    root.setLevel(getattr(args, "log_level", "INFO"))
    # watchfiles logs every change it sees at INFO: noise, and a loop when the log file
    # sits in the watched directory.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    log = logging.getLogger("seawall_serving")
    overrides = overrides_from_args(args)
    path = getattr(args, "config", None)
    try:
        settings = load(ServeSettings, path, env_prefix=ENV_PREFIX, overrides=overrides)
    except ConfigError as exc:
        parser.error(str(exc))
    root.setLevel(settings.logging.level)
    try:
        parse_addr(settings.server.addr)
        limiter = tenant_limiter(settings.tenants)
        config = build_config(settings, limiter=limiter)
        agent = load_agent(args.agent)
        adapter = new(settings.server.adapter, config)
    except (ValueError, TypeError, ImportError) as exc:
        parser.error(str(exc))
    service = adapter.service
    hook = service.metrics_hook()
    resilient = ResilientAgent(agent, settings.resilience, (hook,), clock=config.clock)
    adapter.register_agent(settings.agent.path, resilient)
    reloader = Reloader(service, resilient, settings, limiter)

    def reloaded(new: ServeSettings) -> None:
        reloader.apply(new)
        if resilient.breaker is not None:
            hook.track(resilient.breaker)

    if resilient.breaker is not None:
        hook.track(resilient.breaker)
    watcher = None
    if path is not None:
        try:
            watcher = watch(
                ServeSettings,
                path,
                reloaded,
                on_reload=service.record_config_reload,
                env_prefix=ENV_PREFIX,
                overrides=overrides,
            )
        except ConfigError as exc:  # the file changed between the two reads
            parser.error(str(exc))
        service.record_config_reload(success=True)  # the first load
    flush = configure_from_env()
    try:
        adapter.serve(settings.server.addr)
    except OSError as exc:  # the address is taken, or not ours to bind
        log.error("cannot listen on %s: %s", settings.server.addr, exc)  # noqa: TRY400
        return 1
    finally:
        if watcher is not None:
            watcher.close()
        if flush is not None:
            flush()  # telemetry last, so the drain's spans are exported too
    log.info("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
