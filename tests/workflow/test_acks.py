"""Acknowledgements to every person who writes in, not only when a case opens: a complaint
that joins a case, goes to review or is not about us gets one acknowledgement with a
reference (the case's, or the message's own); RFC 3834-safe (Auto-Submitted: auto-replied,
In-Reply-To/References; never to automated senders, bulk or list mail, null senders, machines'
addresses or our own), to authenticated senders only, at most one per reporter address per
hour."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Event, MessageState, Notice
from abuse_desk.parsers.base import Disposition, ParseResult
from abuse_desk.workflow.acks import (
    automated_reason,
    machine_address,
    message_reference,
    own_address,
)
from sqlalchemy import select

from tests.workflow.workflow_support import (
    START,
    Clock,
    authenticated,
    deliver,
    message_row_of,
    outbox,
    person,
    reports_of,
    text_of,
    the_case,
    workflow_desk,
)

OURS = ("Phishing site at 45.137.21.7",  # customer C-1
        "Your server 45.137.21.7 hosts a phishing page stealing bank logins: "
        "http://45.137.21.7/bank/login")
NOT_OURS = ("Phishing site at 198.51.100.7",  # nobody's
            "A phishing page stealing bank logins: http://198.51.100.7/bank/login")
JANE = "jane@people.example"


def acks(desk: Desk, to: str = JANE) -> list[Any]:
    desk.workflow.run_due()
    return [m for m in outbox(desk) if m["To"] == to]


def ack_rows(desk: Desk) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Notice).where(Notice.kind == "ack")
                                 .order_by(Notice.id)))


def test_a_complaint_that_is_not_ours_is_acknowledged_with_the_messages_reference(
        desk: Desk) -> None:
    message_id = deliver(desk, person(*NOT_OURS, "n1"))
    (report,) = reports_of(desk, message_id)
    assert report.case_id is None and report.review_reason  # for a person: nobody's address

    (ack,) = acks(desk)
    reference = message_reference(message_id, START)
    assert reference == f"M-2026-{message_id:06d}"
    assert ack["Subject"] == f"[Abuse Report {reference}] We received your report"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<n1@people.example>"
    assert ack["References"] == "<n1@people.example>"
    assert reference in text_of(ack)
    (row,) = ack_rows(desk)
    assert (row.case_id, row.message_id, row.state) == (None, message_id, "sent")
    with desk.engine.connect() as conn:  # its delivery is on the message's audit trail
        sent = conn.execute(select(Event.action).where(
            Event.subject_type == "message", Event.subject_id == message_id,
            Event.action == "notice-sent")).all()
    assert len(sent) == 1


def test_a_complaint_that_opens_a_case_is_acknowledged_with_the_cases_reference(
        desk: Desk) -> None:
    case = the_case(desk, deliver(desk, person(*OURS, "o1")))

    (ack,) = acks(desk)
    assert ack["Subject"] == f"[Abuse Case {case.reference}] We received your report"


def test_a_complaint_that_joins_a_case_is_acknowledged(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, person(*OURS, "j1", sender="ann@one.example")))
    joined = the_case(desk, deliver(desk, person(*OURS, "j2", sender="bob@two.example")))
    assert joined.id == case.id

    (ack,) = acks(desk, "bob@two.example")
    assert f"[Abuse Case {case.reference}]" in ack["Subject"]
    assert len(acks(desk, "ann@one.example")) == 1


def test_a_complaint_in_review_as_a_whole_is_acknowledged(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(raw: bytes, limits: Any = None) -> ParseResult:
        return ParseResult(Disposition.REPORT, "text",
                           review_reasons=["the attachment could not be read"])

    monkeypatch.setattr(desk.examination.parsers, "parse", unreadable)
    message_id = deliver(desk, person(*NOT_OURS, "r1"))
    assert message_row_of(desk, message_id).state == MessageState.REVIEW

    (ack,) = acks(desk)
    assert f"[Abuse Report M-2026-{message_id:06d}]" in ack["Subject"]


@pytest.mark.parametrize("headers, mail_from", [
    ("Auto-Submitted: auto-generated\r\n", JANE),
    ("Auto-Submitted: auto-replied\r\n", JANE),
    ("Precedence: bulk\r\n", JANE),
    ("Precedence: list\r\n", JANE),
    ("List-Id: <abuse.lists.example>\r\n", JANE),
    ("List-Unsubscribe: <mailto:leave@lists.example>\r\n", JANE),
    ("X-Auto-Response-Suppress: All\r\n", JANE),
    ("", None),  # a null sender
    ("", "<>"),
    ("", "MAILER-DAEMON@people.example"),
    ("", "no-reply@people.example"),
    ("", "abuse-list-request@people.example"),
], ids=lambda v: str(v).strip()[:30])
def test_automated_senders_get_no_acknowledgement_even_without_a_case(
        desk: Desk, headers: str, mail_from: str | None) -> None:
    deliver(desk, person(*NOT_OURS, "a1", extra_headers=headers), mail_from=mail_from)

    assert acks(desk) == []
    assert ack_rows(desk) == []


@pytest.mark.parametrize("sender", ["noreply@people.example", "do-not-reply@people.example",
                                    "owner-abuse@people.example"])
def test_machines_addresses_get_no_acknowledgement(desk: Desk, sender: str) -> None:
    deliver(desk, person(*NOT_OURS, "m1", sender=sender))

    assert acks(desk, sender) == []


def test_an_unauthenticated_sender_gets_no_acknowledgement(desk: Desk) -> None:
    deliver(desk, person(*NOT_OURS, "u1", authentic=False))

    assert acks(desk) == []


@pytest.mark.parametrize("sender", ["abuse@integra-isp.example", "postmaster@localhost",
                                    "abuse+r-abc@integra-isp.example"])
def test_our_own_addresses_get_no_acknowledgement(desk: Desk, sender: str) -> None:
    deliver(desk, person(*NOT_OURS, "own", sender=sender))

    assert acks(desk, sender) == []


def test_at_most_one_acknowledgement_per_reporter_per_hour(desk: Desk, clock: Clock) -> None:
    for n in range(3):  # within the hour: one acknowledgement
        clock.now += timedelta(minutes=10)
        deliver(desk, person(*NOT_OURS, f"h{n}"))
    assert len(acks(desk)) == 1

    clock.now += timedelta(minutes=61)  # an hour after the first
    deliver(desk, person(*OURS, "h9"))
    assert len(acks(desk)) == 2
    assert len(acks(desk, "ann@one.example")) == 0  # per address: another reporter ...
    deliver(desk, person(*OURS, "h10", sender="ann@one.example"))
    assert len(acks(desk, "ann@one.example")) == 1  # ... has its own


def test_one_acknowledgement_per_message_when_a_specialist_decides_later(desk: Desk) -> None:
    from abuse_desk.casework.review import ReviewDecision

    message_id = deliver(desk, person(*NOT_OURS, "s1"))
    assert len(acks(desk)) == 1
    (report,) = reports_of(desk, message_id)

    desk.review.decide(ReviewDecision(report.id, "admin", type="phishing", customer="C-1"))

    (report,) = reports_of(desk, message_id)
    assert report.case_id is not None  # the complaint has a case now ...
    assert len(ack_rows(desk)) == 1  # ... and its reporter was acknowledged once


def test_a_reply_to_an_acknowledgement_without_a_case_goes_to_a_person(desk: Desk) -> None:
    deliver(desk, person(*NOT_OURS, "f1"))
    (ack,) = acks(desk)

    reply = person(f"Re: {ack['Subject']}", "Any news?", "f2",
                   extra_headers=f"In-Reply-To: {ack['Message-ID']}\r\n")
    message_id = deliver(desk, reply)

    row = message_row_of(desk, message_id)
    assert row.state == MessageState.REVIEW
    assert "follow-up to acknowledgement" in row.error


def test_a_bounce_of_an_acknowledgement_without_a_case_marks_it(desk: Desk) -> None:
    deliver(desk, person(*NOT_OURS, "b1"))
    acks(desk)
    (row,) = ack_rows(desk)
    dsn = (f"From: Mail Delivery System <MAILER-DAEMON@people.example>\r\n"
           f"To: abuse+b-{row.bounce_token}@integra-isp.example\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
           "boundary=\"d\"\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n"
           "--d\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
           "mx.people.example\r\n\r\nFinal-Recipient: rfc822; jane@people.example\r\n"
           "Action: failed\r\nStatus: 5.1.1\r\n--d--\r\n").encode()

    deliver(desk, dsn, mail_from=None)

    (row,) = ack_rows(desk)
    assert row.state == "bounced"


def test_rfc_3834_rules_one_by_one() -> None:
    person_mail = b"From: jane@people.example\r\nSubject: spam\r\n\r\nbody\r\n"
    assert automated_reason(person_mail, JANE, "text") is None
    assert automated_reason(person_mail, JANE, "arf") == "machine format arf"
    assert automated_reason(b"Auto-Submitted: no\r\n" + person_mail, JANE, "text") is None
    assert machine_address("MAILER-DAEMON@example.net")
    assert machine_address("list-request@example.net")
    assert not machine_address("postmaster@example.net")  # often a person at another ISP
    assert not machine_address("jane.noreply.fan@example.net")


def test_own_addresses(tmp_path: Path, clock: Clock) -> None:
    config = workflow_desk(tmp_path, clock).config
    assert own_address(config, "ABUSE@integra-isp.example")
    assert own_address(config, "abuse+b-token@integra-isp.example")
    assert own_address(config, "postmaster@localhost")
    assert not own_address(config, "noc@integra-isp.example")
    assert not own_address(config, "abuse@people.example")


def test_the_header_helper_still_authenticates() -> None:
    # the tests' boundary MTA says DMARC passed for the person's domain
    assert re.match(r"Authentication-Results: mx\.desk\.test; dmarc=pass",
                    authenticated("people.example"))


def test_an_acknowledgement_without_a_case_is_handed_to_the_broker_at_once(desk: Desk) -> None:
    sent: list[tuple[str, int]] = []
    desk.workflow.send = lambda actor, ident: sent.append((actor, ident))

    deliver(desk, person(*NOT_OURS, "k1"))

    (row,) = ack_rows(desk)
    assert sent == [("deliver_notice", row.id)]
    assert desk.workflow.deliver_notice(row.id) == "sent"
    assert desk.workflow.deliver_notice(row.id) == "skipped"  # sent once, however often asked


def test_a_reply_to_such_an_acknowledgement_joins_the_case_a_specialist_opened_since(
        desk: Desk) -> None:
    from abuse_desk.casework.review import ReviewDecision

    message_id = deliver(desk, person(*NOT_OURS, "c1"))
    (ack,) = acks(desk)
    (report,) = reports_of(desk, message_id)
    desk.review.decide(ReviewDecision(report.id, "admin", type="phishing", customer="C-1"))
    (report,) = reports_of(desk, message_id)

    reply = person(f"Re: {ack['Subject']}", "Any news?", "c2",
                   extra_headers=f"In-Reply-To: {ack['Message-ID']}\r\n")
    follow_up = deliver(desk, reply)

    row = message_row_of(desk, follow_up)
    assert (row.state, row.case_id) == (MessageState.PROCESSED, report.case_id)
    with desk.engine.connect() as conn:
        replied = conn.execute(select(Event.actor_kind, Event.action).where(
            Event.subject_type == "case", Event.subject_id == report.case_id,
            Event.action == "reporter-replied")).all()
    assert replied == [("reporter", "reporter-replied")]
