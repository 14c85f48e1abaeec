"""Shadowserver: CSV and CSV-in-ZIP attachments, one report per row; download-link-only mails;
ZIP bombs, lying ZIP headers, row limits and broken CSV; the sample reports of the corpus."""

from __future__ import annotations

import base64
import csv
import io
import struct
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core.config import ParserLimits
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport, ParseResult
from abuse_desk.parsers.formats.shadowserver import NOT_ATTACHED, ShadowserverParser
from abuse_desk.parsers.formats.text import TextParser
from abuse_desk.parsers.registry import Registry

from tests.support import HANG_GUARD_S, ROOT

DATA = Path(__file__).parent / "data" / "shadowserver"
CORPUS = ROOT.parent / "shared" / "corpus" / "abuseio"
PARSER = ShadowserverParser()

HEADER = '"timestamp","ip","protocol","port","hostname","tag","asn","geo"\n'


def row(n: int) -> str:
    ip = f"45.137.{n // 250}.{n % 250 + 1}"
    return f'"2026-03-01 00:00:{n % 60:02d}","{ip}","tcp",22,,"ssh",64500,"DE"\n'


def load(name: str, limits: ParserLimits | None = None) -> Mail:
    return Mail((DATA / name).read_bytes(), limits)


def summary(report: ParsedReport) -> dict[str, Any]:
    return {"type_hint": report.type_hint, "source_ip": report.source_ip,
            "source_port": report.source_port, "occurred_at": report.occurred_at,
            "occurred_raw": report.occurred_raw}


def attachment_mail(data: bytes, filename: str, content_type: str = "application/zip",
                    sender: str = "autoreports@shadowserver.org",
                    subject: str = "[Integra ISP] Shadowserver Integra ISP Report: 2026-03-01"
                    ) -> bytes:
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (f"From: {sender}\r\nTo: abuse@integra-isp.example\r\nSubject: {subject}\r\n"
            "Date: Sun, 01 Mar 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
            f'--b\r\nContent-Type: {content_type}; name="{filename}"\r\n'
            f'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; '
            f'filename="{filename}"\r\n\r\n{encoded}--b--\r\n').encode()


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def parse_zip(members: dict[str, bytes], limits: ParserLimits | None = None,
              method: int = zipfile.ZIP_DEFLATED) -> ParseResult:
    name = "2026-03-01-scan_ssh-integra-asn64500.csv.zip"
    return PARSER.parse(Mail(attachment_mail(zipped(members, method), name), limits))


# --- the project's fixtures -------------------------------------------------------------------


def test_csv_in_zip_one_report_per_row_with_type_from_each_member_name() -> None:
    mail = load("scan_ssh_zip.eml")
    assert PARSER.matches(mail)
    result = PARSER.parse(mail)
    assert result.disposition is Disposition.REPORT
    assert result.format == "shadowserver"
    assert result.review_reasons == []
    assert [summary(r) for r in result.reports] == [
        {"type_hint": "shadowserver:scan_ssh", "source_ip": "45.137.21.9", "source_port": 22,
         "occurred_at": datetime(2026, 3, 1, 0, 1, 2, tzinfo=UTC),
         "occurred_raw": "2026-03-01 00:01:02"},
        {"type_hint": "shadowserver:scan_ssh", "source_ip": "45.137.21.10", "source_port": 2222,
         "occurred_at": datetime(2026, 3, 1, 0, 3, 4, tzinfo=UTC),
         "occurred_raw": "2026-03-01 00:03:04"},
        {"type_hint": "shadowserver:scan_ssh", "source_ip": "45.137.21.11", "source_port": 22,
         "occurred_at": datetime(2026, 3, 1, 0, 5, 6, tzinfo=UTC),
         "occurred_raw": "2026-03-01 00:05:06"},
        {"type_hint": "shadowserver:scan6_ssh", "source_ip": "2a01:4f8:c17:1b2::1",
         "source_port": 22, "occurred_at": datetime(2026, 3, 1, 1, 0, 0, tzinfo=UTC),
         "occurred_raw": "2026-03-01 01:00:00"},
    ]
    first = result.reports[0]
    assert first.reporter_address == "autoreports@shadowserver.org"
    assert first.reporter_org == "Shadowserver"
    assert first.inferred == []  # Shadowserver times are UTC by definition: nothing guessed
    assert first.warnings == []
    assert {k: first.extra[k] for k in ("report_type", "protocol", "tag", "hostname", "asn",
                                        "geo", "line")} == {
        "report_type": "scan_ssh", "protocol": "tcp", "tag": "ssh",
        "hostname": "dyn-45-137-21-9.customer.example", "asn": "64500", "geo": "DE", "line": 2}
    assert first.extra["row"]["software"] == "OpenSSH_7.4"
    assert "hostname" not in result.reports[2].extra  # "-" is Shadowserver's empty
    # The traversal name is only warned about: nothing is ever written to disk.
    assert result.extra["warnings"] == [
        "ZIP member name '../../tmp/2026-03-01-scan6_ssh-integra_isp-asn64500.csv' has a path; "
        "only its base name is used (nothing is written to disk)"]


def test_plain_csv_event4_columns_src_ip_src_port_infection() -> None:
    result = PARSER.parse(load("event4_sinkhole_http_csv.eml"))
    assert [summary(r) for r in result.reports] == [
        {"type_hint": "shadowserver:event4_sinkhole_http", "source_ip": "80.82.77.139",
         "source_port": 49152, "occurred_at": datetime(2026, 3, 2, 10, 11, 12, tzinfo=UTC),
         "occurred_raw": "2026-03-02 10:11:12"},
        {"type_hint": "shadowserver:event4_sinkhole_http", "source_ip": "80.82.77.140",
         "source_port": 50001, "occurred_at": datetime(2026, 3, 2, 10, 12, 13, tzinfo=UTC),
         "occurred_raw": "2026-03-02 10:12:13"},
    ]
    assert result.reports[0].extra["infection"] == "andromeda"
    assert result.reports[1].extra["family"] == "qsnatch"
    assert result.reports[0].extra["dst_ip"] == "198.51.100.80"
    assert result.extra["rows"] == 3
    assert result.extra["warnings"] == [
        "2026-03-02-event4_sinkhole_http-integra_isp-asn64500.csv line 4: no IP address in the "
        "row; skipped"]
    assert result.review_reasons == []


def test_download_link_only_is_a_report_for_review_with_the_unwrapped_link() -> None:
    mail = load("download_link_only.eml")
    assert PARSER.matches(mail)
    result = PARSER.parse(mail)
    assert len(result.reports) == 1
    report = result.reports[0]
    assert report.review_reasons == [NOT_ATTACHED]
    assert report.urls == ["https://dl.shadowserver.org/AbCdEf123?download"]
    assert report.type_hint == "shadowserver:botnet_drone"  # "... Botnet Drone Report" subject
    assert report.source_ip is None
    assert report.occurred_at == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert report.inferred == ["occurred_at"]
    assert result.needs_review


def test_generic_csv_name_takes_the_type_from_the_subject_and_skips_other_csvs() -> None:
    mail = load("forwarded_generic_csv.eml")
    assert PARSER.matches(mail)  # not from shadowserver.org: matched by its header row
    result = PARSER.parse(mail)
    assert [summary(r) for r in result.reports] == [
        {"type_hint": "shadowserver:botnet_drone", "source_ip": "37.120.182.5",
         "source_port": 35001, "occurred_at": datetime(2026, 3, 4, 2, 3, 4, tzinfo=UTC),
         "occurred_raw": "2026-03-04 02:03:04"}]
    assert result.reports[0].incidents == 3  # the legacy "count" column
    assert result.reports[0].extra["infection"] == "necurs"
    assert result.extra["skipped_attachments"] == ["customers.csv"]


def test_the_registry_sends_shadowserver_here_and_plain_mail_to_text() -> None:
    registry = Registry([TextParser(), ShadowserverParser()])
    assert registry.parse((DATA / "scan_ssh_zip.eml").read_bytes()).format == "shadowserver"
    plain = b"From: a@example.org\r\nSubject: hello\r\n\r\nspam from 45.137.21.9\r\n"
    assert registry.parse(plain).format == "text"


@pytest.mark.parametrize("raw", [
    b"From: a@example.org\r\nSubject: hi\r\n\r\nNothing here.\r\n",
    attachment_mail(zipped({"photos/cat.jpg": b"\xff\xd8\xff" + b"x" * 100}), "cats.zip",
                    sender="friend@example.org", subject="cats"),
    attachment_mail(zipped({"[Content_Types].xml": b"<Types/>"}), "2026-01-01-budget.xlsx",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    sender="friend@example.org", subject="budget"),
    attachment_mail(b"name,phone\nAda,1\n", "contacts.csv", "text/csv",
                    sender="friend@example.org", subject="contacts"),
    b"From: friend@example.org\r\nSubject: see https://dl.shadowserver.org/x\r\n\r\nlink\r\n",
], ids=["plain", "other-zip", "xlsx", "other-csv", "link-not-from-shadowserver"])
def test_does_not_match_other_mail(raw: bytes) -> None:
    assert not PARSER.matches(Mail(raw))


# --- limits and hostile input -----------------------------------------------------------------


def test_zip_member_declaring_more_than_the_limit_is_refused_without_extracting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    limits = ParserLimits(max_zip_uncompressed_bytes=1_000_000)
    mail = Mail(attachment_mail(zipped({"2026-03-01-scan_ssh-x-asn1.csv":
                                        (HEADER + row(1)).encode() + b" " * 2_000_000}),
                                "2026-03-01-scan_ssh-x-asn1.csv.zip"), limits)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    result = PARSER.parse(mail)
    assert result.reports == []
    assert len(result.review_reasons) == 1
    assert "refused, nothing extracted" in result.review_reasons[0]
    assert "declares 2000" in result.review_reasons[0]
    assert "parsers.max_zip_uncompressed_bytes" in result.review_reasons[0]
    assert opened == []


def test_zip_bomb_by_ratio_is_refused_within_a_second() -> None:
    bomb = zipped({"2026-03-01-scan_ssh-x-asn1.csv": HEADER.encode() + b"\0" * 20_000_000})
    assert len(bomb) < 100_000
    started = time.monotonic()
    result = PARSER.parse(Mail(attachment_mail(bomb, "bomb.csv.zip")))
    assert time.monotonic() - started < HANG_GUARD_S
    assert result.reports == []
    assert "compression ratio" in result.review_reasons[0]
    assert "parsers.max_zip_ratio" in result.review_reasons[0]


def test_zip_members_adding_up_past_the_limit_are_refused() -> None:
    import random

    noise = random.Random(7).randbytes(600_000)  # incompressible: ratio about 1
    limits = ParserLimits(max_zip_uncompressed_bytes=1_000_000)
    result = parse_zip({"a.csv": noise, "b.csv": noise}, limits)
    assert result.reports == []
    assert "members declare 1200000 bytes or more uncompressed in all" in result.review_reasons[0]


def _lying(archive: bytes, member: str, declared: int) -> bytes:
    """*archive* with the uncompressed size of *member* rewritten to *declared* in both headers."""
    data = bytearray(archive)
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    assert data[local + 30: local + 30 + len(name)] == name
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    return bytes(data)


def test_a_lying_zip_header_is_not_believed() -> None:
    csv_data = (HEADER + "".join(row(n) for n in range(20000))).encode()
    name = "2026-03-01-scan_ssh-x-asn1.csv"
    archive = _lying(zipped({name: csv_data}), name, declared=200)
    started = time.monotonic()
    result = PARSER.parse(Mail(attachment_mail(archive, name + ".zip")))
    assert time.monotonic() - started < HANG_GUARD_S
    # Python's zipfile stops at the declared size and then fails the CRC: reading stops, the
    # message goes to review, and no row beyond the declared 200 bytes was taken.
    assert len(result.reports) <= 1
    assert any("unreadable" in r and "CRC" in r for r in result.review_reasons)


def test_the_member_stream_stops_past_the_ratio_whatever_was_declared() -> None:
    from abuse_desk.parsers.formats.shadowserver import _Bounded, _TooLarge

    limits = ParserLimits(max_zip_ratio=10, max_zip_uncompressed_bytes=10**9)
    stream = _Bounded(io.BytesIO(b"x" * 100_000), 100, [limits.max_zip_uncompressed_bytes],
                      limits)
    with pytest.raises(_TooLarge, match="compression ratio of 10:1"):
        while stream.read(4096):
            pass
    budget = [5000]
    stream = _Bounded(io.BytesIO(b"x" * 100_000), 10**6, budget, limits)
    with pytest.raises(_TooLarge, match="in all"):
        while stream.read(4096):
            pass


def test_too_many_zip_members_are_refused_before_the_directory_is_read() -> None:
    archive = zipped({f"{n}.txt": b"" for n in range(1001)}, zipfile.ZIP_STORED)
    result = PARSER.parse(Mail(attachment_mail(archive, "many.zip")))
    assert result.review_reasons == ["ZIP attachment many.zip refused: more than 1000 members"]


def test_an_encrypted_member_is_not_read() -> None:
    data = bytearray(zipped({"2026-03-01-scan_ssh-x-asn1.csv": (HEADER + row(1)).encode()}))
    data[6] |= 0x1  # "encrypted" in the general purpose flags of the local header ...
    data[data.find(b"PK\x01\x02") + 8] |= 0x1  # ... and of the central directory
    result = PARSER.parse(Mail(attachment_mail(bytes(data), "locked.zip")))
    assert result.reports == []
    assert result.review_reasons == [
        "ZIP member 2026-03-01-scan_ssh-x-asn1.csv in locked.zip is encrypted: not read"]


def test_a_broken_zip_goes_to_review() -> None:
    result = PARSER.parse(Mail(attachment_mail(b"PK\x03\x04 not really a zip", "x.csv.zip")))
    assert result.reports == []
    assert result.review_reasons[0].startswith("ZIP attachment x.csv.zip unreadable: BadZipFile")


def test_rows_stop_at_max_csv_rows_with_a_review_reason() -> None:
    limits = ParserLimits(max_csv_rows=5)
    csv_data = (HEADER + "".join(row(n) for n in range(8))).encode()
    result = parse_zip({"2026-03-01-scan_ssh-x-asn1.csv": csv_data}, limits)
    assert [r.source_ip for r in result.reports] == [
        "45.137.0.1", "45.137.0.2", "45.137.0.3", "45.137.0.4", "45.137.0.5"]
    assert result.review_reasons == [
        "more than 5 CSV rows: the rest was not read (parsers.max_csv_rows)"]
    exactly = parse_zip({"2026-03-01-scan_ssh-x-asn1.csv": (HEADER + "".join(
        row(n) for n in range(5))).encode()}, limits)
    assert len(exactly.reports) == 5
    assert exactly.review_reasons == []


def test_reports_stop_at_max_reports() -> None:
    limits = ParserLimits(max_reports=3)
    csv_data = (HEADER + "".join(row(n) for n in range(6))).encode()
    result = parse_zip({"2026-03-01-scan_ssh-x-asn1.csv": csv_data}, limits)
    assert len(result.reports) == 3
    assert result.review_reasons == [
        "more than 3 reports in one message: the rest was not read (parsers.max_reports)"]


def test_an_oversized_field_is_a_warning_for_its_row_and_the_limit_is_left_alone() -> None:
    before = csv.field_size_limit()
    huge = '"2026-03-01 00:00:09","45.137.9.9","tcp",22,"' + "h" * 200_000 + '","ssh",1,"DE"\n'
    csv_data = (HEADER + row(1) + huge + row(2)).encode()
    name = "2026-03-01-scan_ssh-x-asn1.csv"
    result = PARSER.parse(Mail(attachment_mail(csv_data, name, "text/csv")))
    assert [r.source_ip for r in result.reports] == ["45.137.0.2", "45.137.0.3"]
    assert result.extra["warnings"] == [
        f"{name} line 3: unreadable CSV row skipped (field larger than field limit (131072))"]
    assert csv.field_size_limit() == before


def test_an_endless_line_is_skipped_not_read_into_memory() -> None:
    csv_data = (HEADER + row(1) + "x" * 1_200_000 + "\n" + row(2)).encode()
    result = parse_zip({"2026-03-01-scan_ssh-x-asn1.csv": csv_data}, method=zipfile.ZIP_STORED)
    assert [r.source_ip for r in result.reports] == ["45.137.0.2", "45.137.0.3"]
    assert any("longer than 1048576 characters was skipped" in w
               for w in result.extra["warnings"])


def test_private_row_addresses_are_kept_with_a_warning() -> None:
    csv_data = (HEADER + '"2026-03-01 00:00:00","10.1.2.3","tcp",22,,"ssh",1,"DE"\n').encode()
    result = parse_zip({"2026-03-01-scan_ssh-x-asn1.csv": csv_data})
    assert result.reports[0].source_ip == "10.1.2.3"
    assert result.reports[0].warnings == ["source IP 10.1.2.3 is not a public address"]


# --- the corpus -------------------------------------------------------------------------------

# file: (rows, every row's IP in order, first row's timestamp, first row's port), read from the
# CSVs inside the ZIPs of ../shared/corpus/abuseio/shadowserver.
SHADOWSERVER_CORPUS: dict[str, tuple[str, list[str], str, int]] = {
    "2015-01-01-dns_openresolver-sample-asn.csv.zip.eml": ("dns_openresolver", [
        "208.70.149.107", "204.245.210.223", "40.135.0.109", "76.74.186.178", "31.42.105.195"],
        "2013-10-10 00:05:10", 53),
    "2015-01-01-scan_ipmi-sample-asn.csv.zip.eml": ("scan_ipmi", [
        "199.238.169.219", "193.124.60.29", "173.45.2.72", "188.116.19.4", "63.141.224.94",
        "112.73.8.4", "91.235.106.33", "62.117.115.163", "206.214.64.64"],
        "2014-06-19 01:08:56", 623),
    "2015-01-01-scan_memcached-sample-asn.csv.zip.eml": ("scan_memcached", [
        "167.160.165.190", "42.96.169.80", "69.175.96.27", "74.82.14.241", "172.252.84.254",
        "98.126.206.158", "223.4.21.189", "121.41.60.46", "221.130.4.205"],
        "2015-01-22 01:30:25", 11211),
    "2015-01-01-scan_mssql-sample-asn.csv.zip.eml": ("scan_mssql", [
        "110.88.113.98", "112.20.234.33", "182.73.224.158", "82.119.155.254", "163.17.10.26",
        "182.18.189.236", "177.189.201.149", "178.32.46.20", "65.182.104.147", "187.45.202.36"],
        "2015-02-04 07:38:43", 1434),
    "2015-01-01-scan_nat_pmp-sample-asn.csv.zip.eml": ("scan_nat_pmp", [
        "177.9.199.160", "94.254.3.170", "186.134.58.172", "117.68.107.157", "189.50.111.239",
        "186.106.128.38", "113.116.218.16"], "2014-12-19 07:08:59", 5351),
    "2015-01-01-scan_netbios-sample-asn.csv.zip.eml": ("scan_netbios", [
        "118.232.245.224", "131.193.206.74", "188.108.94.175", "150.7.205.59", "199.83.89.41",
        "203.94.3.164", "190.14.237.98", "190.177.250.57"], "2014-03-16 00:13:19", 137),
    "2015-01-01-scan_ntp-sample-asn.csv.zip.eml": ("scan_ntp", [
        "76.22.142.205", "123.23.130.233", "193.158.193.1", "221.112.23.116", "62.212.206.130",
        "115.91.152.25", "106.243.160.182", "118.186.156.166", "91.191.233.205"],
        "2014-03-21 02:13:17", 123),
    "2015-01-01-scan_ntpmonitor-sample-asn.csv.zip.eml": ("scan_ntpmonitor", [
        "218.161.57.7", "190.116.130.70", "108.212.208.147", "81.245.134.4", "114.35.11.110",
        "180.241.34.240", "109.173.161.127", "216.234.67.45", "107.130.96.108", "77.241.38.7",
        "80.84.176.200"], "2014-04-12 08:43:11", 123),
    "2015-01-01-scan_redis-sample-asn.csv.zip.eml": ("scan_redis", [
        "98.126.92.5", "153.120.101.170", "23.251.154.32", "104.203.27.243", "50.188.150.22",
        "54.167.182.69", "46.4.13.206", "58.178.184.235", "173.208.211.213", "23.239.11.248",
        "54.174.181.36", "211.103.198.123", "192.241.235.129"], "2015-01-19 12:10:01", 6379),
    "2015-01-01-scan_snmp-sample-asn.csv.zip.eml": ("scan_snmp", [
        "129.113.21.93", "79.2.242.16", "95.109.21.127", "201.8.4.57", "76.186.106.223",
        "182.68.111.119", "125.214.158.32", "74.138.148.8", "222.233.225.196", "84.3.91.88"],
        "2014-03-16 03:45:50", 161),
    "2015-01-01-scan_ssdp-sample-asn.csv.zip.eml": ("scan_ssdp", [
        "67.193.128.173", "24.35.243.77", "65.25.192.8", "209.197.143.187", "76.11.218.168",
        "74.210.207.51", "76.166.127.141", "1.62.9.118", "183.104.67.106"],
        "2014-03-16 08:14:59", 1900),
    "2015-01-01-sinkhole_http_drone-sample-asn.csv.zip.eml": ("sinkhole_http_drone", [
        "202.86.21.11", "82.115.28.93", "180.94.94.3", "82.115.10.63", "82.115.10.39",
        "82.115.25.117", "82.115.23.237", "82.115.23.172"], "2010-08-31 00:09:04", 8726),
    # The subject says "Accessible Apple Filing Protocol"; the member name says scan_afp.
    "2019-01-06-scan_afp-sample-ip.csv.zip.eml": ("scan_afp", ["127.0.6.59", "127.0.6.57"],
                                                  "2019-01-16 03:42:34", 548),
    "2019-10-15-scan_dns-sample-asn.csv.zip.eml": ("scan_dns", ["31.42.105.195"],
                                                   "2019-10-15 01:09:24", 53),
    "2019-10-15-scan_ftp-sample-asn.csv.zip.eml": ("scan_ftp", ["31.42.105.195"],
                                                   "2019-10-15 00:05:18", 21),
    "2019-10-15-scan_http-sample-asn.csv.zip.eml": ("scan_http", ["31.42.105.195"],
                                                    "2019-10-15 00:02:15", 8080),
    "2019-10-15-scan_ldap_tcp-sample-asn.csv.zip.eml": ("scan_ldap_tcp", ["31.42.105.195"],
                                                        "2019-10-15 06:21:11", 389),
    "2019-10-15-scan_rsync-sample-asn.csv.zip.eml": ("scan_rsync", ["31.42.105.195"],
                                                     "2019-10-15 04:47:54", 873),
}


def corpus_file(*parts: str) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"sample corpus not found at {CORPUS}")
    return CORPUS.joinpath(*parts)


def test_the_corpus_table_covers_every_shadowserver_sample() -> None:
    folder = corpus_file("shadowserver")
    assert sorted(p.name for p in folder.glob("*.eml")) == sorted(SHADOWSERVER_CORPUS)


@pytest.mark.parametrize("name", sorted(SHADOWSERVER_CORPUS))
def test_corpus_shadowserver(name: str) -> None:
    report_type, ips, first_time, first_port = SHADOWSERVER_CORPUS[name]
    mail = Mail(corpus_file("shadowserver", name).read_bytes())
    assert PARSER.matches(mail)
    result = PARSER.parse(mail)
    assert result.review_reasons == []  # attached: the download link in the body is not needed
    assert [r.source_ip for r in result.reports] == ips
    assert {r.type_hint for r in result.reports} == {f"shadowserver:{report_type}"}
    assert result.reports[0].occurred_raw == first_time
    assert result.reports[0].occurred_at == datetime.fromisoformat(first_time).replace(tzinfo=UTC)
    assert result.reports[0].source_port == first_port
    assert result.reports[0].reporter_address == "autoreports@shadowserver.org"


# AbuseHub sends its own "AbuseHubCsv" plus the Shadowserver CSV it came from; the Shadowserver
# one is read here (one incident, one report) and the AbuseHubCsv is skipped.
ABUSEHUB_CORPUS = {
    "Abusehub_Example_1.eml": "172.16.10.13",
    "Abusehub_Example_2.eml": "fdf1:cb9d:f59e:19b0:0:45:0:22",
}


@pytest.mark.parametrize("name", sorted(ABUSEHUB_CORPUS))
def test_corpus_abusehub_pgp_signed_csv(name: str) -> None:
    mail = Mail(corpus_file("abusehub", name).read_bytes())
    assert PARSER.matches(mail)
    result = PARSER.parse(mail)
    assert [summary(r) for r in result.reports] == [
        {"type_hint": "shadowserver:botnet_drone", "source_ip": ABUSEHUB_CORPUS[name],
         "source_port": 2005, "occurred_at": datetime(2015, 3, 2, 0, 45, 59, tzinfo=UTC),
         "occurred_raw": "2015-03-02 00:45:59"}]
    report = result.reports[0]
    assert report.extra["infection"] == "ZeroAccess"
    assert report.reporter_address == "reports@reports.abusehub.nl"
    assert report.warnings == [f"source IP {ABUSEHUB_CORPUS[name]} is not a public address"]
    assert result.extra["skipped_attachments"] == [
        "abusehubcsv-1.0.0_1.0.0_2015-03-03T16:56:01+01:00.csv"]
