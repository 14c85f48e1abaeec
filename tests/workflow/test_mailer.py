"""Outgoing mail: header safety, message composition, RFC 6590 redaction, deadlines, templates."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
from abuse_desk.workflow.mailer import (
    Rendered,
    Templates,
    compose,
    format_deadline,
    header_safe,
    msg_id_or_none,
    recipients_in_evidence,
    redact,
    sample_context,
)
from jinja2.exceptions import SecurityError

DATE = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
KINDS = ["ack", "action", "escalation", "notice", "reminder", "resolved", "update"]
CONTEXT_KEYS = {
    "org", "kind", "case", "customer", "reports", "new_reports", "self_service_url",
    "copyright_guide_url", "fee_amount", "fee", "action", "reason", "ack",
}
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def content(part: object) -> str:
    """A text part's decoded content, with the message's CRLF line ends as "\n"."""
    assert isinstance(part, EmailMessage)
    value = part.get_content()
    assert isinstance(value, str)
    return value.replace("\r\n", "\n")


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def make(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "from_addr": "abuse@integra-isp.example",
        "from_name": "Integra ISP Abuse Team",
        "to_addr": "jane.doe@customer.example",
        "subject": "[C-2026-000123] Spam sent from your service",
        "message_id": "<c-2026-000123.1@abuse.integra-isp.example>",
        "date": DATE,
        "text": "Dear Jane Doe,\n\nPlease reply.\n",
    }
    args.update(overrides)
    return compose(**args)


# --- header_safe / msg_id_or_none ---------------------------------------------------------------


def test_header_safe_replaces_controls_and_separators() -> None:
    value = "spam\r\nBcc: victim@example.com\x00x\u2028y\u2029z\x85w\x1b[0m\tend  "
    assert header_safe(value) == "spam Bcc: victim@example.com x y z w [0m end"
    assert header_safe("  a \n\n  b  ") == "a b"
    assert header_safe(12345) == "12345"


def test_header_safe_truncates_with_ellipsis() -> None:
    assert header_safe("x" * 10, limit=10) == "x" * 10
    cut = header_safe("x" * 300, limit=10)
    assert cut == "x" * 9 + "…"
    assert len(header_safe("word " * 100)) == 200


@pytest.mark.parametrize("value", ["<a@b>", "  <a@b>  ", "<c-2026-000123.1@abuse.example>"])
def test_msg_id_accepts(value: str) -> None:
    assert msg_id_or_none(value) == value.strip()


@pytest.mark.parametrize("value", [
    "<a@b>\r\nBcc: x@y", "<a@b>\nBcc: x@y", "<a b@c>", "a@b", "", None, "<a@b> <c@d>",
    "<ab>", "<a<b@c>", "<a@b@c>", "<ü@b>", "<" + "a" * 250 + "@b>",
])
def test_msg_id_refuses(value: str | None) -> None:
    assert msg_id_or_none(value) is None


# --- compose ------------------------------------------------------------------------------------


def test_compose_headers_round_trip() -> None:
    raw = make(in_reply_to="<orig-1@reporter.example>",
               references=["<orig-0@reporter.example>", "<orig-1@reporter.example>"],
               organization="Integra ISP", extra_headers={"X-Abuse-Case": "C-2026-000123"})
    msg = parse(raw)
    assert msg["From"] == "Integra ISP Abuse Team <abuse@integra-isp.example>"
    assert msg["To"] == "jane.doe@customer.example"
    assert msg["Subject"] == "[C-2026-000123] Spam sent from your service"
    assert parsedate_to_datetime(msg["Date"]) == DATE
    assert msg["Message-ID"] == "<c-2026-000123.1@abuse.integra-isp.example>"
    assert msg["In-Reply-To"] == "<orig-1@reporter.example>"
    assert msg["References"] == "<orig-0@reporter.example> <orig-1@reporter.example>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Organization"] == "Integra ISP"
    assert msg["X-Abuse-Case"] == "C-2026-000123"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"


def test_compose_uses_crlf_and_short_lines() -> None:
    long_line = "evidence " + "x" * 3000 + " ü\n"
    raw = make(text="Hello\n" + long_line, html="<p>" + "y" * 3000 + "</p>\n",
               references=[f"<{'r' * 200}-{i}@reporter.example>" for i in range(20)])
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_compose_subject_injection_creates_no_header() -> None:
    raw = make(subject="spam\r\nBcc: victim@example.com", organization="Org\r\nBcc: a@b.example",
               extra_headers={"X-Case": "C-1\nBcc: c@d.example"})
    msg = parse(raw)
    assert msg["Bcc"] is None
    assert b"\r\nBcc:" not in raw
    assert b"\nBcc:" not in raw
    assert msg["Subject"] == "spam Bcc: victim@example.com"
    lone = parse(make(subject="a\nBcc: x@y.example\u2028b\rc"))
    assert lone["Subject"] == "a Bcc: x@y.example b c"
    assert lone["Bcc"] is None


def test_compose_encodes_non_ascii_headers() -> None:
    subject = "Beschwerde über Spam – Fall C-2026-000123"
    raw = make(subject=subject, from_name="Integra Überwachung")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?" in head
    msg = parse(raw)
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name == "Integra Überwachung"
    assert msg["From"].addresses[0].addr_spec == "abuse@integra-isp.example"


def test_compose_parts_decode_back() -> None:
    text = "Dear Jane,\n\nGrüße – line with = and a long tail " + "z" * 1200 + "\n"
    html = "<p>Dear Jane,</p>\n<p>Grüße – " + "<b>z</b>" * 300 + "</p>\n"
    msg = parse(make(text=text, html=html))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part, expected in zip(parts, [text, html], strict=True):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
        assert content(part) == expected


def test_compose_drops_invalid_reply_ids() -> None:
    msg = parse(make(in_reply_to="<orig@x.example>\r\nBcc: a@b.example",
                     references=["not-an-id", "<ok@x.example>", "<bad id@x.example>"]))
    assert msg["In-Reply-To"] is None
    assert msg["References"] == "<ok@x.example>"
    assert msg["Bcc"] is None


def test_compose_keeps_long_message_ids_unencoded() -> None:
    long_id = "<" + "a" * 200 + "@" + "b" * 30 + ".example>"
    assert len(long_id) == 241
    raw = make(in_reply_to=long_id)
    assert b"In-Reply-To: " + long_id.encode() + b"\r\n" in raw
    assert parse(raw)["In-Reply-To"] == long_id


@pytest.mark.parametrize("bad", [
    "jane@customer.example\r\nBcc: victim@example.com", "jane doe@customer.example",
    "jane@customer@example", "Jane <jane@customer.example>", "", "jane", "jäne@customer.example",
])
def test_compose_refuses_bad_addresses(bad: str) -> None:
    with pytest.raises(ValueError):
        make(to_addr=bad)
    with pytest.raises(ValueError):
        make(from_addr=bad)


@pytest.mark.parametrize("bad", ["c-1@abuse.example", "<c-1>", "<c-1@abuse.example>\r\nX: y", ""])
def test_compose_refuses_bad_message_id(bad: str) -> None:
    with pytest.raises(ValueError, match="message_id"):
        make(message_id=bad)


def test_compose_refuses_naive_date_and_reserved_extra_headers() -> None:
    with pytest.raises(ValueError):
        make(date=datetime(2026, 12, 1, 9, 30))
    with pytest.raises(ValueError):
        make(extra_headers={"Bcc": "victim@example.com"})
    with pytest.raises(ValueError):
        make(extra_headers={"X-Bad: Name": "v"})


# --- recipients_in_evidence / redact ------------------------------------------------------------

ARF_THIRD_PART = """\
Received: from dyn-203-0-113-45.isp.example (dyn-203-0-113-45.isp.example [203.0.113.45])
\tby mx.mail.example (Postfix) with ESMTP id 4ABC12
\tfor <victim@mail.example>; Mon, 30 Nov 2026 14:02:10 +0000 (UTC)
Delivered-To: victim@mail.example
X-Original-To: Victim@Mail.Example
Return-Path: <bounce@spammer.example>
From: "Cheap Meds" <offers@spammer.example>
Reply-To: replies@spammer.example
To: "Victim One" <victim@mail.example>,
\tsecond.person@other.example
Cc: carbon@third.example
Subject: Cheap meds, Victim
Message-ID: <x1@spammer.example>

Hi victim@mail.example, buy now: http://spammer.example/?r=victim%40mail.example
Also known as jimvictim@mail.example and victim@mail.example.org.
"""

ARF_FEEDBACK_PART = """\
Feedback-Type: abuse
Version: 1
Original-Mail-From: <bounce@spammer.example>
Original-Rcpt-To: rcpt.one@mail.example
Removal-Recipient: Removal.Me@mail.example
Source-IP: 203.0.113.45
"""

EVIDENCE = ARF_FEEDBACK_PART + "\n" + ARF_THIRD_PART


def test_recipients_in_evidence() -> None:
    assert recipients_in_evidence(EVIDENCE) == [
        "rcpt.one@mail.example",
        "removal.me@mail.example",
        "victim@mail.example",
        "second.person@other.example",
        "carbon@third.example",
    ]
    assert recipients_in_evidence("From: a@b.example\nReply-To: c@d.example\n") == []


def _token(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, pattern
    return match.group(1)


def test_redact_hides_recipients_and_keeps_domains() -> None:
    recipients = recipients_in_evidence(EVIDENCE)
    out = redact(EVIDENCE, recipients, b"secret one")
    assert re.search(r"(?<![\w.])victim(@|%40)mail\.example\b(?!\.)", out, re.I) is None
    for gone in ("rcpt.one@", "removal.me@", "second.person@", "carbon@"):
        assert gone not in out.lower()
    # domains stay, one for one
    for domain in ("@mail.example", "@other.example", "@third.example"):
        assert out.lower().count(domain) == EVIDENCE.lower().count(domain)
    # the spammer's addresses and look-alikes that are other addresses are untouched
    for kept in ("offers@spammer.example", "replies@spammer.example", "bounce@spammer.example",
                 "<x1@spammer.example>", "jimvictim@mail.example", "victim@mail.example.org"):
        assert kept in out
    # the same address (in any case, in <> or bare) gets the same token
    in_received = _token(out, r"for <([0-9a-f]+)@mail\.example>")
    assert len(in_received) == 64
    assert _token(out, r"Delivered-To: ([0-9a-f]+)@mail\.example") == in_received
    assert _token(out, r"X-Original-To: ([0-9a-f]+)@Mail\.Example") == in_received
    assert _token(out, r"\?r=([0-9a-f]+)%40mail\.example") == in_received
    assert _token(out, r"Original-Rcpt-To: ([0-9a-f]+)@") != in_received
    # a different secret gives a different token; the same secret the same one
    other = redact(EVIDENCE, recipients, b"secret two")
    assert _token(other, r"for <([0-9a-f]+)@mail\.example>") != in_received
    again = redact(EVIDENCE, recipients, b"secret one")
    assert again == out


def test_redact_edge_cases() -> None:
    assert redact(EVIDENCE, [], b"k") == EVIDENCE
    assert redact(EVIDENCE, ["not-an-address"], b"k") == EVIDENCE
    with pytest.raises(ValueError):
        redact(EVIDENCE, ["victim@mail.example"], b"")


# --- format_deadline ----------------------------------------------------------------------------


def test_format_deadline_example() -> None:
    assert (format_deadline(datetime(2026, 12, 4, 15, 0, tzinfo=UTC), "America/New_York")
            == "Friday, 4 December 2026, 10:00 EST (15:00 UTC)")


def test_format_deadline_new_york_dst() -> None:
    before = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert format_deadline(before, "America/New_York") == (
        "Sunday, 8 March 2026, 01:30 EST (06:30 UTC)")
    assert format_deadline(before + timedelta(hours=1), "America/New_York") == (
        "Sunday, 8 March 2026, 03:30 EDT (07:30 UTC)")
    assert format_deadline(datetime(2026, 7, 3, 2, 0, tzinfo=UTC), "America/New_York") == (
        "Thursday, 2 July 2026, 22:00 EDT (3 July, 02:00 UTC)")


def test_format_deadline_berlin_dst() -> None:
    before = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert format_deadline(before, "Europe/Berlin") == (
        "Sunday, 29 March 2026, 01:30 CET (00:30 UTC)")
    assert format_deadline(before + timedelta(hours=1), "Europe/Berlin") == (
        "Sunday, 29 March 2026, 03:30 CEST (01:30 UTC)")


def test_format_deadline_refuses_naive_and_unknown_zone() -> None:
    with pytest.raises(ValueError):
        format_deadline(datetime(2026, 12, 4, 15, 0), "Europe/Berlin")
    with pytest.raises(ValueError):
        format_deadline(datetime(2026, 12, 4, 15, 0, tzinfo=UTC), "Mars/Olympus_Mons")


# --- templates ----------------------------------------------------------------------------------

VARIANTS = [("spam", None), ("network", None), ("other", None), ("spam", "copyright")]


def render(kind: str, category: str = "spam", type_: str | None = None,
           templates: Templates | None = None, **changes: Any) -> Rendered:
    context = sample_context(kind, category=category, type_=type_)
    context.update(changes)
    return (templates or Templates()).render(kind, category, type_ or context["case"]["type"],
                                             context)


def test_kinds() -> None:
    assert Templates().kinds() == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_sample_context_has_exactly_the_documented_keys(kind: str) -> None:
    assert set(sample_context(kind)) == CONTEXT_KEYS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("category", "type_"), VARIANTS)
def test_every_kind_renders(kind: str, category: str, type_: str | None) -> None:
    out = render(kind, category, type_)
    assert out.subject
    assert "\n" not in out.subject and "\r" not in out.subject
    # The case tag is the caller's to add (workflow/notices.py, workflow/acks.py), so no
    # template can break it.
    assert "C-2026-000123" not in out.subject and "[Abuse Case" not in out.subject
    assert "C-2026-000123" in out.text
    assert not out.text.startswith("Subject:")
    assert out.html.startswith("<!DOCTYPE html>")
    assert "<script" not in out.html and "http-equiv" not in out.html
    assert "Integra ISP" in out.text and "Integra ISP" in out.html
    # no external resources in the HTML: the only links are ones we put there
    assert re.search(r"<(img|link|iframe)\b|src=", out.html) is None


def test_notice_content_per_category() -> None:
    spam = render("notice", "spam")
    copyright_ = render("notice", "spam", "copyright")
    network = render("notice", "network")
    guide = "https://www.integra-isp.example/help/copyright-notices"
    assert guide in copyright_.text and guide in copyright_.html
    assert "counter-notice" in copyright_.text and "DMCA" in copyright_.html
    assert "24 hours" in copyright_.text
    assert guide not in spam.text and guide not in spam.html
    assert "spam" in spam.subject.lower()
    assert "malware" in network.text and "SSH brute-force attack" in network.text
    for out in (spam, copyright_, network):
        assert "USD 100.00" in out.text and "USD 100.00" in out.html
        assert "5 business days" in out.text or "24 hours" in out.text
        assert "EVIDENCE" in out.text and "<pre" in out.html
        assert "abuse.integra-isp.example/case/C-2026-000123" in out.text
    # the reporter is not named to the customer for category "other"
    assert "Example Bank security team" not in render("notice", "other").text


def test_copyright_notice_without_guide_url() -> None:
    out = render("notice", "spam", "copyright", copyright_guide_url=None)
    assert "Our guide" not in out.text and "Our guide" not in out.html


def test_notice_without_self_service_url() -> None:
    out = render("notice", "spam", self_service_url=None)
    assert "online" not in out.text and "<a href" not in out.html


def test_evidence_at_the_end_redacted() -> None:
    out = render("notice", "spam")
    assert out.text.index("EVIDENCE") > out.text.index("HOW TO REPLY")
    assert "alice.jones@" not in out.text and "alice.jones@" not in out.html
    assert "@mailbox.example" in out.text


def test_html_escapes_reporter_controlled_values() -> None:
    context = sample_context("notice")
    report = dict(context["reports"][0], evidence=f"Subject: {XSS}\n\nbody {XSS}",
                  urls=[f"http://evil.example/{XSS}"], domains=[f"{XSS}.example"])
    out = Templates().render("notice", "spam", "spam", dict(context, reports=[report]))
    assert XSS not in out.html
    assert out.html.count(XSS_ESCAPED) == 4
    assert XSS in out.text  # plain text is not HTML-escaped


def test_ack_template_keeps_the_reporters_subject_in_the_body_cut_short() -> None:
    ack = {"their_subject": "spam\r\nBcc: victim@example.com", "received_at": "2026-11-30"}
    out = render("ack", ack=ack)
    # The desk sets an acknowledgement's Subject itself; the template's line names no reporter.
    assert out.subject == "We received your report"
    assert '("spam Bcc: victim@example.com")' in " ".join(out.text.split())
    assert "\nBcc:" not in out.text
    assert "Jane Doe" not in out.text and "Jane Doe" not in out.html
    assert "100234" not in out.text and "100234" not in out.html
    empty = render("ack", ack={"their_subject": "  ", "received_at": "2026-11-30"})
    assert "()" not in empty.text and '("' not in empty.text
    long = render("ack", ack={"their_subject": "x" * 500, "received_at": "2026-11-30"})
    assert "x" * 80 not in long.text and "x" * 79 + "…" in long.text
    assert "<b>" not in render("ack", ack={"their_subject": "<b>hi</b>",
                                           "received_at": "2026-11-30"}).html


@pytest.mark.parametrize("action", ["restrict", "terminate", "restore"])
def test_action_wording(action: str) -> None:
    out = render("action", action=action)
    word = {"restrict": "restricted", "terminate": "terminated", "restore": "restored"}[action]
    assert word in out.subject and word in out.text and word in out.html


def test_escalation_and_update_details() -> None:
    escalation = render("escalation")
    assert "USD 300.00" in escalation.text and "USD 300.00" in escalation.html
    assert "deadline passed" in escalation.text
    update = render("update")
    assert "2026-12-02 11:40 UTC" in update.text and "2026-12-02 11:40 UTC" in update.html
    assert "does not change" in update.text


def test_override_directory_wins_and_falls_back(tmp_path: Path) -> None:
    (tmp_path / "notice").mkdir()
    (tmp_path / "notice" / "spam.txt.j2").write_text(
        "Subject: Custom {{ case.reference }}\n\nCustom body for {{ customer.name }}.\n")
    templates = Templates(str(tmp_path))
    spam = render("notice", "spam", templates=templates)
    assert spam.subject == "Custom C-2026-000123"
    assert spam.text == "Custom body for Jane Doe.\n"
    assert "What was reported" in spam.html  # the built-in HTML
    network = render("notice", "network", templates=templates)
    assert "Custom" not in network.subject and "WHAT WAS REPORTED" in network.text
    assert render("reminder", templates=templates).text == render("reminder").text


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="bogus"):
        Templates().render("bogus", "spam", None, sample_context("notice"))
    with pytest.raises(ValueError, match=r"\.\./notice"):
        Templates().render("../notice", "spam", None, sample_context("notice"))


def test_missing_context_key_raises() -> None:
    context = sample_context("notice")
    del context["fee_amount"]
    with pytest.raises(jinja2.UndefinedError):
        Templates().render("notice", "spam", "spam", context)


def _override(tmp_path: Path, body: str) -> Templates:
    (tmp_path / "notice").mkdir(exist_ok=True)
    (tmp_path / "notice" / "default.txt.j2").write_text(body)
    return Templates(str(tmp_path))


def test_undefined_variable_in_template_raises(tmp_path: Path) -> None:
    templates = _override(tmp_path, "Subject: x\n\n{{ case.no_such_field }}\n")
    with pytest.raises(jinja2.UndefinedError):
        templates.render("notice", None, None, sample_context("notice"))


def test_sandbox_refuses_dunder_access(tmp_path: Path) -> None:
    templates = _override(tmp_path, "Subject: {{ ''.__class__.__mro__ }}\n\nx\n")
    with pytest.raises(SecurityError):
        templates.render("notice", None, None, sample_context("notice"))


def test_sandbox_refuses_mutating_the_context(tmp_path: Path) -> None:
    templates = _override(tmp_path, "Subject: x\n\n{{ reports.append(1) }}\n")
    with pytest.raises(SecurityError):
        templates.render("notice", None, None, sample_context("notice"))


def test_text_template_must_start_with_subject(tmp_path: Path) -> None:
    templates = _override(tmp_path, "Hello\n")
    with pytest.raises(ValueError, match="Subject"):
        templates.render("notice", None, None, sample_context("notice"))


def test_rendered_notice_composes() -> None:
    out = render("notice", "spam")
    raw = make(subject=out.subject, text=out.text, html=out.html)
    msg = parse(raw)
    assert msg["Subject"] == out.subject
    plain, html = list(msg.iter_parts())
    assert content(plain) == out.text
    assert content(html) == out.html
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
