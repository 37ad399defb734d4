"""JsonFormatter: trace and tenant ids, redaction, and tracebacks without messages."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import seawall_serving
from seawall_serving._logging import DEFAULT_REDACT, Redactor, log_failure, withheld_traceback
from seawall_serving._tenant import TENANT
from support import Echo, running


SECRET = "sk-live-SECRET-77d0"


def record(msg: str = "hello %s", *args: Any, **attrs: Any) -> logging.LogRecord:
    made = logging.LogRecord("seawall_serving.test", logging.INFO, __file__, 1, msg, args, None)
    for name, value in attrs.items():
        setattr(made, name, value)
    return made


def formatted(made: logging.LogRecord, **kwargs: Any) -> dict[str, Any]:
    line = seawall_serving.JsonFormatter(**kwargs).format(made)
    assert "\n" not in line
    result: dict[str, Any] = json.loads(line)
    return result


class Lines(logging.Handler):
    """Collect what a logger writes, formatted as the handler of an application would."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines(seawall_serving.JsonFormatter())
    logger = logging.getLogger("seawall_serving")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# -- fields ------------------------------------------------------------------------------


def test_a_plain_record_has_the_base_fields_only() -> None:
    line = formatted(record("hello %s", "you"))
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["message"] == "hello you"
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")


def test_the_tenant_of_the_request_is_added() -> None:
    token = TENANT.set("acme")
    try:
        assert formatted(record())["tenant_id"] == "acme"
    finally:
        TENANT.reset(token)
    assert "tenant_id" not in formatted(record())


def test_the_current_spans_ids_are_added_in_hex() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    tracer = sdk.TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        line = formatted(record())
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16
    assert "trace_id" not in formatted(record())  # no span: no ids


def test_ids_the_record_carries_win_over_the_current_span() -> None:
    ids = {"otelTraceID": "ab" * 16, "otelSpanID": "cd" * 8}
    line = formatted(record(**ids))
    assert (line["trace_id"], line["span_id"]) == ("ab" * 16, "cd" * 8)
    assert "trace_id" not in formatted(record(otelTraceID="0" * 32, otelSpanID="0" * 16))


def test_the_serving_fields_are_merged_and_exceptions_formatted() -> None:
    try:
        raise ValueError("x")  # noqa: TRY301
    except ValueError:
        made = record(serving={"status": 200, "tenant_id": None, "path": "/a"})
        made.exc_info = sys.exc_info()
    line = formatted(made)
    assert line["status"] == 200
    assert line["tenant_id"] is None
    assert "ValueError: x" in line["exception"]


# -- redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "Authorization",
        "proxy-authorization",
        "api_key",
        "apiKey",
        "APIKey",
        "x-api-key",
        "X-API-Key",
        "openai_api_key",
        "apikey",
        "password",
        "db_password",
        "passwd",
        "client_secret",
        "secretValue",
        "token",
        "access_token",
        "refreshToken",
        "cookie",
        "set-cookie",
    ],
)
def test_secret_keys_match(key: str) -> None:
    assert Redactor(DEFAULT_REDACT).is_secret(key)


@pytest.mark.parametrize(
    "key", ["input_tokens", "tokens", "status", "path", "tenant_id", "run_id", "keyboard"]
)
def test_other_keys_do_not(key: str) -> None:
    assert not Redactor(DEFAULT_REDACT).is_secret(key)


def test_serving_fields_and_mapping_arguments_are_redacted_however_nested() -> None:
    fields = {
        "path": "/a",
        "api_key": SECRET,
        "upstream": {"headers": {"Authorization": f"Bearer {SECRET}", "accept": "*/*"}},
        "attempts": [{"token": SECRET, "n": 1}, "plain"],
    }
    line = formatted(
        record("headers: %s, extra %s", {"X-API-Key": SECRET, "a": 1}, 2, serving=fields)
    )
    text = json.dumps(line)
    assert SECRET not in text
    assert line["api_key"] == "[REDACTED]"
    assert line["upstream"] == {"headers": {"Authorization": "[REDACTED]", "accept": "*/*"}}
    assert line["attempts"] == [{"token": "[REDACTED]", "n": 1}, "plain"]
    assert line["message"] == "headers: {'X-API-Key': '[REDACTED]', 'a': 1}, extra 2"
    assert fields["api_key"] == SECRET  # the record itself is not changed

    by_name = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "auth=%(password)s user=%(user)s", (), None
    )
    by_name.args = {"password": SECRET, "user": "ann"}
    assert formatted(by_name)["message"] == "auth=[REDACTED] user=ann"


def test_redaction_can_be_changed_or_turned_off() -> None:
    made = record("%s", {"password": SECRET, "pin": "1234"}, serving={"pin": "1234"})
    assert formatted(made, redact=())["message"] == f"{{'password': '{SECRET}', 'pin': '1234'}}"
    custom = formatted(made, redact=("pin",))
    assert custom["pin"] == "[REDACTED]"
    assert custom["message"] == f"{{'password': '{SECRET}', 'pin': '[REDACTED]'}}"
    with pytest.raises(TypeError, match="not a single string"):
        seawall_serving.JsonFormatter(redact="password")
    with pytest.raises(ValueError, match="non-empty"):
        seawall_serving.JsonFormatter(redact=("",))


def test_a_self_referencing_mapping_does_not_loop() -> None:
    loop: dict[str, Any] = {"token": SECRET}
    loop["self"] = loop
    line = formatted(record("%s", "x", serving=loop))
    assert SECRET not in json.dumps(line)
    assert "[TRUNCATED]" in json.dumps(line)


# -- failures ----------------------------------------------------------------------------


def fail() -> None:
    raise KeyError(SECRET)


def fail_with_cause() -> None:
    try:
        fail()
    except KeyError as exc:
        raise RuntimeError(f"wrapped {SECRET}") from exc


def test_a_withheld_traceback_keeps_types_and_frames_but_no_message() -> None:
    try:
        fail_with_cause()
    except RuntimeError as exc:
        text = withheld_traceback(exc)
    assert SECRET not in text
    assert "KeyError: (message withheld)" in text
    assert "RuntimeError: (message withheld)" in text
    assert "direct cause" in text
    assert "in fail_with_cause" in text
    assert text.index("KeyError") < text.index("RuntimeError")


@pytest.mark.parametrize(
    "formatter", [seawall_serving.JsonFormatter(), logging.Formatter("%(levelname)s %(message)s")]
)
def test_log_failure_reaches_any_formatter_without_the_message(
    formatter: logging.Formatter,
) -> None:
    logger = logging.getLogger("seawall_serving.test_failure")
    handler = Lines(formatter)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        try:
            fail_with_cause()
        except RuntimeError as exc:
            log_failure(logger, exc, "agent at %s failed", "/a", fields={"run_id": "r1"})
        log_failure(logger, ValueError(SECRET), "quiet", level=logging.DEBUG)
    finally:
        logger.removeHandler(handler)
    assert len(handler.lines) == 2
    text = "\n".join(handler.lines)
    assert SECRET not in text
    assert "RuntimeError: (message withheld)" in text
    assert "agent at /a failed" in text
    if isinstance(formatter, seawall_serving.JsonFormatter):
        first = json.loads(handler.lines[0])
        assert first["error_type"] == "RuntimeError"
        assert first["run_id"] == "r1"
        assert first["level"] == "ERROR"
        assert "Traceback" in first["exception"]


def test_log_failure_writes_nothing_below_the_level() -> None:
    logger = logging.getLogger("seawall_serving.test_quiet")
    handler = Lines(seawall_serving.JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    try:
        log_failure(logger, ValueError("x"), "m", level=logging.WARNING)
    finally:
        logger.removeHandler(handler)
    assert handler.lines == []


# -- the access log ----------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["stdlib", "asgi"])
def test_the_access_record_carries_its_requests_span_ids(adapter: str, lines: Lines) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger("seawall_serving.access").addHandler(keep)
    try:
        with (
            running(adapter, agents={"/a": Echo()}) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            server.service.set_tracer_provider(provider)
            invoke = client.post("/a/invoke", json={"input": 1}, headers={"X-Tenant-ID": "acme"})
            with client.stream("POST", "/a/stream", json={"input": 1}) as stream:
                stream.read()
            for _ in range(500):
                if len(exporter.get_finished_spans()) == 2:
                    break
                threading.Event().wait(0.01)
    finally:
        logging.getLogger("seawall_serving.access").removeHandler(keep)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    access = [json.loads(line) for line in lines.lines if '"seawall_serving.access"' in line]
    by_path = {entry["path"]: entry for entry in access}
    for path in ("/a/invoke", "/a/stream"):
        context = spans[f"POST {path}"].context
        assert context is not None
        assert by_path[path]["trace_id"] == f"{context.trace_id:032x}"
        assert by_path[path]["span_id"] == f"{context.span_id:016x}"
    assert by_path["/a/invoke"]["run_id"] == invoke.headers["x-request-id"]
    assert by_path["/a/invoke"]["tenant_id"] == "acme"
    # Formatted later, away from the request (a QueueHandler's thread): the ids stay.
    later = {json.loads(seawall_serving.JsonFormatter().format(r))["path"]: r for r in records}
    assert set(later) == {"/a/invoke", "/a/stream"}
    for record in records:
        again = json.loads(seawall_serving.JsonFormatter().format(record))
        assert again["trace_id"] == by_path[again["path"]]["trace_id"]
    provider.shutdown()


def test_no_log_line_of_a_request_holds_its_headers_or_body(lines: Lines) -> None:
    with (
        running("stdlib", agents={"/a": Echo()}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        headers = {"Authorization": f"Bearer {SECRET}", "X-API-Key": SECRET}
        client.post("/a/invoke", json={"input": {"password": SECRET}}, headers=headers)
        client.post("/a/invoke", content=b"{" + SECRET.encode(), headers=headers)
        client.post("/nowhere", content=SECRET.encode(), headers=headers)
    assert len(lines.lines) >= 4
    for line in lines.lines:
        assert SECRET not in line
        assert "authorization" not in line.lower()


def test_the_formatter_writes_to_a_stream_handler() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(seawall_serving.JsonFormatter())
    logger = logging.getLogger("seawall_serving.test_stream")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("creds %s", {"password": SECRET})
    finally:
        logger.removeHandler(handler)
    assert json.loads(stream.getvalue())["message"] == "creds {'password': '[REDACTED]'}"


def test_logging_config_can_make_one_by_class_or_factory() -> None:
    import logging.config

    configurator = logging.config.DictConfigurator({"version": 1})
    by_class = configurator.configure_formatter({"class": "seawall_serving.JsonFormatter"})
    by_factory = configurator.configure_formatter(
        {"()": "seawall_serving.JsonFormatter", "redact": ["pin"]}
    )
    assert isinstance(by_class, seawall_serving.JsonFormatter)
    assert isinstance(by_factory, seawall_serving.JsonFormatter)
    made = record("%s", {"pin": 1, "password": 2})
    assert json.loads(by_class.format(made))["message"] == "{'pin': 1, 'password': '[REDACTED]'}"
    assert json.loads(by_factory.format(made))["message"] == "{'pin': '[REDACTED]', 'password': 2}"
