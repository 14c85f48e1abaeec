"""process_message runs the parsers: dispositions, reports stored, parser failures for review."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from abuse_desk.app.wiring import Desk
from abuse_desk.core.mail import Mail
from abuse_desk.core.models import Event, Message, Report
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.parsers.base import Disposition, ParsedReport, ParseResult, Stage
from abuse_desk.parsers.registry import Registry
from sqlalchemy import func, select


def store(desk: Desk, raw: bytes) -> int:
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            None, ["abuse@x"], received_at=desk.clock()))])
    return message_id


def use_parsers(desk: Desk, *parsers: object) -> None:
    desk.pipeline.examination = dataclasses.replace(
        desk.pipeline.examination, parsers=Registry(parsers))  # type: ignore[arg-type]


class TwoReports:
    name, stage = "arf", Stage.STRUCTURAL

    def matches(self, mail: Mail) -> bool:
        return "two" in mail.subject

    def parse(self, mail: Mail) -> ParseResult:
        return ParseResult(Disposition.REPORT, "arf", reports=[
            ParsedReport(format="arf", type_hint="arf:abuse", source_ip="192.0.2.1",
                         source_port=25, occurred_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
                         occurred_raw="Sun, 1 Mar 2026 10:00:00 +0000",
                         urls=["http://spam.example/"], domains=["spam.example"],
                         reporter_address="fbl@mail.example", incidents=3,
                         extra={"when": datetime(2026, 3, 1, tzinfo=UTC)}),
            ParsedReport(format="arf", type_hint="arf:abuse", source_ip="192.0.2.2",
                         review_reasons=["time without zone"]),
        ])


class Broken:
    name, stage = "acns", Stage.STRUCTURAL

    def matches(self, mail: Mail) -> bool:
        return True

    def parse(self, mail: Mail) -> ParseResult:
        raise KeyError("IP_Address")


def reports(desk: Desk, message_id: int) -> list[Report]:
    with desk.sessions() as session:
        return list(session.scalars(select(Report).where(Report.message_id == message_id)
                                    .order_by(Report.seq)))


def message(desk: Desk, message_id: int) -> Message:
    with desk.sessions() as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


def test_reports_are_stored_with_the_message(fixed_desk: Desk) -> None:
    use_parsers(fixed_desk, TwoReports())
    message_id = store(fixed_desk, b"Subject: two complaints\r\n\r\nbody\r\n")
    assert fixed_desk.pipeline.process(message_id) == "processed"
    stored = message(fixed_desk, message_id)
    assert (stored.disposition, stored.format) == ("report", "arf")
    first, second = reports(fixed_desk, message_id)
    assert (first.seq, first.format, first.type_hint) == (0, "arf", "arf:abuse")
    assert (first.source_ip, first.source_port) == ("192.0.2.1", 25)
    assert first.occurred_at is not None
    assert first.occurred_at.replace(tzinfo=UTC) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert first.occurred_raw == "Sun, 1 Mar 2026 10:00:00 +0000"
    assert first.fields["urls"] == ["http://spam.example/"]
    assert first.fields["incidents"] == 3
    assert first.fields["extra"] == {"when": "2026-03-01 00:00:00+00:00"}
    # classified by the ARF table; no customers are imported, so nobody resolves
    assert (first.category, first.type) == ("spam", "spam")
    assert first.customer_id is None
    assert first.review_reason == "no customer resolves"
    assert second.review_reason == "time without zone; no customer resolves"
    assert first.fingerprint is not None and first.fingerprint != second.fingerprint
    with fixed_desk.sessions() as session:
        (event,) = session.scalars(select(Event).where(Event.subject_id == message_id))
    assert event.detail == {"disposition": "report", "format": "arf", "parser": "arf",
                            "reports": 2, "duplicates": 0}
    # A second delivery stores nothing twice.
    assert fixed_desk.pipeline.process(message_id) == "skipped"
    with fixed_desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Report)).scalar() == 2


def test_a_parser_bug_sends_the_message_to_review_with_its_traceback(fixed_desk: Desk) -> None:
    use_parsers(fixed_desk, Broken())
    message_id = store(fixed_desk, b"Subject: acns\r\n\r\n<Infringement/>\r\n")
    assert fixed_desk.pipeline.process(message_id) == "review"
    stored = message(fixed_desk, message_id)
    assert stored.error is not None
    assert stored.error.startswith("parser acns failed: KeyError: 'IP_Address'")
    assert "Traceback (most recent call last)" in stored.error
    assert reports(fixed_desk, message_id) == []


def test_auto_reply_is_stored_and_counted_but_not_a_complaint(fixed_desk: Desk) -> None:
    message_id = store(fixed_desk, b"Subject: Automatic reply: your report\r\n"
                                   b"Auto-Submitted: auto-replied\r\n\r\nI am away.\r\n")
    assert fixed_desk.pipeline.process(message_id) == "processed"
    stored = message(fixed_desk, message_id)
    assert (stored.disposition, stored.format) == ("ignored", "autoreply")
    assert reports(fixed_desk, message_id) == []


def test_reply_to_our_notice_keeps_its_case_reference(fixed_desk: Desk) -> None:
    message_id = store(fixed_desk, b"Subject: Re: [Abuse Case C-2026-000123] spam from you\r\n"
                                   b"\r\nWe fixed it.\r\n")
    # No such case here: a person looks at it (tests/workflow/test_cases.py threads real ones).
    assert fixed_desk.pipeline.process(message_id) == "review"
    stored = message(fixed_desk, message_id)
    assert (stored.disposition, stored.format) == ("reply", "reply")
    assert "no case matches" in stored.error
    with fixed_desk.sessions() as session:
        (event,) = session.scalars(select(Event).where(Event.subject_id == message_id))
    assert event.detail["reply"]["case_reference"] == "C-2026-000123"
