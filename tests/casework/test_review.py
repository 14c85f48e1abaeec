"""What the review pages use of ``classifier.review`` beyond ``decide``: the queue's filters,
the candidates of a report with how each was found, merging a report into a case (and when that
is refused), and reprocessing a message that waits for a person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.casework import review
from abuse_desk.core.models import Case, CaseState, Event, FeeEntry, Message, MessageState, Report
from abuse_desk.workflow import cases
from sqlalchemy import select, update

from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    message_row_of,
    person,
    reports_of,
    the_case,
    workflow_desk,
    xarf4_phishing,
)

SAM = cases.Actor("specialist", "sam")


def only_report(desk: Desk, message_id: int) -> Any:
    (report,) = reports_of(desk, message_id)
    return report


def unowned(desk: Desk, n: int = 1) -> Any:
    """A complaint about an address nobody holds: a report in the queue."""
    return only_report(desk, deliver(desk, person("hello", f"odd things from 46.29.161.{n}",
                                                  f"odd{n}")))


def events(desk: Desk, subject_type: str, subject_id: int) -> list[tuple[str, str, str]]:
    with desk.engine.connect() as conn:
        return [(e.actor_kind, e.actor, e.action) for e in conn.execute(
            select(Event).where(Event.subject_type == subject_type,
                                Event.subject_id == subject_id).order_by(Event.id))]


# ---- the queue's filters ------------------------------------------------------------------------

def item(received: str, reasons: list[str], category: str | None = None,
         reporter: str | None = None) -> dict[str, Any]:
    return {"received_at": received, "review_reasons": reasons, "category": category,
            "reporter": reporter, "report_id": 1, "message_id": 1}


def test_filter_queue_by_reason_category_reporter_and_age() -> None:
    now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    old = item("2026-11-24T09:00:00Z", ["no customer resolves"], "spam", "FBL <fbl@a.example>")
    new = item("2026-11-24T14:30:00Z", ["customers disagree: x is C-1"], None, None)
    items = [old, new]
    assert review.filter_queue(items, review.QueueFilter(), now) == items
    assert review.filter_queue(items, review.QueueFilter(reason="DISAGREE"), now) == [new]
    assert review.filter_queue(items, review.QueueFilter(category="spam"), now) == [old]
    assert review.filter_queue(items, review.QueueFilter(category="none"), now) == [new]
    assert review.filter_queue(items, review.QueueFilter(reporter="fbl@"), now) == [old]
    assert review.filter_queue(items, review.QueueFilter(older_than_hours=6), now) == [old]
    assert review.filter_queue(items, review.QueueFilter(older_than_hours=6.5), now) == []
    assert review.filter_queue(items, review.QueueFilter(older_than_hours=0), now) == items
    assert not review.QueueFilter().active and review.QueueFilter(category="spam").active


@pytest.mark.parametrize(("reason", "kind"), [
    ("no customer resolves", "no customer resolves"),
    ("customers disagree: source_ip 45.137.21.9 is C-1", "customers disagree"),
    ("category confidence 0.00 below threshold 0.60", "category confidence"),
    ("a reply to one of our mails, but no case matches (reference 'C-1')",
     "a reply to one of our mails, but no case matches"),
    ("parser acns failed: KeyError: 'IP_Address'", "parser acns failed"),
])
def test_reason_kind_drops_the_particulars(reason: str, kind: str) -> None:
    assert review.reason_kind(reason) == kind


def test_next_in_queue_follows_the_item_and_wraps(desk: Desk) -> None:
    first, second, third = (unowned(desk, n) for n in (1, 2, 3))
    items = desk.review.queue()
    assert [i["report_id"] for i in items] == [first.id, second.id, third.id]
    after_first = desk.review.next_in_queue(items[0])
    assert after_first is not None and after_first["report_id"] == second.id
    last = desk.review.next_in_queue(items[2], (third.id, third.message_id))
    assert last is not None and last["report_id"] == first.id  # nothing after: the first
    anywhere = desk.review.next_in_queue(None)
    assert anywhere is not None and anywhere["report_id"] == first.id


# ---- a report's candidates ----------------------------------------------------------------------

def test_report_detail_says_how_each_candidate_was_found(desk: Desk) -> None:
    report = only_report(desk, deliver(desk, xarf4_phishing(
        "45.137.21.9", "http://shop.beta.example/x", "two")))
    detail = desk.review.report_detail(report.id)
    assert detail is not None
    assert detail["in_queue"] and detail["customer"] == "C-1"
    by_customer = {c["customer"]: c for c in detail["candidates"]}
    assert list(by_customer) == ["C-1", "C-2"]  # the one named now first
    assert by_customer["C-1"]["chosen"] and by_customer["C-1"]["name"] == "Alpha Hosting"
    assert by_customer["C-1"]["ways"] == [
        "45.137.21.0/24 by source IP 45.137.21.9 at the incident's time "
        "(2026-11-24T14:00:00Z)"]
    assert by_customer["C-2"]["ways"] == ["shop.beta.example by URL host shop.beta.example",
                                          "shop.beta.example by domain shop.beta.example"]
    assert detail["raw"].startswith(b"From: R <r@reporter.example>")
    assert desk.review.report_detail(999) is None


# ---- merging into a case ------------------------------------------------------------------------

def test_merge_makes_the_report_a_claim_with_the_cases_customer_and_type(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    report = unowned(desk)
    merged = desk.review.merge_into_case(report.id, f" {case.reference.lower()} ", "sam")
    assert (merged.case_id, merged.reference, merged.customer, merged.type, merged.state) == (
        case.id, case.reference, "C-1", "spam", "open")
    assert not merged.reopened
    stored = only_report(desk, report.message_id)
    assert (stored.case_id, stored.customer_id, stored.category, stored.type) == (
        case.id, case.customer_id, "spam", "spam")
    assert (stored.review_reason, stored.reviewed_by) == (None, "sam")
    assert stored.decision["merged_into"]["case"] == case.reference
    assert events(desk, "report", report.id) == [("specialist", "sam", "review-merge")]
    assert ("specialist", "sam", "claim-added") in events(desk, "case", case.id)
    assert desk.review.queue() == []


def test_merge_into_a_resolved_case_reopens_it(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    with desk.engine.begin() as conn:
        cases.resolve(conn, desk.config.workflow, case.id, START, SAM, "fixed")
    clock.now += timedelta(hours=2)
    merged = desk.review.merge_into_case(unowned(desk).id, case.reference, "sam")
    assert merged.reopened and merged.state == CaseState.OPEN.value
    assert merged.deadline_at is not None and merged.deadline_at > clock.now
    assert ("specialist", "sam", "reopened") in events(desk, "case", case.id)


def test_merge_into_an_escalated_case_assesses_the_claims_fee(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    with desk.engine.begin() as conn:
        cases.escalate(conn, desk.config.workflow, case.id, START, SAM, "test")
    report = unowned(desk)
    desk.review.merge_into_case(report.id, case.reference, "sam")
    with desk.engine.connect() as conn:
        fees = set(conn.execute(select(FeeEntry.report_id).where(
            FeeEntry.case_id == case.id)).scalars())
    assert report.id in fees


@pytest.mark.parametrize("state", [CaseState.CLOSED, CaseState.TERMINATED])
def test_merge_is_refused_for_a_case_that_takes_no_claim(desk: Desk, state: CaseState) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    with desk.engine.begin() as conn:
        conn.execute(update(Case).where(Case.id == case.id).values(state=state.value))
    report = unowned(desk)
    with pytest.raises(review.ReviewError, match=f"is {state.value}: it takes no more claims"):
        desk.review.merge_into_case(report.id, case.reference, "sam")
    stored = only_report(desk, report.message_id)
    assert (stored.case_id, stored.reviewed_at) == (None, None)
    assert events(desk, "report", report.id) == []
    assert case_by_id(desk, case.id).claims == 1


def test_merge_refusals_say_what_to_do(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    report = unowned(desk)
    with pytest.raises(review.ReviewError, match="no case 'C-2026-000404'"):
        desk.review.merge_into_case(report.id, "C-2026-000404", "sam")
    with pytest.raises(review.ReviewError, match="name the case"):
        desk.review.merge_into_case(report.id, "  ", "sam")
    with pytest.raises(review.ReviewError, match="no report 999"):
        desk.review.merge_into_case(999, case.reference, "sam")
    in_case = only_report(desk, the_case_message(desk, case.id))
    with pytest.raises(review.ReviewError, match=f"already a claim on case {case.reference}"):
        desk.review.merge_into_case(in_case.id, case.reference, "sam")


def the_case_message(desk: Desk, case_id: int) -> int:
    with desk.engine.connect() as conn:
        return int(conn.execute(select(Report.message_id).where(
            Report.case_id == case_id)).scalar_one())


# ---- reprocessing --------------------------------------------------------------------------------

def test_reprocess_runs_the_pipeline_again_under_the_actors_name(desk: Desk) -> None:
    reply = deliver(desk, person("Re: [Abuse Case C-2026-000001] spam", "Fixed.", "r1",
                                 sender="noc@alpha.example"))
    assert message_row_of(desk, reply).state == MessageState.REVIEW
    again = desk.review.reprocess(reply, SAM)
    assert (again.state, again.case, again.reports) == ("review", None, [])
    assert "no case matches" in (again.error or "")

    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    done = desk.review.reprocess(reply, SAM)
    assert (done.state, done.case, done.error) == ("processed", case.reference, None)
    assert message_row_of(desk, reply).case_id == case.id
    assert [a for a in events(desk, "message", reply) if a[1] == "sam"] == [
        ("specialist", "sam", "reprocess")] * 2
    with pytest.raises(review.ReviewError, match="is processed, not waiting for review"):
        desk.review.reprocess(reply, SAM)
    with pytest.raises(review.ReviewError, match="no message 999"):
        desk.review.reprocess(999, SAM)


def test_reprocess_refuses_a_message_that_has_reports(desk: Desk) -> None:
    report = unowned(desk)
    with desk.engine.begin() as conn:
        conn.execute(update(Message).where(Message.id == report.message_id).values(
            state=MessageState.REVIEW.value, error="odd"))
    with pytest.raises(review.ReviewError, match="has reports already"):
        desk.review.reprocess(report.message_id, SAM)
    stored = message_row_of(desk, report.message_id)
    assert (stored.state, stored.error) == (MessageState.REVIEW, "odd")  # rolled back
    assert events(desk, "message", report.message_id) == [("system", "pipeline", "processed")]


# ---- a specialist's decision ends the review item -----------------------------------------------

STRICT_FBL = {"name": "Strict FBL", "senders": ["fbl@strict.example"], "require_dkim": True}
DMCA = ("DMCA Notice of copyright infringement",
        "Copyright infringement notice. The work Movie X was shared via BitTorrent from "
        "45.137.21.9 at 2026-11-24T12:00:00Z. Infringing file: movie.mkv.")


def strict_desk(tmp_path: Path, clock: Clock) -> Desk:
    """A desk that trusts a feedback loop only with its DKIM signature."""
    from tests.workflow.workflow_support import TRUSTED_FBL

    return workflow_desk(tmp_path, clock,
                         classifier={"trusted_reporters": [TRUSTED_FBL, STRICT_FBL]})


def in_queue(desk: Desk, report_id: int) -> bool:
    return any(i["report_id"] == report_id for i in desk.review.queue())


def test_a_decision_on_a_report_whose_signature_does_not_verify_opens_its_case(
        tmp_path: Path, clock: Clock) -> None:
    desk = strict_desk(tmp_path, clock)
    report = only_report(desk, deliver(desk, arf("45.137.21.7", 1,
                                                 sender="fbl@strict.example")))
    assert "DKIM does not verify" in report.review_reason and report.case_id is None
    outcome = desk.review.decide(review.ReviewDecision(report.id, "sam", type="spam",
                                                        customer="C-1"))
    assert outcome.review_reasons == []
    stored = only_report(desk, report.message_id)
    assert stored.case_id is not None and stored.review_reason is None
    assert stored.decision["overridden_reasons"][0].startswith("claims to be Strict FBL")
    assert not in_queue(desk, report.id)
    case = case_by_id(desk, stored.case_id)
    assert (case.state, case.type) == ("open", "spam")
    # Audited: the specialist's decision on the report, the case opened under their name.
    assert ("specialist", "sam", "review-decision") in events(desk, "report", report.id)
    assert ("specialist", "sam", "opened") in events(desk, "case", case.id)
    # Not authenticated by the decision: the reporter still did not prove who it is.
    assert not cases.is_authenticated(stored)


def test_type_then_customer_in_two_decisions_ends_the_item(tmp_path: Path,
                                                           clock: Clock) -> None:
    desk = strict_desk(tmp_path, clock)
    report = only_report(desk, deliver(desk, arf("45.137.21.7", 1,
                                                 sender="fbl@strict.example")))
    outcome = desk.review.decide(review.ReviewDecision(report.id, "sam", type="spam"))
    assert outcome.review_reasons and in_queue(desk, report.id)  # the customer is still open
    desk.review.decide(review.ReviewDecision(report.id, "sam", customer="C-1"))
    stored = only_report(desk, report.message_id)
    assert (stored.type, stored.case_id is not None, stored.reviewed_by) == ("spam", True, "sam")
    assert not in_queue(desk, report.id)


def test_a_copyright_notice_for_a_customer_without_a_case_opens_one(tmp_path: Path,
                                                                    clock: Clock) -> None:
    # A rights holder's agent the desk trusts only with its DKIM signature; this notice is not
    # signed, so it waits for a person, and the customer has no case.
    from tests.workflow.workflow_support import TRUSTED_FBL

    agent = {"name": "Studio agent", "senders": ["legal@studio.example"], "require_dkim": True}
    desk = workflow_desk(tmp_path, clock, classifier={"trusted_reporters": [TRUSTED_FBL, agent]})
    report = only_report(desk, deliver(desk, person(*DMCA, "dmca1", sender="legal@studio.example",
                                                    authentic=False)))
    assert report.review_reason and report.case_id is None
    desk.review.decide(review.ReviewDecision(report.id, "sam", type="copyright",
                                              customer="C-1"))
    stored = only_report(desk, report.message_id)
    case = case_by_id(desk, stored.case_id)
    assert (case.type, case.timeline_class, case.state) == ("copyright", "prompt", "open")


def test_not_abuse_closes_the_item(desk: Desk) -> None:
    report = unowned(desk)
    desk.review.decide(review.ReviewDecision(report.id, "sam", type="not-abuse"))
    stored = only_report(desk, report.message_id)
    assert (stored.case_id, stored.review_reason) == (None, None)
    assert not in_queue(desk, report.id)


# ---- a feed's rows are one entry of the queue ---------------------------------------------------

def feed_in_review(desk: Desk, ips: list[str]) -> int:
    """A Shadowserver table whose signature cannot be verified (it is not signed here): every
    row waits for a person. Returns the message id."""
    from tests.classifier.test_duplicates import shadowserver_mail

    rows = [f'"2026-11-24 10:00:00","{ip}","tcp",22,,"ssh",64500,"DE"\r\n' for ip in ips]
    raw = shadowserver_mail(rows).replace(b"Sun, 01 Mar 2026", b"Tue, 24 Nov 2026")
    message_id = deliver(desk, raw)
    assert all(r.review_reason for r in reports_of(desk, message_id))
    return message_id


def test_the_queue_groups_the_rows_of_one_message(desk: Desk) -> None:
    ips = [f"45.137.21.{n}" for n in range(1, 6)] + ["46.29.160.5", "46.29.161.9"]
    feed = feed_in_review(desk, ips)
    single = unowned(desk).message_id
    groups = review.group_queue(desk.review.queue())
    assert [(g["message_id"], g["count"]) for g in groups] == [(feed, 7), (single, 1)]
    (kind, n), = groups[0]["reasons"][:1]
    assert n == 7 and kind.startswith("claims to be Shadowserver but DKIM")
    assert groups[0]["customers"] == [("C-1", 5), ("C-3", 1), ("none", 1)]

    lines = review.queue_lines(desk.review.queue())
    heading = [line for line in lines if line.startswith(f"  message {feed} ")]
    assert len(heading) == 1 and "7 rows" in heading[0] and "C-1 (5)" in heading[0]
    assert sum(1 for line in lines if line.startswith("    report ")) == review.GROUP_SHOWN
    assert f"    ... and 4 more: abuse-desk review list --message {feed}" in lines
    # Asked for one message, every row of it.
    only = review.filter_queue(desk.review.queue(), review.QueueFilter(message=feed), START)
    assert len(only) == 7
    assert sum(1 for line in review.queue_lines(only, every_row=True)
               if line.startswith("    report ")) == 7


def test_one_decision_on_all_rows_of_a_feed_makes_one_case_and_one_notice(
        desk: Desk, clock: Clock) -> None:

    ips = [f"45.137.21.{n}" for n in range(1, 6)] + ["46.29.160.5"]
    feed = feed_in_review(desk, ips)
    rows = reports_of(desk, feed)
    alpha = [r for r in rows if r.source_ip.startswith("45.")]
    desk.review.decide(review.ReviewDecision(alpha[0].id, "sam", type="open-service",
                                              customer="C-1", all_rows=True))
    after = {r.id: r for r in reports_of(desk, feed)}
    case_ids = {after[r.id].case_id for r in alpha}
    assert len(case_ids) == 1 and None not in case_ids
    assert case_by_id(desk, case_ids.pop()).claims == 5
    other = next(r for r in rows if r.source_ip == "46.29.160.5")
    assert after[other.id].case_id is None and after[other.id].review_reason  # another customer
    assert [e[2] for e in events(desk, "report", alpha[3].id)] == ["review-decision"]
    desk.workflow.run_due()
    assert notices_to(desk, "noc@alpha.example") == ["notice"]
    groups = review.group_queue(desk.review.queue())
    assert [(g["message_id"], g["count"]) for g in groups] == [(feed, 1)]


def notices_to(desk: Desk, address: str) -> list[str]:
    """The kinds of the notices written to *address*, oldest first."""
    from abuse_desk.core.models import Notice

    with desk.engine.connect() as conn:
        return list(conn.execute(select(Notice.kind).where(Notice.to_addr == address)
                                 .order_by(Notice.id)).scalars())


def test_not_ours_closes_the_item_without_a_case(desk: Desk) -> None:
    report = unowned(desk)
    outcome = desk.review.decide(review.ReviewDecision(report.id, "sam", type="harassment",
                                                        not_ours=True))
    assert (outcome.customer_id, outcome.review_reasons) == (None, [])
    stored = only_report(desk, report.message_id)
    assert (stored.case_id, stored.customer_id, stored.review_reason) == (None, None, None)
    assert (stored.type, stored.reviewed_by) == ("harassment", "sam")
    assert stored.decision["not_ours"] == {"by": "sam"}
    assert not in_queue(desk, report.id)
    with desk.engine.connect() as conn:
        (detail,) = conn.execute(select(Event.detail).where(
            Event.subject_type == "report", Event.subject_id == report.id)).scalars()
    assert detail["outcome"] == "closed: not a customer of ours"
    with pytest.raises(review.ReviewError, match="not both"):
        desk.review.decide(review.ReviewDecision(report.id, "sam", customer="C-1",
                                                  not_ours=True))
