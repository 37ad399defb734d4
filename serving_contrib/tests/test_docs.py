"""docs/serving.md states what the code does: its tables are checked against it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import seawall_serving
from seawall_serving._metrics import Metrics


DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def table_rows(first_header: str) -> list[list[str]]:
    """The rows of the markdown table whose first column is headed *first_header*."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_error_table_is_the_problem_registry() -> None:
    documented = {row[0].strip("`"): (int(row[1]), row[2] == "yes") for row in table_rows("code")}
    actual = {
        code: (problem.status, problem.retryable)
        for code, problem in seawall_serving.PROBLEMS.items()
    }
    assert documented == actual


def test_the_metrics_table_is_the_registry() -> None:
    metrics = Metrics.create()
    assert metrics is not None
    exposed = {
        (f"{family.name}_total" if family.type == "counter" else family.name, family.type)
        for family in metrics.registry.collect()
    }
    documented = {(row[0].strip("`"), row[1]) for row in table_rows("metric")}
    assert documented == exposed


def test_the_config_table_lists_every_field_with_its_default() -> None:
    rows = {row[0].strip("`"): row[1] for row in table_rows("`Config` field")}
    fields = seawall_serving.Config.__dataclass_fields__
    assert set(rows) == set(fields)
    config = seawall_serving.Config()
    for name, default in rows.items():
        value = getattr(config, name)
        if isinstance(value, bool):
            assert default == ("on" if value else "off"), name
        elif value is None:
            assert default == "none", name
        elif isinstance(value, (int, float)) and name != "max_body_size":
            assert default == f"{value:g} s", name
        elif name == "max_body_size":
            assert default == "1 MiB"
            assert value == 1 << 20
        elif name == "tenant_header":
            assert default == f"`{value}`"
        else:
            assert re.search(type(value).__name__, default), name


def test_the_span_attribute_table_is_what_the_spans_carry() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    service = seawall_serving.Service(seawall_serving.Config(default_tenant="t"))
    service.set_tracer_provider(provider)
    service.register_handler("/h", lambda _request: seawall_serving.Response(500, b"{}"))

    class Failing:
        async def invoke(self, input: Any) -> Any:
            raise RuntimeError

        async def stream(self, input: Any) -> AsyncIterator[Any]:
            yield 1
            raise RuntimeError

    service.register_agent("/a", Failing())

    async def body(limit: int) -> bytes:
        return b'{"input": 1}'

    async def ignore(*args: object) -> None:
        pass

    async def main() -> None:
        headers = {"user-agent": "t/1", "host": "h:1", "content-type": "application/json"}
        await service.handle("PURGE", "/h", headers, body, query="a=1", client_address="::1")
        call = await service.handle("POST", "/a/stream", headers, body)
        assert isinstance(call, seawall_serving.StreamCall)
        await call.run(ignore, ignore)

    anyio.run(main)
    seen = {key for span in exporter.get_finished_spans() for key in span.attributes or {}}
    documented = {row[0].strip("`") for row in table_rows("attribute")}
    assert documented == seen
    provider.shutdown()


def test_the_cli_settings_example_is_a_valid_settings_file(tmp_path: Path) -> None:
    from seawall_serving._settings import ServeSettings
    from seawall_serving.config import load

    text = DOC.read_text()
    section = text[text.index("### Its settings") :]
    example = section[section.index("```toml\n") + len("```toml\n") :]
    example = example[: example.index("```")]
    path = tmp_path / "config.toml"
    path.write_text(example)
    settings = load(ServeSettings, path, env_prefix="SEAWALL", env={})
    assert settings.tenants.rate == 5
    assert settings.resilience.breaker.enabled is True
    assert settings.resilience.timeout.seconds == 15
