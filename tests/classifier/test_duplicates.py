"""Duplicates: what makes two reports the same report, and the keys a copy is found by."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from abuse_desk.classifier.duplicates import (
    MAX_KEY_CHARS,
    canonical_form,
    duplicate_keys,
    identifies_incident,
    normalize_message_id,
    report_fingerprint,
)
from abuse_desk.parsers.base import Disposition, ParsedReport
from abuse_desk.parsers.registry import default_registry

T0 = datetime(2026, 3, 1, 10, 11, 12, tzinfo=UTC)
YAHOO = "feedback@arf.mail.yahoo.com"


def arf(**changes: Any) -> ParsedReport:
    report = ParsedReport(
        format="arf", type_hint="arf:abuse", source_ip="192.0.2.10", source_port=25,
        occurred_at=T0, occurred_raw="Sun, 01 Mar 2026 10:11:12 +0000",
        urls=["http://shop.example/buy", "https://b.example/x"], domains=["shop.example"],
        reporter_address=YAHOO, reporter_org="Yahoo", evidence="Received: from x\nSpam!")
    return dataclasses.replace(report, **changes)


def acns(case: str, **changes: Any) -> ParsedReport:
    report = ParsedReport(
        format="acns", type_hint="acns:p2p", source_ip="198.51.100.31", source_port=52100,
        occurred_at=T0, reporter_address="p2p@studio.example",
        reporter_org="Studio Example Inc.", extra={"case_id": case})
    return dataclasses.replace(report, **changes)


# -- the fingerprint --------------------------------------------------------------------------


def test_the_canonical_form_and_fingerprint_are_pinned() -> None:
    # A change here re-keys every stored report: bump FINGERPRINT_VERSION on purpose.
    assert canonical_form(arf()) == [
        "v1", "arf", "arf:abuse", "192.0.2.10", 25, "2026-03-01T10:11:12Z",
        ["http://shop.example/buy", "https://b.example/x"], ["shop.example"], None]
    # sha256 of '["v1","arf","arf:abuse","192.0.2.10",25,"2026-03-01T10:11:12Z",
    # ["http://shop.example/buy","https://b.example/x"],["shop.example"],null]' (no spaces)
    assert report_fingerprint(arf()) == (
        "7fafd947b89fbde6d1086b2d94c06a59e1e3d1aa537a3564e87bf1a0a82e0794")


def test_the_same_report_twice_has_the_same_fingerprint() -> None:
    assert report_fingerprint(arf()) == report_fingerprint(arf())


@pytest.mark.parametrize("change", [
    {"source_ip": "192.0.2.11"},
    {"source_port": 587},
    {"source_port": None},
    {"occurred_at": T0 + timedelta(seconds=1)},
    {"type_hint": "arf:fraud"},
    {"format": "xarf"},
    {"urls": ["http://shop.example/buy"]},
    {"urls": ["http://shop.example/BUY", "https://b.example/x"]},  # paths are case-sensitive
    {"domains": ["other.example"]},
    {"extra": {"case_id": "77-1"}},
], ids=lambda c: next(iter(c)))
def test_differences_that_matter_change_it(change: dict[str, Any]) -> None:
    assert report_fingerprint(arf(**change)) != report_fingerprint(arf())


@pytest.mark.parametrize("change", [
    {"evidence": "Received:   from x\r\n\r\nSpam!  "},
    {"evidence": None},
    {"urls": ["https://b.example/x", "http://shop.example/buy"]},
    {"urls": ["HTTP://Shop.Example/buy", "https://b.example/x", " https://b.example/x"]},
    {"domains": ["Shop.Example."]},
    {"reporter_address": "Feedback@ARF.mail.yahoo.com"},
    {"reporter_org": "Yahoo! Mail AntiSpam Feedback"},
    {"occurred_at": T0.replace(microsecond=999_999)},
    {"occurred_at": T0.astimezone(timezone(timedelta(hours=2)))},  # the same instant
    {"occurred_at": T0.replace(tzinfo=None)},  # naive is UTC
    {"occurred_raw": "2026-03-01 10:11:12 UTC"},
    {"incidents": 3, "warnings": ["time without zone"], "inferred": ["occurred_at"]},
    {"extra": {"line": 7, "user_agent": "Yahoo!-Mail-Feedback/2.0"}},
], ids=lambda c: next(iter(c)))
def test_differences_that_do_not_matter_leave_it(change: dict[str, Any]) -> None:
    assert report_fingerprint(arf(**change)) == report_fingerprint(arf())


def test_an_ipv6_address_is_compared_as_an_address() -> None:
    one = arf(source_ip="2001:DB8:0:0::15")
    assert report_fingerprint(one) == report_fingerprint(arf(source_ip="2001:db8::15"))
    assert canonical_form(one)[3] == "2001:db8::15"


# -- the keys ---------------------------------------------------------------------------------


def test_the_keys_of_a_report() -> None:
    fp = report_fingerprint(arf())

    assert duplicate_keys(arf(), "<fbl-1@arf.mail.yahoo.com>", YAHOO) == [
        f"fp:{YAHOO}:{fp}", f"msgid:{YAHOO}:fbl-1@arf.mail.yahoo.com:{fp[:16]}"]


def test_the_same_report_resent_in_a_new_message_shares_its_fingerprint_key() -> None:
    first = duplicate_keys(arf(), "<fbl-1@arf.mail.yahoo.com>", YAHOO)
    again = duplicate_keys(arf(evidence="resent"), "<fbl-2@arf.mail.yahoo.com>",
                           f"Yahoo! Mail AntiSpam Feedback <{YAHOO.upper()}>")

    assert set(first) & set(again) == {f"fp:{YAHOO}:{report_fingerprint(arf())}"}


def test_the_same_incident_from_another_reporter_is_not_merged() -> None:
    assert not set(duplicate_keys(arf(), "<a@x>", YAHOO)) & set(
        duplicate_keys(arf(), "<a@x>", "feedbackloop@fbl.cox.net"))


def test_the_message_id_is_scoped_by_reporter() -> None:
    report = arf(occurred_at=None)  # no fingerprint key: only the Message-ID can find it
    yahoo = duplicate_keys(report, "<1234@mailer>", YAHOO)
    again = duplicate_keys(report, " <1234@mailer> (resent)", "Feedback@Arf.Mail.Yahoo.com")
    other = duplicate_keys(report, "<1234@mailer>", "reports@other.example")

    assert yahoo == again == [
        f"msgid:{YAHOO}:1234@mailer:{report_fingerprint(report)[:16]}"]
    assert not set(yahoo) & set(other)


def test_a_message_id_without_a_reporter_is_no_key() -> None:
    report = arf(occurred_at=None, reporter_address=None)

    assert duplicate_keys(report, "<1234@mailer>", None) == []


def test_the_reporter_of_the_report_scopes_when_the_from_is_unknown() -> None:
    fp = report_fingerprint(arf())

    assert duplicate_keys(arf(), None, None) == [f"fp:{YAHOO}:{fp}"]
    assert duplicate_keys(arf(reporter_address=None), None, None) == [f"fp:{fp}"]


@pytest.mark.parametrize(("header", "expected"), [
    ("<abc@example.org>", "abc@example.org"),
    ("  <abc@example.org>\t", "abc@example.org"),
    ("abc@example.org", "abc@example.org"),
    ("<first@x> <second@x>", "first@x"),
    ("", None),
    (None, None),
])
def test_message_ids(header: str | None, expected: str | None) -> None:
    assert normalize_message_id(header) == expected


@pytest.mark.parametrize(("change", "expected"), [
    ({}, True),
    ({"occurred_at": None}, False),  # no time: two complaints about one IP are not one
    ({"source_ip": None}, True),  # the URLs and domains say what
    ({"source_ip": None, "urls": []}, True),
    ({"source_ip": None, "urls": [], "domains": []}, False),
    ({"source_ip": " ", "urls": [" "], "domains": []}, False),
])
def test_only_reports_that_say_when_and_what_get_a_fingerprint_key(
        change: dict[str, Any], expected: bool) -> None:
    report = arf(**change)

    assert identifies_incident(report) is expected
    assert any(k.startswith("fp:") for k in duplicate_keys(report, None, YAHOO)) is expected


def test_an_acns_case_is_found_by_its_complainant_and_case_id() -> None:
    notice = acns("77-5551234")
    reminder = acns("77-5551234", occurred_at=T0 + timedelta(days=2),
                    reporter_org="STUDIO EXAMPLE INC.")
    other_case = acns("77-5551235")
    other_studio = acns("77-5551234", reporter_address="legal@other-studio.example")
    other_ip = acns("77-5551234", source_ip="203.0.113.9")

    keys = duplicate_keys(notice, "<n1@ip-echelon.example>", "notices.p2p@ip-echelon.example")
    assert keys[-1] == "acns:p2p@studio.example:77-5551234:198.51.100.31"
    assert set(keys) & set(duplicate_keys(reminder, "<n2@ip-echelon.example>",
                                          "notices.p2p@ip-echelon.example")) == {
        "acns:p2p@studio.example:77-5551234:198.51.100.31"}
    assert report_fingerprint(reminder) != report_fingerprint(notice)
    for different in (other_case, other_studio, other_ip):
        assert not set(keys) & set(duplicate_keys(different, "<n3@x>", "notices@x.example"))


def test_a_case_without_a_complainant_address_is_scoped_by_its_organisation() -> None:
    notice = acns("MM-0001", reporter_address=None, reporter_org="  MarkMonitor   Antipiracy ")

    assert duplicate_keys(notice, None, None)[-1] == (
        "acns:markmonitor antipiracy:MM-0001:198.51.100.31")
    assert duplicate_keys(dataclasses.replace(notice, source_ip=None), None, None) == [
        "acns:markmonitor antipiracy:MM-0001"]


def test_keys_fit_the_column() -> None:
    long_id = "<" + "x" * 300 + "@mailer.example>"
    keys = duplicate_keys(arf(), long_id, YAHOO)
    other = duplicate_keys(arf(), long_id.replace("x", "y", 1), YAHOO)

    assert all(len(k) <= MAX_KEY_CHARS for k in keys)
    assert keys[1].startswith("msgid:sha256:")
    assert keys[1] != other[1]


# -- a real message through the real parser ---------------------------------------------------


def shadowserver_mail(rows: list[str]) -> bytes:
    csv = ('"timestamp","ip","protocol","port","hostname","tag","asn","geo"\r\n'
           + "".join(rows)).encode()
    name = "2026-03-01-scan_ssh-integra_isp-asn64500.csv"
    encoded = base64.encodebytes(csv).decode().replace("\n", "\r\n")
    return ("From: Root User <autoreports@shadowserver.org>\r\n"
            "To: abuse@integra-isp.example\r\nMessage-ID: <ss-2026-03-01@shadowserver.org>\r\n"
            "Subject: [Integra ISP] Shadowserver Integra ISP SSH Report: 2026-03-01\r\n"
            "Date: Sun, 01 Mar 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
            f'--b\r\nContent-Type: text/csv; name="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
            f"{encoded}--b--\r\n").encode()


def test_a_shadowserver_csv_of_three_rows_is_three_reports_with_no_shared_key() -> None:
    raw = shadowserver_mail([
        '"2026-03-01 00:00:01","192.0.2.1","tcp",22,,"ssh",64500,"DE"\r\n',
        '"2026-03-01 00:00:01","192.0.2.2","tcp",22,,"ssh",64500,"DE"\r\n',
        '"2026-03-01 00:00:02","192.0.2.1","tcp",22,,"ssh",64500,"DE"\r\n',
    ])
    result = default_registry().parse(raw)
    assert (result.disposition, len(result.reports)) == (Disposition.REPORT, 3)

    fingerprints = {report_fingerprint(r) for r in result.reports}
    keys = [duplicate_keys(r, "<ss-2026-03-01@shadowserver.org>", "autoreports@shadowserver.org")
            for r in result.reports]

    assert len(fingerprints) == 3
    assert [len(k) for k in keys] == [2, 2, 2]
    assert len({k for row in keys for k in row}) == 6  # no row is merged into its sibling
    again = default_registry().parse(raw)  # the same mail delivered twice: the same keys
    assert [duplicate_keys(r, "<ss-2026-03-01@shadowserver.org>",
                           "autoreports@shadowserver.org") for r in again.reports] == keys
