"""`abuse-desk import`: .eml files, mbox files, Maildir folders and folders of these.

Driven through ``ingest.importer.import_paths`` with a real GroupCommitWriter on SQLite, and
through the command line (``abuse_desk.app.cli.main``) configured by environment variables.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import os
import resource
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app import cli
from abuse_desk.core.config import DatabaseConfig
from abuse_desk.core.db import as_utc, make_engine, upgrade
from abuse_desk.core.models import Message
from abuse_desk.ingest import importer
from abuse_desk.ingest.importer import ImportSummary, envelope_for, import_paths
from abuse_desk.ingest.store import NEVER_SENT, GroupCommitWriter
from sqlalchemy import Engine, select

from tests.support import NOW, LiveDesk, make_config, wait_for


def mail(n: int, *, headers: str = "", body: str = "") -> bytes:
    """A small report, different for each *n* (LF line ends, as mail files on disk have)."""
    return (f"{headers}From: reporter{n}@example.org\nTo: abuse@isp.example\n"
            f"Subject: import test {n}\nMessage-ID: <import-{n}@example.org>\n"
            f"Date: Mon, 02 Feb 2026 10:00:{n % 60:02d} +0000\n\n"
            f"{body or f'Report number {n}.'}\n").encode()


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    """An mbox file: each message after a "From " line, a blank line after each."""
    with path.open("wb") as fh:
        for n, raw in enumerate(messages):
            fh.write(f"From sender{n}@example.net Mon Feb  2 10:00:00 2026\n".encode())
            fh.write(raw)
            fh.write(b"\n")
    return path


def write_maildir(path: Path, new: list[bytes], cur: list[bytes],
                  tmp: Sequence[bytes] = ()) -> list[bytes]:
    """A Maildir with files written by hand; returns the messages that count (new + cur)."""
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    for n, raw in enumerate(new):
        (path / "new" / f"1770000000.M{n}P1.mx.isp.example").write_bytes(raw)
    for n, raw in enumerate(cur):
        (path / "cur" / f"1770000100.M{n}P2.mx.isp.example:2,S").write_bytes(raw)
    for n, raw in enumerate(tmp):  # still being delivered: never imported
        (path / "tmp" / f"1770000200.M{n}P3.mx.isp.example").write_bytes(raw)
    return [*new, *cur]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'desk.db'}"))
    upgrade(eng)
    yield eng
    eng.dispose()


def run_import(engine: Engine, paths: list[Path], *, enqueued: bool = False) -> ImportSummary:
    writer = GroupCommitWriter(engine).start()
    try:
        return import_paths(engine, writer, paths, enqueued=enqueued, clock=lambda: NOW,
                            progress=False)
    finally:
        writer.stop()


def rows(engine: Engine) -> list[Any]:
    cols = [Message.id, Message.state, Message.origin, Message.raw, Message.sha256, Message.size,
            Message.mail_from, Message.rcpt_tos, Message.received_by, Message.received_at,
            Message.enqueued_at]
    with engine.connect() as conn:
        return list(conn.execute(select(*cols).order_by(Message.id)))


# -- import_paths ---------------------------------------------------------------------------


def test_single_eml_is_stored_as_received_with_envelope_from_headers(
        engine: Engine, tmp_path: Path) -> None:
    raw = mail(1, headers="Return-Path: <bounces+42@lists.example.net>\n"
                          "Delivered-To: abuse@isp.example\n")
    path = tmp_path / "report.eml"
    path.write_bytes(raw)

    summary = run_import(engine, [path])

    assert (summary.stored, summary.duplicates, summary.failed) == (1, 0, [])
    (row,) = rows(engine)
    assert summary.ids == [row.id]
    assert row.raw == raw
    assert row.sha256 == hashlib.sha256(raw).hexdigest()
    assert row.size == len(raw)
    assert row.origin == "import"
    assert row.state == "received"
    assert row.mail_from == "bounces+42@lists.example.net"
    assert row.rcpt_tos == ["abuse@isp.example"]
    assert row.received_by == str(path)
    # memory:// broker: nothing is sent now; the running desk's sweeper sends it at its next tick
    assert as_utc(row.enqueued_at) == NEVER_SENT
    assert summary.text().splitlines()[0] == "1 stored, 0 already stored (same bytes), 0 failed"


def test_enqueued_import_is_marked_sent_at_receipt(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "report.eml"
    path.write_bytes(mail(1))

    run_import(engine, [path], enqueued=True)

    (row,) = rows(engine)
    assert row.enqueued_at is not None
    assert as_utc(row.enqueued_at) == as_utc(row.received_at)
    assert as_utc(row.enqueued_at) != NEVER_SENT


def test_mbox_messages_are_stored_byte_identically_without_the_from_line(
        engine: Engine, tmp_path: Path) -> None:
    messages = [
        mail(1),
        # a body line starting with "From " is quoted in mbox and stays quoted
        mail(2, body="Hello,\n>From the logs below:\n\n10.0.0.1 scanned us"),
        mail(3, headers="Return-Path: <mbox-sender@example.net>\n"),
    ]
    path = write_mbox(tmp_path / "reports.mbox", messages)
    box = mailbox.mbox(str(path), create=False)
    expected = [box.get_bytes(key) for key in box.iterkeys()]
    box.close()
    assert expected == messages  # the fixture is what it means to be

    summary = run_import(engine, [path])

    assert (summary.stored, summary.duplicates, summary.failed) == (3, 0, [])
    stored = rows(engine)
    assert [r.raw for r in stored] == expected
    assert all(not r.raw.startswith(b"From ") for r in stored)
    assert [r.received_by for r in stored] == [f"{path}#1", f"{path}#2", f"{path}#3"]
    assert [r.sha256 for r in stored] == [hashlib.sha256(m).hexdigest() for m in expected]
    assert stored[2].mail_from == "mbox-sender@example.net"
    assert summary.ids == [r.id for r in stored]


def test_maildir_messages_in_new_and_cur_are_stored_not_tmp(
        engine: Engine, tmp_path: Path) -> None:
    box = tmp_path / "Maildir"
    wanted = write_maildir(box, new=[mail(1), mail(2)], cur=[mail(3)], tmp=[mail(4)])
    (box / "dovecot-uidlist").write_text("3 V1770000000 N4\n")  # not a message

    summary = run_import(engine, [box])

    assert (summary.stored, summary.duplicates, summary.failed) == (3, 0, [])
    stored = rows(engine)
    assert sorted(r.raw for r in stored) == sorted(wanted)
    assert all(r.received_by.startswith(f"{box}:") for r in stored)
    assert all(r.origin == "import" and r.state == "received" for r in stored)


def test_folder_of_eml_files_and_a_nested_maildir(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    (folder / "2026" / "feb").mkdir(parents=True)
    (folder / "a.eml").write_bytes(mail(1))
    (folder / "2026" / "feb" / "b.eml").write_bytes(mail(2))
    in_box = write_maildir(folder / "2026" / "abuse-box", new=[mail(3)], cur=[mail(4), mail(5)],
                           tmp=[mail(6)])
    write_mbox(folder / "old.mbox", [mail(7), mail(8)])

    summary = run_import(engine, [folder])

    assert summary.failed == []
    wanted = [mail(1), mail(2), *in_box, mail(7), mail(8)]
    assert summary.stored == len(wanted) == 7
    assert sorted(r.raw for r in rows(engine)) == sorted(wanted)


def test_importing_twice_stores_nothing_new(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.eml").write_bytes(mail(1))
    write_mbox(tmp_path / "in" / "b.mbox", [mail(2), mail(3)])

    first = run_import(engine, [tmp_path / "in"])
    before = rows(engine)
    second = run_import(engine, [tmp_path / "in"])

    assert (first.stored, first.duplicates) == (3, 0)
    assert (second.stored, second.duplicates, second.failed, second.ids) == (0, 3, [], [])
    assert second.text().splitlines()[0] == "0 stored, 3 already stored (same bytes), 0 failed"
    assert rows(engine) == before


def test_same_bytes_twice_in_one_import_are_stored_once(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(mail(1))
    (tmp_path / "copy.eml").write_bytes(mail(1))
    write_mbox(tmp_path / "box.mbox", [mail(1), mail(2)])

    summary = run_import(engine, [tmp_path / "a.eml", tmp_path / "copy.eml",
                                  tmp_path / "box.mbox"])

    assert (summary.stored, summary.duplicates) == (2, 2)
    assert sorted(r.raw for r in rows(engine)) == sorted([mail(1), mail(2)])


def test_missing_and_unreadable_paths_are_reported_and_the_rest_imported(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(mail(1))
    missing = tmp_path / "nowhere.eml"
    beneath_a_file = good / "child.eml"
    folder = tmp_path / "folder"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "hidden.eml").write_bytes(mail(2))
    (folder / "fine.eml").write_bytes(mail(3))
    (folder / "empty.eml").write_bytes(b"")

    # Tests run as root here, where chmod 000 does not stop reading: refuse the listing instead.
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(os.fsdecode(path)) == folder / "locked":
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)

    summary = run_import(engine, [good, missing, beneath_a_file, folder])

    failed = dict(summary.failed)
    assert failed[str(missing)] == "No such file or directory"
    assert failed[str(beneath_a_file)] == "Not a directory"
    assert failed[str(folder / "locked")] == "Permission denied"
    assert "empty" in failed[str(folder / "empty.eml")]
    assert len(summary.failed) == 4
    assert summary.stored == 2
    assert sorted(r.raw for r in rows(engine)) == sorted([mail(1), mail(3)])
    lines = summary.text().splitlines()
    assert lines[0] == "2 stored, 0 already stored (same bytes), 4 failed"
    assert f"  failed: {missing}: No such file or directory" in lines


def test_a_message_the_writer_cannot_store_is_reported(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(mail(1))
    writer = GroupCommitWriter(engine).start()
    writer.stop()  # every submit now fails

    summary = import_paths(engine, writer, [tmp_path / "a.eml"], enqueued=False,
                           clock=lambda: NOW, progress=False)

    assert summary.stored == 0
    ((where, why),) = summary.failed
    assert where == str(tmp_path / "a.eml")
    assert why.startswith("not stored:") and "stopped" in why
    assert rows(engine) == []


def test_many_mbox_files_do_not_exhaust_file_descriptors(
        engine: Engine, tmp_path: Path) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to count open files")
    folder = tmp_path / "boxes"
    folder.mkdir()
    for n in range(200):
        write_mbox(folder / f"{n:03d}.mbox", [mail(2 * n), mail(2 * n + 1)])
    writer = GroupCommitWriter(engine).start()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        # Room for the database and this process, not for one open file per mbox.
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 60, hard))
        summary = import_paths(engine, writer, [folder], enqueued=False, clock=lambda: NOW,
                               progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        writer.stop()
    assert summary.failed == []
    assert summary.stored == 400


@pytest.mark.parametrize(("headers", "mail_from", "rcpt_tos"), [
    ("Return-Path: <a@example.net>\nDelivered-To: abuse@isp.example\n",
     "a@example.net", ["abuse@isp.example"]),
    # the topmost (last added, final) delivery header wins
    ("Delivered-To: abuse@isp.example\nReturn-Path: <b@example.net>\n"
     "Delivered-To: relay@other.example\n", "b@example.net", ["abuse@isp.example"]),
    ("return-path: b@example.net\nX-Original-To: postmaster@isp.example\n",
     "b@example.net", ["postmaster@isp.example"]),
    ("Return-Path: <>\n", "", []),  # a bounce: the null sender
    ("", None, []),
])
def test_envelope_guessed_from_delivery_headers(headers: str, mail_from: str | None,
                                                rcpt_tos: list[str]) -> None:
    env = envelope_for(mail(1, headers=headers), "/x/y.eml", enqueued=False, received_at=NOW)
    assert (env.mail_from, list(env.rcpt_tos)) == (mail_from, rcpt_tos)
    assert env.origin == "import"
    assert env.received_by == "/x/y.eml"
    assert env.enqueued is False


def test_envelope_ignores_lookalike_lines_in_the_body(engine: Engine, tmp_path: Path) -> None:
    raw = mail(1, body="Forwarded headers:\nReturn-Path: <spoof@evil.example>\n"
                       "Delivered-To: victim@evil.example")
    (tmp_path / "fwd.eml").write_bytes(raw)

    run_import(engine, [tmp_path / "fwd.eml"])

    (row,) = rows(engine)
    assert (row.mail_from, row.rcpt_tos) == (None, [])


def test_in_flight_bound_by_bytes(engine: Engine, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny byte budget every message is settled before the next: all still stored."""
    monkeypatch.setattr(importer, "MAX_IN_FLIGHT_BYTES", 1)
    for n in range(5):
        (tmp_path / f"{n}.eml").write_bytes(mail(n))
    summary = run_import(engine, sorted(tmp_path.glob("*.eml")))
    assert (summary.stored, summary.failed) == (5, [])
    assert [r.raw for r in rows(engine)] == [mail(n) for n in range(5)]


# -- abuse-desk import ----------------------------------------------------------------------


@pytest.fixture
def cli_env(env_db_url: str) -> str:
    return env_db_url


def cli_rows(url: str) -> list[Any]:
    eng = make_engine(DatabaseConfig(url=url))
    try:
        return rows(eng)
    finally:
        eng.dispose()


def test_cli_import_stores_queues_for_the_sweeper_and_is_safe_to_rerun(
        cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(mail(1, headers="Return-Path: <r@example.net>\n"
                                    "Delivered-To: abuse@isp.example\n"))
    mbox = write_mbox(tmp_path / "three.mbox", [mail(2), mail(3), mail(4)])
    maildir_msgs = write_maildir(tmp_path / "Maildir", new=[mail(5)], cur=[mail(6)])

    code = cli.main(["import", "--quiet", str(eml), str(mbox), str(tmp_path / "Maildir")])

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == "6 stored, 0 already stored (same bytes), 0 failed"
    assert "sweep_interval_s" in out  # tells how the running desk picks them up
    stored = cli_rows(cli_env)
    assert sorted(r.raw for r in stored) == sorted(
        [mail(1, headers="Return-Path: <r@example.net>\nDelivered-To: abuse@isp.example\n"),
         mail(2), mail(3), mail(4), *maildir_msgs])
    assert {r.origin for r in stored} == {"import"}
    assert {r.state for r in stored} == {"received"}
    assert {as_utc(r.enqueued_at) for r in stored} == {NEVER_SENT}
    first = next(r for r in stored if r.received_by == str(eml))
    assert (first.mail_from, first.rcpt_tos) == ("r@example.net", ["abuse@isp.example"])

    code = cli.main(["import", "--quiet", str(eml), str(mbox), str(tmp_path / "Maildir")])

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == "0 stored, 6 already stored (same bytes), 0 failed"
    assert cli_rows(cli_env) == stored


def test_cli_import_of_a_missing_path_exits_2_and_stores_nothing(
        cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(mail(1))
    missing = tmp_path / "not-there.mbox"

    code = cli.main(["import", "--quiet", str(eml), str(missing)])

    captured = capsys.readouterr()
    assert code == 2
    assert str(missing) in captured.err
    assert "no such file" in captured.err
    assert captured.out == ""
    assert not (tmp_path / "desk.db").exists() or cli_rows(cli_env) == []


def test_cli_import_with_a_failure_exits_1_and_lists_it(
        cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.eml").write_bytes(mail(1))
    (folder / "zero.eml").write_bytes(b"")

    code = cli.main(["import", "--quiet", str(folder)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0] == "1 stored, 0 already stored (same bytes), 1 failed"
    assert any(line.startswith(f"  failed: {folder / 'zero.eml'}: ") for line in lines)
    assert [r.raw for r in cli_rows(cli_env)] == [mail(1)]


def test_import_beside_a_running_desk_gets_processed(
        cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path)
    assert config.database.url == cli_env  # the desk and the import share the database
    eml = tmp_path / "late.eml"
    eml.write_bytes(mail(7, headers="Return-Path: <late@example.net>\n"))

    with LiveDesk(config) as desk:
        assert cli.main(["import", "--quiet", str(eml)]) == 0
        assert capsys.readouterr().out.startswith("1 stored,")

        def processed() -> Any:
            with desk.engine.connect() as conn:
                return conn.execute(select(Message.state, Message.header_subject, Message.origin,
                                           Message.processed_at)
                                    .where(Message.state == "processed")).first()

        row = wait_for(processed, timeout=15, what="the imported message to be processed")
    assert row.header_subject == "import test 7"
    assert row.origin == "import"
    assert isinstance(row.processed_at, datetime)


@pytest.mark.service
def test_cli_import_with_a_real_broker_sends_each_message(
        cli_env: str, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import redis
    from abuse_desk.core.broker import QUEUE

    monkeypatch.setenv("ABUSE_DESK_BROKER__URL", redis_url)
    write_mbox(tmp_path / "two.mbox", [mail(1), mail(2)])

    assert cli.main(["import", "--quiet", str(tmp_path / "two.mbox")]) == 0

    out = capsys.readouterr().out
    assert out.splitlines() == ["2 stored, 0 already stored (same bytes), 0 failed"]
    stored = cli_rows(cli_env)
    assert [as_utc(r.enqueued_at) for r in stored] == [as_utc(r.received_at) for r in stored]
    queued = [json.loads(m) for m in
              redis.Redis.from_url(redis_url).hvals(f"dramatiq:{QUEUE}.msgs")]
    # in batches that a worker writes in one transaction each
    assert {m["actor_name"] for m in queued} == {"process_messages"}
    sent = sorted(i for m in queued for i in m["args"][0])
    assert sent == [r.id for r in stored]


# -- what is mail (issue 18: `import DIR` took README.md as a complaint) --------------------


OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504  # how an Outlook .msg file starts


def a_folder_with_other_files(folder: Path) -> list[bytes]:
    """Mail of every kind beside files that are not mail; returns the mail that counts."""
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / ".git" / "objects" / "ab12").write_bytes(b"x\x9c\x4b\xca\xc9\x4f")
    (folder / "README.md").write_text("# Reports\n\nExported from the old desk. Note: the\n"
                                      "mbox files are in mbox/.\n")
    (folder / "notes.txt").write_text("Subject of the call: spam from 192.0.2.7\n"
                                      "we should ask them\n")
    (folder / "headers-only-unknown.txt").write_text("Key: value\nOther: thing\n\nbody\n")
    (folder / "report.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    (folder / "outlook.msg").write_bytes(OLE2)
    crlf = mail(3).replace(b"\n", b"\r\n")
    folded = (b"Received: from mx.example.net\n\tby mx.isp.example; Mon, 2 Feb 2026\n"
              + mail(4))
    (folder / "a.eml").write_bytes(mail(1))
    (folder / "1770000000.M1P2.host").write_bytes(mail(2))  # no extension
    (folder / "crlf.eml").write_bytes(crlf)
    (folder / "folded").write_bytes(folded)
    (folder / "headers-only.eml").write_bytes(b"Subject: spam from 192.0.2.9\n")
    write_mbox(folder / "old.mbox", [mail(5)])
    in_box = write_maildir(folder / ".hidden-but-a-maildir", new=[mail(6)], cur=[])
    return [mail(1), mail(2), crlf, folded, b"Subject: spam from 192.0.2.9\n", mail(5), *in_box]


def test_a_folder_imports_its_mail_and_skips_other_files_saying_why(
        engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    wanted = a_folder_with_other_files(folder)

    summary = run_import(engine, [folder])

    assert sorted(r.raw for r in rows(engine)) == sorted(wanted)
    assert (summary.stored, summary.failed) == (len(wanted), [])
    assert summary.skipped == {
        importer.HIDDEN: [str(folder / ".git")],
        importer.NOT_MAIL: [str(folder / name) for name in (
            "README.md", "headers-only-unknown.txt", "notes.txt", "report.pdf")],
        importer.OUTLOOK: [str(folder / "outlook.msg")],
    }
    lines = summary.text().splitlines()
    assert lines[0] == f"{len(wanted)} stored, 0 already stored (same bytes), 0 failed, 6 skipped"
    assert (f"  skipped 4 files that are not mail (no message header block at their start): "
            f"{folder / 'README.md'}, {folder / 'headers-only-unknown.txt'}, "
            f"{folder / 'notes.txt'}, {folder / 'report.pdf'}") in lines
    assert (f"  skipped 1 Outlook .msg or other Office files (not RFC 5322 mail: save them as "
            f".eml): {folder / 'outlook.msg'}") in lines


def test_a_named_file_that_is_not_mail_is_skipped_too(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# abuse-desk\n\nAn ISP's abuse desk.\n")
    summary = run_import(engine, [tmp_path / "README.md"])
    assert (summary.stored, summary.failed, rows(engine)) == (0, [], [])
    assert summary.skipped == {importer.NOT_MAIL: [str(tmp_path / "README.md")]}


def test_many_skipped_files_are_counted_and_a_few_named(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(8):
        (folder / f"note{n}.txt").write_text("just text\n")
    summary = run_import(engine, [folder])
    (line,) = [x for x in summary.text().splitlines() if "skipped 8" in x]
    assert line.endswith(f"{folder / 'note4.txt'} and 3 more")


@pytest.mark.parametrize(("head", "whole", "why"), [
    (b"From: a@example.org\nSubject: x\n\nbody", True, None),
    (b"Subject: x\r\nX-Long: a\r\n  folded\r\n\r\nbody\r\n", True, None),
    (b"Received: from a\n by b\nDate: Mon, 2 Feb 2026 10:00:00 +0000\n", True, None),
    (b"message-id : <obsolete-blank@example.org>\n\n", True, None),  # obs-syntax blank
    (b"Subject: cut" + b"\nX-Pad: " + b"p" * 100 + b"\nX-Cut: abc", False, None),
    (b"X-Mailer: a\nX-Other: b\n\nbody", True, "NOT_MAIL"),  # no field of a message
    (b"# Title\n\nSubject: x\n", True, "NOT_MAIL"),
    (b"  Subject: indented first line\n\n", True, "NOT_MAIL"),
    (b"Subject: x\nnot a header\n\nbody", True, "NOT_MAIL"),
    (b"Sub ject: x\n\n", True, "NOT_MAIL"),
    (b"Subject x\n\n", True, "NOT_MAIL"),
    (OLE2, True, "OUTLOOK"),
    (b"\xef\xbb\xbfHello", True, "NOT_MAIL"),
])
def test_what_is_mail(head: bytes, whole: bool, why: str | None) -> None:
    assert importer.not_mail(head, whole) == (getattr(importer, why) if why else None)


def test_a_fifo_is_skipped_not_read(engine: Engine, tmp_path: Path) -> None:
    """A FIFO among the files would block the import forever waiting for a writer."""
    import threading

    folder = tmp_path / "with-a-fifo"
    folder.mkdir()
    os.mkfifo(folder / "fifo")
    (folder / "a.eml").write_bytes(mail(1))
    done: list[ImportSummary] = []
    worker = threading.Thread(target=lambda: done.append(run_import(engine, [folder])),
                              daemon=True)
    worker.start()
    worker.join(60)  # a hang guard
    if worker.is_alive():  # blocked opening the FIFO: let it go before failing
        os.close(os.open(folder / "fifo", os.O_WRONLY | os.O_NONBLOCK))
        worker.join(60)
        pytest.fail("the import blocked on a FIFO")
    (summary,) = done
    assert summary.skipped == {importer.NOT_REGULAR: [str(folder / "fifo")]}
    assert [r.raw for r in rows(engine)] == [mail(1)]


def test_cli_import_of_a_folder_says_what_it_skipped_and_exits_0(
        cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "README.md").write_text("# Reports\n")
    (folder / "a.eml").write_bytes(mail(1))

    assert cli.main(["import", "--quiet", str(folder)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 stored, 0 already stored (same bytes), 0 failed, 1 skipped"
    assert lines[1] == ("  skipped 1 files that are not mail (no message header block at "
                        f"their start): {folder / 'README.md'}")
    assert [r.raw for r in cli_rows(cli_env)] == [mail(1)]
