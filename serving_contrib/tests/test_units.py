"""The pure parts, property-tested: addresses, tenants, HTTP heads, the wire format, config."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import seawall
from hypothesis import given
from hypothesis import strategies as st
from seawall.testing import FakeClock

import seawall_serving
from seawall_serving._base import parse_addr
from seawall_serving._service import BodyTooLargeError, StreamCall
from seawall_serving._tenant import check_tenant
from seawall_serving._wire import PROBLEMS, error_payload, problem_response, sse_event
from seawall_serving.adapters.stdlib import _BadRequestError, _body_kind, _parse_head


TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


# -- addresses --------------------------------------------------------------------------


@given(
    host=st.sampled_from(["", "127.0.0.1", "localhost", "[::1]", "0.0.0.0"]),
    port=st.integers(0, 65535),
)
def test_parse_addr_round_trips(host: str, port: int) -> None:
    parsed_host, parsed_port = parse_addr(f"{host}:{port}")
    assert parsed_port == port
    assert parsed_host == (host.strip("[]") or None)


@pytest.mark.parametrize("addr", ["8080", "host:", ":http", ":65536", ":-1", "a:b:c:x"])
def test_parse_addr_rejects_bad_addresses_naming_them(addr: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(addr))):
        parse_addr(addr)
    with pytest.raises(TypeError, match="addr must be a string"):
        parse_addr(8080)  # type: ignore[arg-type]


# -- tenants ----------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_check_tenant_accepts_exactly_the_documented_charset(value: str) -> None:
    reason = check_tenant(value)
    assert (reason is None) == bool(TENANT.fullmatch(value))
    if reason is not None:
        assert isinstance(reason, str)
        assert reason


@given(st.from_regex(TENANT, fullmatch=True))
def test_valid_tenants_pass(value: str) -> None:
    assert check_tenant(value) is None


# -- HTTP heads -------------------------------------------------------------------------


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
    path=st.lists(TOKEN, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    query=st.one_of(st.just(""), TOKEN.map(lambda t: f"q={t}")),
    headers=st.dictionaries(
        TOKEN, st.text(alphabet="abc XYZ,;=/0123", max_size=30).map(str.strip), max_size=8
    ),
    http11=st.booleans(),
)
def test_parse_head_round_trips(
    method: str, path: str, query: str, headers: dict[str, str], http11: bool
) -> None:
    target = f"{path}?{query}" if query else path
    version = "HTTP/1.1" if http11 else "HTTP/1.0"
    lines = [f"{method} {target} {version}"] + [f"{k}: {v}" for k, v in headers.items()]
    parsed = _parse_head("\r\n".join(lines).encode())
    assert parsed == (method, path, query, http11, {k.lower(): v for k, v in headers.items()})


def test_parse_head_joins_repeated_headers() -> None:
    head = b"GET / HTTP/1.1\r\nAccept: a\r\nACCEPT: b\r\nX-One: 1"
    assert _parse_head(head)[4] == {"accept": "a, b", "x-one": "1"}


@given(st.binary(max_size=200))
def test_parse_head_never_fails_but_with_a_bad_request(data: bytes) -> None:
    code = None
    try:
        _parse_head(data)
    except _BadRequestError as exc:
        code = exc.code
    assert code is None or code in PROBLEMS


@pytest.mark.parametrize(
    "head",
    [
        b"GET /",
        b"GET / HTTP/2.0",
        b"get / HTTP/1.1",
        b"GET nopath HTTP/1.1",
        b"GET / HTTP/1.1\r\nNoColon",
        b"GET / HTTP/1.1\r\n folded: x",
        b"GET / HTTP/1.1\r\nSpace : x",
    ],
)
def test_parse_head_rejects_malformed_heads(head: bytes) -> None:
    with pytest.raises(_BadRequestError):
        _parse_head(head)


def test_body_framing() -> None:
    assert _body_kind({}) is None
    assert _body_kind({"content-length": "0"}) is None
    assert _body_kind({"content-length": "12"}) == 12
    assert _body_kind({"transfer-encoding": "chunked"}) == "chunked"
    for bad in (
        {"content-length": "-1"},
        {"content-length": "1e3"},
        {"transfer-encoding": "gzip"},
        {"transfer-encoding": "chunked", "content-length": "3"},
    ):
        with pytest.raises(_BadRequestError):
            _body_kind(bad)


# -- the wire format --------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(PROBLEMS))
def test_every_problem_is_problem_json_with_its_status(code: str) -> None:
    response = problem_response(code, "run-1", retry_after=2.2)
    body = json.loads(response.body)
    problem = PROBLEMS[code]
    assert response.status == problem.status == body["status"]
    assert response.content_type == "application/problem+json"
    assert body == {
        "type": f"urn:seawall-serving:problem:{code}",
        "title": problem.message,
        "status": problem.status,
        "code": code,
        "retryable": problem.retryable,
        "run_id": "run-1",
    }
    retry_after = dict(response.headers).get("Retry-After")
    if problem.status in {429, 503} and problem.retryable:
        assert retry_after == "3"
    else:
        assert retry_after is None


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none())
def test_retry_after_is_a_whole_positive_number_of_seconds(seconds: float | None) -> None:
    response = problem_response("tenant_rate_limited", retry_after=seconds)
    value = int(dict(response.headers)["Retry-After"])
    assert value >= 1
    if seconds is not None and 0 < seconds < 1e9:
        assert value >= seconds


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_sse_events_hold_one_json_line(value: Any) -> None:
    frame = sse_event("data", 7, seawall_serving._wire.dumps(value))
    assert frame.endswith(b"\n\n")
    lines = frame.decode().split("\n")[:-2]
    assert lines[0] == "event: data"
    assert lines[1] == "id: 7"
    assert len(lines) == 3
    assert json.loads(lines[2].removeprefix("data: ")) == value


def test_error_payload_never_holds_exception_text() -> None:
    payload = json.loads(error_payload("internal_error"))
    assert payload == {
        "code": "internal_error",
        "message": PROBLEMS["internal_error"].message,
        "retryable": False,
    }


# -- config and registry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"read_timeout": 0}, ValueError, "Config.read_timeout"),
        ({"drain_timeout": float("inf")}, ValueError, "Config.drain_timeout"),
        ({"write_timeout": "3"}, TypeError, "Config.write_timeout"),
        ({"request_timeout": -1}, ValueError, "Config.request_timeout"),
        ({"max_body_size": 0}, ValueError, "Config.max_body_size"),
        ({"max_body_size": 1.5}, TypeError, "Config.max_body_size"),
        ({"max_in_flight": True}, TypeError, "Config.max_in_flight"),
        ({"tenant_header": "X Tenant"}, ValueError, "Config.tenant_header"),
        ({"default_tenant": "bad tenant"}, ValueError, "Config.default_tenant"),
        ({"tenant_limiter": seawall.RateLimiter(rate=1, burst=1)}, TypeError, "KeyedRateLimiter"),
        ({"access_log": 1}, TypeError, "Config.access_log"),
    ],
)
def test_config_names_the_bad_field(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        seawall_serving.Config(**kwargs)


def test_registry_lists_every_adapter_and_names_unknown_ones() -> None:
    assert set(seawall_serving.available_adapters()) >= {
        "stdlib",
        "asgi",
        "fastapi",
        "aiohttp",
        "flask",
        "grpc",
    }
    assert isinstance(seawall_serving.new(), seawall_serving.StdlibAdapter)
    assert isinstance(seawall_serving.new("asgi"), seawall_serving.AsgiAdapter)
    with pytest.raises(ValueError, match=r"no server adapter named 'gin'; available: .*stdlib"):
        seawall_serving.new("gin")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("v1/chat", "starting with '/'"),
        ("/v1/chat/", "must not end with '/'"),
        ("/v1?x", "plain path"),
        ("/v1//x", "plain path"),
        ("/healthz", "reserved"),
    ],
)
def test_register_rejects_bad_paths(path: str, words: str) -> None:
    adapter = seawall_serving.new()
    with pytest.raises(ValueError, match=re.escape(words)):
        adapter.register_handler(path, lambda _r: seawall_serving.Response(204))
    if path != "/healthz":  # an agent at /healthz mounts /healthz/invoke: allowed
        with pytest.raises(ValueError, match=re.escape(words)):
            adapter.register_agent(path, Words())


def test_register_rejects_non_agents_and_duplicates() -> None:
    adapter = seawall_serving.new()
    with pytest.raises(TypeError, match="agent must have an invoke method, got object"):
        adapter.register_agent("/a", object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler must be callable"):
        adapter.register_handler("/h", 3)  # type: ignore[arg-type]

    class Agent:
        def invoke(self, value: Any) -> Any:
            return value

    adapter.register_agent("/a", Agent())
    with pytest.raises(ValueError, match="'/a/invoke' is already registered"):
        adapter.register_agent("/a", Agent())
    assert adapter.service.routes() == {
        "/a/invoke": "invoke",
        "/a/stream": "stream",
        "/healthz": "healthz",
        "/metrics": "metrics",
        "/readyz": "readyz",
    }


# -- the service without a network, on asyncio and trio ---------------------------------


async def _body(payload: Any) -> Any:
    data = json.dumps(payload).encode()

    async def read(limit: int) -> bytes:
        if len(data) > limit:
            raise BodyTooLargeError
        return data

    return read


HEADERS = {"content-type": "application/json", "x-tenant-id": "acme"}


class Words:
    def invoke(self, value: Any) -> Any:
        return value

    async def stream(self, value: Any) -> Any:
        for word in str(value).split():
            yield word


@pytest.mark.anyio
async def test_service_streams_and_invokes_without_a_network() -> None:
    service = seawall_serving.Service(seawall_serving.Config(clock=FakeClock()))
    service.register_agent("/w", Words())
    service.mark_ready()
    response = await service.handle("POST", "/w/invoke", HEADERS, await _body({"input": "a b"}))
    assert isinstance(response, seawall_serving.Response)
    assert json.loads(response.body)["output"] == "a b"
    call = await service.handle("POST", "/w/stream", HEADERS, await _body({"input": "a b"}))
    assert isinstance(call, StreamCall)
    started: list[tuple[int, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    async def start(status: int, headers: list[tuple[str, str]]) -> None:
        started.append((status, headers))

    async def send(data: bytes) -> None:
        chunks.append(data)

    await call.run(start, send)
    assert started[0][0] == 200
    text = b"".join(chunks).decode()
    assert [line for line in text.split("\n") if line.startswith("event:")] == [
        "event: metadata",
        "event: data",
        "event: data",
        "event: end",
    ]
    assert service.in_flight == 0


@pytest.mark.anyio
async def test_service_counts_nothing_in_flight_after_refusals() -> None:
    service = seawall_serving.Service(seawall_serving.Config(max_body_size=10))
    service.register_agent("/w", Words())
    for path, payload in (("/w/invoke", {"input": "x" * 20}), ("/nope", {})):
        response = await service.handle("POST", path, HEADERS, await _body(payload))
        assert isinstance(response, seawall_serving.Response)
        assert response.status in {404, 413}
    assert service.in_flight == 0
