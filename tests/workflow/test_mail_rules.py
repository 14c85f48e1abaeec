"""Mail the desk sends only where it should, and mail about its mails counts only with proof.

Attacks of issue 16, each a test named after it (each failed before the rules): a forged From
gets no acknowledgement, an acknowledgement's Subject echoes nothing of the attacker, a case tag
from a stranger (or from a reporter keeping the tag of our acknowledgement) is never the
customer's word, a forged DSN marks nothing, XARF v4 senders get no acknowledgement. And the
ways that still work: the customer's own replies, real DSNs to the VERP address, authenticated
people acknowledged."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.classifier.authentication import SenderAuthenticator
from abuse_desk.core.models import Event
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.parsers.registry import known_formats, machine_sent
from sqlalchemy import select

from tests.classifier.test_trust import make_key

from .workflow_support import (
    AUTHSERV_ID,
    Clock,
    arf,
    authenticated,
    case_by_id,
    deliver,
    message_row_of,
    notices_of,
    outbox,
    person,
    reports_of,
    text_of,
    the_case,
)

PHISHING = ("Phishing site at 45.137.21.7",
            "Your server 45.137.21.7 hosts a phishing page imitating a bank login page that "
            "steals credentials: http://45.137.21.7/bank/login")
XARF4 = Path(__file__).parent.parent / "parsers" / "data" / "xarf_json"


def phishing(n: int) -> tuple[str, str]:
    """A phishing complaint about another of C-1's addresses (not a duplicate of another)."""
    return (f"Phishing site at 45.137.21.{n}",
            f"Your server 45.137.21.{n} hosts a phishing page imitating a bank login page that "
            f"steals credentials: http://45.137.21.{n}/bank/login")


def receive(desk: Desk, raw: bytes, mail_from: str | None = "sender@example.org",
            rcpt: Sequence[str] = ("abuse@localhost",), peer: str | None = None) -> int:
    """Store *raw* as our listener would, with this envelope, and process it."""
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            mail_from, list(rcpt), peer_ip=peer, helo="mail.example",
            received_at=desk.clock()))])
    desk.pipeline.process(message_id)
    return message_id


def acks(desk: Desk) -> list[EmailMessage]:
    return [m for m in outbox(desk) if m["Auto-Submitted"] == "auto-replied"]


def case_events(desk: Desk, case_id: int) -> list[tuple[str, str, str]]:
    with desk.engine.connect() as conn:
        return [(e.actor_kind, e.actor, e.action) for e in conn.execute(
            select(Event).where(Event.subject_type == "case", Event.subject_id == case_id)
            .order_by(Event.id))]


def notified(desk: Desk) -> tuple[Any, EmailMessage]:
    """A spam case of customer C-1 (noc@alpha.example) and its first notice, sent."""
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    (notice,) = [m for m in outbox(desk) if m["To"] == "noc@alpha.example"]
    return case, notice


def dsn(to: str, returned_headers: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@alpha.example\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@alpha.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        "boundary=\"d\"\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nnot delivered\r\n"
        "--d\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; noc@alpha.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        f"--d\r\nContent-Type: text/rfc822-headers\r\n\r\n{returned_headers}\r\n--d--\r\n"
    ).encode()


# ---- acknowledgements ------------------------------------------------------------------------

def test_forged_from_gets_no_acknowledgement(desk: Desk) -> None:
    # Backscatter: anyone can write From: victim@people.example. Neither a bare From, nor one
    # "authenticated" by the sender's own Authentication-Results (another server's, or ours
    # after a verdict of our MTA), gets the desk to write to that address.
    forged = [
        person(*phishing(1), "f1", sender="victim@people.example", authentic=False),
        person(*phishing(2), "f2", sender="victim@people.example", authentic=False,
               extra_headers="Authentication-Results: mx.attacker.example; dmarc=pass "
                             "header.from=people.example\r\n"),
        person(*phishing(3), "f3", sender="victim@people.example", authentic=False,
               extra_headers="Reply-To: other-victim@people.example\r\n"),
        (f"Authentication-Results: {AUTHSERV_ID}; dmarc=fail header.from=people.example\r\n"
         "Received: from attacker by mx.desk.test\r\n").encode()
        + person(*phishing(4), "f4", sender="victim@people.example"),  # the forged pass below
    ]
    ids = [deliver(desk, raw, mail_from=f"bounce{n}@attacker.example")
           for n, raw in enumerate(forged)]
    for message_id in ids:
        assert the_case(desk, message_id) is not None  # the complaint itself is taken
    desk.workflow.run_due()
    assert acks(desk) == []
    assert {m["To"] for m in outbox(desk)} == {"noc@alpha.example"}
    for message_id in ids:
        assert message_row_of(desk, message_id).sender_authentication["authenticated"] is False


def test_ack_subject_echoes_no_attacker_text(desk: Desk) -> None:
    subject = "Phishing at 45.137.21.7 - CHEAP PILLS at http://pills.example/buy now!!!"
    message_id = deliver(desk, person(subject, PHISHING[1], "s1"))
    case = the_case(desk, message_id)
    desk.workflow.run_due()
    (ack,) = acks(desk)
    assert ack["Subject"] == f"[Abuse Case {case.reference}] We received your report"
    assert "pills" not in str(ack["Subject"]).lower()
    # Their subject is in the body, cut short, for them to recognise their report.
    body = " ".join(text_of(ack).split())
    assert "Phishing at 45.137.21.7 - CHEAP PILLS at http://pills.example/buy now!!!" in body


def test_xarf4_senders_get_no_acknowledgement(desk: Desk) -> None:
    attached = (XARF4 / "v4_attachment_port_scan.eml").read_bytes()
    payload = re.search(rb"base64\r?\n\r?\n(.+?)\r?\n\r?\n--", attached, re.S)
    assert payload is not None
    report = json.loads(base64.b64decode(payload.group(1)))
    report["source_identifier"] = "45.137.21.7"
    msg = EmailMessage()
    msg["From"] = "Scan Sentinel <reports@scan-sentinel.example>"
    msg["Subject"] = "XARF report: port_scan from 45.137.21.7"
    msg["Message-ID"] = "<x4@scan-sentinel.example>"
    msg.set_content("45.137.21.7 scanned our network. The XARF v4 report is attached.")
    msg.add_attachment(json.dumps(report).encode(), maintype="application", subtype="json",
                       filename="xarf.json")
    raw = authenticated("scan-sentinel.example").encode() + msg.as_bytes()
    message_id = deliver(desk, raw, mail_from="reports@scan-sentinel.example")
    assert message_row_of(desk, message_id).format == "xarf4"
    case = the_case(desk, message_id)
    desk.workflow.run_due()
    assert acks(desk) == []
    # Not for want of authentication: its From is authenticated; a machine gets no answer.
    assert message_row_of(desk, message_id).sender_authentication["authenticated"] is True
    (notice,) = outbox(desk)
    # Named to the customer as the organisation it is, not as "a third party".
    assert "Scan Sentinel" in text_of(notice) and "a third party" not in text_of(notice)
    assert case.reference in notice["Subject"]


def test_machine_formats_are_formats_the_parsers_emit() -> None:
    machine = {name for name in known_formats() if machine_sent(name)}
    assert {"arf", "xarf", "xarf4", "acns", "shadowserver", "spamcop", "cert"} <= machine
    assert not machine_sent("xarf-json")  # a parser's name, not a format
    assert not machine_sent("dmca") and not machine_sent("text")


def test_an_authenticated_person_gets_an_acknowledgement(desk: Desk) -> None:
    message_id = deliver(desk, person(*PHISHING, "ok1"))
    case = the_case(desk, message_id)
    desk.workflow.run_due()
    (ack,) = acks(desk)
    assert ack["To"] == "jane@people.example"
    assert ack["In-Reply-To"] == "<ok1@people.example>"
    (row,) = [n for n in notices_of(desk, case.id) if n.kind == "ack"]
    assert row.reply_token and row.reply_token in ack["Message-ID"]
    assert ack["Return-Path"] == f"<abuse+b-{row.bounce_token}@integra-isp.example>"
    (report,) = reports_of(desk, message_id)  # what a rule about one report can read
    assert report.decision["sender_authentication"]["authenticated"] is True
    assert report.decision["sender_authentication"]["how"] == "dmarc"


def test_the_reply_to_gets_the_acknowledgement_only_when_aligned(desk: Desk,
                                                                 clock: Clock) -> None:
    deliver(desk, person(*phishing(1), "rt1",
                         extra_headers="Reply-To: abuse-team@lists.people.example\r\n"))
    deliver(desk, person(*phishing(2), "rt2",
                         extra_headers="Reply-To: victim@elsewhere.example\r\n"))
    desk.workflow.run_due()
    assert sorted(m["To"] for m in acks(desk)) == ["abuse-team@lists.people.example",
                                                   "jane@people.example"]


def use_authenticator(desk: Desk, authenticator: SenderAuthenticator) -> None:
    """The desk's pipeline checks senders with *authenticator* (its DNS the test's)."""
    desk.pipeline.examination = dataclasses.replace(desk.pipeline.examination,
                                                    authenticator=authenticator)


def test_dkim_aligned_with_the_from_is_authenticated_without_our_mta(desk: Desk) -> None:
    key = make_key(2616)
    raw = person(*PHISHING, "dk1", authentic=False)
    signed = dkim.sign(raw, b"s1", b"people.example", key.private_pem) + raw
    use_authenticator(desk, SenderAuthenticator(
        "", dkim_dns=lambda name: key.dns_record if name == b"s1._domainkey.people.example."
        else None))
    deliver(desk, signed)
    desk.workflow.run_due()
    assert [m["To"] for m in acks(desk)] == ["jane@people.example"]


def test_spf_for_the_connecting_peer_is_authentication_too(desk: Desk) -> None:
    zone = {("people.example", "TXT"): ["v=spf1 ip4:85.10.200.0/24 -all"]}
    use_authenticator(desk, SenderAuthenticator(
        "", spf_dns=lambda name, qtype: zone.get((name, qtype), [])))
    receive(desk, person(*PHISHING, "spf1", authentic=False),
            mail_from="bounces@people.example", peer="85.10.200.9")
    receive(desk, person(*PHISHING, "spf2", authentic=False, sender="joe@people.example"),
            mail_from="bounces@people.example", peer="85.10.201.9")  # not a listed host
    desk.workflow.run_due()
    assert [m["To"] for m in acks(desk)] == ["jane@people.example"]


# ---- replies -----------------------------------------------------------------------------------

def test_a_subject_case_tag_from_a_stranger_is_a_new_report_not_a_customer_reply(
        desk: Desk) -> None:
    case, _ = notified(desk)
    # Even authenticated: mallory is who she says, but not the customer.
    forged = (f"{authenticated('evil.example')}From: NOC <mallory@evil.example>\r\n"
              f"Subject: Re: [Abuse Case {case.reference}] fixed, please close\r\n"
              "Message-ID: <m1@evil.example>\r\n\r\n"
              "We removed everything from 45.137.21.7. Nothing to see.\r\n").encode()
    message_id = deliver(desk, forged)
    row = message_row_of(desk, message_id)
    assert (row.disposition, row.case_id) == ("report", None)
    assert case_by_id(desk, case.id).state == "notified"
    assert not [e for e in case_events(desk, case.id) if e[2] == "customer-responded"]
    (report,) = reports_of(desk, message_id)  # parsed and classified as any complaint
    assert report.decision["case_reference_hint"]["reference"] == case.reference
    assert "not an address of the case's customer" in (
        report.decision["case_reference_hint"]["not_threaded"])
    # Writing as the customer without authentication does not do either.
    spoofed = (f"From: NOC <noc@alpha.example>\r\nSubject: Re: [Abuse Case {case.reference}] ok"
               "\r\nMessage-ID: <m2@evil.example>\r\n\r\nall fixed on 45.137.21.7\r\n").encode()
    message_id = deliver(desk, spoofed)
    assert message_row_of(desk, message_id).disposition == "report"
    assert case_by_id(desk, case.id).state == "notified"


def test_a_reporter_keeping_the_ack_tag_is_not_filed_as_the_customer(desk: Desk) -> None:
    first = deliver(desk, person(*PHISHING, "rep1"))
    case = the_case(desk, first)
    desk.workflow.run_due()
    (ack,) = acks(desk)
    # A new mail keeping our tag, as the acknowledgement asks: a new complaint, the case's
    # reference kept on it for a specialist.
    follow_up = person(f"Re: {ack['Subject']}", "Still up: http://45.137.21.7/bank/login2",
                       "rep2")
    message_id = deliver(desk, follow_up)
    row = message_row_of(desk, message_id)
    assert (row.disposition, row.case_id) == ("report", None)
    (report,) = reports_of(desk, message_id)
    assert report.decision["case_reference_hint"]["reference"] == case.reference
    # A reply to the acknowledgement itself: the reporter's follow-up, on the case.
    reply = person(f"Re: {ack['Subject']}", "Thanks!", "rep3",
                   extra_headers=f"In-Reply-To: {ack['Message-ID']}\r\n")
    message_id = deliver(desk, reply)
    assert message_row_of(desk, message_id).case_id == case.id
    assert reports_of(desk, message_id) == []
    events = case_events(desk, case.id)
    assert ("reporter", "jane@people.example", "reporter-replied") in events
    assert not [e for e in events if e[0] == "customer" or e[2] == "customer-responded"]
    assert case_by_id(desk, case.id).state == "notified"


def test_the_customers_own_reply_threads(desk: Desk) -> None:
    case, notice = notified(desk)
    reply = (f"From: NOC <noc@alpha.example>\r\nSubject: Re: {notice['Subject']}\r\n"
             f"In-Reply-To: {notice['Message-ID']}\r\nMessage-ID: <c1@alpha.example>\r\n\r\n"
             "Cleaned up 45.137.21.7.\r\n").encode()
    message_id = deliver(desk, reply)
    assert message_row_of(desk, message_id).case_id == case.id
    assert reports_of(desk, message_id) == []
    assert case_by_id(desk, case.id).state == "customer-responded"


def test_a_reply_to_the_notices_reply_address_threads_without_in_reply_to(desk: Desk) -> None:
    case, notice = notified(desk)
    (row,) = notices_of(desk, case.id)
    reply_to = f"abuse+r-{row.reply_token}@integra-isp.example"
    assert notice["Reply-To"] == reply_to
    assert row.reply_token in notice["Message-ID"]
    # A colleague of the customer, on a new mail to the Reply-To (envelope only).
    raw = (b"From: Bob <bob@alpha-support.example>\r\nSubject: your notice\r\n"
           b"Message-ID: <c2@alpha-support.example>\r\n\r\nWe are on it.\r\n")
    message_id = receive(desk, raw, rcpt=[reply_to])
    assert message_row_of(desk, message_id).case_id == case.id
    assert case_by_id(desk, case.id).state == "customer-responded"


def test_a_guessed_message_id_or_token_threads_nothing(desk: Desk) -> None:
    case, notice = notified(desk)
    guessed = notice["Message-ID"].replace(".notice.", ".notice.x")
    raw = (f"From: mallory@evil.example\r\nSubject: Re: fixed\r\nIn-Reply-To: {guessed}\r\n"
           f"To: abuse+r-{'a' * 26}@integra-isp.example\r\n"
           "Message-ID: <g1@evil.example>\r\n\r\nclose it\r\n").encode()
    message_id = deliver(desk, raw)
    row = message_row_of(desk, message_id)
    assert (row.state, row.case_id) == ("review", None)
    assert "no case matches" in row.error
    assert case_by_id(desk, case.id).state == "notified"


def test_an_authenticated_customer_address_threads_by_the_case_tag(desk: Desk) -> None:
    case, _ = notified(desk)
    raw = (f"{authenticated('alpha.example')}From: NOC <NOC@alpha.example>\r\n"
           f"Subject: [{case.reference}] done\r\nMessage-ID: <c3@alpha.example>\r\n\r\n"
           "done\r\n").encode()
    message_id = deliver(desk, raw)
    assert message_row_of(desk, message_id).case_id == case.id
    assert ("customer", "noc@alpha.example", "customer-responded") in case_events(desk,
                                                                                 case.id)


# ---- bounces -----------------------------------------------------------------------------------

def test_a_forged_dsn_does_not_mark_a_notice_bounced(desk: Desk) -> None:
    case, notice = notified(desk)
    (row,) = notices_of(desk, case.id)
    named = f"Message-ID: {notice['Message-ID']}\r\nSubject: {notice['Subject']}"
    verp = f"abuse+b-{row.bounce_token}@integra-isp.example"
    # Our Message-ID copied into a DSN to abuse@ (the old proof), with a null sender.
    deliver(desk, dsn("abuse@localhost", named), mail_from=None)
    # A token that is no notice's.
    deliver(desk, dsn(f"abuse+b-{'b' * 26}@integra-isp.example", named), mail_from=None)
    # The real token, but from an ordinary sender: DSNs come with a null sender.
    deliver(desk, dsn(verp, named), mail_from="mallory@evil.example")
    (row,) = notices_of(desk, case.id)
    assert (row.state, row.bounced_at) == ("sent", None)
    assert not [e for e in case_events(desk, case.id) if e[2] == "notice-bounced"]


def test_a_real_dsn_to_the_verp_address_marks_the_notice(desk: Desk) -> None:
    case, notice = notified(desk)
    (row,) = notices_of(desk, case.id)
    verp = f"abuse+b-{row.bounce_token}@integra-isp.example"
    assert notice["Return-Path"] == f"<{verp}>"  # the Maildir records its envelope sender
    # Delivered to the VERP address: the envelope names it, the headers need not.
    message_id = receive(desk, dsn("undisclosed-recipients:;", "Subject: x"), mail_from="",
                         rcpt=[verp])
    assert message_row_of(desk, message_id).case_id == case.id
    (row,) = notices_of(desk, case.id)
    assert row.state == "bounced" and "5.1.1" in row.error
    assert ("system", "timeline", "notice-bounced") in case_events(desk, case.id)


@pytest.mark.parametrize("status, receipt", [("4.4.1", False), ("2.0.0", False),
                                             ("5.1.1", True)])
def test_a_delay_warning_or_a_read_receipt_is_no_bounce(desk: Desk, status: str,
                                                        receipt: bool) -> None:
    case, notice = notified(desk)
    (row,) = notices_of(desk, case.id)
    verp = f"abuse+b-{row.bounce_token}@integra-isp.example"
    raw = dsn(verp, f"Message-ID: {notice['Message-ID']}").replace(
        b"Status: 5.1.1", f"Status: {status}".encode())
    if receipt:
        raw = raw.replace(b"report-type=delivery-status", b"report-type=disposition-notification")
    message_id = receive(desk, raw, mail_from="", rcpt=[verp])
    (row,) = notices_of(desk, case.id)
    assert (row.state, message_row_of(desk, message_id).case_id) == ("sent", None)
