"""Helpers for the workflow tests: a desk with a clock the test moves, customers, complaints,
and the outbox Maildir."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from abuse_desk.app.wiring import Desk, open_desk
from abuse_desk.classifier.customer_import import import_customers
from abuse_desk.core.db import upgrade
from abuse_desk.core.models import Case, Message, Notice, Report, TimelineStep
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from sqlalchemy import select

from tests.support import make_config

CUSTOMERS = """customer_id,name,email,resource,valid_from,valid_until
C-1,Alpha Hosting,noc@alpha.example,45.137.21.0/24,,
C-2,Beta Shop,ops@beta.example,shop.beta.example,,
C-3,Gamma Nomail,,46.29.160.0/24,,
"""
# Tue 2026-11-24 10:00 in New York: two days before US Thanksgiving.
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
# The feedback loop of arf(): a reporter trusted by configuration (its mails are not signed, so
# it is believed by its From alone), so its claims are authenticated and count toward repeats,
# fees and restrictions. person() complaints are not authenticated (no DKIM, not listed).
FBL_SENDER = "fbl@mailbox.example"
TRUSTED_FBL = {"name": "Mailbox FBL", "senders": [FBL_SENDER], "require_dkim": False}
# The authserv-id of the tests' boundary MTA (classifier.authserv_id of workflow_desk).
AUTHSERV_ID = "mx.desk.test"


def authenticated(domain: str) -> str:
    """The Authentication-Results our boundary MTA writes for a sender of *domain* whose
    DMARC check passed (classifier/authentication.py believes it)."""
    return f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass header.from={domain}\r\n"


@dataclass
class Clock:
    """A clock the test moves by hand (``clock.now = ...`` or ``clock.advance(seconds)``)."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def workflow_desk(tmp_path: Path, clock: Clock, **sections: dict[str, Any]) -> Desk:
    workflow = {"time_zone": "America/New_York", "holiday_country": "US",
                "closure_dates": ["2026-11-27"], **sections.pop("workflow", {})}
    classifier = {"trusted_reporters": [TRUSTED_FBL], "authserv_id": AUTHSERV_ID,
                  **sections.pop("classifier", {})}
    config = make_config(tmp_path, workflow=workflow, classifier=classifier, **sections)
    desk = open_desk(config, clock=clock, sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    csv = tmp_path / "customers.csv"
    csv.write_text(CUSTOMERS)
    import_customers(desk.engine, csv, clock=desk.clock)
    return desk


class MakeDesk(Protocol):
    """The ``make_desk`` fixture (tests/conftest.py): ``workflow_desk`` on the test's tmp_path
    and ``clock``, with *sections* overriding its config."""

    def __call__(self, **sections: dict[str, Any]) -> Desk: ...


def arf(ip: str, n: int = 1, feedback: str = "abuse", sender: str = FBL_SENDER,
        extra_headers: str = "") -> bytes:
    """A feedback-loop report (RFC 5965) about spam from *ip* (from the trusted test feedback
    loop unless *sender* says otherwise)."""
    return (
        f"From: Mailbox FBL <{sender}>\r\nTo: abuse@localhost\r\n"
        f"Subject: FW: Cheap watches {n}\r\nDate: Tue, 24 Nov 2026 14:00:00 +0000\r\n"
        f"Message-ID: <fbl.{ip}.{n}@mailbox.example>\r\n{extra_headers}MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback}\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Source-IP: {ip}\r\nArrival-Date: Tue, 24 Nov 2026 13:5{n % 10}:00 +0000\r\n"
        "Original-Rcpt-To: <victim.person@mailbox.example>\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Received: from spammer ([{ip}]) by mx.mailbox.example\r\n"
        "    for <victim.person@mailbox.example>; Tue, 24 Nov 2026 13:50:00 +0000\r\n"
        f"From: offers@bulk.example\r\nTo: victim.person@mailbox.example\r\n"
        f"Subject: Cheap watches {n}\r\nMessage-ID: <spam.{n}.{ip}@bulk.example>\r\n\r\n"
        "Buy now!\r\n--b--\r\n").encode()


def person(subject: str, body: str, msg_id: str, sender: str = "jane@people.example",
           extra_headers: str = "", authentic: bool = True) -> bytes:
    """A complaint written by a person; *authentic*: with our boundary MTA's word that the
    From is authenticated (DMARC pass)."""
    trace = authenticated(sender.rpartition("@")[2]) if authentic else ""
    return (f"From: Jane Doe <{sender}>\r\nTo: abuse@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <{msg_id}@people.example>\r\nDate: Tue, 24 Nov 2026 14:00:00 +0000"
            f"\r\n{trace}{extra_headers}\r\n{body}\r\n").encode()


def xarf4_phishing(ip: str, url: str, msg_id: str, subject: str = "Phishing",
                   description: str = "") -> bytes:
    """An XARF v4 report (a structured format: no candidates to choose from) of a phishing page
    at *url* on *ip*: when the IP and the URL's host belong to two customers, the one report
    names both and a person decides ("customers disagree")."""
    doc = {"xarf_version": "4.2.0", "report_id": "11111111-2222-4333-8444-555555555555",
           "timestamp": "2026-11-24T14:00:00Z",
           "reporter": {"org": "R", "contact": "r@reporter.example", "domain": "reporter.example"},
           "sender": {"org": "R", "contact": "r@reporter.example", "domain": "reporter.example"},
           "source_identifier": ip, "category": "content", "type": "phishing", "url": url,
           **({"description": description} if description else {})}
    return (f"From: R <r@reporter.example>\r\nTo: abuse@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <{msg_id}@reporter.example>\r\nDate: Tue, 24 Nov 2026 14:00:00 +0000"
            "\r\nMIME-Version: 1.0\r\nContent-Type: application/json\r\n\r\n"
            + json.dumps(doc) + "\r\n").encode()


def deliver(desk: Desk, raw: bytes, mail_from: str | None = "sender@example.org") -> int:
    """Store *raw* as received by SMTP and run the pipeline on it; returns the message id."""
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            mail_from, ["abuse@localhost"], received_at=desk.clock()))])
    desk.pipeline.process(message_id)
    return message_id


def reports_of(desk: Desk, message_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Report).where(Report.message_id == message_id)))


def the_case(desk: Desk, message_id: int) -> Any:
    (report,) = reports_of(desk, message_id)
    assert report.case_id is not None, report.review_reason
    return case_by_id(desk, report.case_id)


def case_by_id(desk: Desk, case_id: int) -> Any:
    with desk.engine.connect() as conn:
        return conn.execute(select(Case).where(Case.id == case_id)).one()


def steps_of(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(TimelineStep).where(TimelineStep.case_id == case_id)
                                 .order_by(TimelineStep.id)))


def notices_of(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Notice).where(Notice.case_id == case_id)
                                 .order_by(Notice.id)))


def message_row_of(desk: Desk, message_id: int) -> Any:
    with desk.engine.connect() as conn:
        return conn.execute(select(Message).where(Message.id == message_id)).one()


def outbox(desk: Desk) -> list[EmailMessage]:
    """The mails in the outbox Maildir, oldest first."""
    new = Path(desk.config.notify.maildir) / "new"
    files = sorted(new.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in files]


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def iter_headers(mail: EmailMessage) -> Iterator[tuple[str, str]]:
    yield from ((k, str(v)) for k, v in mail.items())
