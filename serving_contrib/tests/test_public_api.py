"""The house rules between the two distributions, and seawall_serving's public names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import seawall_serving


ROOT = Path(__file__).resolve().parents[2]
SERVING = ROOT / "serving_contrib" / "src" / "seawall_serving"
CORE = ROOT / "src" / "seawall"
FRAMEWORKS = {
    "seawall_serving",
    "fastapi",
    "starlette",
    "uvicorn",
    "aiohttp",
    "flask",
    "werkzeug",
    "grpc",
    "grpc_health",
    "prometheus_client",
}


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every module *path* imports (``from a import b`` yields ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.append((node.module, node.lineno))
            found.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def test_serving_uses_only_the_public_api_of_the_core() -> None:
    offenders = []
    files = sorted(SERVING.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        for module, line in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "seawall" and any(part.startswith("_") for part in parts[1:]):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
        source = path.read_text()
        assert "seawall._" not in source, f"{path} reaches into seawall's private modules"
    assert offenders == []


def test_the_core_never_imports_serving_or_a_web_framework() -> None:
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 20
    for path in files:
        for module, line in imported_modules(path):
            if module.split(".")[0] in FRAMEWORKS:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == []


def test_all_is_sorted_public_and_snapshotted() -> None:
    names = seawall_serving.__all__
    assert isinstance(names, tuple)
    assert len(set(names)) == len(names)  # order: ruff's RUF022 (constants, classes, rest)
    public = {n for n in dir(seawall_serving) if not n.startswith("_")}
    modules = {"adapters", "config", "telemetry"}  # submodules, present once imported
    assert set(names) == public - modules - {"annotations"}
    for name in names:
        obj = getattr(seawall_serving, name)
        module = getattr(obj, "__module__", "seawall_serving")
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert not any(part.startswith("_") for part in module.split(".")), (name, module)
    snapshot = (Path(__file__).parent / "public_api.txt").read_text().split()
    assert snapshot == [f"seawall_serving.{n}" for n in names]
