"""The deploy assets (``serving_contrib/deploy``) agree with what the server serves and reads.

No validator runs here (``nox -s deploy_check`` runs kubernetes-validate, hadolint,
check-jsonschema and yamllint): these tests read the Dockerfile, compose.yaml, the
Kubernetes manifests and config.toml, and check them against the real server: its
settings schema (`ServeSettings`), its CLI's parser, its routes, its drain and hot
reload, and the example agent they serve. The manifests are YAML, read with PyYAML;
without it those tests skip.

Each deployment's settings are worked out as the CLI works them out: config.toml, then
the ``SEAWALL_*`` variables that deployment sets, then its command line's flags.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

import seawall_serving
from cli_agents import CliServer, cli_command, start_cli
from seawall_serving import _cli
from seawall_serving._settings import (
    ENV_PREFIX,
    RESTART_ONLY,
    ServeSettings,
    build_config,
    tenant_limiter,
)
from seawall_serving.config import load


DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"
CONFIG_TOML = DEPLOY / "config.toml"
AGENT_MODULE = DEPLOY / "app" / "agent.py"
AGENT_SPEC = "agent:build_agent"
#: Where the image, compose and Kubernetes put config.toml, and what --config names.
CONFIG_PATH = "/etc/seawall/config.toml"

#: Seconds kept between the end of the drain and SIGKILL, on top of preStop + drain.
GRACE_MARGIN = 5

_OTLP_OPTIONS = (
    "ENDPOINT",
    "PROTOCOL",
    "HEADERS",
    "TIMEOUT",
    "COMPRESSION",
    "INSECURE",
    "CERTIFICATE",
    "CLIENT_CERTIFICATE",
    "CLIENT_KEY",
)

#: OpenTelemetry's standard environment variables (the SDK configuration spec): the
#: general ones, exporter selection, OTLP (all signals and each one), batch processors,
#: limits and metric export.
STANDARD_OTEL_ENV = frozenset(
    {
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_LOG_LEVEL",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        *(f"OTEL_EXPORTER_OTLP_{option}" for option in _OTLP_OPTIONS),
        *(
            f"OTEL_EXPORTER_OTLP_{signal_name}_{option}"
            for signal_name in ("TRACES", "METRICS", "LOGS")
            for option in _OTLP_OPTIONS
        ),
    }
)

# tomllib is 3.11+; pytest brings tomli on 3.10.
tomllib = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")


# -- reading the files ---------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    """Every document of the YAML file *path* (PyYAML, or the test skips)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the manifests")
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def yaml_document(path: Path) -> Any:
    (document,) = yaml_documents(path)
    return document


@functools.cache
def config() -> dict[str, Any]:
    """deploy/config.toml as TOML: the tables and values written in it."""
    with CONFIG_TOML.open("rb") as f:
        loaded: dict[str, Any] = tomllib.load(f)
    return loaded


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def setting(path: str) -> Any:
    return flatten(config())[path]


def schema_env_names(cls: type[Any] = ServeSettings, path: tuple[str, ...] = ()) -> dict[str, str]:
    """Every setting of the dataclass *cls*, as ``{dotted path: environment variable}``.

    Walks the fields of `ServeSettings` and its nested dataclasses (the sections):
    ``[resilience.breaker] max_failures`` is ``resilience.breaker.max_failures`` and
    ``SEAWALL_RESILIENCE__BREAKER__MAX_FAILURES``.
    """
    hints = typing.get_type_hints(cls)
    names: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        here = (*path, field.name)
        kind = hints[field.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            names.update(schema_env_names(kind, here))
        else:
            names[".".join(here)] = f"{ENV_PREFIX}_" + "__".join(p.upper() for p in here)
    return names


#: Every setting the server reads, and its SEAWALL_* variable, from the schema itself.
KNOWN_SETTINGS: typing.Final = schema_env_names()


def value_at(settings: Any, path: str) -> Any:
    """The setting *path* (``tenants.rate``) of a loaded `ServeSettings`."""
    for part in path.split("."):
        settings = getattr(settings, part)
    return settings


@functools.cache
def file_settings() -> ServeSettings:
    """config.toml as the server loads it, with no environment and no flags."""
    return load(ServeSettings, CONFIG_TOML, env_prefix=ENV_PREFIX, env={})


def port_of(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def dockerfile_instructions(stage: str | None = "last") -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined.

    *stage* ``"last"``: only the final stage's (from its FROM); ``None``: all of them.
    """
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        name, _, arguments = (pending + line).partition(" ")
        instructions.append((name.upper(), arguments.strip()))
        pending = ""
    if stage == "last":
        start = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
        return instructions[start:]
    return instructions


def dockerfile_values(name: str) -> list[str]:
    return [
        arguments for instruction, arguments in dockerfile_instructions() if instruction == name
    ]


def dockerfile_exec_form(name: str) -> list[str]:
    """The JSON array of the final stage's *name* instruction (ENTRYPOINT, CMD)."""
    (arguments,) = dockerfile_values(name)
    value = json.loads(arguments)
    assert isinstance(value, list), f"{name} must be in exec form (a JSON array)"
    return [str(item) for item in value]


def healthcheck_command() -> list[str]:
    (arguments,) = dockerfile_values("HEALTHCHECK")
    _, sep, command = arguments.partition(" CMD ")
    assert sep, "HEALTHCHECK must run a command"
    value = json.loads(command)
    assert isinstance(value, list), "HEALTHCHECK CMD must be in exec form (a JSON array)"
    return [str(item) for item in value]


def urls_in(command: list[str]) -> list[str]:
    return [m for part in command for m in re.findall(r"https?://[^\s'\"]+", part)]


def manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> dict[tuple[str, str], Any]:
    """Every Kubernetes object in k8s/, by (kind, name)."""
    found = {}
    for path in manifests():
        for document in yaml_documents(path):
            found[document["kind"], document["metadata"]["name"]] = document
    return found


def deployment() -> Any:
    (found,) = [d for (kind, _), d in resources().items() if kind == "Deployment"]
    return found


def container() -> Any:
    (found,) = deployment()["spec"]["template"]["spec"]["containers"]
    return found


def compose() -> Any:
    return yaml_document(DEPLOY / "compose.yaml")


def compose_agent() -> Any:
    return compose()["services"]["agent"]


def command_lines() -> dict[str, list[str]]:
    """seawall-serve's arguments as each deploy file gives them."""
    return {
        "Dockerfile CMD": dockerfile_exec_form("CMD"),
        "k8s/deployment.yaml args": [str(a) for a in container()["args"]],
        "compose.yaml command": [str(a) for a in compose_agent()["command"]],
    }


def cli_options() -> dict[str, bool]:
    """Every option of seawall-serve's parser, and whether it takes a value."""
    return {
        option: action.nargs != 0
        for action in _cli._parser()._actions  # argparse keeps no public list
        for option in action.option_strings
        if option.startswith("--")
    }


def parse_command(args: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """Positional arguments, and ``{flag: value}`` (``None`` for switches)."""
    options = cli_options()
    positional: list[str] = []
    flags: dict[str, str | None] = {}
    items = iter(args)
    for item in items:
        if not item.startswith("--"):
            positional.append(item)
            continue
        flag, eq, inline = item.partition("=")
        assert flag in options, f"{flag} is not an option of seawall-serve"
        if eq:
            flags[flag] = inline
        elif options[flag]:
            flags[flag] = next(items)
        else:
            flags[flag] = None
    return positional, flags


def same_value(text: str, expected: Any) -> bool:
    """Whether *text* (a flag or environment value) says the same as a TOML value."""
    if isinstance(expected, bool):
        return text.strip().lower() == str(expected).lower()
    if isinstance(expected, (int, float)):
        return float(text) == float(expected)
    return text == str(expected)


def seconds(duration: str | float) -> float:
    """A compose duration (``35s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def compose_env_default(value: str) -> str:
    """``${NAME:-default}`` is *default*; anything else is itself."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-(?P<default>[^}]*)\}", value)
    return match["default"] if match else value


def dotenv(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def environments() -> dict[str, dict[str, str]]:
    """Every environment variable the deploy files set, by file, with its value."""
    env_config_maps = {
        name: {key: str(value) for key, value in d.get("data", {}).items()}
        for (kind, name), d in resources().items()
        if kind == "ConfigMap" and name != "seawall-agent-config"
    }
    env_from = {
        ref["configMapRef"]["name"]
        for ref in container().get("envFrom", [])
        if "configMapRef" in ref
    }
    assert env_from <= set(env_config_maps), "envFrom names a ConfigMap that k8s/ lacks"
    k8s_env: dict[str, str] = {}
    for name in env_from:  # env, below, wins over envFrom
        k8s_env.update(env_config_maps[name])
    k8s_env.update((e["name"], str(e.get("value", ""))) for e in container().get("env", []))
    dockerfile_env: dict[str, str] = {}
    for arguments in dockerfile_values("ENV"):
        dockerfile_env.update(
            (m["name"], m["value"])
            for m in re.finditer(r"(?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)", arguments)
        )
    return {
        "k8s": k8s_env,
        "compose": {
            name: compose_env_default(str(value))
            for name, value in compose_agent()["environment"].items()
        },
        ".env.example": dotenv(DEPLOY / ".env.example"),
        "Dockerfile": dockerfile_env,
    }


def deployment_environment(where: str) -> dict[str, str]:
    """The environment of the server that *where* (a key of `command_lines`) starts."""
    env = dict(environments()["Dockerfile"])
    for prefix in ("k8s", "compose"):
        if where.startswith(prefix):
            env.update(environments()[prefix])
    return env


def effective_settings(where: str) -> ServeSettings:
    """The settings the server that *where* starts runs with, as its CLI loads them.

    config.toml, then the deployment's ``SEAWALL_*`` variables, then its flags (with
    ``--config`` naming config.toml where the deployment mounts it).
    """
    args = _cli._parser().parse_args(command_lines()[where])
    assert getattr(args, "config", None) == CONFIG_PATH, where
    return load(
        ServeSettings,
        CONFIG_TOML,
        env_prefix=ENV_PREFIX,
        env=deployment_environment(where),
        overrides=_cli.overrides_from_args(args),
    )


def load_agent_module() -> ModuleType:
    """deploy/app/agent.py, imported under a name of its own."""
    spec = importlib.util.spec_from_file_location("seawall_deploy_agent", AGENT_MODULE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- what the server serves ------------------------------------------------------------


def test_probe_paths_are_routes_the_service_mounts() -> None:
    routes = seawall_serving.new("stdlib").service.routes()
    probes = {
        name: container()[name]["httpGet"]["path"]
        for name in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes == {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    docker_urls = urls_in(healthcheck_command())
    compose_urls = urls_in([str(part) for part in compose_agent()["healthcheck"]["test"]])
    assert [httpx.URL(u).path for u in docker_urls] == ["/healthz"]
    assert [httpx.URL(u).path for u in compose_urls] == ["/healthz"]
    for path in (*probes.values(), annotations["prometheus.io/path"]):
        assert path in routes, (path, routes)
    assert routes[annotations["prometheus.io/path"]] == "metrics"


def test_every_port_is_the_configured_one() -> None:
    port = port_of(setting("server.addr"))
    for where in command_lines():
        assert port_of(effective_settings(where).server.addr) == port, where
    assert dockerfile_values("EXPOSE") == [str(port)]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"http": port}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert ports.get(container()[probe]["httpGet"]["port"]) == port, probe
    (service,) = [d for (kind, _), d in resources().items() if kind == "Service"]
    (service_port,) = service["spec"]["ports"]
    target = service_port["targetPort"]
    assert (ports[target] if isinstance(target, str) else target) == port
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port
    healthchecks = [healthcheck_command(), [str(p) for p in compose_agent()["healthcheck"]["test"]]]
    for command in healthchecks:
        assert [httpx.URL(u).port for u in urls_in(command)] == [port]
    published = [str(p) for p in compose_agent()["ports"]]
    assert [p.rpartition(":")[2] for p in published] == [str(port)]
    otel_scrape = yaml_document(DEPLOY / "otel-collector.yaml")["receivers"]["prometheus"]
    (job,) = otel_scrape["config"]["scrape_configs"]
    assert job["static_configs"] == [{"targets": [f"agent:{port}"]}]


def test_the_image_and_the_manifests_serve_the_example_agent_on_the_configured_path() -> None:
    for where, args in command_lines().items():
        positional, _ = parse_command(args)
        assert positional == [AGENT_SPEC], where
        assert effective_settings(where).agent.path == setting("agent.path"), where
    assert dockerfile_exec_form("ENTRYPOINT") == ["seawall-serve"]
    assert "entrypoint" not in compose_agent(), "compose keeps the image's ENTRYPOINT"
    assert "command" not in container(), "args replace CMD; command would replace ENTRYPOINT"


def test_the_entrypoint_is_the_cli_and_every_flag_used_is_one_of_its_options() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="seawall-serve")
    assert script.value == f"{_cli.__name__}:{_cli.main.__name__}"
    assert dockerfile_exec_form("ENTRYPOINT") == [script.name]
    options = cli_options()
    assert "--config" in options
    for where, args in command_lines().items():
        for item in args:
            if item.startswith("--"):
                assert item.partition("=")[0] in options, (where, item)


def test_every_command_reads_config_toml_and_sets_nothing_else() -> None:
    """Only --config: a flag pins its setting, so a reload of the file could not change it."""
    for where, args in command_lines().items():
        _, flags = parse_command(args)
        assert flags == {"--config": CONFIG_PATH}, (
            f"{where}: set {sorted(set(flags) - {'--config'})} in config.toml instead"
        )
        parsed = _cli._parser().parse_args(args)
        assert _cli.overrides_from_args(parsed) == {}, where
    commands = command_lines()
    assert commands["k8s/deployment.yaml args"] == commands["Dockerfile CMD"]
    assert commands["compose.yaml command"] == commands["Dockerfile CMD"]


def test_every_deployment_runs_with_config_toml_s_settings() -> None:
    """Nothing in a deploy file (a flag, a SEAWALL_* variable) changes a value of the file."""
    for where in command_lines():
        assert effective_settings(where) == file_settings(), where


# -- config.toml ---------------------------------------------------------------------------


def test_config_toml_loads_and_shows_every_setting() -> None:
    settings = file_settings()  # unknown keys and wrong types would raise
    build_config(settings, limiter=tenant_limiter(settings.tenants))  # a valid Config
    written = flatten(config())
    # Every setting, written out: the file is the reference the guide's table follows.
    assert set(written) == set(KNOWN_SETTINGS)
    for path, value in written.items():
        assert value_at(settings, path) == value, path
    assert settings.resilience.breaker.enabled is True


def test_config_toml_marks_exactly_the_settings_that_need_a_restart() -> None:
    restart_only = {f"{section}.{name}" for section, name in RESTART_ONLY}
    assert restart_only <= set(KNOWN_SETTINGS)
    marked = set()
    table = ""
    for line in CONFIG_TOML.read_text(encoding="utf-8").splitlines():
        if header := re.fullmatch(r"\[(?P<table>[\w.]+)\]\s*(?:#.*)?", line):
            table = header["table"]
        elif (key := re.match(r"(?P<key>\w+) = [^#]*#(?P<comment>.*)", line)) and (
            "restart" in key["comment"]
        ):
            marked.add(f"{table}.{key['key']}")
    assert marked == restart_only, "mark each setting that needs a restart, and only those"


def test_the_derived_env_names_are_the_ones_the_loader_reads() -> None:
    for path, name in KNOWN_SETTINGS.items():
        value = setting(path)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        loaded = load(ServeSettings, None, env_prefix=ENV_PREFIX, env={name: text})
        assert value_at(loaded, path) == value, (path, name)


# -- shutdown arithmetic -------------------------------------------------------------------


def test_termination_grace_covers_prestop_and_drain() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}, "preStop is Kubernetes' sleep action (1.30+)"
    sleep = pre_stop["sleep"]["seconds"]
    assert sleep > 0
    grace = pod["terminationGracePeriodSeconds"]
    drain = effective_settings("k8s/deployment.yaml args").server.drain_timeout
    assert grace >= sleep + drain + GRACE_MARGIN, (grace, sleep, drain)


def test_drain_timeout_is_the_same_everywhere() -> None:
    drain = file_settings().server.drain_timeout
    assert drain == setting("server.drain_timeout")
    for where in command_lines():
        assert effective_settings(where).server.drain_timeout == drain, where


def test_compose_stop_grace_period_exceeds_the_drain() -> None:
    agent = compose_agent()
    drain = effective_settings("compose.yaml command").server.drain_timeout
    assert seconds(agent["stop_grace_period"]) > drain
    assert agent.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_the_image_stops_with_sigterm_and_pid_1_is_the_server() -> None:
    assert dockerfile_values("STOPSIGNAL") == ["SIGTERM"]
    entrypoint = dockerfile_exec_form("ENTRYPOINT")
    assert entrypoint[0] == "seawall-serve", "exec form, no shell: SIGTERM reaches Python"


# -- environment, secrets, config ----------------------------------------------------------


def test_seawall_env_names_are_settings_and_agree_with_config_toml() -> None:
    known = {name: path for path, name in KNOWN_SETTINGS.items()}
    restart_only = {f"{section}.{name}" for section, name in RESTART_ONLY}
    seen = 0
    for where, env in environments().items():
        for name, value in env.items():
            if not name.startswith(f"{ENV_PREFIX}_"):
                continue
            seen += 1
            assert name in known, f"{where}: {name} names no setting"
            assert same_value(value, setting(known[name])), (where, name, value)
            # A variable wins over the file on every reload: keep it to what needs a
            # restart anyway, so what reloads live is changed in config.toml.
            assert known[name] in restart_only, f"{where}: {name} pins a live setting"
    assert seen, "the deploy files show at least one SEAWALL_ override"


def test_the_image_has_the_extras_the_deploy_files_use() -> None:
    (arg,) = [
        arguments
        for name, arguments in dockerfile_instructions(None)
        if name == "ARG" and arguments.startswith("EXTRAS=")
    ]
    extras = set(arg.partition("=")[2].strip("\"'").split(","))
    with (DEPLOY.parent / "pyproject.toml").open("rb") as f:
        provided = set(tomllib.load(f)["project"]["optional-dependencies"])
    assert extras <= provided, extras - provided
    compose_extras = set(str(compose_agent()["build"]["args"]["EXTRAS"]).split(","))
    assert compose_extras <= provided
    for chosen in (extras, compose_extras):
        assert "prometheus" in chosen, "/metrics, which the pods and the collector scrape"
        assert "otlp" in chosen, "the OTEL_* variables export traces only with the SDK"


def test_otel_env_names_are_standard() -> None:
    seen = set()
    for where, env in environments().items():
        for name in env:
            if name.startswith("OTEL_"):
                assert name in STANDARD_OTEL_ENV, f"{where}: {name} is not a standard OTEL_ name"
                seen.add(name)
    assert {
        "OTEL_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    } <= seen
    for where in ("k8s", "compose"):
        env = environments()[where]
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] in {"grpc", "http/protobuf", "http/json"}
        endpoint = httpx.URL(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.port == (4317 if env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc" else 4318)


def test_the_standard_otel_names_are_opentelemetry_s() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.environment_variables")
    api = importlib.import_module("opentelemetry.environment_variables")
    names = {
        value
        for module in (sdk, api)
        for key, value in vars(module).items()
        if key.startswith("OTEL_") and isinstance(value, str)
    }
    assert sorted(STANDARD_OTEL_ENV - names) == []


def test_the_secret_is_mounted_where_the_agent_reads_it() -> None:
    found = resources()
    pod = deployment()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    secret_volumes = [v for v in volumes.values() if "secret" in v]
    (volume,) = secret_volumes
    secret = found["Secret", volume["secret"]["secretName"]]
    (item,) = volume["secret"]["items"]
    assert item["key"] in secret["stringData"]
    mount = mounts[volume["name"]]
    assert mount.get("readOnly") is True
    assert "subPath" not in mount
    env = {e["name"]: e for e in container()["env"]}
    assert env["OPENAI_API_KEY_FILE"]["value"] == f"{mount['mountPath']}/{item['path']}"
    assert "OPENAI_API_KEY" not in env, "the key is read from its file, not the environment"
    assert pod.get("automountServiceAccountToken") is False

    agent = compose_agent()
    (compose_secret,) = agent["secrets"]
    assert compose_secret["source"] in compose()["secrets"]
    target = compose_secret["target"]
    assert agent["environment"]["OPENAI_API_KEY_FILE"] == target
    assert target == "/run/secrets/openai_api_key"
    assert "OPENAI_API_KEY" not in agent["environment"]
    source = compose()["secrets"][compose_secret["source"]]
    assert source == {"environment": "OPENAI_API_KEY"}
    assert "OPENAI_API_KEY" in dotenv(DEPLOY / ".env.example")
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_the_config_file_is_mounted_read_only_as_a_directory() -> None:
    config_path = Path(CONFIG_PATH)
    pod = deployment()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container()["volumeMounts"] if "configMap" in volumes[m["name"]]]
    assert mount["mountPath"] == str(config_path.parent)
    assert mount.get("readOnly") is True
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    config_map = resources()["ConfigMap", volumes[mount["name"]]["configMap"]["name"]]
    text = CONFIG_TOML.read_text(encoding="utf-8")
    assert config_map["data"] == {config_path.name: text}, (
        "k8s/configmap.yaml must embed deploy/config.toml verbatim"
    )
    embedded = tomllib.loads(config_map["data"][config_path.name])
    assert embedded == config()

    (bind,) = [v for v in compose_agent()["volumes"] if v["target"] == str(config_path)]
    assert bind["type"] == "bind"
    assert bind["source"] == "./config.toml"
    assert bind["read_only"] is True

    # The image's own copy, for `docker run` without a mount, is the same file.
    copies = [
        arguments.split()[-2:]
        for name, arguments in dockerfile_instructions()
        if name == "COPY" and arguments.split()[-1] == CONFIG_PATH
    ]
    assert copies == [["serving_contrib/deploy/config.toml", CONFIG_PATH]]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml_document(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifests())
    (image,) = kustomization["images"]
    assert container()["image"].startswith(image["name"] + ":")


# -- Kubernetes: rollout, disruption, scaling, hardening -------------------------------------


def test_rollout_budget_and_autoscaler_fit_the_deployment() -> None:
    found = resources()
    spec = deployment()["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    (service,) = [d for (kind, _), d in found.items() if kind == "Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["name"] == "http"
    (pdb,) = [d for (kind, _), d in found.items() if kind == "PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") is not None
    (hpa,) = [d for (kind, _), d in found.items() if kind == "HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment()["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= spec["replicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in container()["resources"]["requests"], "CPU utilization needs a request"


def test_the_pod_is_hardened_and_runs_as_the_image_user() -> None:
    (user,) = dockerfile_values("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric USER, so runAsNonRoot can check it"
    assert int(uid) != 0
    all_instructions = " ".join(arguments for _, arguments in dockerfile_instructions(None))
    assert f"--uid {uid}" in all_instructions
    assert f"--gid {gid}" in all_instructions
    pod_context = deployment()["spec"]["template"]["spec"]["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert str(pod_context["runAsUser"]) == uid
    assert str(pod_context["runAsGroup"]) == gid
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    resources_ = container()["resources"]
    assert set(resources_["requests"]) == {"cpu", "memory"}
    assert set(resources_["limits"]) >= {"memory"}
    agent = compose_agent()
    assert agent["user"] == f"{uid}:{gid}"
    assert agent["read_only"] is True
    assert agent["cap_drop"] == ["ALL"]


# -- the Dockerfile ------------------------------------------------------------------------


def test_the_dockerfile_is_multi_stage_on_one_pinned_slim_base() -> None:
    bases = [
        arguments.split()[0] for name, arguments in dockerfile_instructions(None) if name == "FROM"
    ]
    assert len(bases) == 2
    assert len(set(bases)) == 1
    image, _, tag = bases[0].partition(":")
    assert image == "python"
    assert tag.startswith("3.11-slim"), tag
    env = environments()["Dockerfile"]
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PIP_NO_CACHE_DIR"] == "1"
    assert dockerfile_values("WORKDIR") == ["/app"]
    runtime = " ".join(arguments for _, arguments in dockerfile_instructions())
    assert "--no-index" in runtime, "the runtime stage installs the builder's wheels only"
    assert "COPY src" not in runtime, "no source tree in the runtime stage"
    healthcheck = healthcheck_command()
    assert healthcheck[0] == "python", "the slim image has no curl or wget"


def test_the_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    repo = DEPLOY.parents[1]
    for name, arguments in dockerfile_instructions(None):
        if name != "COPY" or "--from=" in arguments:
            continue
        *sources, _ = [part for part in arguments.split() if not part.startswith("--")]
        for source in sources:
            assert (repo / source).exists(), source
            assert any(source == entry or source.startswith(f"{entry}/") for entry in allowed), (
                f"{source} is excluded by Dockerfile.dockerignore"
            )


# -- the example agent, and the image's command run for real -------------------------------


def test_the_agent_reads_its_key_from_the_secret_file(tmp_path: Path) -> None:
    agent_module = load_agent_module()
    key_file = tmp_path / "openai_api_key"
    key_file.write_text("sk-from-file\n")
    environ = {"OPENAI_API_KEY_FILE": str(key_file)}
    assert agent_module.read_secret("OPENAI_API_KEY", environ) == "sk-from-file"
    assert agent_module.read_secret("OPENAI_API_KEY", {"OPENAI_API_KEY": "k"}) == "k"
    assert agent_module.read_secret("OPENAI_API_KEY", {}) is None
    with pytest.raises(ValueError, match="set only one"):  # as the config loader says
        agent_module.read_secret("OPENAI_API_KEY", {**environ, "OPENAI_API_KEY": "k"})
    with pytest.raises(ValueError, match="OPENAI_API_KEY_FILE"):
        agent_module.build_agent(environ={})
    agent = agent_module.build_agent(environ=environ)
    assert "sk-from-file" not in repr(agent.model)
    # The bare model: the server applies config.toml's [resilience]; policies of the
    # agent's own around the model call would double them.
    assert type(agent.model) is agent_module.StubModel
    messages = {"messages": [{"role": "user", "content": "hello there"}]}

    async def run() -> tuple[Any, list[Any]]:
        answer = await agent.invoke(messages)
        chunks = [chunk async for chunk in agent.stream(messages)]
        return answer, chunks

    answer, chunks = anyio.run(run)
    assert answer == {"text": "You said: hello there"}
    assert "".join(c["delta"] for c in chunks) == answer["text"]
    with pytest.raises(seawall_serving.InvalidInput):
        anyio.run(agent.invoke, {"text": "no messages"})


class ConfigMapVolume:
    """A directory laid out as the kubelet lays out a ConfigMap volume.

    ``config.toml`` is a symlink to ``..data/config.toml``; ``..data`` is a symlink to a
    timestamped directory holding the files. An update writes a new directory and
    renames a new ``..data`` symlink over the old one: one atomic step, and no event on
    ``config.toml`` itself.
    """

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        self.version = 0
        root.mkdir()
        self.update(text)
        (root / "config.toml").symlink_to(Path("..data") / "config.toml")

    @property
    def path(self) -> Path:
        return self.root / "config.toml"

    def update(self, text: str) -> None:
        old = self.root / f"..{self.version}"
        self.version += 1
        new = self.root / f"..{self.version}"
        new.mkdir()
        (new / "config.toml").write_text(text, encoding="utf-8")
        (self.root / "..data_tmp").symlink_to(new.name)
        (self.root / "..data_tmp").replace(self.root / "..data")
        if old.exists():
            shutil.rmtree(old)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    pause = threading.Event()
    for _ in range(1500):  # the watcher polls the directory: wait up to 30 s for it
        if predicate():
            return
        pause.wait(0.02)
    msg = f"timed out waiting for {what}"
    raise AssertionError(msg)


def server_environment(where: str, **extra: str) -> dict[str, str]:
    """This process's environment for a CLI subprocess, with *where*'s SEAWALL_* variables.

    No other variable of the deployment (its OTEL_* would export to a collector that is
    not there); and no SEAWALL_* variable of this process, which the CLI would read.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(f"{ENV_PREFIX}_")}
    env.update(
        (name, value)
        for name, value in deployment_environment(where).items()
        if name.startswith(f"{ENV_PREFIX}_")
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(AGENT_MODULE.parent), os.environ.get("PYTHONPATH")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_API_KEY_FILE", None)
    env.update(extra)
    return env


@pytest.fixture
def config_volume(tmp_path: Path) -> ConfigMapVolume:
    """deploy/config.toml in a ConfigMap-like volume, as the pods mount it."""
    return ConfigMapVolume(tmp_path / "etc-seawall", CONFIG_TOML.read_text(encoding="utf-8"))


@pytest.fixture
def deployed(tmp_path: Path, config_volume: ConfigMapVolume) -> Iterator[CliServer]:
    """The Deployment's exact args and SEAWALL_* variables, through the real CLI.

    Two changes: ``--config`` names the volume above instead of /etc/seawall, and
    ``SEAWALL_SERVER__ADDR`` moves the server to an ephemeral loopback port.
    """
    where = "k8s/deployment.yaml args"
    args = [str(config_volume.path) if a == CONFIG_PATH else a for a in command_lines()[where]]
    assert args != command_lines()[where]
    key_file = tmp_path / "openai_api_key"
    key_file.write_text("sk-test\n")
    env = server_environment(
        where,
        SEAWALL_SERVER__ADDR="127.0.0.1:0",
        OPENAI_API_KEY_FILE=str(key_file),
    )
    with start_cli(args, tmp_path / "server.log", env) as server:
        yield server


def test_the_deployment_command_serves_probes_and_the_agent_then_drains(
    deployed: CliServer,
) -> None:
    path = setting("agent.path")
    with httpx.Client(base_url=deployed.url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        messages = {"messages": [{"role": "user", "content": "hi"}]}
        response = client.post(f"{path}/invoke", json={"input": messages})
        assert response.status_code == 200, response.text
        assert response.json()["output"] == {"text": "You said: hi"}
        assert response.json()["metadata"]["tenant_id"] == setting("tenants.default")
        tenant = client.post(
            f"{path}/invoke", json={"input": messages}, headers={"X-Tenant-ID": "acme"}
        )
        assert tenant.json()["metadata"]["tenant_id"] == "acme"
        bad = client.post(f"{path}/invoke", json={"input": 3})
        assert bad.status_code == 422
        assert bad.json()["code"] == "invalid_input"
        metrics = client.get("/metrics").text
    # The server's breaker from [resilience.breaker], on /metrics from the start.
    assert 'seawall_serving_circuit_breaker_state{name="agent",state="closed"} 1.0' in metrics
    assert 'seawall_serving_config_reloads_total{result="success"} 1.0' in metrics
    # The image's HEALTHCHECK command, pointed at this server, passes.
    healthcheck = [
        part.replace(f":{port_of(setting('server.addr'))}/", f":{deployed.port}/")
        for part in healthcheck_command()
    ]
    assert healthcheck[0] == "python"
    probe = subprocess.run(
        [sys.executable, *healthcheck[1:]], capture_output=True, timeout=30, check=False
    )
    assert probe.returncode == 0, probe.stderr
    deployed.signal(signal.SIGTERM)
    assert deployed.wait(timeout=file_settings().server.drain_timeout) == 0, deployed.log_text()
    messages_logged = [r["message"] for r in deployed.log_records()]
    assert "stopped" in messages_logged


def test_a_configmap_update_reloads_live_and_a_bad_one_keeps_the_last_good(
    deployed: CliServer, config_volume: ConfigMapVolume
) -> None:
    path = setting("agent.path")
    text = CONFIG_TOML.read_text(encoding="utf-8")
    reloads = 'seawall_serving_config_reloads_total{result="success"}'
    failures = 'seawall_serving_config_reloads_total{result="failure"}'
    messages = {"messages": [{"role": "user", "content": "hi"}]}

    def default_tenant() -> str:
        response = httpx.post(f"{deployed.url}{path}/invoke", json={"input": messages})
        assert response.status_code == 200, response.text
        tenant: str = response.json()["metadata"]["tenant_id"]
        return tenant

    assert default_tenant() == setting("tenants.default")
    assert metric(deployed.url, reloads) == 1  # the first load
    # A live setting and a restart-only one, changed in one update of the ConfigMap.
    changed = text.replace('default = "public"', 'default = "reloaded"')
    changed = changed.replace('path = "/v1/chat"', 'path = "/v2/chat"')
    assert changed.count("reloaded") == 1
    assert "/v2/chat" in changed
    config_volume.update(changed)
    wait_for(lambda: metric(deployed.url, reloads) == 2, "the reload")
    assert default_tenant() == "reloaded"  # applied, without a restart
    assert httpx.post(f"{deployed.url}/v2/chat/invoke", json={"input": messages}).status_code == 404

    typo = changed.replace("\n[tenants]\n", "\n[tenants]\nrates = 5\n")
    assert typo.count("rates = 5") == 1
    config_volume.update(typo)  # an unknown key: the whole file is refused
    wait_for(lambda: metric(deployed.url, failures) == 1, "the failed reload")
    assert metric(deployed.url, "seawall_serving_config_last_reload_success") == 0
    assert default_tenant() == "reloaded"  # the last good settings stay

    deployed.signal(signal.SIGTERM)
    assert deployed.wait(timeout=file_settings().server.drain_timeout) == 0, deployed.log_text()
    warnings = [r for r in deployed.log_records() if r["level"] == "WARNING"]
    assert any("agent.path" in r["message"] for r in warnings), warnings  # needs a restart
    assert any("tenants.rates" in json.dumps(r) for r in warnings), warnings  # refused


def test_without_a_key_the_image_command_fails_fast(tmp_path: Path) -> None:
    where = "Dockerfile CMD"
    args = [str(CONFIG_TOML) if a == CONFIG_PATH else a for a in command_lines()[where]]
    result = subprocess.run(
        cli_command(*args),
        env=server_environment(where, SEAWALL_SERVER__ADDR="127.0.0.1:0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "OPENAI_API_KEY_FILE" in result.stderr


# -- docs/deploying.md -----------------------------------------------------------------------

DOCS = DEPLOY.parents[1] / "docs"
GUIDE = DOCS / "deploying.md"


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of *markdown*."""
    found = set()
    in_code = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return found


def test_every_link_of_the_guide_resolves() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        target, _, anchor = link.partition("#")
        path = (GUIDE.parent / target).resolve() if target else GUIDE
        assert path.exists(), link
        if anchor:
            assert anchor in anchors(path), link


def test_the_guide_lists_every_config_toml_key_with_its_value_and_reload() -> None:
    """The guide's table: | `key` | `value` | live or restart | meaning |."""
    rows = {}
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4 and "." in cells[0]:
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2])
    flat = flatten(config())
    assert set(rows) == set(flat)
    restart_only = {f"{section}.{name}" for section, name in RESTART_ONLY}
    for key, value in flat.items():
        shown = json.dumps(value) if isinstance(value, (str, bool)) else str(value)
        assert rows[key][0] == shown, key
        assert rows[key][1] == ("restart" if key in restart_only else "live"), key
