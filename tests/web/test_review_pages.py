"""The review queue pages of the specialists' desk through Starlette's test client: the queue and
its filters, one report (fields, raw message as text, candidate customers) and the decisions on
it, a message no report could be made of and "reprocess"; every change checked in the database,
with the signed-in specialist's name in the audit trail."""

from __future__ import annotations

import dataclasses
import html
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import (
    Case,
    CaseState,
    Customer,
    Event,
    Message,
    MessageState,
    Report,
    TrainingExample,
)
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from sqlalchemy import select, update
from starlette.testclient import TestClient

from tests.web.web_support import client_for, csrf_of, form_token, signed_in
from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    message_row_of,
    person,
    reports_of,
    the_case,
    xarf4_phishing,
)

SCRIPT = "<script>alert(1)</script>"
ROW = re.compile(r'<tr data-href="(/review/(?:report|message)/\d+)"')


@pytest.fixture
def sam(desk: Desk) -> TestClient:
    return signed_in(desk, "sam")


def deliver_at(desk: Desk, raw: bytes, received_at: datetime) -> int:
    """Store *raw* as received at *received_at* and run the pipeline on it."""
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            "sender@example.org", ["abuse@localhost"], received_at=received_at))])
    desk.pipeline.process(message_id)
    return message_id


def only_report(desk: Desk, message_id: int) -> Any:
    (report,) = reports_of(desk, message_id)
    return report


def queued(page: str) -> list[str]:
    """The rows of the queue page, as the URLs they open."""
    return ROW.findall(page)


def events_on(desk: Desk, subject_type: str, subject_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == subject_type, Event.subject_id == subject_id)
            .order_by(Event.id)))


def training(desk: Desk) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(TrainingExample).order_by(TrainingExample.id)))


def customer_id(desk: Desk, external_id: str) -> int:
    with desk.engine.connect() as conn:
        return int(conn.execute(select(Customer.id).where(
            Customer.external_id == external_id)).scalar_one())


def post(client: TestClient, page: str, action: str, **data: str) -> Any:
    """POST *data* to *action* with the CSRF token of *page*, as the page's form does."""
    return client.post(action, data={"csrf": form_token(client, page), **data})


def unknown_arf(desk: Desk, ip: str = "185.220.101.9", hours_ago: float = 3) -> int:
    """An FBL report (type spam) about an address no customer holds."""
    return deliver_at(desk, arf(ip), START - timedelta(hours=hours_ago))


def untyped_complaint(desk: Desk, hours_ago: float = 2) -> int:
    """A person's complaint naming an address nobody holds, with no recognizable type."""
    return deliver_at(desk, person("hello", "Something odd keeps coming from 46.29.161.7",
                                   "odd"), START - timedelta(hours=hours_ago))


def orphan_reply(desk: Desk, reference: str, hours_ago: float = 1) -> int:
    """A reply naming a case that does not exist (yet): a message without report, in review."""
    return deliver_at(desk, person(f"Re: [Abuse Case {reference}] spam from your network",
                                   "We fixed it <b>promptly</b>.", "reply1",
                                   sender="noc@alpha.example"),
                      START - timedelta(hours=hours_ago))


# ---- who may see the pages ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/review", "/review/report/1", "/review/message/1"])
def test_anonymous_get_goes_to_the_login_page(desk: Desk, path: str) -> None:
    answer = client_for(desk).get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")
    assert path in answer.headers["location"].replace("%2F", "/")


def test_anonymous_post_changes_nothing(desk: Desk) -> None:
    report = only_report(desk, unknown_arf(desk))
    answer = client_for(desk).post(f"/review/report/{report.id}/customer",
                                   data={"customer": "C-1", "csrf": "x"})
    assert answer.status_code == 401
    assert only_report(desk, report.message_id).customer_id is None


# ---- the queue ---------------------------------------------------------------------------------

def test_the_queue_lists_what_needs_a_person_oldest_first(desk: Desk, sam: TestClient) -> None:
    newer = only_report(desk, untyped_complaint(desk, hours_ago=2))
    older = only_report(desk, unknown_arf(desk, hours_ago=5))
    message_id = orphan_reply(desk, "C-2026-000077", hours_ago=1)

    page = sam.get("/review")
    assert page.status_code == 200
    assert queued(page.text) == [f"/review/report/{older.id}", f"/review/report/{newer.id}",
                                 f"/review/message/{message_id}"]
    text = page.text
    assert "<strong>3</strong> waiting for a person, the oldest received 5 h ago" in text
    assert "no customer resolves" in text
    assert "185.220.101.9" in text  # the source IP
    assert "arf" in text and "Mailbox FBL &lt;fbl@mailbox.example&gt;" in text
    assert "FW: Cheap watches 1" in text  # the subject
    assert "spam / spam" in text  # the suggested category and type
    assert "no case matches" in text  # the message's reason
    assert 'aria-current="page">Review queue' in text


def test_the_filters_narrow_the_queue(desk: Desk, sam: TestClient) -> None:
    fbl = only_report(desk, unknown_arf(desk, hours_ago=5))
    odd = only_report(desk, untyped_complaint(desk, hours_ago=2))
    reply = orphan_reply(desk, "C-2026-000077", hours_ago=1)
    every = {f"/review/report/{fbl.id}", f"/review/report/{odd.id}",
             f"/review/message/{reply}"}

    def rows(**query: str) -> set[str]:
        page = sam.get("/review", params=query)
        assert page.status_code == 200
        return set(queued(page.text))

    assert rows() == every
    assert rows(category="spam") == {f"/review/report/{fbl.id}"}
    assert rows(category="none") == {f"/review/report/{odd.id}", f"/review/message/{reply}"}
    assert rows(reason="CONFIDENCE") == {f"/review/report/{odd.id}"}  # any case
    assert rows(reason="no case matches") == {f"/review/message/{reply}"}
    assert rows(reporter="fbl@") == {f"/review/report/{fbl.id}"}
    assert rows(reporter="noc@alpha") == {f"/review/message/{reply}"}
    assert rows(age="3") == {f"/review/report/{fbl.id}"}
    assert rows(age="1.5", reporter="jane") == {f"/review/report/{odd.id}"}
    assert rows(category="network") == set()

    page = sam.get("/review", params={"category": "network"})
    assert "Nothing in the queue matches these filters" in page.text
    assert "<strong>3</strong> waiting" in page.text  # the total stays in view
    # Nonsense is said to be nonsense, and the whole queue shown.
    page = sam.get("/review", params={"age": "soon", "category": "<b>x</b>"})
    assert set(queued(page.text)) == every
    assert "is not a number of hours" in page.text
    assert "there is no category &#39;&lt;b&gt;x&lt;/b&gt;&#39;" in page.text
    # The filters' form keeps what was asked, escaped.
    page = sam.get("/review", params={"reporter": '"><script>'})
    assert 'value="&#34;&gt;&lt;script&gt;"' in page.text


def test_the_queue_pages_through_its_items(desk: Desk, sam: TestClient) -> None:
    # the running web desk reads its page size at each request
    object.__setattr__(desk.web, "config", dataclasses.replace(
        desk.config, web=dataclasses.replace(desk.config.web, page_size=2)))
    ids = [only_report(desk, unknown_arf(desk, f"185.220.101.{n}", hours_ago=10 - n)).id
           for n in range(1, 6)]
    first = sam.get("/review")
    assert queued(first.text) == [f"/review/report/{i}" for i in ids[:2]]
    assert 'href="/review?page=2" rel="next"' in first.text
    third = sam.get("/review", params={"page": "3"})
    assert queued(third.text) == [f"/review/report/{ids[4]}"]
    assert 'rel="next"' not in third.text and 'href="/review?page=2" rel="prev"' in third.text
    spam = sam.get("/review", params={"page": "2", "category": "spam"})
    assert 'href="/review?category=spam" rel="prev"' in spam.text


def test_an_empty_queue_says_so(sam: TestClient) -> None:
    page = sam.get("/review")
    assert page.status_code == 200
    assert "The review queue is empty: nothing needs a person." in page.text
    assert queued(page.text) == []


# ---- one report --------------------------------------------------------------------------------

def test_the_report_page_shows_fields_candidates_and_the_raw_message_as_text(
        desk: Desk, sam: TestClient) -> None:
    raw = xarf4_phishing("45.137.21.9", "http://shop.beta.example/login", "mixed",
                         subject="Phishing <b>urgent</b>", description=f"{SCRIPT} <b>bold</b>")
    report = only_report(desk, deliver_at(desk, raw, START - timedelta(hours=1)))
    assert report.review_reason.startswith("customers disagree")

    page = sam.get(f"/review/report/{report.id}")
    assert page.status_code == 200
    text = page.text
    # The mail's HTML is text everywhere: in the subject, the evidence and the raw message.
    assert SCRIPT not in text and "<b>bold</b>" not in text and "<b>urgent</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text
    raw_block = re.search(r'<pre class="raw">(.*?)</pre>', text, re.S)
    assert raw_block is not None
    assert html.unescape(raw_block.group(1)) == raw.decode()
    # Parsed fields.
    assert "<dt>Format</dt><dd>xarf4</dd>" in text
    assert "<dt>Source IP</dt><dd>45.137.21.9</dd>" in text
    assert "http://shop.beta.example/login" in text
    assert "r@reporter.example" in text
    assert "2026-11-24 09:00:00 EST" in text  # occurred at, in the desk's zone
    # The review reason and the candidates, each with how it was found.
    assert "customers disagree: source_ip 45.137.21.9 is C-1" in text
    assert ("45.137.21.0/24 by source IP 45.137.21.9 at the incident&#39;s time "
            "(2026-11-24 09:00 EST)") in text
    assert "shop.beta.example by URL host shop.beta.example" in text
    assert "Alpha Hosting" in text and "Beta Shop" in text
    # The decisions, each a POST form with the session's CSRF token.
    for action in ("type", "customer", "merge", "not-abuse"):
        assert f'action="/review/report/{report.id}/{action}"' in text
    assert csrf_of(text)
    assert '<optgroup label="network">' in text and '<option value="ddos">' in text


def test_a_large_raw_message_is_cut_with_a_note(desk: Desk, sam: TestClient) -> None:
    body = "Spam from 46.29.161.7\r\n" + ("y" * 70 + "\r\n") * 9000  # about 640 KiB
    report = only_report(desk, deliver_at(desk, person("Spam", body, "big"), START))
    page = sam.get(f"/review/report/{report.id}")
    assert page.status_code == 200
    assert "cut after the first 512 KiB" in page.text
    raw_block = re.search(r'<pre class="raw">(.*?)</pre>', page.text, re.S)
    assert raw_block is not None
    assert 500 * 1024 < len(html.unescape(raw_block.group(1))) <= 512 * 1024


def test_an_unknown_report_is_404(sam: TestClient) -> None:
    assert sam.get("/review/report/999").status_code == 404
    assert sam.get("/review/report/abc").status_code == 404


# ---- decisions ---------------------------------------------------------------------------------

def test_setting_the_customer_puts_the_report_in_a_case(desk: Desk, sam: TestClient) -> None:
    report = only_report(desk, unknown_arf(desk))
    later = only_report(desk, untyped_complaint(desk, hours_ago=1))
    page = f"/review/report/{report.id}"

    answer = post(sam, page, f"{page}/customer", customer="C-1")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/review/report/{later.id}"  # the queue's next

    report = only_report(desk, report.message_id)
    assert report.customer_id == customer_id(desk, "C-1")
    assert (report.reviewed_by, report.review_reason) == ("sam", None)
    case = case_by_id(desk, report.case_id)
    assert (case.type, case.state, case.claims) == ("spam", "open", 1)
    assert case.deadline_at is not None
    (decision,) = events_on(desk, "report", report.id)
    assert (decision.actor_kind, decision.actor, decision.action) == (
        "specialist", "sam", "review-decision")
    assert decision.detail["customer"] == "C-1"
    assert [(e.actor, e.action) for e in events_on(desk, "case", case.id)] == [
        ("sam", "opened")]
    assert training(desk) == []  # no type was decided: nothing to learn

    shown = sam.get(answer.headers["location"])
    assert (f"Report {report.id}: spam, customer C-1, opened case {case.reference} "
            "(deadline 2026-12-03 10:00 EST)") in shown.text
    assert f"/review/report/{report.id}" not in queued(sam.get("/review").text)


def test_a_type_then_a_customer_make_a_case_and_a_training_example(
        desk: Desk, sam: TestClient) -> None:
    report = only_report(desk, untyped_complaint(desk))
    page = f"/review/report/{report.id}"

    answer = post(sam, page, f"{page}/type", type="harassment")
    assert answer.status_code == 303
    # Still short of a case: back to the report, saying what is missing.
    assert answer.headers["location"] == page
    shown = sam.get(page).text
    assert (f"Report {report.id}: harassment, no customer yet; not in a case yet: "
            "no customer resolves") in shown
    stored = only_report(desk, report.message_id)
    assert (stored.category, stored.type, stored.case_id) == ("other", "harassment", None)
    (example,) = training(desk)
    assert (example.type, example.decided_by, example.report_id) == (
        "harassment", "sam", report.id)
    assert "Something odd keeps coming" in example.text

    answer = post(sam, page, f"{page}/customer", customer="C-2")
    assert answer.status_code == 303 and answer.headers["location"] == "/review"  # empty now
    case = the_case(desk, report.message_id)
    assert (case.customer_id, case.type) == (customer_id(desk, "C-2"), "harassment")
    shown = sam.get("/review").text
    assert f"opened case {case.reference} (deadline" in shown
    assert "The review queue is empty" in shown
    assert [e.actor for e in events_on(desk, "report", report.id)] == ["sam", "sam"]


def test_a_candidate_customer_is_one_click(desk: Desk, sam: TestClient) -> None:
    raw = xarf4_phishing("45.137.21.9", "http://shop.beta.example/login", "two")
    report = only_report(desk, deliver_at(desk, raw, START))
    page = sam.get(f"/review/report/{report.id}").text
    form = re.search(r'<form class="inline" method="post" action="(/review/report/\d+/customer)"'
                     r'>\s*<input type="hidden" name="csrf" value="([^"]+)">\s*'
                     r'<input type="hidden" name="customer" value="C-2">', page)
    assert form is not None
    answer = sam.post(form.group(1), data={"csrf": form.group(2), "customer": "C-2"})
    assert answer.status_code == 303
    case = the_case(desk, report.message_id)
    assert (case.customer_id, case.type) == (customer_id(desk, "C-2"), "phishing")


def test_not_abuse_takes_the_report_out_of_the_queue(desk: Desk, sam: TestClient) -> None:
    report = only_report(desk, untyped_complaint(desk))
    page = f"/review/report/{report.id}"
    answer = post(sam, page, f"{page}/not-abuse")
    assert answer.status_code == 303 and answer.headers["location"] == "/review"
    stored = only_report(desk, report.message_id)
    assert stored.decision["not_abuse"] is True
    assert (stored.type, stored.case_id, stored.reviewed_by) == (None, None, "sam")
    (example,) = training(desk)
    assert (example.type, example.decided_by) == ("not-abuse", "sam")
    shown = sam.get("/review").text
    assert f"Report {report.id}: not abuse" in shown
    assert queued(shown) == []


def test_merging_into_a_case_makes_the_report_a_claim(desk: Desk, sam: TestClient) -> None:
    case = the_case(desk, deliver_at(desk, arf("45.137.21.7"), START - timedelta(hours=4)))
    report = only_report(desk, untyped_complaint(desk))
    page = f"/review/report/{report.id}"
    assert f'<option value="{case.reference}"' not in sam.get(page).text  # not a candidate's

    answer = post(sam, page, f"{page}/merge", case=case.reference.lower())
    assert answer.status_code == 303 and answer.headers["location"] == "/review"

    stored = only_report(desk, report.message_id)
    assert stored.case_id == case.id
    assert (stored.customer_id, stored.category, stored.type) == (
        case.customer_id, "spam", "spam")
    assert (stored.review_reason, stored.reviewed_by) == (None, "sam")
    assert case_by_id(desk, case.id).claims == 2
    (merge,) = events_on(desk, "report", report.id)
    assert (merge.actor_kind, merge.actor, merge.action) == ("specialist", "sam", "review-merge")
    assert merge.detail["case"] == case.reference
    assert ("sam", "claim-added") in [(e.actor, e.action) for e in events_on(desk, "case",
                                                                              case.id)]
    (example,) = training(desk)
    assert (example.type, example.decided_by, example.report_id) == ("spam", "sam", report.id)
    shown = sam.get("/review").text
    assert (f"Report {report.id}: spam, customer C-1, joined case {case.reference} "
            "(deadline 2026-12-03 10:00 EST)") in shown


def test_merge_is_refused_for_a_closed_or_unknown_case(desk: Desk, sam: TestClient) -> None:
    case = the_case(desk, deliver_at(desk, arf("45.137.21.7"), START - timedelta(hours=4)))
    with desk.engine.begin() as conn:
        conn.execute(update(Case).where(Case.id == case.id).values(
            state=CaseState.CLOSED.value))
    report = only_report(desk, untyped_complaint(desk))
    page = f"/review/report/{report.id}"

    answer = post(sam, page, f"{page}/merge", case=case.reference)
    assert answer.status_code == 400
    assert f"case {case.reference} is closed: it takes no more claims" in answer.text
    assert f'value="{case.reference}"' in answer.text  # what was typed is kept
    answer = post(sam, page, f"{page}/merge", case="C-2026-999999")
    assert answer.status_code == 400
    assert "no case &#39;C-2026-999999&#39;" in answer.text

    stored = only_report(desk, report.message_id)
    assert (stored.case_id, stored.reviewed_at) == (None, None)
    assert events_on(desk, "report", report.id) == [] and training(desk) == []
    assert case_by_id(desk, case.id).claims == 1


def test_a_wrong_decision_reshows_the_page_with_the_reason(desk: Desk, sam: TestClient) -> None:
    report = only_report(desk, unknown_arf(desk))
    page = f"/review/report/{report.id}"
    answer = post(sam, page, f"{page}/customer", customer="C-404<b>")
    assert answer.status_code == 400
    assert "no customer &#39;C-404&lt;b&gt;&#39;: import it first" in answer.text
    assert f'action="{page}/customer"' in answer.text  # the forms are there to try again
    answer = post(sam, page, f"{page}/type", type="spamm")
    assert answer.status_code == 400 and "unknown type &#39;spamm&#39;" in answer.text
    assert post(sam, page, f"{page}/customer", customer=" ").status_code == 400
    assert post(sam, page, f"{page}/frobnicate").status_code == 404
    assert post(sam, "/review", "/review/report/999/customer",
                customer="C-1").status_code == 404
    stored = only_report(desk, report.message_id)
    assert (stored.customer_id, stored.reviewed_at) == (None, None)
    assert events_on(desk, "report", report.id) == []


def test_a_report_already_in_a_case_is_decided_on_the_case(desk: Desk, sam: TestClient) -> None:
    case = the_case(desk, deliver_at(desk, arf("45.137.21.7"), START))
    report = only_report(desk, case_message(desk, case.id))
    page = f"/review/report/{report.id}"
    shown = sam.get(page).text
    assert f"is a claim on case <a href=\"/cases/{case.reference}\">" in shown
    assert f'action="{page}/customer"' not in shown
    answer = post(sam, page, f"{page}/customer", customer="C-2")
    assert answer.status_code == 400
    assert f"already a claim on case {case.reference}" in answer.text
    assert only_report(desk, report.message_id).customer_id == customer_id(desk, "C-1")


def case_message(desk: Desk, case_id: int) -> int:
    with desk.engine.connect() as conn:
        return int(conn.execute(select(Report.message_id).where(
            Report.case_id == case_id)).scalar_one())


def test_a_post_without_csrf_is_refused_and_changes_nothing(desk: Desk,
                                                            sam: TestClient) -> None:
    report = only_report(desk, unknown_arf(desk))
    for data in ({"customer": "C-1"}, {"customer": "C-1", "csrf": "forged"}):
        answer = sam.post(f"/review/report/{report.id}/customer", data=data)
        assert answer.status_code == 403
    assert sam.post(f"/review/report/{report.id}/not-abuse").status_code == 403
    message_id = orphan_reply(desk, "C-2026-000001")
    assert sam.post(f"/review/message/{message_id}/reprocess").status_code == 403
    stored = only_report(desk, report.message_id)
    assert (stored.customer_id, stored.case_id, stored.reviewed_at) == (None, None, None)
    assert events_on(desk, "report", report.id) == []
    assert message_row_of(desk, message_id).state == MessageState.REVIEW
    assert [e.action for e in events_on(desk, "message", message_id)] == ["review"]


# ---- a message without report ------------------------------------------------------------------

def test_a_message_without_report_is_shown_and_reprocessed(desk: Desk, sam: TestClient) -> None:
    message_id = orphan_reply(desk, "C-2026-000001", hours_ago=2)
    queue = sam.get("/review").text
    assert queued(queue) == [f"/review/message/{message_id}"]

    page = f"/review/message/{message_id}"
    shown = sam.get(page).text
    assert "a reply to one of our mails, but no case matches" in shown
    assert "<dt>From</dt><dd>Jane Doe &lt;noc@alpha.example&gt;</dd>" in shown
    assert "Re: [Abuse Case C-2026-000001] spam from your network" in shown
    assert "<dt>Date</dt><dd>Tue, 24 Nov 2026 14:00:00 +0000</dd>" in shown
    assert "We fixed it &lt;b&gt;promptly&lt;/b&gt;." in shown and "<b>promptly" not in shown
    assert f'action="{page}/reprocess"' in shown

    # Reprocessing before the case exists: still a person's, said so.
    answer = post(sam, page, f"{page}/reprocess")
    assert answer.status_code == 303 and answer.headers["location"] == page
    assert "it still needs a person: a reply to one of our mails" in sam.get(page).text

    # The case it answers appears; reprocessing attaches the reply to it.
    case = the_case(desk, deliver_at(desk, arf("45.137.21.7"), START))
    assert case.reference == "C-2026-000001"
    answer = post(sam, page, f"{page}/reprocess")
    assert answer.status_code == 303 and answer.headers["location"] == "/review"
    stored = message_row_of(desk, message_id)
    assert (stored.state, stored.case_id, stored.error) == (
        MessageState.PROCESSED, case.id, None)
    actions = [(e.actor, e.action) for e in events_on(desk, "message", message_id)]
    assert actions == [("pipeline", "review"), ("sam", "reprocess"), ("pipeline", "review"),
                       ("sam", "reprocess"), ("pipeline", "processed")]
    assert ("customer-responded" in [e.action for e in events_on(desk, "case", case.id)])
    shown = sam.get("/review").text
    assert f"Message {message_id} reprocessed: attached to case {case.reference}" in shown
    assert queued(shown) == []

    # Nothing to reprocess any more.
    answer = post(sam, page, f"{page}/reprocess")
    assert answer.status_code == 400
    assert f"message {message_id} is processed, not waiting for review" in answer.text
    assert sam.get("/review/message/999").status_code == 404


def test_a_reprocessed_message_that_yields_a_report_leads_to_it(desk: Desk,
                                                               sam: TestClient) -> None:
    # As if a parser had failed on it (since fixed): the message waits for a person.
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(arf("185.220.101.9"), Envelope(
            "fbl@mailbox.example", ["abuse@localhost"], received_at=START))])
        conn.execute(update(Message).where(Message.id == message_id).values(
            state=MessageState.REVIEW.value, error="parser arf failed: KeyError: 'x'"))
    assert queued(sam.get("/review").text) == [f"/review/message/{message_id}"]
    page = f"/review/message/{message_id}"
    answer = post(sam, page, f"{page}/reprocess")
    assert answer.status_code == 303
    report = only_report(desk, message_id)
    assert answer.headers["location"] == f"/review/report/{report.id}"
    shown = sam.get(answer.headers["location"]).text
    assert (f"Message {message_id} reprocessed: report {report.id} needs review "
            "(no customer resolves)") in shown


def test_a_report_held_for_its_signature_is_decided_into_a_case(tmp_path: Path,
                                                                clock: Clock) -> None:
    from abuse_desk.web import auth

    from tests.web.web_support import PASSWORD, USERS
    from tests.workflow.workflow_support import TRUSTED_FBL, workflow_desk

    strict = {"name": "Strict FBL", "senders": ["fbl@strict.example"], "require_dkim": True}
    desk = workflow_desk(tmp_path, clock,
                         classifier={"trusted_reporters": [TRUSTED_FBL, strict]})
    for name, role in USERS.items():
        auth.add_user(desk.engine, name, role, PASSWORD, clock())
    sam = signed_in(desk, "sam")
    report = only_report(desk, deliver_at(desk, arf("45.137.21.7",
                                                    sender="fbl@strict.example"), START))
    assert "claims to be Strict FBL but DKIM" in report.review_reason
    page = f"/review/report/{report.id}"
    assert post(sam, page, f"{page}/type", type="spam").status_code == 303
    # The type alone does not end it (the customer is the specialist's to confirm) ...
    assert page in queued(sam.get("/review").text)
    answer = post(sam, page, f"{page}/customer", customer="C-1")
    assert answer.status_code == 303
    # ... type and customer do: the report opens its case, the reason overridden, audited.
    stored = only_report(desk, report.message_id)
    case = case_by_id(desk, stored.case_id)
    assert (case.type, case.customer_id, case.state) == ("spam", customer_id(desk, "C-1"),
                                                         "open")
    assert stored.review_reason is None
    assert "DKIM" in stored.decision["overridden_reasons"][0]
    assert f"opened case {case.reference}" in sam.get(answer.headers["location"]).text
    assert page not in queued(sam.get("/review").text)
    (_, decided) = events_on(desk, "report", report.id)
    assert (decided.actor, decided.detail["outcome"]) == ("sam", "to its customer's case")


def test_the_queue_page_shows_a_feeds_rows_under_one_heading(desk: Desk,
                                                             sam: TestClient) -> None:
    from tests.classifier.test_duplicates import shadowserver_mail

    rows = [f'"2026-11-24 10:00:00","45.137.21.{n}","tcp",22,,"ssh",64500,"DE"\r\n'
            for n in range(1, 9)]
    message_id = deliver_at(desk, shadowserver_mail(rows), START)
    reports = reports_of(desk, message_id)
    assert len(reports) == 8 and all(r.review_reason for r in reports)
    page = sam.get("/review").text
    assert page.count('<tr class="group">') == 1
    assert f"<strong>Message {message_id}: 8 rows</strong>" in page
    assert len(queued(page)) == 3  # the first rows; the rest behind one link
    assert f'href="/review?message={message_id}">&hellip; and 5 more rows' in page
    every = sam.get(f"/review?message={message_id}").text
    assert len(queued(every)) == 8
    assert "is not a message number" in sam.get("/review?message=abc").text


def test_setting_the_customer_for_all_rows_of_a_feed(desk: Desk, sam: TestClient) -> None:
    from tests.classifier.test_duplicates import shadowserver_mail

    rows = [f'"2026-11-24 10:00:00","45.137.21.{n}","tcp",22,,"ssh",64500,"DE"\r\n'
            for n in range(1, 5)]
    message_id = deliver_at(desk, shadowserver_mail(rows), START)
    first = reports_of(desk, message_id)[0]
    page = f"/review/report/{first.id}"
    shown = sam.get(page).text
    assert "and the 3 other rows of this message for the same customer" in shown
    assert post(sam, page, f"{page}/type", type="open-service",
                all_rows="1").status_code == 303
    assert all(r.case_id is None for r in reports_of(desk, message_id))  # customer next
    assert post(sam, page, f"{page}/customer", customer="C-1",
                all_rows="1").status_code == 303
    cases_of = {r.case_id for r in reports_of(desk, message_id)}
    assert len(cases_of) == 1 and None not in cases_of
    assert "The review queue is empty" in sam.get("/review").text


def test_not_ours_is_one_button(desk: Desk, sam: TestClient) -> None:
    report = only_report(desk, unknown_arf(desk))
    page = f"/review/report/{report.id}"
    assert f'action="{page}/not-ours"' in sam.get(page).text
    answer = post(sam, page, f"{page}/not-ours")
    assert answer.status_code == 303
    stored = only_report(desk, report.message_id)
    assert (stored.case_id, stored.review_reason, stored.reviewed_by) == (None, None, "sam")
    assert "about no customer of ours" in sam.get(answer.headers["location"]).text
