"""The ``abuse-desk`` command line: help, `messages list`, `db`, and its errors (exit codes, what
stderr says), in-process through ``abuse_desk.app.cli.main`` and as real processes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app import cli
from abuse_desk.core.config import DatabaseConfig
from abuse_desk.core.db import head_revision, make_engine, upgrade
from abuse_desk.core.models import Message
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from sqlalchemy import Engine, update

from tests.support import ROOT

SUBCOMMANDS = [
    ["serve"], ["smtp"], ["worker"], ["scheduler"], ["web"],
    ["db"], ["db", "upgrade"], ["db", "current"],
    ["import"],
    ["messages"], ["messages", "list"],
]
CLOSED_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/x"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABUSE_DESK_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path = ROOT,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def db_url(env_db_url: str) -> str:
    return env_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(DatabaseConfig(url=db_url))
    upgrade(eng)
    yield eng
    eng.dispose()


T0 = datetime(2026, 2, 2, 10, 0, 0, tzinfo=UTC)


def store(engine: Engine, n: int, *, state: str = "received",
          origin: str = "smtp") -> dict[str, Any]:
    """Store message *n* received at T0 + n minutes; return what the listing should show."""
    raw = (f"From: r{n}@example.org\r\nSubject: listing {n}\r\n\r\nbody {n}\r\n" * (n + 1)).encode()
    env = Envelope(mail_from=f"sender{n}@example.net", rcpt_tos=[f"abuse{n}@isp.example"],
                   origin=origin, peer_ip="192.0.2.7", peer_port=40000 + n, helo="mx.example.net",
                   received_by="test", received_at=T0 + timedelta(minutes=n))
    with engine.begin() as conn:
        (mid,) = insert_messages(conn, [message_row(raw, env)])
        conn.execute(update(Message).where(Message.id == mid)
                     .values(state=state, header_subject=f"listing {n}"))
    return {"id": mid, "state": state, "sha256": hashlib.sha256(raw).hexdigest(),
            "size": len(raw), "received_at": env.received_at, "mail_from": env.mail_from,
            "rcpt_tos": list(env.rcpt_tos), "origin": origin}


def listing(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert cli.main(["messages", "list", "--json", *args]) == 0
    out = capsys.readouterr().out
    docs = json.loads(out)
    assert isinstance(docs, list)
    return docs


# -- help -----------------------------------------------------------------------------------


def test_top_level_help_as_a_real_process() -> None:
    proc = run_cli("--help", env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: abuse-desk")
    for name in ("serve", "smtp", "worker", "scheduler", "web", "db", "import", "messages"):
        assert f"\n    {name} " in proc.stdout, name
    assert "ABUSE_DESK_" in proc.stdout  # the epilog says how to configure
    assert proc.stderr == ""


def test_subcommand_help_as_a_real_process() -> None:
    proc = run_cli("messages", "list", "--help", env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: abuse-desk messages list")
    assert "--json" in proc.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_help_of_every_subcommand(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: abuse-desk {' '.join(command)}")
    assert "--config" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from abuse_desk.core import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"abuse-desk {__version__}"


@pytest.mark.parametrize("argv", [[], ["db"], ["messages"], ["frobnicate"], ["import"]])
def test_incomplete_or_unknown_commands_are_usage_errors(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "usage: abuse-desk" in capsys.readouterr().err


# -- messages list --------------------------------------------------------------------------


def test_messages_list_json(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    expected = [store(engine, 1), store(engine, 2, state="processed", origin="import"),
                store(engine, 3, state="review")]

    docs = listing(capsys)

    assert [d["id"] for d in docs] == [e["id"] for e in expected]
    for doc, exp in zip(docs, expected, strict=True):
        assert {"id", "state", "sha256", "size", "received_at", "envelope"} <= doc.keys()
        assert doc["state"] == exp["state"]
        assert doc["sha256"] == exp["sha256"]
        assert doc["size"] == exp["size"]
        assert datetime.fromisoformat(doc["received_at"]) == exp["received_at"]
        env = doc["envelope"]
        assert env["mail_from"] == exp["mail_from"]
        assert env["rcpt_tos"] == exp["rcpt_tos"]
        assert env["origin"] == exp["origin"]
    assert docs[1]["headers"]["subject"] == "listing 2"


def test_messages_list_limit_and_state(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    stored = [store(engine, n, state="processed" if n % 2 else "received") for n in range(5)]

    assert [d["id"] for d in listing(capsys, "--limit", "2")] == [s["id"] for s in stored[:2]]
    assert listing(capsys, "--limit", "0") == []
    assert [d["id"] for d in listing(capsys, "--state", "processed")] == [
        s["id"] for s in stored if s["state"] == "processed"]
    assert [d["id"] for d in listing(capsys, "--state", "received", "--limit", "2")] == [
        stored[0]["id"], stored[2]["id"]]
    assert listing(capsys, "--state", "review") == []


def test_messages_list_empty(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["messages", "list", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_messages_list_text_has_a_header_row(engine: Engine,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    first, second = store(engine, 1), store(engine, 2, state="processed")

    assert cli.main(["messages", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["ID", "STATE"]
    assert "SUBJECT" in lines[0]
    assert len(lines) == 3
    for line, exp in zip(lines[1:], (first, second), strict=True):
        fields = line.split()
        assert fields[:2] == [str(exp["id"]), exp["state"]]
        assert exp["received_at"].strftime("%Y-%m-%dT%H:%M:%S") in line
        assert str(exp["size"]) in fields
        assert exp["mail_from"] in line


def test_messages_list_rejects_a_negative_limit(engine: Engine,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["messages", "list", "--limit", "-1"])
    assert exc.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_messages_list_without_a_schema_says_to_upgrade(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sqlite3.connect(tmp_path / "desk.db").close()  # an empty database file

    assert cli.main(["messages", "list"]) == 2
    err = capsys.readouterr().err
    assert "db upgrade" in err
    assert "Traceback" not in err


def test_messages_list_of_a_missing_sqlite_file_does_not_create_it(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    typo = tmp_path / "dsek.db"
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", f"sqlite:///{typo}")

    assert cli.main(["messages", "list"]) == 1
    err = capsys.readouterr().err
    assert str(typo) in err and "database.url" in err
    assert not typo.exists()


# -- db -------------------------------------------------------------------------------------


def test_db_upgrade_then_current_on_a_fresh_file(db_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    head = head_revision()
    assert head

    assert cli.main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"database: empty; code: {head}"

    assert cli.main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"is at {head}")
    assert str(tmp_path / "desk.db") in out

    assert cli.main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"database: {head}; code: {head}"


# -- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_unknown_key_in_the_config_file(where: str, tmp_path: Path, db_url: str,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "desk.toml"
    bad.write_text('[smtp]\nhostname = "mx.isp.example"\nprot = 25\n')
    argv = {"before": ["--config", str(bad), "messages", "list"],
            "after": ["messages", "list", "--config", str(bad)],
            "env": ["messages", "list"]}[where]
    if where == "env":
        monkeypatch.setenv("ABUSE_DESK_CONFIG", str(bad))

    assert cli.main(argv) == 2

    captured = capsys.readouterr()
    assert "prot" in captured.err
    assert str(bad) in captured.err
    assert captured.out == ""


def test_missing_config_file(tmp_path: Path, db_url: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(tmp_path / "nope.toml"), "db", "current"]) == 2
    assert str(tmp_path / "nope.toml") in capsys.readouterr().err


def test_env_var_with_a_bad_value(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ABUSE_DESK_SMTP__PORT", "notaport")

    assert cli.main(["messages", "list"]) == 2

    captured = capsys.readouterr()
    assert "ABUSE_DESK_SMTP__PORT" in captured.err
    assert "notaport" in captured.err


def test_config_errors_as_a_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[databse]\nurl = 'sqlite:///x.db'\n")
    proc = run_cli("--config", str(bad), "db", "current", env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert "databse" in proc.stderr and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_on_the_in_process_broker_is_refused(tmp_path: Path) -> None:
    env = clean_env(ABUSE_DESK_CONFIG=os.devnull,
                    ABUSE_DESK_DATABASE__URL=f"sqlite:///{tmp_path / 'desk.db'}")
    proc = run_cli("worker", env=env, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2
    assert "broker.url" in proc.stderr
    assert "redis://" in proc.stderr and "amqp://" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("part", ["smtp", "scheduler"])
def test_other_single_parts_on_the_in_process_broker_are_refused(
        part: str, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([part]) == 2
    assert "broker.url" in capsys.readouterr().err


# -- database errors ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["messages", "list"], ["db", "current"], ["db", "upgrade"]])
@pytest.mark.parametrize("url", [CLOSED_POSTGRES,
                                 "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x"])
def test_unreachable_postgres_is_a_clean_error(argv: list[str], url: str, db_url: str,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", url)

    assert cli.main(argv) == 1

    err = capsys.readouterr().err
    assert "postgresql+psycopg://postgres" in err and "127.0.0.1:1/x" in err
    assert "s3cret" not in err
    assert "database.url" in err
    assert "Traceback" not in err


def test_unreachable_postgres_import_as_a_real_process(tmp_path: Path) -> None:
    eml = tmp_path / "a.eml"
    eml.write_bytes(b"Subject: x\n\nbody\n")
    env = clean_env(ABUSE_DESK_CONFIG=os.devnull,
                    ABUSE_DESK_DATABASE__URL="postgresql+psycopg://postgres:pw@127.0.0.1:1/x")
    proc = run_cli("import", "--quiet", str(eml), env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "postgresql+psycopg://postgres:***@127.0.0.1:1/x" in proc.stderr
    assert ":pw@" not in proc.stderr
    assert "database.url" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql+psycopg://desk@db:notaport/abuse", "notaport"),
    ("postgresql+nosuchdriver://desk@db/abuse", "nosuchdriver"),
])
def test_malformed_database_url_is_a_config_error(url: str, says: str, db_url: str,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", url)

    assert cli.main(["db", "current"]) == 2

    err = capsys.readouterr().err
    assert "database.url" in err and says in err
    assert "Traceback" not in err


def test_a_file_that_is_not_a_database(db_url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "desk.db").write_bytes(b"this is not SQLite, just some text " * 100)

    assert cli.main(["db", "current"]) == 1

    err = capsys.readouterr().err
    assert str(tmp_path / "desk.db") in err and "database.url" in err
    assert "not a database" in err


def test_sqlite_folder_that_cannot_be_made(db_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain-file").write_text("x")
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL",
                       f"sqlite:///{tmp_path / 'plain-file' / 'var' / 'desk.db'}")
    eml = tmp_path / "a.eml"
    eml.write_bytes(b"Subject: x\n\nbody\n")

    assert cli.main(["import", "--quiet", str(eml)]) == 1

    err = capsys.readouterr().err
    assert str(tmp_path / "plain-file") in err
    assert "Traceback" not in err


# -- abuse-desk parse -------------------------------------------------------------------------

PARSE_DATA = ROOT / "tests" / "parsers" / "data"


def test_parse_json_prints_one_object_per_file_with_the_fixed_keys(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    files = [PARSE_DATA / "arf" / "abuse_full.eml",
             PARSE_DATA / "dmca" / "minimal_takedown.eml"]
    assert cli.main(["parse", "--json", *map(str, files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    arf, dmca = (json.loads(line) for line in lines)
    assert list(arf) == ["file", "disposition", "format", "reports", "errors"]
    assert (arf["file"], arf["disposition"], arf["format"], arf["errors"]) == (
        str(files[0]), "report", "arf", [])
    assert arf["reports"] == [{
        "category": None, "type": None, "source_ip": "198.51.100.23", "source_port": 53211,
        "occurred_at": "2024-02-12T09:15:01Z",
        "urls": ["http://offers.bulk.example/claim?id=42", "mailto:unsubscribe@bulk.example"],
        "domains": ["bulk.example", "offers.bulk.example"], "customer_id": None,
        "needs_review": False, "review_reasons": []}]
    (report,) = dmca["reports"]
    assert dmca["format"] == "dmca"
    # an incomplete notice is flagged for the specialist (a warning), not parked in review
    assert report["needs_review"] is False
    assert report["review_reasons"] == []
    assert report["occurred_at"] is None


def test_parse_stores_nothing(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["parse", str(PARSE_DATA / "arf" / "abuse_full.eml")]) == 0
    out = capsys.readouterr().out
    assert "report, format arf, 1 report" in out
    assert "arf:abuse  source 198.51.100.23 port 53211  at 2024-02-12T09:15:01Z" in out
    assert not Path(db_url.removeprefix("sqlite:///")).exists()


PLUGIN = """
from abuse_desk.parsers.base import Disposition, Format, ParsedReport, ParseResult, Stage

SENSOR = Format("sensor", machine=True, vocabulary={"scan": ("port-scan", 0.95)})


class SensorParser:
    name, stage, order, formats = "sensor", Stage.STRUCTURAL, 1, (SENSOR,)

    def matches(self, mail):
        return mail.header("X-Sensor") is not None

    def parse(self, mail):
        report = ParsedReport(format="sensor", type_hint="sensor:scan",
                              source_ip=mail.header("X-Sensor").strip())
        return ParseResult(disposition=Disposition.REPORT, format="sensor", reports=[report])


def parser():
    return SensorParser()
"""


def test_parse_runs_the_configured_plugins_too(db_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`parse` shows what the desk would make of a message: with its plugins, as the workers
    run them; a plugin that does not load is said, with its name."""
    from abuse_desk.parsers import registry

    monkeypatch.setattr(registry, "_CATALOG", dict(registry._CATALOG))  # forgotten after
    (tmp_path / "sensor_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    mail = tmp_path / "sensor.eml"
    mail.write_bytes(b"From: sensor@ids.example\r\nSubject: alert\r\n"
                     b"X-Sensor: 198.51.100.9\r\n\r\nscan seen\r\n")
    monkeypatch.setenv("ABUSE_DESK_PARSERS__PLUGINS", '["sensor_plugin:parser"]')
    assert cli.main(["parse", "--json", str(mail)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["format"], doc["reports"][0]["source_ip"]) == ("sensor", "198.51.100.9")
    monkeypatch.setenv("ABUSE_DESK_PARSERS__PLUGINS", '["sensor_plugin:nothing_here"]')
    assert cli.main(["parse", str(mail)]) == 2
    assert "parsers.plugins: sensor_plugin:nothing_here" in capsys.readouterr().err


def test_parse_unreadable_file(db_url: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["parse", "--json", str(tmp_path / "missing.eml")]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] == ["cannot read: No such file or directory"]
    assert doc["reports"] == []


# -- the clock: --now --------------------------------------------------------------------------

WINDOWED = ("customer_id,name,email,resource,valid_from,valid_until\n"
            "C-1,Old Holder,,192.0.2.0/24,,2027-01-01T00:00:00Z\n"
            "C-2,New Holder,,192.0.2.0/24,2027-01-01T00:00:00Z,\n")


def test_now_runs_a_one_shot_command_at_that_instant(db_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.csv").write_text(WINDOWED)
    assert cli.main(["customers", "import", str(tmp_path / "c.csv")]) == 0
    for now, holder in (("2026-12-31T23:59:59Z", "C-1"), ("2027-01-01T00:00:00Z", "C-2")):
        capsys.readouterr()
        # before the command or after it: the same option
        assert cli.main(["--now", now, "customers", "resolve", "192.0.2.9", "--json"]) == 0
        assert cli.main(["customers", "resolve", "192.0.2.9", "--json", "--now", now]) == 0
        first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
        assert (first["customer_id"], first["at"]) == (holder, now)
        assert second == first


def test_an_injected_clock_is_what_commands_read(db_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.csv").write_text(WINDOWED)
    assert cli.main(["customers", "import", str(tmp_path / "c.csv")]) == 0
    capsys.readouterr()
    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert cli.main(["customers", "resolve", "192.0.2.9", "--json"], clock=lambda: at) == 0
    assert json.loads(capsys.readouterr().out)["at"] == "2026-06-01T00:00:00Z"


@pytest.mark.parametrize("command", ["serve", "smtp", "worker", "scheduler", "web"])
def test_now_is_refused_for_commands_that_run_on_the_clock(
        command: str, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--now", "2026-12-03T15:00:00Z"]) == 2
    assert f"--now is for one-shot commands; `{command}` runs on the clock" in \
        capsys.readouterr().err


def test_a_bad_now_is_a_usage_error(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--now", "tomorrow", "cases", "list"])
    assert exit_.value.code == 2
    assert "argument --now: 'tomorrow' is not ISO 8601" in capsys.readouterr().err
