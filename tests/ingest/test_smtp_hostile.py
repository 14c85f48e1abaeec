"""Hostile peers against the live listener, over raw sockets: SMTP smuggling (bare LF / bare CR
around the end-of-data dot), DATA cut off, and the per-peer message rate (451 4.7.1) beside
the connection cap (421 4.7.0)."""

from __future__ import annotations

import smtplib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core import metrics
from abuse_desk.core.config import build_config
from abuse_desk.core.models import Message
from abuse_desk.ingest.smtp import SLOW_DOWN, PeerRateLimiter, peer_key
from sqlalchemy import func, select

from tests.support import LiveDesk, make_config, message, wait_for


class RawSession:
    """A bare TCP SMTP client: what is sent is exactly the bytes given."""

    def __init__(self, addr: tuple[str, int], source: str | None = None) -> None:
        self.sock = socket.create_connection(
            addr, timeout=10, source_address=(source, 0) if source else None)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def reply(self) -> bytes:
        """The next complete reply (all its lines), without the final CRLF."""
        while True:
            end = 0
            while (nl := self.buf.find(b"\r\n", end)) >= 0:
                line = self.buf[end:nl]
                end = nl + 2
                if len(line) < 4 or line[3:4] != b"-":
                    out, self.buf = self.buf[:end - 2], self.buf[end:]
                    return out
            if not self._fill():
                raise ConnectionError(f"closed with {self.buf!r} unread")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def rest(self) -> list[bytes]:
        """Every reply still to come until the server closes the connection."""
        while self._fill():
            pass
        return [r for r in self.buf.split(b"\r\n") if r]


def stored(desk: LiveDesk) -> list[Any]:
    """Every stored message: id, raw, mail_from, oldest first."""
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Message.id, Message.raw, Message.mail_from)
                                 .order_by(Message.id)).all())


def unstuffed(wire: bytes) -> bytes:
    """The message RFC 5321 4.5.2 makes of DATA *wire* (without its final ``.<CRLF>``): lines
    end in CRLF only, and a line's leading dot is removed."""
    lines = wire.split(b"\r\n")
    assert lines[-1] == b"", "DATA must end with CRLF before the dot"
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n"
                    for line in lines[:-1])


FIRST = (b"From: reporter@example.org\r\nTo: abuse@localhost\r\nSubject: first\r\n"
         b"Message-ID: <first@example.org>\r\n\r\nthe honest report")
SMUGGLED = (b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<abuse@localhost>\r\nDATA\r\n"
            b"From: ceo@bank.example\r\nTo: abuse@localhost\r\nSubject: smuggled\r\n"
            b"Message-ID: <smuggled@bank.example>\r\n\r\nplease close customer 42 at once\r\n")

# Every way (but one) to write an "end of data" with a bare LF or a bare CR that some MTA took
# for <CRLF>.<CRLF> (SEC Consult, Dec 2023; Postfix, Sendmail, Exim, aiosmtpd < 1.4.5).
NOT_AN_END = [
    b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\r", b"\n.\r", b"\r.\n",
    b"\r\r\n.\r\r\n", b"\r\n.\r\r\n", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\r\n .\r\n",
    b"\n\n.\n\n",
]


@pytest.fixture
def desk(tmp_path: Path):
    with LiveDesk(make_config(tmp_path)) as live:
        yield live


def open_data(desk: LiveDesk) -> RawSession:
    s = RawSession(desk.smtp_addr)
    assert s.reply().startswith(b"220")
    assert s.command(b"EHLO attacker.example").startswith(b"250")
    assert s.command(b"MAIL FROM:<reporter@example.org>").startswith(b"250")
    assert s.command(b"RCPT TO:<abuse@localhost>").startswith(b"250")
    assert s.command(b"DATA").startswith(b"354")
    return s


@pytest.mark.parametrize("separator", NOT_AN_END, ids=repr)
def test_bare_lf_or_cr_dot_does_not_end_data(desk: LiveDesk, separator: bytes) -> None:
    """The smuggled MAIL/RCPT/DATA and second message are body bytes of the one message."""
    wire = FIRST + separator + SMUGGLED
    s = open_data(desk)
    try:
        s.sock.sendall(wire + b".\r\n")
        first = s.reply()
        assert first.startswith(b"250 2.0.0 queued as "), first
        s.sock.sendall(b"QUIT\r\n")
        # A listener that ended DATA at the separator would have answered the smuggled MAIL,
        # RCPT, DATA and the second message's end before the QUIT.
        assert s.rest() == [b"221 Bye"]
    finally:
        s.close()
    rows = stored(desk)
    assert len(rows) == 1, [r.raw[:80] for r in rows]
    (row,) = rows
    assert row.raw == unstuffed(wire)
    assert b"MAIL FROM:<ceo@bank.example>" in row.raw
    assert row.mail_from == "reporter@example.org"
    assert row.id == int(first.rsplit(b" ", 1)[1])


def test_crlf_dot_crlf_does_end_data(desk: LiveDesk) -> None:
    """The control: with a real <CRLF>.<CRLF> the same bytes make two messages, so the test
    above would see a smuggled one."""
    s = open_data(desk)
    try:
        s.sock.sendall(FIRST + b"\r\n.\r\n" + SMUGGLED + b".\r\n")
        replies = [s.reply() for _ in range(5)]
        s.sock.sendall(b"QUIT\r\n")
        assert s.rest() == [b"221 Bye"]
    finally:
        s.close()
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354", b"250"]
    rows = stored(desk)
    assert [r.mail_from for r in rows] == ["reporter@example.org", "ceo@bank.example"]
    assert rows[0].raw == FIRST + b"\r\n"
    assert b"MAIL FROM" not in rows[0].raw


def test_smuggling_across_packets(desk: LiveDesk) -> None:
    """The separator split over several TCP writes changes nothing."""
    wire = FIRST + b"\n.\r\n" + SMUGGLED
    s = open_data(desk)
    try:
        for piece in (FIRST + b"\n", b".", b"\r", b"\n" + SMUGGLED[:10], SMUGGLED[10:], b".",
                      b"\r\n"):
            s.sock.sendall(piece)
            time.sleep(0.02)
        assert s.reply().startswith(b"250 2.0.0")
        s.sock.sendall(b"QUIT\r\n")
        assert s.rest() == [b"221 Bye"]
    finally:
        s.close()
    assert [r.raw for r in stored(desk)] == [unstuffed(wire)]


@pytest.mark.parametrize("tail", [b"", b"\n.\n", b"\r\n.\r", b"\r\n."], ids=repr)
def test_data_cut_off_stores_nothing(desk: LiveDesk, tail: bytes) -> None:
    """A connection closed before <CRLF>.<CRLF> has sent no message: nothing is stored, and the
    listener goes on serving."""
    s = open_data(desk)
    s.sock.sendall(FIRST + tail)
    s.sock.shutdown(socket.SHUT_WR)
    assert s.rest() == []  # no reply: no 250 for half a message
    s.close()
    wait_for(lambda: desk.running.smtp.tracker.total == 0, 5, "the session to end")
    assert stored(desk) == []
    with smtplib.SMTP(*desk.smtp_addr) as client:
        client.ehlo()
        client.mail("reporter@example.org")
        client.rcpt("abuse@localhost")
        assert client.data(message("after the cut"))[0] == 250
    assert len(stored(desk)) == 1


# --- the message rate per peer ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_spends_refills_and_caps() -> None:
    clock = Clock()
    limiter = PeerRateLimiter(60, max_peers=100, clock=clock)
    assert [limiter.take("192.0.2.1") for _ in range(61)] == [True] * 60 + [False]
    assert limiter.take("192.0.2.1") is False  # a refusal spends nothing, and gets nothing
    assert limiter.take("192.0.2.2") is True  # another peer has its own bucket
    clock.now += 1.0  # 60 a minute: one token a second
    assert [limiter.take("192.0.2.1") for _ in range(2)] == [True, False]
    clock.now += 30.0
    assert sum(limiter.take("192.0.2.1") for _ in range(40)) == 30
    clock.now += 3600.0  # refills to the cap, not past it
    assert sum(limiter.take("192.0.2.1") for _ in range(100)) == 60


def test_bucket_zero_is_off() -> None:
    limiter = PeerRateLimiter(0, max_peers=10, clock=Clock())
    assert all(limiter.take("192.0.2.1") for _ in range(10_000))
    assert len(limiter) == 0


def test_buckets_are_bounded() -> None:
    clock = Clock()
    limiter = PeerRateLimiter(600, max_peers=50, clock=clock)
    for n in range(5000):
        limiter.take(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        assert len(limiter) <= 50
    # Peers idle for as long as a refill takes are forgotten: they would have a full bucket.
    clock.now += 60.0
    limiter.take("192.0.2.9")
    assert len(limiter) == 1
    # The one idle longest goes first; the busy peer keeps its (empty) bucket.
    limiter = PeerRateLimiter(3, max_peers=2, clock=clock)
    assert all(limiter.take("192.0.2.1") for _ in range(3))
    limiter.take("192.0.2.2")
    assert limiter.take("192.0.2.1") is False  # touched last: 192.0.2.2 is the oldest now
    limiter.take("192.0.2.3")  # evicts 192.0.2.2
    assert limiter.take("192.0.2.1") is False


def test_peer_key_groups_ipv6_by_64() -> None:
    assert peer_key("192.0.2.1") == "192.0.2.1"
    assert peer_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert peer_key("2001:db8:1:2::1") == peer_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert peer_key("2001:db8:1:3::1") != peer_key("2001:db8:1:2::1")
    assert peer_key("fe80::1%eth0") == "fe80::/64"
    assert peer_key("unix-socket") == "unix-socket"
    clock = Clock()
    limiter = PeerRateLimiter(2, max_peers=10, clock=clock)
    assert [limiter.take(f"2001:db8::{n}") for n in range(3)] == [True, True, False]


def rejected(reason: str) -> float:
    return float(metrics.SMTP_REJECTED.labels(reason)._value.get())


def test_rate_cap_451_connection_cap_421_under_both_250(tmp_path: Path) -> None:
    per_minute = 120  # two a second
    config = make_config(tmp_path, smtp={"max_messages_per_ip_per_minute": per_minute,
                                         "max_connections_per_ip": 2})
    rate_before, conn_before = rejected("rate"), rejected("connections")
    with LiveDesk(config) as live:
        client = smtplib.SMTP(*live.smtp_addr, timeout=10)
        other = smtplib.SMTP(*live.smtp_addr, timeout=10)
        try:
            client.ehlo("busy.example.org")
            # Under the cap: a whole message is accepted and stored.
            client.mail("busy@example.org")
            client.rcpt("abuse@localhost")
            code, _ = client.data(message("under the cap"))
            assert code == 250
            # Spend the rest of the bucket with MAIL/RSET, until the first refusal.
            accepted = 1
            started = time.monotonic()
            while True:
                code, reply = client.mail("busy@example.org")
                if code != 250:
                    break
                accepted += 1
                client.rset()
                assert accepted < per_minute * 2, "never refused"
            spent_s = time.monotonic() - started
            assert (code, reply) == (451, SLOW_DOWN.removeprefix("451 ").encode())
            # The cap, plus what refilled meanwhile (two a second).
            assert per_minute <= accepted <= per_minute + 2 * spent_s + 2
            # Refused MAIL opened no transaction: RCPT and DATA have nothing to go on.
            assert client.rcpt("abuse@localhost")[0] == 503
            # The connection cap still answers 421, in the same session count as ever.
            with socket.create_connection(live.smtp_addr, timeout=5) as third:
                assert third.recv(200).startswith(b"421 4.7.0")
            # Another peer address is not slowed down.
            with smtplib.SMTP(*live.smtp_addr, source_address=("127.0.0.2", 0)) as fresh:
                fresh.ehlo()
                fresh.mail("other@example.org")
                fresh.rcpt("abuse@localhost")
                assert fresh.data(message("another peer"))[0] == 250
            # The bucket refills: half a second per message at 120 a minute.
            time.sleep(1.2)
            client.rset()
            client.mail("busy@example.org")
            client.rcpt("abuse@localhost")
            assert client.data(message("after the refill"))[0] == 250
        finally:
            client.close()
            other.close()
        with live.engine.connect() as conn:
            subjects = set(conn.execute(select(Message.header_subject)).scalars())
            count = conn.execute(select(func.count()).select_from(Message)).scalar()
    assert count == 3
    # (header_subject is set by processing, which may lag: None is fine, a stranger is not)
    assert subjects <= {"under the cap", "another peer", "after the refill", None}
    assert rejected("rate") - rate_before == 1
    assert rejected("connections") - conn_before == 1


def test_rate_cap_refusal_is_not_stored_and_sender_retry_succeeds(tmp_path: Path) -> None:
    """What an MTA does on 451: keep the message, retry later; it is then stored once."""
    config = make_config(tmp_path, smtp={"max_messages_per_ip_per_minute": 60})
    with LiveDesk(config) as live, smtplib.SMTP(*live.smtp_addr, timeout=10) as client:
        client.ehlo()
        codes = []
        for n in range(62):
            code, _ = client.mail("r@example.org")
            codes.append(code)
            if code == 250:
                client.rcpt("abuse@localhost")
                assert client.data(message(f"rate {n}"))[0] == 250
        refused = codes.index(451)
        assert 60 <= refused <= 61 and codes[refused:] == [451] * (62 - refused)
        with live.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Message)).scalar() == refused
        time.sleep(1.1)  # one a second
        client.rset()
        assert client.mail("r@example.org")[0] == 250
        client.rcpt("abuse@localhost")
        assert client.data(message("retried"))[0] == 250
        with live.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Message)).scalar() == refused + 1


def test_rate_limit_keys_are_validated() -> None:
    from abuse_desk.core.config import ConfigError

    assert build_config({}, env={}).smtp.max_messages_per_ip_per_minute == 600  # on by default
    assert build_config({"smtp": {"max_messages_per_ip_per_minute": 0}},
                        env={}).smtp.max_messages_per_ip_per_minute == 0
    with pytest.raises(ConfigError, match=r"smtp\.max_messages_per_ip_per_minute"):
        build_config({"smtp": {"max_messages_per_ip_per_minute": -1}}, env={})
    with pytest.raises(ConfigError, match=r"smtp\.rate_limit_max_peers"):
        build_config({"smtp": {"rate_limit_max_peers": 0}}, env={})
