"""Tests for `seawall.classify` and `seawall.is_retryable`.

httpx, openai (over httpx2), pydantic and trio are installed, so their exceptions are the real
ones, raised where possible by the libraries themselves from mocked responses. requests,
aiohttp and anthropic are not installed: their exceptions are stood in for by small classes
with the same names, bases and attributes.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import http
import http.client
import importlib
import io
import itertools
import json
import math
import urllib.error
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import cast

import httpx
import httpx2
import openai
import pydantic
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from seawall import (
    CircuitOpenError,
    Classification,
    ErrorKind,
    RateLimitedError,
    _classify,
    classify,
    is_retryable,
)


TRANSIENT = ErrorKind.TRANSIENT
CALLER_ERROR = ErrorKind.CALLER_ERROR
QUOTA_EXHAUSTED = ErrorKind.QUOTA_EXHAUSTED
CANCELLED = ErrorKind.CANCELLED
UNKNOWN = ErrorKind.UNKNOWN

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
"""The wall time tests pin, so that HTTP-date Retry-After values are exact."""

ANTHROPIC_OVERLOADED = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}
OPENAI_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Pin the classifier's wall clock at NOW."""
    monkeypatch.setattr(_classify, "_utc_now", lambda: NOW)
    return NOW


# -- building exceptions -------------------------------------------------------------------


class _DuckError(Exception):
    """An exception whose attributes are whatever the test passes as keywords."""

    def __init__(self, message: str = "", /, **attributes: object) -> None:
        super().__init__(message)
        for name, value in attributes.items():
            setattr(self, name, value)


def _shape(name: str, *bases: type[BaseException], module: str) -> type[_DuckError]:
    """Make a stand-in class called *name*, as if defined in *module*."""
    return cast("type[_DuckError]", type(name, bases, {"__module__": module}))


class _Response:
    """The shape of a requests/aiohttp/urllib3 response: a status and headers."""

    def __init__(
        self, *, status_code: int | None = None, status: int | None = None, headers: object = None
    ) -> None:
        self.status_code = status_code
        self.status = status
        self.headers = headers


class Requests:
    """Stand-ins for ``requests.exceptions``, with requests' own class hierarchy."""

    RequestException = _shape("RequestException", _DuckError, OSError, module="requests.exceptions")
    HTTPError = _shape("HTTPError", RequestException, module="requests.exceptions")
    # Spelled ConnError here so as not to shadow the builtin; its __name__ is requests' own.
    ConnError = _shape("ConnectionError", RequestException, module="requests.exceptions")
    Timeout = _shape("Timeout", RequestException, module="requests.exceptions")
    ConnectTimeout = _shape("ConnectTimeout", ConnError, Timeout, module="requests.exceptions")
    ReadTimeout = _shape("ReadTimeout", Timeout, module="requests.exceptions")
    SSLError = _shape("SSLError", ConnError, module="requests.exceptions")
    ChunkedEncodingError = _shape(
        "ChunkedEncodingError", RequestException, module="requests.exceptions"
    )
    InvalidURL = _shape("InvalidURL", RequestException, ValueError, module="requests.exceptions")
    RetryError = _shape("RetryError", RequestException, module="requests.exceptions")


class Aiohttp:
    """Stand-ins for ``aiohttp.client_exceptions``, with aiohttp's own class hierarchy."""

    ClientError = _shape("ClientError", _DuckError, module="aiohttp.client_exceptions")
    ClientResponseError = _shape("ClientResponseError", ClientError, module="aiohttp")
    ClientConnectionError = _shape("ClientConnectionError", ClientError, module="aiohttp")
    ClientOSError = _shape("ClientOSError", ClientConnectionError, OSError, module="aiohttp")
    ClientConnectorError = _shape("ClientConnectorError", ClientOSError, module="aiohttp")
    ServerConnectionError = _shape("ServerConnectionError", ClientConnectionError, module="aiohttp")
    ServerDisconnectedError = _shape(
        "ServerDisconnectedError", ServerConnectionError, module="aiohttp"
    )
    ServerTimeoutError = _shape(
        "ServerTimeoutError", ServerConnectionError, TimeoutError, module="aiohttp"
    )
    ClientPayloadError = _shape("ClientPayloadError", ClientError, module="aiohttp")


class Anthropic:
    """Stand-ins for the ``anthropic`` SDK's exceptions."""

    APIError = _shape("APIError", _DuckError, module="anthropic")
    APIStatusError = _shape("APIStatusError", APIError, module="anthropic")
    OverloadedError = _shape("OverloadedError", APIStatusError, module="anthropic")
    RateLimitError = _shape("RateLimitError", APIStatusError, module="anthropic")
    APIConnectionError = _shape("APIConnectionError", APIError, module="anthropic")
    APITimeoutError = _shape("APITimeoutError", APIConnectionError, module="anthropic")


def _base_exception_group() -> type[BaseException]:
    """BaseExceptionGroup: builtin from 3.11, from trio's exceptiongroup dependency on 3.10."""
    group = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:  # Python 3.10
        group = importlib.import_module("exceptiongroup").BaseExceptionGroup
    return cast("type[BaseException]", group)


BASE_EXCEPTION_GROUP = _base_exception_group()


def _group(*leaves: BaseException) -> BaseException:
    """Build a BaseExceptionGroup of *leaves*."""
    make = cast("Callable[[str, list[BaseException]], BaseException]", BASE_EXCEPTION_GROUP)
    return make("several", list(leaves))


def _httpx_status_error(
    status: int, *, headers: dict[str, str] | None = None, body: object = None
) -> httpx.HTTPStatusError:
    """Let httpx raise HTTPStatusError from a real response, as raise_for_status does."""
    request = httpx.Request("POST", "https://api.test/v1/things")
    response = httpx.Response(status, headers=headers, json=body, request=request)
    with pytest.raises(httpx.HTTPStatusError) as info:
        response.raise_for_status()
    return info.value


def _openai_error(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.OpenAIError:
    """Let the openai SDK turn what *handler* does into its own exception, with no network."""
    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = openai.OpenAI(
        base_url="https://api.test/v1", api_key="sk-test", max_retries=0, http_client=http_client
    )
    with client, pytest.raises(openai.OpenAIError) as info:
        client.models.list()
    return info.value


def _openai_status_error(
    status: int, *, headers: dict[str, str] | None = None, body: object = None
) -> openai.APIStatusError:
    """The SDK's exception for a response with *status*, *headers* and a JSON *body*."""
    content = json.dumps({"error": {"message": "nope"}} if body is None else body)

    def handler(request: httpx2.Request) -> httpx2.Response:
        merged = {"content-type": "application/json", **(headers or {})}
        return httpx2.Response(status, headers=merged, content=content, request=request)

    error = _openai_error(handler)
    assert isinstance(error, openai.APIStatusError)
    return error


def _openai_response(status: int, body: object) -> httpx2.Response:
    """A real httpx2 response, for building openai exceptions by hand."""
    request = httpx2.Request("POST", "https://api.test/v1/messages")
    return httpx2.Response(status, json=body, request=request)


def _catch_trio_cancelled() -> BaseException:
    """Return the trio.Cancelled that trio raises in a cancelled scope."""
    caught: list[BaseException] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled as exc:
                caught.append(exc)
                raise

    trio.run(main)
    return caught[0]


# -- tests ---------------------------------------------------------------------------------


class TestPublicTypes:
    """The shape of the public API."""

    def test_error_kind_values(self) -> None:
        """ErrorKind has the five documented members and values."""
        assert {kind.name: kind.value for kind in ErrorKind} == {
            "TRANSIENT": "transient",
            "CALLER_ERROR": "caller_error",
            "QUOTA_EXHAUSTED": "quota_exhausted",
            "CANCELLED": "cancelled",
            "UNKNOWN": "unknown",
        }

    def test_classification_defaults_and_frozen(self) -> None:
        """Classification defaults retry_after and status_code to None and is immutable."""
        verdict = Classification(TRANSIENT)
        assert (verdict.retry_after, verdict.status_code) == (None, None)
        with pytest.raises(AttributeError):
            verdict.kind = UNKNOWN  # type: ignore[misc]

    def test_public_module_name(self) -> None:
        """The public objects report the public module."""
        assert classify.__module__ == "seawall"
        assert Classification.__module__ == "seawall"


class TestCancellation:
    """Cancellation is never a failure."""

    @pytest.mark.parametrize(
        "exc",
        [
            asyncio.CancelledError(),
            concurrent.futures.CancelledError(),
            KeyboardInterrupt(),
            SystemExit(1),
            GeneratorExit(),
        ],
        ids=type,
    )
    def test_builtin_cancellations(self, exc: BaseException) -> None:
        """asyncio/futures cancellation, interrupts and exits are CANCELLED."""
        assert classify(exc) == Classification(CANCELLED)

    def test_real_trio_cancelled(self) -> None:
        """trio.Cancelled, raised by trio itself in a cancelled scope, is CANCELLED."""
        exc = _catch_trio_cancelled()
        assert type(exc) is trio.Cancelled
        assert classify(exc).kind is CANCELLED
        assert not is_retryable(exc)

    def test_trio_recognised_by_module(self) -> None:
        """A class named Cancelled counts only when it lives in trio."""
        in_trio = _shape("Cancelled", BaseException, module="trio._core._run")
        elsewhere = _shape("Cancelled", BaseException, module="trio_like")
        assert classify(in_trio()).kind is CANCELLED
        assert classify(elsewhere()).kind is UNKNOWN

    def test_cancellation_beats_status(self) -> None:
        """A cancellation carrying an HTTP status is still CANCELLED."""
        cancelled = type("Cancelled", (asyncio.CancelledError,), {"status_code": 503})
        assert classify(cancelled()) == Classification(CANCELLED)


class TestSeawallRejections:
    """seawall's own RejectedError family."""

    def test_circuit_open_is_transient_with_its_wait(self) -> None:
        """CircuitOpenError(retry_after=3.0) is TRANSIENT with retry_after 3.0."""
        exc = CircuitOpenError("open", primitive_name="db", retry_after=3.0)
        assert classify(exc) == Classification(TRANSIENT, retry_after=3.0)
        assert is_retryable(exc)

    def test_rejection_without_wait(self) -> None:
        """A rejection that cannot tell the wait has retry_after None."""
        exc = RateLimitedError("slow down", primitive_name="llm", retry_after=None)
        assert classify(exc) == Classification(TRANSIENT)

    def test_rejection_with_bad_wait(self) -> None:
        """A non-finite wait on a rejection is dropped, not passed on."""
        exc = CircuitOpenError("open", primitive_name="db", retry_after=math.nan)
        assert classify(exc).retry_after is None


class TestHttpxStatusErrors:
    """httpx.HTTPStatusError, built from real httpx requests and responses."""

    def test_503_with_retry_after(self) -> None:
        """A 503 with Retry-After is TRANSIENT and carries the wait and the status."""
        exc = _httpx_status_error(503, headers={"Retry-After": "12"})
        assert classify(exc) == Classification(TRANSIENT, retry_after=12.0, status_code=503)

    def test_constructed_directly(self) -> None:
        """HTTPStatusError built with message, request and response is read the same way."""
        request = httpx.Request("GET", "https://api.test/")
        response = httpx.Response(
            429, headers={"retry-after-ms": "250"}, json={"error": "slow"}, request=request
        )
        exc = httpx.HTTPStatusError("Too Many Requests", request=request, response=response)
        assert classify(exc) == Classification(TRANSIENT, retry_after=0.25, status_code=429)

    def test_404_is_caller_error(self) -> None:
        """A 404 is CALLER_ERROR."""
        exc = _httpx_status_error(404, body={"detail": "missing"})
        assert classify(exc) == Classification(CALLER_ERROR, status_code=404)

    def test_429_quota_body_is_not_read(self) -> None:
        """httpx leaves the body unparsed, so a quota 429 from plain httpx stays TRANSIENT."""
        exc = _httpx_status_error(429, body=OPENAI_QUOTA)
        assert classify(exc) == Classification(TRANSIENT, status_code=429)


class TestHttpxTransportErrors:
    """httpx's transport errors, recognised by class name."""

    request = httpx.Request("GET", "https://api.test/")

    @pytest.mark.parametrize(
        "make",
        [
            httpx.ConnectTimeout,
            httpx.ReadTimeout,
            httpx.WriteTimeout,
            httpx.PoolTimeout,
            httpx.ConnectError,
            httpx.ReadError,
            httpx.WriteError,
            httpx.CloseError,
            httpx.RemoteProtocolError,
        ],
    )
    def test_transient(self, make: Callable[..., httpx.TransportError]) -> None:
        """Timeouts, network errors and a server breaking the protocol are TRANSIENT."""
        assert classify(make("boom", request=self.request)) == Classification(TRANSIENT)

    @pytest.mark.parametrize(
        "make", [httpx.UnsupportedProtocol, httpx.LocalProtocolError], ids=lambda c: c.__name__
    )
    def test_caller_errors(self, make: Callable[..., httpx.TransportError]) -> None:
        """A bad scheme or our own protocol violation is CALLER_ERROR."""
        assert classify(make("bad", request=self.request)).kind is CALLER_ERROR

    def test_invalid_url(self) -> None:
        """httpx.InvalidURL, raised by httpx for a malformed URL, is CALLER_ERROR."""
        with pytest.raises(httpx.InvalidURL) as info:
            httpx.URL("https://exa mple.com:notaport/")
        assert classify(info.value).kind is CALLER_ERROR

    def test_raised_by_a_client(self) -> None:
        """A timeout raised inside a real httpx.Client call is TRANSIENT."""

        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadTimeout("slow", request=request)

        with (
            httpx.Client(transport=httpx.MockTransport(handler)) as client,
            pytest.raises(httpx.ReadTimeout) as info,
        ):
            client.get("https://api.test/")
        assert is_retryable(info.value)


class TestOpenAIStatusErrors:
    """openai's status errors, raised by the real SDK from mocked responses."""

    def test_rate_limit_with_retry_after(self) -> None:
        """RateLimitError with Retry-After seconds is TRANSIENT with that wait."""
        exc = _openai_status_error(429, headers={"retry-after": "7"})
        assert type(exc) is openai.RateLimitError
        assert classify(exc) == Classification(TRANSIENT, retry_after=7.0, status_code=429)

    def test_rate_limit_with_retry_after_ms(self) -> None:
        """retry-after-ms wins over retry-after and is read as milliseconds."""
        exc = _openai_status_error(429, headers={"retry-after-ms": "1500", "retry-after": "9"})
        assert classify(exc) == Classification(TRANSIENT, retry_after=1.5, status_code=429)

    def test_rate_limit_with_http_date(self, frozen_now: datetime) -> None:
        """An HTTP-date Retry-After is read relative to the current UTC time."""
        exc = _openai_status_error(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"})
        assert frozen_now == NOW
        assert classify(exc) == Classification(TRANSIENT, retry_after=10.0, status_code=429)

    def test_insufficient_quota(self) -> None:
        """A 429 with insufficient_quota is QUOTA_EXHAUSTED, and not retryable."""
        exc = _openai_status_error(429, body=OPENAI_QUOTA)
        assert type(exc) is openai.RateLimitError
        assert exc.code == "insufficient_quota"
        assert classify(exc) == Classification(QUOTA_EXHAUSTED, status_code=429)
        assert not is_retryable(exc)

    def test_service_unavailable(self) -> None:
        """A 503 (InternalServerError) is TRANSIENT."""
        exc = _openai_status_error(503)
        assert type(exc) is openai.InternalServerError
        assert classify(exc) == Classification(TRANSIENT, status_code=503)

    def test_bad_request(self) -> None:
        """A 400 (BadRequestError) is CALLER_ERROR."""
        exc = _openai_status_error(400, body={"error": {"message": "bad", "type": "invalid"}})
        assert type(exc) is openai.BadRequestError
        assert classify(exc) == Classification(CALLER_ERROR, status_code=400)

    def test_authentication(self) -> None:
        """A 401 (AuthenticationError) is CALLER_ERROR."""
        exc = _openai_status_error(401)
        assert type(exc) is openai.AuthenticationError
        assert classify(exc) == Classification(CALLER_ERROR, status_code=401)

    def test_overloaded_through_sdk(self) -> None:
        """A 529 with an anthropic-style overloaded body is TRANSIENT."""
        exc = _openai_status_error(529, body=ANTHROPIC_OVERLOADED)
        assert classify(exc) == Classification(TRANSIENT, status_code=529)

    def test_overloaded_built_by_hand(self) -> None:
        """APIStatusError(529) built with the full overloaded body is TRANSIENT."""
        response = _openai_response(529, ANTHROPIC_OVERLOADED)
        exc = openai.APIStatusError("Overloaded", response=response, body=ANTHROPIC_OVERLOADED)
        assert classify(exc) == Classification(TRANSIENT, status_code=529)

    def test_subclasses_built_by_hand(self) -> None:
        """openai's subclasses built directly classify like the SDK's own."""
        response = _openai_response(401, {"error": {"message": "no"}})
        assert classify(openai.AuthenticationError("no", response=response, body=None)).kind is (
            CALLER_ERROR
        )
        quota = OPENAI_QUOTA["error"]
        response = _openai_response(429, OPENAI_QUOTA)
        exc = openai.RateLimitError("quota", response=response, body=quota)
        assert classify(exc).kind is QUOTA_EXHAUSTED


class TestOpenAITransportErrors:
    """openai's connection and timeout errors."""

    request = httpx2.Request("POST", "https://api.test/v1/chat/completions")

    def test_connect_error_through_sdk(self) -> None:
        """A connection failure in the transport becomes a TRANSIENT APIConnectionError."""

        def handler(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ConnectError("refused", request=request)

        exc = _openai_error(handler)
        assert type(exc) is openai.APIConnectionError
        assert classify(exc) == Classification(TRANSIENT)

    def test_timeout_through_sdk(self) -> None:
        """A read timeout in the transport becomes a TRANSIENT APITimeoutError."""

        def handler(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ReadTimeout("slow", request=request)

        exc = _openai_error(handler)
        assert type(exc) is openai.APITimeoutError
        assert classify(exc) == Classification(TRANSIENT)

    def test_built_by_hand(self) -> None:
        """APITimeoutError(request=...) and APIConnectionError(request=...) are TRANSIENT."""
        assert is_retryable(openai.APITimeoutError(request=self.request))
        assert is_retryable(openai.APIConnectionError(request=self.request))


class TestStatusRules:
    """How an HTTP status decides the kind."""

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (408, TRANSIENT),
            (425, TRANSIENT),
            (429, TRANSIENT),
            (500, TRANSIENT),
            (502, TRANSIENT),
            (503, TRANSIENT),
            (504, TRANSIENT),
            (507, TRANSIENT),
            (529, TRANSIENT),
            (501, CALLER_ERROR),
            (505, CALLER_ERROR),
            (400, CALLER_ERROR),
            (401, CALLER_ERROR),
            (403, CALLER_ERROR),
            (404, CALLER_ERROR),
            (409, CALLER_ERROR),
            (413, CALLER_ERROR),
            (422, CALLER_ERROR),
            (451, CALLER_ERROR),
        ],
    )
    def test_status_table(self, status: int, kind: ErrorKind) -> None:
        """Each status maps to its documented kind."""
        assert classify(_DuckError(status_code=status)) == Classification(kind, status_code=status)

    def test_status_enum_counts(self) -> None:
        """An http.HTTPStatus member counts as its int."""
        verdict = classify(_DuckError(status_code=http.HTTPStatus.BAD_GATEWAY))
        assert verdict == Classification(TRANSIENT, status_code=502)
        assert type(verdict.status_code) is int

    @pytest.mark.parametrize("value", ["503", 503.0, True, None, -1, 99, 600, 10**30])
    def test_non_status_values_ignored(self, value: object) -> None:
        """Strings, floats, bools and ints outside 100..599 are not statuses."""
        assert classify(_DuckError(status_code=value)) == Classification(UNKNOWN)

    def test_source_order(self) -> None:
        """status_code, then status, then response.status_code, then response.status."""
        assert classify(_DuckError(status_code=None, status=503)).status_code == 503
        assert classify(_DuckError(response=_Response(status=418))).status_code == 418
        both = _DuckError(status_code=400, response=_Response(status_code=503))
        assert classify(both).kind is CALLER_ERROR

    def test_status_beats_class_name(self) -> None:
        """A status decides even against a transient or caller class name."""
        timeout = type("TimeoutWith400", (TimeoutError,), {"status_code": 400})
        value = type("ValueWith503", (ValueError,), {"status_code": 503})
        assert classify(timeout()).kind is CALLER_ERROR
        assert classify(value()).kind is TRANSIENT

    def test_attributes_from_class_level(self) -> None:
        """Statuses from __getattr__, properties and slots are read, not only instance dicts."""

        class DynamicError(Exception):
            def __getattr__(self, name: str) -> object:
                if name == "status_code":
                    return 503
                raise AttributeError(name)

        class PropertyError(Exception):
            @property
            def status(self) -> int:
                return 404

        class SlotError(Exception):
            __slots__ = ("status_code",)

            def __init__(self, status_code: int) -> None:
                super().__init__()
                self.status_code = status_code

        assert classify(DynamicError()).kind is TRANSIENT
        assert classify(PropertyError()).kind is CALLER_ERROR
        assert classify(SlotError(429)).kind is TRANSIENT

    def test_success_status_decides_nothing(self) -> None:
        """A 2xx status is reported but leaves the kind to the other rules."""
        assert classify(_DuckError(status_code=200)) == Classification(UNKNOWN, status_code=200)
        timeout = Requests.ReadTimeout(response=_Response(status_code=200))
        assert classify(timeout) == Classification(TRANSIENT, status_code=200)

    def test_urllib_http_error(self) -> None:
        """The stdlib's urllib.error.HTTPError is read through .status and its headers."""
        headers = http.client.HTTPMessage()
        headers["Retry-After"] = "4"
        exc = urllib.error.HTTPError("https://api.test/", 503, "busy", headers, io.BytesIO())
        assert classify(exc) == Classification(TRANSIENT, retry_after=4.0, status_code=503)


class TestRequestsShapes:
    """Exceptions shaped like requests'."""

    def test_http_error_with_retry_after(self) -> None:
        """HTTPError(response=503 with Retry-After) is TRANSIENT with the wait."""
        response = _Response(status_code=503, headers={"Retry-After": "30"})
        exc = Requests.HTTPError("503 Server Error", response=response)
        assert classify(exc) == Classification(TRANSIENT, retry_after=30.0, status_code=503)

    def test_http_error_403(self) -> None:
        """HTTPError(response=403) is CALLER_ERROR."""
        exc = Requests.HTTPError("403", response=_Response(status_code=403, headers={}))
        assert classify(exc) == Classification(CALLER_ERROR, status_code=403)

    @pytest.mark.parametrize(
        "cls",
        [
            Requests.ConnError,
            Requests.Timeout,
            Requests.ConnectTimeout,
            Requests.ReadTimeout,
            Requests.SSLError,
            Requests.ChunkedEncodingError,
        ],
        ids=lambda c: c.__name__,
    )
    def test_transient(self, cls: type[_DuckError]) -> None:
        """Connection errors, timeouts and broken chunked bodies are TRANSIENT."""
        assert classify(cls("boom", response=None)) == Classification(TRANSIENT)

    def test_invalid_url(self) -> None:
        """requests' InvalidURL (also a ValueError) is CALLER_ERROR."""
        assert classify(Requests.InvalidURL("no host")).kind is CALLER_ERROR

    def test_other_request_exception(self) -> None:
        """A RequestException with nothing recognisable is UNKNOWN."""
        assert classify(Requests.RetryError("gave up", response=None)) == Classification(UNKNOWN)


class TestAiohttpShapes:
    """Exceptions shaped like aiohttp's."""

    def test_client_response_error(self) -> None:
        """ClientResponseError(status=503, headers=...) is TRANSIENT with the wait."""
        exc = Aiohttp.ClientResponseError(status=503, headers={"Retry-After": "2.5"}, message="x")
        assert classify(exc) == Classification(TRANSIENT, retry_after=2.5, status_code=503)

    def test_client_response_error_404(self) -> None:
        """ClientResponseError(status=404, headers=None) is CALLER_ERROR."""
        exc = Aiohttp.ClientResponseError(status=404, headers=None)
        assert classify(exc) == Classification(CALLER_ERROR, status_code=404)

    @pytest.mark.parametrize(
        "cls",
        [
            Aiohttp.ClientConnectionError,
            Aiohttp.ClientConnectorError,
            Aiohttp.ServerDisconnectedError,
            Aiohttp.ServerTimeoutError,
            Aiohttp.ClientPayloadError,
        ],
        ids=lambda c: c.__name__,
    )
    def test_transient(self, cls: type[_DuckError]) -> None:
        """Connection, disconnect, timeout and payload errors are TRANSIENT."""
        assert classify(cls("boom")) == Classification(TRANSIENT)


class TestAnthropicShapes:
    """Exceptions shaped like anthropic's."""

    def test_overloaded_529(self) -> None:
        """OverloadedError (529, overloaded_error body) is TRANSIENT."""
        response = _Response(status_code=529, headers={"retry-after": "4"})
        exc = Anthropic.OverloadedError(
            "Overloaded", status_code=529, response=response, body=ANTHROPIC_OVERLOADED
        )
        assert classify(exc) == Classification(TRANSIENT, retry_after=4.0, status_code=529)

    def test_overloaded_in_stream(self) -> None:
        """An overloaded_error event inside a 200 stream is TRANSIENT."""
        exc = Anthropic.APIStatusError(
            "Overloaded",
            status_code=200,
            response=_Response(status_code=200),
            body=ANTHROPIC_OVERLOADED,
        )
        assert classify(exc) == Classification(TRANSIENT, status_code=200)

    def test_overloaded_type_without_status(self) -> None:
        """An error whose type is overloaded_error, with no status, is TRANSIENT."""
        assert classify(Anthropic.APIError("x", type="overloaded_error")).kind is TRANSIENT

    def test_rate_limit(self) -> None:
        """A 429 rate_limit_error is TRANSIENT with its Retry-After."""
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
        response = _Response(status_code=429, headers={"retry-after": "20"})
        exc = Anthropic.RateLimitError("x", status_code=429, response=response, body=body)
        assert classify(exc) == Classification(TRANSIENT, retry_after=20.0, status_code=429)

    @pytest.mark.parametrize("cls", [Anthropic.APIConnectionError, Anthropic.APITimeoutError])
    def test_transport(self, cls: type[_DuckError]) -> None:
        """APIConnectionError and APITimeoutError are TRANSIENT."""
        assert is_retryable(cls("down", body=None))


class TestQuotaCodes:
    """Where quota exhaustion is read from."""

    @pytest.mark.parametrize(
        "attributes",
        [
            {"code": "insufficient_quota"},
            {"type": "billing_hard_limit_reached"},
            {"body": {"code": "quota_exceeded"}},
            {"body": {"type": "insufficient_quota"}},
            {"body": {"error": {"code": "insufficient_quota"}}},
            {"body": {"error": {"type": "billing_not_active"}}},
            {"body": {"error": "insufficient_quota"}},
        ],
    )
    def test_quota_codes_with_429(self, attributes: dict[str, object]) -> None:
        """A 429 with a quota code in any documented place is QUOTA_EXHAUSTED."""
        exc = _DuckError(status_code=429, **attributes)
        assert classify(exc) == Classification(QUOTA_EXHAUSTED, status_code=429)

    def test_quota_code_without_status(self) -> None:
        """A quota code with no status is QUOTA_EXHAUSTED."""
        assert classify(_DuckError(code="insufficient_quota")).kind is QUOTA_EXHAUSTED

    def test_status_other_than_429_wins(self) -> None:
        """With a 5xx or another 4xx, the status rule decides, not the code."""
        assert classify(_DuckError(status_code=503, code="insufficient_quota")).kind is TRANSIENT
        assert classify(_DuckError(status_code=403, code="insufficient_quota")).kind is CALLER_ERROR

    def test_other_codes(self) -> None:
        """A 429 with another code, or an odd code value, stays TRANSIENT."""
        assert classify(_DuckError(status_code=429, code="rate_limit_exceeded")).kind is TRANSIENT
        odd = _DuckError(status_code=429, code=["insufficient_quota"], type={}, body={"error": [1]})
        assert classify(odd).kind is TRANSIENT


class TestRetryAfter:
    """Reading the server's requested wait."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (2, 2.0),
            (0.5, 0.5),
            (timedelta(minutes=1), 60.0),
            ("3", 3.0),
            (b"4", 4.0),
            (-1, None),
            (math.nan, None),
            (math.inf, None),
            (True, None),
            (10**400, None),
            (timedelta(seconds=-1), None),
            ("soon", None),
            (object(), None),
        ],
    )
    def test_attribute(self, value: object, expected: float | None) -> None:
        """exc.retry_after may be seconds, a timedelta or header text; bad values are dropped."""
        assert classify(_DuckError(status_code=503, retry_after=value)).retry_after == expected

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"retry-after": "120"}, 120.0),
            ({"Retry-After": "1.5"}, 1.5),
            ({"RETRY-AFTER": "2"}, 2.0),
            ({"rEtRy-AfTeR": "3"}, 3.0),
            ({"Retry-After-Ms": "20"}, 0.02),
            ({"retry-after-ms": "nonsense", "retry-after": "5"}, 5.0),
            ({"retry-after-ms": "-5", "retry-after": "6"}, 6.0),
            ({"retry-after": "-3"}, None),
            ({"retry-after": "nan"}, None),
            ({"retry-after": "inf"}, None),
            ({"retry-after": "soon-ish"}, None),
            ({"retry-after": ""}, None),
            ({"retry-after": None}, None),
            ({"retry-after": 7}, None),
            ({"retry-after": b" 8 "}, 8.0),
            ({}, None),
        ],
    )
    def test_plain_dict_headers(self, headers: dict[str, object], expected: float | None) -> None:
        """Headers in a plain dict are read in any case; garbage gives None."""
        exc = _DuckError(response=_Response(status_code=503, headers=headers))
        assert classify(exc) == Classification(TRANSIENT, retry_after=expected, status_code=503)

    def test_http_date_future_and_past(self, frozen_now: datetime) -> None:
        """A future HTTP-date gives the seconds until it; a past one gives 0."""
        future = _DuckError(
            status_code=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:30:00 GMT"}
        )
        past = _DuckError(status_code=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:00:00 GMT"})
        assert frozen_now == NOW
        assert classify(future).retry_after == 120.0
        assert classify(past).retry_after == 0.0

    def test_http_date_without_zone(self, frozen_now: datetime) -> None:
        """An HTTP-date in -0000 (no known zone) is taken as UTC."""
        exc = _DuckError(
            status_code=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:30 -0000"}
        )
        assert frozen_now == NOW
        assert classify(exc).retry_after == 30.0

    def test_http_date_invalid(self, frozen_now: datetime) -> None:
        """An impossible date gives None."""
        exc = _DuckError(status_code=503, headers={"Retry-After": "Mon, 99 Feb 2015 00:00:00 GMT"})
        assert frozen_now == NOW
        assert classify(exc).retry_after is None

    def test_real_wall_clock_past_date(self) -> None:
        """Without the pinned clock, a date long past gives 0 (the real helper works)."""
        exc = _DuckError(status_code=503, headers={"Retry-After": "Thu, 01 Jan 1998 00:00:00 GMT"})
        assert classify(exc).retry_after == 0.0

    def test_response_headers_before_exception_headers(self) -> None:
        """exc.response.headers is read first, exc.headers second."""
        both = _DuckError(
            status_code=503,
            response=_Response(headers={"retry-after": "1"}),
            headers={"retry-after": "2"},
        )
        only_exc = _DuckError(
            status_code=503, response=_Response(headers={}), headers={"retry-after": "2"}
        )
        assert classify(both).retry_after == 1.0
        assert classify(only_exc).retry_after == 2.0

    def test_attribute_before_headers(self) -> None:
        """An explicit retry_after attribute wins over headers."""
        exc = _DuckError(status_code=503, retry_after=9, headers={"retry-after": "2"})
        assert classify(exc).retry_after == 9.0

    def test_httpx_headers_any_case(self) -> None:
        """httpx.Headers are case-insensitive, whatever case the server used."""
        exc = _httpx_status_error(503, headers={"RETRY-AFTER-MS": "100"})
        assert classify(exc).retry_after == 0.1

    def test_retry_after_on_caller_error(self) -> None:
        """A wait is reported even when the kind is not retryable."""
        exc = _DuckError(status_code=400, headers={"retry-after": "5"})
        assert classify(exc) == Classification(CALLER_ERROR, retry_after=5.0, status_code=400)


class _Hostile:
    """An object whose every attribute read raises."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(name)


class _BrokenHeaders:
    """A header mapping whose get raises."""

    def get(self, name: str) -> object:
        raise KeyError(name)


class TestNeverRaises:
    """Classification tolerates anything an exception carries."""

    def test_hostile_attributes(self) -> None:
        """Attributes and responses that raise on access give a plain verdict."""

        class NastyError(Exception):
            def __getattribute__(self, name: str) -> object:
                if name in {"status_code", "status", "response", "headers", "retry_after", "body"}:
                    raise RuntimeError(name)
                return super().__getattribute__(name)

        assert classify(NastyError()) == Classification(UNKNOWN)
        assert classify(_DuckError(response=_Hostile())) == Classification(UNKNOWN)

    def test_broken_headers(self) -> None:
        """A header mapping that raises, or is not a mapping, gives retry_after None."""
        assert classify(_DuckError(status_code=503, headers=_BrokenHeaders())).retry_after is None
        assert classify(_DuckError(status_code=503, headers=["retry-after: 5"])).retry_after is None
        assert classify(_DuckError(status_code=503, headers={1: "5"})).retry_after is None

    @given(
        status=st.one_of(st.none(), st.integers(), st.text(), st.booleans(), st.floats()),
        retry_after_header=st.one_of(st.none(), st.text()),
        retry_after_ms_header=st.one_of(st.none(), st.text()),
        attribute=st.one_of(
            st.none(), st.integers(), st.floats(), st.text(), st.timedeltas(), st.binary()
        ),
        code=st.one_of(st.none(), st.text(), st.sampled_from(sorted(_classify._QUOTA_CODES))),
    )
    def test_arbitrary_values(
        self,
        status: object,
        retry_after_header: str | None,
        retry_after_ms_header: str | None,
        attribute: object,
        code: object,
    ) -> None:
        """classify never raises, and retry_after is None or finite and >= 0."""
        headers: dict[str, object] = {}
        if retry_after_header is not None:
            headers["retry-after"] = retry_after_header
        if retry_after_ms_header is not None:
            headers["Retry-After-Ms"] = retry_after_ms_header
        for exc in (
            _DuckError(status_code=status, headers=headers, code=code),
            _DuckError(status=status, retry_after=attribute, body={"error": {"code": code}}),
            _DuckError(response=_Response(status_code=None, status=None, headers=headers)),
            _DuckError(response=_DuckError(status_code=status, headers=headers), type=code),
        ):
            verdict = classify(exc)
            assert isinstance(verdict.kind, ErrorKind)
            assert verdict.retry_after is None or (
                math.isfinite(verdict.retry_after) and verdict.retry_after >= 0
            )
            assert verdict.status_code is None or 100 <= verdict.status_code <= 599
            assert is_retryable(exc) is (verdict.kind is TRANSIENT)


class TestClassNames:
    """Builtin and library exceptions recognised by name along the MRO."""

    @pytest.mark.parametrize(
        "exc",
        [
            TimeoutError(),
            asyncio.TimeoutError(),
            concurrent.futures.TimeoutError(),
            ConnectionError(),
            ConnectionResetError(),
            ConnectionRefusedError(),
            BrokenPipeError(),
            trio.TooSlowError(),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_transient_builtins(self, exc: BaseException) -> None:
        """Timeouts and connection errors are TRANSIENT."""
        assert classify(exc) == Classification(TRANSIENT)

    @pytest.mark.parametrize(
        "exc",
        [ValueError("bad"), TypeError("bad"), json.JSONDecodeError("bad", "{", 0)],
        ids=lambda e: type(e).__name__,
    )
    def test_caller_builtins(self, exc: BaseException) -> None:
        """ValueError and TypeError (and their subclasses) are CALLER_ERROR."""
        assert classify(exc) == Classification(CALLER_ERROR)

    def test_pydantic_validation_error(self) -> None:
        """A real pydantic ValidationError is CALLER_ERROR."""
        with pytest.raises(pydantic.ValidationError) as info:
            pydantic.TypeAdapter(int).validate_python("not a number")
        assert classify(info.value).kind is CALLER_ERROR

    @pytest.mark.parametrize(
        "exc",
        [RuntimeError(), KeyError("k"), OSError(), ZeroDivisionError(), Exception()],
        ids=lambda e: type(e).__name__,
    )
    def test_unknown(self, exc: BaseException) -> None:
        """Anything unrecognised is UNKNOWN."""
        assert classify(exc) is classify(exc)  # the shared verdict, no allocation
        assert classify(exc) == Classification(UNKNOWN)

    def test_most_derived_name_wins(self) -> None:
        """The first recognised class along the MRO decides."""
        caller = type("InvalidURL", (ConnectionError,), {})
        transient = type("RemoteProtocolError", (ValueError,), {})
        assert classify(caller()).kind is CALLER_ERROR
        assert classify(transient()).kind is TRANSIENT

    def test_type_cache_is_bounded(self) -> None:
        """Many run-time classes do not grow the per-type cache past its bound."""
        for index in range(_classify._TYPE_CACHE_SIZE + 50):
            cls = type(f"Dynamic{index}", (TimeoutError,), {})
            assert classify(cls()).kind is TRANSIENT
        assert len(_classify._FACTS_BY_TYPE) <= _classify._TYPE_CACHE_SIZE


class TestExceptionGroups:
    """Exception groups take one verdict from their leaves."""

    def test_all_cancelled(self) -> None:
        """A group of cancellations is CANCELLED."""
        group = _group(asyncio.CancelledError(), _group(KeyboardInterrupt()))
        assert classify(group) == Classification(CANCELLED)

    def test_transient_and_unknown(self) -> None:
        """A transient leaf with no caller or quota leaf makes the group TRANSIENT."""
        group = _group(RuntimeError(), CircuitOpenError("x", primitive_name="p", retry_after=2.0))
        assert classify(group) == Classification(TRANSIENT, retry_after=2.0)

    def test_longest_wait(self) -> None:
        """The group's retry_after is the largest of its leaves'."""
        group = _group(
            _DuckError(status_code=503, retry_after=5),
            _DuckError(status_code=429, retry_after=2),
            TimeoutError(),
        )
        assert classify(group) == Classification(TRANSIENT, retry_after=5.0, status_code=503)

    def test_caller_error_wins(self) -> None:
        """Any caller error makes the group that caller error, wherever it is."""
        group = _group(
            TimeoutError(), _group(_DuckError(status_code=404)), asyncio.CancelledError()
        )
        assert classify(group) == Classification(CALLER_ERROR, status_code=404)

    def test_quota_wins(self) -> None:
        """A quota leaf makes the group QUOTA_EXHAUSTED."""
        group = _group(ConnectionError(), _DuckError(status_code=429, code="insufficient_quota"))
        assert classify(group).kind is QUOTA_EXHAUSTED

    def test_cancelled_and_transient(self) -> None:
        """Cancelled leaves are ignored next to a transient one."""
        assert classify(_group(asyncio.CancelledError(), TimeoutError())).kind is TRANSIENT

    def test_cancelled_and_unknown(self) -> None:
        """With no transient leaf, the first non-cancelled leaf decides."""
        group = _group(KeyboardInterrupt(), RuntimeError(), TimeoutError(), KeyError())
        assert classify(_group(KeyboardInterrupt(), RuntimeError())).kind is UNKNOWN
        assert classify(group).kind is TRANSIENT

    def test_deep_nesting_is_bounded(self) -> None:
        """Absurdly deep nesting gives UNKNOWN instead of recursing without end."""
        group = _group(TimeoutError())
        for _ in range(50):
            group = _group(group)
        assert classify(group).kind is UNKNOWN

    def test_real_trio_nursery_group(self) -> None:
        """The group a trio nursery raises for two failed tasks is classified by its leaves."""

        async def fail(exc: Exception) -> None:
            # No checkpoint before raising, so neither task is cancelled by the other's failure.
            raise exc

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fail, httpx.ReadTimeout("slow"))
                nursery.start_soon(fail, httpx.ConnectError("refused"))

        with pytest.raises(BASE_EXCEPTION_GROUP) as info:
            trio.run(main)
        assert len(getattr(info.value, "exceptions", ())) == 2
        assert classify(info.value) == Classification(TRANSIENT)


class TestCauses:
    """An UNKNOWN wrapper takes its cause's verdict."""

    def test_wrapped_timeout(self) -> None:
        """RuntimeError raised from an httpx timeout is TRANSIENT."""

        def fetch() -> None:
            raise httpx.ReadTimeout("slow")

        def wrapper() -> None:
            try:
                fetch()
            except httpx.ReadTimeout as inner:
                raise RuntimeError("fetch failed") from inner

        with pytest.raises(RuntimeError) as info:
            wrapper()
        assert classify(info.value) == Classification(TRANSIENT)

    def test_chain_of_wrappers(self) -> None:
        """The first non-UNKNOWN cause within four links decides."""
        exc = _chain(RuntimeError(), RuntimeError(), RuntimeError(), _DuckError(status_code=401))
        assert classify(exc) == Classification(CALLER_ERROR, status_code=401)

    def test_chain_too_long(self) -> None:
        """A cause more than four links away is not consulted."""
        exc = _chain(*(RuntimeError() for _ in range(5)), TimeoutError())
        assert classify(exc) == Classification(UNKNOWN)

    def test_cycle(self) -> None:
        """A cyclic cause chain ends."""
        first, second = RuntimeError(), KeyError()
        first.__cause__, second.__cause__ = second, first
        assert classify(first).kind is UNKNOWN

    def test_known_wrapper_keeps_its_verdict(self) -> None:
        """Only UNKNOWN exceptions look at their cause."""
        exc = _chain(ValueError("bad input"), TimeoutError())
        assert classify(exc).kind is CALLER_ERROR

    def test_context_is_not_a_cause(self) -> None:
        """An implicit __context__ is not followed."""
        exc = RuntimeError()
        exc.__context__ = TimeoutError()
        assert classify(exc).kind is UNKNOWN

    def test_cause_inside_group(self) -> None:
        """Group leaves fall back to their causes too."""
        assert classify(_group(_chain(RuntimeError(), ConnectionError()))).kind is TRANSIENT


def _chain(*excs: BaseException) -> BaseException:
    """Link *excs* so that each is the __cause__ of the one before it."""
    for outer, inner in itertools.pairwise(excs):
        outer.__cause__ = inner
    return excs[0]


def _examples() -> Iterator[BaseException]:
    """A spread of exceptions of every kind."""
    yield TimeoutError()
    yield ValueError()
    yield RuntimeError()
    yield asyncio.CancelledError()
    yield KeyboardInterrupt()
    yield CircuitOpenError("open", primitive_name="x", retry_after=1.0)
    yield _DuckError(status_code=429)
    yield _DuckError(status_code=429, code="insufficient_quota")
    yield _DuckError(status_code=501)
    yield _DuckError(status_code=503)
    yield httpx.ConnectTimeout("x")
    yield httpx.UnsupportedProtocol("x")
    yield Requests.ConnError("x")
    yield Aiohttp.ServerDisconnectedError("x")
    yield _group(TimeoutError(), RuntimeError())
    yield _chain(RuntimeError(), ConnectionError())


class TestIsRetryable:
    """is_retryable is exactly "classify says TRANSIENT"."""

    @pytest.mark.parametrize("exc", list(_examples()), ids=lambda e: type(e).__name__)
    def test_matches_classify(self, exc: BaseException) -> None:
        """is_retryable(exc) is classify(exc).kind is TRANSIENT."""
        assert is_retryable(exc) is (classify(exc).kind is TRANSIENT)

    def test_examples_cover_every_kind(self) -> None:
        """The examples above exercise all five kinds."""
        assert {classify(exc).kind for exc in _examples()} == set(ErrorKind)
