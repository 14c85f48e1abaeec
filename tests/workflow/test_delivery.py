"""Delivery of customer notices: a real Maildir, and real SMTP servers (aiosmtpd) in the test."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import socket
import ssl
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core.config import ConfigError, NotifyConfig
from abuse_desk.workflow.delivery import (
    DeliveryError,
    MaildirTransport,
    SmtpTransport,
    maildir_name,
    make_transport,
    retry_delay,
)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

RAW = (b"From: Integra ISP Abuse Desk <abuse@integra-isp.example>\r\n"
       b"To: customer@example.net\r\n"
       b"Subject: Abuse report concerning 192.0.2.7\r\n"
       b"Message-ID: <notice-1@abuse-desk.localhost>\r\n"
       b"\r\n"
       b"Hello,\r\n"
       b".a line starting with a dot\r\n"
       b"Regards\r\n")
FROM = "abuse@integra-isp.example"
TO = "customer@example.net"


def _lines(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").rstrip(b"\n")


# --- Maildir ---------------------------------------------------------------------------------


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


NAME = maildir_name("notice-1", RAW)  # notice-1-<16 hex of its Message-ID>.eml


def test_maildir_send_writes_one_file_in_new(tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    receipt = MaildirTransport(box).send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    assert re.fullmatch(r"notice-1-[0-9a-f]{16}\.eml", NAME)
    assert receipt == f"maildir new/{NAME}"
    assert _files(box / "new") == [NAME]
    # The envelope sender first (Return-Path, as an MTA delivering it writes it), then the mail.
    assert (box / "new" / NAME).read_bytes() == (
        b"Return-Path: <abuse@integra-isp.example>\r\n" + RAW)
    assert _files(box / "tmp") == [] and _files(box / "cur") == []
    for sub in ("", "tmp", "new", "cur"):
        assert (box / sub).stat().st_mode & 0o777 == 0o700


def test_maildir_same_notice_twice_leaves_one_file(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path)
    transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    again = RAW.replace(b"Regards", b"Regards again")  # the same notice: key and Message-ID
    transport.send(mail_from=FROM, to=TO, raw=again, key="notice-1")
    assert _files(tmp_path / "new") == [NAME]
    assert (tmp_path / "new" / NAME).read_bytes().endswith(b"Regards again\r\n")
    assert _files(tmp_path / "tmp") == []
    # Without a Message-ID the whole message names it: sent twice, still one file.
    for _ in range(2):
        transport.send(mail_from=FROM, to=TO, raw=b"Subject: x\r\n\r\nbody\r\n", key="notice-2")
    assert len(_files(tmp_path / "new")) == 2


def test_maildir_two_desks_sharing_one_outbox_do_not_overwrite_each_other(
        tmp_path: Path) -> None:
    """Issue 18: each desk has its own notice 1; the file name used to be notice-1.eml for
    both, and the second desk's replaced the first desk's."""
    first = RAW.replace(b"<notice-1@abuse-desk.localhost>",
                        b"<C-2026-000001.notice.aaaa1111@desk-a.example>")
    second = RAW.replace(b"<notice-1@abuse-desk.localhost>",
                         b"<C-2026-000001.notice.bbbb2222@desk-b.example>")
    desk_a, desk_b = MaildirTransport(tmp_path), MaildirTransport(tmp_path)
    desk_a.send(mail_from=FROM, to=TO, raw=first, key="notice-1")
    desk_b.send(mail_from=FROM, to=TO, raw=second, key="notice-1")
    files = _files(tmp_path / "new")
    assert len(files) == 2 and all(f.startswith("notice-1-") for f in files)
    assert sorted((tmp_path / "new" / f).read_bytes() for f in files) == sorted(
        b"Return-Path: <" + FROM.encode() + b">\r\n" + m for m in (first, second))


def test_maildir_mail_moved_to_cur_is_not_delivered_again(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path)
    transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    os.replace(tmp_path / "new" / NAME, tmp_path / "cur" / f"{NAME}:2,S")
    receipt = transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    assert "already delivered" in receipt and f"{NAME}:2,S" in receipt
    assert _files(tmp_path / "new") == []
    assert _files(tmp_path / "cur") == [f"{NAME}:2,S"]
    # A neighbour whose name merely starts with the same characters is another notice.
    transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-10")
    assert _files(tmp_path / "new") == [maildir_name("notice-10", RAW)]


@pytest.mark.parametrize(("raw", "message_id"), [
    (RAW, b"<notice-1@abuse-desk.localhost>"),
    (b"Subject: x\nmessage-id:\n <folded@example>\nX: y\n\nbody\n", b"<folded@example>"),
    (b"Subject: x\r\n\r\nMessage-ID: <in-the-body@example>\r\n", None),
    (b"Message-ID:   \r\n\r\n", None),
])
def test_the_name_comes_from_the_header_message_id(raw: bytes, message_id: bytes | None) -> None:
    name = maildir_name("notice-7", raw, FROM)
    if message_id is None:  # no Message-ID in the header block: the envelope and the bytes
        whole = FROM.encode() + b"\0" + raw
        assert name == f"notice-7-{hashlib.sha256(whole).hexdigest()[:16]}.eml"
    else:
        assert name == f"notice-7-{hashlib.sha256(message_id).hexdigest()[:16]}.eml"


@pytest.mark.parametrize("key", ["", "../escape", "a/b", "notice 1", "nötice", ".hidden",
                                 "x\n", "k" * 201])
def test_maildir_bad_key_raises_value_error(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        MaildirTransport(tmp_path / "box").send(mail_from=FROM, to=TO, raw=RAW, key=key)
    assert not (tmp_path / "box").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_maildir_unwritable_directory_is_temporary(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path / "box")
    transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    for sub in ("tmp", "new", "cur", ""):
        (tmp_path / "box" / sub).chmod(0o500)
    try:
        with pytest.raises(DeliveryError) as caught:
            transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-2")
    finally:
        for sub in ("tmp", "new", "cur", ""):
            (tmp_path / "box" / sub).chmod(0o700)
    assert caught.value.permanent is False


def test_maildir_os_error_is_temporary_even_as_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(DeliveryError) as caught:
        MaildirTransport(tmp_path / "file" / "box").send(
            mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    assert caught.value.permanent is False and caught.value.code is None


# --- SMTP --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Recorder:
    """An aiosmtpd handler that records envelopes, or answers RCPT/DATA as told."""

    rcpt_answer: str = ""
    data_answer: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answer:
            return self.data_answer
        self.seen.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                          "data": envelope.original_content, "auth": session.auth_data,
                          "tls": session.ssl is not None})
        return "250 2.0.0 Ok: queued as ABC"


Serve = Callable[..., tuple[Recorder, int]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start an aiosmtpd server on 127.0.0.1; returns its handler and port."""
    controllers: list[Controller] = []

    def start(handler: Recorder | None = None, **smtp_kwargs: Any) -> tuple[Recorder, int]:
        handler = handler or Recorder()
        port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def _send(port: int, **kwargs: Any) -> str:
    kwargs.setdefault("starttls", False)
    transport = SmtpTransport("127.0.0.1", port, timeout_s=10.0, helo="abuse-desk.localhost",
                              **kwargs)
    return transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")


def test_smtp_plain_delivery(serve: Serve) -> None:
    handler, port = serve()
    receipt = _send(port)
    assert receipt == "250 2.0.0 Ok: queued as ABC"
    assert len(handler.seen) == 1
    seen = handler.seen[0]
    assert seen["from"] == FROM and seen["to"] == [TO]
    assert _lines(seen["data"]) == _lines(RAW)
    assert seen["tls"] is False and seen["auth"] is None


def test_smtp_451_at_data_is_temporary(serve: Serve) -> None:
    _, port = serve(Recorder(data_answer="451 4.3.0 try later"))
    with pytest.raises(DeliveryError) as caught:
        _send(port)
    assert caught.value.permanent is False and caught.value.code == 451
    assert "try later" in str(caught.value)


def test_smtp_550_at_rcpt_is_permanent(serve: Serve) -> None:
    _, port = serve(Recorder(rcpt_answer="550 5.1.1 no such user"))
    with pytest.raises(DeliveryError) as caught:
        _send(port)
    assert caught.value.permanent is True and caught.value.code == 550
    assert "no such user" in str(caught.value)


def test_smtp_554_at_data_is_permanent(serve: Serve) -> None:
    _, port = serve(Recorder(data_answer="554 5.7.1 rejected"))
    with pytest.raises(DeliveryError) as caught:
        _send(port)
    assert caught.value.permanent is True and caught.value.code == 554


def test_smtp_nothing_listening_is_temporary() -> None:
    with pytest.raises(DeliveryError) as caught:
        _send(_free_port())
    assert caught.value.permanent is False


def test_smtp_starttls_required_but_not_offered(serve: Serve) -> None:
    handler, port = serve()
    with pytest.raises(DeliveryError) as caught:
        _send(port, starttls=True)
    assert caught.value.permanent is False
    assert "smarthost does not offer STARTTLS; refusing to send in clear" in str(caught.value)
    assert handler.seen == []


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (made by openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(key_file), "-out", str(cert_file)],
            check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a test certificate with openssl: {exc}")
    return cert_file, key_file


USER, SECRET = "desk-user", "s3cret-Pa55word"


@dataclass
class Authenticator:
    logins: list[str] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append(login)
        ok = (login, password) == (USER, SECRET)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


def _tls_server(serve: Serve, cert: tuple[Path, Path],
                authenticator: Authenticator) -> tuple[Recorder, int]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*cert)
    return serve(tls_context=server_context, require_starttls=True, auth_require_tls=True,
                 authenticator=authenticator)


def test_smtp_starttls_and_auth(serve: Serve, cert: tuple[Path, Path]) -> None:
    authenticator = Authenticator()
    handler, port = _tls_server(serve, cert, authenticator)
    client_context = ssl.create_default_context(cafile=str(cert[0]))  # verifies 127.0.0.1
    receipt = _send(port, starttls=True, username=USER, password=SECRET,
                    tls_context=client_context)
    assert receipt.startswith("250 ")
    assert authenticator.logins[-1] == USER
    assert len(handler.seen) == 1
    assert handler.seen[0]["tls"] is True and handler.seen[0]["auth"] == USER
    assert _lines(handler.seen[0]["data"]) == _lines(RAW)


def test_smtp_wrong_password_is_temporary_and_secret(serve: Serve,
                                                      cert: tuple[Path, Path]) -> None:
    authenticator = Authenticator()
    handler, port = _tls_server(serve, cert, authenticator)
    wrong = "Wr0ng-Hunter2-Pa55"
    transport = SmtpTransport("127.0.0.1", port, starttls=True, username=USER, password=wrong,
                              timeout_s=10.0, helo="abuse-desk.localhost",
                              tls_context=ssl.create_default_context(cafile=str(cert[0])))
    with pytest.raises(DeliveryError) as caught:
        transport.send(mail_from=FROM, to=TO, raw=RAW, key="notice-1")
    err = caught.value
    assert err.permanent is False and err.code == 535
    assert "notify.smarthost_username" in str(err)
    assert wrong not in "".join(traceback.format_exception(err))
    assert wrong not in repr(transport)
    assert authenticator.logins and handler.seen == []


def test_smtp_untrusted_certificate_is_temporary(serve: Serve, cert: tuple[Path, Path]) -> None:
    handler, port = _tls_server(serve, cert, Authenticator())
    with pytest.raises(DeliveryError) as caught:
        _send(port, starttls=True, tls_context=ssl.create_default_context())
    assert caught.value.permanent is False
    assert handler.seen == []


# --- make_transport and retry_delay -----------------------------------------------------------


def test_make_transport_maildir_by_default() -> None:
    transport = make_transport(NotifyConfig(), "abuse-desk.localhost")
    assert isinstance(transport, MaildirTransport) and transport.name == "maildir"
    assert transport.path == Path.cwd() / "var" / "outbox"


def test_make_transport_smtp() -> None:
    notify = NotifyConfig(transport="smtp", smarthost_host="mail.example.net",
                          smarthost_password="pw-not-shown")
    transport = make_transport(notify, "abuse-desk.localhost")
    assert isinstance(transport, SmtpTransport) and transport.name == "smtp"
    assert (transport.host, transport.port, transport.starttls) == ("mail.example.net", 587, True)
    assert transport.helo == "abuse-desk.localhost"
    assert "pw-not-shown" not in repr(transport)


def test_make_transport_smtp_without_host() -> None:
    with pytest.raises(ConfigError, match="smarthost_host"):
        make_transport(NotifyConfig(transport="smtp"), "abuse-desk.localhost")


def test_retry_delay() -> None:
    assert retry_delay(0, 60, 3600) == 0 and retry_delay(-3, 60, 3600) == 0
    delays = [retry_delay(n, 60, 3600) for n in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(delays))
    for n, delay in enumerate(delays, start=1):
        assert 0.9 * 60 * 2 ** (n - 1) <= delay <= 60 * 2 ** (n - 1)
    for n in (7, 20, 10_000):
        assert 0.9 * 3600 <= retry_delay(n, 60, 3600) <= 3600


# --- two desks, one outbox ---------------------------------------------------------------------


def test_two_desks_on_one_outbox_each_keep_their_notice_1_and_a_resend_is_one_file(
        tmp_path: Path) -> None:
    """Issue 18: two desks (two databases) delivering to one Maildir both number their first
    notice 1; with files named notice-<id>.eml the second overwrote the first. Each is its own
    file now, and delivering a notice again (a crash before the bookkeeping) still leaves one
    file for it."""
    from abuse_desk.core.models import Notice
    from sqlalchemy import select, update

    from .workflow_support import START, Clock, arf, deliver, notices_of, the_case, workflow_desk

    clock = Clock(START)
    shared = str(tmp_path / "shared-outbox")
    desks = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        desks.append(workflow_desk(tmp_path / name, clock, notify={"maildir": shared}))
    try:
        sent = []
        for desk in desks:
            case = the_case(desk, deliver(desk, arf("45.137.21.7")))
            desk.workflow.run_due()
            (notice,) = [n for n in notices_of(desk, case.id) if n.kind == "notice"]
            assert (notice.id, notice.state) == (1, "sent")
            with desk.engine.connect() as conn:
                sent.append(conn.execute(select(Notice.raw).where(Notice.id == 1)).scalar_one())
        new = Path(shared) / "new"
        files = _files(new)
        assert len(files) == 2, files
        assert sorted(files) == sorted(maildir_name("notice-1", raw) for raw in sent)
        for raw in sent:  # each desk's own mail, whole
            assert (new / maildir_name("notice-1", raw)).read_bytes().endswith(raw)

        first = desks[0]
        with first.engine.begin() as conn:  # as if the worker died before marking it sent
            conn.execute(update(Notice).where(Notice.id == 1).values(state="pending"))
        assert first.workflow.deliver_notice(1) == "sent"
        assert _files(new) == files
    finally:
        for desk in desks:
            desk.close()
