r"""HTTP load on ``seawall-serve``: requests per second and latency, per adapter and tool.

For each adapter, starts the CLI (``python -m seawall_serving``) with a trivial agent
(an async invoke returning its input) on a free loopback port without the access log,
warms it up, runs ``wrk`` (a Lua script for the POST, its JSON body and headers, and
``--latency``) or ``hey`` against ``POST /v1/agent/invoke``, stops the server with
SIGTERM, and prints a markdown table::

    python serving_contrib/benchmarks/load.py --adapters stdlib,asgi --tools wrk,hey \
        --duration 10 --connections 50 --json /tmp/load.json

The load generator runs on the same machine as the server and shares its cores; the
header of the output says how many there are, and the load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
AGENT = "trivial_agent:agent"
ROUTE = "/v1/agent/invoke"
BODY = '{"input":{"hello":"world","n":42}}'
TENANT = "bench"
OK_MIN, OK_END = 200, 300  # the 2xx statuses
LISTENING_RE = re.compile(r"(?:serving on |Uvicorn running on https?://)[^\s:]+:(?P<port>\d+)")

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-ID"] = "%(tenant)s"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Result:
    """One measured run."""

    adapter: str
    tool: str
    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    load_before: float


class Server:
    """The CLI in a subprocess, its stderr in a temporary file."""

    def __init__(self, adapter: str, log: Path, cpus: str | None) -> None:
        """Start ``seawall-serve`` for *adapter* on an ephemeral loopback port."""
        command = [
            sys.executable,
            "-m",
            "seawall_serving",
            AGENT,
            "--adapter",
            adapter,
            "--addr",
            "127.0.0.1:0",
            "--no-access-log",
            "--default-tenant",
            TENANT,
        ]
        if cpus is not None:
            command = [_tool("taskset"), "-c", cpus, *command]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        self.adapter = adapter
        self.log = log
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        self.port = self._wait_port()

    def _wait_port(self, timeout: float = 20) -> int:
        deadline = time.perf_counter() + timeout
        pause = threading.Event()
        while time.perf_counter() < deadline:
            match = LISTENING_RE.search(self.log.read_text(errors="replace"))
            if match is not None:
                return int(match["port"])
            if self.process.poll() is not None:
                break
            pause.wait(0.05)
        self.kill()
        msg = f"{self.adapter}: the server did not start:\n{self.log.read_text(errors='replace')}"
        raise RuntimeError(msg)

    @property
    def url(self) -> str:
        """The invoke URL."""
        return f"http://127.0.0.1:{self.port}{ROUTE}"

    def stop(self) -> int:
        """SIGTERM, then wait for the drain; returns the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """Kill the server if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed"
        raise SystemExit(msg)
    return path


def _prefix(cpus: str | None) -> list[str]:
    return [] if cpus is None else [_tool("taskset"), "-c", cpus]


def run_wrk(
    url: str, connections: int, duration: float, threads: int, cpus: str | None
) -> dict[str, Any]:
    """Run wrk; returns requests, duration, percentiles (µs) and error counts."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"body": BODY, "tenant": TENANT})
    try:
        command = [
            *_prefix(cpus),
            _tool("wrk"),
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=duration + 60
        ).stdout
    finally:
        Path(script.name).unlink()
    line = next((x for x in output.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        msg = f"no summary in wrk's output:\n{output}"
        raise RuntimeError(msg)
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return {
        "requests": int(data["requests"]),
        "seconds": data["duration_us"] / 1e6,
        "p50_ms": data["p50_us"] / 1e3,
        "p99_ms": data["p99_us"] / 1e3,
        "non_2xx": int(data["non_2xx"]),
        "socket_errors": int(data["socket_errors"]),
    }


def _hey_percentile(output: str, percent: int) -> float:
    match = re.search(rf"^\s*{percent}% in ([\d.]+) secs", output, re.MULTILINE)
    if match is None:
        msg = f"no {percent}% latency in hey's output:\n{output}"
        raise RuntimeError(msg)
    return float(match[1]) * 1e3


def run_hey(
    url: str, connections: int, duration: float, threads: int, cpus: str | None
) -> dict[str, Any]:
    """Run hey; returns the same figures as `run_wrk` (hey has ms resolution at best)."""
    command = [
        *_prefix(cpus),
        _tool("hey"),
        "-z",
        f"{max(1, round(duration))}s",
        "-c",
        str(connections),
        "-t",
        "10",
        "-m",
        "POST",
        "-T",
        "application/json",
        "-H",
        f"X-Tenant-ID: {TENANT}",
        "-d",
        BODY,
        url,
    ]
    env = dict(os.environ)
    env["GOMAXPROCS"] = str(threads)
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 60, env=env
    ).stdout
    statuses = {
        int(code): int(count)
        for code, count in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", output, re.MULTILINE)
    }
    errors_section = output.partition("Error distribution:")[2]
    socket_errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", errors_section, re.MULTILINE))
    total = re.search(r"Total:\s+([\d.]+) secs", output)
    seconds = float(total[1]) if total is not None else duration
    return {
        "requests": sum(statuses.values()),
        "seconds": seconds,
        "p50_ms": _hey_percentile(output, 50),
        "p99_ms": _hey_percentile(output, 99),
        "non_2xx": sum(n for code, n in statuses.items() if not OK_MIN <= code < OK_END),
        "socket_errors": socket_errors,
    }


TOOLS = {"wrk": run_wrk, "hey": run_hey}


def measure(adapter: str, tools: list[str], args: argparse.Namespace) -> list[Result]:
    """Serve with *adapter*, warm up, then run each tool in turn; stop with SIGTERM."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(adapter, Path(tmp) / "server.log", args.server_cpus)
        try:
            for tool in tools:
                run = TOOLS[tool]
                run(server.url, args.connections, args.warmup, args.threads, args.client_cpus)
                load_before = os.getloadavg()[0]
                figures = run(
                    server.url, args.connections, args.duration, args.threads, args.client_cpus
                )
                result = Result(
                    adapter=adapter,
                    tool=tool,
                    connections=args.connections,
                    duration_s=args.duration,
                    requests=figures["requests"],
                    requests_per_s=figures["requests"] / figures["seconds"],
                    p50_ms=figures["p50_ms"],
                    p99_ms=figures["p99_ms"],
                    non_2xx=figures["non_2xx"],
                    socket_errors=figures["socket_errors"],
                    load_before=load_before,
                )
                print(f"  {adapter}/{tool}: {result.requests_per_s:,.0f} req/s", file=sys.stderr)
                results.append(result)
        finally:
            status = server.stop()
        if status != 0:
            msg = f"{adapter}: the server exited with {status}:\n{server.log.read_text()}"
            raise RuntimeError(msg)
    return results


def header(args: argparse.Namespace) -> list[str]:
    """Describe the conditions of the run, as markdown lines."""
    cores = os.cpu_count() or 0
    pinning = (
        f"server on CPU {args.server_cpus}, load generator on CPU {args.client_cpus}"
        if args.server_cpus is not None or args.client_cpus is not None
        else "no CPU pinning"
    )
    return [
        (
            f"Load on `POST {ROUTE}` (trivial async agent, access log off), "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}."
        ),
        "",
        (
            f"**The machine has {cores} cores, shared by the load generator and the "
            f"server** ({pinning}; wrk with {args.threads} thread(s), hey with "
            f"GOMAXPROCS={args.threads}); {args.warmup:g} s warm-up per tool. Figures from a "
            "shared machine are indicative only: `load` is the 1-minute load average just "
            "before each run."
        ),
        "",
    ]


def table(results: list[Result]) -> list[str]:
    """Format *results* as a markdown table."""
    lines = [
        (
            "| adapter | tool | connections | duration | requests/s | p50 | p99 | non-2xx "
            "| socket errors | load |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {r.adapter} | {r.tool} | {r.connections} | {r.duration_s:g} s "
        f"| {r.requests_per_s:,.0f} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms "
        f"| {r.non_2xx} | {r.socket_errors} | {r.load_before:.2f} |"
        for r in results
    )
    return lines


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--adapters", default="stdlib,asgi", help="comma-separated adapters")
    parser.add_argument(
        "--tool", "--tools", dest="tools", default="wrk", help="wrk, hey, or both: wrk,hey"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per tool")
    parser.add_argument(
        "--threads", type=int, default=1, help="load generator threads (wrk -t, hey GOMAXPROCS)"
    )
    parser.add_argument("--server-cpus", default=None, help="taskset CPU list for the server")
    parser.add_argument("--client-cpus", default=None, help="taskset CPU list for the tool")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    tools = _names(args.tools)
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {unknown}; choose from {sorted(TOOLS)}")
    results: list[Result] = []
    for adapter in _names(args.adapters):
        print(f"measuring {adapter}...", file=sys.stderr)
        results.extend(measure(adapter, tools, args))
    lines = [*header(args), *table(results)]
    print("\n".join(lines))
    if args.json is not None:
        document = {
            "header": "\n".join(header(args)),
            "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "cores": os.cpu_count(),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
