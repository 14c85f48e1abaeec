"""SpamCop: text and ARF style, spamvertised sites, summaries, what it must not take, and hostile
input."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from abuse_desk.core.config import ParserLimits
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport, ParseResult
from abuse_desk.parsers.formats.arf import ArfParser
from abuse_desk.parsers.formats.spamcop import SpamcopParser
from abuse_desk.parsers.registry import Registry

from tests.support import CORPUS, HANG_GUARD_S

DATA = Path(__file__).parent / "data" / "spamcop"
ARF_DATA = Path(__file__).parent / "data" / "arf"
# As the lead registers them: SpamCop before ARF, in the same stage.
REGISTRY = Registry([SpamcopParser(), ArfParser()])


def parse(raw: bytes, limits: ParserLimits | None = None) -> ParseResult:
    result = REGISTRY.parse(raw, limits)
    assert result.parser == "spamcop", result.review_reasons
    assert result.disposition is Disposition.REPORT
    assert result.format == "spamcop"
    assert result.errors == []
    return result


def reports(name: str) -> list[ParsedReport]:
    result = parse((DATA / name).read_bytes())
    assert result.review_reasons == []
    return result.reports


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def text_report(body: str, subject: str = "[SpamCop (192.0.2.7) id:1]x",
                sender: str = "1@reports.spamcop.net") -> bytes:
    return (f"From: {sender}\r\nTo: abuse@isp.example\r\nSubject: {subject}\r\n"
            "Date: Sun, 11 Aug 2002 07:20:00 +0000\r\n\r\n" + body).encode()


# --- text style -------------------------------------------------------------------------------


def test_text_style_email_source() -> None:
    [report] = reports("text_email.eml")
    assert report.format == "spamcop"
    assert report.type_hint == "spamcop:spam"
    assert report.source_ip == "198.51.100.23"
    assert report.source_port is None
    assert report.occurred_at == utc(2020, 3, 3, 19, 7, 2)
    assert report.occurred_raw == "Tue, 03 Mar 2020 14:07:02 -0500"
    assert report.urls == []
    assert report.reporter_address == "7123456789@reports.spamcop.net"
    assert report.reporter_org == "SpamCop"
    assert report.inferred == []
    assert report.warnings == []
    assert report.evidence is not None
    assert report.evidence.startswith("Return-Path: <bounce-4411@mailer.bulk.example>")
    assert report.extra == {
        "style": "text", "spamcop_id": "7123456789", "spamcop_version": "5.4.0",
        "tracking_url": "https://www.spamcop.net/w3m?i=z7123456789z2f1c0a9e4b7d3e61z",
        "comments": "Never signed up for this list, third copy this week."}


def test_text_style_spamvertised_sites_are_one_report_each() -> None:
    first, second = reports("text_spamvertised.eml")
    assert (first.type_hint, first.source_ip, first.urls, first.domains, first.occurred_at) == (
        "spamcop:spamvertised", "203.0.113.80", ["http://pills.example/buy"], ["pills.example"],
        utc(2020, 3, 3, 19, 12, 44))
    assert (second.type_hint, second.source_ip, second.urls, second.occurred_at) == (
        "spamcop:spamvertised", "203.0.113.81", ["http://pills-mirror.example/"],
        utc(2020, 3, 3, 19, 12, 45))
    assert first.occurred_raw == "Tue, 03 Mar 2020 19:12:44 GMT"
    assert first.review_reasons == second.review_reasons == []
    assert first.extra["spamcop_id"] == "7123456790"


def test_old_style_subject_and_markers() -> None:
    body = ("- SpamCop V1.3.3 -\r\nThis message is brief for your comfort.\r\n"
            "http://spamcop.net/w3m?i=z1234z14ad22c7z\r\n"
            "Email from 192.0.2.7 / Sun, 11 Aug 2002 00:11:15 -0700\r\n\r\n"
            "Offending message:\r\nReceived: from [192.0.2.7] by mail.example\r\n\r\n"
            "work at home\r\n")
    [report] = parse(text_report(body, "[SpamCop:192.0.2.7,id:246645593]PC Home Worker")).reports
    assert (report.type_hint, report.source_ip, report.occurred_at) == (
        "spamcop:spam", "192.0.2.7", utc(2002, 8, 11, 7, 11, 15))
    assert report.extra["spamcop_id"] == "246645593"
    assert report.extra["spamcop_version"] == "1.3.3"
    assert report.evidence == "Received: from [192.0.2.7] by mail.example\n\nwork at home"


def test_lines_inside_the_offending_message_do_not_count() -> None:
    body = ("[ SpamCop V5.4.0 ]\r\n\r\n[ Offending message ]\r\n"
            "Email from 198.51.100.99 / Sun, 11 Aug 2002 00:11:15 -0700\r\n")
    [report] = parse(text_report(body)).reports
    assert report.source_ip == "192.0.2.7"  # from the subject, not the spam's own text
    assert report.warnings == ["source taken from the subject", "time taken from the "
                               "report's own Date"]
    assert report.inferred == ["occurred_at"]


def test_a_subject_that_disagrees_is_flagged() -> None:
    body = "[ SpamCop V5.4.0 ]\r\nEmail from 198.51.100.5 / Sun, 11 Aug 2002 00:11:15 -0700\r\n"
    [report] = parse(text_report(body)).reports
    assert report.source_ip == "198.51.100.5"
    assert report.warnings == ["the subject names 192.0.2.7, the report 198.51.100.5"]


def test_a_site_without_its_address_goes_to_a_person() -> None:
    body = "[ SpamCop V5.4.0 ]\r\nSpamvertised web site: hxxp://pills[.]example/x\r\n"
    [report] = parse(text_report(body, "[SpamCop (http://pills.example/x) id:9]x")).reports
    assert report.type_hint == "spamcop:spamvertised"
    assert report.source_ip is None
    assert report.urls == ["http://pills.example/x"]
    assert report.review_reasons == ["spamvertised site named without its address"]


def test_nothing_to_report_goes_to_a_person() -> None:
    result = parse(text_report("[ SpamCop V5.4.0 ]\r\nnothing here\r\n",
                               subject="Re: your SpamCop account"))
    assert result.reports == []
    assert result.review_reasons == ["SpamCop report naming neither a source IP nor a "
                                     "spamvertised site"]


def test_text_style_with_the_spam_attached() -> None:
    raw = (b"From: 5@reports.spamcop.net\r\nSubject: [SpamCop (198.51.100.5) id:5]x\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n"
           b"--M\r\nContent-Type: text/plain\r\n\r\n[ SpamCop V5.4.0 ]\r\n"
           b"Email from 198.51.100.5 / Sun, 11 Aug 2002 00:11:15 -0700\r\n"
           b"--M\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Subject: the spam\r\nFrom: x@bulk.example\r\n\r\nbuy\r\n--M--\r\n")
    [report] = parse(raw).reports
    assert report.source_ip == "198.51.100.5"
    assert report.evidence == "Subject: the spam\nFrom: x@bulk.example\n\nbuy"


# --- ARF style --------------------------------------------------------------------------------


def test_arf_style_email_source() -> None:
    [report] = reports("arf_email.eml")
    assert report.type_hint == "spamcop:spam"
    assert report.source_ip == "198.51.100.77"
    assert report.occurred_at == utc(2020, 3, 4, 8, 14, 51)
    assert report.occurred_raw == "Wed, 04 Mar 2020 09:14:51 +0100"
    assert report.urls == ["http://parcel-track.example/id?n=55", "http://parcel-track.example/pay"]
    assert report.domains == ["parcel-track.example"]
    assert report.reporter_address == "7123456791@reports.spamcop.net"
    assert report.warnings == []
    assert report.evidence is not None and "Pay the fee" in report.evidence
    assert report.extra == {
        "style": "arf", "spamcop_id": "7123456791", "spamcop_version": "5.4.0",
        "tracking_url": "https://www.spamcop.net/w3m?i=z7123456791z0123456789abcdefz",
        "feedback_type": "abuse", "user_agent": "WWW-Mechanize/1.73 via https://www.spamcop.net",
        "version": "0.1"}


def test_arf_style_spamvertised_with_an_empty_source_ip() -> None:
    [report] = reports("arf_spamvertised.eml")
    assert report.type_hint == "spamcop:spamvertised"
    assert report.source_ip == "203.0.113.90"  # the site's, not the spam's (192.0.2.45)
    assert report.urls == ["http://parcel-track.example/pay", "http://parcel-track.example/id?n=55"]
    assert report.domains == ["parcel-track.example"]
    assert report.occurred_at == utc(2020, 3, 4, 10, 1, 41)
    assert report.inferred == []
    assert report.review_reasons == []


def test_arf_style_without_the_text_keeps_the_reported_uris_for_a_person() -> None:
    raw = (DATA / "arf_spamvertised.eml").read_bytes().replace(
        b"http://parcel-track.example/pay is 203.0.113.90;", b"(resolution failed)")
    [report] = parse(raw).reports
    assert report.type_hint == "spamcop:spamvertised"
    assert report.source_ip is None
    assert report.urls == ["http://parcel-track.example/pay"]
    assert report.review_reasons == ["spamvertised site named without its address"]


# --- summaries and alerts ---------------------------------------------------------------------


def test_summary_one_report_per_row() -> None:
    rows = reports("summary.eml")
    assert [(r.type_hint, r.source_ip, r.occurred_at, r.incidents) for r in rows] == [
        ("spamcop:summary", "198.51.100.23", utc(2020, 12, 29, 18), 54),  # year before the Date
        ("spamcop:summary", "198.51.100.77", utc(2021, 1, 5, 3), 1),
        ("spamcop:summary", "198.51.100.140", utc(2021, 1, 6, 22), 3)]
    first = rows[0]
    assert first.occurred_raw == "Dec 29 18h"
    assert first.inferred == ["occurred_at"]
    assert first.reporter_address == "summaries@admin.spamcop.net"
    assert first.extra == {"trap": 51, "user": 2, "mole": 0, "simp": 1, "length_days": 9,
                           "comments": "listed in bl.spamcop.net",
                           "rdns": "dsl-23.customer.isp.example"}
    assert "rdns" not in rows[2].extra


def test_a_summary_without_rows_goes_to_a_person() -> None:
    raw = text_report("nothing in the usual layout\r\n", "[SpamCop] summary report",
                      "summaries@admin.spamcop.net")
    result = parse(raw)
    assert result.reports == []
    assert result.review_reasons == ["SpamCop summary without a row this parser can read"]


def test_an_alert_goes_to_a_person() -> None:
    result = parse(text_report("something happened\r\n", "[SpamCop] Alert",
                               "alerts@admin.spamcop.net"))
    assert result.reports == []
    assert result.review_reasons == ["SpamCop notice '[SpamCop] Alert' is not a report this "
                                     "parser reads: a person must read it"]


# --- what it takes and what it leaves ---------------------------------------------------------


@pytest.mark.parametrize(("sender", "subject", "expected"), [
    ("7123@reports.spamcop.net", "whatever", True),
    ("Someone <someone@example.org>", "Fwd: [SpamCop (192.0.2.1) id:77]spam", True),
    ("summaries@admin.spamcop.net", "[SpamCop] summary report", True),
    ("someone@example.org", "[SpamCop] summary report", False),
    ("someone@example.org", "Why am I listed on SpamCop?", False),
    ("abuse@spamcop.net.attacker.example", "report", False),
])
def test_matches(sender: str, subject: str, expected: bool) -> None:
    assert SpamcopParser().matches(Mail(text_report("body\r\n", subject, sender))) is expected


@pytest.mark.parametrize("name", sorted(p.name for p in ARF_DATA.glob("*.eml")))
def test_plain_arf_is_left_to_the_arf_parser(name: str) -> None:
    assert not SpamcopParser().matches(Mail((ARF_DATA / name).read_bytes()))


def test_no_corpus_mail_is_taken_for_spamcop() -> None:
    # The corpus has no SpamCop sample; registered before ARF, this parser must take none.
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    files = sorted(CORPUS.rglob("*.eml"))
    assert len(files) > 100
    taken = [str(p.relative_to(CORPUS)) for p in files
             if SpamcopParser().matches(Mail(p.read_bytes()))]
    assert taken == []


# --- hostile input ----------------------------------------------------------------------------


def timed(raw: bytes, limits: ParserLimits | None = None) -> ParseResult:
    start = time.monotonic()
    result = parse(raw, limits)
    assert time.monotonic() - start < HANG_GUARD_S  # a hang guard, not a speed target
    return result


def test_thousands_of_spamvertised_lines_are_capped() -> None:
    body = "[ SpamCop V5.4.0 ]\r\n" + "".join(
        f"http://s{n}.example/ is 203.0.113.{n % 250 + 1}; Tue, 03 Mar 2020 19:12:44 GMT\r\n"
        for n in range(20_000))
    result = timed(text_report(body, "[SpamCop (http://s0.example/) id:3]x"))
    assert len(result.reports) == 100


def test_a_huge_summary_stops_at_the_report_limit() -> None:
    rows = "".join(f" 198.51.100.{n % 250 + 1}  Jan  5 03h/1  0  1  0  0\r\n"
                   for n in range(5000))
    raw = text_report(rows, "[SpamCop] summary report", "summaries@admin.spamcop.net")
    result = timed(raw, ParserLimits(max_reports=50))
    assert len(result.reports) == 50
    assert result.review_reasons == ["more than 50 rows in the summary: the rest were not read"]


def test_a_megabytes_long_body_is_searched_within_bounds() -> None:
    body = ("[ SpamCop V5.4.0 ]\r\n" + "x" * 4_000_000
            + "\r\nEmail from 198.51.100.5 / Sun, 11 Aug 2002 00:11:15 -0700\r\n")
    [report] = timed(text_report(body)).reports
    assert report.source_ip == "192.0.2.7"  # the line past the searched text is not read


def test_a_broken_charset_in_an_encoded_word_does_not_crash() -> None:
    # parsers.headers.clean_value raises CharsetError on these; the parsers keep the raw value.
    raw = text_report("Email from 198.51.100.5 / Sun, 11 Aug 2002 00:11:15 -0700\r\n").replace(
        b"From: 1@reports.spamcop.net",
        b"From: =?iso-8859\xff1?q?SpamCop?= <1@reports.spamcop.net>").replace(
        b"Subject: [SpamCop", b"Subject: =?win\xffows-1252?q?x?= [SpamCop")
    [report] = parse(raw).reports
    assert (report.source_ip, report.reporter_address) == ("198.51.100.5", "1@reports.spamcop.net")
    assert report.extra["spamcop_id"] == "1"
