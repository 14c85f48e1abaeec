"""Free text, the fallback: offenders, ports, times, URLs and forwarded headers read out of any
message in any charset; private addresses and the reporter's own relays never taken for the
offender; hostile text answered quickly; the free-text samples of the corpus."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport
from abuse_desk.parsers.formats.text import NO_OFFENDER, ZONELESS, TextParser
from abuse_desk.parsers.registry import Registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import CORPUS, HANG_GUARD_S

DATA = Path(__file__).parent / "data" / "text"
PARSER = TextParser()


def parse(raw: bytes) -> ParsedReport:
    result = PARSER.parse(Mail(raw))
    assert result.disposition is Disposition.REPORT
    assert result.format == "text"
    assert len(result.reports) == 1
    return result.reports[0]


def fixture(name: str) -> ParsedReport:
    return parse((DATA / name).read_bytes())


def text_mail(body: str, subject: str = "Abuse report", sender: str = "r@reporter.example",
              date: str = "Sun, 01 Mar 2026 12:00:00 +0000", extra_headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: abuse@integra-isp.example\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\n{extra_headers}MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def key_fields(report: ParsedReport) -> dict[str, Any]:
    return {"type_hint": report.type_hint, "source_ip": report.source_ip,
            "source_port": report.source_port, "occurred_at": report.occurred_at,
            "occurred_raw": report.occurred_raw, "urls": report.urls, "domains": report.domains,
            "reporter_address": report.reporter_address, "reporter_org": report.reporter_org,
            "review_reasons": report.review_reasons}


# --- the project's fixtures -------------------------------------------------------------------


def test_fail2ban_ssh_brute_force_with_syslog_lines() -> None:
    report = fixture("ssh_bruteforce_syslog.eml")
    assert key_fields(report) == {
        "type_hint": "text:brute_force", "source_ip": "185.220.101.47", "source_port": 51234,
        "occurred_at": datetime(2026, 3, 1, 10, 15, 1, tzinfo=UTC),
        "occurred_raw": "Mar  1 10:15:01", "urls": [], "domains": [],
        "reporter_address": "fail2ban@web01.hoster.example", "reporter_org": "Fail2Ban",
        "review_reasons": []}
    assert report.warnings == [
        "non-public addresses not taken as the offender: 192.168.10.5", ZONELESS,
        "time without a year, the year taken from the message's Date"]
    assert report.inferred == ["reporter_org", "source_ip", "source_port", "occurred_at",
                               "type_hint"]
    assert report.extra["source_ip_from"] == "subject"
    assert report.extra["ports"] == [22, 51234, 51240]
    # The top-level Received line (the reporter's server, 62.210.18.40) is not read at all.
    assert "other_ips" not in report.extra


def test_forwarded_spam_offender_is_the_first_external_hop_not_the_reporters_relay() -> None:
    report = fixture("forwarded_spam_outlook.eml")
    assert key_fields(report) == {
        "type_hint": "text:spam", "source_ip": "45.137.21.9", "source_port": 50312,
        "occurred_at": datetime(2026, 2, 28, 22, 2, 15, tzinfo=UTC),
        "occurred_raw": "Sat, 28 Feb 2026 23:02:15 +0100",
        "urls": ["http://cheap-watches.example/buy?id=7"], "domains": ["cheap-watches.example"],
        "reporter_address": "jane@reporter-mail.example", "reporter_org": "Jane Doe",
        "review_reasons": []}
    assert report.extra["source_ip_from"] == "received header"
    assert report.extra["received_hop"] == {
        "ip": "45.137.21.9", "helo": "webmail.example", "rdns": "dyn-45-137-21-9.customer.example",
        "by": "mx2.reporter-mail.example", "time": "Sat, 28 Feb 2026 23:02:15 +0100"}
    # 93.184.216.34 is the reporter's own relay, in the quoted headers only: not an offender.
    assert "other_ips" not in report.extra
    assert report.extra["forwarded"][0] == {
        "kind": "inline", "from": "Watches Outlet <sales@cheap-watches.example>",
        "date": "Saturday, February 28, 2026 11:02 PM", "to": "jane@reporter-mail.example",
        "subject": "Cheap watches"}
    assert report.warnings == []


def test_iso_2022_jp_via_google_groups_real_sender_and_full_width_digits() -> None:
    report = fixture("iso2022jp_google_groups.eml")
    assert key_fields(report) == {
        "type_hint": "text:brute_force", "source_ip": "185.220.101.47", "source_port": None,
        "occurred_at": datetime(2026, 3, 1, 1, 15, tzinfo=UTC),  # 10:15 JST
        "occurred_raw": "2026-03-01 10:15:00 JST", "urls": [], "domains": [],
        "reporter_address": "taro@jp-reporter.example", "reporter_org": "Taro Yamada",
        "review_reasons": []}
    assert report.extra["forwarded_by"] == "abuse@integra-isp.example"
    assert report.extra["source_ip_from"] == "forwarded subject"
    assert report.extra["other_ips"] == ["185.220.101.48"]  # written in full-width digits
    assert "reporter_address" in report.inferred
    assert "貴社ネットワークの 185.220.101.48 から" in (report.evidence or "")  # decoded, NFKC


def test_windows_1252_phishing_with_defanged_url_and_domain() -> None:
    report = fixture("windows1252_phishing.eml")
    assert key_fields(report) == {
        "type_hint": "text:phishing", "source_ip": "91.219.236.10", "source_port": 443,
        "occurred_at": datetime(2026, 2, 27, 8, 30, tzinfo=UTC),
        "occurred_raw": "2026-02-27T08:30:00Z",
        "urls": ["https://secure-login.bank-verify.example/account/verify.php"],
        "domains": ["secure-login.bank-verify.example", "paypa1-security.example"],
        "reporter_address": "takedown@brand-protect.example", "reporter_org": "Brand Protection",
        "review_reasons": []}
    assert "\u201cBank Verify\u201d" in (report.evidence or "")
    assert "\u20ac 12,000" in (report.evidence or "")
    assert report.warnings == []


def test_undeclared_8bit_latin1_ipv6_at_sentence_end_and_ipv4_mapped() -> None:
    report = fixture("undeclared_8bit_ipv6.eml")
    assert key_fields(report) == {
        "type_hint": "text:scan", "source_ip": "2a01:4f8:c17:1b2::1", "source_port": None,
        "occurred_at": datetime(2026, 3, 1, 8, 12, 44, tzinfo=UTC),
        "occurred_raw": "2026-03-01 09:12:44 +0100", "urls": [], "domains": [],
        "reporter_address": "security@mueller-gmbh.example",
        "reporter_org": "Sicherheitsteam Müller", "review_reasons": []}
    # "IPv6:2a01:...::99" is not misread as "6:2a01:..."; "::ffff:5.188.10.176" is 5.188.10.176.
    assert report.extra["other_ips"] == ["2a01:4f8:c17:1b2::99", "5.188.10.176"]
    assert "Grüßen" in (report.evidence or "")


def test_attached_message_with_ipv4_mapped_hop_and_spamvertised_url() -> None:
    report = fixture("attached_spam_mapped.eml")
    assert key_fields(report) == {
        "type_hint": "text:spam", "source_ip": "77.247.181.165", "source_port": None,
        "occurred_at": datetime(2026, 3, 3, 21, 40, 3, tzinfo=UTC),
        "occurred_raw": "Tue, 03 Mar 2026 21:40:03 +0000 (UTC)",
        "urls": ["http://claim-prize.example/form"], "domains": ["claim-prize.example"],
        "reporter_address": "postmaster@mailprovider.example", "reporter_org": "Postmaster",
        "review_reasons": []}
    assert report.extra["forwarded"] == [{
        "kind": "attached", "from": "Lottery Office <winner@lottery.example>",
        "date": "Tue, 03 Mar 2026 21:39:58 +0000", "subject": "You have won!"}]


def test_html_only_labelled_attacker_wins_over_the_victim_and_zone_less_time() -> None:
    report = fixture("html_ddos_labelled.eml")
    assert key_fields(report) == {
        "type_hint": "text:ddos", "source_ip": "80.82.77.139", "source_port": None,
        "occurred_at": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "occurred_raw": "March 2, 2026 10:00 AM", "urls": [], "domains": [],
        "reporter_address": "noc@victim-hosting.example", "reporter_org": "NOC",
        "review_reasons": []}
    assert report.extra["source_ip_from"] == "text, labelled"
    assert report.extra["other_ips"] == ["151.101.1.69"]
    assert report.extra["non_public_ips"] == ["10.20.30.40"]
    assert report.extra["reporter_urls"] == ["https://status.victim-hosting.example/incident/77"]
    assert report.warnings == ["non-public addresses not taken as the offender: 10.20.30.40",
                               ZONELESS]
    assert "occurred_at" in report.inferred


def test_no_ip_no_url_no_domain_needs_review() -> None:
    report = fixture("no_offender.eml")
    assert key_fields(report) == {
        "type_hint": "text:unknown", "source_ip": None, "source_port": None,
        "occurred_at": datetime(2026, 3, 3, 13, 30, tzinfo=UTC),
        "occurred_raw": "Tue, 03 Mar 2026 14:30:00 +0100", "urls": [], "domains": [],
        "reporter_address": "annoyed@mailbox.example", "reporter_org": "Someone Annoyed",
        "review_reasons": [NO_OFFENDER]}
    assert report.warnings == ["no time in the text: the message's Date taken"]
    assert report.extra["occurred_from"] == "message date"


# --- single features --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "ip", "port"), [
    ("Attack from 45.137.21.9:8080 on our shop.", "45.137.21.9", 8080),
    ("Source: [2a01:4f8:c17:1b2::7]:44321 hit us.", "2a01:4f8:c17:1b2::7", 44321),
    ("Offending host 45.137.21.9 (port 6667) is a bot.", "45.137.21.9", 6667),
    ("src=45.137.21.9 src_port=50123 dst_port=22", "45.137.21.9", 50123),
    ("45.137.21.9 scanned port 22 of our servers.", "45.137.21.9", None),
    ("Login attempts from 45.137.21.9:99999", "45.137.21.9", None),
])
def test_source_port_only_when_written_with_the_offender(body: str, ip: str,
                                                         port: int | None) -> None:
    report = parse(text_mail(body))
    assert (report.source_ip, report.source_port) == (ip, port)


@pytest.mark.parametrize(("line", "expected", "raw", "zone_stated"), [
    ("Time: 2026-03-01T10:00:00.250+02:00", datetime(2026, 3, 1, 8, 0, 0, 250000, tzinfo=UTC),
     "2026-03-01T10:00:00.250+02:00", True),
    ("Seen Sun, 1 Mar 2026 10:00:00 -0500 (EST) here", datetime(2026, 3, 1, 15, 0, tzinfo=UTC),
     "Sun, 1 Mar 2026 10:00:00 -0500 (EST)", True),
    ("At 1 March 2026 at 3:05 PM CET", datetime(2026, 3, 1, 14, 5, tzinfo=UTC),
     "1 March 2026 at 3:05 PM CET", True),
    ("date(1): Sun Mar  1 10:00:00 UTC 2026", datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
     "Sun Mar  1 10:00:00 UTC 2026", True),
    ("Logged 2026-03-01 10:00:00 by the firewall", datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
     "2026-03-01 10:00:00", False),
])
def test_times_with_their_zone_or_flagged(line: str, expected: datetime, raw: str,
                                          zone_stated: bool) -> None:
    report = parse(text_mail(f"Spam from 45.137.21.9.\n{line}\n"))
    assert report.occurred_at == expected
    assert report.occurred_raw == raw
    assert (ZONELESS not in report.warnings) is zone_stated
    assert "occurred_at" in report.inferred


def test_syslog_time_in_january_read_in_a_january_message_keeps_the_year_sane() -> None:
    report = parse(text_mail("Dec 31 23:59:01 gw sshd[1]: Failed password from 45.137.21.9",
                             date="Thu, 01 Jan 2026 00:10:00 +0000"))
    assert report.occurred_at == datetime(2025, 12, 31, 23, 59, 1, tzinfo=UTC)


def test_forwarded_block_subject_and_date_when_the_text_has_neither() -> None:
    report = parse(text_mail("Please stop this.\n\n-----Original Message-----\n"
                             "From: x@victim.example\n"
                             "Sent: Saturday, February 28, 2026 11:02 PM\n"
                             "Subject: abuse from 45.137.21.9\n\nbody\n"))
    assert report.source_ip == "45.137.21.9"
    assert report.extra["source_ip_from"] == "forwarded subject"
    assert report.occurred_at == datetime(2026, 2, 28, 23, 2, tzinfo=UTC)
    assert report.occurred_raw == "Saturday, February 28, 2026 11:02 PM"
    assert report.extra["occurred_from"] == "forwarded message"
    assert report.warnings == [ZONELESS]


def test_defanged_urls_and_ip() -> None:
    report = parse(text_mail("Phishing at hxxps[:]//login-secure[.]example/x and "
                             "hXXp://45[.]137[.]21[.]9/kit.zip\n"))
    assert report.urls == ["https://login-secure.example/x", "http://45.137.21.9/kit.zip"]
    assert report.domains == ["login-secure.example"]
    assert report.source_ip == "45.137.21.9"
    assert report.type_hint == "text:phishing"


def test_documentation_and_private_addresses_are_candidates_not_dropped() -> None:
    # The classifier decides by our own space: a private or documentation address is the
    # offender when the customer file says it is ours, so the parser keeps them all.
    report = parse(text_mail("Attacks from 10.0.0.1, 192.0.2.5, 127.0.0.1 and fd00::1.",
                             subject="Attack from 172.16.0.9"))
    assert report.source_ip == "192.0.2.5"  # an example address stands in for a public one
    assert report.extra["non_public_ips"] == ["172.16.0.9", "10.0.0.1", "127.0.0.1", "fd00::1"]
    assert [c.value for c in report.candidates if c.is_ip] == [
        "172.16.0.9", "10.0.0.1", "192.0.2.5", "127.0.0.1", "fd00::1"]
    assert report.review_reasons == []


def test_only_private_addresses_still_name_one() -> None:
    report = parse(text_mail("Brute force from 10.0.0.1 on our host."))
    assert report.source_ip == "10.0.0.1"
    assert report.warnings[0].startswith("only non-public addresses named: 10.0.0.1 taken")


def test_cidr_ranges_are_networks_not_offenders() -> None:
    report = parse(text_mail("Targeted range: 45.137.21.0/24, attacker 45.137.22.5."))
    assert report.source_ip == "45.137.22.5"
    assert report.extra["networks"] == ["45.137.21.0/24"]


def test_subject_ip_wins_and_others_are_listed() -> None:
    report = parse(text_mail("Also seen: 45.137.21.10 and 45.137.21.11.",
                             subject="Abuse from 45.137.21.9"))
    assert report.source_ip == "45.137.21.9"
    assert report.extra["other_ips"] == ["45.137.21.10", "45.137.21.11"]


def test_x_original_from_names_the_real_sender() -> None:
    report = parse(text_mail("Spam from 45.137.21.9", sender="Abuse List <list@lists.example>",
                             extra_headers="X-Original-From: Bob <bob@victim.example>\r\n"))
    assert report.reporter_address == "bob@victim.example"
    assert report.extra["forwarded_by"] == "list@lists.example"
    assert report.reporter_org == "Bob"


def test_a_via_forwarder_without_original_headers_uses_reply_to() -> None:
    report = parse(text_mail("Spam from 45.137.21.9",
                             sender="'Carol' via Abuse <abuse@integra-isp.example>",
                             extra_headers="Reply-To: carol@victim.example\r\n"))
    assert report.reporter_address == "carol@victim.example"


def test_reply_to_of_an_ordinary_sender_is_not_the_reporter() -> None:
    report = parse(text_mail("Spam from 45.137.21.9", sender="Dave <dave@victim.example>",
                             extra_headers="Reply-To: tickets@helpdesk.example\r\n"))
    assert report.reporter_address == "dave@victim.example"


@pytest.mark.parametrize(("subject", "body", "kind"), [
    ("Copyright infringement notice", "DMCA notice for 45.137.21.9", "copyright"),
    ("Port scan", "45.137.21.9 scanned our network", "scan"),
    ("Compromised machine", "45.137.21.9 talks to a botnet C&C server", "botnet"),
    ("Infected host", "45.137.21.9 talks to a botnet C&C server", "malware"),  # subject first
    ("Hello", "45.137.21.9 hosts malware (trojan)", "malware"),
    ("Hello", "This email was scanned for viruses. 45.137.21.9 did something.", "unknown"),
])
def test_type_hint_from_keywords(subject: str, body: str, kind: str) -> None:
    report = parse(text_mail(body, subject=subject))
    assert report.type_hint == f"text:{kind}"
    assert ("type_hint" in report.inferred) is (kind != "unknown")


def test_every_message_gets_a_report() -> None:
    registry = Registry([TextParser()])
    for raw in (b"", b"\r\n\r\n", b"\x00\xff\xfe garbage", b"Subject: x\r\n\r\n",
                b"Content-Type: application/octet-stream\r\n\r\n\x89PNG\r\n"):
        result = registry.parse(raw)
        assert result.format == "text"
        assert result.parser == "text"
        assert len(result.reports) == 1
        assert result.reports[0].review_reasons == [NO_OFFENDER]


# --- hostile text -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "\n".join(f"45.{n % 250}.{n // 250 % 250}.{n % 7} hit us" for n in range(40_000)),
    "Received: from a (b [45.137.21.9]) by c; Sun, 1 Mar 2026 10:00:00 +0000\n" * 15_000,
    "Begin forwarded message:\nFrom: x\nSubject: 45.137.21.9\n" * 20_000,
    "1." * 300_000,
    ":" * 600_000 + "1",
    "a." * 300_000 + "1",
    "hxxp://" + "a[.]" * 100_000,
    "Mar  1 10:00:00 " * 40_000,
    "x" * 1_000_000,
], ids=["many-ips", "many-received", "many-markers", "dots", "colons", "labels", "defanged",
        "syslog", "one-line"])
def test_hostile_text_is_answered_within_a_second(body: str) -> None:
    raw = text_mail(body)
    started = time.monotonic()
    report = parse(raw)
    assert time.monotonic() - started < HANG_GUARD_S
    assert len(report.extra.get("other_ips", [])) <= 100
    assert len(report.urls) <= 100


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("0123456789abcdef.:[]/ -\nfromportFROMhxp()<>@"
                                              "ÿ日本\u200b\u00ad")), max_size=400))
def test_random_text_never_raises_and_gives_one_report(body: str) -> None:
    report = parse(text_mail(body, subject=body[:60].replace("\n", " ")))
    assert report.format == "text"
    assert report.source_ip is None or ":" in report.source_ip or "." in report.source_ip


def test_random_bytes_never_raise() -> None:
    rng = random.Random(3)
    for _ in range(30):
        body = rng.randbytes(rng.randrange(0, 3000))
        result = PARSER.parse(Mail(b"Subject: x\r\nContent-Type: text/plain\r\n\r\n" + body))
        assert len(result.reports) == 1


# --- the corpus -------------------------------------------------------------------------------

# The samples are sanitised: every address in them is private or reserved, so the first one is
# the source_ip (ours only if the customer file says so); the table states what was read,
# checked against each file by hand.
TEXT_CORPUS: dict[str, dict[str, Any]] = {
    "abuseio/google/Safe_Browsing_Report_1.eml": {
        "type_hint": "text:unknown", "non_public_ips": ["10.0.2.23", "10.0.2.26"],
        "domains": ["nacions.com"], "occurred_at": "2015-02-04T06:36:10Z", "review": []},
    "abuseio/google/Safe_Browsing_Report_2.eml": {
        "type_hint": "text:unknown", "non_public_ips": ["fdf1:cb9d:f59e:19b0:ff3:567:0:30"],
        "domains": ["nacions.com"], "occurred_at": "2015-02-04T06:36:10Z", "review": []},
    "abuseio/cyscon/Cyscon_Example_1.eml": {
        "type_hint": "text:malware", "non_public_ips": ["172.16.10.13"],
        "domains": ["malware.cust.domain.tld", "www.c-sirt.org", "www.check-and-secure.com",
                    "www.x-arf.org"],
        "occurred_at": "2015-09-23T02:04:18Z", "review": []},
    "abuseio/cyscon/Cyscon_Example_2.eml": {
        "type_hint": "text:malware", "non_public_ips": ["fdf1:cb9d:f59e:19b0:ff3:567:0:33"],
        "domains": ["malware.cust.domain.tld", "www.c-sirt.org", "www.check-and-secure.com",
                    "www.x-arf.org"],
        "occurred_at": "2015-09-23T02:04:18Z", "review": []},
    "abuseio/webiron/Webiron_Example_1.eml": {
        "type_hint": "text:botnet", "non_public_ips": ["172.16.31.20"], "domains": [],
        "occurred_at": "2015-05-16T00:03:11Z", "review": []},
    "abuseio/webiron/Webiron_Example_2.eml": {
        "type_hint": "text:botnet", "non_public_ips": ["172.16.10.13"], "domains": [],
        "occurred_at": "2015-09-26T05:14:33Z", "review": []},
    "abuseio/webiron/Webiron_Example_3.eml": {
        "type_hint": "text:botnet", "non_public_ips": ["fdf1:cb9d:f59e:19b0:0:3:4:2"],
        "domains": [], "occurred_at": "2015-09-26T05:14:33Z", "review": []},
    "abuseio/projecthoneypot/Projecthoneypot_Example_free_1.eml": {
        "type_hint": "text:spam",
        "non_public_ips": ["10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4", "10.0.2.5"],
        "domains": ["www.unspam.com"], "occurred_at": "2015-10-04T06:45:10Z", "review": []},
    "abuseio/projecthoneypot/Projecthoneypot_Example_free_2.eml": {
        "type_hint": "text:spam",
        "non_public_ips": ["fdaa:b1c7:75bc:bab0::1", "fdaa:b1c7:75bc:bab0::2",
                           "fdaa:b1c7:75bc:bab0::3", "fdaa:b1c7:75bc:bab0::4",
                           "fdaa:b1c7:75bc:bab0::5"],
        "domains": ["www.unspam.com"], "occurred_at": "2015-10-04T06:45:10Z", "review": []},
    "abuseio/projecthoneypot/Projecthoneypot_Example_paid_1.eml": {
        "type_hint": "text:spam",
        "non_public_ips": ["192.168.1.19", "192.168.1.21", "192.168.1.22", "192.168.1.23"],
        "domains": ["www.unspam.com"], "occurred_at": "2015-09-21T18:00:00Z", "review": []},
    "abuseio/projecthoneypot/Projecthoneypot_Example_paid_2.eml": {
        "type_hint": "text:spam",
        "non_public_ips": ["fd30::1:ff4e:3e:d:19", "fd30::1:ff4e:3e:d:21",
                           "fd30::1:ff4e:3e:d:22", "fd30::1:ff4e:3e:d:23"],
        "domains": ["www.unspam.com"], "occurred_at": "2015-09-21T18:00:00Z", "review": []},
    # Microsoft JMRP complaints (not ARF): the complained-of message is attached.
    "sisimai/arf-22.eml": {
        "type_hint": "text:spam", "source_ip": "192.0.2.222", "non_public_ips": [], "domains": [],
        "occurred_at": "2016-04-29T23:34:45Z", "review": []},
    "sisimai/arf-23.eml": {
        "type_hint": "text:spam", "source_ip": "192.0.2.222", "non_public_ips": [], "domains": [],
        "occurred_at": "2016-04-29T23:34:45Z", "review": []},
    "sisimai/arf-24.eml": {
        "type_hint": "text:spam", "source_ip": "192.0.2.222", "non_public_ips": [], "domains": [],
        "occurred_at": "2016-04-29T23:34:45Z", "review": []},
}


@pytest.mark.parametrize("name", sorted(TEXT_CORPUS))
def test_corpus_free_text(name: str) -> None:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"sample corpus not found at {CORPUS}")
    expected = TEXT_CORPUS[name]
    report = parse(path.read_bytes())
    doc = report.to_json()
    # sanitised samples: private and reserved addresses only, the first one named is taken
    assert report.source_ip == (expected.get("source_ip") or expected["non_public_ips"][0])
    assert report.type_hint == expected["type_hint"]
    # documentation addresses (RFC 5737) stand in for public ones: not "non-public"
    assert report.extra.get("non_public_ips", []) == expected["non_public_ips"]
    assert report.domains == expected["domains"]
    assert doc["occurred_at"] == expected["occurred_at"]
    assert report.review_reasons == expected["review"]
    if name.startswith("sisimai/"):
        assert report.extra["jmrp"] is True
        assert report.reporter_address == "staff@hotmail.com"
