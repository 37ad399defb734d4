"""Typed configuration: defaults, a file, the environment and overrides, hot-reloaded.

Describe the configuration as dataclasses (or a pydantic model), then load it::

    from dataclasses import dataclass, field
    from seawall_serving.config import Secret, load, setting


    @dataclass(frozen=True, kw_only=True)
    class Server:
        port: int = setting(env="PORT", default=8080)
        read_timeout: timedelta = setting(default=timedelta(seconds=10))


    @dataclass(frozen=True, kw_only=True)
    class AppConfig:
        server: Server = field(default_factory=Server)
        api_key: Secret[str]  # required


    config = load(AppConfig, "config.toml", env_prefix="APP")  # APP_API_KEY, PORT...

Each setting comes from the highest-precedence source that has it: defaults < file <
environment < ``overrides``. Every problem is reported at once, by one `ConfigError`.
`watch` keeps a configuration current as its file changes. The package needs only the
standard library; pydantic, watchfiles, PyYAML (and tomli on Python 3.10) are used when
installed.
"""

from __future__ import annotations

from seawall_serving.config._dump import dump as dump
from seawall_serving.config._errors import ConfigError as ConfigError
from seawall_serving.config._errors import ConfigIssue as ConfigIssue
from seawall_serving.config._fields import setting as setting
from seawall_serving.config._load import load as load
from seawall_serving.config._secret import Secret as Secret
from seawall_serving.config._watch import Watcher as Watcher
from seawall_serving.config._watch import watch as watch


__all__ = (
    "ConfigError",
    "ConfigIssue",
    "Secret",
    "Watcher",
    "dump",
    "load",
    "setting",
    "watch",
)


def _fixup_module_metadata() -> None:
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith(f"{__name__}._"):
            obj.__module__ = __name__


_fixup_module_metadata()
