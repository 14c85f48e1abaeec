"""The configuration: defaults, the commented config.toml, the file and environment sources,
and the errors that name the key and where it came from."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from abuse_desk.core.config import Config, ConfigError, build_config, load_config

from tests.support import ROOT

CONFIG_TOML = ROOT / "config.toml"
KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=")
SECTION_LINE = re.compile(r"^\[([A-Za-z_][A-Za-z0-9_]*)\]\s*$")


def sections_of(config: Config) -> dict[str, dict[str, object]]:
    """The config as {section: {key: value}}, without ``source``."""
    return {f.name: dataclasses.asdict(getattr(config, f.name))
            for f in dataclasses.fields(config) if f.name != "source"}


def write(tmp_path: Path, text: str, name: str = "desk.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the commented config.toml matches the code ---------------------------------------------


def test_defaults_equal_the_commented_config_toml() -> None:
    from_file = load_config(CONFIG_TOML, env={})
    defaults = build_config({}, env={})
    assert from_file.source == str(CONFIG_TOML)
    assert defaults.source == "defaults"
    assert sections_of(from_file) == sections_of(defaults)


def test_config_toml_shows_every_key_of_every_section() -> None:
    data = tomllib.loads(CONFIG_TOML.read_text(encoding="utf-8"))
    expected = sections_of(build_config({}, env={}))
    assert {s: set(t) for s, t in data.items()} == {s: set(t) for s, t in expected.items()}


# Keys documented by the comment of the key on the line above them (a pair, one comment).
SHARED_COMMENT = {"smtp.port": "smtp.host", "web.port": "web.host",
                  "smtp.max_connections_per_ip": "smtp.max_connections",
                  "smtp.tls_key": "smtp.tls_cert"}


def test_every_key_in_config_toml_has_a_comment_directly_above_it() -> None:
    lines = CONFIG_TOML.read_text(encoding="utf-8").splitlines()
    section = ""
    keys: list[str] = []
    undocumented: list[str] = []
    for i, line in enumerate(lines):
        if m := SECTION_LINE.match(line):
            section = m.group(1)
            continue
        m = KEY_LINE.match(line)
        if not m:
            continue
        key = f"{section}.{m.group(1)}"
        keys.append(key)
        above = lines[i - 1] if i > 0 else ""
        if key in SHARED_COMMENT:
            # the pair's first key is directly above, and has the comment
            assert keys[-2] == SHARED_COMMENT[key]
            assert KEY_LINE.match(above)
            above = lines[i - 2]
        if not above.lstrip().startswith("#"):
            undocumented.append(f"{key} (line {i + 1})")
    assert len(keys) == sum(len(t) for t in sections_of(build_config({}, env={})).values())
    assert undocumented == []


# --- sources and their order ------------------------------------------------------------------


def test_env_override_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///from-file.db"\n')
    assert load_config(path, env={}).database.url == "sqlite:///from-file.db"
    config = load_config(path, env={"ABUSE_DESK_DATABASE__URL": "sqlite:///from-env.db"})
    assert config.database.url == "sqlite:///from-env.db"
    assert config.source == str(path)


def test_env_values_parse_as_toml() -> None:
    config = build_config({}, env={
        "ABUSE_DESK_SMTP__PORT": "2600",
        "ABUSE_DESK_SMTP__MAILBOXES": '["abuse"]',
        "ABUSE_DESK_SMTP__REQUIRE_TLS": "true",
        "ABUSE_DESK_PIPELINE__SWEEP_AFTER_S": "7",
    })
    assert config.smtp.port == 2600
    assert type(config.smtp.port) is int
    assert config.smtp.mailboxes == ["abuse"]
    assert config.smtp.require_tls is True
    assert config.pipeline.sweep_after_s == 7.0
    assert type(config.pipeline.sweep_after_s) is float


def test_env_values_that_are_not_toml_are_plain_strings() -> None:
    config = build_config({}, env={
        "ABUSE_DESK_SMTP__HOSTNAME": "mx1.integra-isp.example",
        "ABUSE_DESK_DATABASE__URL": "postgresql+psycopg://desk:s3cret@db:5432/desk",
        "ABUSE_DESK_LOG__LEVEL": "DEBUG",
    })
    assert config.smtp.hostname == "mx1.integra-isp.example"
    assert config.database.url == "postgresql+psycopg://desk:s3cret@db:5432/desk"
    assert config.log.level == "DEBUG"


def test_env_quoted_toml_string_is_unquoted() -> None:
    config = build_config({}, env={"ABUSE_DESK_SMTP__HOSTNAME": '"quoted.example"'})
    assert config.smtp.hostname == "quoted.example"


def test_unrelated_environment_variables_are_ignored() -> None:
    config = build_config({}, env={"HOME": "/root", "ABUSE_DESKTOP": "x",
                                   "ABUSE_DESK_CONFIG": "/nonexistent.toml",
                                   "ABUSE_DESK_TEST_SOAK": "1",
                                   "ABUSE_DESK_TEST_POSTGRES": "postgresql://x@y/z"})
    assert sections_of(config) == sections_of(build_config({}, env={}))


def test_abuse_desk_config_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[smtp]\nport = 1111\n", name="config.toml")  # ./config.toml: loses
    chosen = write(tmp_path, "[smtp]\nport = 2222\n", name="chosen.toml")
    config = load_config(None, env={"ABUSE_DESK_CONFIG": str(chosen)})
    assert config.smtp.port == 2222
    assert config.source == str(chosen)


def test_config_path_wins_over_abuse_desk_config(tmp_path: Path) -> None:
    from_env = write(tmp_path, "[smtp]\nport = 2222\n", name="env.toml")
    from_flag = write(tmp_path, "[smtp]\nport = 3333\n", name="flag.toml")
    config = load_config(from_flag, env={"ABUSE_DESK_CONFIG": str(from_env)})
    assert config.smtp.port == 3333
    assert config.source == str(from_flag)


def test_config_toml_in_the_working_directory_is_used(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[web]\nport = 9999\n", name="config.toml")
    config = load_config(None, env={})
    assert config.web.port == 9999
    assert config.source == "config.toml"


def test_no_file_anywhere_gives_the_defaults(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={"ABUSE_DESK_WEB__PORT": "8123"})
    assert config.source == "defaults"
    assert config.web.port == 8123
    assert config.smtp.port == build_config({}, env={}).smtp.port


def test_values_from_the_file_are_used_and_others_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nmailboxes = ["abuse", "security"]\n'
                           '[pipeline]\nsweep_after_s = 5\n')
    config = load_config(path, env={})
    assert config.smtp.mailboxes == ["abuse", "security"]
    assert config.pipeline.sweep_after_s == 5.0
    assert config.smtp.domains == build_config({}, env={}).smtp.domains


# --- errors name the key and where it came from ---------------------------------------------


@pytest.mark.parametrize(("text", "named"), [
    ("[nosuch]\nx = 1\n", "[nosuch]"),
    ("[smtp]\nbogus = 1\n", "smtp.bogus"),
    ('[smtp]\nport = "25"\n', "smtp.port"),
    ("[smtp]\nrequire_tls = 1\n", "smtp.require_tls"),
    ('[smtp]\nmailboxes = "abuse"\n', "smtp.mailboxes"),
    ("[smtp]\nmailboxes = [1]\n", "smtp.mailboxes"),
    ("[smtp]\nport = 70000\n", "smtp.port"),
    ('[smtp]\nmailboxes = ["abuse@example.org"]\n', "smtp.mailboxes"),
    ('[log]\nformat = "xml"\n', "log.format"),
    ('[broker]\nurl = "ftp://x"\n', "broker.url"),
    ('[database]\nurl = "mysql://x"\n', "database.url"),
    ("[pipeline]\nbatch_max = 0\n", "pipeline.batch_max"),
    ("[pipeline]\nbatch_max = 51\n", "pipeline.batch_max"),
    ("smtp = 1\n", "[smtp]"),
])
def test_bad_file_values_raise_naming_key_and_file(tmp_path: Path, text: str,
                                                   named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert named in message
    assert str(path) in message


@pytest.mark.parametrize(("name", "value"), [
    ("ABUSE_DESK_SMTP__PORT", "70000"),
    ("ABUSE_DESK_SMTP__PORT", "twenty-five"),
    ("ABUSE_DESK_LOG__FORMAT", "xml"),
    ("ABUSE_DESK_BROKER__URL", "ftp://x"),
    ("ABUSE_DESK_SMTP__BOGUS", "1"),
    ("ABUSE_DESK_NOSUCH__KEY", "1"),
    ("ABUSE_DESK_SMTP_PORT", "25"),
])
def test_bad_env_values_raise_naming_the_variable(tmp_path: Path, name: str,
                                                  value: str) -> None:
    path = write(tmp_path, "[smtp]\nport = 2525\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={name: value})
    assert f"environment variable {name}" in str(info.value)


def test_a_good_env_value_fixes_a_bad_file_value(tmp_path: Path) -> None:
    """The environment is merged before the checks: it overrides, it is not checked after."""
    path = write(tmp_path, "[smtp]\nport = 70000\n")
    assert load_config(path, env={"ABUSE_DESK_SMTP__PORT": "2600"}).smtp.port == 2600


def test_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "desk.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load_config(missing, env={})


def test_missing_abuse_desk_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load_config(None, env={"ABUSE_DESK_CONFIG": str(missing)})


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load_config(tmp_path, env={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp\nport = = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)


def test_dev_null_gives_the_defaults() -> None:
    config = load_config("/dev/null", env={})
    assert sections_of(config) == sections_of(build_config({}, env={}))
