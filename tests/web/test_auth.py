"""Signing in and out of the web desk: passwords, sessions, cookies, CSRF on the login form,
throttling, and the `abuse-desk users` command."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from abuse_desk.app.cli import main
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import ApiToken, User, WebSession
from abuse_desk.web import auth
from abuse_desk.web.app import create_app
from abuse_desk.web.base import COOKIE
from sqlalchemy import func, select
from starlette.testclient import TestClient

from tests.support import config_env
from tests.web.web_support import (
    PASSWORD,
    client_for,
    csrf_of,
    form_token,
    sign_in,
    signed_in,
)
from tests.workflow.workflow_support import Clock


def sessions(desk: Desk) -> int:
    with desk.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(WebSession)).scalar_one())


def login(client: TestClient, name: str, password: str,
          next_url: str = "/review") -> httpx.Response:
    page = client.get("/login")
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf": csrf_of(page.text), "next": next_url})


# ---- passwords and accounts ----------------------------------------------------------------

def test_passwords_are_stored_as_argon2id_hashes(desk: Desk) -> None:
    with desk.engine.connect() as conn:
        stored = conn.execute(select(User.password_hash).where(User.name == "sam")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_authenticate_accepts_the_right_password_only(desk: Desk) -> None:
    user = auth.authenticate(desk.engine, "sam", PASSWORD)
    assert user is not None and user.role == "specialist"
    assert auth.authenticate(desk.engine, "SAM ", PASSWORD) is not None  # names are lower-case
    assert auth.authenticate(desk.engine, "sam", PASSWORD + "x") is None
    assert auth.authenticate(desk.engine, "nobody", PASSWORD) is None
    assert auth.authenticate(desk.engine, "", "") is None


def test_account_rules(desk: Desk, clock: Clock) -> None:
    with pytest.raises(auth.AuthError, match="at least 10"):
        auth.add_user(desk.engine, "new", "specialist", "short", clock())
    with pytest.raises(auth.AuthError, match="role must be"):
        auth.add_user(desk.engine, "new", "admin", PASSWORD, clock())
    with pytest.raises(auth.AuthError, match="exists"):
        auth.add_user(desk.engine, "sam", "specialist", PASSWORD, clock())
    with pytest.raises(auth.AuthError, match="user name"):
        auth.add_user(desk.engine, "bad name<", "specialist", PASSWORD, clock())


def test_supervisor_can_do_what_a_specialist_can() -> None:
    sue, sam = auth.WebUser(1, "sue", "supervisor"), auth.WebUser(2, "sam", "specialist")
    assert sue.can("specialist") and sue.can("supervisor")
    assert sam.can("specialist") and not sam.can("supervisor")


# ---- the login form ------------------------------------------------------------------------

def test_anonymous_pages_redirect_to_login_keeping_the_target(desk: Desk) -> None:
    answer = client_for(desk).get("/account?tab=password")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/account%3Ftab%3Dpassword"


def test_login_sets_a_strict_httponly_cookie_and_goes_back(desk: Desk) -> None:
    client = client_for(desk)
    answer = login(client, "sam", PASSWORD, "/cases")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/cases"
    cookie = next(v for k, v in answer.headers.multi_items()
                  if k == "set-cookie" and v.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # web.cookie_secure is off on plain http
    assert sessions(desk) == 1
    token = client.cookies[COOKIE]
    with desk.engine.connect() as conn:
        stored = conn.execute(select(WebSession.id)).scalar_one()
    assert token != stored and token not in stored  # only the hash is kept


def test_secure_cookie_when_configured(tmp_path: Path, clock: Clock) -> None:
    from tests.web.web_support import USERS
    from tests.workflow.workflow_support import workflow_desk

    desk = workflow_desk(tmp_path, clock, web={"cookie_secure": True})
    auth.add_user(desk.engine, "sam", USERS["sam"], PASSWORD, clock())
    client = TestClient(create_app(desk.web), base_url="https://testserver",
                        follow_redirects=False)
    answer = login(client, "sam", PASSWORD)
    cookie = next(v for k, v in answer.headers.multi_items()
                  if k == "set-cookie" and v.startswith(f"{COOKIE}="))
    assert "Secure" in cookie


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)"])
def test_login_never_redirects_off_the_desk(desk: Desk, target: str) -> None:
    answer = login(client_for(desk), "sam", PASSWORD, target)
    assert answer.headers["location"] == "/review"


def test_wrong_password_is_refused_without_a_session(desk: Desk) -> None:
    client = client_for(desk)
    answer = login(client, "sam", "wrong password!")
    assert answer.status_code == 401
    assert "Wrong name or password" in answer.text
    assert COOKIE not in client.cookies
    assert sessions(desk) == 0


def test_login_form_needs_its_own_token(desk: Desk) -> None:
    client = client_for(desk)
    client.get("/login")
    answer = client.post("/login", data={"name": "sam", "password": PASSWORD, "csrf": "forged"})
    assert answer.status_code == 403
    other = client_for(desk)  # a token from someone else's form, without the cookie
    token = csrf_of(other.get("/login").text)
    fresh = client_for(desk)
    answer = fresh.post("/login", data={"name": "sam", "password": PASSWORD, "csrf": token})
    assert answer.status_code == 403
    assert sessions(desk) == 0


def test_a_new_session_at_every_login_no_fixation(desk: Desk) -> None:
    client = signed_in(desk, "sam")
    first = client.cookies[COOKIE]
    sign_in(client, "sue")
    second = client.cookies[COOKIE]
    assert first != second
    assert sessions(desk) == 1  # the old session ended
    planted = client_for(desk)
    planted.cookies.set(COOKIE, first)
    assert planted.get("/account").status_code == 303  # the old token is worth nothing


def test_logout_ends_the_session_on_the_server(desk: Desk) -> None:
    client = signed_in(desk, "sam")
    token = client.cookies[COOKIE]
    csrf = form_token(client, "/account")
    answer = client.post("/logout", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert sessions(desk) == 0
    replay = client_for(desk)
    replay.cookies.set(COOKIE, token)
    assert replay.get("/account").status_code == 303


def test_logout_needs_the_csrf_token(desk: Desk) -> None:
    client = signed_in(desk, "sam")
    assert client.post("/logout", data={}).status_code == 403
    assert sessions(desk) == 1


def test_sessions_expire_after_idle_hours(desk: Desk, clock: Clock) -> None:
    client = signed_in(desk, "sam")
    clock.now += timedelta(hours=11)
    assert client.get("/account").status_code == 200  # use moves the expiry on
    clock.now += timedelta(hours=11)
    assert client.get("/account").status_code == 200
    clock.now += timedelta(hours=12, minutes=1)
    assert client.get("/account").status_code == 303
    assert sessions(desk) == 0


def test_disabling_an_account_ends_its_sessions_and_tokens(desk: Desk, clock: Clock) -> None:
    client = signed_in(desk, "sam")
    auth.add_token(desk.engine, "sam", "script", clock())
    auth.set_disabled(desk.engine, "sam", True, desk.clock())
    assert client.get("/account").status_code == 303
    assert login(client_for(desk), "sam", PASSWORD).status_code == 401
    with desk.engine.connect() as conn:
        assert conn.execute(select(ApiToken.revoked_at)).scalar_one() is not None
    auth.set_disabled(desk.engine, "sam", False, desk.clock())
    assert login(client_for(desk), "sam", PASSWORD).status_code == 303


def test_too_many_failures_lock_the_account_for_the_window(desk: Desk) -> None:
    limit = desk.config.web.login_attempts
    client = client_for(desk)
    for _ in range(limit):
        assert login(client, "sam", "not the password").status_code == 401
    answer = login(client, "sam", PASSWORD)  # even the right password now
    assert answer.status_code == 429
    assert "Too many failed logins" in answer.text
    assert sessions(desk) == 0


def test_throttle_window_passes() -> None:
    now = [0.0]
    throttle = auth.LoginThrottle(2, 60.0, clock=lambda: now[0])
    throttle.failed("name:sam", "peer:1")
    throttle.failed("name:sam", "peer:1")
    assert throttle.blocked("name:sam")
    assert throttle.blocked("name:other", "peer:1")  # the address too
    now[0] = 61.0
    assert not throttle.blocked("name:sam", "peer:1")


def test_a_password_change_signs_the_user_out(desk: Desk) -> None:
    client = signed_in(desk, "sam")
    auth.set_password(desk.engine, "sam", "a brand new passphrase", desk.clock())
    assert client.get("/account").status_code == 303
    assert login(client_for(desk), "sam", "a brand new passphrase").status_code == 303


def test_pages_carry_security_headers(desk: Desk) -> None:
    answer = signed_in(desk, "sam").get("/account")
    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


# ---- `abuse-desk users` --------------------------------------------------------------------

def run(monkeypatch: pytest.MonkeyPatch, desk: Desk, *argv: str, stdin: str = "") -> int:
    for key, value in config_env(desk.config).items():
        if key.startswith("ABUSE_DESK_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def test_users_command(monkeypatch: pytest.MonkeyPatch, desk: Desk,
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run(monkeypatch, desk, "users", "add", "Nora", "--role", "supervisor",
               "--password-stdin", stdin="a long enough secret\n") == 0
    assert auth.authenticate(desk.engine, "nora", "a long enough secret") is not None
    capsys.readouterr()
    assert run(monkeypatch, desk, "users", "list", "--json") == 0
    listed = {u["name"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed["nora"]["role"] == "supervisor" and listed["sam"]["role"] == "specialist"
    assert run(monkeypatch, desk, "users", "role", "nora", "specialist") == 0
    assert auth.authenticate(desk.engine, "nora", "a long enough secret").role == "specialist"  # type: ignore[union-attr]
    assert run(monkeypatch, desk, "users", "token", "nora", "--label", "ci") == 0
    token = capsys.readouterr().out.strip()
    assert re.fullmatch(r"adk_[A-Za-z0-9_-]{40,}", token)
    assert auth.token_user(desk.engine, token, desk.clock()) is not None
    assert run(monkeypatch, desk, "users", "revoke-tokens", "nora") == 0
    assert auth.token_user(desk.engine, token, desk.clock()) is None
    # No terminal and no --password-stdin: a clear error, nothing made.
    assert run(monkeypatch, desk, "users", "add", "zed", "--role", "specialist") == 2
    assert "--password-stdin" in capsys.readouterr().err
    assert run(monkeypatch, desk, "users", "passwd", "ghost", "--password-stdin",
               stdin="a long enough secret\n") == 2
    assert "no user 'ghost'" in capsys.readouterr().err


def test_change_own_password(desk: Desk) -> None:
    client = signed_in(desk, "sam")
    csrf = form_token(client, "/account")
    wrong = client.post("/account/password", data={
        "csrf": csrf, "current": "not it at all", "new": "another long one", "again":
        "another long one"})
    assert wrong.status_code == 400 and "current password is not right" in wrong.text
    differ = client.post("/account/password", data={
        "csrf": csrf, "current": PASSWORD, "new": "another long one", "again": "different one"})
    assert differ.status_code == 400
    done = client.post("/account/password", data={
        "csrf": csrf, "current": PASSWORD, "new": "another long one", "again":
        "another long one"})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert auth.authenticate(desk.engine, "sam", "another long one") is not None
    assert auth.authenticate(desk.engine, "sam", PASSWORD) is None
    assert sessions(desk) == 0


def test_a_failure_on_our_side_is_the_desks_own_page_not_a_trace(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals: /srv/desk.db")

    monkeypatch.setattr("abuse_desk.web.dashboard.stats", broken)
    client = sign_in(TestClient(create_app(desk.web), follow_redirects=False,
                                raise_server_exceptions=False), "sam")
    page = client.get("/dashboard")
    assert page.status_code == 500
    assert 'role="alert"' in page.text and "try again" in page.text
    assert "secret internals" not in page.text and "Traceback" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]

    token = auth.add_token(desk.engine, "sam", "tool", clock())
    answer = client.get("/api/v1/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 500
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "try again" in answer.json()["error"]
    assert "secret internals" not in answer.text


# ---- lifetimes: sessions and API tokens ----------------------------------------------------

def api_status(desk: Desk, token: str) -> int:
    return client_for(desk).get("/api/v1/cases",
                                headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_session_used_every_hour_still_ends_at_its_absolute_lifetime(desk: Desk,
                                                                       clock: Clock) -> None:
    """The idle expiry slid with every request, so a session kept busy (a stolen cookie
    replayed by a script, a desk left open on a wall screen) never ended. It now ends
    web.session_max_hours after the login, however often it is used."""
    max_hours = desk.config.web.session_max_hours
    client = signed_in(desk, "sam")
    for _ in range(int(max_hours) - 1):
        clock.now += timedelta(hours=1)
        assert client.get("/account").status_code == 200
    clock.now += timedelta(hours=1)
    assert client.get("/account").status_code == 303
    assert sessions(desk) == 0
    assert login(client, "sam", PASSWORD).status_code == 303  # signing in again is a new one
    with desk.engine.connect() as conn:
        created, expires = conn.execute(select(WebSession.created_at,
                                               WebSession.expires_at)).one()
    assert expires - created == timedelta(hours=desk.config.web.session_hours)


def test_the_idle_expiry_never_passes_the_absolute_lifetime(tmp_path: Path,
                                                            clock: Clock) -> None:
    from tests.web.web_support import USERS
    from tests.workflow.workflow_support import workflow_desk

    desk = workflow_desk(tmp_path, clock, web={"session_hours": 12.0, "session_max_hours": 2.0})
    auth.add_user(desk.engine, "sam", USERS["sam"], PASSWORD, clock())
    client = signed_in(desk, "sam")
    with desk.engine.connect() as conn:
        created, expires = conn.execute(select(WebSession.created_at,
                                               WebSession.expires_at)).one()
    assert expires - created == timedelta(hours=2)
    clock.now += timedelta(hours=1, minutes=59)
    assert client.get("/account").status_code == 200
    clock.now += timedelta(minutes=1)
    assert client.get("/account").status_code == 303


def test_an_api_token_stops_working_after_its_expiry(desk: Desk, clock: Clock) -> None:
    """API tokens never expired: one copied into a script years ago still acted as its user.
    Now a token is valid web.api_token_days (90) from when it was made, checked against the
    desk's clock at every use."""
    made = clock()
    token = auth.add_token(desk.engine, "sam", "script", made)
    assert api_status(desk, token) == 200
    clock.now = made + timedelta(days=desk.config.web.api_token_days) - timedelta(seconds=1)
    assert api_status(desk, token) == 200
    clock.now += timedelta(seconds=1)
    assert api_status(desk, token) == 401
    assert auth.token_user(desk.engine, token, clock()) is None
    short = auth.add_token(desk.engine, "sam", "short", clock(), days=1)
    assert api_status(desk, short) == 200
    clock.now += timedelta(days=1)
    assert api_status(desk, short) == 401


def test_users_token_prints_its_expiry_and_takes_days(monkeypatch: pytest.MonkeyPatch,
                                                      desk: Desk, clock: Clock,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    capsys.readouterr()
    assert run(monkeypatch, desk, "users", "token", "sam", "--label", "ci", "--days", "7",
               "--now", "2026-12-01T09:00:00Z") == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert "valid until 2026-12-08T09:00:00Z" in out.err
    assert auth.token_user(desk.engine, token, datetime(2026, 12, 8, 8, 59, tzinfo=UTC))
    assert auth.token_user(desk.engine, token, datetime(2026, 12, 8, 9, 0, tzinfo=UTC)) is None
    assert run(monkeypatch, desk, "users", "token", "sam", "--now",
               "2026-12-01T09:00:00Z") == 0
    assert "valid until 2027-03-01T09:00:00Z" in capsys.readouterr().err  # 90 days
    for bad in ("0", "3651", "week"):
        with pytest.raises(SystemExit):
            run(monkeypatch, desk, "users", "token", "sam", "--days", bad)
        assert "days" in capsys.readouterr().err


def test_a_password_change_revokes_api_tokens(desk: Desk, clock: Clock,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A token made by whoever knew the old password outlived the password change. Now the
    change revokes the user's tokens: on the account page and with `users passwd`."""
    token = auth.add_token(desk.engine, "sam", "script", clock())
    other = auth.add_token(desk.engine, "sue", "script", clock())
    client = signed_in(desk, "sam")
    page = client.get("/account").text
    done = client.post("/account/password", data={
        "csrf": csrf_of(page), "current": PASSWORD, "new": "another long one", "again":
        "another long one"})
    assert done.status_code == 303
    assert api_status(desk, token) == 401
    assert api_status(desk, other) == 200  # someone else's are untouched
    assert "revokes your API tokens" in page  # and the page says so

    again = auth.add_token(desk.engine, "sam", "new script", clock())
    assert api_status(desk, again) == 200
    capsys.readouterr()
    assert run(monkeypatch, desk, "users", "passwd", "sam", "--password-stdin",
               stdin="yet another long one\n") == 0
    assert "1 API token(s) were revoked" in capsys.readouterr().err
    assert api_status(desk, again) == 401
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ApiToken).where(
            ApiToken.revoked_at.is_(None))).scalar_one() == 1  # sue's


def test_a_disabled_user_gets_no_new_token(desk: Desk, clock: Clock) -> None:
    auth.set_disabled(desk.engine, "sam", True, clock())
    with pytest.raises(auth.AuthError, match="disabled"):
        auth.add_token(desk.engine, "sam", "script", clock())


def test_tokens_made_before_the_upgrade_get_the_default_lifetime(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from abuse_desk.core.db import upgrade

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (id, name, role, password_hash, disabled, created_at) VALUES "
            "(1, 'sam', 'specialist', 'x', 0, '2026-01-01 00:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES "
            "(1, 1, 'old', 'h', '2026-01-01 00:00:00')"))
    upgrade(engine)
    with engine.connect() as conn:
        expires = conn.execute(select(ApiToken.expires_at)).scalar_one()
        unlocks = conn.execute(select(User.login_unlocks)).scalar_one()
    assert expires.replace(tzinfo=None) == datetime(2026, 4, 1)  # 90 days
    assert unlocks == 0
    engine.dispose()
