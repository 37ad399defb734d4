"""The ``seawall-serve`` CLI, run for real: ``python -m seawall_serving`` in a subprocess."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from cli_agents import json_lines, run_cli, serve_cli


ADAPTERS = [pytest.param("stdlib", id="stdlib"), pytest.param("asgi", id="asgi")]
ACCESS_FIELDS = {"method", "path", "status", "duration_ms", "run_id", "tenant_id"}


def access_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("logger") == "seawall_serving.access"]


def usage_error(result: Any) -> str:
    """Assert *result* is argparse's exit status 2 with a usage line; return stderr."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "usage: seawall-serve" in result.stderr
    assert "Traceback" not in result.stderr
    stderr: str = result.stderr
    return stderr


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_invoke_stream_access_log_and_sigterm(adapter: str, tmp_path: Path) -> None:
    with serve_cli(
        "cli_agents:echo", tmp_path / "server.log", "--default-tenant", "t-default", adapter=adapter
    ) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            response = client.post(
                "/v1/agent/invoke", json={"input": {"q": 1}}, headers={"X-Tenant-ID": "acme"}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["output"] == {"echo": {"q": 1}, "tenant": "acme"}
            invoke_run_id = body["metadata"]["run_id"]
            assert response.headers["x-request-id"] == invoke_run_id
            assert body["metadata"]["tenant_id"] == "acme"

            with connect_sse(client, "POST", "/v1/agent/stream", json={"input": "s"}) as source:
                assert source.response.status_code == 200
                events = [(e.event, e.json()) for e in source.iter_sse()]
            assert [name for name, _ in events] == ["metadata", "data", "data", "data", "end"]
            assert events[0][1]["tenant_id"] == "t-default"
            stream_run_id = events[0][1]["run_id"]

            missing = client.post("/nowhere", json={})
            assert missing.status_code == 404

        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.log_text()
        records = server.log_records()  # asserts every line is JSON, uvicorn's included

    messages = [r["message"] for r in records]
    assert "stopped" in messages, messages
    assert any(m.startswith("SIGTERM received") for m in messages), messages
    stopped = next(r for r in records if r["message"] == "stopped")
    assert stopped["logger"] == "seawall_serving"
    assert stopped["level"] == "INFO"

    access = access_records(records)
    for record in access:
        assert record.keys() >= ACCESS_FIELDS, record
        assert isinstance(record["duration_ms"], (int, float))
        assert record["duration_ms"] >= 0
    by_run = {r["run_id"]: r for r in access}
    invoke = by_run[invoke_run_id]
    assert invoke["method"] == "POST"
    assert invoke["path"] == "/v1/agent/invoke"
    assert invoke["status"] == 200
    assert invoke["tenant_id"] == "acme"
    stream = by_run[stream_run_id]
    assert stream["path"] == "/v1/agent/stream"
    assert stream["status"] == 200
    assert stream["tenant_id"] == "t-default"
    assert stream.get("outcome") == "completed"
    assert any(r["path"] == "/nowhere" and r["status"] == 404 for r in access), access


def test_sigint_drains_too(tmp_path: Path) -> None:
    with serve_cli("cli_agents:make_echo", tmp_path / "server.log", "--default-tenant", "t") as srv:
        response = httpx.post(f"{srv.url}/v1/agent/invoke", json={"input": 2}, timeout=10)
        assert response.json()["output"]["echo"] == 2
        srv.signal(signal.SIGINT)
        assert srv.wait() == 0, srv.log_text()
        messages = [r["message"] for r in srv.log_records()]
    assert "stopped" in messages
    assert any(m.startswith("SIGINT received") for m in messages), messages


def test_no_access_log(tmp_path: Path) -> None:
    with serve_cli(
        "cli_agents:echo", tmp_path / "server.log", "--default-tenant", "t", "--no-access-log"
    ) as server:
        response = httpx.post(f"{server.url}/v1/agent/invoke", json={"input": 3}, timeout=10)
        assert response.status_code == 200
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        records = server.log_records()
    assert access_records(records) == []
    assert "stopped" in [r["message"] for r in records]


def test_options_reach_the_config(tmp_path: Path) -> None:
    # --path mounts elsewhere; without --default-tenant the header is required.
    with serve_cli("cli_agents:echo", tmp_path / "server.log", "--path", "/v2/bot") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            missing = client.post("/v2/bot/invoke", json={"input": 1})
            assert missing.status_code == 400
            assert missing.json()["code"] == "missing_tenant"
            ok = client.post("/v2/bot/invoke", json={"input": 1}, headers={"X-Tenant-ID": "a"})
            assert ok.status_code == 200
            assert client.post("/v1/agent/invoke", json={"input": 1}).status_code == 404
        server.signal(signal.SIGTERM)
        assert server.wait() == 0


def test_list_adapters() -> None:
    result = run_cli("--list-adapters")
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert {"stdlib", "asgi"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("nomodule_xyz:x", "nomodule_xyz", id="no-module"),
        pytest.param("os:path", "no invoke", id="not-an-agent"),
        pytest.param("os:getcwd", "no invoke", id="factory-of-non-agent"),
        pytest.param("cli_agents:nothere", "no attribute 'nothere'", id="no-attribute"),
        pytest.param("cli_agents.echo", "module:attribute", id="missing-colon"),
        pytest.param("cli_agents:", "module:attribute", id="empty-attribute"),
        pytest.param(":echo", "module:attribute", id="empty-module"),
    ],
)
def test_bad_agent_spec_exits_2(spec: str, expected: str) -> None:
    stderr = usage_error(run_cli(spec, "--addr", "127.0.0.1:0"))
    assert expected in stderr
    assert "error:" in stderr


def test_unknown_adapter_lists_the_available_ones() -> None:
    stderr = usage_error(run_cli("cli_agents:echo", "--adapter", "nosuch", "--addr", "127.0.0.1:0"))
    assert "'nosuch'" in stderr
    available = stderr.partition("available:")[2]
    assert "stdlib" in available
    assert "asgi" in available


def test_missing_agent_argument_exits_2() -> None:
    stderr = usage_error(run_cli())
    assert "agent" in stderr


def test_bad_addr_exits_2() -> None:
    stderr = usage_error(run_cli("cli_agents:echo", "--addr", "not-an-address"))
    assert "not-an-address" in stderr


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_address_in_use_exits_1_with_a_json_error(adapter: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("cli_agents:echo", "--adapter", adapter, "--addr", f"127.0.0.1:{port}")
    assert result.returncode == 1
    records = json_lines(result.stderr)
    errors = [r for r in records if r["level"] == "ERROR"]
    # uvicorn logs its own line first; ours is the last word, and there is no traceback.
    assert errors[-1]["message"].startswith(f"cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_stderr_is_only_json(adapter: str, tmp_path: Path) -> None:
    # Every line the server writes, startup to exit, is one JSON object; the address
    # it listens on (port 0 asks for a free one) is a structured "serving on" record.
    with serve_cli(
        "cli_agents:echo", tmp_path / "server.log", "--default-tenant", "t", adapter=adapter
    ) as server:
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        text = server.log_text()
    records = json_lines(text)
    assert all(r.keys() >= {"time", "level", "logger", "message"} for r in records)
    listening = [r for r in records if r["message"].startswith("serving on ")]
    assert len(listening) == 1, records
    assert listening[0]["message"] == f"serving on 127.0.0.1:{server.port}"
    assert listening[0]["logger"] == "seawall_serving"
    assert listening[0]["port"] == server.port
    messages = [r["message"] for r in records]
    assert messages.index(listening[0]["message"]) < messages.index("stopped")
