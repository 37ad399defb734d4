"""Shutdown under load: the CLI in a subprocess, a real SIGTERM, every request accounted for.

Each test starts ``seawall-serve cli_agents:slow``, puts invokes and slow streams in
flight (each invoke marks a file when it runs; each stream has sent an event), sends
SIGTERM, watches ``/readyz`` turn 503, keeps sending new requests through the drain
until the process has exited, and classifies every request:

``completed``
    200 with an output, or a stream that ended with its ``end`` event.
``refused``
    503 with the problem code ``draining``.
``refused_closed``
    Connection refused: the listener had closed (or the process had exited).
``reset_unanswered``
    A new request sent as the server closed: its fresh connection was reset or closed
    before any byte of a response. Seen: ``ECONNRESET`` from ``connect()`` itself, the
    kernel resetting the listen queue as the listener closes (the request was never
    sent), and a reset right after the connection opened.
    Allowed for new requests only, and only if the server's access log shows it never
    reached the service; for a request in flight it counts as ``cut``.
``ended_error``
    The documented end of a request cut short by the drain deadline: 503
    ``shutting_down`` for an invoke, a terminal ``error`` event with the code
    ``shutting_down`` for a stream.
``cut``
    Anything else: a stream without exactly one terminal event, a connection reset, a
    5xx without a problem code... The tests assert there is none.

The agents are paced by files, never by the test's clock: in-flight calls finish only
when the test creates their release file, during the drain. The figures are printed
(``pytest -s``) and written to ``/tmp/seawall-serving-shutdown/ADAPTER-SCENARIO.json``.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from cli_agents import CliServer, serve_cli


ADAPTERS = [pytest.param("stdlib", id="stdlib"), pytest.param("asgi", id="asgi")]
OUTCOMES = ("completed", "refused", "refused_closed", "reset_unanswered", "ended_error", "cut")
UNANSWERED = "unanswered"  # a transport error before any response byte
RESULTS_DIR = Path("/tmp/seawall-serving-shutdown")  # noqa: S108 -- figures for humans

INVOKES = 40
STREAMS = 10
STREAM_DELAY = 0.2  # seconds between a stream's events while it waits for release
NEW_REQUEST_EVERY = 0.05  # seconds between new requests during the drain
REFUSED_BEFORE_RELEASE = 4  # new requests refused with 'draining' before the release
AGENT = "/v1/agent/"
STEP = 0.02  # polling step of the test's waits
WAIT = 15.0  # the most any wait of the test may take before it fails


@dataclass(frozen=True)
class Result:
    group: str  # "inflight-released", "inflight-held", "new"
    kind: str  # "invoke" or "stream"
    outcome: str
    detail: str = ""


def _refused(exc: httpx.TransportError) -> bool:
    """Whether *exc* is a connection refused (not a reset, not a timeout)."""
    if not isinstance(exc, httpx.ConnectError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "connection refused" in str(exc).lower()


def _why(exc: BaseException) -> str:
    """*exc* and its causes, innermost last, for the report."""
    chain: list[str] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 6:
        chain.append(repr(cause))
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(chain)


def _problem_outcome(status: int, body: bytes, content_type: str) -> tuple[str, str]:
    """Classify a non-200 response: refused, ended_error or cut."""
    detail = f"{status} {body[:200]!r}"
    if not content_type.startswith("application/problem+json"):
        return "cut", detail
    try:
        code = json.loads(body).get("code")
    except ValueError:
        return "cut", detail
    if status == 503 and code == "draining":
        return "refused", ""
    if status == 503 and code == "shutting_down":
        return "ended_error", ""
    return "cut", detail


async def invoke(client: httpx.AsyncClient, input: Any) -> tuple[str, str]:
    answered = False  # whether the response's head arrived
    try:
        async with client.stream("POST", "/v1/agent/invoke", json={"input": input}) as response:
            answered = True
            content = await response.aread()
    except httpx.TransportError as exc:
        if answered:
            return "cut", f"{_why(exc)} while reading the response"
        return ("refused_closed", "") if _refused(exc) else (UNANSWERED, _why(exc))
    if response.status_code == 200:
        body = json.loads(content)
        if isinstance(body, dict) and body.get("output", {}).get("done") is True:
            return "completed", ""
        return "cut", f"200 without output: {content[:200]!r}"
    content_type = response.headers.get("content-type", "")
    return _problem_outcome(response.status_code, content, content_type)


async def stream(  # noqa: PLR0911 -- one return per classification
    client: httpx.AsyncClient, input: Any, first_data: anyio.Event | None = None
) -> tuple[str, str]:
    events: list[str] = []
    terminal: dict[str, Any] | None = None
    terminal_name = ""
    answered = False
    try:
        async with aconnect_sse(
            client, "POST", "/v1/agent/stream", json={"input": input}
        ) as source:
            answered = True
            response = source.response
            if response.status_code != 200:
                body = await response.aread()
                content_type = response.headers.get("content-type", "")
                return _problem_outcome(response.status_code, body, content_type)
            async for event in source.aiter_sse():
                if terminal is not None:
                    return "cut", f"event {event.event!r} after the terminal one: {events}"
                events.append(event.event)
                if event.event == "data" and first_data is not None:
                    first_data.set()
                if event.event in {"end", "error"}:
                    terminal_name = event.event
                    terminal = event.json()
    except httpx.TransportError as exc:
        if answered:
            return "cut", f"{_why(exc)} after {events}"
        return ("refused_closed", "") if _refused(exc) else (UNANSWERED, _why(exc))
    if terminal is None:
        return "cut", f"no terminal event: {events}"
    if not events or events[0] != "metadata":
        return "cut", f"no metadata event first: {events}"
    if terminal_name == "end":
        return "completed", ""
    if terminal.get("code") == "shutting_down" and terminal.get("retryable") is True:
        return "ended_error", ""
    return "cut", f"terminal error {terminal!r}"


async def wait_for(what: str, condition: Callable[[], bool]) -> None:
    with anyio.move_on_after(WAIT):
        while not condition():  # noqa: ASYNC110 -- polls files and another process
            await anyio.sleep(STEP)
        return
    pytest.fail(f"timed out waiting for {what}")


class Run:
    """One shutdown-under-load run against a CLI server."""

    def __init__(self, server: CliServer, tmp_path: Path, *, hold_some: bool) -> None:
        self.server = server
        self.started_dir = tmp_path / "started"
        self.started_dir.mkdir()
        self.release = tmp_path / "release"
        self.never = tmp_path / "never"  # never created: held until the drain deadline
        self.hold_some = hold_some
        self.results: list[Result] = []
        self.sent = 0
        self.readiness: list[int] = []  # /readyz statuses seen after SIGTERM

    def record(self, group: str, kind: str, outcome: tuple[str, str]) -> None:
        name, detail = outcome
        if name == UNANSWERED:
            # Closed before a response on a connection the client just opened: only a
            # new request racing the listener's close may see that; in flight, it is a cut.
            name = "reset_unanswered" if group == "new" else "cut"
        self.results.append(Result(group, kind, name, detail))

    def count(self, group: str, outcome: str) -> int:
        return sum(1 for r in self.results if r.group == group and r.outcome == outcome)

    def client(self) -> httpx.AsyncClient:
        # No keep-alive: every request has its own connection, so a refusal is
        # unambiguous and no request rides on a connection the server closed idle.
        return httpx.AsyncClient(
            base_url=self.server.url,
            timeout=httpx.Timeout(60, connect=10),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            headers={"X-Tenant-ID": "load"},
        )

    def spawn(
        self,
        tg: anyio.abc.TaskGroup,
        group: str,
        kind: str,
        call: Callable[[], Awaitable[tuple[str, str]]],
    ) -> None:
        self.sent += 1

        async def run() -> None:
            self.record(group, kind, await call())

        tg.start_soon(run)

    async def poll_readiness(self, client: httpx.AsyncClient) -> None:
        """Poll /readyz until it answers 503 (or the server is gone)."""
        while self.server.process.poll() is None:
            try:
                response = await client.get("/readyz")
            except httpx.TransportError:
                return
            self.readiness.append(response.status_code)
            if response.status_code == 503:
                return
            await anyio.sleep(STEP)

    async def new_requests(self, tg: anyio.abc.TaskGroup, client: httpx.AsyncClient) -> None:
        """New invokes and streams, alternating, until the process exited; one more after."""
        index = 0
        exited = False
        while not exited:
            exited = self.server.process.poll() is not None
            if index % 2:
                self.spawn(tg, "new", "stream", functools.partial(stream, client, {"events": 1}))
            else:
                self.spawn(tg, "new", "invoke", functools.partial(invoke, client, {}))
            index += 1
            await anyio.sleep(NEW_REQUEST_EVERY)

    async def main(self) -> None:
        async with self.client() as client, anyio.create_task_group() as tg:
            first_data = [anyio.Event() for _ in range(STREAMS)]
            held = self.never if self.hold_some else self.release
            for i in range(INVOKES):
                # With hold_some, every other invoke waits for a release that never comes.
                hold = self.hold_some and i % 2 == 1
                release = self.never if hold else self.release
                group = "inflight-held" if hold else "inflight-released"
                payload = {"started": str(self.started_dir), "release": str(release)}
                self.spawn(tg, group, "invoke", functools.partial(invoke, client, payload))
            for event in first_data:
                spec: dict[str, Any] = {"delay": STREAM_DELAY, "events": 3, "release": str(held)}
                group = "inflight-held" if self.hold_some else "inflight-released"
                self.spawn(tg, group, "stream", functools.partial(stream, client, spec, event))

            await wait_for(
                "every request in flight",
                lambda: (
                    sum(1 for _ in self.started_dir.iterdir()) == INVOKES
                    and all(e.is_set() for e in first_data)
                ),
            )
            assert self.results == [], self.results  # nothing ended before the signal
            self.server.signal(signal.SIGTERM)
            await self.poll_readiness(client)
            tg.start_soon(self.new_requests, tg, client)
            await wait_for(
                "new requests refused with 'draining'",
                lambda: (
                    self.count("new", "refused") >= REFUSED_BEFORE_RELEASE
                    or self.server.process.poll() is not None
                ),
            )
            self.release.touch()

    def figures(self) -> dict[str, Any]:
        counts = Counter(r.outcome for r in self.results)
        return {
            "sent": self.sent,
            **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES},
            "by_group": {
                f"{group}/{kind}": dict(
                    Counter(r.outcome for r in self.results if r.group == group and r.kind == kind)
                )
                for group, kind in sorted({(r.group, r.kind) for r in self.results})
            },
        }


def report(adapter: str, scenario: str, run: Run, status: int | None) -> dict[str, Any]:
    figures = run.figures()
    summary = (
        f"shutdown under load [{adapter}, {scenario}]: sent={figures['sent']} "
        f"completed={figures['completed']} refused={figures['refused']} "
        f"refused_closed={figures['refused_closed']} "
        f"reset_unanswered={figures['reset_unanswered']} "
        f"ended_with_error={figures['ended_error']} cut={figures['cut']} exit={status}"
    )
    sys.stdout.write(summary + "\n")
    RESULTS_DIR.mkdir(exist_ok=True)
    document = {
        "adapter": adapter,
        "scenario": scenario,
        "exit_status": status,
        "summary": summary,
        **figures,
        "readiness_after_sigterm": run.readiness,
        "details": [asdict(r) for r in run.results if r.outcome in {"cut", "reset_unanswered"}],
    }
    (RESULTS_DIR / f"{adapter}-{scenario}.json").write_text(json.dumps(document, indent=2))
    return figures


def check_common(run: Run, server: CliServer, status: int) -> None:
    cut = [r for r in run.results if r.outcome == "cut"]
    assert cut == [], cut
    assert len(run.results) == run.sent  # every request accounted for
    assert {r.outcome for r in run.results} <= set(OUTCOMES)
    assert status == 0, server.log_text()
    records = server.log_records()
    assert "stopped" in [r["message"] for r in records]
    # Readiness failed while the process still answered.
    assert run.readiness, "no /readyz answer after SIGTERM"
    assert run.readiness[-1] == 503, run.readiness
    # New requests during the drain: refused while it lasted, then connection refused.
    new = Counter(r.outcome for r in run.results if r.group == "new")
    assert set(new) <= {"refused", "refused_closed", "reset_unanswered"}, new
    assert new["refused"] >= REFUSED_BEFORE_RELEASE
    assert new["refused_closed"] >= 1  # the request sent after the exit
    # The server's side of the books: every agent request it logged got its answer to
    # the client, so none of the unanswered ones reached the service.
    access = [
        r
        for r in records
        if r.get("logger") == "seawall_serving.access" and r.get("path", "").startswith(AGENT)
    ]
    answered = [r for r in run.results if r.outcome in {"completed", "refused", "ended_error"}]
    assert len(access) == len(answered), (len(access), len(answered))


def scenario(
    adapter: str, tmp_path: Path, name: str, drain: str, *, hold_some: bool
) -> tuple[Run, CliServer]:
    """Serve `slow` with *drain* seconds of drain, load it, SIGTERM it, and check it."""
    with serve_cli(
        "cli_agents:slow", tmp_path / "server.log", "--drain-timeout", drain, adapter=adapter
    ) as server:
        run = Run(server, tmp_path, hold_some=hold_some)
        anyio.run(run.main)
        status = server.wait()
        report(adapter, name, run, status)
    check_common(run, server, status)
    return run, server


@pytest.mark.timeout(45)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_drain_lets_in_flight_requests_finish(adapter: str, tmp_path: Path) -> None:
    """(a) The drain timeout outlasts the load: everything in flight completes."""
    run, _server = scenario(adapter, tmp_path, "a-drain-completes", "30", hold_some=False)
    inflight = [r for r in run.results if r.group != "new"]
    assert len(inflight) == INVOKES + STREAMS
    assert all(r.outcome == "completed" for r in inflight), inflight


@pytest.mark.timeout(45)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_drain_deadline_ends_slow_requests_cleanly(adapter: str, tmp_path: Path) -> None:
    """(b) The drain timeout is shorter than the held calls: they end as documented."""
    run, server = scenario(adapter, tmp_path, "b-drain-deadline", "3", hold_some=True)
    held = [r for r in run.results if r.group == "inflight-held"]
    assert len(held) == INVOKES // 2 + STREAMS
    # Never released: each one ends with 503 shutting_down or the terminal error event.
    assert all(r.outcome == "ended_error" for r in held), held
    released = [r for r in run.results if r.group == "inflight-released"]
    assert len(released) == INVOKES // 2
    # Released at the start of the drain: they finish, unless a slow machine let the
    # deadline pass first, which must then end them as documented too.
    assert {r.outcome for r in released} <= {"completed", "ended_error"}, released
    streams_ended = [
        r
        for r in server.log_records()
        if r.get("path") == "/v1/agent/stream" and r.get("outcome") == "shutting_down"
    ]
    assert len(streams_ended) == STREAMS
