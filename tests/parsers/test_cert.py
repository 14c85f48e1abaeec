"""parsers/cert.py: CERT, CSIRT, scanner and blocklist notices give one report per affected host.

Written from how such senders describe their notices: the affected host, its port and its
time (in a stated zone) in a table, key/value blocks or an attachment; control servers,
sinkholes and victims named beside it are never the offender; the notice or the row states
the type."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, datetime

import pytest
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParseResult, Role
from abuse_desk.parsers.formats.cert import CertParser, row_time, type_from
from abuse_desk.parsers.registry import default_registry

PARSER = CertParser()


def notice(body: str, subject: str = "[CSIRT#4711] Affected systems in AS64500",
           sender: str = "National CSIRT <reports@csirt.example>",
           headers: str = "", attachment: tuple[str, str, bytes] | None = None) -> bytes:
    head = (f"From: {sender}\r\nTo: abuse@isp.example\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 07:12:31 +0100\r\nMessage-ID: <n1@csirt.example>\r\n"
            f"{headers}MIME-Version: 1.0\r\n")
    if attachment is None:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
    name, ctype, data = attachment
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            f'--b\r\nContent-Type: {ctype}; name="{name}"\r\nContent-Transfer-Encoding: base64'
            f'\r\nContent-Disposition: attachment; filename="{name}"\r\n\r\n{encoded}--b--\r\n'
            ).encode()


def parse(raw: bytes) -> ParseResult:
    mail = Mail(raw)
    assert PARSER.matches(mail)
    result = PARSER.parse(mail)
    assert result is not None
    return result


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_pipe_table_of_open_services_gives_one_report_per_host() -> None:
    body = ("Die folgenden Systeme bieten offene RDP-Dienste an.\n\n"
            "Format: ASN | IP-Adresse | Zeitstempel (UTC) | Port | Hostname\n"
            "64500 | 192.0.2.23 | 2026-11-22 03:14:55 | 3389 | pc-23.example\n"
            "64500 | 198.51.100.141 | 2026-11-22 03:16:02 | 3389 |\n\n"
            "=====\n\nAffected systems on your network:\n\n"
            "Format: ASN | IP address | Timestamp (UTC) | Port | Hostname\n"
            "64500 | 192.0.2.23 | 2026-11-22 03:14:55 | 3389 | pc-23.example\n"
            "64500 | 198.51.100.141 | 2026-11-22 03:16:02 | 3389 |\n")
    result = parse(notice(body, subject="[CB-Report#1] Offene RDP-Dienste in AS64500"))
    assert result.disposition == Disposition.REPORT and result.format == "cert"
    got = [(r.source_ip, r.source_port, r.occurred_at, r.type_hint) for r in result.reports]
    assert got == [("192.0.2.23", 3389, at("2026-11-22T03:14:55"), "cert:open-service"),
                   ("198.51.100.141", 3389, at("2026-11-22T03:16:02"), "cert:open-service")]
    assert "192.0.2.23" in (result.reports[0].evidence or "")


def test_the_sinkhole_or_c2_column_is_never_the_offender() -> None:
    body = ("The systems below connected to a sinkhole; the destination fields are the "
            "sinkhole, not a compromised system.\n\n"
            '"source.ip","source.port","time.source","malware.name","destination.ip"\n'
            '"192.0.2.61","50612","2026-11-22T09:13:04+00:00","mirai","203.0.113.53"\n')
    [report] = parse(notice(body, subject="Infected systems in AS64500")).reports
    assert report.source_ip == "192.0.2.61" and report.source_port == 50612
    assert report.type_hint == "cert:bot"
    assert [(c.value, c.role) for c in report.candidates] == [
        ("192.0.2.61", Role.OFFENDER), ("203.0.113.53", Role.VICTIM)]
    assert report.candidates[0].port == 50612


def test_a_cc_column_beside_the_infected_host_is_a_c2_candidate() -> None:
    body = ("Incident Type: Botnet/Malware\n\n"
            "Source IP | Timestamp (IST) | C&C IP | Destination Port | Malware\n"
            "192.0.2.19 | 2026-11-22 18:42:11 | 203.0.113.180 | 443 | Qakbot\n")
    [report] = parse(notice(body, subject="Incident: Botnet infected systems")).reports
    assert report.source_ip == "192.0.2.19"
    assert report.occurred_at == at("2026-11-22T13:12:11")  # IST is UTC+5:30
    assert [(c.value, c.role) for c in report.candidates] == [
        ("192.0.2.19", Role.OFFENDER), ("203.0.113.180", Role.C2)]


def test_key_value_blocks_with_the_zone_in_the_value() -> None:
    body = ("Infected IP:  192.0.2.91\nSource port:  58122\nC2 IP:        203.0.113.148\n"
            "Timestamp:    2026-11-21 06:13:44 EET (UTC+2)\nMalware:      AsyncRAT\n\n"
            "Infected IP:  192.0.2.92\nSource port:  41190\nC2 IP:        203.0.113.148\n"
            "Timestamp:    2026-11-21 07:02:10 EET (UTC+2)\nMalware:      AsyncRAT\n")
    reports = parse(notice(body, subject="RAT infections observed in your network")).reports
    assert [(r.source_ip, r.source_port, r.occurred_at) for r in reports] == [
        ("192.0.2.91", 58122, at("2026-11-21T04:13:44")),
        ("192.0.2.92", 41190, at("2026-11-21T05:02:10"))]
    assert all(r.type_hint == "cert:bot" for r in reports)


def test_the_row_states_its_own_type() -> None:
    body = ("Security incidents (timestamps in UTC):\n"
            "64500|192.0.2.210|2026-11-22 09:41:12Z|FI|botnet drone\n"
            "64500|192.0.2.41|2026-11-22 13:05:40Z|FI|open service\n"
            "64500|192.0.2.60|2026-11-22 17:27:03Z|FI|scanner\n")
    reports = parse(notice(body, subject="[Autoreporter] Security incidents")).reports
    assert [r.type_hint for r in reports] == ["cert:bot", "cert:open-service", "cert:scan"]


def test_a_csv_attachment_sent_as_octet_stream_zipped() -> None:
    csv = ("timestamp,ip,port,protocol\n2026-11-19 05:00:12,192.0.2.30,3389,tcp\n"
           "2026-11-19 05:31:48,198.51.100.7,3389,tcp\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdp.csv", csv)
    raw = notice("Systems exposing RDP to the Internet are listed in the attached file.",
                 subject="Exposed RDP services",
                 attachment=("rdp.zip", "application/octet-stream", buffer.getvalue()))
    reports = parse(raw).reports
    assert [(r.source_ip, r.source_port) for r in reports] == [("192.0.2.30", 3389),
                                                                ("198.51.100.7", 3389)]
    assert {r.type_hint for r in reports} == {"cert:open-service"}


def test_the_notice_states_a_zone_for_zone_less_times() -> None:
    body = ("IP | Porta | Data/Hora\n192.0.2.21 | 1900/udp | 2026-11-19 18:10:05\n\n"
            "The addresses above expose SSDP to the Internet (times UTC-3).\n")
    [report] = parse(notice(body, subject="Open SSDP service")).reports
    assert report.occurred_at == at("2026-11-19T21:10:05") and report.source_port == 1900


def test_one_host_named_in_the_subject_with_the_time_in_the_text() -> None:
    body = ("The IP address 192.0.2.7 was added to our list on 11/21/2026 11:25 AM PST\n"
            "because it was observed sending spam to our traps.\n")
    [report] = parse(notice(body, subject="Listing notice for 192.0.2.7",
                            sender="Reputation Block List <rbl-noreply@rbl.example>")).reports
    assert report.source_ip == "192.0.2.7"
    assert report.occurred_at == at("2026-11-21T19:25:00")
    assert report.type_hint == "cert:spam"


def test_a_delisting_notice_is_ignored() -> None:
    raw = notice("Good news: the IP 192.0.2.58 has been removed from our list.\n",
                 subject="IP 192.0.2.58 removed from Level1", sender="List <noreply@list.example>")
    assert parse(raw).disposition == Disposition.IGNORED


def test_a_phishing_url_without_an_address() -> None:
    body = ("URL: hxxps://bank-login[.]phish.example/app/index.php\n"
            "Reported: 2026-11-23 11:20:00 -0300\n")
    [report] = parse(notice(body, subject="Phishing page on your network")).reports
    assert report.source_ip is None
    assert report.urls == ["https://bank-login.phish.example/app/index.php"]
    assert report.occurred_at == at("2026-11-23T14:20:00")
    assert report.type_hint == "cert:phishing"


def test_a_notice_with_auto_submitted_auto_replied_is_still_recognised() -> None:
    """The guard decides by content (parsers/guards.py); this parser knows the notice."""
    raw = notice('"ip","timestamp","port"\n"192.0.2.77","2026-11-23 02:14:33","22"\n',
                 subject="SSH brute-force attacks from AS64500",
                 headers="Auto-Submitted: auto-replied\r\n")
    [report] = parse(raw).reports
    assert report.source_ip == "192.0.2.77" and report.type_hint == "cert:brute-force"


def test_a_person_without_a_table_is_not_this_parsers() -> None:
    mail = Mail(notice("Hi, your customer keeps scanning us. Please stop it.\n",
                       subject="scan", sender="Someone <me@mail.example>"))
    assert PARSER.parse(mail) is None


def test_dmarc_reports_are_not_notices() -> None:
    mail = Mail(notice("<feedback/>", subject="Report domain: isp.example Submitter: x"))
    assert not PARSER.matches(mail)


def test_registered_at_the_sender_stage() -> None:
    names = default_registry().names()
    assert "cert" in names and names.index("cert") < names.index("text")


@pytest.mark.parametrize(("text", "key"), [
    ("Offene DNS-Resolver in AS64500", "open-service"),
    ("Vulnerable Citrix NetScaler devices", "open-service"),
    ("Schadprogramm-Infektionen in AS64500", "bot"),
    ("Compromised Microsoft Exchange servers (webshells)", "bot"),
    ("Deelname aan DDoS-aanval vanuit uw netwerk", "ddos"),
    ("DDoS ataka (NTP amplification)", "ddos"),
    ("Open resolvers can be abused for DDoS amplification", "open-service"),
    ("Tentativas de força bruta / Brute force attempts", "brute-force"),
    ("Notificação de varreduras / Scans from your network", "scan"),
    ("Sukčiavimo svetainė / Phishing website", "phishing"),
    ("Copyright © 2026 Example B.V. All rights reserved.", None),
])
def test_the_type_a_notice_states(text: str, key: str | None) -> None:
    assert type_from(text) == key


@pytest.mark.parametrize(("value", "label", "zone", "expected"), [
    ("2026-11-22 03:14:55", "Timestamp (UTC)", None, "2026-11-22T03:14:55"),
    ("2026-11-22 21:14:02 -0300", "Data/Hora", None, "2026-11-23T00:14:02"),
    ("22-11-2026 08:11:05", "Timestamp (IST)", None, "2026-11-22T02:41:05"),
    ("23.11.2026 08:05:11 MEZ", "Zeitpunkt", None, "2026-11-23T07:05:11"),
    ("11/23/2026 08:55:12 AM EST (-0500)", "first beacon", None, "2026-11-23T13:55:12"),
    ("Nov 21, 2026 11:20 UTC", "Detected", None, "2026-11-21T11:20:00"),
    ("2026-11-20 12:00:41", "timestamp", -180, "2026-11-20T15:00:41"),
    ("2026-11-22T14:03:17Z", "DateTimeReportedUtc", 120, "2026-11-22T14:03:17"),
])
def test_row_times_with_their_zone(value: str, label: str, zone: int | None,
                                   expected: str) -> None:
    assert row_time(value, label, zone) == at(expected)


def test_a_listing_takes_its_last_trap_hit_a_scanner_its_first_sighting() -> None:
    block = ("Listed because it sent mail to our spamtraps.\n\n"
             "  IP           192.0.2.58\n  First impact  2026-11-22 08:14:02 CET\n"
             "  Last impact   2026-11-22 13:14:02 CET\n")
    [listed] = parse(notice(block, subject="IP 192.0.2.58 listed in Level1",
                            sender="List <noreply@list.example>")).reports
    assert listed.occurred_at == at("2026-11-22T12:14:02")
    seen = "IP:          192.0.2.99\nFirst seen:  2026-11-21 14:22:09 UTC\n" \
           "Last seen:   2026-11-22 09:22:09 UTC\n"
    [scanner] = parse(notice(seen, subject="Scanning activity from 192.0.2.99")).reports
    assert scanner.occurred_at == at("2026-11-21T14:22:09")
    assert scanner.type_hint == "cert:scan"


def test_a_phishing_url_with_the_zone_of_a_csirt_named_inside_a_word() -> None:
    body = ("Phishing URL: hxxps://bank-verify[.]mobile.example/logon.html\n"
            "Reported time: 23 Nov 2026 09:30 (HKT, GMT+8)\n")
    [report] = parse(notice(body, subject="Phishing Website", sender="XXCERT <x@xxcert.example>")
                     ).reports
    assert report.urls == ["https://bank-verify.mobile.example/logon.html"]
    assert report.occurred_at == at("2026-11-23T01:30:00")


def test_a_copyright_notice_with_a_table_is_left_to_the_dmca_parser() -> None:
    body = ("Notice of infringing material under 17 U.S.C. 512(c)(3).\n\n"
            "IP Address | Timestamp (UTC) | Title\n192.0.2.5 | 2026-11-22 03:14:55 | A Film\n")
    raw = notice(body, subject="Security notice: unauthorised distribution")
    mail = Mail(raw)
    assert PARSER.matches(mail) and PARSER.parse(mail) is None
    assert not PARSER.matches(Mail(notice(body, subject="DMCA copyright infringement notice")))


def test_a_zone_the_notice_names_in_words_and_epoch_seconds() -> None:
    body = ("All times are CET.\n\nip;port;timestamp\n192.0.2.8;445;2026-11-18 13:05:12\n")
    [report] = parse(notice(body, subject="Accessible SMB services")).reports
    assert report.occurred_at == at("2026-11-18T12:05:12")
    assert row_time("1795400000", "time", None) == datetime.fromtimestamp(1795400000, UTC)


def test_a_csv_file_with_a_comment_line_first() -> None:
    csv = b"# generated by the feed\nip,port,timestamp\n192.0.2.30,23,2026-11-19 05:00:12\n"
    raw = notice("See the attached file.", subject="Open telnet services",
                 attachment=("telnet.csv", "text/plain", csv))
    [report] = parse(raw).reports
    assert (report.source_ip, report.source_port) == ("192.0.2.30", 23)


def test_a_date_and_time_under_any_label_is_the_rows_time() -> None:
    body = ("# begin logs\n\nIP:             192.0.2.13\nURL:            http://bad.example/\n"
            "Tested on:      2015-09-23 04:04:18 +0200\n\n# end logs\n")
    [report] = parse(notice(body, subject="Malware URL on your network")).reports
    assert report.occurred_at == at("2015-09-23T02:04:18")
    assert report.urls == ["http://bad.example/"]


def test_a_notices_text_is_about_what_it_names_first() -> None:
    from abuse_desk.parsers.formats.cert import type_of_text

    assert type_of_text("Open resolvers answer anyone and are abused for DDoS attacks.") \
        == "open-service"
    assert type_of_text("Devices infected with Mirai scan for open telnet ports.") == "bot"
    assert row_time("Mon, 23 Nov 2026 07:12:31 +0100", "Date", None) == at("2026-11-23T06:12:31")


def test_the_reporters_own_scan_is_not_a_scan_by_the_host() -> None:
    from abuse_desk.parsers.formats.cert import type_of_text

    assert type_of_text("Im Zuge eines Scans wurden Systeme gefunden, die RDP öffentlich "
                        "zugänglich machen.") == "open-service"
    assert type_of_text("During our daily scan we found exposed Redis servers.") \
        == "open-service"
    assert type_of_text("This address was scanning the Internet for telnet.") == "scan"


def test_a_table_file_from_any_sender_is_read() -> None:
    csv = b"ip,port,timestamp\n192.0.2.40,9200,2026-11-19 11:48:16\n"
    raw = notice("Exposed Elasticsearch: see the file.", subject="[Ref 4711] Notification",
                 sender="Data Team <team@research.example>",
                 attachment=("hosts.csv", "application/octet-stream", csv))
    [report] = parse(raw).reports
    assert report.source_ip == "192.0.2.40" and report.type_hint == "cert:open-service"


def test_a_notice_that_states_no_type_is_left_to_the_other_parsers() -> None:
    body = ("Please remove the listings below.\n\nURL | IP | Date\n"
            "https://shop.example/item | 192.0.2.77 | 2026-11-21 16:45:00\n")
    mail = Mail(notice(body, subject="Enforcement notice ref 88", sender="Brand Desk <b@d.example>",
                       attachment=("list.csv", "text/csv", b"ip,date\n192.0.2.77,2026-11-21\n")))
    assert PARSER.matches(mail) and PARSER.parse(mail) is None
