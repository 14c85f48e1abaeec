"""Security of the web desk beyond test_auth.py and test_authorization.py: the login form's own
cookie, a planted session cookie, the login throttle against many names, an attacker elsewhere
guessing a real user's password, a spread-out attack on one account, an IPv6 network, parallel
attempts, a spray of names and a client-sent X-Forwarded-For (through the server the runner
starts), guessing a password through the password change form, a supervisor's unlock; framing
of every answer; and the customer's self-service link: no CSRF token (and why), what it may do
to an escalated, restricted, closed or terminated case, another case, and how its MAC is
compared."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from abuse_desk.app import runner
from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc, write_transaction
from abuse_desk.core.models import Case, Event, WebSession
from abuse_desk.web import auth
from abuse_desk.web.app import create_app
from abuse_desk.web.base import COOKIE, PRE_COOKIE
from abuse_desk.workflow import cases, tokens
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.support import make_config
from tests.web.web_support import PASSWORD, USERS, client_for, csrf_of, form_token, signed_in
from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    outbox,
    person,
    steps_of,
    text_of,
    the_case,
    workflow_desk,
)

LINK = re.compile(r"https?://\S+/self-service/([A-Za-z0-9._-]+)")


def set_cookies(answer: httpx.Response) -> dict[str, list[str]]:
    """The Set-Cookie headers of *answer* by cookie name, each as its lower-cased attributes
    (the first item is ``name=value`` as sent)."""
    found: dict[str, list[str]] = {}
    for key, value in answer.headers.multi_items():
        if key.lower() == "set-cookie":
            parts = [p.strip() for p in value.split(";")]
            found[parts[0].split("=", 1)[0]] = [parts[0]] + [p.lower() for p in parts[1:]]
    return found


def login(client: TestClient, name: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf": csrf_of(page.text), "next": "/review"})


def peer(app: Starlette, host: str) -> TestClient:
    """A browser at *host*, on *app* (one app: one login throttle)."""
    return TestClient(app, follow_redirects=False, client=(host, 40000))


# ---- sessions ------------------------------------------------------------------------------

@pytest.mark.parametrize("secure", [False, True])
def test_the_login_forms_cookie_is_strict_httponly_and_for_the_login_only(
        tmp_path: Path, clock: Clock, secure: bool) -> None:
    desk = workflow_desk(tmp_path, clock, web={"cookie_secure": secure})
    client = TestClient(create_app(desk.web), follow_redirects=False,
                        base_url="https://testserver" if secure else "http://testserver")
    page = client.get("/login")
    first, *attributes = set_cookies(page)[PRE_COOKIE]
    assert "httponly" in attributes and "samesite=strict" in attributes
    assert "path=/login" in attributes  # not sent to any other page
    assert ("secure" in attributes) is secure
    assert first.split("=", 1)[1] == csrf_of(page.text)  # double submit: form and cookie agree


def test_a_cookie_planted_before_login_is_not_the_session_after(desk: Desk) -> None:
    planted = "chosen-by-someone-else-0123456789abcdef"
    client = client_for(desk)
    client.cookies.set(COOKIE, planted)
    answer = login(client, "sam", PASSWORD)
    assert answer.status_code == 303
    value = set_cookies(answer)[COOKIE][0].split("=", 1)[1]
    assert value and value != planted
    with desk.engine.connect() as conn:
        stored = list(conn.execute(select(WebSession.id)).scalars())
    assert stored == [hashlib.sha256(value.encode()).hexdigest()]
    assert hashlib.sha256(planted.encode()).hexdigest() not in stored


def test_logout_is_a_post_and_clears_the_cookie(desk: Desk) -> None:
    client = signed_in(desk, "sam")
    # A link or an image on another site cannot sign anyone out.
    assert client.get("/logout").status_code == 405
    assert client.get("/account").status_code == 200
    answer = client.post("/logout", data={"csrf": form_token(client, "/account")})
    assert answer.status_code == 303
    first, *attributes = set_cookies(answer)[COOKIE]
    assert first in (f"{COOKIE}=", f'{COOKIE}=""')
    assert "max-age=0" in attributes and "path=/" in attributes


def test_a_page_csrf_token_in_the_header_must_be_right_too(desk: Desk) -> None:
    sue = signed_in(desk, "sue")
    answer = sue.post("/account/password", data={"current": PASSWORD, "new": "x" * 12,
                                                 "again": "x" * 12},
                      headers={"X-CSRF-Token": "forged"})
    assert answer.status_code == 403 and "CSRF" in answer.text
    assert auth.authenticate(desk.engine, "sue", PASSWORD) is not None


# ---- the login throttle --------------------------------------------------------------------

def test_one_address_is_throttled_across_many_names(desk: Desk) -> None:
    limit = desk.config.web.login_attempts_per_address
    app = create_app(desk.web)
    sprayer = peer(app, "203.0.113.7")
    for n in range(limit):
        assert login(sprayer, f"guess{n}", "not the password").status_code == 401
    answer = login(sprayer, "sue", PASSWORD)  # an account it never tried, the right password
    assert answer.status_code == 429 and "Too many failed logins" in answer.text
    assert login(peer(app, "198.51.100.9"), "sue", PASSWORD).status_code == 303


def test_wrong_passwords_from_another_address_do_not_lock_out_the_real_user(
        desk: Desk) -> None:
    """Five wrong passwords for an account used to lock it for everyone, from anywhere: an
    attacker anywhere on the Internet could keep a specialist out of the desk. Now they refuse
    the account from the attacker's address only."""
    limit = desk.config.web.login_attempts
    app = create_app(desk.web)
    attacker = peer(app, "203.0.113.7")
    for _ in range(limit):
        assert login(attacker, "sam", "not the password").status_code == 401
    assert login(attacker, "sam", PASSWORD).status_code == 429  # the attacker is stopped
    for _ in range(3):  # and stays stopped while it keeps trying
        assert login(attacker, "sam", "still guessing").status_code == 429
    assert login(peer(app, "198.51.100.9"), "sam", PASSWORD).status_code == 303  # sam is not


def test_a_spread_out_attack_on_one_account_is_stopped_but_its_owner_gets_in(
        tmp_path: Path, clock: Clock) -> None:
    """A botnet guessing one password from many addresses: past
    web.login_attempts_per_account failures the account is refused from addresses it has not
    signed in from; its owner, at an address they signed in from, still gets in."""
    desk = workflow_desk(tmp_path, clock, web={"login_attempts_per_account": 8})
    for name, role in USERS.items():
        auth.add_user(desk.engine, name, role, PASSWORD, clock())
    app = create_app(desk.web)
    office = peer(app, "192.0.2.50")
    assert login(office, "sam", PASSWORD).status_code == 303  # sam's usual address
    for n in range(8):
        assert login(peer(app, f"203.0.113.{n + 1}"), "sam", "not it").status_code == 401
    assert login(peer(app, "198.51.100.9"), "sam", PASSWORD).status_code == 429
    assert login(peer(app, "198.51.100.9"), "sue", PASSWORD).status_code == 303  # only sam
    assert login(peer(app, "192.0.2.50"), "sam", PASSWORD).status_code == 303  # sam's own


def test_a_supervisor_unlocks_an_account_for_every_address(desk: Desk,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """sam mistyped his password five times: refused from his address. `abuse-desk users
    unlock sam` (another process: through the database) lets him in at once; the attacker's
    address that guessed many names stays refused."""
    from tests.web.test_auth import run

    limit = desk.config.web.login_attempts
    app = create_app(desk.web)
    sam = peer(app, "192.0.2.50")
    for _ in range(limit):
        assert login(sam, "sam", "caps lock on").status_code == 401
    refused = login(sam, "sam", PASSWORD)
    assert refused.status_code == 429 and "ask a supervisor" in refused.text
    sprayer = peer(app, "203.0.113.7")
    for n in range(desk.config.web.login_attempts_per_address):
        assert login(sprayer, f"guess{n}", "x").status_code == 401
    assert run(monkeypatch, desk, "users", "unlock", "sam") == 0
    assert "sam unlocked" in capsys.readouterr().err
    assert login(sam, "sam", PASSWORD).status_code == 303
    assert login(sprayer, "sam", PASSWORD).status_code == 429  # the address is still refused
    # The unlock is recorded, and lifts only what was counted before it.
    with desk.engine.connect() as conn:
        (event,) = conn.execute(select(Event).where(Event.subject_type == "user")).all()
    assert event.action == "logins-unlocked"
    # The command line's own identity, as the system user that ran it (issue 18: no actor
    # name that is not an account or the command's own system identity).
    from abuse_desk.app.commands.users import cli_identity

    assert (event.actor_kind, event.actor) == ("system", cli_identity())
    assert cli_identity().startswith("cli:") and len(cli_identity()) > 4
    for _ in range(limit):
        assert login(sam, "sam", "caps lock on again").status_code == 401
    assert login(sam, "sam", PASSWORD).status_code == 429
    assert run(monkeypatch, desk, "users", "unlock", "nobody") == 2


def test_a_supervisor_unlocks_from_the_desk_and_the_api(desk: Desk) -> None:
    limit = desk.config.web.login_attempts
    app = create_app(desk.web)
    sam = peer(app, "192.0.2.50")

    def lock_sam_out() -> None:
        for _ in range(limit):
            assert login(sam, "sam", "caps lock on").status_code == 401
        assert login(sam, "sam", PASSWORD).status_code == 429

    lock_sam_out()
    sue = peer(app, "192.0.2.60")
    assert login(sue, "sue", PASSWORD).status_code == 303
    csrf = csrf_of(sue.get("/account").text)
    assert sue.post("/account/unlock", data={"csrf": csrf, "name": "ghost"}).status_code == 404
    done = sue.post("/account/unlock", data={"csrf": csrf, "name": "Sam"})
    assert done.status_code == 303
    assert "sam can sign in again" in sue.get("/account").text
    assert login(sam, "sam", PASSWORD).status_code == 303

    lock_sam_out()
    token = auth.add_token(desk.engine, "sue", "ops", desk.clock())
    answer = sue.post("/api/v1/users/sam/unlock", json={"reason": "phoned in"},
                      headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"user": "sam", "result": "sam can sign in again"}
    assert login(sam, "sam", PASSWORD).status_code == 303
    missing = sue.post("/api/v1/users/ghost/unlock", json={},
                       headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404


def test_an_ipv6_network_counts_as_one_address(desk: Desk) -> None:
    limit = desk.config.web.login_attempts_per_address
    app = create_app(desk.web)
    for n in range(limit):  # a new address of the same /64 for every guess
        answer = login(peer(app, f"2001:db8:1:2::{n + 1:x}"), f"guess{n}", "not the password")
        assert answer.status_code == 401
    assert login(peer(app, "2001:db8:1:2:ffff:ffff:ffff:1"), "sue", PASSWORD).status_code == 429
    assert login(peer(app, "2001:db8:1:3::1"), "sue", PASSWORD).status_code == 303


def test_the_peer_key_of_an_address() -> None:
    assert auth.peer_key("203.0.113.7") == "peer:203.0.113.7"
    assert auth.peer_key("::ffff:203.0.113.7") == "peer:203.0.113.7"
    assert auth.peer_key("2001:db8:1:2:aaaa::1") == "peer:2001:db8:1:2::/64"
    assert auth.peer_key("2001:DB8:1:2::9") == "peer:2001:db8:1:2::/64"
    assert auth.peer_key("testclient") == "peer:testclient"
    assert auth.peer_key(None) == "peer:"


def test_the_login_keys_of_an_account_and_address() -> None:
    keys = auth.LoginKeys.of("Sam ", "2001:db8:1:2::1")
    assert keys == auth.LoginKeys.of("sam", "2001:db8:1:2:ffff::9")  # one /64, one pair
    assert keys.pair == "pair:sam@2001:db8:1:2::/64"
    assert keys.peer == "peer:2001:db8:1:2::/64" and keys.account == "account:sam"
    assert auth.LoginKeys.of("sam", "2001:db8:1:3::1").pair != keys.pair


def test_good_logins_do_not_use_up_the_address(desk: Desk) -> None:
    limit = desk.config.web.login_attempts_per_address
    client = client_for(desk)
    for _ in range(limit + 2):
        assert login(client, "sue", PASSWORD).status_code == 303
    for n in range(limit - 1):
        assert login(client, f"guess{n}", "not the password").status_code == 401
    assert login(client, "sue", PASSWORD).status_code == 303
    assert login(client, "guess", "not the password").status_code == 401
    assert login(client, "sue", PASSWORD).status_code == 429


def test_parallel_attempts_cannot_outrun_the_throttle(desk: Desk,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The check and the count are one step: attempts sent together do not all pass the check
    while the first ones are still verifying their password."""
    limit = desk.config.web.login_attempts
    verified: list[str] = []

    def slow_and_wrong(engine: Any, name: str, password: str) -> None:
        verified.append(password)
        time.sleep(0.2)  # argon2 takes its time too
        return None

    monkeypatch.setattr(auth, "authenticate", slow_and_wrong)
    app = create_app(desk.web)

    async def attack() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            csrf = csrf_of((await c.get("/login")).text)
            answers = await asyncio.gather(*(
                c.post("/login", data={"name": "sam", "password": f"guess {n}", "csrf": csrf})
                for n in range(4 * limit)))
        return sorted(a.status_code for a in answers)

    codes = asyncio.run(attack())
    assert len(verified) == limit
    assert codes == [401] * limit + [429] * (3 * limit)


def test_a_spray_of_names_does_not_lift_the_lock_on_an_account() -> None:
    class Small(auth.LoginThrottle):
        max_keys = 50

    now = [0.0]
    throttle = Small(3, 60.0, clock=lambda: now[0], per_address=3, per_account=6)
    sam_a, sam_b = auth.LoginKeys.of("sam", "192.0.2.1"), auth.LoginKeys.of("sam", "192.0.2.2")
    for _ in range(3):
        assert throttle.attempt(sam_a) is None
    assert throttle.attempt(sam_a) == auth.ADDRESS
    for _ in range(3):
        assert throttle.attempt(sam_b) is None
    assert throttle.attempt(auth.LoginKeys.of("sam", "192.0.2.3")) == auth.ACCOUNT
    for n in range(2000):  # made-up names from made-up addresses
        throttle.attempt(auth.LoginKeys.of(f"guess{n}", f"10.{n // 250}.{n % 250}.1"))
    assert throttle.attempt(sam_a) == auth.ADDRESS
    assert throttle.attempt(auth.LoginKeys.of("sam", "192.0.2.3")) == auth.ACCOUNT
    assert len(throttle._failures) <= 2 * Small.max_keys  # still bounded
    now[0] = 61.0
    assert throttle.attempt(sam_a) is None  # the window passes as before


def test_the_password_change_form_is_throttled_like_the_login(desk: Desk) -> None:
    limit = desk.config.web.login_attempts
    client = signed_in(desk, "sam")
    csrf = form_token(client, "/account")
    new = {"new": "another long one", "again": "another long one", "csrf": csrf}
    for n in range(limit):
        answer = client.post("/account/password", data={"current": f"guess {n}", **new})
        assert answer.status_code == 400
    answer = client.post("/account/password", data={"current": PASSWORD, **new})
    assert answer.status_code == 429 and "Too many wrong passwords" in answer.text
    assert auth.authenticate(desk.engine, "sam", PASSWORD) is not None  # unchanged
    assert login(client, "sam", PASSWORD).status_code == 429  # and the login counts them


def test_the_throttle_keys_on_the_address_uvicorn_trusts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`abuse-desk web` serves through uvicorn with its proxy headers on, trusted from
    127.0.0.1 only (FORWARDED_ALLOW_IPS unset). A client elsewhere cannot choose its address
    with X-Forwarded-For; a reverse proxy on the same host can, so each client behind it is
    counted on its own, and what a client puts in the header before the proxy's part is not
    believed."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    config = make_config(tmp_path)
    limit = config.web.login_attempts_per_address

    async def scenario() -> None:
        running = await runner.start(config, ("web",))
        try:
            server = running.web
            assert server is not None
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            assert server.started
            app: Any = server.config.loaded_app  # as uvicorn serves it, middleware and all
            auth.add_user(running.desk.engine, "sue", "supervisor", PASSWORD,
                          running.desk.clock())

            async def attempt(client_host: str, forwarded: str | None, name: str,
                              password: str) -> int:
                transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
                headers = {"X-Forwarded-For": forwarded} if forwarded else {}
                async with httpx.AsyncClient(transport=transport,
                                             base_url="http://desk.example") as c:
                    csrf = csrf_of((await c.get("/login", headers=headers)).text)
                    answer = await c.post("/login", headers=headers, data={
                        "name": name, "password": password, "csrf": csrf})
                    return answer.status_code

            # Directly from 203.0.113.7, a new made-up X-Forwarded-For each time: ignored.
            for n in range(limit):
                assert await attempt("203.0.113.7", f"10.0.0.{n}", f"guess{n}", "x") == 401
            assert await attempt("203.0.113.7", "10.0.1.1", "sue", PASSWORD) == 429
            # Through a proxy on this host: the client it names is the one counted.
            for n in range(limit):
                assert await attempt("127.0.0.1", "198.51.100.1", f"other{n}", "x") == 401
            assert await attempt("127.0.0.1", "198.51.100.1", "sue", PASSWORD) == 429
            # ... a client's own X-Forwarded-For comes before the proxy's entry: not believed.
            assert await attempt("127.0.0.1", "10.9.9.9, 198.51.100.1", "sue", PASSWORD) == 429
            assert await attempt("127.0.0.1", "198.51.100.2", "sue", PASSWORD) == 303
        finally:
            await runner.stop(running)

    asyncio.run(scenario())


# ---- the self-service link -----------------------------------------------------------------

def notified(desk: Desk, raw: bytes) -> tuple[Any, str]:
    """Deliver a complaint, run the timeline; the case and the token of its first notice."""
    case = the_case(desk, deliver(desk, raw))
    desk.workflow.run_due()
    (mail,) = [m for m in outbox(desk)
               if m["Message-ID"].startswith(f"<{case.reference}.notice.")]
    match = LINK.search(text_of(mail))
    assert match is not None
    return case_by_id(desk, case.id), match.group(1)


def customer_events(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == "case", Event.subject_id == case_id,
            Event.actor_kind == "customer").order_by(Event.id)))


def test_the_self_service_page_has_no_ambient_credential_to_forge(desk: Desk) -> None:
    """Why the form carries no CSRF token: the page sets no cookie, so a request from another
    site carries nothing the customer's browser adds; it can act only with the token in its
    URL, which it would have to know, and whoever knows it can act directly anyway. A GET
    never acts (a link or an image cannot answer), the form posts only to its own URL, and no
    referrer carries the token off the page."""
    case, token = notified(desk, arf("45.137.21.7"))
    client = TestClient(create_app(desk.web), follow_redirects=False)
    shown = client.get(f"/self-service/{token}?answer=done&fixed=1")
    assert shown.status_code == 200
    assert set_cookies(shown) == {}
    assert '<form method="post">' in shown.text and "action=" not in shown.text
    assert "form-action 'self'" in shown.headers["content-security-policy"]
    assert shown.headers["referrer-policy"] == "no-referrer"
    assert case_by_id(desk, case.id).state == "notified"
    assert customer_events(desk, case.id) == []
    answered = client.post(f"/self-service/{token}", data={"answer": "cleaned"},
                           headers={"Origin": "https://elsewhere.example"})
    assert set_cookies(answered) == {}


def test_one_cases_token_cannot_act_on_another(desk: Desk) -> None:
    alpha, alpha_token = notified(desk, arf("45.137.21.7"))
    beta, _ = notified(desk, person(
        "Phishing at shop.beta.example",
        "A phishing page stealing bank logins at http://shop.beta.example/secure/login", "b1"))
    _number, expiry, mac = alpha_token.split(".")
    client = TestClient(create_app(desk.web))
    answer = client.post(f"/self-service/{beta.id}.{expiry}.{mac}",
                         data={"answer": "fixed", "fixed": "1"})
    assert answer.status_code == 403 and "not valid" in answer.text
    assert beta.reference not in answer.text
    assert case_by_id(desk, beta.id).state == beta.state
    assert customer_events(desk, beta.id) == [] and customer_events(desk, alpha.id) == []


@pytest.mark.parametrize("state", ["closed", "terminated"])
def test_a_link_cannot_reopen_or_answer_a_finished_case(desk: Desk, state: str) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    with write_transaction(desk.engine) as conn:
        conn.execute(update(Case).where(Case.id == case.id).values(state=state))
    client = TestClient(create_app(desk.web))
    answer = client.post(f"/self-service/{token}", data={"answer": "fixed now", "fixed": "1"})
    assert answer.status_code == 200 and "no longer takes answers" in answer.text
    assert '<form method="post">' not in answer.text
    assert case_by_id(desk, case.id).state == state
    assert customer_events(desk, case.id) == []


def escalate(desk: Desk, clock: Clock, case: Any) -> Any:
    deadline = as_utc(case.deadline_at)
    assert deadline is not None
    clock.now = deadline + timedelta(hours=1)
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    return case


def test_fixed_on_an_escalated_case_does_not_cancel_the_proposed_restriction(
        desk: Desk, clock: Clock) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    case = escalate(desk, clock, case)
    answer = TestClient(create_app(desk.web)).post(
        f"/self-service/{token}", data={"answer": "all clean now", "fixed": "1"})
    assert answer.status_code == 200 and "with our abuse team" in answer.text
    after = case_by_id(desk, case.id)
    assert (after.state, after.proposed_action) == ("escalated", "restrict")
    (restrict,) = [s for s in steps_of(desk, case.id) if s.kind == "restrict"]
    assert restrict.state == "proposed"
    assert [(e.action, e.detail["fixed"]) for e in customer_events(desk, case.id)] == [
        ("customer-responded", True)]  # the answer is there for a specialist to judge


def test_fixed_on_a_restricted_case_does_not_restore_the_service(
        desk: Desk, clock: Clock) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    case = escalate(desk, clock, case)
    with write_transaction(desk.engine) as conn:
        cases.approve_action(conn, case.id, clock(), cases.Actor("supervisor", "sue"))
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    answer = TestClient(create_app(desk.web)).post(
        f"/self-service/{token}", data={"answer": "please restore", "fixed": "1"})
    assert answer.status_code == 200
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    assert not [s for s in steps_of(desk, case.id) if s.kind == "restore"]
    assert [e.action for e in customer_events(desk, case.id)] == ["customer-responded"]


def test_the_link_mac_is_checked_in_constant_time_and_before_the_expiry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"k" * 32
    now = START
    token = tokens.make_token(secret, 7, now + timedelta(days=1))
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    assert tokens.read_token(secret, token, now) == 7
    number, expiry, mac = token.split(".")
    forged = f"{number}.{expiry}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    with pytest.raises(tokens.TokenError, match="not valid"):
        tokens.read_token(secret, forged, now)
    assert len(compared) == 2  # both answers came from compare_digest
    # A forged token past its expiry says "not valid", not "expired": nothing learnt.
    with pytest.raises(tokens.TokenError, match="not valid"):
        tokens.read_token(secret, forged, now + timedelta(days=2))
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.read_token(secret, token, now + timedelta(days=2))
    # Another desk's key is not ours.
    with pytest.raises(tokens.TokenError, match="not valid"):
        tokens.read_token(b"other" * 8, token, now)


# ---- framing -------------------------------------------------------------------------------

def assert_unframeable(answer: httpx.Response, what: object) -> None:
    csp = answer.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (what, answer.status_code, csp)
    assert answer.headers.get("x-frame-options") == "DENY", (what, answer.status_code)
    assert answer.headers.get("x-content-type-options") == "nosniff", (what, answer.status_code)


def test_no_answer_of_the_desk_can_be_framed(desk: Desk, clock: Clock) -> None:
    """Clickjacking: only the desk's pages said frame-ancestors 'none'; the self-service page
    (a customer's "fixed" button), the API, the health page, redirects, errors and static files
    could be put in another site's frame. Every route is asked, found from the app itself, as
    nobody, as a signed-in supervisor and with an API token, and so are the answers Starlette
    makes itself (404, 405) and a failure on our side."""
    from starlette.routing import Mount, Route

    from tests.web.test_authorization import fill

    case, link = notified(desk, arf("45.137.21.7"))
    app = create_app(desk.web)
    anonymous = TestClient(app, follow_redirects=False)
    local = TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000))
    sue = TestClient(app, follow_redirects=False)
    assert login(sue, "sue", PASSWORD).status_code == 303
    csrf = form_token(sue, "/account")
    token = auth.add_token(desk.engine, "sue", "t", clock())
    bearer = {"Authorization": f"Bearer {token}"}
    asked = 0
    for route in app.routes:
        if isinstance(route, Mount):
            for path in ("/static/desk.css", "/static/nothing.css"):
                assert_unframeable(anonymous.get(path), path)
            continue
        assert isinstance(route, Route)
        path = route.path.replace("{token}", link).replace("{ref}", case.reference)
        path = fill(path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            form = {"csrf": csrf, "answer": "done"} if method == "POST" else None
            for who, client, headers in (("nobody", anonymous, {}), ("local", local, {}),
                                         ("sue", sue, {}), ("token", anonymous, bearer)):
                if path.startswith("/api/v1/") and method == "POST":
                    answer = client.request(method, path, json={}, headers=headers)
                else:
                    answer = client.request(method, path, data=form, headers=headers)
                assert_unframeable(answer, (who, method, path))
                asked += 1
    assert asked > 60
    assert_unframeable(anonymous.get("/self-service/forged.token.here"), "a bad link")
    assert_unframeable(anonymous.get("/no/such/page"), "404")
    assert_unframeable(anonymous.delete("/login"), "405")
    assert_unframeable(anonymous.get(f"/self-service/{link}"), "the customer's page")
    page = anonymous.get(f"/self-service/{link}")
    assert "style-src 'unsafe-inline'" in page.headers["content-security-policy"]  # kept


def test_a_failure_on_our_side_cannot_be_framed_either(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("abuse_desk.web.dashboard.stats", broken)
    client = TestClient(create_app(desk.web), follow_redirects=False,
                        raise_server_exceptions=False)
    assert login(client, "sam", PASSWORD).status_code == 303
    assert_unframeable(client.get("/dashboard"), "500 page")
    token = auth.add_token(desk.engine, "sam", "t", clock())
    answer = client.get("/api/v1/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 500
    assert_unframeable(answer, "500 JSON")
