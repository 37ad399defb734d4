"""The server's settings: loading, the resilience around the agent, and hot reload."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import seawall
from seawall.testing import FakeClock

import seawall_serving
from cli_agents import serve_cli
from seawall_serving._settings import (
    BreakerSettings,
    Reloader,
    ResilienceSettings,
    ResilientAgent,
    RetrySettings,
    ServeSettings,
    TenantSettings,
    TimeoutSettings,
    build_config,
    tenant_limiter,
)
from seawall_serving.config import ConfigError, load


# -- loading ----------------------------------------------------------------------------


def test_settings_come_from_the_file_the_environment_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[server]\nadapter = "asgi"\nread_timeout = 5\n[tenants]\nrate = 2\nburst = 4\n'
        "[resilience.breaker]\nenabled = true\nmax_failures = 3\n"
    )
    env = {"SEAWALL_SERVER__READ_TIMEOUT": "7.5", "SEAWALL_TENANTS__DEFAULT": "public"}
    settings = load(
        ServeSettings,
        path,
        env_prefix="SEAWALL",
        env=env,
        overrides={"server": {"addr": "127.0.0.1:9000"}},
    )
    assert settings.server.adapter == "asgi"  # file
    assert settings.server.read_timeout == 7.5  # environment over file
    assert settings.server.addr == "127.0.0.1:9000"  # flag over everything
    assert settings.tenants.default == "public"
    assert settings.resilience.breaker == BreakerSettings(enabled=True, max_failures=3)
    config = build_config(settings, limiter=tenant_limiter(settings.tenants))
    assert config.read_timeout == 7.5
    assert config.default_tenant == "public"
    assert config.tenant_limiter is not None


def test_the_deploy_config_file_loads() -> None:
    path = Path(__file__).resolve().parents[1] / "deploy" / "config.toml"
    settings = load(ServeSettings, path, env_prefix="SEAWALL", env={})
    build_config(settings, limiter=tenant_limiter(settings.tenants))  # a valid Config


def test_bad_settings_are_all_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[server]\nread_timeout = "fast"\nport = 1\n[logging]\nlevel = "LOUD"\n')
    with pytest.raises(ConfigError) as caught:
        load(ServeSettings, path, env_prefix="SEAWALL", env={"SEAWALL_TENANTS__RATE": "x"})
    paths = sorted(issue.path for issue in caught.value.errors)
    assert paths == ["logging.level", "server.port", "server.read_timeout", "tenants.rate"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[server]\nread_timeout = -1\n", "Config.read_timeout"),
        ('[server]\naddr = "nowhere"\n', "addr"),
        ('[agent]\npath = "v1/chat"\n', "agent.path"),
        ("[tenants]\nrate = 0\n", "rate"),
        ("[resilience.breaker]\nenabled = true\nmax_failures = 0\n", "max_failures"),
    ],
)
def test_values_of_the_right_type_but_out_of_range_are_refused(
    tmp_path: Path, text: str, where: str
) -> None:
    # Refused by the loader, so a reload keeps the last good settings and counts a
    # failure, instead of failing once applied.
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(where)):
        load(ServeSettings, path, env_prefix="SEAWALL", env={})


# -- resilience around the agent ----------------------------------------------------------


class Flaky:
    """Fails the first *failures* calls, then answers; counts the calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def invoke(self, input: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("upstream reset")
        return {"ok": input}


@pytest.mark.anyio
async def test_retry_then_breaker_around_the_agent() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=2)
    settings = ResilienceSettings(retry=RetrySettings(max_attempts=3, initial_delay=0.5))
    agent = ResilientAgent(flaky, settings, clock=clock)
    assert await agent.invoke(1) == {"ok": 1}
    assert flaky.calls == 3
    assert len(clock.sleeps) == 2  # two backoffs, in virtual time

    broken = Flaky(failures=100)
    breaker = ResilienceSettings(breaker=BreakerSettings(enabled=True, max_failures=2))
    agent = ResilientAgent(broken, breaker, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await agent.invoke(1)
    with pytest.raises(seawall.CircuitOpenError):
        await agent.invoke(1)
    assert broken.calls == 2  # the open circuit did not call the agent


class Stuck:
    async def invoke(self, input: Any) -> Any:
        await anyio.Event().wait()

    async def stream(self, input: Any) -> Any:
        yield 1
        yield 2


@pytest.mark.anyio
async def test_timeout_and_streams_around_the_agent() -> None:
    clock = FakeClock()
    settings = ResilienceSettings(
        timeout=TimeoutSettings(seconds=5), breaker=BreakerSettings(enabled=True)
    )
    agent = ResilientAgent(Stuck(), settings, clock=clock)
    with pytest.raises(seawall.CallTimeoutError):
        await agent.invoke(1)
    assert clock.now() == 5
    assert [item async for item in agent.stream(1)] == [1, 2]
    assert [item async for item in ResilientAgent(Flaky(0), settings).stream(3)] == [{"ok": 3}]


# -- applying a reload ------------------------------------------------------------------


def running_pieces(settings: ServeSettings) -> tuple[Any, ResilientAgent, Reloader]:
    limiter = tenant_limiter(settings.tenants)
    adapter = seawall_serving.new("stdlib", build_config(settings, limiter=limiter))
    agent = ResilientAgent(Flaky(0), settings.resilience)
    return adapter, agent, Reloader(adapter.service, agent, settings, limiter)


def test_reload_swaps_what_changed_and_keeps_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    start = ServeSettings(
        tenants=TenantSettings(rate=1, burst=2),
        resilience=ResilienceSettings(breaker=BreakerSettings(enabled=True)),
    )
    adapter, agent, reloader = running_pieces(start)
    service = adapter.service
    limiter, breaker = service.config.tenant_limiter, agent.breaker
    assert limiter is not None
    assert breaker is not None

    # Same limits and breaker, another read timeout: only the Config changes.
    reloader.apply(
        dataclasses.replace(start, server=dataclasses.replace(start.server, read_timeout=3))
    )
    assert service.config.read_timeout == 3
    assert service.config.tenant_limiter is limiter
    assert agent.breaker is breaker

    # New limits and breaker thresholds: new objects with the new values.
    faster = dataclasses.replace(
        start,
        tenants=TenantSettings(rate=50, burst=100),
        resilience=ResilienceSettings(breaker=BreakerSettings(enabled=True, max_failures=9)),
    )
    reloader.apply(faster)
    new_limiter = service.config.tenant_limiter
    assert new_limiter is not None
    assert new_limiter is not limiter
    assert new_limiter.statistics().rate == 50
    assert agent.breaker is not breaker
    assert service.config.read_timeout == 10  # back to the default with the new file

    # What needs a restart is logged, and kept as it was.
    caplog.set_level(logging.WARNING, logger="seawall_serving")
    moved = dataclasses.replace(faster, server=dataclasses.replace(faster.server, addr=":9999"))
    reloader.apply(moved)
    assert reloader.settings.server.addr == ":8080"
    assert any("server.addr changed" in r.getMessage() for r in caplog.records)


def test_reconfigure_refuses_another_clock_or_type() -> None:
    service = seawall_serving.Service(seawall_serving.Config())
    with pytest.raises(ValueError, match="clock"):
        service.reconfigure(seawall_serving.Config(clock=FakeClock()))
    with pytest.raises(TypeError, match=r"seawall_serving\.Config"):
        service.reconfigure({"read_timeout": 1})  # type: ignore[arg-type]


# -- the CLI: a hot reload under a running server ---------------------------------------


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for(predicate: Any, what: str) -> None:
    done = threading.Event()
    for _ in range(1500):  # the watcher polls the file; wait up to 30 s for it
        if predicate():
            return
        done.wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def replace_file(path: Path, text: str) -> None:
    """Write *text* to *path* the way editors and ConfigMaps do: a new file, renamed."""
    new = path.with_suffix(".tmp")
    new.write_text(text)
    new.replace(path)


def test_cli_hot_reload_changes_a_tenant_limit_and_keeps_the_last_good_config(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[tenants]\nrate = 0.001\nburst = 2\n")
    log = tmp_path / "server.log"
    with serve_cli("cli_agents:echo", log, "--config", str(config)) as server:
        url = server.url
        pid = server.process.pid
        acme = {"X-Tenant-ID": "acme"}

        def statuses(n: int) -> list[int]:
            with httpx.Client(base_url=url) as client:
                return [
                    client.post("/v1/agent/invoke", json={"input": i}, headers=acme).status_code
                    for i in range(n)
                ]

        assert statuses(3) == [200, 200, 429]
        reloads = 'seawall_serving_config_reloads_total{result="success"}'
        assert metric(url, reloads) == 1  # the first load

        replace_file(config, "[tenants]\nrate = 1000\nburst = 50\n")
        wait_for(lambda: metric(url, reloads) == 2, "the reload")
        assert statuses(10) == [200] * 10  # the new limit, no restart

        replace_file(config, "[tenants]\nrate = 0.001\nburst = [oops\n")  # malformed TOML
        failures = 'seawall_serving_config_reloads_total{result="failure"}'
        wait_for(lambda: metric(url, failures) == 1, "the failed reload")
        assert metric(url, "seawall_serving_config_last_reload_success") == 0
        assert statuses(10) == [200] * 10  # still the last good config
        assert server.process.pid == pid
        assert server.process.poll() is None
        records = server.log_records()
    rejected = [r for r in records if r["level"] == "WARNING" and "config" in r["logger"]]
    assert rejected, records
    assert "line 3" in json.dumps(rejected)
