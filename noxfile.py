"""Automation for seawall: ``python -m nox`` runs lint, typecheck and tests.

Every session installs what it needs from pyproject.toml (extras and PEP 735 dependency
groups), so a fresh machine needs only Python, pip and nox.
"""

from __future__ import annotations

import pathlib

import nox


nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; every async test runs on asyncio and on trio."""
    session.install("-e", ".[trio,otel]", *_group("tests"))
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package, the tests, the benchmarks and the demo with mypy strict."""
    session.install("-e", ".[trio,otel]", *_group("typing"), *_group("bench"), *_group("demo"))
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Measure the success path of each primitive against a plain call and the peers."""
    session.install("-e", ".[trio,otel]", *_group("bench"))
    pathlib.Path(".benchmarks").mkdir(exist_ok=True)
    session.run(
        "pytest",
        "benchmarks",
        "-o",
        "python_files=bench_*.py",
        "-p",
        "no:cacheprovider",
        "--benchmark-columns=min,median,max,rounds",
        "--benchmark-group-by=group",
        "--benchmark-json=.benchmarks/latest.json",
        *session.posargs,
        env={"PYTHONPATH": "benchmarks"},
    )
    session.run("python", "benchmarks/report.py", ".benchmarks/latest.json")


@nox.session
def demo(session: nox.Session) -> None:
    """Run a simulated LLM provider bare and through the full seawall stack."""
    session.install("-e", ".", *_group("demo"))
    session.run("python", "demo/llm.py", *session.posargs)
