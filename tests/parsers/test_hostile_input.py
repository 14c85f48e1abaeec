"""Hostile input, each answered within a bound: ZIP member names that try to leave the
directory, 10 MB headers and 100,000 of them, NUL bytes and charsets Python should not use,
encoded-words that decode to CR LF, and From values Python 3.11's ``getaddresses`` misreads
(CVE-2023-27043).

Each test asserts what comes out: reports, or a review with its reason; never an exception
out of the registry, and never text the database cannot store (PostgreSQL refuses NUL in text
and JSON, no driver can encode a lone surrogate). The timeout only turns a hang into a failure;
`make bench` measures speed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.classifier.classify import Decision
from abuse_desk.classifier.signatures import DkimResult
from abuse_desk.classifier.trust import TrustedReporter, TrustPolicy
from abuse_desk.core.headers import (
    _SIMPLE_MAILBOX,
    MAX_VALUE_CHARS,
    _agreed_mailboxes,
    clean_address,
    clean_value,
    first_address,
    mailboxes,
    parse_address,
    read_top_headers,
)
from abuse_desk.core.mail import Mail, decode_text
from abuse_desk.parsers.base import Disposition, ParseResult
from abuse_desk.parsers.registry import default_registry, scrub_result
from abuse_desk.workflow.pipeline import report_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import NOW

pytestmark = pytest.mark.timeout(120)

REGISTRY = default_registry()
CSV_HEADER = b'"timestamp","ip","protocol","port","hostname","asn","geo"\r\n'
ONE_LINE_COLUMNS = ("format", "type_hint", "source_ip", "occurred_raw")
ONE_LINE_FIELDS = ("reporter_address", "reporter_org")


def parse(raw: bytes) -> ParseResult:
    return REGISTRY.parse(raw)


def reasons(result: ParseResult) -> str:
    return " | ".join([*result.review_reasons,
                       *(r for rep in result.reports for r in rep.review_reasons)])


def strings(value: Any) -> Iterator[str]:
    """Every string in a row, a result or a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def decision() -> Decision:
    return Decision(category=None, type=None, confidence=0.0, customer_id=None,
                    external_id=None, not_abuse=False, trusted=False, review_reasons=[],
                    fingerprint="0" * 64, duplicate_keys=[])


def assert_storable(result: ParseResult) -> list[dict[str, Any]]:
    """The rows ``report_rows`` builds from *result*: no NUL and no lone surrogate in any text
    or JSON value, and no control character in a one-line field. Returns the rows."""
    rows = report_rows(1, result, [decision() for _ in result.reports], NOW)
    texts = [*strings(rows), *result.review_reasons, *result.errors, *strings(result.extra)]
    for text in texts:
        assert "\x00" not in text, text[:200]
        text.encode("utf-8")  # a lone surrogate raises here, as it would in the driver
    for row in rows:
        json.dumps(row["fields"], ensure_ascii=False).encode("utf-8")
        assert "\\u0000" not in json.dumps(row["fields"])
        for value in [*(row[c] for c in ONE_LINE_COLUMNS),
                      *(row["fields"][f] for f in ONE_LINE_FIELDS),
                      *row["fields"]["urls"], *row["fields"]["domains"]]:
            assert value is None or not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f
                                            or c in "\u2028\u2029" for c in value), value
    return rows


def message(body: bytes, headers: bytes = b"", ctype: bytes = b"text/plain; charset=utf-8",
            subject: bytes = b"abuse report") -> bytes:
    return (b"From: Reporter <reporter@example.org>\r\nTo: abuse@isp.example\r\n"
            b"Subject: " + subject + b"\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
            + headers + b"MIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n" + body)


def attach(filename: str, ctype: str, data: bytes, subject: str = "report",
           sender: str = "reporter@example.org") -> bytes:
    return (f"From: {sender}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=HOSTILE\r\n\r\n--HOSTILE\r\n"
            "Content-Type: text/plain\r\n\r\nSee the attachment.\r\n--HOSTILE\r\n"
            f"Content-Type: {ctype}; name={filename}\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename={filename}\r\n\r\n").encode() \
        + base64.encodebytes(data) + b"--HOSTILE--\r\n"


# -- 1. ZIP member names: traversal, absolute paths, NUL ------------------------------------


def hostile_zip() -> bytes:
    """A ZIP whose members' names try to leave the directory (and one carries a NUL, which
    ``zipfile`` will not write: the name is patched in the bytes, local and central)."""
    members = {
        "../../etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
        "../../2026-01-01-scan_ssh-org-asn.csv": b"192.0.2.101",
        "/etc/2026-01-01-scan_rdp-org-asn.csv": b"192.0.2.102",
        "C:\\Windows\\2026-01-01-scan_smb-org-asn.csv": b"192.0.2.103",
        "..\\..\\2026-01-01-scan_telnet-org-asn.csv": b"192.0.2.104",
        "2026-01-01-scan_vnc-org-asn.csv#evil.sh": b"192.0.2.105",  # '#' becomes NUL
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            if content.startswith(b"192."):
                content = (CSV_HEADER + b'"2026-01-01 00:00:00","' + content
                           + b'","tcp","22","h.example","64500","NL"\r\n')
            zf.writestr(name, content)
    data = buffer.getvalue()
    assert data.count(b"scan_vnc-org-asn.csv#evil.sh") == 2  # local header and central entry
    return data.replace(b"scan_vnc-org-asn.csv#evil.sh", b"scan_vnc-org-asn.csv\x00evil.sh")


def test_zip_member_names_never_reach_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               ) -> None:
    workdir = tmp_path / "a" / "b"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)  # "../../x" from here would land in tmp_path

    def no_extraction(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a ZIP member was extracted")

    monkeypatch.setattr(zipfile.ZipFile, "extract", no_extraction)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", no_extraction)
    passwd = os.stat("/etc/passwd") if os.path.exists("/etc/passwd") else None

    result = parse(attach("2026-01-01-scan-org-asn.zip", "application/zip", hostile_zip(),
                          subject="Shadowserver scan report",
                          sender="autoreports@shadowserver.org"))

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        ["a", "a/b"]
    if passwd is not None:
        assert os.stat("/etc/passwd").st_mtime_ns == passwd.st_mtime_ns
    assert result.format == "shadowserver"
    # Each CSV member is read from memory by its base name; the traversal names only warn.
    by_ip = {r.source_ip: r.type_hint for r in result.reports}
    assert by_ip == {"192.0.2.101": "shadowserver:scan_ssh", "192.0.2.102": "shadowserver:scan_rdp",
                     "192.0.2.103": "shadowserver:scan_smb",
                     "192.0.2.104": "shadowserver:scan_telnet",
                     "192.0.2.105": "shadowserver:scan_vnc"}
    warnings = " ".join(result.extra["warnings"])
    for name in ("../../etc/passwd", "/etc/2026-01-01-scan_rdp", "C:\\\\Windows",
                 "..\\\\..\\\\2026"):
        assert name in warnings, name
    assert "nothing is written to disk" in warnings
    # The NUL name is cut at the NUL by zipfile: read as "...scan_vnc-org-asn.csv".
    files = result.extra["files"]
    assert any(f.endswith(":2026-01-01-scan_vnc-org-asn.csv") for f in files), files
    # The passwd member is not a CSV: sniffed (8 KiB at most), skipped, and its text is nowhere.
    assert any(s.endswith(":passwd") for s in result.extra["skipped_attachments"])
    assert "root:x:0:0" not in str(result)
    assert_storable(result)


def test_zip_with_only_a_traversal_member_from_anyone(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../../../../tmp/x/../../etc/cron.d/evil", b"* * * * * root sh\n")
    result = parse(attach("report.zip", "application/zip", buffer.getvalue()))
    assert list(tmp_path.iterdir()) == []
    assert result.disposition is Disposition.REPORT
    assert "root sh" not in str(result)
    assert result.reports or result.review_reasons
    assert_storable(result)


# -- 2. Enormous headers --------------------------------------------------------------------


BODY_WITH_IP = b"Spam sent from 45.137.21.55 at 2026-01-01 10:00:00 UTC.\r\n"


def test_ten_megabyte_header_line() -> None:
    raw = (b"From: reporter@example.org\r\nSubject: " + b"x" * (10 * 1024 * 1024)
           + b"\r\nX-After: 1\r\nContent-Type: text/plain\r\n\r\n" + BODY_WITH_IP)
    top = read_top_headers(raw)  # the top-level read stops at the first MiB
    assert top.from_ == "reporter@example.org"
    assert top.subject is not None and len(top.subject) <= MAX_VALUE_CHARS
    mail = Mail(raw)
    assert len(mail.subject) <= MAX_VALUE_CHARS
    result = parse(raw)
    assert [r.source_ip for r in result.reports] == ["45.137.21.55"], reasons(result)
    assert all(len(r.evidence or "") <= 4097 for r in result.reports)
    assert_storable(result)


def test_ten_megabyte_folded_header_of_encoded_words() -> None:
    word = b" =?utf-8?q?caf=C3=A9_=0D=0A_x?=\r\n"  # a CR LF in every word, too
    folded = word * (10 * 1024 * 1024 // len(word))
    raw = (b"From: reporter@example.org\r\nSubject: start\r\n" + folded
           + b"Content-Type: text/plain\r\n\r\n" + BODY_WITH_IP)
    mail = Mail(raw)
    subject = mail.subject
    assert subject.startswith("start")
    assert len(subject) <= MAX_VALUE_CHARS
    assert "\r" not in subject and "\n" not in subject
    result = parse(raw)
    assert [r.source_ip for r in result.reports] == ["45.137.21.55"], reasons(result)
    assert_storable(result)


@pytest.mark.parametrize("name", [b"X-Pad", b"Received"])
def test_hundred_thousand_headers(name: bytes) -> None:
    lines = b"".join(name + b": from h%d.example (h%d.example [198.51.100.%d]) by mx\r\n"
                     % (n, n, n % 250 + 1) for n in range(100_000))
    raw = (b"From: reporter@example.org\r\nSubject: spam report\r\n" + lines
           + b"Content-Type: text/plain\r\n\r\n" + BODY_WITH_IP)
    top = read_top_headers(raw)
    assert top.from_ == "reporter@example.org"
    result = parse(raw)
    assert result.disposition is Disposition.REPORT
    assert result.reports or result.review_reasons
    assert "45.137.21.55" in [r.source_ip for r in result.reports], reasons(result)
    assert_storable(result)


# -- 3. NUL bytes and charsets ---------------------------------------------------------------


def test_nul_bytes_in_headers_and_body() -> None:
    raw = message(b"Spam\x00 from 45.137.21.56\x00 at 2026-01-01 10:00:00 UTC\x00\r\n"
                  b"Received: from x\x00 (x [45.137.21.56])\r\n",
                  headers=b"X-Note: a\x00b\r\nOrganization: Rep\x00orter Org\r\n",
                  subject=b"abuse\x00 report =?utf-8?q?with=00nul?=")
    top = read_top_headers(raw)
    assert top.subject is not None and "\x00" not in top.subject
    result = parse(raw)
    assert [r.source_ip for r in result.reports] == ["45.137.21.56"]
    rows = assert_storable(result)
    assert rows[0]["fields"]["evidence"] is not None
    assert "\ufffd" in rows[0]["fields"]["evidence"] or "Spam" in rows[0]["fields"]["evidence"]


def test_nul_in_a_shadowserver_csv_never_reaches_a_column() -> None:
    """Found by this test: a CSV cell with NUL went into occurred_raw (a text column) and the
    row's JSON; PostgreSQL refuses both."""
    csv_data = (CSV_HEADER + b'"2026-01-01 00:00:00\x00","192.0.2.60","tcp\x00","22",'
                b'"h\x00.example","645\x0000","N\x00L"\r\n')
    result = parse(attach("2026-01-01-scan_ssh-org-asn.csv", "text/csv", csv_data,
                          subject="Shadowserver scan_ssh report"))
    assert result.format == "shadowserver"
    assert [r.source_ip for r in result.reports] == ["192.0.2.60"]
    rows = assert_storable(result)
    assert rows[0]["occurred_raw"] is not None and "\x00" not in rows[0]["occurred_raw"]
    assert rows[0]["fields"]["extra"]["protocol"] == "tcp\ufffd"


def test_nul_and_lone_surrogates_in_xarf_json() -> None:
    """Found by this test: JSON ``"\\u0000"`` and ``"\\ud800"`` came out as NUL and a lone
    surrogate, which neither SQLite's nor PostgreSQL's driver can store."""
    doc = ('{"xarf_version": "4.0.0", "report_id": "r-\\u0000-1", '
           '"timestamp": "2026-01-01T00:00:00Z", '
           '"reporter": {"org": "Scan\\u0000 Sentinel\\ud800\\r\\nBcc: v@x.example", '
           '"contact": "reports@scan-sentinel.example", "domain": "scan-sentinel.example"}, '
           '"sender": {"org": "Scan Sentinel", "contact": "reports@scan-sentinel.example", '
           '"domain": "scan-sentinel.example"}, "source_identifier": "203.0.113.9", '
           '"source_port": 61000, "category": "connection", "type": "port_scan", '
           '"evidence_source": "ids_detection\\u0000", "destination_ip": "198.51.100.10", '
           '"protocol": "tcp", "first_seen": "2026-01-01T00:00:00Z\\udfff"}')
    result = parse(attach("xarf.json", "application/json", doc.encode(),
                          subject="XARF report: port_scan"))
    assert result.format == "xarf4"
    assert [r.source_ip for r in result.reports] == ["203.0.113.9"]
    assert_storable(result)


@pytest.mark.parametrize(("charset", "body"), [
    (b'"x-unknown"', b"Spam from 45.137.21.70, caf\xe9 cr\xe8me"),
    (b'"utf-8"', b"Spam from 45.137.21.70 \xff\xfe\xc3 invalid \xed\xa0\x80 bytes"),
    (b'"utf-7"', b"Spam from 45.137.21.70 +2AA- +2ADcAA- +AGEAYgBj- +ZeVnLIqe-"),
    (b'"' + b"x" * 1000 + b'"', b"Spam from 45.137.21.70 \xe9"),
    (b'"unicode_escape"', b"Spam from 45.137.21.70 \\ud800 \\x00 \\N{BOGUS"),
    (b'"utf-8\x00"', b"Spam from 45.137.21.70"),
    (b"iso-2022-jp", b"Spam from 45.137.21.70 \x1b$B\x1b(B\x1b$B%"),
])
def test_unknown_and_broken_charsets(charset: bytes, body: bytes) -> None:
    raw = message(body, ctype=b"text/plain; charset=" + charset)
    result = parse(raw)
    assert [r.source_ip for r in result.reports] == ["45.137.21.70"], reasons(result)
    assert_storable(result)


def test_decode_text_never_yields_what_cannot_be_stored() -> None:
    assert decode_text(b"+2AA-x", "utf-7") == "\ufffdx"  # UTF-7 decodes to a lone surrogate
    assert decode_text(b"\\x41\\ud800", "unicode_escape") == "\\x41\\ud800"  # not a charset
    assert decode_text(b"caf\xe9", "x-unknown") == "café"
    assert decode_text(b"caf\xe9", "y" * 1000) == "café"
    assert decode_text(b"caf\xe9", "utf-8") == "café"  # not UTF-8 after all: Latin-1


@pytest.mark.parametrize("subject", [
    b"=?utf-7?q?+2AA-?=", b"=?unicode_escape?q?=5Cud800=5Cx00?=",
    b"=?" + b"c" * 1000 + b"?q?x?=", b"=?x-unknown?q?caf=E9?=", b"=?utf-8?q?caf=E9?=",
    b"=?utf-8\x00?q?x?=", b"=?utf-16?b?AND=?=",
])
def test_encoded_words_in_odd_charsets(subject: bytes) -> None:
    """Found by this test: ``=?utf-7?q?+2AA-?=`` decoded to a lone surrogate in the Subject,
    which the pipeline stores in messages.header_subject: the insert would fail every retry."""
    raw = message(BODY_WITH_IP, subject=subject)
    top = read_top_headers(raw)
    assert top.subject is not None
    top.subject.encode("utf-8")
    assert not any(ord(c) < 0x20 for c in top.subject)
    result = parse(raw)
    assert [r.source_ip for r in result.reports] == ["45.137.21.55"]
    assert_storable(result)


FRAGMENTS = ["=?utf-8?q?", "=?utf-7?q?+2AA-", "=?utf-8?b?", "?=", "=0D=0A", "=00", "\x00",
             "\r\n", "\r\n ", "\ud800", "<", ">", "@", '"', "(", ")", "\\", ",", "a@b.example",
             "=?x-unknown?q?", "=?unicode_escape?q?=5Cud800", "=C3", "DQo=", "AA==", " ", "\x85",
             "\u2028", "=C2=85"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=12))
def test_any_header_value_comes_out_storable_on_one_line(pieces: list[str]) -> None:
    value = "".join(pieces)
    for cleaned in (clean_value(value), clean_address(value)):
        if cleaned is not None:
            cleaned.encode("utf-8")
            assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029"
                       for c in cleaned)
            assert len(cleaned) <= MAX_VALUE_CHARS
    _name, address = parse_address(clean_address(value))
    if address:
        assert address.count("@") == 1 and address.rpartition("@")[0]
        assert address.lower() == first_address(clean_address(value))


# -- 4. Encoded-words that decode to CR LF ---------------------------------------------------


CRLF_WORDS = [
    b"=?utf-8?q?hello=0D=0ABcc:_victim@example.com?=",
    b"=?utf-8?Q?hello=0ABcc:_victim@example.com?=",
    b"=?utf-8?b?" + base64.b64encode(b"hello\r\nBcc: victim@example.com") + b"?=",
    b"=?iso-8859-1?b?" + base64.b64encode(b"hello\r\n\r\n<html>") + b"?=",
    b"hello =?utf-8?q?=0D?= =?utf-8?q?=0A?=Bcc: victim@example.com",
]


@pytest.mark.parametrize("word", CRLF_WORDS)
def test_encoded_crlf_in_subject_and_from(word: bytes) -> None:
    raw = (b"From: " + word + b" <reporter@example.org>\r\nSubject: " + word
           + b"\r\nContent-Type: text/plain\r\n\r\n" + BODY_WITH_IP)
    top = read_top_headers(raw)
    mail = Mail(raw)
    for value in (top.subject, top.from_, mail.subject, mail.from_):
        assert value is not None
        assert "\r" not in value and "\n" not in value
        assert "hello" in value
    # One encoded-word is a display name, quoted once decoded; the last value has a raw
    # "Bcc:" after its words (group syntax), which no reader should take an address from.
    expected = "reporter@example.org" if word.startswith(b"=?") else None
    assert first_address(top.from_) == expected
    result = parse(raw)
    assert [r.source_ip for r in result.reports] == ["45.137.21.55"]
    for report in result.reports:
        assert report.reporter_address == expected
        for value in (report.reporter_org or "", report.reporter_address or ""):
            assert "\r" not in value and "\n" not in value
    assert_storable(result)


def test_crlf_in_an_acns_complainant() -> None:
    xml = ('<?xml version="1.0" encoding="UTF-8"?>'
           '<Infringement xmlns="http://www.acns.net/ACNS"><Case><ID>C-1</ID></Case>'
           '<Complainant><Entity>Rights Co&#13;&#10;Bcc: victim@example.com</Entity>'
           '<Email>takedown@rights.example&#13;&#10;Bcc: victim@example.com</Email>'
           '</Complainant><Source><TimeStamp>2026-01-01T00:00:00Z&#13;&#10;X: y</TimeStamp>'
           '<IP_Address>192.0.2.44</IP_Address></Source></Infringement>')
    result = parse(attach("notice.xml", "application/xml", xml.encode(),
                          subject="Notice of Claimed Infringement"))
    assert result.format == "acns"
    assert [r.source_ip for r in result.reports] == ["192.0.2.44"]
    report = result.reports[0]
    assert report.reporter_org is not None and report.reporter_org.startswith("Rights Co")
    assert_storable(result)


def test_crlf_in_an_xarf_reported_from() -> None:
    report_txt = ('---\nReported-From: "reporter@example.org\\r\\nBcc: victim@example.com"\n'
                  'Report-Type: login-attack\nSource: 192.0.2.21\nSource-Type: ipv4\n'
                  'Date: "2026-01-01 10:00:00 +0000\\r\\nX: y"\nCategory: abuse\n')
    raw = (b"From: r@example.org\r\nSubject: abuse report\r\nX-XARF: PLAIN\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nLogin attack from 192.0.2.21\r\n"
           b"--B\r\nContent-Type: text/plain; name=report.txt\r\n\r\n" + report_txt.encode()
           + b"\r\n--B--\r\n")
    result = parse(raw)
    assert result.format == "xarf"
    assert [r.source_ip for r in result.reports] == ["192.0.2.21"]
    assert_storable(result)


def test_scrub_result_directly() -> None:
    result = parse(message(BODY_WITH_IP))
    report = result.reports[0]
    report.reporter_org = "Org\r\nBcc: x@y\x00\u2028\x85"
    report.occurred_raw = "2026\x00-01-01\ud800"
    report.urls = ["http://a.example/\r\n", "\r\n"]
    report.evidence = "line one\nline\x00 two"
    report.extra = {"k\x00": ["v\x00", {"deep": "\udfff"}], "n": 1}
    scrub_result(result)
    assert report.reporter_org == "Org Bcc: x@y"
    assert report.occurred_raw == "2026 -01-01\ufffd"
    assert report.urls == ["http://a.example/"]
    assert report.evidence == "line one\nline\ufffd two"  # multi-line text keeps its lines
    assert report.extra == {"k\ufffd": ["v\ufffd", {"deep": "\ufffd"}], "n": 1}


def test_scrub_result_bounds_nesting() -> None:
    result = parse(message(BODY_WITH_IP))
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    result.reports[0].extra = {"deep": deep}
    scrub_result(result)  # no RecursionError
    json.dumps(result.reports[0].extra)


# -- 5. CVE-2023-27043: From values getaddresses misreads ------------------------------------


SPOOFS = [
    # (From value, the address a reader may trust, or None)
    ('"alice@example.org" <mallory@evil.example>', "mallory@evil.example"),
    ("alice@example.org <mallory@evil.example>", None),
    ('mallory@evil.example, "alice@example.org"', None),
    ('"a@b.example" @evil.example', None),
    ("alice@example.org(comment)@evil.example", None),
    ("alice@example.org@evil.example", None),
    ("<alice@example.org>@evil.example", None),
    ("=?utf-8?q?alice@example.org?= <mallory@evil.example>", "mallory@evil.example"),
    ("=?utf-8?q?=3Calice@example.org=3E?= <mallory@evil.example>", "mallory@evil.example"),
    ('"=?utf-8?q?x=22_<alice@example.org>?=" <mallory@evil.example>', "mallory@evil.example"),
    ("x (=?utf-8?q?=29_<alice@example.org>_=28?=) <mallory@evil.example>",
     "mallory@evil.example"),
    ("=?utf-8?b?" + base64.b64encode(b"alice@example.org\r\nX: <a@b>").decode()
     + "?= <mallory@evil.example>", "mallory@evil.example"),
]


@pytest.mark.parametrize(("value", "real"), SPOOFS)
def test_spoofed_from_never_names_the_inner_address(value: str, real: str | None) -> None:
    raw = (f"From: {value}\r\nSubject: spam report\r\nContent-Type: text/plain\r\n\r\n"
           ).encode() + BODY_WITH_IP
    from_ = read_top_headers(raw).from_
    assert first_address(from_) == real
    result = parse(raw)
    for report in result.reports:
        assert (report.reporter_address or "").lower() in ("", "mallory@evil.example")
    assert_storable(result)


@pytest.mark.parametrize(("value", "expected"), [
    ("Reporter <reporter@example.org>", ("Reporter", "reporter@example.org")),
    ("reporter@example.org (Reports Team)", ("Reports Team", "reporter@example.org")),
    ("abuse@x.example <abuse@x.example>", ("", "abuse@x.example")),  # a common sender's habit
    ("=?utf-8?q?M=C3=BCller=2C_J=C3=B6rg?= <j@x.example>", ("Müller, Jörg", "j@x.example")),
    ("Yahoo! Inc. <Feedback@ARF.mail.yahoo.com>", ("Yahoo! Inc.", "Feedback@ARF.mail.yahoo.com")),
    ("MAILER-DAEMON", ("", "")),
    ("", ("", "")),
    ("x" * 5000 + " <a@b.example>", ("", "")),  # longer than any real From: not read
])
def test_plain_from_values_still_read(value: str, expected: tuple[str, str]) -> None:
    assert parse_address(clean_address(value)) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='ab.é !"(),@<>:;\\[]=?\'*Ω', max_size=12),
       st.text(alphabet="ab.é-+@\"'=?Ω", min_size=1, max_size=8),
       st.sampled_from(["{n} <{a}>", '"{n}" <{a}>', "{a} ({n})", "{a}", "<{a}>", "{n}{a}",
                        "{n}.<{a}>", " {n}  {n}<{a}> "]))
def test_the_fast_path_reads_as_both_parsers_do(name: str, address: str, shape: str) -> None:
    """Common From shapes skip the policy.default parser; where they do, the answer is the
    one both parsers agree on."""
    value = shape.format(n=name, a=address)
    if _SIMPLE_MAILBOX.fullmatch(value):
        assert mailboxes(value) == list(_agreed_mailboxes(value)), value


def test_spoofed_trusted_reporter_gains_no_trust() -> None:
    """With require_dkim off (From alone is trusted), a From that only *looks* like the trusted
    sender to getaddresses must not be taken for it."""
    policy = TrustPolicy([TrustedReporter("Yahoo CFL", ("feedback@arf.mail.yahoo.com",),
                                          require_dkim=False)])
    no_dkim = DkimResult(False, [], "no signature")
    for value in ["feedback@arf.mail.yahoo.com <mallory@evil.example>",
                  "=?utf-8?q?feedback@arf.mail.yahoo.com?= <mallory@evil.example>",
                  '"feedback@arf.mail.yahoo.com" <mallory@evil.example>',
                  "feedback@arf.mail.yahoo.com(x)@evil.example",
                  "mallory@evil.example, feedback@arf.mail.yahoo.com <x@evil.example>"]:
        raw = f"From: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode()
        from_address = first_address(read_top_headers(raw).from_)
        for trust in (policy.assess(raw, from_address, no_dkim),
                      policy.assess(raw, None, no_dkim)):
            assert not trust.trusted, value
            assert trust.reporter is None, value
    genuine = b"From: Yahoo <feedback@arf.mail.yahoo.com>\r\nSubject: x\r\n\r\nbody\r\n"
    assert policy.assess(genuine, None, no_dkim).trusted
