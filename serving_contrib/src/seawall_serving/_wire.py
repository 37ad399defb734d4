"""The wire format: problem+json errors, SSE frames, and how exceptions map to them.

Every error a client can see has a stable ``code``; the table in
``docs/serving.md`` lists them. Exception text never reaches a client: the
``message`` of a problem is fixed per code, except for `InvalidInput`, whose
``detail`` the agent writes for the client on purpose.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final, final

import seawall

from seawall_serving._types import Response


__all__ = (
    "PROBLEMS",
    "InvalidInput",
    "Problem",
    "error_payload",
    "problem_for_exception",
    "problem_response",
    "sse_event",
)

PROBLEM_TYPE: Final = "application/problem+json"
SSE_TYPE: Final = "text/event-stream"
SSE_HEADERS: Final = (
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)
PING: Final = b": ping\n\n"


class InvalidInput(ValueError):  # noqa: N818 -- reads as what the client sent
    """Raise from an agent to reject the request's input with 422 ``invalid_input``.

    Unlike every other exception, its *detail* is sent to the client, so write it for
    them (what was wrong with the input), never with secrets or internals.

    .. versionadded:: 0.1.0
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@final
@dataclass(frozen=True, slots=True)
class Problem:
    """One kind of error: its code, HTTP status, fixed message, and retryability."""

    code: str
    status: int
    message: str
    retryable: bool


def _p(code: str, status: int, message: str, *, retryable: bool = False) -> Problem:
    return Problem(code, status, message, retryable)


PROBLEMS: Final[dict[str, Problem]] = {
    p.code: p
    for p in (
        _p("malformed_json", 400, "The request body is not valid JSON."),
        _p("missing_tenant", 400, "The tenant header is required."),
        _p("invalid_tenant", 400, "The tenant header is not a valid tenant id."),
        _p("bad_request", 400, "The request is not valid HTTP."),
        _p("not_found", 404, "No route matches this path."),
        _p("method_not_allowed", 405, "This route does not accept this method."),
        _p("request_timeout", 408, "The request was not received in time.", retryable=True),
        _p("body_too_large", 413, "The request body is larger than the server accepts."),
        _p("unsupported_media_type", 415, "The request body must be application/json."),
        _p("headers_too_large", 431, "The request headers are larger than the server accepts."),
        _p("invalid_request", 422, 'The request body must be a JSON object with an "input".'),
        _p("invalid_input", 422, "The agent rejected the input."),
        _p("tenant_rate_limited", 429, "The tenant's rate limit is exhausted.", retryable=True),
        _p("internal_error", 500, "The agent failed.", retryable=False),
        _p("circuit_open", 503, "A dependency of the agent is unavailable.", retryable=True),
        _p("upstream_rejected", 503, "A dependency of the agent is saturated.", retryable=True),
        _p("overloaded", 503, "The server is at its concurrency limit.", retryable=True),
        _p("draining", 503, "The server is shutting down.", retryable=True),
        _p("shutting_down", 503, "The server shut down before the request ended.", retryable=True),
        _p("timeout", 504, "The agent did not answer in time.", retryable=True),
    )
}


def retry_after_header(seconds: float | None) -> tuple[str, str]:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    if seconds is None or not math.isfinite(seconds):
        seconds = 1.0
    return ("Retry-After", str(max(1, math.ceil(seconds))))


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def problem_body(code: str, run_id: str, detail: str | None = None) -> bytes:
    problem = PROBLEMS[code]
    body: dict[str, Any] = {
        "type": f"urn:seawall-serving:problem:{code}",
        "title": problem.message,
        "status": problem.status,
        "code": code,
        "retryable": problem.retryable,
    }
    if detail is not None:
        body["detail"] = detail
    if run_id:
        body["run_id"] = run_id
    return dumps(body)


def problem_response(
    code: str,
    run_id: str = "",
    *,
    retry_after: float | None = None,
    detail: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """Build the problem+json response for *code* (a key of `PROBLEMS`)."""
    problem = PROBLEMS[code]
    extra = headers
    if problem.retryable and problem.status in {429, 503}:
        extra = (*extra, retry_after_header(retry_after))
    return Response(problem.status, problem_body(code, run_id, detail), PROBLEM_TYPE, extra)


def problem_for_exception(exc: BaseException) -> tuple[str, float | None, str | None]:
    """Map an agent's exception to (code, retry_after, detail for the client)."""
    if isinstance(exc, InvalidInput):
        return "invalid_input", None, exc.detail
    if isinstance(exc, seawall.CircuitOpenError):
        return "circuit_open", exc.retry_after, None
    if isinstance(exc, seawall.RejectedError):
        return "upstream_rejected", exc.retry_after, None
    if isinstance(exc, TimeoutError):  # seawall.CallTimeoutError is one
        return "timeout", None, None
    return "internal_error", None, None


def sse_event(event: str, event_id: int, data: bytes) -> bytes:
    """One SSE event; *data* is JSON, so it never holds a newline."""
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event.encode(), event_id, data)


def error_payload(code: str, detail: str | None = None) -> bytes:
    """Build the data of the terminal ``error`` event for *code*."""
    problem = PROBLEMS[code]
    payload: dict[str, Any] = {
        "code": code,
        "message": problem.message,
        "retryable": problem.retryable,
    }
    if detail is not None:
        payload["detail"] = detail
    return dumps(payload)
