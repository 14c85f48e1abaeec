"""parsers/tables.py: tabular evidence wherever a notice puts it, bounded.

Written from how CERTs, scanners and blocklists describe their notices: a header row and
delimited or aligned lines, one ``Label: value`` block per host, one line per host, and
CSV/JSON/XML files under any declared type, zipped or gzipped."""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
import zipfile

from abuse_desk.core.config import ParserLimits
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.tables import (
    _Budget,
    aligned_tables,
    delimited_tables,
    file_tables,
    host_lines,
    host_port,
    keyvalue_blocks,
    read_tables,
)


def budget(**limits: int) -> _Budget:
    return _Budget(ParserLimits(**limits))  # type: ignore[arg-type]


def mail_with(data: bytes, filename: str, content_type: str, body: str = "See attached.") -> Mail:
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    raw = ("From: CSIRT <notify@csirt.example>\r\nTo: abuse@isp.example\r\n"
           "Subject: Open services in AS64500\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           f"--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
           f'--b\r\nContent-Type: {content_type}; name="{filename}"\r\n'
           "Content-Transfer-Encoding: base64\r\n"
           f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n{encoded}--b--\r\n')
    return Mail(raw.encode())


CSV = "timestamp,ip,port,protocol\n2026-11-19 02:11:09,192.0.2.5,53,udp\n" \
      "2026-11-19 02:11:12,198.51.100.97,53,udp\n"


# -- text -----------------------------------------------------------------------------------


def test_a_pipe_table_with_a_format_line_gives_rows_by_label() -> None:
    text = ("Affected systems:\n\nFormat: ASN | IP address | Timestamp (UTC) | Port\n"
            "64500 | 192.0.2.23 | 2026-11-22 03:14:55 | 3389\n"
            "64500 | 198.51.100.7 | 2026-11-22 04:01:47 | 3389\n\nKind regards\n")
    [table] = delimited_tables(text)
    assert table.rows == [
        {"ASN": "64500", "IP address": "192.0.2.23", "Timestamp (UTC)": "2026-11-22 03:14:55",
         "Port": "3389"},
        {"ASN": "64500", "IP address": "198.51.100.7", "Timestamp (UTC)": "2026-11-22 04:01:47",
         "Port": "3389"}]


def test_quoted_csv_and_semicolon_tables_inline() -> None:
    quoted = '"asn","ip","timestamp"\n"64500","192.0.2.19","2026-11-22 04:12:09"\n'
    semicolon = "ip;port;timestamp\n192.0.2.91;3389;2026-11-21T23:01:44+00:00\n"
    assert delimited_tables(quoted)[0].rows == [
        {"asn": "64500", "ip": "192.0.2.19", "timestamp": "2026-11-22 04:12:09"}]
    assert delimited_tables(semicolon)[0].rows == [
        {"ip": "192.0.2.91", "port": "3389", "timestamp": "2026-11-21T23:01:44+00:00"}]


def test_a_table_without_an_address_is_no_evidence() -> None:
    assert delimited_tables("Name | Phone | Room\nAnna | 555 | 12\n") == []


def test_header_less_pipe_lines_with_an_address() -> None:
    text = "64500|192.0.2.210|2026-11-22 09:41:12Z|FI|botnet drone\n"
    [table] = delimited_tables(text)
    assert table.rows[0]["column 2"] == "192.0.2.210"
    assert table.rows[0]["column 5"] == "botnet drone"


def test_columns_aligned_with_blanks() -> None:
    text = ("  Time (UTC)  Client (your network)  Client port  C2 address  \n"
            "  2026-11-23 03:07:55  2001:db8::77  50911  203.0.113.91  \n")
    [table] = aligned_tables(text)
    assert table.rows[0]["Client (your network)"] == "2001:db8::77"
    assert table.rows[0]["C2 address"] == "203.0.113.91"


def test_one_key_value_block_per_host_in_any_language() -> None:
    text = ("IP adresas: 192.0.2.150\nPrievadas: 53/UDP\nLaikas: 2026-11-21 21:10:55 UTC\n\n"
            "IP adresas: 192.0.2.151\nPrievadas: 53/UDP\nLaikas: 2026-11-21 21:10:58 UTC\n\n"
            "Prašome apriboti rekursinių užklausų aptarnavimą.\n")
    [table] = keyvalue_blocks(text)
    assert [r["IP adresas"] for r in table.rows] == ["192.0.2.150", "192.0.2.151"]
    assert table.rows[1]["Laikas"] == "2026-11-21 21:10:58 UTC"


def test_a_label_ending_in_a_digit_and_html_label_value_pairs() -> None:
    assert keyvalue_blocks("Endereço IPv6 : 2001:db8:4400::3\n")[0].rows == [
        {"Endereço IPv6": "2001:db8:4400::3"}]
    html_made_text = "   Endpoint   192.0.2.57:27017  \n   Detected   Nov 21, 2026 11:20 UTC  \n"
    assert keyvalue_blocks(html_made_text)[0].rows == [
        {"Endpoint": "192.0.2.57:27017", "Detected": "Nov 21, 2026 11:20 UTC"}]


def test_a_url_scheme_is_not_a_label_and_quoted_lines_are_not_read() -> None:
    assert keyvalue_blocks("- tcp://192.0.2.71:2375 seen 2026-11-19 14:41:20 UTC\n") == []
    assert keyvalue_blocks("> IP-adres: 192.0.2.5\n") == []


def test_one_line_per_host_without_a_header() -> None:
    text = ("  192.0.2.10:11211/udp   2026-11-19 22:01:04 UTC   amplification x10422\n"
            "  [2001:db8::10]:8443  first seen 2026-11-19 11:02:40 UTC\n"
            "no address here 2026-11-19\n")
    [table] = host_lines(text)
    assert [r["port"] for r in table.rows] == ["11211", "8443"]


def test_host_port_forms() -> None:
    assert host_port("192.0.2.1:443") == 443
    assert host_port("[2001:db8::1]:8443") == 8443
    assert host_port("2001:db8::1") is None
    assert host_port("192.0.2.1:99999") is None


# -- files -----------------------------------------------------------------------------------


def test_a_csv_sent_as_octet_stream_is_read_by_its_content() -> None:
    mail = mail_with(CSV.encode(), "report.dat", "application/octet-stream")
    tables = [t for t in read_tables(mail) if t.source.startswith("csv:")]
    assert [r["ip"] for r in tables[0].rows] == ["192.0.2.5", "198.51.100.97"]


def test_zipped_and_gzipped_csv() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdp.csv", CSV)
    [zipped] = file_tables(buffer.getvalue(), "x.zip", budget())
    [gzipped] = file_tables(gzip.compress(CSV.encode()), "x.csv.gz", budget())
    assert zipped.rows == gzipped.rows and len(zipped.rows) == 2


def test_a_json_list_of_records_and_nested_addresses() -> None:
    doc = [{"SourceIp": "192.0.2.45", "SourcePort": 49223, "DestinationIp": "203.0.113.78"},
           {"time": "2026-11-21T22:11:40Z", "address": [{"ip": "192.0.2.71", "asn": 64500}]}]
    [table] = file_tables(json.dumps(doc).encode(), "events.json", budget())
    assert table.rows[0]["SourceIp"] == "192.0.2.45"
    assert table.rows[1]["address.ip"] == "192.0.2.71"


def test_json_under_a_key_and_xml_records() -> None:
    [table] = file_tables(json.dumps({"events": [{"ip": "192.0.2.1"}]}).encode(), "e", budget())
    assert table.rows == [{"ip": "192.0.2.1"}]
    xml = (b"<?xml version='1.0'?><report><event><ip>192.0.2.8</ip><port>23</port></event>"
           b"<event><ip>192.0.2.9</ip><port>23</port></event></report>")
    [rows] = file_tables(xml, "r.xml", budget())
    assert [r["ip"] for r in rows.rows] == ["192.0.2.8", "192.0.2.9"]


def test_xml_entities_are_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r><e><ip>&b;</ip><p>1</p></e></r>')
    assert file_tables(bomb, "bomb.xml", budget()) == []


def test_a_zip_bomb_is_refused_without_inflating_it() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.csv", "ip,port\n" + "0" * 5_000_000)
    b = budget(max_zip_ratio=100)
    started = time.monotonic()
    assert file_tables(buffer.getvalue(), "bomb.zip", b) == []
    assert time.monotonic() - started < 2
    assert any("refused" in w for w in b.warnings)


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    b = budget(max_zip_uncompressed_bytes=100_000)
    assert file_tables(gzip.compress(b"ip,port\n" + b"1" * 1_000_000), "x.gz", b) == []
    assert any("gzip" in w for w in b.warnings)


def test_rows_stop_at_max_csv_rows() -> None:
    many = "ip,port\n" + "".join(f"192.0.2.{n % 250 + 1},{n}\n" for n in range(500))
    b = budget(max_csv_rows=100)
    [table] = file_tables(many.encode(), "many.csv", b)
    assert len(table.rows) == 100
    assert any("max_csv_rows" in w for w in b.warnings)


def test_hostile_text_stays_fast() -> None:
    hostile = ("a:" * 50_000 + "\n" + "|" * 100_000 + "\n" + "x  " * 50_000 + "\n"
               + ("IP: 192.0.2.1\n" * 2000))
    started = time.monotonic()
    keyvalue_blocks(hostile)
    delimited_tables(hostile)
    aligned_tables(hostile)
    host_lines(hostile)
    assert time.monotonic() - started < 5


def test_dmarc_aggregate_and_tls_reports_are_no_evidence() -> None:
    dmarc = (b"<?xml version='1.0'?><feedback><record><row><source_ip>192.0.2.1</source_ip>"
             b"<count>2</count></row></record></feedback>")
    tls = json.dumps({"organization-name": "Mail Co", "report-id": "1", "policies": [
        {"summary": {"total-failure-session-count": 1}}]}).encode()
    assert file_tables(dmarc, "r.xml", budget()) == []
    assert file_tables(tls, "r.json", budget()) == []


def test_many_header_like_lines_stay_linear() -> None:
    text = "name | room | phone\n" * 20_000 + "name  room  phone  desk\n" * 20_000
    started = time.monotonic()
    assert delimited_tables(text) == [] and aligned_tables(text) == []
    assert time.monotonic() - started < 5
