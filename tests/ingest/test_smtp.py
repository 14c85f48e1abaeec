"""The SMTP listener through real connections (smtplib against the running listener)."""

from __future__ import annotations

import contextlib
import hashlib
import random
import smtplib
import socket
import sqlite3
import ssl
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from abuse_desk.core.models import Event, Message
from abuse_desk.ingest import smtp as smtp_module
from aiosmtpd.smtp import SMTP
from sqlalchemy import Engine, event, func, select

from tests.support import LiveDesk, make_config, message, wait_for


@contextlib.contextmanager
def slow_commits(engine: Engine, delay: float) -> Iterator[None]:
    """Every commit on *engine* takes *delay* longer while inside the block.

    The listener stays registered (switched off, not removed): removing it while another
    thread commits would break that commit.
    """
    on = threading.Event()
    on.set()

    def slow(conn: object) -> None:
        if on.is_set():
            time.sleep(delay)

    event.listen(engine, "commit", slow)
    try:
        yield
    finally:
        on.clear()


def db_path(desk: LiveDesk) -> str:
    return desk.config.database.url.removeprefix("sqlite:///")


def read_back(desk: LiveDesk, message_id: int) -> tuple[bytes, str] | None:
    """Read a message from a separate connection, as another process would."""
    conn = sqlite3.connect(db_path(desk))
    try:
        return conn.execute("SELECT raw, sha256 FROM messages WHERE id = ?",
                            (message_id,)).fetchone()
    finally:
        conn.close()


def queued_id(reply: bytes) -> int:
    text = reply.decode()
    assert text.startswith("2.0.0 queued as "), text
    return int(text.rsplit(" ", 1)[1])


def send_data(addr: tuple[str, int], raw: bytes, rcpt: str = "abuse@localhost",
              mail_from: str = "reporter@example.org") -> tuple[int, bytes]:
    with smtplib.SMTP(*addr, timeout=30) as client:
        client.ehlo("reporter.example.org")
        code, reply = client.mail(mail_from)
        assert code == 250, reply
        code, reply = client.rcpt(rcpt)
        assert code == 250, reply
        return client.data(raw)


@pytest.fixture
def desk(tmp_path: Path):
    with LiveDesk(make_config(tmp_path, smtp={"max_message_size": 200_000})) as live:
        yield live


def test_ehlo_advertises_size_and_enhanced_status_codes(desk: LiveDesk) -> None:
    with smtplib.SMTP(*desk.smtp_addr) as client:
        code, _ = client.ehlo("reporter.example.org")
        assert code == 250
        assert client.esmtp_features["size"] == "200000"
        assert "enhancedstatuscodes" in client.esmtp_features
        assert "auth" not in client.esmtp_features


def test_250_only_after_commit(desk: LiveDesk) -> None:
    """The reply waits for the commit: make the commit slow and see the row at the reply."""
    delay = 0.4
    with slow_commits(desk.engine, delay):
        started = time.monotonic()
        code, reply = send_data(desk.smtp_addr, message("slow commit"))
        elapsed = time.monotonic() - started
    assert code == 250
    message_id = queued_id(reply)
    assert elapsed >= delay
    row = read_back(desk, message_id)
    assert row is not None, "250 was sent for a message another connection cannot read"


def test_bytes_stored_exactly_as_received(desk: LiveDesk) -> None:
    raw = (b"Received: from mx.example.org by relay\r\n"
           b"\tfolded; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
           b"From: =?utf-8?q?R=C3=A9porter?= <r@example.org>\r\nSubject: bytes\r\n"
           b"X-Eight-Bit: caf\xc3\xa9 \xff\xfe raw\r\n\r\n"
           b"..a line that starts with a dot (dot-stuffed on the wire)\r\n"
           b"trailing spaces   \r\n\tleading tab\r\nbare\nLF inside a line\r\n"
           + b"x" * 5000 + b"\r\n" + b"\x00NUL byte\r\n")
    code, reply = send_data(desk.smtp_addr, raw)
    assert code == 250
    stored, sha = read_back(desk, queued_id(reply))
    assert stored == raw
    assert sha == hashlib.sha256(raw).hexdigest()


def test_envelope_is_stored(desk: LiveDesk) -> None:
    code, reply = send_data(desk.smtp_addr, message("envelope"), rcpt="Abuse@LOCALHOST")
    assert code == 250
    with desk.engine.connect() as conn:
        m = conn.execute(select(Message).where(Message.id == queued_id(reply))).one()
    assert m.mail_from == "reporter@example.org"
    assert m.rcpt_tos == ["Abuse@LOCALHOST"]
    assert m.peer_ip == "127.0.0.1"
    assert isinstance(m.peer_port, int) and m.peer_port > 0
    assert m.helo == "reporter.example.org"
    assert m.tls is False
    assert m.origin == "smtp"
    assert m.received_at is not None


def test_null_sender_accepted(desk: LiveDesk) -> None:
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        assert client.mail("<>")[0] == 250
        assert client.rcpt("postmaster@integra-isp.example")[0] == 250
        code, _ = client.data(message("bounce"))
    assert code == 250


@pytest.mark.parametrize("rcpt", [
    "someone@example.com",              # another domain: no relaying
    "info@localhost",                   # not one of our mailboxes
    "abuse@localhost.example.com",      # our domain as a prefix of another
    "abuse%example.com@localhost",      # percent hack
    "abuse@example.com@localhost",      # two at-signs
    "@relay.example:abuse@example.com",  # source route to elsewhere
    "@localhost:abuse@localhost",       # source route even to us
    "abuse",                            # no domain
    "abuse+x%evil.example@localhost",   # a tag carrying a percent hack
    "info+r-abc@localhost",             # a tag on another mailbox
    "abuse+@localhost",                 # an empty tag
])
def test_other_recipients_refused(desk: LiveDesk, rcpt: str) -> None:
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        client.mail("spammer@example.net")
        code, reply = client.rcpt(rcpt)
    # 550 5.1.1 from our policy, or 553 5.1.3 where aiosmtpd finds the address malformed.
    assert (code, reply[:5]) in {(550, b"5.1.1"), (553, b"5.1.3")}, (code, reply)


@pytest.mark.parametrize("rcpt", ["abuse+r-9x4kq2@localhost", "Abuse+b-7ZZ0@LOCALHOST"])
def test_our_reply_and_bounce_addresses_are_accepted(desk: LiveDesk, rcpt: str) -> None:
    # notices are sent from abuse+b-TOKEN@ and answered at abuse+r-TOKEN@ (smtp.recipient_delimiter)
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        client.mail("")
        code, _ = client.rcpt(rcpt)
    assert code == 250


def test_data_without_accepted_recipient_is_refused(desk: LiveDesk) -> None:
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        client.mail("spammer@example.net")
        client.rcpt("someone@example.com")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.data(b"Subject: relay me\r\n\r\nx\r\n")
    assert refused.value.smtp_code == 503
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar() == 0


def test_size_parameter_over_limit_refused_at_mail(desk: LiveDesk) -> None:
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        code, reply = client.mail("r@example.org", ["SIZE=200001"])
    assert (code, reply[:5]) == (552, b"5.3.4")


def test_data_over_limit_refused(desk: LiveDesk) -> None:
    big = message("too big", body="y" * 1000 + "\r\n") * 250  # ~250 kB > 200,000
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        client.mail("r@example.org")
        client.rcpt("abuse@localhost")
        code, reply = client.data(big)
        assert (code, reply[:5]) == (552, b"5.3.4")
        # The session goes on: the next message is accepted.
        client.mail("r@example.org")
        client.rcpt("abuse@localhost")
        assert client.data(message("after the big one"))[0] == 250


@pytest.mark.parametrize("length", [10_000, 65_536])
def test_long_lines_accepted(desk: LiveDesk, length: int) -> None:
    raw = message("long line", body="z" * length + "\r\n")
    code, reply = send_data(desk.smtp_addr, raw)
    assert code == 250
    assert read_back(desk, queued_id(reply))[0] == raw


def test_line_over_limit_refused(desk: LiveDesk) -> None:
    code, reply = send_data(desk.smtp_addr, message("too long", body="z" * 70_000 + "\r\n"))
    assert code == 500
    assert reply.startswith(b"5.5.2")


def test_451_while_database_locked_then_accepted(tmp_path: Path) -> None:
    config = make_config(tmp_path, database={"busy_timeout_s": 0.3},
                         smtp={"store_timeout_s": 5.0})
    with LiveDesk(config) as live:
        raw = message("locked")
        blocker = sqlite3.connect(db_path(live), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            code, reply = send_data(live.smtp_addr, raw)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert code == 451
        assert reply.startswith(b"4.3.0")
        assert b"lock" not in reply.lower() and b"sqlite" not in reply.lower()
        code, reply = send_data(live.smtp_addr, raw)
        assert code == 250
        with live.engine.connect() as conn:
            shas = conn.execute(select(Message.sha256)).scalars().all()
        assert shas == [hashlib.sha256(raw).hexdigest()]


def test_451_on_our_own_failure_hides_internals(desk: LiveDesk, monkeypatch) -> None:
    assert desk.running is not None and desk.running.smtp is not None

    def broken_submit(raw: bytes, envelope: object) -> None:
        raise RuntimeError("secret internal detail /var/lib/db")

    monkeypatch.setattr(desk.running.smtp.handler, "_store", broken_submit)
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        client.mail("r@example.org")
        client.rcpt("abuse@localhost")
        code, reply = client.data(message("our failure"))
    assert code == 451
    assert reply.decode() == smtp_module.TEMPFAIL.removeprefix("451 ")
    assert b"secret" not in reply


def test_connection_cap_per_peer(tmp_path: Path) -> None:
    config = make_config(tmp_path, smtp={"max_connections_per_ip": 2})
    with LiveDesk(config) as live:
        first, second = smtplib.SMTP(*live.smtp_addr), smtplib.SMTP(*live.smtp_addr)
        try:
            with socket.create_connection(live.smtp_addr, timeout=5) as third:
                banner = third.recv(200)
            assert banner.startswith(b"421 4.7.0"), banner
            first.quit()
            wait_for(lambda: live.running.smtp.tracker.total == 1, 5, "the closed session to count")
            with smtplib.SMTP(*live.smtp_addr) as fourth:
                assert fourth.noop()[0] == 250
        finally:
            second.quit()


def test_idle_connection_closed(tmp_path: Path) -> None:
    config = make_config(tmp_path, smtp={"idle_timeout_s": 0.5})
    with LiveDesk(config) as live, socket.create_connection(live.smtp_addr, timeout=5) as sock:
        assert sock.recv(200).startswith(b"220")
        time.sleep(1.2)
        sock.settimeout(2)
        assert sock.recv(200) == b""  # closed by the server


def test_starttls_required(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    cert, key = tls_files
    config = make_config(tmp_path, smtp={"tls_cert": cert, "tls_key": key, "require_tls": True})
    with LiveDesk(config) as live, smtplib.SMTP(*live.smtp_addr) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.mail("r@example.org")
        assert code == 530
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.starttls(context=context)
        client.ehlo()
        assert not client.has_extn("auth")
        client.mail("r@example.org")
        client.rcpt("abuse@localhost")
        code, reply = client.data(message("over tls"))
        assert code == 250
        with live.engine.connect() as conn:
            assert conn.execute(select(Message.tls).where(
                Message.id == queued_id(reply))).scalar() is True


def test_concurrent_sessions_share_commits(tmp_path: Path) -> None:
    """Twenty sessions at once: every one stored, in fewer commits than messages."""
    from abuse_desk.core import metrics

    before_sum = _histogram_count(metrics.STORE_BATCH_SIZE)
    config = make_config(tmp_path)
    with LiveDesk(config) as live:
        results: list[int] = []

        def one(n: int) -> None:
            code, _ = send_data(live.smtp_addr, message(f"concurrent {n}"))
            results.append(code)

        with slow_commits(live.engine, 0.05):  # makes commits overlap reliably
            threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert results == [250] * 20
        with live.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Message)).scalar() == 20
    commits = _histogram_count(metrics.STORE_BATCH_SIZE) - before_sum
    assert commits < 20


def _histogram_count(histogram: object) -> float:
    for metric in histogram.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0


def test_accepted_message_is_processed_once(desk: LiveDesk) -> None:
    date = "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    code, reply = send_data(desk.smtp_addr, message("to process", extra=date))
    assert code == 250
    message_id = queued_id(reply)

    def processed() -> Message | None:
        with desk.engine.connect() as conn:
            return conn.execute(select(Message).where(
                Message.id == message_id, Message.state == "processed")).first()

    m = wait_for(processed, 10, "processing")
    assert m.header_subject == "to process"
    assert m.header_message_id == "<to.process@example.org>"
    assert m.header_from == "reporter@example.org"
    assert m.header_date == "Sat, 28 Nov 2026 10:00:00 +0000"
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Event).where(
            Event.subject_id == message_id)).scalar() == 1


def _aiosmtpd_getaddr(arg: str) -> tuple[str | None, str | None]:
    """aiosmtpd's own address parsing (its RFC 5322 header parser), no local-part limit."""
    return SMTP._getaddr(SimpleNamespace(local_part_limit=0), arg)  # type: ignore[arg-type]


@pytest.mark.parametrize("arg", [
    "<reporter@example.net>", "<a.b-c+tag@mail.example.org> SIZE=4096 BODY=8BITMIME",
    "<a@b>\t", "<a@b>   X=1", "<a@b>x", "<a@b> \r\n", "<a@b>\r", "<a@b>\u00a0",
])
def test_plain_address_is_what_aiosmtpd_parses(arg: str) -> None:
    assert smtp_module.plain_address(arg) == _aiosmtpd_getaddr(arg)


@pytest.mark.parametrize("arg", [
    "<>", "< a@b>", "<a@b >", "<a..b@c>", "<.a@b>", "<a@b.>", "<a@[192.0.2.1]>",
    '<"a b"@c>', "<@relay.example:a@b>", "<=?utf-8?q?x?=@b>", "<a@b>(comment)",
    "<a@b> (comment) X=1", "<é@b>", "a@b", "<a@b", "<a@b@c>",
])
def test_other_addresses_go_to_aiosmtpd_parser(arg: str) -> None:
    assert smtp_module.plain_address(arg) is None


def test_plain_address_agrees_with_aiosmtpd_on_random_arguments() -> None:
    rng = random.Random(20)
    chars = string.ascii_letters + string.digits + "!#$%&'*+/=^_`{|}~-.?\"\\ ()[]@<>é"
    tails = ["", " ", "\t", " SIZE=1", "(c)", " (c) X", "\r\n", "x", ">", "\x0b", "\u00a0("]
    plain = 0
    for _ in range(20_000):
        arg = ("<" + "".join(rng.choice(chars) for _ in range(rng.randint(1, 8))) + "@"
               + "".join(rng.choice(chars) for _ in range(rng.randint(1, 8))) + ">"
               + rng.choice(tails) + rng.choice(tails))
        got = smtp_module.plain_address(arg)
        if got is not None:
            plain += 1
            assert got == _aiosmtpd_getaddr(arg), arg
    assert plain > 100  # the sweep did reach the plain form

