"""The customers' self-service page through Starlette's test client, reached by the link in the
first notice: what it shows (and hides), who the token lets in, and what the customer's answers
do to the case."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Event, TimelineStep
from abuse_desk.web.app import create_app
from abuse_desk.workflow import cases
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.workflow.workflow_support import (
    START,
    Clock,
    MakeDesk,
    arf,
    case_by_id,
    deliver,
    outbox,
    person,
    text_of,
    the_case,
    workflow_desk,
)

DEADLINE_TEXT = "Thursday, 3 December 2026, 10:00 EST (15:00 UTC)"
LINK = re.compile(r"https?://\S+/self-service/([A-Za-z0-9._-]+)")
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    # The customer's side: no staff accounts (the web tests' desk has them).
    return make_desk()


def notified(desk: Desk, raw: bytes) -> tuple[Any, str]:
    """Deliver a complaint, run the timeline; the case and the token from its first notice."""
    case = the_case(desk, deliver(desk, raw))
    desk.workflow.run_due()
    return case, token_from_outbox(desk, case.reference)


def token_from_outbox(desk: Desk, reference: str) -> str:
    mails = [m for m in outbox(desk)
             if str(m["Subject"]).strip().startswith(f"[Abuse Case {reference}] ")
             and m["Message-ID"].startswith(f"<{reference}.notice.")]
    assert len(mails) == 1, [m["Subject"] for m in outbox(desk)]
    match = LINK.search(text_of(mails[0]))
    assert match is not None, text_of(mails[0])
    return match.group(1)


def page(desk: Desk, token: str) -> Any:
    return TestClient(create_app(desk.web)).get(f"/self-service/{token}")


def post(desk: Desk, token: str, **kwargs: Any) -> Any:
    return TestClient(create_app(desk.web)).post(f"/self-service/{token}", **kwargs)


def customer_events(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == "case", Event.subject_id == case_id,
            Event.actor_kind == "customer").order_by(Event.id)))


def other_char(c: str) -> str:
    return "A" if c != "A" else "B"


# ---- what the page shows ---------------------------------------------------------------------

def test_the_link_in_the_notice_opens_the_case(desk: Desk) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    response = page(desk, token)
    assert response.status_code == 200
    text = response.text
    assert f"Abuse case {case.reference}" in text
    assert "Alpha Hosting" in text
    assert DEADLINE_TEXT in text
    assert "45.137.21.7" in text
    assert "Cheap watches 1" in text  # the evidence
    # RFC 6590: the complainant's address is redacted, its domain kept.
    assert "victim.person" not in text
    assert re.search(r"\b[0-9a-f]{64}@mailbox\.example\b", text)
    assert '<form method="post">' in text


def test_the_redacted_received_line_keeps_its_angle_brackets(desk: Desk) -> None:
    """Redaction replaces the local-part only: ``for <victim@x>`` becomes ``for <HASH@x>``."""
    _case, token = notified(desk, arf("45.137.21.7"))
    text = page(desk, token).text
    assert "victim.person" not in text
    assert re.search(r"for &lt;[0-9a-f]{64}@mailbox\.example&gt;;", text), text


def test_an_address_known_only_from_original_rcpt_to_is_redacted(desk: Desk) -> None:
    """Spam sent by Bcc: the complainant appears in the ARF's Original-Rcpt-To only, and in
    the spam's body; the page must not show it."""
    raw = (arf("45.137.21.7")
           .replace(b"To: victim.person@mailbox.example\r\n", b"To: undisclosed-recipients:;\r\n")
           .replace(b"    for <victim.person@mailbox.example>;", b"    with ESMTP;")
           .replace(b"Buy now!", b"Dear victim.person@mailbox.example, buy now!"))
    _case, token = notified(desk, raw)
    response = page(desk, token)
    assert response.status_code == 200
    assert "buy now!" in response.text
    assert "victim.person" not in response.text


def test_html_in_the_evidence_is_escaped(desk: Desk) -> None:
    case, token = notified(desk, person(
        "Phishing at 45.137.21.7",
        "Your server 45.137.21.7 hosts a phishing page stealing bank logins: "
        f"http://45.137.21.7/bank/login with {SCRIPT} in it", "xss1"))
    assert case.type == "phishing"
    text = page(desk, token).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()


def test_security_headers(desk: Desk) -> None:
    _case, token = notified(desk, arf("45.137.21.7"))
    for response in (page(desk, token), page(desk, "1.2.3")):
        assert response.headers["cache-control"] == "no-store"
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp  # no scripts at all: default-src 'none' covers them
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-type"].startswith("text/html")


# ---- who gets in -----------------------------------------------------------------------------

def test_a_tampered_token_is_refused(desk: Desk) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    number, expiry, mac = token.split(".")
    assert number == str(case.id)
    forged = [
        f"{number}.{expiry}.{mac[:-1]}{other_char(mac[-1])}",  # one character of the MAC
        f"{number}.{expiry}.{other_char(mac[0])}{mac[1:]}",
        f"{int(number) + 1}.{expiry}.{mac}",  # another case number
        f"{number}.{int(expiry) + 86400}.{mac}",  # a later expiry
        f"{number}.{expiry}",
        "not-a-token",
    ]
    for bad in forged:
        response = page(desk, bad)
        assert response.status_code == 403, bad
        assert "not valid" in response.text
        assert case.reference not in response.text
    # Nor can a forged token answer.
    response = post(desk, forged[0], data={"answer": "let me in"})
    assert response.status_code == 403
    assert case_by_id(desk, case.id).state == "notified"
    assert customer_events(desk, case.id) == []


def test_an_expired_token_is_refused(desk: Desk, clock: Clock) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    days = desk.config.notify.token_days
    clock.now = START + timedelta(days=days) - timedelta(minutes=1)
    assert page(desk, token).status_code == 200
    clock.now = START + timedelta(days=days, minutes=1)
    response = page(desk, token)
    assert response.status_code == 403
    assert "expired" in response.text
    assert case.reference not in response.text
    response = post(desk, token, data={"answer": "too late"})
    assert response.status_code == 403 and "expired" in response.text
    assert customer_events(desk, case.id) == []


def test_a_token_for_one_case_shows_nothing_of_another(desk: Desk) -> None:
    alpha, alpha_token = notified(desk, arf("45.137.21.7"))
    beta, beta_token = notified(desk, person(
        "Phishing at shop.beta.example",
        "A phishing page stealing bank logins at http://shop.beta.example/secure/login",
        "beta1"))
    assert alpha.id != beta.id and alpha.customer_id != beta.customer_id
    a = page(desk, alpha_token).text
    b = page(desk, beta_token).text
    assert alpha.reference in a and "Alpha Hosting" in a and "45.137.21.7" in a
    assert beta.reference not in a and "Beta Shop" not in a and "shop.beta.example" not in a
    assert beta.reference in b and "Beta Shop" in b and "shop.beta.example" in b
    assert alpha.reference not in b and "Alpha Hosting" not in b and "45.137.21.7" not in b
    # Alpha's MAC on Beta's case number is refused.
    _number, expiry, mac = alpha_token.split(".")
    assert page(desk, f"{beta.id}.{expiry}.{mac}").status_code == 403


# ---- the customer answers --------------------------------------------------------------------

def test_an_answer_moves_the_case_to_customer_responded(desk: Desk) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    assert case_by_id(desk, case.id).state == "notified"
    answer = "We found an infected PC at the reception desk and cleaned it."
    response = post(desk, token, data={"answer": answer})
    assert response.status_code == 200
    assert "your answer is with our abuse team" in response.text
    assert case_by_id(desk, case.id).state == "customer-responded"
    (said,) = customer_events(desk, case.id)
    assert (said.actor_kind, said.actor, said.action) == (
        "customer", "self-service", "customer-responded")
    assert said.detail["answer"] == answer and said.detail["fixed"] is False
    assert said.detail["via"] == "self-service"
    # The answer is no HTML for the page either.
    post(desk, token, data={"answer": SCRIPT})
    assert customer_events(desk, case.id)[-1].detail["answer"] == SCRIPT
    assert "<script" not in page(desk, token).text.lower()


def test_fixed_resolves_the_case_when_customers_may_resolve(desk: Desk) -> None:
    assert desk.config.workflow.customer_can_resolve is True
    case, token = notified(desk, arf("45.137.21.7"))
    response = post(desk, token, data={"answer": "Cleaned up.", "fixed": "1"})
    assert response.status_code == 200
    assert "the case is resolved" in response.text
    resolved = case_by_id(desk, case.id)
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    assert [e.action for e in customer_events(desk, case.id)] == [
        "customer-responded", "resolved"]
    assert customer_events(desk, case.id)[0].detail["fixed"] is True
    # A resolved case takes no more answers, and the page says so.
    response = post(desk, token, data={"answer": "one more thing"})
    assert response.status_code == 200
    assert "no longer takes answers" in response.text
    assert len(customer_events(desk, case.id)) == 2
    assert '<form method="post">' not in page(desk, token).text


def test_fixed_without_the_right_to_resolve_only_responds(tmp_path: Path, clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"customer_can_resolve": False})
    case, token = notified(desk, arf("45.137.21.7"))
    response = post(desk, token, data={"fixed": "1"})
    assert response.status_code == 200
    assert case_by_id(desk, case.id).state == "customer-responded"
    (said,) = customer_events(desk, case.id)
    assert said.action == "customer-responded" and said.detail["fixed"] is True


def test_an_empty_answer_gives_a_hint_and_changes_nothing(desk: Desk) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    for data in ({}, {"answer": "   \r\n  "}, {"answer": "", "fixed": "0"}):
        response = post(desk, token, data=data)
        assert response.status_code == 200
        assert "Write an answer or tick" in response.text
    assert case_by_id(desk, case.id).state == "notified"
    assert customer_events(desk, case.id) == []


def test_a_body_over_64_kib_is_refused(desk: Desk) -> None:
    case, token = notified(desk, arf("45.137.21.7"))
    big = b"answer=" + b"x" * (64 * 1024)
    response = post(desk, token, content=big,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert case_by_id(desk, case.id).state == "notified"
    assert customer_events(desk, case.id) == []


def test_a_form_with_many_fields_is_a_client_error_not_a_crash(desk: Desk) -> None:
    """More fields than parse_qs(max_num_fields=10) allows must not be a 500."""
    case, token = notified(desk, arf("45.137.21.7"))
    fields = "&".join(f"f{n}=x" for n in range(20))
    client = TestClient(create_app(desk.web), raise_server_exceptions=False)
    response = client.post(f"/self-service/{token}", content=f"answer=hi&{fields}",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status_code < 500
    assert case_by_id(desk, case.id).state == "notified"


# ---- what the customer sees of a person who complained ---------------------------------------

JANE = (
    "Spam from 45.137.21.7",
    "Hello,\r\n\r\n"
    "my name is Jane Doe and your customer at 45.137.21.7 keeps sending spam to my shop.\r\n"
    "Nov 24 13:50:01 mx postfix/smtpd[4242]: connect from unknown[45.137.21.7]\r\n"
    "It advertised http://cheap-watches.example/buy at 2026-11-24 13:50 UTC.\r\n"
    "Please call me back on +1 (555) 010-4477 or my mobile 0171 5550199.\r\n\r\n"
    "Best regards,\r\n"
    "Jane Doe\r\n"
    "Doe Flowers, 42 Rosewood Lane\r\n"
    "Springfield, IL 62704\r\n"
    "Phone: +1 555 010 4478\r\n",
    "jane1")
PERSONAL = ("Jane", "Doe", "(555)", "010-4477", "0171", "5550199", "555 010 4478", "Rosewood",
            "Springfield", "62704", "jane.doe")
EVIDENCE = ("45.137.21.7", "http://cheap-watches.example/buy", "13:50:01",
            "postfix/smtpd[4242]: connect from unknown[45.137.21.7]")


def customer_mails(desk: Desk) -> list[Any]:
    return [m for m in outbox(desk) if m["To"] == "noc@alpha.example"]


def test_a_free_text_reporters_name_phone_and_address_do_not_reach_the_customer(
        desk: Desk, clock: Clock) -> None:
    case, token = notified(desk, person(*JANE, sender="jane.doe@people.example"))
    assert (case.type, case.customer_id) == ("spam", 1)
    clock.now = START + timedelta(days=8)  # the reminder, before the deadline
    desk.workflow.run_due()
    mails = customer_mails(desk)
    assert [m["Message-ID"].split(".")[1] for m in mails] == ["notice", "reminder"]
    shown = {"self-service page": page(desk, token).text}
    for mail in mails:
        shown[f"{mail['Message-ID']} text"] = text_of(mail)
        shown[f"{mail['Message-ID']} html"] = str(mail.get_body(("html",)).get_content())
    for where, text in shown.items():
        leaked = [p for p in PERSONAL if p.lower() in text.lower()]
        assert not leaked, (where, leaked, text)
        assert all(e in text.replace("&amp;", "&") for e in EVIDENCE), (where, text)
        assert "a third party" in text or "self-service" in where, (where, text)
    assert "[phone removed]" in shown["self-service page"]
    assert "[signature removed]" in shown["self-service page"]


def test_a_configured_reporter_class_is_shown_as_written(tmp_path: Path, clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, notify={"show_reporter_for": ["spam"]})
    _case, token = notified(desk, person(*JANE, sender="jane.doe@people.example"))
    (mail,) = customer_mails(desk)
    for text in (text_of(mail), page(desk, token).text):
        assert "Jane Doe" in text and "+1 (555) 010-4477" in text and "Rosewood" in text


def test_fixed_on_a_restricted_case_goes_through_the_lift_rule(desk: Desk,
                                                               clock: Clock) -> None:
    """The page asks the case rule (workflow.cases.may_resolve) whether "fixed" resolves: not
    on a restricted case, so the restriction stays and no restore is proposed or approved."""
    case, token = notified(desk, arf("45.137.21.7"))
    clock.now = START + timedelta(days=10)
    desk.workflow.run_due()  # the deadline passed: escalated, restriction proposed
    with desk.engine.begin() as conn:
        cases.approve_action(conn, case.id, clock.now, cases.Actor("supervisor", "sue"))
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    response = post(desk, token, data={"answer": "all clean, please restore", "fixed": "1"})
    assert response.status_code == 200 and "with our abuse team" in response.text
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    with desk.engine.connect() as conn:
        kinds = list(conn.execute(select(TimelineStep.kind).where(
            TimelineStep.case_id == case.id)).scalars())
    assert "restore" not in kinds
    assert [e.action for e in customer_events(desk, case.id)] == ["customer-responded"]
