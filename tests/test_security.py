"""Secrets stay secret, and TLS is TLS.

Every flow that handles a secret runs with the log at DEBUG: signing in with the right
password, a wrong one and a password typed into the name field; a password change; API tokens
good and bad; `users add --password-stdin`; the self-service link; `notify.secret_key`; a
smarthost refusing our AUTH (also one that quotes what we sent). None of the secrets may
appear in a log record, a page, an API answer or an error a person sees; the same holds for the
stderr of a real `abuse-desk web` process. Then the TLS settings of the SMTP listener and of
the smarthost client: TLS 1.2 or newer, no weak ciphers, certificates and host names checked.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from abuse_desk.app.cli import main
from abuse_desk.app.wiring import Desk
from abuse_desk.core.config import ConfigError, SmtpConfig, build_config
from abuse_desk.core.logs import JsonFormatter, TextFormatter
from abuse_desk.ingest import smtp as smtp_module
from abuse_desk.web import auth
from abuse_desk.web.app import create_app
from abuse_desk.web.base import COOKIE
from abuse_desk.workflow import delivery
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.testclient import TestClient

from tests.support import config_env, desk_process, free_port
from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    deliver,
    notices_of,
    outbox,
    text_of,
    the_case,
    workflow_desk,
)

PASSWORD = "correct horse battery staple"
WRONG = "Wrong-Guess-Quokka-4417"
TYPED = "pa55word-typed-in-the-name-field"  # what people do: their password as the name
NEW_PASSWORD = "Brand-New-Passphrase-0091"
CLI_PASSWORD = "Cli-Stdin-Secret-7731"
SECRET_KEY = "notify-secret-key-c0ffee-5151"
SMARTHOST_USER, SMARTHOST_PASSWORD = "desk-relay", "Smarthost-Pa55-e7e7"
LINK = re.compile(r"https?://\S+/self-service/([A-Za-z0-9._-]+)")
# Loggers of the test's own tools, not of the desk: the test client (it logs the URLs it asks
# for, self-service tokens included) and the fake smarthost (it logs the AUTH line it got).
NOT_THE_DESK = ("httpx", "httpx2", "httpcore", "mail.log")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record of the desk, as the text and the JSON formatter write it (context fields
    and tracebacks included)."""
    lines = []
    for record in caplog.records:
        if record.name.split(".")[0] in NOT_THE_DESK:
            continue
        lines += [TextFormatter().format(record), JsonFormatter().format(record)]
    return "\n".join(lines)


def assert_absent(secrets: dict[str, str], **texts: str) -> None:
    for where, text in texts.items():
        for what, secret in secrets.items():
            assert secret.lower() not in text.lower(), f"{what} found in {where}"


def self_service_token(desk: Desk) -> str:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    (mail,) = [m for m in outbox(desk) if m["Message-ID"].startswith(f"<{case.reference}.")]
    match = LINK.search(text_of(mail))
    assert match is not None
    return match.group(1)


def web_login(client: Any, name: str, password: str) -> Any:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf": csrf.group(1), "next": "/review"})


# ---- the web desk, in this process ---------------------------------------------------------

def test_web_flows_keep_their_secrets_out_of_the_log_and_the_pages(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(START)
    desk = workflow_desk(tmp_path, clock, notify={"secret_key": SECRET_KEY})
    auth.add_user(desk.engine, "sam", "specialist", PASSWORD, clock())
    caplog.set_level(logging.DEBUG)
    link_token = self_service_token(desk)
    pages: list[str] = []

    def page(answer: Any) -> Any:
        pages.append(answer.text + "\n" + "\n".join(
            v for k, v in answer.headers.items() if k.lower() != "set-cookie"))
        return answer

    app = create_app(desk.web)
    sam = TestClient(app, follow_redirects=False)
    assert page(web_login(sam, "sam", PASSWORD)).status_code == 303
    session_token = sam.cookies[COOKIE]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page(sam.get("/account")).text)
    assert csrf is not None
    stranger = TestClient(app, follow_redirects=False, client=("203.0.113.7", 1))
    assert page(web_login(stranger, "sam", WRONG)).status_code == 401
    typo = TestClient(app, follow_redirects=False, client=("203.0.113.8", 1))
    typed = web_login(typo, TYPED, PASSWORD)  # the page shows the name back: not logged
    assert typed.status_code == 401
    wrong_current = sam.post("/account/password", data={
        "csrf": csrf.group(1), "current": WRONG, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert page(wrong_current).status_code == 400
    changed = sam.post("/account/password", data={
        "csrf": csrf.group(1), "current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert page(changed).status_code == 303

    api_token = auth.add_token(desk.engine, "sam", "ci", clock())
    api = TestClient(app)
    assert page(api.get("/api/v1/cases", headers={
        "Authorization": f"Bearer {api_token}"})).status_code == 200
    assert page(api.get("/api/v1/cases", headers={
        "Authorization": f"Bearer {api_token}x"})).status_code == 401
    auth.revoke_tokens(desk.engine, "sam", None, clock())
    assert page(api.get("/api/v1/cases", headers={
        "Authorization": f"Bearer {api_token}"})).status_code == 401

    customer = TestClient(app)
    assert customer.get(f"/self-service/{link_token}").status_code == 200
    assert customer.post(f"/self-service/{link_token}",
                         data={"answer": "cleaned"}).status_code == 200
    number, expiry, mac = link_token.split(".")
    assert page(customer.get(f"/self-service/{number}.{expiry}.{mac[::-1]}")).status_code == 403

    log_text = logged(caplog)
    assert "failed login for 'sam' from 203.0.113.7" in log_text  # the log was listening
    assert "failed login for an unknown name from 203.0.113.8" in log_text
    secrets = {"password": PASSWORD, "wrong password": WRONG, "typed password": TYPED,
               "new password": NEW_PASSWORD, "session token": session_token,
               "CSRF token": csrf.group(1), "API token": api_token,
               "self-service token": link_token, "its MAC": mac,
               "notify.secret_key": SECRET_KEY}
    assert_absent(secrets, log=log_text)
    assert_absent({k: v for k, v in secrets.items()
                   if k not in ("CSRF token", "self-service token", "its MAC")},
                  pages="\n".join(pages))


def test_users_add_with_password_stdin_neither_echoes_nor_logs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    desk = workflow_desk(tmp_path, Clock(START), log={"level": "DEBUG"})
    for key, value in config_env(desk.config).items():
        if key.startswith("ABUSE_DESK_"):
            monkeypatch.setenv(key, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO(CLI_PASSWORD + "\n"))
        assert main(["users", "add", "nora", "--role", "specialist", "--password-stdin"]) == 0
        monkeypatch.setattr("sys.stdin", io.StringIO("short-1\n"))  # too short: refused
        assert main(["users", "passwd", "nora", "--password-stdin"]) == 2
        monkeypatch.setattr("sys.stdin", io.StringIO(CLI_PASSWORD + "\n"))
        assert main(["users", "add", "nora", "--role", "specialist", "--password-stdin"]) == 2
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    assert "user nora (specialist) added" in err and "at least 10" in err
    assert_absent({"password": CLI_PASSWORD, "refused password": "short-1"}, stdout=out,
                  stderr=err)
    assert auth.authenticate(desk.engine, "nora", CLI_PASSWORD) is not None


@pytest.mark.parametrize("key", ["NOTIFY__SMARTHOST_PASSWORD", "NOTIFY__SECRET_KEY"])
def test_a_secret_that_looks_like_a_number_is_taken_as_it_is(key: str) -> None:
    secret = "20261129073311"
    config = build_config({}, "test", env={f"ABUSE_DESK_{key}": secret})
    section, name = key.lower().split("__")
    assert getattr(getattr(config, section), name) == secret


def test_a_secret_of_the_wrong_type_in_a_file_is_not_shown_in_the_error() -> None:
    with pytest.raises(ConfigError, match="not shown") as refused:
        build_config({"notify": {"smarthost_password": 20261129073311}}, "prod.toml")
    assert "20261129073311" not in str(refused.value)
    assert "prod.toml: notify.smarthost_password" in str(refused.value)


# ---- the smarthost ---------------------------------------------------------------------------

@dataclass
class Refuser:
    """A smarthost's AUTH that refuses everyone; *quote* echoes what the client sent."""

    quote: bool = False
    seen: list[str] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.seen.append(login)
        if self.quote:
            said = b64(f"\0{login}\0{password}")
            return AuthResult(success=False, handled=False, message=(
                f"535 5.7.8 rejected {said} ({b64(password)}) for {login}:{password}"))
        return AuthResult(success=False, handled=False)


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok"


@pytest.fixture
def smarthost() -> Iterator[Any]:
    controllers: list[Controller] = []

    def start(refuser: Refuser) -> int:
        port = free_port()
        controller = Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=refuser,
                                auth_require_tls=False)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def test_a_refused_smarthost_login_keeps_the_password_out_of_log_case_page_and_api(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, smarthost: Any) -> None:
    refuser = Refuser()
    port = smarthost(refuser)
    clock = Clock(START)
    desk = workflow_desk(tmp_path, clock, notify={
        "transport": "smtp", "smarthost_host": "127.0.0.1", "smarthost_port": port,
        "smarthost_starttls": False, "smarthost_username": SMARTHOST_USER,
        "smarthost_password": SMARTHOST_PASSWORD, "max_attempts": 1})
    auth.add_user(desk.engine, "sue", "supervisor", PASSWORD, clock())
    caplog.set_level(logging.DEBUG)
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    assert set(refuser.seen) == {SMARTHOST_USER}  # smtplib tries PLAIN, then LOGIN
    (notice,) = notices_of(desk, case.id)
    assert notice.state == "failed" and "notify.smarthost_password" in notice.error

    client = TestClient(create_app(desk.web), follow_redirects=False)
    web_login(client, "sue", PASSWORD)
    shown = client.get(f"/cases/{case.reference}")
    assert shown.status_code == 200 and "notify.smarthost_username" in shown.text
    token = auth.add_token(desk.engine, "sue", "ci", clock())
    answer = client.get(f"/api/v1/cases/{case.reference}",
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    log_text = logged(caplog)
    assert "notify.smarthost_username" in log_text  # the failure was logged ...
    secrets = {"password": SMARTHOST_PASSWORD, "password in base64": b64(SMARTHOST_PASSWORD),
               "AUTH PLAIN": b64(f"\0{SMARTHOST_USER}\0{SMARTHOST_PASSWORD}")}
    assert_absent(secrets, log=log_text, page=shown.text, api=answer.text)  # ... without it


def test_a_smarthost_quoting_our_credentials_in_its_refusal(smarthost: Any) -> None:
    port = smarthost(Refuser(quote=True))
    transport = delivery.SmtpTransport("127.0.0.1", port, starttls=False,
                                       username=SMARTHOST_USER, password=SMARTHOST_PASSWORD,
                                       timeout_s=10.0)
    with pytest.raises(delivery.DeliveryError) as caught:
        transport.send(mail_from="abuse@example.net", to="c@example.org", raw=b"x\r\n",
                       key="notice-1")
    text = str(caught.value)
    assert "535" in text and "rejected ***" in text
    assert_absent({"password": SMARTHOST_PASSWORD, "password in base64": b64(SMARTHOST_PASSWORD),
                   "AUTH PLAIN": b64(f"\0{SMARTHOST_USER}\0{SMARTHOST_PASSWORD}")},
                  error=text, repr=repr(transport), cause=repr(caught.value.__cause__))


def test_a_password_smtplib_cannot_send_is_a_delivery_error(smarthost: Any) -> None:
    port = smarthost(Refuser())
    transport = delivery.SmtpTransport("127.0.0.1", port, starttls=False,
                                       username=SMARTHOST_USER, password="pässwörd-Ünicode",
                                       timeout_s=10.0)
    with pytest.raises(delivery.DeliveryError) as caught:
        transport.send(mail_from="abuse@example.net", to="c@example.org", raw=b"x\r\n",
                       key="notice-1")
    assert caught.value.permanent is False and "not ASCII" in str(caught.value)
    assert "pässwörd" not in str(caught.value) and caught.value.__cause__ is None


# ---- a real `abuse-desk web` process -------------------------------------------------------

def test_the_web_process_at_debug_logs_no_secret(tmp_path: Path) -> None:
    clock = Clock(START)
    desk = workflow_desk(tmp_path, clock, log={"level": "DEBUG"}, notify={
        "secret_key": SECRET_KEY, "smarthost_username": SMARTHOST_USER,
        "smarthost_password": SMARTHOST_PASSWORD})
    auth.add_user(desk.engine, "sam", "specialist", PASSWORD, clock())
    link_token = self_service_token(desk)
    api_token = auth.add_token(desk.engine, "sam", "ci", clock())
    log = tmp_path / "web.log"
    port = desk.config.web.port
    with desk_process(desk.config, "web", log=log, wait=port), httpx.Client(
            base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=30) as client:
        assert web_login(client, "sam", WRONG).status_code == 401
        assert web_login(client, TYPED, PASSWORD).status_code == 401
        assert web_login(client, "sam", PASSWORD).status_code == 303
        session_token = client.cookies[COOKIE]
        assert client.get("/account").status_code == 200
        bearer = {"Authorization": f"Bearer {api_token}"}
        assert client.get("/api/v1/cases", headers=bearer).status_code == 200
        assert client.get("/api/v1/cases", headers={
            "Authorization": f"Bearer {api_token}x"}).status_code == 401
        assert client.get(f"/self-service/{link_token}").status_code == 200
        assert client.post(f"/self-service/{link_token}",
                           data={"answer": "cleaned"}).status_code == 200
    text = log.read_text(errors="replace")
    assert "sam signed in from 127.0.0.1" in text and "failed login for 'sam'" in text
    assert_absent({"password": PASSWORD, "wrong password": WRONG, "typed password": TYPED,
                   "session token": session_token, "API token": api_token,
                   "self-service token": link_token, "notify.secret_key": SECRET_KEY,
                   "smarthost password": SMARTHOST_PASSWORD}, stderr=text)


# ---- TLS -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Self-signed certificates: ``local`` for 127.0.0.1 and localhost, ``other`` for
    other.example only (made by openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    made: dict[str, tuple[Path, Path]] = {}
    for name, san in (("local", "DNS:localhost,IP:127.0.0.1"), ("other", "DNS:other.example")):
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        try:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", f"/CN={san.split(',')[0][4:]}", "-addext", f"subjectAltName={san}",
                 "-keyout", str(key), "-out", str(cert)],
                check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot make a test certificate with openssl: {exc}")
        made[name] = (cert, key)
    return made


WEAK = re.compile(r"NULL|EXPORT|RC4|DES|MD5|anon|PSK|SRP|IDEA|SEED", re.I)


def test_the_smtp_listener_offers_tls_1_2_or_newer_and_strong_ciphers(
        certs: dict[str, tuple[Path, Path]]) -> None:
    assert smtp_module.tls_context(SmtpConfig()) is None  # no certificate: no STARTTLS
    cert, key = certs["local"]
    context = smtp_module.tls_context(SmtpConfig(tls_cert=str(cert), tls_key=str(key)))
    assert context is not None
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION  # CRIME
    assert not [c["name"] for c in context.get_ciphers() if WEAK.search(c["name"])]
    assert context.verify_mode == ssl.CERT_NONE  # reporters' MTAs send no client certificate


def test_the_smarthost_client_checks_certificates_and_names_with_tls_1_2_or_newer() -> None:
    context = delivery.smarthost_tls_context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert not [c["name"] for c in context.get_ciphers() if WEAK.search(c["name"])]


@pytest.mark.parametrize(("cert_name", "delivered"), [("local", True), ("other", False)])
def test_the_smarthost_name_must_match_its_certificate(
        certs: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch, cert_name: str,
        delivered: bool) -> None:
    """With no tls_context given (as `make_transport` builds it), the system's trust store is
    used (here: our certificate, through SSL_CERT_FILE) and the host name is checked."""
    cert, key = certs[cert_name]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, tls_context=server_context,
                            require_starttls=True)
    controller.start()
    used: list[ssl.SSLContext] = []
    real = delivery._SMTP.starttls

    def starttls(self: Any, *args: Any, **kwargs: Any) -> Any:
        used.append(kwargs["context"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(delivery._SMTP, "starttls", starttls)
    try:
        transport = delivery.SmtpTransport("127.0.0.1", port, starttls=True, timeout_s=10.0)
        if delivered:
            receipt = transport.send(mail_from="abuse@example.net", to="c@example.org",
                                     raw=b"Subject: x\r\n\r\nx\r\n", key="notice-1")
            assert receipt.startswith("250")
        else:
            with pytest.raises(delivery.DeliveryError) as caught:
                transport.send(mail_from="abuse@example.net", to="c@example.org",
                               raw=b"Subject: x\r\n\r\nx\r\n", key="notice-1")
            assert caught.value.permanent is False
            assert "certificate" in str(caught.value).lower()
    finally:
        controller.stop()
    (context,) = used
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2 and context.check_hostname
