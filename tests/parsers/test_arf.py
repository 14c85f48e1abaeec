"""ARF: the fixtures beside this file, the field reader, the Received-chain fallback, hostile
input, and every ARF mail of the shared corpus with its expected source and time."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from abuse_desk.core.config import ParserLimits
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport, ParseResult
from abuse_desk.parsers.formats.arf import (
    ArfParser,
    feedback_text,
    parse_feedback_fields,
)
from abuse_desk.parsers.registry import Registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import CORPUS, HANG_GUARD_S

DATA = Path(__file__).parent / "data" / "arf"
REGISTRY = Registry([ArfParser()])


def parse(raw: bytes) -> ParseResult:
    result = REGISTRY.parse(raw)
    assert result.parser == "arf", result.review_reasons
    assert result.disposition is Disposition.REPORT
    assert result.format == "arf"
    return result


def only(name: str) -> ParsedReport:
    result = parse((DATA / name).read_bytes())
    assert result.review_reasons == []
    assert len(result.reports) == 1
    return result.reports[0]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def arf(fields: str, original: str = "", top: str = "", ctype: str = "message/feedback-report",
        cte: str = "") -> bytes:
    """A minimal ARF message with *fields* as part 2 and *original* as part 3."""
    third = (f"--B\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n" if original else "")
    encoding = f"Content-Transfer-Encoding: {cte}\r\n" if cte else ""
    return (f"From: fbl@reporter.example\r\nSubject: report\r\n{top}"
            "Date: Mon, 04 Mar 2024 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nreport\r\n"
            f"--B\r\nContent-Type: {ctype}\r\n{encoding}\r\n{fields}\r\n"
            f"{third}--B--\r\n").encode()


# --- the fixtures -----------------------------------------------------------------------------


def test_a_complete_abuse_report() -> None:
    report = only("abuse_full.eml")
    assert report.format == "arf"
    assert report.type_hint == "arf:abuse"
    assert report.source_ip == "198.51.100.23"
    assert report.source_port == 53211
    assert report.occurred_at == utc(2024, 2, 12, 9, 15, 1)
    assert report.occurred_raw == "Mon, 12 Feb 2024 09:15:01 +0000"
    assert report.urls == ["http://offers.bulk.example/claim?id=42",
                           "mailto:unsubscribe@bulk.example"]
    assert report.domains == ["bulk.example", "offers.bulk.example"]
    assert report.reporter_address == "fbl@mailbox.example"
    assert report.reporter_org == "Mailbox Example Feedback Loop"
    assert report.incidents == 3
    assert report.inferred == []
    assert report.warnings == []
    assert report.review_reasons == []
    assert report.evidence is not None
    assert report.evidence.startswith("Received: from smtp.customer.isp.example")
    assert "Claim your prize" in report.evidence
    assert report.extra["reporting_mta"] == "dns; mx-in-3.mailbox.example"
    assert report.extra["original_rcpt_to"] == [
        "<5f0d3c1a9b2e7d4c8a6b1e0f3d2c9a8b@mailbox.example>"]
    assert report.extra["authentication_results"] == [
        "mx-in-3.mailbox.example; spf=pass smtp.mailfrom=offers@bulk.example"]
    assert report.extra["original_message_id"] == "<offer-42@bulk.example>"


def test_no_source_ip_takes_the_reporters_hop_past_its_internal_relays() -> None:
    # Above the offender: an internal hop with a public address (same domain as the receiving
    # host) and one from a private address. Below it: the customer's own submission hop.
    report = only("received_fallback.eml")
    assert report.type_hint == "arf:abuse"
    assert report.source_ip == "198.51.100.77"
    assert report.occurred_at == utc(2024, 2, 12, 9, 15, 1)
    assert report.occurred_raw == "Mon, 12 Feb 2024 10:15:01 +0100"
    assert report.inferred == ["source_ip", "occurred_at"]
    assert report.warnings == [
        "no Source-IP: source taken from the reporter's Received header of the original message",
        "time taken from the reporter's Received header"]
    assert report.reporter_address == "abuse-reports@mailbox.example"
    assert report.reporter_org == "Mailbox Abuse Desk"


def test_a_base64_part_2_is_decoded() -> None:
    raw = (DATA / "base64_part2.eml").read_bytes()
    part2 = next(p for p in Mail(raw).parts if p.content_type == "message/feedback-report")
    assert feedback_text(part2).startswith("Feedback-Type: fraud\r\n")
    report = only("base64_part2.eml")
    assert report.type_hint == "arf:fraud"
    assert report.source_ip == "2001:db8:4::25"  # "IPv6:" prefix stripped
    assert report.occurred_at == utc(2024, 2, 12, 6, 1, 40)
    assert report.occurred_raw == "Sun, 11 Feb 2024 22:01:40 -0800 (PST)"
    assert report.urls == ["https://login.bank-secure.example/verify"]
    assert report.domains == ["login.bank-secure.example"]
    assert report.reporter_org == "PhishWatch"
    assert report.inferred == []


def test_arf_forwarded_as_an_attachment_keeps_its_own_reporter() -> None:
    report = only("forwarded.eml")
    assert report.type_hint == "arf:abuse"
    assert report.source_ip == "198.51.100.99"
    assert report.occurred_at == utc(2024, 2, 13, 7, 31, 12)
    assert report.reporter_address == "fbl@mailbox.example"  # not the forwarding NOC
    assert report.reporter_org == "Mailbox Example FBL"
    assert report.extra["original_subject"] == "You won"


def test_fields_in_a_report_txt_part() -> None:
    report = only("report_txt.eml")
    assert report.type_hint == "arf:virus"
    assert report.source_ip == "203.0.113.45"
    assert report.occurred_at == utc(2024, 2, 14, 10, 58, 7)
    assert report.occurred_raw == "2024-02-14T11:58:07+01:00"
    assert report.reporter_address == "virus-desk@scanner.example"
    assert report.extra["original_subject"] == "invoice"


def test_sloppy_fields_are_read_leniently() -> None:
    # Lower case, three fields on one line, duplicate Source-IP, "14.1" incidents, a bare URL
    # line, a folded value, a zone-less ISO date, multipart/report without report-type.
    report = only("sloppy.eml")
    assert report.type_hint == "arf:abuse"
    assert report.source_ip == "198.51.100.140"
    assert report.incidents == 14
    assert report.occurred_at == utc(2024, 2, 15, 8, 55, 21)
    assert report.occurred_raw == "2024-02-15 08:55:21"
    assert report.inferred == ["occurred_at"]
    assert report.urls == ["https://customer.example/landing"]
    assert report.domains == ["customer.example"]
    assert report.reporter_org == "mx.sloppy-mailbox.example"
    assert report.warnings == [
        "duplicate Source-IP field: the first was kept",
        "time without zone, taken as UTC",
        "Incidents '14.1' is not a whole number: taken as 14"]
    assert report.extra["user_agent"] == "SloppyFBL/0.1"
    assert report.extra["version"] == "0.1"
    assert report.extra["bare_lines"] == ["http://fbl.sloppy-mailbox.example/case/8812"]
    assert report.extra["authentication_results"] == [
        "mx.sloppy-mailbox.example; spf=softfail smtp.mailfrom=x@customer.example"]


def test_an_empty_part_2_is_a_missing_feedback_type() -> None:
    report = only("empty_part2.eml")
    assert report.type_hint == "arf:missing"
    assert report.source_ip == "198.51.100.201"
    assert report.occurred_at == utc(2024, 2, 16, 16, 44, 10)
    assert report.inferred == ["source_ip", "occurred_at"]
    assert report.warnings[:2] == ["empty feedback-report part",
                                   "no Feedback-Type field: taken as missing"]
    assert report.review_reasons == []


def test_an_auth_failure_report() -> None:
    report = only("auth_failure.eml")
    assert report.type_hint == "arf:auth-failure"
    assert report.source_ip == "203.0.113.66"
    assert report.source_port == 40122
    assert report.occurred_at == utc(2024, 2, 17, 2, 51, 37)
    assert report.domains == ["isp.example"]
    assert report.reporter_org == "DMARC Reports"
    assert {k: report.extra[k] for k in ("auth_failure", "delivery_result", "dkim_domain",
                                         "dkim_selector", "identity_alignment")} == {
        "auth_failure": "dmarc", "delivery_result": "reject", "dkim_domain": "isp.example",
        "dkim_selector": "s2024", "identity_alignment": "none"}


def test_a_not_spam_report() -> None:
    report = only("not_spam.eml")
    assert report.type_hint == "arf:not-spam"
    assert report.source_ip == "198.51.100.10"
    assert report.occurred_at == utc(2024, 2, 18, 10, 42)


def test_xarf_json_inside_arf_is_left_to_the_xarf_parser() -> None:
    mail = Mail((DATA / "xarf_json.eml").read_bytes())
    assert not ArfParser().matches(mail)


def test_a_json_attachment_alone_does_not_hide_a_plain_arf() -> None:
    raw = arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.50\r\n").replace(
        b"--B--\r\n", b"--B\r\nContent-Type: application/json; name=extra.json\r\n\r\n{}\r\n"
        b"--B--\r\n")
    assert ArfParser().matches(Mail(raw))
    assert parse(raw).reports[0].source_ip == "192.0.2.50"


def test_a_microsoft_jmrp_complaint() -> None:
    report = only("jmrp.eml")
    assert report.format == "arf"
    assert report.type_hint == "arf:abuse"
    assert report.source_ip == "198.51.100.61"
    assert report.occurred_at == utc(2024, 2, 20, 4, 58, 12)
    assert report.inferred == ["source_ip", "occurred_at"]
    assert report.reporter_address == "staff@hotmail.com"
    assert report.review_reasons == []
    assert report.extra["jmrp"] is True
    assert report.extra["subject_ip"] == "198.51.100.61"


def test_a_digest_of_two_forwarded_reports_gives_two_reports() -> None:
    result = parse((DATA / "digest.eml").read_bytes())
    assert [(r.source_ip, r.reporter_address, r.occurred_at) for r in result.reports] == [
        ("198.51.100.1", "fbl@first.example", utc(2024, 2, 20, 9)),
        ("198.51.100.2", "fbl@second.example", utc(2024, 2, 20, 10, 30))]


# --- small cases ------------------------------------------------------------------------------


def test_no_source_anywhere_needs_review() -> None:
    result = parse(arf("Feedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\n"))
    report = result.reports[0]
    assert report.source_ip is None
    assert report.review_reasons == ["no source IP: no Source-IP field and none found in the "
                                     "original message's Received headers"]
    assert report.occurred_at == utc(2024, 3, 4, 12)  # the report's own Date, last resort
    assert report.inferred == ["occurred_at"]


def test_a_feedback_container_without_part_2_needs_review() -> None:
    raw = (b"From: fbl@reporter.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
           b"--B\r\nContent-Type: text/plain\r\n\r\nreport\r\n"
           b"--B\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Received: from a.example ([192.0.2.61]) by mx.reporter.example; "
           b"Mon, 04 Mar 2024 11:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n--B--\r\n")
    report = parse(raw).reports[0]
    assert report.type_hint == "arf:missing"
    assert report.source_ip == "192.0.2.61"
    assert report.review_reasons == [
        "multipart/report of type feedback-report without a feedback-report part"]


def test_quoted_printable_part_2() -> None:
    report = parse(arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.=\r\n77\r\n",
                       cte="quoted-printable")).reports[0]
    assert report.source_ip == "192.0.2.77"


def test_a_stated_private_source_ip_is_kept_with_a_warning() -> None:
    report = parse(arf("Feedback-Type: abuse\r\nSource-IP: 10.17.18.1\r\n")).reports[0]
    assert report.source_ip == "10.17.18.1"
    assert "Source-IP 10.17.18.1 is not a public address" in report.warnings


def test_an_unreadable_source_ip_falls_back_to_the_received_chain() -> None:
    original = ("Received: from h.example (h.example [198.51.100.8]) by mx.reporter.example; "
                "Mon, 04 Mar 2024 11:00:00 +0000\r\nSubject: s\r\n\r\nbody")
    report = parse(arf("Feedback-Type: abuse\r\nSource-IP: not-an-ip\r\n", original)).reports[0]
    assert report.source_ip == "198.51.100.8"
    assert report.inferred == ["source_ip", "occurred_at"]
    assert report.warnings[0] == "unreadable Source-IP 'not-an-ip'"


@pytest.mark.parametrize(("value", "expected", "warned"), [
    (None, 1, False), ("7", 7, False), ("14.1", 14, True), ("many", 1, True), ("0", 1, True)])
def test_incidents(value: str | None, expected: int, warned: bool) -> None:
    fields = "Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n"
    if value is not None:
        fields += f"Incidents: {value}\r\n"
    report = parse(arf(fields)).reports[0]
    assert report.incidents == expected
    assert any("Incidents" in w for w in report.warnings) is warned


def test_time_precedence_arrival_date_then_received_date() -> None:
    both = ("Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n"
            "Received-Date: Mon, 04 Mar 2024 08:00:00 +0000\r\n"
            "Arrival-Date: Mon, 04 Mar 2024 07:00:00 +0000\r\n")
    report = parse(arf(both)).reports[0]
    assert report.occurred_at == utc(2024, 3, 4, 7)
    assert "both Arrival-Date and Received-Date: Arrival-Date was used" in report.warnings
    received_only = "Feedback-Type: abuse\r\nReceived-Date: 4 Mar 2024 09:30:00 PST\r\n"
    assert parse(arf(received_only)).reports[0].occurred_at == utc(2024, 3, 4, 17, 30)


def test_part_3_date_when_no_hop_has_a_timestamp() -> None:
    original = "From: a@b.example\r\nDate: Mon, 04 Mar 2024 10:00:00 +0200\r\n\r\nbody"
    report = parse(arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n", original)).reports[0]
    assert report.occurred_at == utc(2024, 3, 4, 8)
    assert report.warnings == ["time taken from the original message's Date"]


def test_with_source_ip_the_time_is_that_of_the_hop_naming_it() -> None:
    original = ("Received: from relay.other.example (relay.other.example [192.0.2.90]) by "
                "mx.reporter.example; Mon, 04 Mar 2024 10:00:05 +0000\r\n"
                "Received: from host.customer.example ([198.51.100.8]) by relay.other.example; "
                "Mon, 04 Mar 2024 10:00:01 +0000\r\nSubject: s\r\n\r\nbody")
    report = parse(arf("Feedback-Type: abuse\r\nSource-IP: 198.51.100.8\r\n",
                       original)).reports[0]
    assert report.source_ip == "198.51.100.8"
    assert report.occurred_at == utc(2024, 3, 4, 10, 0, 1)
    assert report.inferred == ["occurred_at"]


# --- the field reader and the Received chain --------------------------------------------------


def test_field_reader() -> None:
    fields = parse_feedback_fields(
        "FEEDBACK-TYPE:abuse \r\nUser-Agent: Foo/1\r\n\tvia bar\r\n"
        "Source-IP:\r\nSource-IP: 192.0.2.4\r\n"  # an empty first value gives way
        "Reported-URI: http://a.example/\r\nreported-uri: http://b.example/\r\n"
        "this line is no field\r\nhttps://tracker.example/x?i=1\r\n")
    assert fields.get("feedback-type") == "abuse"
    assert fields.get("User-Agent") == "Foo/1 via bar"
    assert fields.get("source-ip") == "192.0.2.4"
    assert fields.all("reported-uri") == ["http://a.example/", "http://b.example/"]
    assert fields.bare == ["this line is no field", "https://tracker.example/x?i=1"]
    assert fields.warnings == []


def test_field_reader_splits_fields_run_together() -> None:
    fields = parse_feedback_fields(
        "Feedback-Type: abuse User-Agent: X/2 Version: 1 Source-IP: 192.0.2.9 "
        "Reporting-MTA: dns; mx.example")
    assert fields.values == {"feedback-type": ["abuse"], "user-agent": ["X/2"],
                             "version": ["1"], "source-ip": ["192.0.2.9"],
                             "reporting-mta": ["dns; mx.example"]}


# --- hostile input ----------------------------------------------------------------------------


def timed(raw: bytes, limits: ParserLimits | None = None) -> ParseResult:
    start = time.monotonic()
    result = REGISTRY.parse(raw, limits)
    assert time.monotonic() - start < HANG_GUARD_S  # a hang guard, not a speed target
    return result


def test_a_huge_field_block_is_read_within_bounds() -> None:
    result = timed(arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n"
                       + "X-Pad: a\r\n" * 50_000))
    report = result.reports[0]
    assert report.source_ip == "192.0.2.1"
    assert any("the rest was not read" in w for w in report.warnings)


def test_one_enormous_line_in_part_2() -> None:
    result = timed(arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\nUser-Agent: "
                       + "A" * 3_000_000))
    assert result.reports[0].source_ip == "192.0.2.1"
    assert len(result.reports[0].extra["user_agent"]) <= 2000


def test_thousands_of_reported_uris_are_capped() -> None:
    fields = "Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n" + "".join(
        f"Reported-URI: http://h{n}.example/\r\n" for n in range(3000))
    report = timed(arf(fields)).reports[0]
    assert len(report.urls) == 1000
    assert "more than 1000 Reported-URI fields: the rest were not read" in report.warnings


def test_a_long_received_chain_is_bounded() -> None:
    original = "".join("Received: from internal by internal; Mon, 4 Mar 2024 10:00:00 +0000\r\n"
                       for _ in range(20_000)) + "Subject: s\r\n\r\nbody"
    report = timed(arf("Feedback-Type: abuse\r\n", original)).reports[0]
    assert report.source_ip is None
    assert report.needs_review


def test_arf_nested_past_the_depth_limit_goes_to_review() -> None:
    raw = arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n")
    for _ in range(60):
        raw = (b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
               + raw)
    result = timed(raw, ParserLimits(max_mime_depth=20))
    assert result.reports == []
    assert result.needs_review


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(part2=st.binary(max_size=600), base64_encoded=st.booleans(),
       original=st.binary(max_size=400))
def test_random_part_2_and_3_never_raise(part2: bytes, base64_encoded: bool,
                                         original: bytes) -> None:
    body = base64.encodebytes(part2) if base64_encoded else part2
    cte = b"Content-Transfer-Encoding: base64\r\n" if base64_encoded else b""
    raw = (b"From: fbl@reporter.example\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
           b"--B\r\nContent-Type: message/feedback-report\r\n" + cte + b"\r\n" + body
           + b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n--B--\r\n")
    result = REGISTRY.parse(raw)
    assert result.parser == "arf"
    assert result.errors == []
    for report in result.reports:
        assert report.evidence is None or len(report.evidence) <= ParsedReport.MAX_EVIDENCE


def test_a_broken_charset_in_an_encoded_word_does_not_crash() -> None:
    # parsers.headers.clean_value raises CharsetError on these; the parser keeps the raw value.
    raw = arf("Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n").replace(
        b"From: fbl@reporter.example", b"From: =?iso-8859\xff1?q?FBL?= <fbl@reporter.example>")
    report = parse(raw).reports[0]
    assert (report.source_ip, report.reporter_address) == ("192.0.2.1", "fbl@reporter.example")


# --- the shared corpus ------------------------------------------------------------------------

FBL = "abuseio/feedback-loop"
# file -> (type_hint, source_ip, occurred_at, inferred, needs_review), each read from the file.
CORPUS_EXPECTED: dict[str, tuple[str, str, str, tuple[str, ...], bool]] = {
    "rfc/rfc5965-B1-simple.eml": (  # no Source-IP: the hop "by example.com"
        "arf:abuse", "192.0.2.1", "2005-03-08T18:00:00Z", ("source_ip", "occurred_at"), False),
    "rfc/rfc5965-B2-full.eml": ("arf:abuse", "192.0.2.1", "2005-03-08T18:00:00Z", (), False),
    "rfc/rfc6591-B1-auth-failure.eml": (
        "arf:auth-failure", "192.0.2.1", "2011-10-08T20:15:58Z", (), False),
    "sisimai/arf-01.eml": ("arf:abuse", "192.0.2.89", "2009-04-29T00:00:00Z", (), False),
    "sisimai/arf-02.eml": (  # Yahoo without Source-IP: "(EHLO mx8.example.com) (192.0.2.8)"
        "arf:abuse", "192.0.2.8", "2013-04-30T07:45:50Z", ("source_ip",), False),
    "sisimai/arf-11.eml": (
        "arf:abuse", "192.0.2.2", "2006-04-09T14:34:45Z", ("source_ip", "occurred_at"), False),
    "sisimai/arf-12.eml": (  # opt-out, part 3 "text/rfc822-header"
        "arf:opt-out", "192.0.2.89", "2006-04-09T14:34:45Z", ("source_ip", "occurred_at"),
        False),
    "sisimai/arf-14.eml": (  # Amazon SES via Yahoo, no Source-IP
        "arf:abuse", "192.0.2.2", "2017-04-29T23:34:45Z", ("source_ip",), False),
    "sisimai/arf-15.eml": ("arf:abuse", "192.0.2.222", "2015-04-29T23:34:45Z", (), False),
    "sisimai/arf-16.eml": ("arf:abuse", "192.0.2.1", "2015-04-29T23:34:45Z", (), False),
    "sisimai/arf-17.eml": ("arf:abuse", "192.0.2.3", "2016-04-29T23:34:45Z", (), False),
    "sisimai/arf-18.eml": ("arf:auth-failure", "192.0.2.222", "2015-04-29T23:34:45Z", (), False),
    "sisimai/arf-19.eml": ("arf:auth-failure", "203.0.113.2", "2015-04-29T14:34:45Z", (), False),
    "sisimai/arf-20.eml": (  # no Arrival-Date: the hop's timestamp
        "arf:auth-failure", "203.0.113.2", "2015-04-29T23:34:45Z", ("occurred_at",), False),
    "sisimai/arf-21.eml": ("arf:abuse", "198.51.100.224", "2015-04-29T23:34:45Z", (), False),
    # Microsoft JMRP, not ARF: the forwarded message came from 203.0.113.245, the subject says
    # 192.0.2.222 (the sample was sanitised): a person decides.
    "sisimai/arf-22.eml": (
        "arf:abuse", "203.0.113.245", "2016-04-29T23:34:45Z", ("source_ip", "occurred_at"), True),
    "sisimai/arf-23.eml": (
        "arf:abuse", "203.0.113.245", "2016-04-29T23:34:45Z", ("source_ip", "occurred_at"), True),
    "sisimai/arf-24.eml": (
        "arf:abuse", "203.0.113.245", "2016-04-29T23:34:45Z", ("source_ip", "occurred_at"), True),
    "sisimai/arf-25.eml": ("arf:abuse", "10.0.0.1", "2020-10-31T18:02:57Z", (), False),
    f"{FBL}/AOL_example_1.eml": ("arf:abuse", "10.17.18.1", "2016-01-19T19:32:40Z", (), False),
    f"{FBL}/AOL_example_2.eml": ("arf:abuse", "10.17.18.2", "2016-01-20T00:04:10Z", (), False),
    f"{FBL}/Bluetie_example_1.eml": (
        "arf:abuse", "10.17.18.3", "2016-01-16T06:10:14Z", (), False),
    f"{FBL}/Bluetie_example_2.eml": (
        "arf:abuse", "10.17.18.4", "2016-01-17T19:50:35Z", (), False),
    f"{FBL}/Comcast_example_1.eml": (
        "arf:abuse", "10.17.18.5", "2016-01-19T12:42:56Z", (), False),
    f"{FBL}/Comcast_example_2.eml": (
        "arf:abuse", "10.17.18.6", "2016-01-19T15:14:53Z", (), False),
    f"{FBL}/Cox_example_1.eml": ("arf:abuse", "10.17.18.7", "2015-12-21T22:52:30Z", (), False),
    f"{FBL}/Cox_example_2.eml": ("arf:abuse", "10.17.18.8", "2016-01-17T20:53:33Z", (), False),
    f"{FBL}/Fastmail_example_1.eml": (
        "arf:abuse", "10.17.18.9", "2016-01-16T11:09:22Z", (), False),
    f"{FBL}/Fastmail_example_2.eml": (
        "arf:abuse", "10.17.18.11", "2016-01-16T11:52:00Z", (), False),
    f"{FBL}/OpenSRS_example_1.eml": (
        "arf:abuse", "10.17.18.12", "2016-01-17T06:57:49Z", (), False),
    f"{FBL}/OpenSRS_example_2.eml": (
        "arf:abuse", "10.17.18.13", "2016-01-12T23:12:05Z", (), False),
    f"{FBL}/Rackspace_example_1.eml": (
        "arf:abuse", "10.17.18.14", "2015-12-29T05:21:10Z", (), False),
    f"{FBL}/Rackspace_example_2.eml": (
        "arf:abuse", "10.17.18.15", "2015-11-26T02:10:09Z", (), False),
    f"{FBL}/RoadRunner_example_1.eml": (
        "arf:abuse", "10.17.18.16", "2016-01-13T16:41:53Z", (), False),
    f"{FBL}/RoadRunner_example_2.eml": (
        "arf:abuse", "10.17.18.20", "2016-01-06T10:22:48Z", (), False),
    f"{FBL}/Synacor_example_1.eml": (
        "arf:abuse", "10.17.18.21", "2016-01-10T21:56:23Z", (), False),
    f"{FBL}/Synacor_example_2.eml": (
        "arf:abuse", "10.18.19.20", "2015-02-10T01:36:04Z", (), False),
    f"{FBL}/USANet_example_1.eml": (
        "arf:abuse", "10.17.18.23", "2015-10-14T06:59:38Z", (), False),
    f"{FBL}/USANet_example_2.eml": (
        "arf:abuse", "10.17.18.24", "2015-05-27T16:40:20Z", (), False),
    f"{FBL}/Yahoo_example_1.eml": (
        "arf:abuse", "10.17.18.25", "2016-01-18T23:57:24Z", (), False),
    f"{FBL}/Yahoo_example_2.eml": (
        "arf:abuse", "10.17.18.26", "2016-01-19T15:16:34Z", (), False),
    f"{FBL}/Zoho_example_1.eml": ("arf:abuse", "10.17.18.28", "2015-09-07T15:58:04Z", (), False),
    f"{FBL}/Zoho_example_2.eml": ("arf:abuse", "10.17.18.29", "2015-09-14T17:24:01Z", (), False),
    "abuseio/spamexperts/1.eml": ("arf:abuse", "172.16.10.13", "2015-08-04T08:51:18Z", (), False),
    "abuseio/spamexperts/2.eml": ("arf:abuse", "192.168.1.12", "2015-08-04T08:51:17Z", (), False),
    "abuseio/spamexperts/3.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:11Z", (), False),
    "abuseio/spamexperts/4.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:14Z", (), False),
    "abuseio/spamexperts/5.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:10Z", (), False),
    "abuseio/spamexperts/6.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:12Z", (), False),
    "abuseio/spamexperts/7.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:13Z", (), False),
    "abuseio/spamexperts/8.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:15Z", (), False),
    "abuseio/spamexperts/9.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:14Z", (), False),
    "abuseio/spamexperts/10.eml": ("arf:abuse", "10.0.2.35", "2015-08-04T11:01:12Z", (), False),
    "abuseio/spamexperts/11.eml": (
        "arf:abuse", "fdf1:cb9d:f59e:19b0::122", "2015-08-04T11:01:12Z", (), False),
    # DMARC failure reports (RFC 6591 auth-failure ARF), one from each of four senders' layouts
    "dmarc/failure/(Netease_DMARC_Failure_Report)_Rent_Reminder.eml": (
        "arf:auth-failure", "167.89.69.24", "2018-09-28T08:48:42Z", (), False),
    "dmarc/failure/DMARC_Failure_Report_for_domain.de_(mail-from=sharepoint@domain.de,"
    "_ip=10.10.10.10).eml": ("arf:auth-failure", "10.10.10.10", "2018-10-01T09:20:27Z", (), False),
    "dmarc/failure/dmarc_ruf_report_linkedin.crlf.eml": (
        "arf:auth-failure", "10.10.10.10", "2019-04-30T02:09:00Z", (), False),
    "dmarc/failure/dmarc_ruf_report_linkedin.eml": (
        "arf:auth-failure", "10.10.10.10", "2019-04-30T02:09:00Z", (), False),
}


def corpus_file(name: str) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus file {name} is absent")
    return path


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus(name: str) -> None:
    type_hint, source_ip, occurred_at, inferred, needs_review = CORPUS_EXPECTED[name]
    result = parse(corpus_file(name).read_bytes())
    assert result.errors == []
    assert len(result.reports) == 1
    report = result.reports[0]
    assert report.to_json()["occurred_at"] == occurred_at
    assert (report.type_hint, report.source_ip, tuple(report.inferred), report.needs_review) == (
        type_hint, source_ip, inferred, needs_review)


def test_corpus_mail_that_is_not_arf_is_not_taken() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    ours = {CORPUS / name for name in CORPUS_EXPECTED}
    others = [p for p in sorted(CORPUS.rglob("*.eml")) if p not in ours]
    assert CORPUS / "sisimai" / "arf-26.eml" in others  # an Apple Mail unsubscribe, not ARF
    taken = [str(p.relative_to(CORPUS)) for p in others
             if ArfParser().matches(Mail(p.read_bytes()))]
    assert taken == []

