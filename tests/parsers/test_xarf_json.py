"""XARF JSON (v4 and abusix v1-v3): fixtures with their expected reports, the transports (xarf.json
attachment, ARF with Feedback-Type xarf, bare body), broken and hostile JSON, validation, and the
32 v4 samples of the shared corpus wrapped in mails."""

from __future__ import annotations

import base64
import json
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core.fields import iso_z
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport
from abuse_desk.parsers.formats.xarf_json import XarfJsonParser, validate_v4
from abuse_desk.parsers.registry import Registry

from tests.parsers import parser_support
from tests.support import HANG_GUARD_S, corpus_or_skip

DATA = Path(__file__).parent / "data" / "xarf_json"
REGISTRY = Registry([XarfJsonParser()])


def parse_file(name: str, fmt: str) -> list[ParsedReport]:
    result = REGISTRY.parse((DATA / name).read_bytes())
    assert result.disposition is Disposition.REPORT
    assert (result.format, result.parser, result.review_reasons) == (fmt, "xarf-json", [])
    return result.reports


def summary(report: ParsedReport) -> dict[str, Any]:
    return parser_support.summary(
        report, [name for name in parser_support.SUMMARY_FIELDS if name != "occurred_raw"])


def with_attachment(data: bytes, filename: str = "xarf.json",
                    subtype: str = "json") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Reporter <reports@reporter.example>"
    msg["Subject"] = "XARF report"
    msg.set_content("The report is attached.")
    msg.add_attachment(data, maintype="application", subtype=subtype, filename=filename)
    return msg.as_bytes()


def feedback_xarf(json_part: bytes, part2_extra: str = "",
                  part3_type: str = "application/json; name=xarf.json") -> bytes:
    encoded = base64.encodebytes(json_part).decode()
    return (f"From: r@reporter.example\nSubject: XARF\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=\"B\"\n\n"
            f"--B\nContent-Type: text/plain\n\nhuman\n"
            f"--B\nContent-Type: message/feedback-report\n\n"
            f"Feedback-Type: xarf\nUser-Agent: T/1\nVersion: 1\n{part2_extra}"
            f"--B\nContent-Type: {part3_type}\nContent-Transfer-Encoding: base64\n\n{encoded}\n"
            f"--B--\n").encode()


V4_MINIMAL = {
    "xarf_version": "4.2.0", "report_id": "11111111-2222-4333-8444-555555555555",
    "timestamp": "2024-03-01T00:00:00Z",
    "reporter": {"org": "R", "contact": "r@reporter.example", "domain": "reporter.example"},
    "sender": {"org": "R", "contact": "r@reporter.example", "domain": "reporter.example"},
    "source_identifier": "192.0.2.10", "category": "connection", "type": "ddos",
}


# --- fixtures ---------------------------------------------------------------------------------


def test_v4_attachment() -> None:
    [report] = parse_file("v4_attachment_port_scan.eml", "xarf4")
    assert summary(report) == {
        "format": "xarf4", "type_hint": "xarf4:connection/port_scan", "source_ip": "203.0.113.9",
        "source_port": 61000, "occurred_at": "2024-03-08T14:22:05Z", "urls": [], "domains": [],
        "reporter_address": "reports@scan-sentinel.example", "reporter_org": "Scan Sentinel",
        "inferred": [], "warnings": [], "review_reasons": [],
    }
    assert report.evidence == ("[text/plain] IDS alerts\n"
                               "14:00:01 SYN 203.0.113.9:61000 -> 198.51.100.10:22\n"
                               "14:00:01 SYN 203.0.113.9:61000 -> 198.51.100.10:23")
    assert report.extra["report_id"] == "6f1c2a7e-3b4d-4c5e-9f60-718293a4b5c6"
    assert report.extra["destination_ip"] == "198.51.100.10"
    assert report.extra["sender"] == {"org": "Scan Sentinel",
                                      "contact": "reports@scan-sentinel.example",
                                      "domain": "scan-sentinel.example"}


def test_abusix_v3_inside_arf_with_feedback_type_xarf() -> None:
    [report] = parse_file("arf_feedback_xarf_v3_spam.eml", "xarf")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:Spam", "source_ip": "192.0.2.77",
        "source_port": 40512, "occurred_at": "2024-03-09T07:30:11Z", "urls": [], "domains": [],
        "reporter_address": "xarf@trap-collective.example", "reporter_org": "Trap Collective",
        "inferred": [], "warnings": [], "review_reasons": [],
    }
    assert report.evidence is not None
    assert report.evidence.startswith("[message/rfc822] The spam mail\nFrom: promo@sender")
    assert report.extra["report_class"] == "Activity"
    assert report.extra["report_subtype"] == "Trap"
    assert report.extra["smtp_mail_from"] == "promo@sender.example"
    assert report.extra["reporter_contact"] == "jane@trap-collective.example"


def test_invalid_json_in_arf_keeps_part_2s_source_ip() -> None:
    result = REGISTRY.parse((DATA / "arf_feedback_xarf_invalid_json.eml").read_bytes())
    [report] = result.reports
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:LoginAttack", "source_ip": "192.0.2.44",
        "source_port": None, "occurred_at": "2024-03-10T00:58:12Z", "urls": [], "domains": [],
        "reporter_address": None, "reporter_org": None,
        "inferred": ["type_hint", "occurred_at"],
        "warnings": ["source IP taken from the feedback report's Source-IP"],
        "review_reasons": ["invalid XARF JSON in xarf.json: Expecting value: line 1 column 115 "
                           "(char 114)"],
    }
    assert result.needs_review


def test_empty_json_part_needs_review() -> None:
    result = REGISTRY.parse((DATA / "arf_feedback_xarf_empty.eml").read_bytes())
    assert result.format == "xarf"
    [report] = result.reports
    assert report.review_reasons == ["empty XARF JSON part (xarf.json)"]
    assert report.source_ip is None


def test_bare_v4_body_with_a_hyphenated_type() -> None:
    [report] = parse_file("v4_bare_body_hyphen_type.eml", "xarf4")
    assert summary(report) == {
        "format": "xarf4", "type_hint": "xarf4:connection/login_attack",
        "source_ip": "2001:db8:77::5", "source_port": 2222, "occurred_at": "2024-03-11T05:06:07Z",
        "urls": [], "domains": [], "reporter_address": "hp@tiny-honeypot.example",
        "reporter_org": "Tiny Honeypot", "inferred": ["occurred_at"],
        "warnings": ["type 'login-attack' normalised to 'login_attack'",
                     "time without zone, taken as UTC", "XARF v4 validation: missing sender"],
        "review_reasons": [],
    }


def test_a_list_of_v4_reports_with_url_and_domain_sources() -> None:
    phishing, malware = parse_file("v4_list_url_and_domain.eml", "xarf4")
    assert summary(phishing) == {
        "format": "xarf4", "type_hint": "xarf4:content/phishing", "source_ip": "203.0.113.80",
        "source_port": None, "occurred_at": "2024-03-12T08:00:00Z",
        "urls": ["http://203.0.113.80/bank/login.php"], "domains": [],
        "reporter_address": "takedown@phish-patrol.example", "reporter_org": "Phish Patrol",
        "inferred": ["source_ip"], "warnings": [], "review_reasons": [],
    }
    assert phishing.evidence == "[image/png] Screenshot (210 bytes, not decoded)"
    assert summary(malware) == {
        "format": "xarf4", "type_hint": "xarf4:content/malware", "source_ip": None,
        "source_port": None, "occurred_at": "2024-03-12T08:00:00Z",
        "urls": ["http://files.bad-cdn.example/setup.exe"], "domains": ["files.bad-cdn.example"],
        "reporter_address": "takedown@phish-patrol.example", "reporter_org": "Phish Patrol",
        "inferred": [], "warnings": [], "review_reasons": [],
    }


def test_abusix_v1_as_octet_stream_with_a_single_sample() -> None:
    [report] = parse_file("abusix_v1_octet_stream.eml", "xarf")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:LoginAttack", "source_ip": "198.51.100.23",
        "source_port": 22, "occurred_at": "2019-06-01T12:00:00Z", "urls": [], "domains": [],
        "reporter_address": "cert@old-school.example", "reporter_org": "Old School CERT",
        "inferred": ["occurred_at"], "warnings": ["time without zone, taken as UTC"],
        "review_reasons": [],
    }
    assert report.evidence == ("[text/plain] auth.log\n"
                               "Failed password for root from 198.51.100.23 port 22 ssh2")


# --- transports and matching -------------------------------------------------------------------


def test_part_3_not_labelled_json_is_still_read() -> None:
    raw = feedback_xarf(json.dumps(V4_MINIMAL).encode(), part3_type="application/octet-stream")
    result = REGISTRY.parse(raw)
    assert (result.format, result.reports[0].source_ip) == ("xarf4", "192.0.2.10")


def test_feedback_source_ip_that_disagrees_is_a_warning() -> None:
    raw = feedback_xarf(json.dumps(V4_MINIMAL).encode(), part2_extra="Source-IP: 192.0.2.99\n")
    [report] = REGISTRY.parse(raw).reports
    assert report.source_ip == "192.0.2.10"
    assert ("the feedback report's Source-IP 192.0.2.99 differs from the JSON's 192.0.2.10"
            in report.warnings)


@pytest.mark.parametrize("raw", [
    with_attachment(b'{"rows": [1, 2, 3]}', filename="stats.json"),
    b"From: a@b.example\nSubject: hi\n\n{not json at all, just braces}\n",
    b"From: a@b.example\nSubject: spam\n\nSourceIp: 192.0.2.1\n",
], ids=["other-json", "braces-in-text", "plain-text"])
def test_what_is_not_xarf_json_is_not_matched(raw: bytes) -> None:
    assert not XarfJsonParser().matches(Mail(raw))


def test_json_inside_an_arf_abuse_report_is_left_to_arf() -> None:
    raw = feedback_xarf(json.dumps(V4_MINIMAL).encode()).replace(b"Feedback-Type: xarf",
                                                                 b"Feedback-Type: abuse")
    assert not XarfJsonParser().matches(Mail(raw))


def test_json_that_is_no_xarf_report_needs_review() -> None:
    [report] = REGISTRY.parse(with_attachment(b'{"hello": "world"}')).reports
    assert report.review_reasons == ["JSON is not an XARF report (keys: hello)"]


# --- broken and hostile JSON -------------------------------------------------------------------


def test_deep_nesting_is_answered_within_a_second() -> None:
    raw = with_attachment(b"[" * 200_000 + b"]" * 200_000)
    started = time.monotonic()
    result = REGISTRY.parse(raw)
    assert time.monotonic() - started < HANG_GUARD_S
    assert result.reports[0].review_reasons == [
        "XARF JSON part xarf.json is nested too deep to read"]


def test_oversized_json_is_not_parsed_but_its_source_is_kept() -> None:
    doc = dict(V4_MINIMAL, description="x" * (6 * 1024 * 1024))
    raw = with_attachment(json.dumps(doc).encode())
    started = time.monotonic()
    result = REGISTRY.parse(raw)
    assert time.monotonic() - started < HANG_GUARD_S
    [report] = result.reports
    assert report.format == "xarf4"
    assert report.review_reasons[0].startswith("JSON part xarf.json is ")
    assert report.review_reasons[0].endswith("more than the 5242880 we parse")
    assert (report.source_ip, report.type_hint) == ("192.0.2.10", "xarf4:connection/ddos")
    assert report.inferred == ["source_ip", "type_hint"]


def test_integers_past_the_digit_limit_are_invalid_json() -> None:
    [report] = REGISTRY.parse(with_attachment(
        b'{"xarf_version": "4.2.0", "source_port": ' + b"9" * 5000 + b"}")).reports
    assert report.review_reasons[0].startswith("invalid XARF JSON in xarf.json: ")
    assert report.format == "xarf4"


def test_a_big_evidence_payload_is_decoded_only_as_far_as_the_excerpt() -> None:
    payload = base64.b64encode(b"log line\n" * 400_000).decode()  # 3.6 MB decoded
    doc = dict(V4_MINIMAL, evidence=[{"content_type": "text/plain", "description": "logs",
                                      "payload": payload}])
    raw = with_attachment(json.dumps(doc).encode())
    started = time.monotonic()
    [report] = REGISTRY.parse(raw).reports
    assert time.monotonic() - started < HANG_GUARD_S
    assert report.evidence is not None
    assert report.evidence.startswith("[text/plain] logs\nlog line\nlog line\n")
    assert len(report.evidence) <= ParsedReport.MAX_EVIDENCE
    assert report.extra["evidence_items"][0]["bytes"] == 3_600_000


def test_not_an_object_and_empty_list() -> None:
    [report] = REGISTRY.parse(with_attachment(b'"xarf_version"')).reports
    assert report.review_reasons == ["XARF JSON is a str, not an object"]
    [report] = REGISTRY.parse(with_attachment(b"[]")).reports
    assert report.review_reasons == ["xarf.json holds an empty JSON list"]


# --- v4 validation -----------------------------------------------------------------------------


def test_class_is_read_as_category_and_p2p_is_a_known_type() -> None:
    doc = {k: v for k, v in V4_MINIMAL.items() if k != "category"}
    doc.update({"class": "copyright", "type": "P2P"})
    [report] = REGISTRY.parse(with_attachment(json.dumps(doc).encode())).reports
    assert report.type_hint == "xarf4:copyright/p2p"
    assert "'class' read as 'category' (an earlier draft of the spec)" in report.warnings
    assert not any("unknown category/type" in w for w in report.warnings)


def test_required_fields_without_the_xarf_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xarf", None)  # import xarf -> ImportError
    doc = {k: v for k, v in V4_MINIMAL.items() if k not in ("report_id", "sender")}
    doc.update(xarf_version="3.0", type="teleport")
    assert validate_v4(doc) == ["xarf_version '3.0' is not 4.x.y",
                                "missing report_id, sender",
                                "unknown category/type connection/teleport"]
    assert validate_v4(dict(V4_MINIMAL)) == []


def test_the_xarf_package_checks_type_specific_fields() -> None:
    pytest.importorskip("xarf", reason="the PyPI xarf package is not installed")
    doc = dict(V4_MINIMAL, category="messaging", type="spam", source_port=25, protocol="smtp")
    assert validate_v4(doc) == ["'smtp_from' is a required property"]
    [report] = REGISTRY.parse(with_attachment(json.dumps(doc).encode())).reports
    assert report.warnings == ["XARF v4 validation: 'smtp_from' is a required property"]
    assert not report.needs_review  # a warning, not a rejection


# --- the shared corpus: 32 v4 samples, each wrapped in a mail as xarf.json ----------------------

# file -> (type_hint, source_ip, source_port, urls, domains, reporter_address)
V4_CORPUS: dict[str, tuple[str, str | None, int | None, list[str], list[str], str]] = {
    "connection-ddos.json": ("xarf4:connection/ddos", "192.0.2.155", 1, [], [],
                             "ddos@ddos-monitor.example"),
    "connection-infected-host.json": ("xarf4:connection/infected_host", "203.0.113.85", 443,
                                      [], [], "infections@malware-detect.example"),
    "connection-login-attack.json": ("xarf4:connection/login_attack", "198.51.100.77", 45621,
                                     [], [], "honeypot@ssh-monitor.example"),
    "connection-port-scan.json": ("xarf4:connection/port_scan", "198.51.100.150", 54321, [], [],
                                  "alerts@netsec-monitor.example"),
    "connection-reconnaissance.json": ("xarf4:connection/reconnaissance", "192.0.2.99", None,
                                       [], [], "security@webhost.example"),
    "connection-scraping.json": ("xarf4:connection/scraping", "192.0.2.150", None, [], [],
                                 "abuse@hosting.example"),
    "connection-sql-injection.json": ("xarf4:connection/sql_injection", "192.0.2.45", None, [],
                                      [], "security@example.com"),
    "connection-vulnerability-scan.json": ("xarf4:connection/vulnerability_scan",
                                           "203.0.113.77", None, [], [], "noc@example.net"),
    "content-brand-infringement.json": (
        "xarf4:content/brand_infringement", None, None,
        ["https://fake-apple-store.example.com/iphone"], ["fake-apple-store.example.com"],
        "brand-abuse@protection-services.example"),
    "content-csam.json": ("xarf4:content/csam", "198.51.100.42", None,
                          ["https://example.com/illegal-content"], ["example.com"],
                          "safety@example.org"),
    "content-csem.json": ("xarf4:content/csem", "198.51.100.42", None,
                          ["https://example.com/illegal-content"], ["example.com"],
                          "safety@example.org"),
    "content-exposed-data.json": (
        "xarf4:content/exposed_data", "198.51.100.99", None,
        ["http://exposed-database.example.com:8080/dump.sql"], ["exposed-database.example.com"],
        "alerts@breachmonitor.example"),
    "content-fraud.json": (
        "xarf4:content/fraud", None, None,
        ["https://crypto-scam-invest.example.com/guaranteed-returns"],
        ["crypto-scam-invest.example.com"], "fraud-reports@antifraud-coalition.example"),
    "content-malware.json": (
        "xarf4:content/malware", "192.0.2.75", None,
        ["http://download-center.example.com/setup.exe"], ["download-center.example.com"],
        "malware@malware-research.example"),
    "content-phishing.json": (
        "xarf4:content/phishing", "203.0.113.45", None,
        ["http://secure-banking-login.example.com/auth"], ["secure-banking-login.example.com"],
        "takedown@brand-protect.example"),
    "content-remote-compromise.json": (
        "xarf4:content/remote_compromise", None, None,
        ["https://compromised-blog.example.com/wp-admin/shell.php"],
        ["compromised-blog.example.com"], "compromise-alerts@websec-monitor.example"),
    "content-suspicious-registration.json": (
        "xarf4:content/suspicious_registration", None, None,
        ["https://g00gle-verify.example.com"], ["g00gle-verify.example.com"],
        "suspicious-domains@domain-intel.example"),
    "copyright-copyright.json": (
        "xarf4:copyright/copyright", "198.51.100.75", None,
        ["http://pirate-streams.example.com/show/episode5.mp4"], ["pirate-streams.example.com"],
        "copyright@broadcaster.example"),
    "copyright-cyberlocker.json": (
        "xarf4:copyright/cyberlocker", None, None,
        ["https://file-sharing.example.com/download/movie2024.mp4"], ["file-sharing.example.com"],
        "dmca@content-protection.example"),
    "copyright-link-site.json": (
        "xarf4:copyright/link_site", None, None,
        ["https://links-aggregator.example.net/movie/protected-film-2024"],
        ["links-aggregator.example.net"], "links@antipiracy-monitor.example"),
    "copyright-p2p.json": ("xarf4:copyright/p2p", "192.0.2.100", None, [], [],
                           "p2p-reports@copyright-monitor.example"),
    "copyright-ugc-platform.json": (
        "xarf4:copyright/ugc_platform", None, None,
        ["https://video-platform.example.com/watch?v=copyrighted_content"],
        ["video-platform.example.com"], "takedowns@drm-service.example"),
    "copyright-usenet.json": ("xarf4:copyright/usenet", None, None, [],
                              ["news.usenet-provider.example.com"],
                              "usenet@copyright-watch.example"),
    "infrastructure-botnet.json": ("xarf4:infrastructure/botnet", "198.51.100.25", None, [], [],
                                   "cert@cert-org.example"),
    "infrastructure-compromised-server.json": ("xarf4:infrastructure/compromised_server",
                                               "203.0.113.150", 80, [], [],
                                               "incidents@server-monitor.example"),
    "messaging-bulk-messaging.json": ("xarf4:messaging/bulk_messaging", None, 25, [],
                                      ["mail.bulk-sender.example"],
                                      "reports@email-monitor.example"),
    "messaging-spam.json": ("xarf4:messaging/spam", "192.168.1.100", 25, [], [],
                            "reports@antispam-service.example"),
    "reputation-blocklist.json": ("xarf4:reputation/blocklist", "203.0.113.200", None, [], [],
                                  "intel@threat-intel.example"),
    "reputation-threat-intelligence.json": ("xarf4:reputation/threat_intelligence",
                                            "192.0.2.50", None, [], [],
                                            "intel@threat-research.example"),
    "vulnerability-cve.json": ("xarf4:vulnerability/cve", "172.16.1.200", 8080, [], [],
                               "vulns@vuln-scanner.example"),
    "vulnerability-misconfiguration.json": ("xarf4:vulnerability/misconfiguration",
                                            "192.0.2.75", None, [], [],
                                            "scans@security-service.example"),
    "vulnerability-open-service.json": ("xarf4:vulnerability/open_service", "192.0.2.50", 3389,
                                        [], [], "reports@threat-intel.example"),
}



@pytest.mark.parametrize("name", sorted(V4_CORPUS))
def test_corpus_v4_samples_as_attachments(name: str) -> None:
    path = corpus_or_skip() / "xarf-v4" / name
    if not path.exists():
        pytest.skip(f"xarf-v4/{name} is not in the corpus")
    data = path.read_bytes()
    result = REGISTRY.parse(with_attachment(data))
    assert (result.disposition, result.format, result.parser) == (Disposition.REPORT, "xarf4",
                                                                   "xarf-json")
    [report] = result.reports
    type_hint, ip, port, urls, domains, reporter = V4_CORPUS[name]
    assert report.type_hint == type_hint
    assert report.source_ip == ip
    assert report.source_port == port
    assert report.urls == urls
    assert report.domains == domains
    assert report.reporter_address == reporter
    assert iso_z(report.occurred_at) == json.loads(data)["timestamp"]
    assert report.evidence  # every sample carries evidence
    assert report.warnings == [] and not result.needs_review


def test_corpus_has_32_v4_samples() -> None:
    names = sorted(p.name for p in (corpus_or_skip() / "xarf-v4").glob("*.json"))
    assert names == sorted(V4_CORPUS)


def test_no_corpus_mail_is_taken_for_xarf_json() -> None:
    root = corpus_or_skip()
    parser = XarfJsonParser()
    taken = [path.relative_to(root).as_posix() for path in sorted(root.rglob("*"))
             if path.is_file() and path.suffix not in (".json", ".md")
             and not path.name.startswith("README") and parser.matches(Mail(path.read_bytes()))]
    assert taken == []
