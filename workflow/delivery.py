"""How customer notices leave the desk: a Maildir folder or an SMTP smarthost.

A :class:`Transport` takes one complete RFC 5322 message and a stable key naming the notice, and
either returns a short receipt or raises :class:`DeliveryError`. The caller keeps the notice and
retries temporary failures after :func:`retry_delay`; a permanent one (a 5xx answer to the
notice itself) is not retried.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import secrets
import smtplib
import ssl
from pathlib import Path
from typing import Any, Protocol

from ..core.config import ConfigError, NotifyConfig

_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
# Maildir readers append ":2,FLAGS" (or "!2,FLAGS" where ':' is not allowed) when moving to cur/.
_INFO_SEPARATORS = (":", "!")


class DeliveryError(Exception):
    """A notice could not be delivered; permanent=True for a 5xx answer (do not retry)."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class Transport(Protocol):
    """Sends one notice. ``send`` returns a short receipt or raises :class:`DeliveryError`.

    *raw* is the complete message with CRLF line ends; *key* a stable name for the notice within
    its desk (``notice-42``): sending the same notice twice does not make two mails where the
    transport can guarantee that.
    """

    name: str

    def send(self, *, mail_from: str, to: str, raw: bytes, key: str) -> str: ...


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(
            f"notice key {key!r} is not a file name: use 1-200 of A-Z a-z 0-9 . _ -, "
            "not starting with '.'")
    return key


class MaildirTransport:
    """Writes each notice as ``new/<key>-<id>.eml`` in a Maildir (tmp/, new/, cur/, made mode
    0o700), with the envelope sender as its first line, ``Return-Path: <mail_from>`` (as a
    delivering MTA writes it: whatever relays the file on must send it from there, the notice's
    VERP address, so that its bounces come back matched to it).

    The name is unique across desks and processes (:func:`maildir_name`): ``<id>`` is 16 hex
    digits of the SHA-256 of the notice's Message-ID, which carries a random token of its own
    (of the whole message when it has none). Two desks writing notice 1 to one folder write two
    files (the key alone, ``notice-1.eml``, let the second overwrite the first).

    Idempotent by notice: the message is written to ``tmp/``, fsynced, and renamed over
    ``new/<name>`` (then ``new/`` is fsynced), so a second send of the same notice (same key,
    same Message-ID) replaces the first file: one mail, not two. A Maildir reader may already
    have moved ``new/<name>`` to ``cur/<name>:2,FLAGS``; such a file in ``cur/`` counts as
    delivered and the send does nothing. (A reader moving the file between that check and the
    rename can still see it twice.) OSErrors (disk full, permissions) are temporary
    :class:`DeliveryError`.
    """

    name = "maildir"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(path))

    def __repr__(self) -> str:
        return f"MaildirTransport({str(self.path)!r})"

    def send(self, *, mail_from: str, to: str, raw: bytes, key: str) -> str:
        """Deliver *raw* as ``new/<key>-<id>.eml`` (:func:`maildir_name`), after a
        ``Return-Path:`` line naming *mail_from* (the recipient is not recorded)."""
        name = maildir_name(key, raw, mail_from)
        if any(c in mail_from for c in "\r\n<>"):
            raise ValueError(f"address {mail_from!r} contains CR, LF, '<' or '>'")
        try:
            return self._deliver(name, b"Return-Path: <" + mail_from.encode() + b">\r\n" + raw)
        except OSError as exc:
            raise DeliveryError(f"maildir {self.path}: cannot deliver {name}: {exc}",
                                permanent=False) from exc

    def _deliver(self, name: str, raw: bytes) -> str:
        tmp, new, cur = self.path / "tmp", self.path / "new", self.path / "cur"
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in (tmp, new, cur):
            sub.mkdir(mode=0o700, exist_ok=True)
        seen = self._in_cur(cur, name)
        if seen is not None:
            return f"maildir cur/{seen} (already delivered)"
        staging = tmp / f"{name[:-4]}.{os.getpid()}.{secrets.token_hex(8)}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(staging, new / name)
        except BaseException:
            try:
                staging.unlink()
            except OSError:
                pass
            raise
        _fsync_dir(new)
        return f"maildir new/{name}"

    @staticmethod
    def _in_cur(cur: Path, name: str) -> str | None:
        for entry in os.scandir(cur):
            if entry.name == name or any(
                    entry.name.startswith(name + sep) for sep in _INFO_SEPARATORS):
                return entry.name
        return None


def maildir_name(key: str, raw: bytes, mail_from: str = "") -> str:
    """The outbox file name of the notice *key* whose message is *raw*: ``<key>-<16 hex>.eml``,
    the hex from its Message-ID (random per notice: unique across desks sharing a folder, and
    the same each time the notice is sent), or from *mail_from* and the whole message when it
    has no Message-ID."""
    message_id = _message_id(raw)
    digest = hashlib.sha256(message_id if message_id else
                            mail_from.encode("utf-8", "replace") + b"\0" + raw).hexdigest()
    return f"{_check_key(key)}-{digest[:16]}.eml"


def _message_id(raw: bytes) -> bytes | None:
    """The Message-ID field's value of *raw*'s header block (unfolded, stripped), or None."""
    value: bytearray | None = None
    for line in raw.split(b"\n", 1000):
        line = line.rstrip(b"\r")
        if not line:
            break  # the end of the header block
        if line[:1] in (b" ", b"\t"):
            if value is not None:  # a folded continuation of the Message-ID
                value += line
            continue
        if value is not None:
            break
        name, colon, rest = line.partition(b":")
        if colon and name.strip().lower() == b"message-id":
            value = bytearray(rest)
    found = bytes(value).strip() if value is not None else b""
    return found or None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that keeps the server's final answer to DATA (sendmail drops it)."""

    data_reply: tuple[int, bytes] | None = None

    def data(self, msg: Any) -> tuple[int, bytes]:
        reply: tuple[int, bytes] = super().data(msg)
        self.data_reply = reply
        return reply


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    smtp.close()


def smarthost_tls_context() -> ssl.SSLContext:
    """The client side of STARTTLS to the smarthost: the system's trust store, the certificate
    checked against the host name, TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = max(context.minimum_version, ssl.TLSVersion.TLSv1_2)
    return context


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]


class SmtpTransport:
    """Sends each notice through a smarthost over SMTP submission, one connection per send.

    Plain SMTP on *port* (587 or 25), upgraded with STARTTLS when *starttls* is true: then
    STARTTLS is required and a smarthost that does not offer it is a temporary failure, never a
    send in clear. The certificate is checked against *host* with *tls_context* (default:
    :func:`smarthost_tls_context`, the system's trust store and TLS 1.2 or newer). Implicit
    TLS (SMTPS, port 465) is not supported. With a *username*, AUTH is done (no username: no
    AUTH).

    Classification: only the answers to MAIL, RCPT and DATA concern the notice; there 5xx is
    permanent, anything else temporary. Failures before MAIL (connection, timeout, TLS, greeting,
    EHLO, STARTTLS, AUTH) are temporary: the notice is fine and goes once the smarthost or our
    configuration is. A refused login (535 ...) is therefore temporary, with a message pointing
    at notify.smarthost_username/smarthost_password. The password never appears in an error.

    At-least-once, not at-most-once: a crash between the server's 250 and the caller's
    bookkeeping sends the notice again; its Message-ID stays the same, so receivers can dedupe.
    *key* is not used by this transport.
    """

    name = "smtp"

    def __init__(self, host: str, port: int, *, starttls: bool, username: str = "",
                 password: str = "", timeout_s: float = 30.0, helo: str | None = None,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self.helo = helo
        self._tls_context = tls_context

    def __repr__(self) -> str:
        return (f"SmtpTransport({self.host!r}, {self.port}, starttls={self.starttls}, "
                f"username={self.username!r})")

    def _error(self, what: str, *, permanent: bool = False,
               code: int | None = None) -> DeliveryError:
        message = f"smarthost {self.host}:{self.port}: {what}"
        if self._password:
            # The password as typed, and as AUTH LOGIN and AUTH PLAIN sent it (a server that
            # quotes the client's line in its refusal would otherwise put it in our log).
            for secret in (_b64(f"\0{self.username}\0{self._password}"),
                           _b64(self._password), self._password):  # the longest first
                message = message.replace(secret, "***")
        return DeliveryError(message, permanent=permanent, code=code)

    def send(self, *, mail_from: str, to: str, raw: bytes, key: str) -> str:
        """Send *raw* from *mail_from* to *to*; returns the server's answer to DATA."""
        for address in (mail_from, to):
            if any(c in address for c in "\r\n<>"):
                raise ValueError(f"address {address!r} contains CR, LF, '<' or '>'")
        smtp = self._open()
        try:
            return self._transact(smtp, mail_from, to, raw)
        finally:
            _close(smtp)

    def _open(self) -> _SMTP:
        """Connect, greet, STARTTLS and log in; every failure here is temporary."""
        try:
            # The host goes to the constructor: smtplib checks the certificate against it.
            smtp = _SMTP(self.host, self.port, local_hostname=self.helo, timeout=self.timeout_s)
        except smtplib.SMTPResponseException as exc:  # SMTPConnectError: greeting not 220
            raise self._error(f"greeting refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                              code=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(f"cannot connect: {type(exc).__name__}: {exc}") from exc
        try:
            self._hello(smtp)
            if self.starttls:
                if not smtp.has_extn("starttls"):
                    raise self._error("smarthost does not offer STARTTLS; refusing to send in "
                                      "clear (notify.smarthost_starttls is true)")
                smtp.starttls(context=self._tls_context or smarthost_tls_context())
                self._hello(smtp)
            if self.username:
                self._login(smtp)
        except DeliveryError:
            _close(smtp)
            raise
        except smtplib.SMTPResponseException as exc:
            _close(smtp)
            raise self._error(f"{exc.smtp_code} {_text(exc.smtp_error)}",
                              code=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts included
            _close(smtp)
            raise self._error(f"TLS or connection failure: {type(exc).__name__}: {exc}") from exc
        return smtp

    def _hello(self, smtp: _SMTP) -> None:
        code, reply = smtp.ehlo()
        if code != 250:
            code, reply = smtp.helo()
            if code != 250:
                raise self._error(f"EHLO/HELO refused: {code} {_text(reply)}", code=code)

    def _login(self, smtp: _SMTP) -> None:
        hint = "check notify.smarthost_username and notify.smarthost_password"
        code: int | None = None
        try:
            smtp.login(self.username, self._password)
            return
        except smtplib.SMTPResponseException as exc:  # SMTPAuthenticationError: 535 and others
            code = exc.smtp_code
            what = f"login as {self.username!r} refused: {code} {_text(exc.smtp_error)}"
        except smtplib.SMTPException as exc:  # no AUTH offered, no usable mechanism
            what = f"cannot log in as {self.username!r}: {_text(str(exc))}"
        except OSError as exc:
            what = f"connection lost during login: {type(exc).__name__}"
        except UnicodeError:  # smtplib encodes AUTH as ASCII: not a crash, and no part of it
            what = (f"cannot log in as {self.username!r}: the user name or the password is not "
                    "ASCII, and smtplib sends them in ASCII")
        # from None: the chained smtplib exception must not carry anything of the credentials.
        raise self._error(f"{what}; {hint}", code=code) from None

    def _transact(self, smtp: _SMTP, mail_from: str, to: str, raw: bytes) -> str:
        options: list[str] = []
        if not raw.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (mail_from + to).isascii():
            if not smtp.has_extn("smtputf8"):
                raise self._error(f"cannot send to {to!r}: non-ASCII address and the smarthost "
                                  "does not offer SMTPUTF8", permanent=True)
            options.append("SMTPUTF8")
        try:
            smtp.sendmail(mail_from, [to], raw, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (-1, b"refused"))
            raise self._error(f"RCPT TO <{to}> refused: {code} {_text(reply)}",
                              permanent=500 <= code < 600, code=code) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise self._error(f"MAIL FROM <{mail_from}> refused: {exc.smtp_code} "
                              f"{_text(exc.smtp_error)}",
                              permanent=500 <= exc.smtp_code < 600, code=exc.smtp_code) from exc
        except smtplib.SMTPResponseException as exc:  # SMTPDataError and the rest
            raise self._error(f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                              permanent=500 <= exc.smtp_code < 600, code=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, TLS errors
            raise self._error(
                f"failed during the transaction: {type(exc).__name__}: {exc}") from exc
        code, reply = smtp.data_reply or (250, b"")
        return f"{code} {_text(reply)}".strip()


def make_transport(notify: NotifyConfig, hostname: str) -> Transport:
    """The transport *notify* configures; *hostname* (smtp.hostname) is our EHLO name."""
    if notify.transport == "maildir":
        return MaildirTransport(notify.maildir)
    if notify.transport == "smtp":
        if not notify.smarthost_host:
            raise ConfigError(
                'notify.transport is "smtp" but notify.smarthost_host is empty: set it (e.g. '
                "ABUSE_DESK_NOTIFY__SMARTHOST_HOST=mail.example.net) or use "
                'transport = "maildir"')
        return SmtpTransport(
            notify.smarthost_host, notify.smarthost_port, starttls=notify.smarthost_starttls,
            username=notify.smarthost_username, password=notify.smarthost_password,
            timeout_s=notify.smarthost_timeout_s, helo=hostname or None)
    raise ConfigError(f"notify.transport: {notify.transport!r} is not maildir or smtp")


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after *attempts* failed attempts: ``base_s * 2**(attempts-1)`` capped at
    *max_s*, less up to 10% random jitter (so never above *max_s*); 0 for attempts <= 0."""
    if attempts <= 0:
        return 0.0
    delay = min(base_s * 2.0 ** min(attempts - 1, 60), max_s)
    return delay * (1.0 - random.uniform(0.0, 0.1))
