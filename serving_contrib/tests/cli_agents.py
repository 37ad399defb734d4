"""Agents for the CLI tests (``seawall-serve cli_agents:NAME``), and the CLI runner.

The agents run in a server subprocess, so the tests pace them through the file system: an
agent may mark that it started (a file in a directory), and block until a release
file exists. Every wait is an anyio sleep, so a drain's expiry cancels it.

The second half is the test side: `serve_cli` starts the CLI in a subprocess with this
directory on ``PYTHONPATH``, on an ephemeral loopback port read from its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio

import seawall_serving


__all__ = (
    "CliServer",
    "Echo",
    "Slow",
    "echo",
    "json_lines",
    "make_echo",
    "run_cli",
    "serve_cli",
    "slow",
)

#: How often a blocked agent looks for its release file, in seconds.
POLL = 0.05


class Echo:
    """Async invoke and stream, both returning what they got and the tenant."""

    async def invoke(self, input: Any) -> Any:
        return {"echo": input, "tenant": seawall_serving.current_tenant()}

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        for i in range(3):
            yield {"i": i, "echo": input}


def _options(input: Any) -> dict[str, Any]:
    return input if isinstance(input, dict) else {}


async def _mark_started(options: dict[str, Any]) -> None:
    started = options.get("started")
    if isinstance(started, str):
        await anyio.Path(started, uuid.uuid4().hex).touch()


def _released(options: dict[str, Any]) -> bool:
    release = options.get("release")
    return not isinstance(release, str) or Path(release).exists()


class Slow:
    """An agent paced by its input, a JSON object with optional keys.

    ``delay``: seconds to sleep first (invoke) or between events (stream).
    ``started``: a directory where a file is created once the call runs.
    ``release``: a path; the call finishes only once it exists (never, if it never does).
    ``events``: for ``stream``, how many ``data`` events at least (default 1).

    ``invoke`` returns ``{"done": true, "echo": input}``. ``stream`` yields
    ``{"i": n}`` events, each ``delay`` apart, until it has sent ``events`` of them and
    the release file exists, then one ``{"done": true}``.
    """

    async def invoke(self, input: Any) -> Any:
        options = _options(input)
        await _mark_started(options)
        delay = float(options.get("delay", 0))
        if delay > 0:
            await anyio.sleep(delay)
        while not _released(options):  # noqa: ASYNC110 -- another process writes the file
            await anyio.sleep(POLL)
        return {"done": True, "echo": input}

    async def stream(self, input: Any) -> AsyncIterator[Any]:
        options = _options(input)
        delay = float(options.get("delay", POLL))
        events = int(options.get("events", 1))
        sent = 0
        yield {"i": sent}
        sent += 1
        await _mark_started(options)
        while sent < events or not _released(options):
            await anyio.sleep(delay)
            yield {"i": sent}
            sent += 1
        yield {"done": True}


def make_echo() -> Echo:
    """A factory: ``cli_agents:make_echo`` serves a new `Echo`."""
    return Echo()


echo = Echo()
slow = Slow()


# -- the test side: run the CLI in a subprocess ----------------------------------------

#: The address a server logs once it listens: ours, or uvicorn's for the asgi adapter.
LISTENING_RE = re.compile(
    r"(?:serving on |Uvicorn running on https?://)(?P<host>[^\s:]+|\[[^\]]+\]):(?P<port>\d+)"
)


def cli_command(*args: str) -> list[str]:
    """The command line of ``python -m seawall_serving *args``."""
    return [sys.executable, "-m", "seawall_serving", *args]


def cli_env() -> dict[str, str]:
    """The environment for the CLI: this directory first on ``PYTHONPATH``."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion, capturing its output."""
    return subprocess.run(
        cli_command(*args),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of *text* as a JSON object (asserting each one is)."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            msg = f"log line is not JSON: {line!r}"
            raise AssertionError(msg) from None
        assert isinstance(record, dict), line
        records.append(record)
    return records


class CliServer:
    """A CLI server subprocess, its stderr in a file, and the port it listens on."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        return json_lines(self.log_text())

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING_RE.search(self.log_text())
            if match is not None:
                self.port = int(match["port"])
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)  # real-clock-ok: polls a subprocess log for its port
        self.kill()
        msg = f"the CLI did not start (status {self.process.returncode}):\n{self.log_text()}"
        raise AssertionError(msg)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            msg = f"the CLI did not exit in {timeout} s:\n{self.log_text()}"
            raise AssertionError(msg) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def serve_cli(agent: str, log: Path, *args: str, adapter: str = "stdlib") -> Iterator[CliServer]:
    """Start ``seawall-serve agent --adapter adapter --addr 127.0.0.1:0 *args``.

    Yields once it listens; kills it on exit if the test did not stop it.
    """
    with start_cli(
        [agent, "--adapter", adapter, "--addr", "127.0.0.1:0", *args], log, cli_env()
    ) as server:
        yield server


@contextlib.contextmanager
def start_cli(args: list[str], log: Path, env: dict[str, str]) -> Iterator[CliServer]:
    """Start ``seawall-serve *args`` with *env*, stderr to *log*; yield once it listens.

    Kills it on exit if the test did not stop it.
    """
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            cli_command(*args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = CliServer(process, log)
    try:
        server.wait_listening()
        yield server
    finally:
        server.kill()
