"""The public surface: exactly the names in __all__, all of them public and documented."""

from __future__ import annotations

import inspect
import pathlib
import subprocess
import sys

import pytest

import seawall
import seawall.otel
import seawall.testing


SNAPSHOT = pathlib.Path(__file__).with_name("public_api.txt")
PUBLIC_MODULES = (seawall, seawall.testing, seawall.otel)


def _public_names(module: object) -> set[str]:
    """Names a user can reach that seawall itself defines (not imported helpers).

    A submodule's own imports of the core's public names (``seawall.otel`` handles
    `seawall.CallStarted`, say) are helpers there, not part of the submodule's API.
    """
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and str(getattr(value, "__module__", "")).startswith("seawall")
        and (module is seawall or getattr(seawall, name, None) is not value)
    }


class TestAll:
    """__all__ of every public module."""

    @pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
    def test_all_is_a_sorted_tuple(self, module: object) -> None:
        """__all__ is a tuple, sorted, with no duplicates."""
        names = module.__all__  # type: ignore[attr-defined]
        assert isinstance(names, tuple)
        assert list(names) == sorted(names)
        assert len(set(names)) == len(names)

    @pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
    def test_all_lists_exactly_the_public_names(self, module: object) -> None:
        """Every public attribute is in __all__ and every name in __all__ exists."""
        exported = set(module.__all__)  # type: ignore[attr-defined]
        assert _public_names(module) <= exported
        assert [name for name in exported if not hasattr(module, name)] == []

    def test_nothing_private_is_exported(self) -> None:
        """No exported name starts with an underscore."""
        for module in PUBLIC_MODULES:
            assert not [n for n in module.__all__ if n.startswith("_")]

    def test_snapshot(self) -> None:
        """The public API matches the checked-in snapshot (update it on purpose)."""
        current = [
            f"{module.__name__}.{name}" for module in PUBLIC_MODULES for name in module.__all__
        ]
        assert SNAPSHOT.read_text().split() == current

    def test_exported_objects_live_at_their_public_path(self) -> None:
        """Classes and functions report seawall (not a private module) as their module."""
        for name in seawall.__all__:
            obj = getattr(seawall, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__ == "seawall", name

    def test_otel_objects_live_in_seawall_otel(self) -> None:
        """seawall.otel's classes report it as their module; its constants are plain."""
        for name in seawall.otel.__all__:
            obj = getattr(seawall.otel, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__ == "seawall.otel", name
            else:
                assert name.isupper(), name
                assert isinstance(obj, (str, tuple)), name

    def test_otel_hook_is_final_slotted_and_documented(self) -> None:
        """OpenTelemetryHook is final, slotted, keyword-only, with a versioned docstring."""
        hook_class = seawall.otel.OpenTelemetryHook
        assert getattr(hook_class, "__final__", False)
        assert "__slots__" in vars(hook_class)
        assert ".. versionadded:: 0.1.0" in (hook_class.__doc__ or "")
        assert inspect.getdoc(hook_class.__call__)
        parameters = inspect.signature(hook_class).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
        assert seawall.otel.__doc__

    def test_everything_public_is_documented(self) -> None:
        """Every exported class and function has a docstring."""
        for module in PUBLIC_MODULES:
            for name in module.__all__:
                obj = getattr(module, name)
                if inspect.isclass(obj) or inspect.isfunction(obj):
                    assert inspect.getdoc(obj), f"{module.__name__}.{name}"

    def test_version(self) -> None:
        """__version__ comes from the installed distribution's metadata."""
        from importlib.metadata import version

        assert seawall.__version__ == version("seawall")
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            _ = seawall.nope


class TestImportGraph:
    """The core imports only the standard library, anyio and typing-extensions."""

    def test_core_imports_no_optional_dependency(self) -> None:
        """Importing seawall pulls in no client library, framework or telemetry SDK."""
        code = (
            "import sys, seawall, seawall.testing\n"
            "banned = ('httpx', 'openai', 'trio', 'opentelemetry', 'redis', 'seawall_serving',"
            " 'starlette', 'fastapi', 'aiohttp', 'flask', 'grpc', 'requests')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        assert out.strip() == "[]"

    def test_core_never_imports_opentelemetry(self) -> None:
        """Importing and using seawall, hooks included, loads no opentelemetry module."""
        code = (
            "import sys, seawall\n"
            "from seawall.testing import RecordingHook\n"
            "hook = RecordingHook()\n"
            "seawall.CircuitBreaker(hooks=(hook,)).call(int)\n"
            "seawall.Retrier(hooks=(hook,)).call(int)\n"
            "assert hook.events\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        assert out.strip() == "[]"

    def test_otel_uses_the_api_only(self) -> None:
        """seawall.otel, even handling events, loads neither the SDK nor semconv."""
        code = (
            "import sys, seawall, seawall.otel\n"
            "hook = seawall.otel.OpenTelemetryHook()\n"
            "seawall.CircuitBreaker(hooks=(hook,)).call(int)\n"
            "assert 'opentelemetry.trace' in sys.modules\n"
            "print(sorted(m for m in sys.modules"
            " if m.startswith(('opentelemetry.sdk', 'opentelemetry.semconv'))))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        assert out.strip() == "[]"
