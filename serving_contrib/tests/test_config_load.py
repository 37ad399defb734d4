"""seawall_serving.config.load and dump: sources, precedence, types, errors, secrets."""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seawall_serving import config
from seawall_serving.config import ConfigError, ConfigIssue, Secret, dump, load, setting


try:
    import pydantic

    HAVE_PYDANTIC = True
except ImportError:  # pragma: no cover -- installed in the dev and CI environments
    HAVE_PYDANTIC = False

needs_pydantic = pytest.mark.skipif(not HAVE_PYDANTIC, reason="pydantic is not installed")
needs_toml = pytest.mark.skipif(
    sys.version_info < (3, 11) and importlib.util.find_spec("tomli") is None,
    reason="TOML needs Python 3.11's tomllib or tomli",
)

SECRET = "hunter2-correct-horse"


class Level(enum.Enum):
    DEBUG = "debug"
    INFO = "info"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True, kw_only=True)
class Server:
    port: int = setting(default=8080, doc="The port to listen on.")
    host: str = setting(key="listen-host", default="127.0.0.1")
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, kw_only=True)
class Database:
    url: str
    password: Secret[str]
    pool: int = 5


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    name: str
    server: Server = field(default_factory=Server)
    database: Database | None = None
    debug: bool = False
    ratio: float = 0.5
    level: Level = Level.INFO
    mode: Literal["fast", "safe"] = "safe"
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    data_dir: Path | None = None
    api_key: Secret[str] | None = None
    token: str = setting(secret=True, default="")


@dataclass(frozen=True, kw_only=True)
class Everything:
    flag: bool = False
    count: int = 0
    ratio: float = 0.0
    text: str = ""
    maybe: int | None = 3
    choice: Literal["a", "b", 1] = "a"
    level: Level = Level.INFO
    priority: Priority = Priority.LOW
    items: list[int] = field(default_factory=list)
    pair: tuple[int, str] = (0, "")
    many: tuple[float, ...] = ()
    unique: frozenset[str] = frozenset()
    table: dict[str, float] = field(default_factory=dict)
    wait: timedelta = timedelta(0)
    where: Path = Path()
    key: Secret[str] = field(default=Secret(""))
    servers: list[Server] = field(default_factory=list)
    either: int | str = 0


def write(path: Path, data: object) -> Path:
    """Write *data* as JSON (or as the text given) to *path*."""
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def errors_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> dict[str, ConfigIssue]:
    """The issues of a ConfigError, by path (paths are unique in these tests)."""
    return {issue.path: issue for issue in excinfo.value.errors}


# -- sources and precedence -------------------------------------------------------------


def test_defaults_file_env_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.json",
        {"name": "svc", "server": {"port": 9000, "listen-host": "0.0.0.0"}, "tags": ["a"]},
    )
    env = {"APP_SERVER__PORT": "9100", "APP_DEBUG": "yes", "OTHER": "x"}
    loaded = load(AppConfig, path, env=env, overrides={"server": {"timeout": 2.5}})
    assert loaded == AppConfig(
        name="svc",
        server=Server(port=9100, host="0.0.0.0", timeout=timedelta(seconds=2.5)),
        debug=True,
        tags=["a"],
    )


def test_no_file_reads_defaults_and_environment() -> None:
    loaded = load(AppConfig, env={"APP_NAME": "from-env"})
    assert loaded == AppConfig(name="from-env")


@needs_toml
def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text('name = "t"\ntags = ["x", "y"]\n\n[server]\nport = 81\n"listen-host" = "h"\n')
    assert load(AppConfig, toml, env={}).server == Server(port=81, host="h")
    pytest.importorskip("yaml")
    yaml = tmp_path / "config.yaml"
    yaml.write_text("name: y\nserver:\n  port: 82\nratio: 1\n")
    loaded = load(AppConfig, yaml, env={})
    assert (loaded.name, loaded.server.port, loaded.ratio) == ("y", 82, 1.0)
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert load(AppConfig, empty, env={}, overrides={"name": "n"}).name == "n"


def _precedence_classes(
    defaults: dict[str, int],
) -> tuple[type[Any], type[Any]]:
    inner = dataclasses.make_dataclass(
        "Inner",
        [
            ("c", int, field(default=defaults["inner.c"])),
            ("d", int, field(default=defaults["inner.d"])),
        ],
        frozen=True,
        kw_only=True,
    )
    outer = dataclasses.make_dataclass(
        "Outer",
        [
            ("a", int, field(default=defaults["a"])),
            ("b", int, field(default=defaults["b"])),
            ("inner", inner, field(default_factory=inner)),
        ],
        frozen=True,
        kw_only=True,
    )
    return outer, inner


def _nest(flat: dict[str, int]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, last = dotted.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return nested


PATHS = ("a", "b", "inner.c", "inner.d")
values = st.integers(-(2**40), 2**40)
layer = st.dictionaries(st.sampled_from(PATHS), values)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("precedence")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    defaults=st.fixed_dictionaries(dict.fromkeys(PATHS, values)),
    file=layer,
    environ=layer,
    overrides=layer,
)
def test_each_setting_takes_the_highest_precedence_source(
    workdir: Path,
    defaults: dict[str, int],
    file: dict[str, int],
    environ: dict[str, int],
    overrides: dict[str, int],
) -> None:
    outer, _ = _precedence_classes(defaults)
    path = write(workdir / "config.json", _nest(file))
    env = {f"APP_{p.upper().replace('.', '__')}": str(v) for p, v in environ.items()}
    loaded = load(outer, path, env=env, overrides=_nest(overrides))
    for dotted in PATHS:
        expected = next(
            source[dotted] for source in (overrides, environ, file, defaults) if dotted in source
        )
        obj = loaded
        for part in dotted.split("."):
            obj = getattr(obj, part)
        assert obj == expected, dotted


@dataclass(frozen=True, kw_only=True)
class WithDefault:
    server: Server = field(default_factory=lambda: Server(port=7000, host="h"))


def test_nested_default_object_supplies_the_defaults_of_its_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"server": {"listen-host": "file"}})
    assert load(WithDefault, path, env={}).server == Server(port=7000, host="file")
    assert load(WithDefault, env={}).server == Server(port=7000, host="h")


def test_optional_nested_dataclass(tmp_path: Path) -> None:
    assert load(AppConfig, env={"APP_NAME": "n"}).database is None
    env = {"APP_NAME": "n", "APP_DATABASE__URL": "pg://", "APP_DATABASE__PASSWORD": "pw"}
    database = load(AppConfig, env=env).database
    assert database == Database(url="pg://", password=Secret("pw"))
    path = write(tmp_path / "c.json", {"name": "n", "database": None})
    assert load(AppConfig, path, env={}).database is None
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, env={"APP_NAME": "n", "APP_DATABASE__POOL": "3"})
    assert set(errors_of(excinfo)) == {"database.url", "database.password"}


@dataclass(frozen=True, kw_only=True)
class Holder:
    server: Server


def test_a_required_nested_dataclass_may_come_from_its_defaults() -> None:
    assert load(Holder, env={}).server == Server()


def test_lists_and_mappings_are_replaced_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"name": "n", "tags": ["a", "b"], "limits": {"x": 1}})
    loaded = load(AppConfig, path, env={"APP_TAGS": "c"}, overrides={"limits": {"y": 2}})
    assert loaded.tags == ["c"]
    assert loaded.limits == {"y": 2}


# -- the environment ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Inner:
    port: int = setting(env="PORT", default=1)
    depth: int = 0


@dataclass(frozen=True, kw_only=True)
class Outer:
    inner: Inner = field(default_factory=Inner)


def test_nested_variables_and_explicit_names() -> None:
    loaded = load(Outer, env={"PORT": "8081", "SVC_INNER__DEPTH": "4"}, env_prefix="SVC")
    assert loaded.inner == Inner(port=8081, depth=4)
    # The explicit name replaces the derived one, which is then unknown.
    with pytest.raises(ConfigError) as excinfo:
        load(Outer, env={"SVC_INNER__PORT": "1"}, env_prefix="SVC")
    [issue] = excinfo.value.errors
    assert (issue.path, issue.source) == ("inner.port", "env SVC_INNER__PORT")
    assert load(Outer, env={"SVC_INNER__PORT": "1"}, env_prefix="SVC", unknown="ignore") == Outer()


def test_prefix_spellings() -> None:
    assert load(AppConfig, env={"MY_NAME": "a"}, env_prefix="MY_").name == "a"
    assert load(AppConfig, env={"NAME": "b", "SERVER__PORT": "5"}, env_prefix="").server.port == 5
    with pytest.raises(ValueError, match="env_prefix"):
        load(AppConfig, env={}, env_prefix="no spaces")


def test_unknown_variables_only_with_the_prefix() -> None:
    env = {"APP_NAME": "n", "APP_SERVER__PROT": "1", "APPLE": "x", "HOME": "/root"}
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, env=env)
    [issue] = excinfo.value.errors
    assert issue.path == "server.prot"
    assert issue.source == "env APP_SERVER__PROT"
    assert "APP_SERVER__PORT" in issue.message  # the suggestion
    assert load(AppConfig, env=env, unknown="ignore").name == "n"
    # Without a prefix nothing can be told apart from the rest of the environment.
    assert load(AppConfig, env={"NAME": "n", "SERVER__PROT": "1"}, env_prefix="").name == "n"


@given(
    st.booleans(),
    st.sampled_from([("true", "false"), ("1", "0"), ("yes", "no"), ("on", "off")]),
    st.data(),
)
def test_env_booleans(value: bool, words: tuple[str, str], data: st.DataObject) -> None:
    word = words[0] if value else words[1]
    spelled = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    assert load(Everything, env={"APP_FLAG": f" {spelled} "}).flag is value


@given(st.integers())
def test_env_integers_round_trip(value: int) -> None:
    assert load(Everything, env={"APP_COUNT": str(value)}).count == value


@given(st.floats(allow_nan=False))
def test_env_floats_round_trip(value: float) -> None:
    assert load(Everything, env={"APP_RATIO": repr(value)}).ratio == value


@given(st.lists(st.integers()), st.booleans())
def test_env_lists_round_trip(items: list[int], as_json: bool) -> None:
    text = json.dumps(items) if as_json else ", ".join(map(str, items))
    assert load(Everything, env={"APP_ITEMS": text}).items == items


def _spell_duration(value: timedelta, style: int) -> str:
    sign, value = ("-", -value) if value < timedelta(0) else ("", value)
    if style == 0:
        return f"{sign}{value.total_seconds()!r}"
    if style == 1:
        return f"{sign}{value.total_seconds()!r}s"
    if style == 2:
        return f"{sign}{value // timedelta(microseconds=1)}us"
    hours, rest = divmod(value.seconds, 3600)
    return f"{sign}{value.days}d{hours}h {rest}s{value.microseconds}us"


@given(
    st.timedeltas(min_value=-timedelta(days=9999), max_value=timedelta(days=9999)),
    st.integers(0, 3),
)
def test_env_durations_round_trip(value: timedelta, style: int) -> None:
    text = _spell_duration(value, style)
    assert load(Everything, env={"APP_WAIT": text}).wait == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5s", timedelta(seconds=1.5)),
        ("250ms", timedelta(milliseconds=250)),
        ("2m", timedelta(minutes=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("10", timedelta(seconds=10)),
        (".5s", timedelta(seconds=0.5)),
        ("-3s", timedelta(seconds=-3)),
    ],
)
def test_duration_spellings(tmp_path: Path, text: str, expected: timedelta) -> None:
    assert load(Everything, env={"APP_WAIT": text}).wait == expected
    path = write(tmp_path / "c.json", {"wait": text})
    assert load(Everything, path, env={}).wait == expected


def test_every_type_from_the_environment() -> None:
    env = {
        "APP_MAYBE": "",
        "APP_CHOICE": "1",
        "APP_LEVEL": "DEBUG",
        "APP_PRIORITY": "2",
        "APP_PAIR": '[7, "x"]',
        "APP_MANY": "1, 2.5",
        "APP_UNIQUE": "a,b,a",
        "APP_TABLE": '{"x": 1, "y": 2.5}',
        "APP_WHERE": "/srv/data",
        "APP_KEY": SECRET,
        "APP_SERVERS": '[{"port": 1}, {"listen-host": "h"}]',
        "APP_EITHER": "abc",
    }
    loaded = load(Everything, env=env)
    assert loaded.maybe is None
    assert loaded.choice == 1
    assert loaded.level is Level.DEBUG
    assert loaded.priority is Priority.HIGH
    assert loaded.pair == (7, "x")
    assert loaded.many == (1.0, 2.5)
    assert loaded.unique == frozenset({"a", "b"})
    assert loaded.table == {"x": 1.0, "y": 2.5}
    assert loaded.where == Path("/srv/data")
    assert loaded.key.get_secret_value() == SECRET
    assert loaded.servers == [Server(port=1), Server(host="h")]
    assert loaded.either == "abc"
    assert load(Everything, env={"APP_EITHER": "12"}).either == 12
    assert load(Everything, env={"APP_LEVEL": "info"}).level is Level.INFO


def test_every_type_from_a_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {
            "flag": True,
            "count": 3,
            "ratio": 2,
            "maybe": None,
            "choice": "b",
            "level": "debug",
            "priority": 2,
            "items": [1, 2],
            "pair": [1, "a"],
            "many": [1, 2.5],
            "unique": ["a"],
            "table": {"k": 1},
            "wait": 1.5,
            "where": "rel/dir",
            "key": SECRET,
            "servers": [{"port": 5}],
            "either": "s",
        },
    )
    loaded = load(Everything, path, env={})
    assert loaded == Everything(
        flag=True,
        count=3,
        ratio=2.0,
        maybe=None,
        choice="b",
        level=Level.DEBUG,
        priority=Priority.HIGH,
        items=[1, 2],
        pair=(1, "a"),
        many=(1.0, 2.5),
        unique=frozenset({"a"}),
        table={"k": 1.0},
        wait=timedelta(seconds=1.5),
        where=Path("rel/dir"),
        key=Secret(SECRET),
        servers=[Server(port=5)],
        either="s",
    )
    assert isinstance(loaded.ratio, float)


def test_overrides_take_python_values() -> None:
    overrides = {
        "wait": timedelta(minutes=1),
        "level": Level.DEBUG,
        "where": Path("/x"),
        "key": Secret("s"),
        "servers": [Server(port=2)],
        "unique": {"a"},
        "pair": (1, "b"),
    }
    loaded = load(Everything, env={}, overrides=overrides)
    assert loaded.wait == timedelta(minutes=1)
    assert loaded.level is Level.DEBUG
    assert loaded.where == Path("/x")
    assert loaded.key == Secret("s")
    assert loaded.servers == [Server(port=2)]
    assert loaded.unique == frozenset({"a"})
    assert loaded.pair == (1, "b")
    server = Server(port=3)
    assert load(AppConfig, env={}, overrides={"name": "n", "server": server}).server is server


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("count", "80", "expected int, got str '80'"),
        ("count", 1.0, "expected int, got float 1.0"),
        ("count", True, "expected int, got bool True"),
        ("flag", 1, "expected bool, got int 1"),
        ("flag", "true", "expected bool, got str 'true'"),
        ("ratio", "0.5", "expected float, got str '0.5'"),
        ("text", 5, "expected str, got int 5"),
        ("items", "1,2", "expected list[int], got str '1,2'"),
        ("items", [1, "2"], "expected int, got str '2'"),
        ("maybe", "x", "expected int, got str 'x'"),
        ("choice", "c", "expected one of 'a', 'b', 1, got str 'c'"),
        ("level", "DEBUGGING", "expected one of 'debug', 'info', got str 'DEBUGGING'"),
        ("pair", [1, "a", 2], "expected tuple[int, str], got 3 items"),
        ("table", [], "expected dict[str, float], got list []"),
        ("wait", True, "expected a duration"),
        ("wait", "soon", "expected a duration"),
        ("where", "", "expected a path"),
        ("servers", [5], "expected a mapping of settings (Server), got int 5"),
        ("either", 1.5, "expected int | str, got float 1.5"),
    ],
)
def test_file_values_must_have_the_right_type(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    path = write(tmp_path / "c.json", {key: value})
    with pytest.raises(ConfigError) as excinfo:
        load(Everything, path, env={})
    [issue] = excinfo.value.errors
    assert issue.path.startswith(key)
    assert issue.source == f"file {path}"
    assert expected in issue.message


@pytest.mark.parametrize(
    ("var", "text", "expected"),
    [
        ("APP_COUNT", "1.5", "expected an integer, got '1.5'"),
        ("APP_FLAG", "maybe", "expected a boolean: true/false, 1/0, yes/no or on/off, got 'maybe'"),
        ("APP_RATIO", "half", "expected a number, got 'half'"),
        ("APP_ITEMS", "[1, 2", "expected a JSON array"),
        ("APP_ITEMS", "1,x", "expected an integer, got 'x'"),
        ("APP_TABLE", "[1]", "expected a JSON object"),
        ("APP_TABLE", "x=1", "expected a JSON object"),
        ("APP_WAIT", "5 parsecs", "expected a duration"),
        ("APP_WAIT", "nan", "expected a duration"),
        ("APP_LEVEL", "loud", "expected one of 'debug', 'info', got 'loud'"),
    ],
)
def test_environment_values_must_parse(var: str, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(Everything, env={var: text})
    [issue] = excinfo.value.errors
    assert issue.source == f"env {var}"
    assert expected in issue.message


def test_missing_required_settings_name_the_file_key_and_variable() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(Database, env={}, env_prefix="DB")
    issues = errors_of(excinfo)
    assert set(issues) == {"url", "password"}
    assert issues["url"].source == "default"
    assert "missing required setting" in issues["url"].message
    assert "DB_URL" in issues["url"].message
    assert "'password'" in issues["password"].message


def test_missing_message_uses_the_doc_and_key() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Keyed:
        listen: int = setting(key="listen-port", doc="where to listen")

    with pytest.raises(ConfigError) as excinfo:
        load(Keyed, env={})
    message = excinfo.value.errors[0].message
    assert "(where to listen)" in message
    assert "'listen-port'" in message
    assert "APP_LISTEN" in message


def test_unknown_file_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"name": "n", "nmae": 1, "server": {"prot": 1}})
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, path, env={})
    issues = errors_of(excinfo)
    assert set(issues) == {"nmae", "server.prot"}
    assert "did you mean 'name'?" in issues["nmae"].message
    assert "did you mean 'port'?" in issues["server.prot"].message
    assert load(AppConfig, path, env={}, unknown="ignore").name == "n"


def test_unknown_override_keys_are_always_errors() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, env={}, overrides={"name": "n", "nmae": "x"}, unknown="ignore")
    [issue] = excinfo.value.errors
    assert (issue.path, issue.source) == ("nmae", "override")


def test_malformed_json_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", '{\n  "name": "n",\n  "tags": [1,,]\n}\n')
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, path, env={})
    [issue] = excinfo.value.errors
    assert (issue.line, issue.column) == (3, 14)
    assert issue.message.startswith("malformed JSON at line 3, column 14: ")
    assert issue.source == f"file {path}"


@needs_toml
def test_malformed_toml_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'name = "n"\n\n[server]\nport = = 3\n')
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, path, env={})
    [issue] = excinfo.value.errors
    assert (issue.line, issue.column) == (4, 8)
    assert issue.message.startswith("malformed TOML at line 4, column 8: ")
    assert "(at line" not in issue.message
    unterminated = write(tmp_path / "end.toml", 'name = "n')
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, unterminated, env={})
    assert excinfo.value.errors[0].line == 1


def test_malformed_yaml_has_line_and_column_but_not_the_text(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = write(tmp_path / "c.yaml", f"name: n\ntoken: {SECRET}\n  bad: [\n")
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, path, env={})
    [issue] = excinfo.value.errors
    assert issue.line is not None
    assert issue.column is not None
    assert issue.message.startswith(f"malformed YAML at line {issue.line}, column {issue.column}: ")
    assert SECRET not in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.json", None, "file not found: "),
        ("dir.json", "DIR", "it is a directory"),
        ("c.ini", "x=1", "cannot tell the format"),
        ("list.json", "[1, 2]", "must be a mapping of settings, not a list"),
        ("latin.json", b'{"name": "\xe9"}', "is not UTF-8 text"),
    ],
)
def test_unreadable_files(
    tmp_path: Path, name: str, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, path, env={})
    [issue] = excinfo.value.errors  # no "missing" noise about what the file would hold
    assert expected in issue.message
    assert issue.source == f"file {path}"


def test_a_missing_file_is_reported_with_the_environment_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, tmp_path / "nope.json", env={"APP_DEBUG": "perhaps", "APP_BOGUS": "1"})
    assert [issue.path for issue in excinfo.value.errors] == ["", "bogus", "debug"]


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {"server": {"port": "80", "listen-host": 1}, "extra": True, "tags": "a"},
    )
    env = {"APP_DEBUG": "maybe", "APP_SERVER__TIMEOUT": "forever", "APP_NOPE": "1"}
    with pytest.raises(ConfigError) as excinfo:
        load(AppConfig, path, env=env, overrides={"ratio": "high"})
    error = excinfo.value
    assert isinstance(error, ValueError)
    found = {(issue.path, issue.source.split()[0]) for issue in error.errors}
    assert found == {
        ("name", "default"),
        ("server.port", "file"),
        ("server.host", "file"),
        ("server.timeout", "env"),
        ("extra", "file"),
        ("tags", "file"),
        ("debug", "env"),
        ("nope", "env"),
        ("ratio", "override"),
    }
    lines = str(error).splitlines()
    assert lines[0] == f"invalid configuration for AppConfig from {path} (9 errors):"
    assert len(lines) == 1 + len(error.errors)
    assert all(line.startswith("  ") for line in lines[1:])


def test_post_init_errors_are_reported_with_the_others() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Checked:
        low: int = 0
        high: int = 10
        other: int = 0

        def __post_init__(self) -> None:
            if self.low > self.high:
                msg = f"low ({self.low}) must not exceed high ({self.high})"
                raise ValueError(msg)

    with pytest.raises(ConfigError) as excinfo:
        load(Checked, env={"APP_LOW": "11"})
    [issue] = excinfo.value.errors
    assert (issue.path, issue.source) == ("", "validation")
    assert issue.message == "low (11) must not exceed high (10)"
    with pytest.raises(ConfigError) as excinfo:
        load(Checked, env={"APP_LOW": "11", "APP_OTHER": "x"})
    assert [issue.path for issue in excinfo.value.errors] == ["other"]  # not built: not checked


def test_config_error_pickles_and_renders() -> None:
    error = ConfigError([ConfigIssue("a.b", "env X", "bad"), ConfigIssue("", "file f", "worse")])
    assert str(error) == "invalid configuration (2 errors):\n  a.b: bad [env X]\n  worse [file f]"
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 -- our own pickle
    assert again.errors == error.errors
    assert str(again) == str(error)


# -- secrets --------------------------------------------------------------------------


def test_secret_type() -> None:
    secret = Secret(SECRET)
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('**********')"
    assert secret.get_secret_value() == SECRET
    assert secret == Secret(SECRET)
    assert secret != Secret("other")
    assert secret != SECRET
    assert hash(secret) == hash(Secret(SECRET))
    assert Secret[int](3).get_secret_value() == 3


def test_secrets_are_masked_in_repr_and_dump(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {"name": "n", "api_key": SECRET, "token": SECRET + "-token"},
    )
    env = {"APP_DATABASE__URL": "pg://", "APP_DATABASE__PASSWORD": SECRET + "-db"}
    loaded = load(AppConfig, path, env=env)
    assert loaded.api_key == Secret(SECRET)
    assert loaded.token == SECRET + "-token"
    assert SECRET not in repr(loaded)
    dumped = dump(loaded)
    assert SECRET not in json.dumps(dumped)
    assert dumped["api_key"] == dumped["token"] == dumped["database"]["password"] == "**********"


def test_secrets_never_appear_in_errors(tmp_path: Path) -> None:
    @dataclass(frozen=True, kw_only=True)
    class Secrets:
        pin: Secret[int]
        words: Secret[list[int]] = field(default=Secret([]))
        token: str = setting(secret=True, default="")
        choice: Secret[Literal["a", "b"]] = field(default=Secret("a"))

        def __post_init__(self) -> None:
            if self.token == SECRET:
                msg = f"token {self.token} is on the list of leaked tokens"
                raise ValueError(msg)

    path = write(tmp_path / "c.json", {"pin": SECRET, "words": [SECRET]})
    env = {"APP_CHOICE": SECRET + "-choice", "APP_TOKEN": SECRET}
    with pytest.raises(ConfigError) as excinfo:
        load(Secrets, path, env=env)
    text = str(excinfo.value) + repr(excinfo.value.errors)
    assert SECRET not in text
    assert {issue.path for issue in excinfo.value.errors} == {"pin", "words[0]", "choice"}
    assert "(a secret: value hidden)" in text
    with pytest.raises(ConfigError) as excinfo:
        load(Secrets, env={"APP_PIN": "1", "APP_TOKEN": SECRET})
    [issue] = excinfo.value.errors
    assert issue.source == "validation"
    assert issue.message == "token ********** is on the list of leaked tokens"


def test_secret_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    env = {"APP_DATABASE__URL": "pg://", "APP_DATABASE__PASSWORD_FILE": str(secret_file)}
    loaded = load(AppConfig, env={"APP_NAME": "n", **env})
    assert loaded.database is not None
    assert loaded.database.password.get_secret_value() == SECRET
    secret_file.write_bytes(b"two\n\n")  # only one newline is stripped
    assert load(
        Database, env={"DB_URL": "u", "DB_PASSWORD_FILE": str(secret_file)}, env_prefix="DB"
    ).password == Secret("two\n")
    token_file = tmp_path / "token"
    token_file.write_bytes(b"tok\r\n")
    assert load(AppConfig, env={"APP_NAME": "n", "APP_TOKEN_FILE": str(token_file)}).token == "tok"


def test_secret_file_errors(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET)
    env = {"DB_URL": "u", "DB_PASSWORD": SECRET, "DB_PASSWORD_FILE": str(secret_file)}
    with pytest.raises(ConfigError) as excinfo:
        load(Database, env=env, env_prefix="DB")
    [issue] = excinfo.value.errors
    assert issue.message == "both DB_PASSWORD and DB_PASSWORD_FILE are set; set only one"
    missing = tmp_path / "absent"
    with pytest.raises(ConfigError) as excinfo:
        load(Database, env={"DB_URL": "u", "DB_PASSWORD_FILE": str(missing)}, env_prefix="DB")
    [issue] = excinfo.value.errors  # the failure is not followed by a "missing" one
    assert issue.path == "password"
    assert issue.source == "env DB_PASSWORD_FILE"
    assert str(missing) in issue.message
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff" + SECRET.encode())
    with pytest.raises(ConfigError) as excinfo:
        load(Database, env={"DB_URL": "u", "DB_PASSWORD_FILE": str(binary)}, env_prefix="DB")
    assert "not UTF-8 text" in str(excinfo.value)
    assert SECRET not in str(excinfo.value)


def test_only_secrets_have_file_variables() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(
            Database, env={"DB_URL_FILE": "/x", "DB_URL": "u", "DB_PASSWORD": "p"}, env_prefix="DB"
        )
    assert [issue.source for issue in excinfo.value.errors] == ["env DB_URL_FILE"]


# -- dump -----------------------------------------------------------------------------


def test_dump_is_json_safe_and_keyed_like_the_file(tmp_path: Path) -> None:
    loaded = load(
        Everything,
        env={"APP_WAIT": "1m", "APP_LEVEL": "debug", "APP_WHERE": "/d", "APP_UNIQUE": "b,a"},
    )
    dumped = dump(loaded)
    assert json.loads(json.dumps(dumped)) == dumped
    assert dumped["wait"] == 60.0
    assert dumped["level"] == "debug"
    assert dumped["priority"] == 1
    assert dumped["where"] == "/d"
    assert dumped["unique"] == ["a", "b"]
    assert dumped["pair"] == [0, ""]
    server = dump(Server(port=1))
    assert server == {"port": 1, "listen-host": "127.0.0.1", "timeout": 10.0}
    # What dump writes loads back (secrets aside).
    path = write(tmp_path / "again.json", {k: v for k, v in dumped.items() if k != "key"})
    assert load(Everything, path, env={}) == dataclasses.replace(loaded, key=Secret(""))
    with pytest.raises(TypeError, match="dataclass or pydantic model instance"):
        dump(Server)


# -- the schema -----------------------------------------------------------------------


def test_setting_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="environment variable name"):
        setting(env="NOT VALID")
    with pytest.raises(ValueError, match="non-empty"):
        setting(key="")
    with pytest.raises(ValueError, match="not both"):
        setting(default=1, default_factory=int)  # type: ignore[call-overload]

    @dataclass
    class Hidden:
        token: str = setting(secret=True, default="x")

    assert repr(Hidden()) == "test_setting_validates_its_arguments.<locals>.Hidden()"


def test_programming_errors_are_type_errors() -> None:
    @dataclass
    class Unsupported:
        value: complex = 0j

    @dataclass
    class EnvOnNested:
        server: Server = setting(env="SERVER", default_factory=Server)  # noqa: RUF009

    @dataclass
    class SameKey:
        a: int = setting(key="x", default=0)
        b: int = setting(key="x", default=0)

    with pytest.raises(TypeError, match=r"Unsupported\.value: complex is not a type"):
        load(Unsupported, env={})
    with pytest.raises(TypeError, match="a nested dataclass"):
        load(EnvOnNested, env={})
    with pytest.raises(TypeError, match="share the key 'x'"):
        load(SameKey, env={})
    with pytest.raises(TypeError, match="must be a dataclass or a pydantic model"):
        load(dict, env={})
    with pytest.raises(ValueError, match="unknown must be"):
        load(AppConfig, env={}, unknown="warn")  # type: ignore[arg-type]


@dataclass
class Node:
    name: str = ""
    children: list[Node] = field(default_factory=list)


@dataclass
class Loop:
    again: Loop | None = None


def test_recursive_types() -> None:
    loaded = load(
        Node, env={}, overrides={"children": [{"name": "a", "children": [{"name": "b"}]}]}
    )
    assert loaded.children[0].children[0].name == "b"
    with pytest.raises(TypeError, match="nests itself"):
        load(Loop, env={})


def test_public_names_live_in_the_package() -> None:
    assert config.__all__ == (
        "ConfigError",
        "ConfigIssue",
        "Secret",
        "Watcher",
        "dump",
        "load",
        "setting",
        "watch",
    )
    for name in config.__all__:
        assert getattr(config, name).__module__ == "seawall_serving.config", name


def test_imports_and_reads_json_with_the_stdlib_alone(tmp_path: Path) -> None:
    write(tmp_path / "c.json", {"port": 1})
    (tmp_path / "c.yaml").write_text("port: 1\n")
    (tmp_path / "c.toml").write_text("port = 1\n")
    code = textwrap.dedent(
        """
        import sys
        for name in ("pydantic", "pydantic_core", "watchfiles", "yaml", "tomli", "tomllib"):
            sys.modules[name] = None
        from dataclasses import dataclass
        from seawall_serving import config

        @dataclass
        class C:
            port: int = 0

        assert config.load(C, "c.json", env={}).port == 1
        for name in ("c.yaml", "c.toml"):
            try:
                config.load(C, name, env={})
            except config.ConfigError as exc:
                print(exc.errors[0].message)
        watcher = config.watch(C, "c.json", backend="auto", env={})
        print(repr(watcher))
        watcher.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr
    yaml_line, toml_line, watcher_line = result.stdout.splitlines()
    assert "needs PyYAML: pip install 'seawall-serving[yaml]'" in yaml_line
    assert "tomli: pip install 'seawall-serving[toml]'" in toml_line
    assert "backend=polling" in watcher_line


# -- pydantic -------------------------------------------------------------------------

if HAVE_PYDANTIC:

    class PServer(pydantic.BaseModel):
        port: int = 8080
        host: str = pydantic.Field(default="127.0.0.1", alias="listen-host")

    class PApp(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")

        name: str
        server: PServer = PServer()
        tags: list[str] = []
        wait: timedelta = timedelta(seconds=1)
        level: Level = Level.INFO
        api_key: Secret[str]
        password: pydantic.SecretStr = pydantic.SecretStr("")
        port: int = pydantic.Field(default=0, json_schema_extra={"env": "PORT"})

        @pydantic.field_validator("tags")
        @classmethod
        def _no_empty_tags(cls, tags: list[str]) -> list[str]:
            if any(not tag for tag in tags):
                msg = "tags must not be empty"
                raise ValueError(msg)
            return tags


@needs_pydantic
def test_pydantic_models_load_from_every_source(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"name": "p", "server": {"listen-host": "h"}})
    env = {
        "APP_SERVER__PORT": "81",
        "APP_TAGS": "a,b",
        "APP_WAIT": "2m",
        "APP_LEVEL": "DEBUG",
        "APP_API_KEY": SECRET,
        "APP_PASSWORD": SECRET + "-pw",
        "PORT": "9",
    }
    loaded = load(PApp, path, env=env, overrides={"server": {"port": 82}})
    assert loaded.server == PServer(port=82, **{"listen-host": "h"})
    assert loaded.tags == ["a", "b"]
    assert loaded.wait == timedelta(minutes=2)
    assert loaded.level is Level.DEBUG
    assert loaded.api_key == Secret(SECRET)
    assert loaded.password.get_secret_value() == SECRET + "-pw"
    assert loaded.port == 9
    assert SECRET not in repr(loaded)
    dumped = dump(loaded)
    assert SECRET not in json.dumps(dumped)
    assert dumped["server"] == {"port": 82, "listen-host": "h"}
    assert dumped["api_key"] == dumped["password"] == "**********"
    assert loaded.model_dump(mode="json")["api_key"] == "**********"


@needs_pydantic
def test_pydantic_errors_become_issues(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {"server": {"port": "eighty"}, "tags": ["", "x"], "nmae": 1, "api_key": 5},
    )
    env = {"APP_WAIT": "soon", "APP_PASSWORD": SECRET, "APP_LEVEL": "loud"}
    with pytest.raises(ConfigError) as excinfo:
        load(PApp, path, env=env)
    issues = errors_of(excinfo)
    assert set(issues) == {"server.port", "tags", "nmae", "name", "wait", "api_key", "level"}
    assert issues["server.port"].source == f"file {path}"
    assert "valid integer" in issues["server.port"].message
    assert "tags must not be empty" in issues["tags"].message
    assert issues["name"].source == "default"
    assert "APP_NAME" in issues["name"].message
    assert issues["wait"].source == "env APP_WAIT"
    assert issues["level"].source == "env APP_LEVEL"
    assert SECRET not in str(excinfo.value)
    assert (
        load(
            PApp,
            path,
            env={},
            unknown="ignore",
            overrides={"name": "n", "server": {"port": 1}, "tags": [], "api_key": "k"},
        ).name
        == "n"
    )


@needs_pydantic
def test_pydantic_extra_allow_and_by_name() -> None:
    class Open(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow", populate_by_name=True)

        host: str = pydantic.Field(default="", alias="listen-host")

    loaded = load(Open, env={}, overrides={"host": "h", "anything": 1})
    assert loaded.host == "h"
    assert loaded.model_extra == {"anything": 1}
