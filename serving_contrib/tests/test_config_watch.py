"""seawall_serving.config.watch: hot reload that keeps the last good configuration."""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seawall_serving.config import ConfigError, Secret, Watcher, watch


SECRET = "hunter2-correct-horse"
LOGGER = "seawall_serving.config"
#: How long a test waits for the background thread: generous, never a timing assertion.
PATIENCE = 30.0


@dataclass(frozen=True, kw_only=True)
class Limits:
    rps: int = 10


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    port: int
    limits: Limits = field(default_factory=Limits)
    api_key: Secret[str] = field(default=Secret(""))


def replace_atomically(path: Path, data: object) -> None:
    """Write *data* beside *path*, then rename it over *path* (as editors do)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data if isinstance(data, str) else json.dumps(data))
    tmp.replace(path)


class Recorder:
    """Collects what the watcher's hooks receive."""

    def __init__(self) -> None:
        self.configs: list[AppConfig] = []
        self.errors: list[ConfigError] = []
        self.results: list[bool] = []
        self.called = threading.Event()

    def callback(self, config: AppConfig) -> None:
        self.configs.append(config)
        self.called.set()

    def on_error(self, error: ConfigError) -> None:
        self.errors.append(error)

    def on_reload(self, ok: bool) -> None:
        self.results.append(ok)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"port": 1}))
    return path


def manual(path: Path, recorder: Recorder) -> Watcher[AppConfig]:
    return watch(
        AppConfig,
        path,
        recorder.callback,
        on_error=recorder.on_error,
        on_reload=recorder.on_reload,
        backend="manual",
        env={},
    )


def test_the_first_load_is_current(config_file: Path) -> None:
    recorder = Recorder()
    with manual(config_file, recorder) as watcher:
        assert watcher.current == AppConfig(port=1)
        assert (watcher.reloads, watcher.failures, watcher.last_error) == (0, 0, None)
        assert watcher.path == config_file
        assert not watcher.poll()  # nothing changed
        assert recorder.configs == []
        assert recorder.results == []
    assert watcher.closed


def test_an_invalid_first_file_raises(config_file: Path) -> None:
    config_file.write_text('{"port": "x"}')
    with pytest.raises(ConfigError):
        watch(AppConfig, config_file, backend="manual", env={})


def test_atomic_rename_is_picked_up(config_file: Path) -> None:
    recorder = Recorder()
    with manual(config_file, recorder) as watcher:
        before = watcher.current
        replace_atomically(config_file, {"port": 2, "limits": {"rps": 5}})
        assert watcher.poll()
        assert watcher.current == AppConfig(port=2, limits=Limits(rps=5))
        assert before == AppConfig(port=1)  # the old object is untouched
        assert recorder.configs == [watcher.current]
        assert recorder.results == [True]
        assert watcher.reloads == 1


def test_in_place_writes_are_picked_up(config_file: Path) -> None:
    recorder = Recorder()
    with manual(config_file, recorder) as watcher:
        config_file.write_text(json.dumps({"port": 2, "limits": {"rps": 100}}))
        assert watcher.poll()
        assert watcher.current.limits.rps == 100


def test_kubernetes_configmap_symlink_swap(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    first = mount / "..2026_11_28"
    first.mkdir(parents=True)
    (first / "config.json").write_text(json.dumps({"port": 1}))
    (mount / "..data").symlink_to(first.name)
    (mount / "config.json").symlink_to("..data/config.json")
    recorder = Recorder()
    with manual(mount / "config.json", recorder) as watcher:
        assert watcher.current.port == 1
        # The kubelet writes a new timestamped directory, then swaps ..data atomically.
        second = mount / "..2026_11_29"
        second.mkdir()
        (second / "config.json").write_text(json.dumps({"port": 2}))
        (mount / "..data_tmp").symlink_to(second.name)
        (mount / "..data_tmp").replace(mount / "..data")  # os.replace: atomic
        assert watcher.poll()
        assert watcher.current.port == 2
        assert recorder.configs == [AppConfig(port=2)]


def test_a_bad_file_keeps_the_last_good_config_then_a_good_one_recovers(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with manual(config_file, recorder) as watcher:
        replace_atomically(config_file, '{"port": 2,')
        assert not watcher.poll()
        assert watcher.current == AppConfig(port=1)
        assert (watcher.reloads, watcher.failures) == (0, 1)
        assert watcher.last_error is not None
        assert watcher.last_error.errors[0].line == 1
        assert recorder.errors == [watcher.last_error]
        assert recorder.results == [False]
        assert recorder.configs == []
        [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert record.name == LOGGER
        assert "keeping the last good configuration" in record.getMessage()
        assert "malformed JSON at line 1" in record.getMessage()

        replace_atomically(config_file, {"port": "three"})
        assert not watcher.poll()
        assert watcher.failures == 2
        assert watcher.last_error.errors[0].path == "port"

        replace_atomically(config_file, {"port": 3})
        assert watcher.poll()
        assert watcher.current == AppConfig(port=3)
        assert (watcher.reloads, watcher.failures) == (1, 2)
        assert watcher.last_error is None
        assert recorder.results == [False, False, True]
        assert recorder.configs == [AppConfig(port=3)]


def test_a_deleted_file_is_a_failure_until_it_returns(config_file: Path) -> None:
    recorder = Recorder()
    with manual(config_file, recorder) as watcher:
        config_file.unlink()
        assert not watcher.poll()
        assert watcher.failures == 1
        assert watcher.last_error is not None
        assert "file not found" in str(watcher.last_error)
        assert not watcher.poll()  # still gone: not a new attempt
        assert watcher.failures == 1
        config_file.write_text(json.dumps({"port": 4}))
        assert watcher.poll()
        assert watcher.current.port == 4


def test_the_callback_runs_only_when_values_change(config_file: Path) -> None:
    recorder = Recorder()
    with manual(config_file, recorder) as watcher:
        original = watcher.current
        replace_atomically(config_file, '{ "port": 1 }')  # same values, new file
        assert not watcher.poll()
        assert watcher.reloads == 1
        assert watcher.current is original
        assert recorder.configs == []
        assert recorder.results == [True]
        replace_atomically(config_file, {"port": 1, "api_key": "k"})  # a secret changed
        assert watcher.poll()
        assert recorder.configs == [AppConfig(port=1, api_key=Secret("k"))]


def test_a_raising_callback_is_logged_and_the_new_config_stays(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def callback(config: AppConfig) -> None:
        msg = "the callback broke"
        raise RuntimeError(msg)

    def on_reload(ok: bool) -> None:
        msg = "the metric broke"
        raise RuntimeError(msg)

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with watch(
        AppConfig, config_file, callback, on_reload=on_reload, backend="manual", env={}
    ) as watcher:
        replace_atomically(config_file, {"port": 5})
        assert watcher.poll()
        assert watcher.current.port == 5
        assert (watcher.reloads, watcher.failures, watcher.last_error) == (1, 0, None)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all(r.exc_info is not None for r in errors)
    assert any("stays in effect" in r.getMessage() for r in errors)


def test_an_unexpected_exception_counts_as_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"port": 1}))
    with watch(Fragile, path, backend="manual", env={}) as watcher:
        replace_atomically(path, {"port": 13})
        caplog.set_level(logging.ERROR, logger=LOGGER)
        assert not watcher.poll()
        assert watcher.failures == 1
        assert watcher.last_error is not None
        assert "KeyError" in str(watcher.last_error)
        assert watcher.current.port == 1


@dataclass
class Fragile:
    port: int

    def __post_init__(self) -> None:
        if self.port == 13:
            raise KeyError(self.port)


def test_secrets_stay_out_of_logs_and_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"port": 1, "pin": 1234}))
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    with watch(WithPin, path, on_error=recorder.on_error, backend="manual", env={}) as watcher:
        replace_atomically(path, {"port": 2, "pin": SECRET})
        assert not watcher.poll()
        replace_atomically(path, {"port": 2, "pin": 99, "api_key": SECRET})
        assert watcher.poll()
        shown = [caplog.text, repr(watcher.current), str(recorder.errors), repr(watcher)]
        shown += [str(r.args) for r in caplog.records]
        assert all(SECRET not in text for text in shown)
        assert watcher.current.api_key.get_secret_value() == SECRET


@dataclass(frozen=True, kw_only=True)
class WithPin:
    port: int
    pin: Secret[int]
    api_key: Secret[str] = field(default=Secret(""))


def test_close_joins_the_thread_and_is_idempotent(config_file: Path) -> None:
    watcher = watch(AppConfig, config_file, backend="polling", poll_interval=3600, env={})
    thread = watcher._thread
    assert thread is not None
    assert thread.is_alive()
    assert thread.daemon
    watcher.close()
    assert not thread.is_alive()
    assert thread not in threading.enumerate()
    watcher.close()
    assert not watcher.poll()  # closed: no more reloads
    assert "closed" in repr(watcher)


def test_options_are_checked(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="debounce"):
        watch(AppConfig, config_file, debounce=-1, env={})
    with pytest.raises(ValueError, match="poll_interval"):
        watch(AppConfig, config_file, poll_interval=0, env={})
    with pytest.raises(ValueError, match="backend"):
        watch(AppConfig, config_file, backend="inotify", env={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        watch(AppConfig, config_file, "not callable", env={})  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "watchfiles", None)
    with pytest.raises(ValueError, match=r"seawall-serving\[watch\]"):
        watch(AppConfig, config_file, backend="watchfiles", env={})
    with watch(AppConfig, config_file, backend="auto", env={}) as watcher:
        assert "backend=polling" in repr(watcher)


@pytest.mark.parametrize("backend", ["polling", "watchfiles"])
def test_the_background_thread_reloads(config_file: Path, backend: str) -> None:
    if backend == "watchfiles":
        pytest.importorskip("watchfiles")
    recorder = Recorder()
    before = set(threading.enumerate())
    with watch(
        AppConfig,
        config_file,
        recorder.callback,
        backend="polling" if backend == "polling" else "watchfiles",
        poll_interval=0.02,
        debounce=0.01,
        env={},
    ) as watcher:
        replace_atomically(config_file, {"port": 7})
        assert recorder.called.wait(PATIENCE), "the watcher never reloaded"
        assert watcher.current.port == 7
        assert recorder.configs == [AppConfig(port=7)]
    assert set(threading.enumerate()) <= before
