"""The reply and bounce guards: what makes a message a reply (our Message-ID, our reply address;
never the case tag alone) and which tokens a DSN names. Whether the named mail exists is the
workflow's to check (tests/workflow/test_mail_rules.py)."""

from __future__ import annotations

import time

import pytest
from abuse_desk.core.mailboxes import mailbox_of
from abuse_desk.parsers.registry import default_registry

REGISTRY = default_registry("desk.integra-isp.example")
TOKEN = "abcdefghijklmnopqrstuvwxyz"[:20] + "234567"  # 26 characters of base32


def test_a_case_tag_alone_is_no_reply() -> None:
    raw = (b"From: anyone@example.org\r\nSubject: Re: [Abuse Case C-2026-000123] closed\r\n\r\n"
           b"spam from 192.0.2.7 again\r\n")
    result = REGISTRY.parse(raw)
    assert (result.disposition.value, result.format) == ("report", "text")


def test_our_message_id_or_reply_address_makes_a_reply() -> None:
    by_id = REGISTRY.parse(
        b"From: noc@alpha.example\r\nSubject: Re: [Abuse Case C-2026-000123] x\r\n"
        b"In-Reply-To: <C-2026-000123.notice.x@desk.integra-isp.example>\r\n\r\nfixed\r\n")
    assert (by_id.disposition.value, by_id.extra) == ("reply", {
        "case_reference": "C-2026-000123",
        "notice_message_ids": ["<c-2026-000123.notice.x@desk.integra-isp.example>"],
        "reply_tokens": []})
    by_address = REGISTRY.parse(
        f"From: noc@alpha.example\r\nTo: Abuse <abuse+r-{TOKEN.upper()}@integra-isp.example>"
        "\r\nSubject: fixed\r\n\r\nfixed\r\n".encode())
    assert by_address.disposition.value == "reply"
    assert by_address.extra["reply_tokens"] == [TOKEN]


def test_a_message_id_of_another_domain_is_no_reply() -> None:
    result = REGISTRY.parse(b"From: a@example.org\r\nSubject: spam from 192.0.2.7\r\n"
                            b"In-Reply-To: <x@other.example>\r\n\r\nspam from 192.0.2.7\r\n")
    assert result.disposition.value == "report"


def dsn(to: str, status_extra: str = "") -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        "boundary=\"d\"\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        "--d\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n"
        f"{status_extra}\r\nFinal-Recipient: rfc822; noc@alpha.example\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n--d\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "Message-ID: <C-2026-000123.notice.x@desk.integra-isp.example>\r\n--d--\r\n").encode()


def test_a_dsn_names_its_bounce_token_from_the_to_or_the_delivery_status() -> None:
    to = REGISTRY.parse(dsn(f"<abuse+b-{TOKEN}@integra-isp.example>"))
    assert (to.format, to.extra["bounce_tokens"]) == ("bounce", [TOKEN])
    assert to.extra["status"] == "5.1.1"
    postfix = REGISTRY.parse(dsn("abuse@integra-isp.example",
                                 f"X-Postfix-Sender: rfc822; abuse+b-{TOKEN}@integra-isp.example"
                                 "\r\n"))
    assert postfix.extra["bounce_tokens"] == [TOKEN]
    # Our Message-ID alone is kept for people, but names no token: it proves nothing.
    plain = REGISTRY.parse(dsn("abuse@integra-isp.example"))
    assert plain.extra["bounce_tokens"] == []
    assert plain.extra["notice_message_ids"] == [
        "<c-2026-000123.notice.x@desk.integra-isp.example>"]


def test_thousands_of_tokens_are_read_in_bounded_time_and_number() -> None:
    many = ", ".join(f"abuse+r-{TOKEN[:-3]}{n:03d}@x.example".replace("0", "a").replace(
        "1", "b").replace("8", "c").replace("9", "d") for n in range(1000))
    started = time.monotonic()
    result = REGISTRY.parse(f"From: a@example.org\r\nTo: {many}\r\nSubject: x\r\n\r\nx\r\n"
                            .encode())
    assert time.monotonic() - started < 5  # a hang guard, not a speed target
    assert result.disposition.value == "reply"
    assert 1 <= len(result.extra["reply_tokens"]) <= 10


@pytest.mark.parametrize("local, delimiter, mailbox", [
    ("abuse", "+", "abuse"),
    (f"abuse+r-{TOKEN}", "+", "abuse"),
    (f"Abuse+b-{TOKEN}", "+", "Abuse"),
    ("abuse+x%evil.example", "+", None),  # a % hack does not ride in a tag
    ("abuse+evil.example!x", "+", None),
    ("abuse+", "+", None),
    ("+r-x", "+", None),
    (f"abuse+r-{TOKEN}", "", f"abuse+r-{TOKEN}"),  # no delimiter: the whole local part
    (f"abuse-r-{TOKEN}", "-", "abuse"),
])
def test_the_mailbox_a_tagged_local_part_names(local: str, delimiter: str,
                                                mailbox: str | None) -> None:
    # For ingest/smtp.py's recipient check (IntakeHandler.accepts).
    assert mailbox_of(local, delimiter) == mailbox


def test_a_dsn_is_named_a_bounce() -> None:
    result = REGISTRY.parse(dsn("<abuse@integra-isp.example>"))
    assert (result.disposition.value, result.extra["non_report"]) == ("ignored", "bounce")


def test_auto_reply_markers_alone_do_not_ignore_a_notice() -> None:
    notice = (b"From: reports@cert.example\r\nSubject: Infected host\r\n"
              b"Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n\r\n"
              b"The host 192.0.2.70 in your network is part of a botnet.\r\n")
    assert REGISTRY.parse(notice).disposition.value == "report"
    away = (b"From: someone@other.example\r\nSubject: Automatic reply: your mail\r\n"
            b"Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n")
    result = REGISTRY.parse(away)
    assert (result.disposition.value, result.format, result.extra["non_report"]) == (
        "ignored", "autoreply", "out-of-office")
