"""X-ARF 0.1/0.2 (YAML report.txt): fixtures with their expected reports, hostile YAML, and the
X-ARF mails of the shared corpus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core.fields import iso_z
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport
from abuse_desk.parsers.formats.xarf import XarfParser, read_fields
from abuse_desk.parsers.registry import Registry

from tests.parsers import parser_support
from tests.support import HANG_GUARD_S, corpus_or_skip

DATA = Path(__file__).parent / "data" / "xarf"
REGISTRY = Registry([XarfParser()])


def parse_file(name: str) -> list[ParsedReport]:
    result = REGISTRY.parse((DATA / name).read_bytes())
    assert result.disposition is Disposition.REPORT
    assert (result.format, result.parser, result.review_reasons) == ("xarf", "xarf", [])
    return result.reports


def summary(report: ParsedReport) -> dict[str, Any]:
    return parser_support.summary(report, (*parser_support.SUMMARY_FIELDS, "incidents"))


def mail_with_report(report: str, header: str = "X-XARF: PLAIN\n",
                     name: str = "report.txt") -> bytes:
    return (f"From: r@reporter.example\nSubject: report\nDate: Fri, 01 Mar 2024 10:00:00 +0000\n"
            f"{header}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
            f"--b\nContent-Type: text/plain\n\nhuman text\n\n"
            f"--b\nContent-Type: text/plain; charset=utf-8; name=\"{name}\"\n\n{report}\n"
            f"--b--\n").encode()


# --- fixtures ---------------------------------------------------------------------------------


def test_login_attack_with_its_log_after_the_report() -> None:
    [report] = parse_file("login_attack_evidence_after.eml")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:login-attack", "source_ip": "192.0.2.45",
        "source_port": 22, "occurred_at": "2024-03-05T08:12:51Z",
        "occurred_raw": "Tue, 05 Mar 2024 09:12:51 +0100", "urls": [], "domains": [],
        "reporter_address": "reports@honeypot.example", "reporter_org": "honeypot.example",
        "incidents": 14, "inferred": ["reporter_org"], "warnings": [], "review_reasons": [],
    }
    assert report.evidence is not None
    assert report.evidence.startswith("Mar  5 09:12:49 trap sshd[2211]: Invalid user admin")
    assert report.extra["category"] == "abuse"
    assert report.extra["service"] == "ssh"
    assert report.extra["schema"] == "abuse_login-attack_0.1.2"
    assert report.extra["user_agent"] == "HoneypotFeedback 1.4"
    assert report.extra["report_id"] == "778899@honeypot.example"


def test_evidence_before_the_report_and_quoted_values() -> None:
    [report] = parse_file("evidence_first_quoted_values.eml")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:spam", "source_ip": "2001:db8:4:1::25",
        "source_port": 41234, "occurred_at": "2024-03-06T10:58:31Z",
        "occurred_raw": "2024-03-06T10:58:31Z", "urls": [], "domains": [],
        "reporter_address": "xarf@spamtrap.example", "reporter_org": "spamtrap.example",
        "incidents": 1, "inferred": ["reporter_org"], "warnings": [], "review_reasons": [],
    }
    assert report.evidence is not None
    assert report.evidence.startswith("Received: from [2001:db8:4:1::25]")
    assert "Subject: Replica watches 90% off" in report.evidence
    assert report.extra["evidence_part"]["content_type"] == "message/rfc822"
    assert report.extra["version"] == "0.1"


def test_yaml_errors_fall_back_to_lines_and_ctime_dates_are_read() -> None:
    [report] = parse_file("lenient_lines_ctime_date.eml")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:harvesting", "source_ip": "203.0.113.17",
        "source_port": 4444, "occurred_at": "2014-02-13T18:28:15Z",
        "occurred_raw": "Thu Feb 13 18:28:15 2014 +00:00 GMT", "urls": [], "domains": [],
        "reporter_address": "abuse@netwatch.example", "reporter_org": "netwatch.example",
        "incidents": 7, "inferred": ["reporter_org"],
        "warnings": ["report.txt is not valid YAML (mapping values are not allowed here); "
                     "read as 'Key: value' lines"],
        "review_reasons": [],
    }
    assert report.extra["schema_url"] == "http://support.netwatch.example/schema/xarf.json"
    assert report.extra["category"] == "info"
    assert report.evidence is not None and report.evidence.startswith("203.0.113.17 - - [13/Feb")


def test_uri_source_takes_its_address_from_the_human_part() -> None:
    [report] = parse_file("uri_source_ip_in_human_part.eml")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:phishing", "source_ip": "198.51.100.80",
        "source_port": 80, "occurred_at": "2024-03-07T11:58:02Z",
        "occurred_raw": "2024-03-07T11:58:02+00:00",
        "urls": ["http://login-bank.shop.example/secure/index.php?session=1&id=7"],
        "domains": ["login-bank.shop.example", "shop.example"],
        "reporter_address": "takedown@takedown.example", "reporter_org": "takedown.example",
        "incidents": 1, "inferred": ["source_ip", "reporter_org"],
        "warnings": ["the Source is a URL or domain: its IP address was taken from the "
                     "human-readable part"],
        "review_reasons": [],
    }
    assert report.evidence is None  # Attachment: none
    assert report.extra["category"] == "fraud"


def test_named_report_yaml_without_header_and_zone_less_date() -> None:
    [report] = parse_file("named_report_yaml_no_header.eml")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:port-scan", "source_ip": "198.51.100.200",
        "source_port": None, "occurred_at": "2024-03-01T10:00:00Z",
        "occurred_raw": "2024-03-01 10:00:00", "urls": [], "domains": [],
        "reporter_address": "noc@scanner-watch.example", "reporter_org": "scanner-watch.example",
        "incidents": 1, "inferred": ["occurred_at", "reporter_org"],
        "warnings": ["time without zone, taken as UTC"], "review_reasons": [],
    }


def test_signed_report_with_a_domain_source_ignores_the_signature() -> None:
    [report] = parse_file("smime_signed_domain_source.eml")
    assert summary(report) == {
        "format": "xarf", "type_hint": "xarf:malware-attack", "source_ip": None,
        "source_port": None, "occurred_at": "2024-03-11T06:45:10Z",
        "occurred_raw": "Mon, 11 Mar 2024 07:45:10 +0100", "urls": [],
        "domains": ["dropper.bad-host.example"],
        "reporter_address": "cert@cert.example", "reporter_org": "cert.example",
        "incidents": 1, "inferred": ["reporter_org"], "warnings": [], "review_reasons": [],
    }
    assert report.evidence is None
    assert report.extra["tlp"] == "amber"


# --- hostile YAML -----------------------------------------------------------------------------


def test_alias_bomb_fixture_is_refused_but_its_fields_are_read() -> None:
    started = time.monotonic()
    result = REGISTRY.parse((DATA / "yaml_alias_bomb.eml").read_bytes())
    assert time.monotonic() - started < HANG_GUARD_S
    [report] = result.reports
    assert report.review_reasons == [
        "report.txt uses YAML anchors, which we refuse (no alias expansion, no tags); it was "
        "read as plain 'Key: value' lines"]
    assert (report.source_ip, report.type_hint) == ("203.0.113.66", "xarf:login-attack")
    assert result.needs_review


def test_a_billion_laughs_is_answered_within_a_second() -> None:
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 30):
        levels.append(f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 10) + "]")
    raw = mail_with_report("---\nReport-Type: login-attack\nSource: 192.0.2.1\n"
                           + "\n".join(levels))
    started = time.monotonic()
    result = REGISTRY.parse(raw)
    assert time.monotonic() - started < HANG_GUARD_S
    assert result.needs_review
    assert result.reports[0].source_ip == "192.0.2.1"
    assert "anchors" in result.reports[0].review_reasons[0]


def test_a_bare_alias_is_refused_too() -> None:
    fields = read_fields("Source: *unknown\nReport-Type: spam\n")
    assert fields.review_reasons and "aliases" in fields.review_reasons[0]


def test_python_tags_construct_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    report = ("Report-Type: login-attack\n"
              f"Source: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    result = REGISTRY.parse(mail_with_report(report))
    assert not marker.exists()
    [parsed] = result.reports
    assert parsed.source_ip is None
    assert parsed.review_reasons[0].startswith("report.txt uses YAML explicit tags")
    assert parsed.review_reasons[1].startswith("Source '!!python/object/apply:os.system")


def test_python_tag_fixture_is_sent_to_review() -> None:
    result = REGISTRY.parse((DATA / "yaml_python_tag.eml").read_bytes())
    assert result.needs_review
    assert result.reports[0].source_ip is None


def test_scalars_stay_the_strings_they_were() -> None:
    # YAML 1.1 would make these 80 (int), 0.2 (float), 3723 (sexagesimal), True and a date.
    fields = read_fields("Port: 080\nVersion: 0.2\nSource: 1:2:3\nTLP: yes\n"
                         "Date: 2014-02-13\n")
    assert fields.items == {"Port": "080", "Version": "0.2", "Source": "1:2:3", "TLP": "yes",
                            "Date": "2014-02-13"}
    assert fields.warnings == [] and fields.review_reasons == []


def test_deep_nesting_is_answered_within_a_second() -> None:
    raw = mail_with_report("Report-Type: spam\nSource: " + "[" * 100_000)
    started = time.monotonic()
    result = REGISTRY.parse(raw)
    assert time.monotonic() - started < HANG_GUARD_S
    assert result.needs_review


def test_a_huge_report_is_read_only_in_part() -> None:
    padding = "".join(f"X-Pad-{n}: {'z' * 60}\n" for n in range(5000))  # ~360 KB
    raw = mail_with_report("Report-Type: spam\nSource: 192.0.2.8\n"
                           "Reported-From: a@reporter.example\n" + padding)
    started = time.monotonic()
    [parsed] = REGISTRY.parse(raw).reports
    assert time.monotonic() - started < HANG_GUARD_S
    assert parsed.source_ip == "192.0.2.8"
    assert any(w.startswith("report.txt is ") and "only the first 262144" in w
               for w in parsed.warnings)
    assert len(parsed.extra["fields"]) <= 100


# --- lenient reading --------------------------------------------------------------------------


def test_mismatched_source_type_and_bad_port_are_warnings() -> None:
    report = ("Report-Type: phishing\nSource-Type: ipv4\nSource: hxxp://bad[.]example/x\n"
              "Port: http\nDate: someday\n")
    [parsed] = REGISTRY.parse(mail_with_report(report)).reports
    assert parsed.urls == ["http://bad.example/x"]
    assert parsed.domains == ["bad.example"]
    assert parsed.source_port is None and parsed.occurred_at is None
    assert "Source-Type 'ipv4' but Source is a URL" in parsed.warnings
    assert "unreadable port 'http'" in parsed.warnings
    assert "unreadable Date 'someday'" in parsed.warnings


def test_a_report_without_source_needs_review() -> None:
    [parsed] = REGISTRY.parse(mail_with_report("Report-Type: spam\nReported-From: a@b.example\n"
                                               "Category: abuse\n")).reports
    assert parsed.review_reasons == ["X-ARF report without a Source"]


def test_missing_date_takes_the_message_date_as_inferred() -> None:
    [parsed] = REGISTRY.parse(mail_with_report("Report-Type: spam\nSource: 192.0.2.5\n")).reports
    assert iso_z(parsed.occurred_at) == "2024-03-01T10:00:00Z"
    assert "occurred_at" in parsed.inferred
    assert "no Date in the report: the message's Date taken" in parsed.warnings


def test_report_type_from_the_schema_name_when_missing() -> None:
    report = ("Source: 192.0.2.5\nReported-From: a@b.example\n"
              "Schema-URL: http://www.x-arf.org/schema/abuse_login-attack_0.1.2.json\n")
    [parsed] = REGISTRY.parse(mail_with_report(report)).reports
    assert parsed.type_hint == "xarf:login-attack"
    assert "type_hint" in parsed.inferred
    assert parsed.extra["category"] == "abuse"


@pytest.mark.parametrize("raw", [
    # an X-ARF header, but only prose
    b"From: a@b.example\nX-ARF: yes\nSubject: hi\n\nSource of trouble: your network\n",
    # a report.txt that is not X-ARF (cyscon's MALWARE-report.txt style)
    mail_with_report("---\nuri: http://x.example/\nip: 192.0.2.1\ndomain: x.example\n",
                     header="", name="MALWARE-report.txt"),
    # plain text
    b"From: a@b.example\nSubject: spam\n\nReport-Type: spam\nSource: 192.0.2.1\n",
], ids=["header-only", "foreign-report-txt", "plain-text"])
def test_what_is_not_x_arf_is_not_matched(raw: bytes) -> None:
    assert not XarfParser().matches(Mail(raw))


def test_unnamed_report_part_is_found_by_the_header() -> None:
    raw = (b"From: a@b.example\nSubject: r\nX-XARF: PLAIN\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n"
           b"Dear abuse team, see below.\n--b\nContent-Type: text/plain\n\n"
           b"Reported-From: a@b.example\nReport-Type: spam\nSource: 192.0.2.9\n"
           b"Source-Type: ipv4\n--b--\n")
    [report] = REGISTRY.parse(raw).reports
    assert (report.source_ip, report.type_hint) == ("192.0.2.9", "xarf:spam")


# --- the shared corpus ------------------------------------------------------------------------

NETCRAFT_6_URL = (
    "http://www.john-doe.tld/~newhtvzr/files/update/files/others/ii.php?rand=13InboxLightaspxn."
    "1774256418&fid.4.1252899642&fid=1&fav.1&rand.13InboxLight.aspxn.1774256418&fid.1252899642"
    "&fid.1&fav.1&username=&username1=&domain=&.rand=13InboxLight.aspx?n=1774256")
CUSTOMER1_URL = ("http://customer1.tld/ints.cancellation.form.your.pc.is.now.connected/"
                 "to.ituneserver.with.ssl2active.applecustomers.webformlogin2/")
JOHN_DOE_URL = ("http://john-doe.tld/ints.cancellation.form.your.pc.is.now.connected/"
                "to.ituneserver.with.ssl2active.applecustomers.webformlogin2/")

# file -> (type_hint, source_ip, source IP inferred?, source_port, occurred_at, urls, reporter)
CORPUS_EXPECTED: dict[str, tuple[str, str, bool, int | None, str, list[str], str]] = {
    "abuseio/blocklistde/Blocklistde_Example_1.eml": (
        "xarf:regbot", "10.0.2.150", False, 80, "2014-01-31T06:19:02Z", [],
        "abuse-team@blocklist.de"),
    "abuseio/blocklistde/Blocklistde_Example_2.eml": (
        "xarf:regbot", "fdf1:cb9d:f59e:19b0::33:4f", False, 80, "2014-01-31T06:19:02Z", [],
        "abuse-team@blocklist.de"),
    "abuseio/cleanmx/Cleanmx_Example_1.eml": (
        "xarf:harvesting", "192.168.2.20", False, 25, "2015-06-07T19:09:11Z", [],
        "abuse@clean-mx.de"),
    "abuseio/cleanmx/Cleanmx_Example_3.eml": (
        "xarf:harvesting", "fdf1:cb9d:f59e:19b0:45ff::1", False, 25, "2015-06-07T19:09:11Z", [],
        "abuse@clean-mx.de"),
    "abuseio/netcraft/Netcraft_Example_1.eml": (
        "xarf:malware-attack", "10.0.2.2", False, None, "2015-07-23T01:58:17Z",
        ["http://www.domain.tld/scripts/ufo.js"], "takedown@netcraft.com"),
    "abuseio/netcraft/Netcraft_Example_2.eml": (
        "xarf:malware-attack", "fdf1:cb9d:f59e:19b0::1", False, None, "2015-07-23T01:58:17Z",
        ["http://www.domain6.tld/scripts/ufo.js"], "takedown@netcraft.com"),
    "abuseio/netcraft/Netcraft_Example_3.eml": (
        "xarf:phishing", "10.0.2.11", True, 80, "2015-10-12T06:40:56Z", [CUSTOMER1_URL],
        "takedown@netcraft.com"),
    "abuseio/netcraft/Netcraft_Example_4.eml": (
        "xarf:phishing", "10.1.17.34", True, 80, "2015-10-12T06:40:56Z", [JOHN_DOE_URL],
        "takedown@netcraft.com"),
    "abuseio/netcraft/Netcraft_Example_6.eml": (
        "xarf:phishing", "10.19.3.1", True, 80, "2015-10-26T11:27:58Z", [NETCRAFT_6_URL],
        "takedown@netcraft.com"),
    "abuseio/netcraft/Netcraft_Example_8.eml": (
        "xarf:phishing", "10.2.2.15", True, 80, "2015-10-07T16:18:18Z",
        ["http://www.johndoe.tld/modules/3xt/492fa6b3ede550428e9760cdefb33582/"],
        "takedown@netcraft.com"),
    "abuseio/netcraft/Netcraft_Example_9.eml": (
        "xarf:phishing", "10.2.2.15", True, 80, "2015-10-02T18:16:57Z",
        ["http://www.johndoe.tld/w/www.victim.co.uk/index.php"], "takedown@netcraft.com"),
}



@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus_x_arf_mails(name: str) -> None:
    path = corpus_or_skip() / name
    if not path.exists():
        pytest.skip(f"{name} is not in the corpus")
    result = REGISTRY.parse(path.read_bytes())
    assert (result.disposition, result.format, result.parser) == (Disposition.REPORT, "xarf",
                                                                   "xarf")
    [report] = result.reports
    type_hint, ip, inferred, port, occurred, urls, reporter = CORPUS_EXPECTED[name]
    assert report.type_hint == type_hint
    assert report.source_ip == ip
    assert ("source_ip" in report.inferred) is inferred
    assert report.source_port == port
    assert iso_z(report.occurred_at) == occurred
    assert report.urls == urls
    assert report.reporter_address == reporter
    assert not result.needs_review


def test_no_other_corpus_mail_is_taken_for_x_arf() -> None:
    root = corpus_or_skip()
    parser = XarfParser()
    taken = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix in (".json", ".md") or path.name.startswith("README"):
            continue
        name = path.relative_to(root).as_posix()
        if parser.matches(Mail(path.read_bytes())):
            taken.append(name)
    assert taken == sorted(CORPUS_EXPECTED)
