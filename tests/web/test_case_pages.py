"""The case pages of the specialists' desk through Starlette's test client, signed in as ``sam``
(specialist) or ``sue`` (supervisor): the list and its filters, what a case page shows, and what
each action form does to the database and the audit trail, with its role and CSRF checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Event, FeeEntry, TimelineStep
from abuse_desk.web import auth
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.web.web_support import PASSWORD, client_for, form_token, signed_in
from tests.workflow.workflow_support import (
    Clock,
    arf,
    case_by_id,
    deliver,
    notices_of,
    outbox,
    person,
    steps_of,
    text_of,
    the_case,
    workflow_desk,
)

# Thu 2026-12-03 10:00 EST: the deadline of a standard case opened at START (see
# tests/workflow/test_cases.py).
DEADLINE = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
# Another address of C-1 than the spam's: a case of its own (the same address would join).
PHISHING = ("Phishing site at 45.137.21.99",
            "Your server 45.137.21.99 hosts a phishing page imitating a bank login page that "
            "steals credentials: http://45.137.21.99/bank/login")


# ---- helpers ---------------------------------------------------------------------------------

def notified(desk: Desk, ip: str = "45.137.21.7") -> Any:
    """A case whose first notice went out (C-1 for 45.137.21.x, C-3 for 46.29.160.x)."""
    case = the_case(desk, deliver(desk, arf(ip)))
    desk.workflow.run_due()
    return case_by_id(desk, case.id)


def escalated(desk: Desk, clock: Clock) -> Any:
    """A case past its deadline: escalated, a fee assessed, a restriction proposed."""
    case = notified(desk)
    clock.now = DEADLINE + timedelta(hours=1)
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    return case


def events(desk: Desk, case_id: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    with desk.engine.connect() as conn:
        return [(e.actor_kind, e.actor, e.action, e.detail) for e in conn.execute(
            select(Event).where(Event.subject_type == "case", Event.subject_id == case_id)
            .order_by(Event.id))]


def fees_of(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(FeeEntry).where(FeeEntry.case_id == case_id)
                                 .order_by(FeeEntry.id)))


def act(client: TestClient, case: Any, action: str, token: bool = True, **data: str) -> Any:
    """POST the *action* form of the case page, as the browser sends it (with the session's
    CSRF token unless *token* is false)."""
    if token:
        data["csrf"] = form_token(client, f"/cases/{case.reference}")
    return client.post(f"/cases/{case.reference}/{action}", data=data)


def done(client: TestClient, answer: Any, case: Any) -> str:
    """The action redirected back to the case page: that page's text (with the flash)."""
    assert answer.status_code == 303, answer.text[:2000]
    assert answer.headers["location"] == f"/cases/{case.reference}"
    page = client.get(answer.headers["location"])
    assert page.status_code == 200
    return str(page.text)


def row_of(html: str, reference: str) -> str:
    match = re.search(rf'<tr data-href="/cases/{reference}"[^>]*>.*?</tr>', html, re.S)
    assert match, f"no row for {reference}"
    return match.group(0)


def html_of(client: TestClient, path: str) -> str:
    """The page at *path*, which must answer 200 (not a redirect to the login)."""
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code, answer.headers)
    return str(answer.text)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-href="/cases/(C-\d{4}-\d{6})"', html)


# ---- who may see the pages -------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_the_login(desk: Desk) -> None:
    case = notified(desk)
    anonymous = client_for(desk)
    for path in ("/cases", f"/cases/{case.reference}", "/cases?state=notified"):
        answer = anonymous.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=/cases")
    answer = anonymous.post(f"/cases/{case.reference}/note", data={"text": "x"})
    assert answer.status_code == 401
    assert [a for *_, a, _ in events(desk, case.id)] == ["opened", "notified", "notice-sent"]


def test_an_unknown_case_is_a_404_page(desk: Desk) -> None:
    sam = signed_in(desk, "sam")
    answer = sam.get("/cases/C-2026-999999")
    assert answer.status_code == 404
    assert "There is no case" in answer.text
    token = form_token(sam, "/account")
    assert sam.post("/cases/C-2026-999999/note",
                    data={"csrf": token, "text": "x"}).status_code == 404


# ---- the list ----------------------------------------------------------------------------------

def test_the_list_shows_each_case_with_its_columns(desk: Desk, clock: Clock) -> None:
    case = escalated(desk, clock)
    html = html_of(signed_in(desk, "sam"), "/cases")
    row = row_of(html, case.reference)
    assert f'<a href="/cases/{case.reference}">{case.reference}</a>' in row
    assert "C-1" in row and "Alpha Hosting" in row
    assert "spam / spam" in row
    assert '<span class="badge state-escalated">escalated</span>' in row
    assert "2026-11-24 10:00 EST" in row  # opened, in the desk's zone
    assert "2026-12-03 10:00 EST" in row  # the deadline
    assert "USD 100.00" in row
    assert 'aria-current="page">Cases' in html


def test_the_list_filters_by_state_category_and_customer(desk: Desk, clock: Clock) -> None:
    spam = notified(desk)
    nomail = notified(desk, "46.29.160.5")  # C-3
    phishing = the_case(desk, deliver(desk, person(*PHISHING, "ph1")))
    desk.workflow.run_due()
    sue = signed_in(desk, "sue")
    act(sue, spam, "escalate", reason="repeated")
    page = sue.get("/cases")
    assert 'class="filters"' in page.text and 'method="get"' in page.text
    assert set(listed(page.text)) == {spam.reference, nomail.reference, phishing.reference}
    assert listed(html_of(sue, "/cases?state=escalated")) == [spam.reference]
    assert set(listed(html_of(sue, "/cases?state=notified"))) == {nomail.reference,
                                                                  phishing.reference}
    assert listed(html_of(sue, "/cases?category=other")) == [phishing.reference]
    assert listed(html_of(sue, "/cases?customer=C-3")) == [nomail.reference]
    assert listed(html_of(sue, "/cases?customer=C-1&category=spam")) == [spam.reference]
    assert listed(html_of(sue, "/cases?state=resolved")) == []
    # The filters stay filled in.
    page = sue.get("/cases?state=escalated&customer=C-1")
    assert '<option value="escalated" selected>' in page.text
    assert 'name="customer" value="C-1"' in page.text
    # A state that does not exist is said, not silently matched to nothing.
    page = sue.get("/cases?state=%3Cscript%3E")
    assert page.status_code == 200
    assert "there is no state" in page.text and "<script>" not in page.text.split("<main>")[1]
    assert len(listed(page.text)) == 3


def test_overdue_cases_are_marked_and_filtered(desk: Desk, clock: Clock) -> None:
    case = notified(desk)
    other = notified(desk, "46.29.160.5")
    sam = signed_in(desk, "sam")
    assert listed(html_of(sam, "/cases?overdue=1")) == []
    assert 'class="overdue"' not in html_of(sam, "/cases")
    # Past the deadline, before the timeline has escalated the cases.
    clock.now = DEADLINE + timedelta(minutes=5)
    sam = signed_in(desk, "sam")  # a new session: the first one ended days ago
    assert set(listed(html_of(sam, "/cases?overdue=1"))) == {case.reference, other.reference}
    sam.post(f"/cases/{other.reference}/resolve",
             data={"csrf": form_token(sam, f"/cases/{other.reference}"), "reason": "gone"})
    html = html_of(sam, "/cases?overdue=1")
    assert listed(html) == [case.reference]
    assert 'class="overdue"' in row_of(html, case.reference)
    assert 'class="overdue"' not in row_of(html_of(sam, "/cases"), other.reference)
    assert 'name="overdue" value="1" checked' in html
    # Escalated by the timeline: no longer waiting for a deadline.
    desk.workflow.run_due()
    assert listed(html_of(sam, "/cases?overdue=1")) == []


def test_the_list_pages_by_the_configured_size(tmp_path: Path, clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, web={"page_size": 2})
    auth.add_user(desk.engine, "sam", "specialist", PASSWORD, clock())
    refs = [notified(desk).reference, notified(desk, "46.29.160.5").reference,
            the_case(desk, deliver(desk, person(*PHISHING, "ph1"))).reference]
    sam = signed_in(desk, "sam")
    first = html_of(sam, "/cases")
    assert listed(first) == [refs[2], refs[1]]  # newest first
    assert 'href="/cases?page=2"' in first and 'rel="prev"' not in first
    second = html_of(sam, "/cases?page=2")
    assert listed(second) == [refs[0]]
    assert 'href="/cases"' in second and 'rel="next"' not in second
    # Paging keeps the filters.
    filtered = html_of(sam, "/cases?customer=C-1")
    assert listed(filtered) == [refs[2], refs[0]]
    assert "page=2" not in filtered
    assert listed(html_of(sam, "/cases?page=junk")) == [refs[2], refs[1]]


# ---- one case ----------------------------------------------------------------------------------

def test_the_case_page_shows_timeline_reports_notices_replies_fees_and_events(
        desk: Desk, clock: Clock) -> None:
    case = notified(desk)
    (first,) = outbox(desk)
    reply = (f"From: NOC <noc@alpha.example>\r\nTo: abuse@localhost\r\n"
             f"Subject: Re: {first['Subject']} {SCRIPT}\r\nIn-Reply-To: {first['Message-ID']}"
             f"\r\nMessage-ID: <r1@alpha.example>\r\n\r\nWe cleaned the host. {SCRIPT}\r\n"
             "<img src=x onerror=alert(2)>\r\n").encode()
    clock.now = DEADLINE + timedelta(hours=1)
    desk.workflow.run_due()  # no answer by the deadline: escalated
    deliver(desk, reply)  # the customer answers late
    case = case_by_id(desk, case.id)
    assert case.state == "escalated"
    html = html_of(signed_in(desk, "sam"), f"/cases/{case.reference}")
    main = html.split("<main>", 1)[1]
    # Header.
    assert f"<h1>{case.reference} " in main
    assert "Alpha Hosting (C-1)" in main and "noc@alpha.example" in main
    assert "spam / spam" in main and "standard" in main
    assert "2026-12-03 10:00 EST (1 h ago)" in main
    assert "<strong>restrict</strong> (waits for a supervisor's approval)" in main
    # Timeline: steps done and planned, with their states.
    for kind in ("notice", "reminder", "deadline", "escalation", "restrict"):
        assert f"<td>{kind}</td>" in main
    assert '<span class="badge state-proposed">proposed</span>' in main
    # Reports link to the review page.
    (report_id,) = [s for s in re.findall(r'href="/review/report/(\d+)"', main)][:1]
    assert f'<a href="/review/report/{report_id}">#{report_id}</a>' in main
    # Notices as sent, with their text.
    kinds = [n.kind for n in notices_of(desk, case.id)]
    assert kinds == ["notice", "reminder", "escalation"]
    assert f"[Abuse Case {case.reference}] Spam sent from your Integra ISP service" in main
    assert re.search(r"<pre>Dear Alpha Hosting,.*?WHAT YOU NEED TO DO", main, re.S)
    assert "Reason: the deadline of 2026-12-03 15:00 UTC passed without" in main
    # The customer's reply, as text: never markup.
    assert f"We cleaned the host. {ESCAPED}" in main
    assert "&lt;img src=x onerror=alert(2)&gt;" in main
    assert "<script>" not in main and "<img" not in main
    # Fees and the audit trail.
    assert "USD 100.00" in main and '<span class="badge state-assessed">assessed</span>' in main
    assert "customer-responded" in main and "<td>escalated</td>" in main
    assert "noc@alpha.example <span class=\"muted\">(customer)</span>" in main


def test_a_bounce_is_shown_with_its_text(desk: Desk) -> None:
    case = notified(desk)
    (first,) = outbox(desk)
    bounce = (  # to the notice's envelope sender (VERP): only such a DSN marks it bounced
        f"From: MAILER-DAEMON@alpha.example\r\nTo: {first['Return-Path']}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@alpha.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        "boundary=\"d\"\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message could not be delivered. {SCRIPT}\r\n"
        "--d\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; noc@alpha.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        "--d\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {first['Message-ID']}\r\nSubject: x\r\n--d--\r\n").encode()
    deliver(desk, bounce, mail_from=None)
    main = html_of(signed_in(desk, "sam"), f"/cases/{case.reference}").split("<main>", 1)[1]
    assert "<dt>Bounce</dt>" in main
    assert f"Your message could not be delivered. {ESCAPED}" in main
    assert '<span class="badge state-bounced">bounced</span>' in main
    assert "5.1.1" in main
    assert "<script>" not in main


def test_specialists_see_the_supervisor_forms_disabled(desk: Desk, clock: Clock) -> None:
    case = escalated(desk, clock)
    sam_page = html_of(signed_in(desk, "sam"), f"/cases/{case.reference}")
    sue_page = html_of(signed_in(desk, "sue"), f"/cases/{case.reference}")
    for action in ("approve", "waive-fee"):
        form = re.search(rf'action="/cases/{case.reference}/{action}".*?</form>', sam_page, re.S)
        assert form and "<fieldset disabled>" in form.group(0), action
        form = re.search(rf'action="/cases/{case.reference}/{action}".*?</form>', sue_page, re.S)
        assert form and "disabled" not in form.group(0), action
    assert 'name="fee_id"' not in sam_page and 'name="fee_id"' in sue_page
    assert "need a supervisor" in sam_page and "need a supervisor" not in sue_page


def test_every_form_has_the_csrf_token_and_destructive_ones_ask_first(desk: Desk,
                                                                      clock: Clock) -> None:
    case = escalated(desk, clock)
    sue = signed_in(desk, "sue")
    html = html_of(sue, f"/cases/{case.reference}")
    token = form_token(sue, "/account")
    forms = re.findall(r'<form [^>]*method="post"[^>]*>.*?</form>', html, re.S)
    assert len(forms) >= 7
    for form in forms:
        assert f'name="csrf" value="{token}"' in form
    for action in ("resolve", "approve", "waive-fee", "message"):
        tag = re.search(rf'<form [^>]*action="/cases/{case.reference}/{action}"[^>]*>', html)
        assert tag and "data-confirm=" in tag.group(0), action


# ---- actions -----------------------------------------------------------------------------------

def test_resolve(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    page = done(sam, act(sam, case, "resolve", reason="customer removed the script"), case)
    assert f"{case.reference} resolved" in page  # the flash
    assert case_by_id(desk, case.id).state == "resolved"
    assert ("specialist", "sam", "resolved", {"reason": "customer removed the script",
                                              "previous_state": "notified"}) in events(
        desk, case.id)


def test_resolve_needs_a_reason_and_an_error_shows_the_case_again(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    answer = act(sam, case, "resolve", reason="  ")
    assert answer.status_code == 400
    assert "say why the case is resolved" in answer.text
    assert f"<h1>{case.reference} " in answer.text
    assert case_by_id(desk, case.id).state == "notified"
    done(sam, act(sam, case, "resolve", reason="fixed"), case)
    answer = act(sam, case, "resolve", reason="again")
    assert answer.status_code == 400 and "already resolved" in answer.text


def test_escalate(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    page = done(sam, act(sam, case, "escalate", reason="third complaint today"), case)
    assert f"{case.reference} escalated" in page
    after = case_by_id(desk, case.id)
    assert (after.state, after.proposed_action) == ("escalated", "restrict")
    assert [f.state for f in fees_of(desk, case.id)] == ["assessed"]
    (event,) = [e for e in events(desk, case.id) if e[2] == "escalated"]
    assert event[:2] == ("specialist", "sam") and event[3]["reason"] == "third complaint today"
    assert act(sam, case, "escalate", reason="again").status_code == 400


def test_extend_to_a_time_in_the_desks_zone(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    page = done(sam, act(sam, case, "extend", until="2026-12-10T12:00",
                         reason="customer on holiday"), case)
    new = datetime(2026, 12, 10, 17, 0, tzinfo=UTC)  # 12:00 EST
    assert case_by_id(desk, case.id).deadline_at.replace(tzinfo=UTC) == new
    assert "deadline now 2026-12-10T17:00:00Z" in page
    assert "2026-12-10 12:00 EST" in page
    deadline_steps = [s for s in steps_of(desk, case.id) if s.kind == "deadline"]
    assert [(s.state, s.due_at.replace(tzinfo=UTC)) for s in deadline_steps] == [
        ("cancelled", DEADLINE), ("pending", new)]
    (event,) = [e for e in events(desk, case.id) if e[2] == "deadline-extended"]
    assert event[:2] == ("specialist", "sam") and event[3]["reason"] == "customer on holiday"


def test_extend_by_business_days(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    done(sam, act(sam, case, "extend", until="", business_days="2", reason="asked"), case)
    # From Tue 24 Nov 10:00 EST: Wed 25 is one; Thanksgiving (Thu 26), the desk's closure
    # (Fri 27) and the weekend do not count; Mon 30 is the second.
    assert case_by_id(desk, case.id).deadline_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 30, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("fields", "says"), [
    ({"until": "next tuesday", "reason": "customer asked"}, "is not a date and time"),
    ({"until": "2026-12-10", "reason": "customer asked"}, "is not a date and time"),
    ({"until": "2026-12-10T12:00", "business_days": "3", "reason": "customer asked"},
     "not both"),
    ({"until": "", "business_days": "0", "reason": "customer asked"}, "business days"),
    ({"until": "2026-11-01T12:00", "reason": "customer asked"}, "must be in the future"),
    ({"until": "2026-12-10T12:00", "reason": ""}, "needs a reason"),
])
def test_a_wrong_extension_changes_nothing(desk: Desk, fields: dict[str, str],
                                           says: str) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    answer = act(sam, case, "extend", **fields)
    assert answer.status_code == 400
    assert says in answer.text
    if fields["reason"]:  # what was typed is still there
        assert 'value="customer asked"' in answer.text
    assert case_by_id(desk, case.id).deadline_at.replace(tzinfo=UTC) == DEADLINE
    assert not [e for e in events(desk, case.id) if e[2] == "deadline-extended"]


def test_note(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    page = done(sam, act(sam, case, "note", text=f"called them {SCRIPT}"), case)
    assert f"{case.reference}: note added" in page
    assert ("specialist", "sam", "note", {"text": f"called them {SCRIPT}"}) in events(
        desk, case.id)
    assert f"called them {ESCAPED}" in page and SCRIPT not in page
    answer = act(sam, case, "note", text=" ")
    assert answer.status_code == 400 and "needs a reason" in answer.text


def test_message_to_the_customer(desk: Desk) -> None:
    case = notified(desk)
    sam = signed_in(desk, "sam")
    text = f"Dear NOC,\r\nplease look at 45.137.21.7 again. {SCRIPT}"
    page = done(sam, act(sam, case, "message", subject="Still spam", text=text), case)
    assert f"{case.reference}: message to noc@alpha.example queued" in page
    notice = notices_of(desk, case.id)[-1]
    assert (notice.kind, notice.state) == ("message", "pending")
    (event,) = [e for e in events(desk, case.id) if e[2] == "message-to-customer"]
    assert event[:2] == ("specialist", "sam") and event[3]["notice_id"] == notice.id
    # On the case page as written, escaped.
    assert f"please look at 45.137.21.7 again. {ESCAPED}" in page
    assert f"[Abuse Case {case.reference}] Still spam" in page
    desk.workflow.run_due()
    mail = outbox(desk)[-1]
    assert mail["Subject"] == f"[Abuse Case {case.reference}] Still spam"
    assert f"please look at 45.137.21.7 again. {SCRIPT}" in text_of(mail)
    assert notices_of(desk, case.id)[-1].state == "sent"


def test_no_message_to_a_customer_without_address(desk: Desk) -> None:
    case = notified(desk, "46.29.160.5")
    sam = signed_in(desk, "sam")
    page = html_of(sam, f"/cases/{case.reference}")
    assert "The customer has no e-mail address" in page
    answer = act(sam, case, "message", text="Please fix it.")
    assert answer.status_code == 400
    assert "has no valid e-mail address" in answer.text
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice"]
    assert not [e for e in events(desk, case.id) if e[2] == "message-to-customer"]


def test_approve_is_for_supervisors(desk: Desk, clock: Clock) -> None:
    case = escalated(desk, clock)
    sam = signed_in(desk, "sam")
    answer = act(sam, case, "approve", reason="enough")
    assert answer.status_code == 403
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "restrict"]
    assert step.state == "proposed"
    assert not [e for e in events(desk, case.id) if e[2] == "action-approved"]
    sue = signed_in(desk, "sue")
    page = done(sue, act(sue, case, "approve", approve="", reason="enough"), case)
    assert f"{case.reference}: restrict approved" in page
    (event,) = [e for e in events(desk, case.id) if e[2] == "action-approved"]
    assert event[:2] == ("supervisor", "sue") and event[3]["action"] == "restrict"
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    with desk.engine.connect() as conn:
        state = conn.execute(select(TimelineStep.state).where(
            TimelineStep.id == step.id)).scalar_one()
    assert state == "done"


def test_approve_an_action_that_does_not_fit_is_an_error(desk: Desk) -> None:
    case = notified(desk)
    sue = signed_in(desk, "sue")
    answer = act(sue, case, "approve", approve="restore", reason="x")
    assert answer.status_code == 400 and "nothing to restore" in answer.text
    answer = act(sue, case, "approve", approve="", reason="x")
    assert answer.status_code == 400 and "no proposed action" in answer.text
    answer = act(sue, case, "approve", approve="explode", reason="x")
    assert answer.status_code == 400 and "is not an action" in answer.text
    assert not [e for e in events(desk, case.id) if e[2] == "action-approved"]


def test_waiving_fees_is_for_supervisors(desk: Desk, clock: Clock) -> None:
    case = escalated(desk, clock)
    deliver(desk, arf("45.137.21.7", 2))  # a claim on an escalated case: a second fee
    first, second = fees_of(desk, case.id)
    sam = signed_in(desk, "sam")
    assert act(sam, case, "waive-fee", reason="goodwill").status_code == 403
    assert act(sam, case, "waive-fee", fee_id=str(first.id),
               reason="goodwill").status_code == 403
    assert [f.state for f in fees_of(desk, case.id)] == ["assessed", "assessed"]
    sue = signed_in(desk, "sue")
    page = done(sue, act(sue, case, "waive-fee", fee_id=str(first.id),
                         reason="first offence"), case)
    assert f"{case.reference}: fee {first.id} waived" in page
    assert [(f.state, f.waived_by, f.waive_reason) for f in fees_of(desk, case.id)] == [
        ("waived", "sue", "first offence"), ("assessed", None, None)]
    page = done(sue, act(sue, case, "waive-fee", fee_id="", reason="cooperated"), case)
    assert f"{case.reference}: 1 fee(s) waived" in page
    assert [f.state for f in fees_of(desk, case.id)] == ["waived", "waived"]
    waived = [e for e in events(desk, case.id) if e[2] == "fee-waived"]
    assert [(e[0], e[1], e[3]["fee_id"]) for e in waived] == [
        ("supervisor", "sue", first.id), ("supervisor", "sue", second.id)]
    assert ">cooperated<" in page  # the reason in the fee table


def test_a_wrong_waiver_changes_nothing(desk: Desk, clock: Clock) -> None:
    case = escalated(desk, clock)
    other = notified(desk, "46.29.160.5")  # no fees
    sue = signed_in(desk, "sue")
    (fee,) = fees_of(desk, case.id)
    answer = act(sue, case, "waive-fee", fee_id=str(fee.id), reason="")
    assert answer.status_code == 400 and "needs a reason" in answer.text
    answer = act(sue, other, "waive-fee", fee_id=str(fee.id), reason="wrong case")
    assert answer.status_code == 400 and "is not a fee of" in answer.text
    answer = act(sue, other, "waive-fee", fee_id="", reason="none there")
    assert answer.status_code == 400 and "no assessed fee" in answer.text
    answer = act(sue, case, "waive-fee", fee_id="1; DROP", reason="x")
    assert answer.status_code == 400 and "is not a fee number" in answer.text
    assert [f.state for f in fees_of(desk, case.id)] == ["assessed"]


@pytest.mark.parametrize("action", ["resolve", "escalate", "extend", "note", "message",
                                    "approve", "waive-fee"])
def test_a_form_without_the_csrf_token_changes_nothing(desk: Desk, clock: Clock,
                                                       action: str) -> None:
    case = escalated(desk, clock) if action in ("approve", "waive-fee") else notified(desk)
    before = events(desk, case.id)
    sue = signed_in(desk, "sue")
    data = {"reason": "r", "text": "t", "business_days": "2", "until": ""}
    for answer in (act(sue, case, action, token=False, **data),
                   act(sue, case, action, token=False, csrf="forged", **data)):
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert events(desk, case.id) == before
    assert case_by_id(desk, case.id).state == case.state


# ---- who lifts a restriction: the web page and the API go through the case rule --------------

def restricted(desk: Desk, clock: Clock) -> Any:
    """A case escalated at its deadline and restricted with a supervisor's approval."""
    case = escalated(desk, clock)
    sue = signed_in(desk, "sue")
    done(sue, act(sue, case, "approve", approve="", reason="no answer"), case)
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert case.state == "restricted"
    return case


def restore_steps(desk: Desk, case_id: int) -> list[tuple[str, Any]]:
    return [(s.state, (s.detail or {}).get("approved_by")) for s in steps_of(desk, case_id)
            if s.kind == "restore"]


def test_a_specialist_resolving_a_restricted_case_on_the_page_does_not_lift_the_restriction(
        desk: Desk, clock: Clock) -> None:
    case = restricted(desk, clock)
    sam = signed_in(desk, "sam")
    page = done(sam, act(sam, case, "resolve", reason="customer cleaned up"), case)
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    assert restore_steps(desk, case.id) == [("proposed", None)]
    assert "restore proposed" in page and "the proposed: restore" in page
    sue = signed_in(desk, "sue")
    done(sue, act(sue, case, "approve", approve="", reason="ok"), case)
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "resolved"
    assert restore_steps(desk, case.id) == [("done", "sue")]


def test_a_specialist_resolving_a_restricted_case_by_the_api_does_not_lift_the_restriction(
        desk: Desk, clock: Clock) -> None:
    case = restricted(desk, clock)
    client = client_for(desk)
    url = f"/api/v1/cases/{case.reference}/actions"
    sam = {"Authorization": f"Bearer {auth.add_token(desk.engine, 'sam', 't', clock())}"}
    answer = client.post(url, headers=sam, json={"action": "resolve", "reason": "fixed"})
    assert answer.status_code == 200, answer.text
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    assert restore_steps(desk, case.id) == [("proposed", None)]
    assert "restore proposed" in answer.json()["result"]
    shown = client.get(f"/api/v1/cases/{case.reference}", headers=sam).json()
    assert [s["kind"] for s in shown["steps"] if s["state"] == "proposed"] == ["restore"]


def test_the_case_page_says_when_unauthenticated_claims_wait_for_a_specialist(
        desk: Desk, clock: Clock) -> None:
    for n, sender in enumerate(("a@one.example", "b@two.example", "c@three.example")):
        message_id = deliver(desk, person("Spam from 45.137.21.7",
                                          "Your customer at 45.137.21.7 spammed me.",
                                          f"u{n}", sender=sender, authentic=False))
        clock.now += timedelta(minutes=1)
    case = the_case(desk, message_id)
    page = html_of(signed_in(desk, "sam"), f"/cases/{case.reference}")
    assert "3 unauthenticated claims: a specialist decides whether to escalate" in page
    assert page.count("(unauthenticated)") == 3
    assert case_by_id(desk, case.id).state == "open"
