"""What a person does to a case through ``workflow.case_actions.apply``, here the parts the other
tests do not reach: a specialist's own message to the customer (a notice of kind "message",
delivered by the timeline like the others) and notes."""

from __future__ import annotations

from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.casework import actions as case_actions
from abuse_desk.core.models import Event
from abuse_desk.workflow import cases
from sqlalchemy import select

from tests.workflow.workflow_support import (
    arf,
    case_by_id,
    deliver,
    message_row_of,
    notices_of,
    outbox,
    text_of,
    the_case,
)

SAM = cases.Actor("specialist", "sam")


def case_events(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == "case", Event.subject_id == case_id).order_by(Event.id)))


def message(text: str, subject: str = "") -> case_actions.Request:
    return case_actions.Request("message", text, subject=subject)


def notified_case(desk: Desk, ip: str = "45.137.21.7") -> Any:
    case = the_case(desk, deliver(desk, arf(ip)))
    desk.workflow.run_due()
    return case


def test_a_message_is_a_notice_the_timeline_sends_threaded_under_the_first_notice(
        desk: Desk) -> None:
    case = notified_case(desk)
    (first,) = outbox(desk)
    text = "Hello,\n\nwe still see spam from 45.137.21.7 <b>today</b> & yesterday.\nRegards"
    said = case_actions.apply(desk.workflow, case.reference, message(text), SAM)
    assert said == f"{case.reference}: message to noc@alpha.example queued"
    notice = notices_of(desk, case.id)[-1]
    assert (notice.kind, notice.state, notice.to_addr) == ("message", "pending",
                                                          "noc@alpha.example")
    assert notice.subject.startswith(f"[Abuse Case {case.reference}] ")
    assert text in notice.body_text
    assert notice.body_html is None
    (event,) = [e for e in case_events(desk, case.id) if e.action == "message-to-customer"]
    assert (event.actor_kind, event.actor) == ("specialist", "sam")
    assert event.detail["notice_id"] == notice.id and event.detail["text"] == text

    assert desk.workflow.run_due().notices == {"sent": 1}
    assert notices_of(desk, case.id)[-1].state == "sent"
    mail = outbox(desk)[-1]
    assert mail["To"] == "noc@alpha.example"
    assert mail["Subject"].startswith(f"[Abuse Case {case.reference}] ")
    assert mail["Message-ID"].startswith(f"<{case.reference}.message.")
    assert mail["In-Reply-To"] == first["Message-ID"]
    assert mail["References"] == first["Message-ID"]
    assert mail["Auto-Submitted"] == "no"  # a person wrote it (RFC 3834)
    assert mail.get_body(("html",)) is None  # text only: nothing to render
    body = text_of(mail)
    assert text in body.replace("\r\n", "\n")  # as written: "<b>" is text in a text part
    assert f"[{case.reference}]" in body and "/self-service/" in body
    # Nothing else changed on the case.
    assert case_by_id(desk, case.id).state == "notified"


def test_the_subject_is_the_specialists_after_the_case_tag(desk: Desk) -> None:
    case = notified_case(desk)
    case_actions.apply(desk.workflow, case.reference, message("Please call us.", "Your server"),
                       SAM)
    desk.workflow.run_due()
    assert outbox(desk)[-1]["Subject"] == f"[Abuse Case {case.reference}] Your server"


def test_crlf_in_a_message_cannot_make_a_header(desk: Desk) -> None:
    case = notified_case(desk)
    evil = "hi\r\nBcc: evil@attacker.example\r\n\r\nX-Injected: yes\rZ\u2028Q\x00."
    case_actions.apply(desk.workflow, case.reference,
                       message(evil, "urgent\r\nBcc: evil@attacker.example"), SAM)
    desk.workflow.run_due()
    mail = outbox(desk)[-1]
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    raw = mail.as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nX-Injected" not in head
    assert mail["Subject"] == (f"[Abuse Case {case.reference}] urgent Bcc: "
                               "evil@attacker.example")
    # In the body the same text is only text, its line ends made plain, NUL dropped.
    body = text_of(mail).replace("\r\n", "\n")
    assert "hi\nBcc: evil@attacker.example\n\nX-Injected: yes\nZ\nQ." in body
    assert "\x00" not in notices_of(desk, case.id)[-1].body_text
    assert "\r" not in notices_of(desk, case.id)[-1].body_text


def test_a_customer_without_an_address_cannot_get_a_message(desk: Desk) -> None:
    case = notified_case(desk, "46.29.160.5")  # C-3 has no e-mail address
    before = len(case_events(desk, case.id))
    with pytest.raises(cases.CaseError, match="no valid e-mail address"):
        case_actions.apply(desk.workflow, case.reference, message("Please fix it."), SAM)
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice"]  # the failed first one
    assert len(case_events(desk, case.id)) == before


def test_an_empty_message_is_refused(desk: Desk) -> None:
    case = notified_case(desk)
    with pytest.raises(cases.CaseError, match="write the message"):
        case_actions.apply(desk.workflow, case.reference, message(" \r\n\x00 "), SAM)
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice"]


def test_a_message_before_the_first_notice_threads_under_nothing(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))  # notice step not run yet
    case_actions.apply(desk.workflow, case.reference, message("A word before our notice."), SAM)
    desk.workflow.run_due()
    mail = next(m for m in outbox(desk) if ".message." in m["Message-ID"])
    assert mail["In-Reply-To"] is None and mail["References"] is None


def test_a_reply_to_a_message_is_the_customers_answer_on_the_case(desk: Desk) -> None:
    case = notified_case(desk)
    case_actions.apply(desk.workflow, case.reference, message("Is the server fixed?"), SAM)
    desk.workflow.run_due()
    mail = outbox(desk)[-1]
    reply = (f"From: noc@alpha.example\r\nTo: abuse@localhost\r\nSubject: Re: "
             f"{mail['Subject']}\r\nIn-Reply-To: {mail['Message-ID']}\r\n"
             "Message-ID: <answer@alpha.example>\r\n\r\nYes, fixed.\r\n").encode()
    message_id = deliver(desk, reply)
    assert message_row_of(desk, message_id).case_id == case.id
    assert case_by_id(desk, case.id).state == "customer-responded"


def test_a_note_needs_its_text_and_is_an_event_under_the_name(desk: Desk) -> None:
    case = notified_case(desk)
    with pytest.raises(cases.CaseError, match="note needs a reason"):
        case_actions.apply(desk.workflow, case.reference, case_actions.Request("note", "   "), SAM)
    said = case_actions.apply(desk.workflow, case.reference,
                              case_actions.Request("note", "called the NOC, ticket 42"), SAM)
    assert said == f"{case.reference}: note added"
    (note,) = [e for e in case_events(desk, case.id) if e.action == "note"]
    assert (note.actor_kind, note.actor, note.detail) == (
        "specialist", "sam", {"text": "called the NOC, ticket 42"})
    assert len(outbox(desk)) == 1  # a note is not sent


def test_an_unknown_case_or_action_is_refused(desk: Desk) -> None:
    with pytest.raises(cases.CaseError, match="no case"):
        case_actions.apply(desk.workflow, "C-2026-999999", message("hello"), SAM)
    case = notified_case(desk)
    with pytest.raises(cases.CaseError, match="unknown action"):
        case_actions.apply(desk.workflow, case.reference, case_actions.Request("delete"), SAM)
