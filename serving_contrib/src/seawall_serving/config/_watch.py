"""`watch`: reload a configuration when its file changes, keeping the last good one."""

from __future__ import annotations

import importlib
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar, final

from seawall_serving.config._dump import same_values
from seawall_serving.config._errors import ConfigError, ConfigIssue
from seawall_serving.config._load import Unknown, load


__all__ = ("Watcher", "watch")

T = TypeVar("T")
Backend = Literal["auto", "watchfiles", "polling", "manual"]
Signature = tuple[int, int, int, str]

LOGGER: Final = logging.getLogger("seawall_serving.config")
#: At most this many debounce windows pass before a file that keeps changing is read.
MAX_SETTLE_WINDOWS: Final = 10


def _signature(path: Path) -> Signature | None:
    """Identify the file's content by its target's mtime, size, inode and path.

    Symlinks are followed, so that a Kubernetes ``..data`` swap (a new target, a new
    inode) and an editor's write-and-rename (a new inode) both show.
    """
    try:
        stat = path.stat()
        resolved = os.path.realpath(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, resolved)


def _call(hook: Callable[[Any], object] | None, argument: object, what: str) -> None:
    if hook is None:
        return
    try:
        hook(argument)
    except Exception:
        LOGGER.exception("the %s hook raised; ignored", what)


@final
class Watcher(Generic[T]):
    """A configuration kept up to date with its file; made by `watch`.

    `current` is the last good configuration. When the file changes, the watcher
    reads and validates it: a good file becomes `current` (one reference assignment,
    so readers see the old or the new configuration, never a mix) and, if any value
    differs, is passed to the callback; a bad one is logged and counted, and `current`
    stays as it was.

    Close it when done (`close`, or use it as a context manager).

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_backend",
        "_callback",
        "_current",
        "_debounce",
        "_failures",
        "_last_error",
        "_load",
        "_lock",
        "_on_error",
        "_on_reload",
        "_path",
        "_poll_interval",
        "_reloads",
        "_signature",
        "_stop",
        "_thread",
        "_watchfiles",
    )

    def __init__(
        self,
        loader: Callable[[], T],
        path: Path,
        callback: Callable[[T], object] | None,
        *,
        on_error: Callable[[ConfigError], object] | None,
        on_reload: Callable[[bool], object] | None,
        debounce: float,
        poll_interval: float,
        backend: Literal["watchfiles", "polling", "manual"],
        watchfiles: Any,
    ) -> None:
        self._load = loader
        self._path = path
        self._callback = callback
        self._on_error = on_error
        self._on_reload = on_reload
        self._debounce = debounce
        self._poll_interval = poll_interval
        self._backend = backend
        self._watchfiles = watchfiles
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reloads = 0
        self._failures = 0
        self._last_error: ConfigError | None = None
        self._signature = _signature(path)
        self._current = loader()  # before the thread starts: a bad file raises here

    @property
    def current(self) -> T:
        """The last good configuration."""
        return self._current

    @property
    def path(self) -> Path:
        """The file watched."""
        return self._path

    @property
    def reloads(self) -> int:
        """How many times a changed file was read successfully (changed values or not)."""
        return self._reloads

    @property
    def failures(self) -> int:
        """How many times a changed file could not be read or was invalid."""
        return self._failures

    @property
    def last_error(self) -> ConfigError | None:
        """The error of the last reload, or ``None`` if it succeeded (or none happened)."""
        return self._last_error

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._stop.is_set()

    def poll(self) -> bool:
        """Check the file once, now, and reload it if it changed since the last check.

        The background thread calls this; tests call it to be deterministic (with
        ``backend="manual"``, there is no thread). Hooks and the callback run in the
        calling thread before it returns.

        Returns:
            Whether `current` changed: the file had changed, was valid, and holds
            different values.
        """
        return self._check(force=False)

    def close(self) -> None:
        """Stop watching and wait for the watcher's thread to end. Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> Watcher[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Watcher {str(self._path)!r} backend={self._backend} reloads={self._reloads} "
            f"failures={self._failures}{' closed' if self.closed else ''}>"
        )

    # -- reloading -------------------------------------------------------------------

    def _check(self, *, force: bool) -> bool:
        with self._lock:
            if self._stop.is_set():
                return False
            signature = _signature(self._path)
            if signature == self._signature and not force:
                return False
            self._signature = signature
            return self._reload()

    def _reload(self) -> bool:
        try:
            new = self._load()
        except ConfigError as exc:
            return self._failed(exc)
        except Exception as exc:
            LOGGER.exception("reloading %s raised %s", self._path, type(exc).__name__)
            issue = ConfigIssue("", "validation", f"loading raised {type(exc).__name__}")
            return self._failed(ConfigError([issue], f"cannot reload {self._path}"))
        self._reloads += 1
        self._last_error = None
        changed = not same_values(new, self._current)
        if changed:
            self._current = new
            LOGGER.info("reloaded the configuration from %s", self._path)
        else:
            LOGGER.debug("%s changed on disk but its values did not", self._path)
        _call(self._on_reload, True, "on_reload")  # noqa: FBT003 -- the hook's argument
        if changed and self._callback is not None:
            try:
                self._callback(new)
            except Exception:
                LOGGER.exception(
                    "the configuration callback raised; the new configuration from %s "
                    "stays in effect",
                    self._path,
                )
        return changed

    def _failed(self, error: ConfigError) -> bool:
        self._failures += 1
        self._last_error = error
        LOGGER.warning(
            "reloading %s failed; keeping the last good configuration: %s", self._path, error
        )
        _call(self._on_reload, False, "on_reload")  # noqa: FBT003 -- the hook's argument
        _call(self._on_error, error, "on_error")
        return False

    # -- the thread ------------------------------------------------------------------

    def _start(self) -> None:
        if self._backend == "manual":
            return
        name = f"seawall-config-watcher:{self._path.name}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._backend == "watchfiles":
            try:
                self._run_watchfiles()
            except Exception:
                LOGGER.exception(
                    "watching %s with watchfiles failed; polling every %g s instead",
                    self._path.parent,
                    self._poll_interval,
                )
            else:
                return
        self._run_polling()

    def _run_watchfiles(self) -> None:
        # The directory, not the file: a ConfigMap swaps a symlink beside it, and an
        # editor replaces it by a rename; neither is an event on the file itself.
        # Every poll_interval, a plain check catches what the events missed.
        milliseconds = max(1, round(self._debounce * 1000))
        for changes in self._watchfiles.watch(
            self._path.parent,
            watch_filter=None,
            debounce=milliseconds,
            step=min(50, milliseconds),
            stop_event=self._stop,
            rust_timeout=max(1, round(self._poll_interval * 1000)),
            yield_on_timeout=True,
            recursive=False,
            raise_interrupt=False,
        ):
            # A write in place may keep the size and the (coarse) mtime: read anyway.
            touched = any(Path(name).name == self._path.name for _, name in changes)
            self._check(force=touched)

    def _run_polling(self) -> None:
        while not self._stop.wait(self._poll_interval):
            signature = _signature(self._path)
            if signature != self._signature and self._settle(signature):
                self._check(force=False)

    def _settle(self, signature: Signature | None) -> bool:
        """Wait until the file stays unchanged for a debounce window; False if closed."""
        for _ in range(MAX_SETTLE_WINDOWS):
            if self._stop.wait(self._debounce):
                return False
            now = _signature(self._path)
            if now == signature:
                break
            signature = now
        return True


def watch(
    cls: type[T],
    path: str | os.PathLike[str],
    callback: Callable[[T], object] | None = None,
    *,
    on_error: Callable[[ConfigError], object] | None = None,
    on_reload: Callable[[bool], object] | None = None,
    debounce: float = 0.2,
    poll_interval: float = 1.0,
    backend: Backend = "auto",
    env_prefix: str = "APP",
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
    unknown: Unknown = "error",
) -> Watcher[T]:
    """Load a configuration, then reload it whenever its file changes.

    The file is loaded now, with `load`'s rules (an invalid one raises `ConfigError`
    here). Then a daemon thread watches the file's directory, which sees editors that
    replace the file by a rename and Kubernetes ConfigMaps that swap a ``..data``
    symlink. Changes within *debounce* seconds of each other make one reload. Each
    reload reads the file and the environment again (``_FILE`` secrets too).

    - A valid file becomes `Watcher.current`; if its values differ from the last,
      *callback* gets it. A callback that raises is logged (ERROR) and the new
      configuration stays in effect: it is valid, the callback is what failed.
    - An invalid file is logged (WARNING, on the ``seawall_serving.config`` logger,
      without secret values), counted in `Watcher.failures`, kept in
      `Watcher.last_error` and passed to *on_error*; the last good configuration
      stays.

    Args:
        cls: The configuration class, as for `load`.
        path: The configuration file.
        callback: Called with each new configuration whose values changed, in the
            watcher's thread (or in the thread calling `Watcher.poll`).
        on_error: Called with the `ConfigError` of each failed reload.
        on_reload: Called after each reload with ``True`` (success) or ``False``, to
            feed a metric such as ``config_reloads_total{result=...}``.
        debounce: Seconds to wait for a burst of changes to end before reading.
        poll_interval: Seconds between checks when polling; with watchfiles, the
            period of a fallback check that catches missed events.
        backend: ``"watchfiles"`` (OS file events; needs the package), ``"polling"``
            (``stat`` every *poll_interval*), ``"auto"`` (watchfiles when installed),
            or ``"manual"`` (no thread: call `Watcher.poll` yourself).
        env_prefix: As for `load`.
        env: As for `load`.
        overrides: As for `load`.
        unknown: As for `load`.

    Returns:
        The running `Watcher`.

    Raises:
        ConfigError: The file is not a valid configuration now.
        ValueError: An option is out of range, or ``backend="watchfiles"`` without
            the package.

    .. versionadded:: 0.1.0
    """
    if not isinstance(debounce, (int, float)) or not math.isfinite(debounce) or debounce < 0:
        msg = f"debounce must be a finite number of seconds >= 0, got {debounce!r}"
        raise ValueError(msg)
    if (
        not isinstance(poll_interval, (int, float))
        or not math.isfinite(poll_interval)
        or poll_interval <= 0
    ):
        msg = f"poll_interval must be a finite number of seconds > 0, got {poll_interval!r}"
        raise ValueError(msg)
    if backend not in ("auto", "watchfiles", "polling", "manual"):
        msg = f"backend must be 'auto', 'watchfiles', 'polling' or 'manual', got {backend!r}"
        raise ValueError(msg)
    if callback is not None and not callable(callback):
        msg = f"callback must be callable, got {type(callback).__name__}"
        raise TypeError(msg)
    watchfiles: Any = None
    if backend in ("auto", "watchfiles"):
        try:
            watchfiles = importlib.import_module("watchfiles")
        except ImportError:
            if backend == "watchfiles":
                msg = "backend='watchfiles' needs watchfiles: pip install 'seawall-serving[watch]'"
                raise ValueError(msg) from None
    chosen: Literal["watchfiles", "polling", "manual"] = "manual"
    if backend != "manual":
        chosen = "polling" if watchfiles is None else "watchfiles"
    file = Path(path)

    def loader() -> T:
        return load(cls, file, env_prefix=env_prefix, env=env, overrides=overrides, unknown=unknown)

    watcher = Watcher(
        loader,
        file,
        callback,
        on_error=on_error,
        on_reload=on_reload,
        debounce=float(debounce),
        poll_interval=float(poll_interval),
        backend=chosen,
        watchfiles=watchfiles,
    )
    watcher._start()  # noqa: SLF001 -- the factory starts what it made
    return watcher
