"""Property-based tests: whatever MIME arrives, the parsers answer, within their limits.

Generated messages mix the shapes every parser looks for (feedback reports, report.txt, JSON,
ACNS XML, CSV and ZIP attachments, DSNs) with random bytes, and real fixtures are mutated byte
by byte. The registry must return a result for each, never raise, and keep its bounds.
"""

from __future__ import annotations

import base64
from pathlib import Path

from abuse_desk.core.config import ParserLimits
from abuse_desk.parsers.base import Disposition, ParsedReport
from abuse_desk.parsers.registry import default_registry, known_formats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REGISTRY = default_registry()
LIMITS = ParserLimits(max_parts=200, max_reports=500, time_budget_s=10)
DATA = Path(__file__).parent / "data"

CONTENT_TYPES = [
    "text/plain", "text/plain; charset=utf-8", "text/plain; charset=iso-2022-jp",
    "text/plain; charset=bogus-charset", "text/html", "message/rfc822",
    "message/feedback-report", "text/rfc822-headers", "application/json",
    "application/xml", "text/csv", "application/zip", "application/octet-stream",
    "message/delivery-status", "multipart/report; report-type=feedback-report",
    "multipart/report; report-type=delivery-status", "multipart/mixed", "multipart/alternative",
]
SNIPPETS = [
    b"Feedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\nSource-IP: 192.0.2.1\r\n",
    b"Feedback-Type: xarf\r\nArrival-Date: Thu, 8 Mar 2005 17:40:36 EDT\r\n",
    b"---\nReported-From: a@b\nReport-Type: login-attack\nSource: 198.51.100.7\nDate: now\n",
    b"a: &a [*a, *a, *a]\nb: &b [*a, *a]\n",
    b'{"xarf_version": "4.0.0", "category": "connection", "type": "port_scan", '
    b'"source_identifier": "203.0.113.9", "timestamp": "2026-01-01T00:00:00Z"}',
    b'{"Version": "2", "Report": {"ReportType": "Spam", "SourceIp": "192.0.2.99"}}',
    b"<?xml version='1.0'?><Infringement xmlns='http://www.acns.net/ACNS'><Source>"
    b"<TimeStamp>2015-05-06T05-00-00UTC</TimeStamp><IP_Address>192.0.2.5</IP_Address>"
    b"</Source></Infringement>",
    b"<!DOCTYPE l [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><Infringement>&b;</Infringement>",
    b'"timestamp","ip","protocol","port"\r\n"2026-01-01 00:00:00","192.0.2.3","tcp","22"\r\n',
    b"PK\x03\x04" + bytes(40),
    b"hxxp://evil[.]example[.]com/login 2001:db8::7 port 8080 at 2026-02-01 10:00 UTC",
    b"=?utf-8?q?=0D=0ABcc:_x@y?=", b"\x00\xff\xfe garbage \x1b$B\x1b(B",
    b"- ----Start ACNS XML\r\n", b"Reporting-MTA: dns; mx.example\r\nStatus: 5.1.1\r\n",
]


@st.composite
def header_lines(draw: st.DrawFn) -> bytes:
    names = ["Subject", "From", "X-XARF", "X-ARF", "Auto-Submitted", "In-Reply-To",
             "Content-Transfer-Encoding", "Content-Disposition", "Precedence", "X-Foo"]
    values = [b"PLAIN", b"yes", b"auto-replied", b"auto-generated", b"base64",
              b"quoted-printable", b"attachment; filename=report.txt",
              b"attachment; filename=xarf.json", b"attachment; filename=x.csv.zip",
              b"[SpamCop (192.0.2.1) id:1]", b"Out of Office", b"=?utf-8?b?!!!?="]
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names)).encode()
        value = draw(st.one_of(st.sampled_from(values), st.binary(max_size=40)))
        lines.append(name + b": " + value.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
    return b"".join(lines)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    chunks = draw(st.lists(st.one_of(st.sampled_from(SNIPPETS), st.binary(max_size=200)),
                           max_size=4))
    body = b"\r\n".join(chunks)
    if draw(st.booleans()):
        body = base64.encodebytes(body)
    return body


def entity(draw: st.DrawFn, depth: int) -> bytes:
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    headers = draw(header_lines())
    if ctype.startswith("multipart/") and depth < 4:
        boundary = f"b{depth}{draw(st.integers(0, 999))}".encode()
        children = [entity(draw, depth + 1) for _ in range(draw(st.integers(0, 4)))]
        inner = b"".join(b"--" + boundary + b"\r\n" + c + b"\r\n" for c in children)
        terminator = b"--" + boundary + b"--\r\n" if draw(st.booleans()) else b""
        return (f"Content-Type: {ctype}; boundary=".encode() + boundary + b"\r\n" + headers
                + b"\r\n" + inner + terminator)
    if ctype == "message/rfc822" and depth < 4:
        return b"Content-Type: message/rfc822\r\n" + headers + b"\r\n" + entity(draw, depth + 1)
    return f"Content-Type: {ctype}\r\n".encode() + headers + b"\r\n" + draw(bodies())


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    return b"From: someone@example.org\r\nMIME-Version: 1.0\r\n" + entity(draw, 0)


def check(raw: bytes) -> None:
    result = REGISTRY.parse(raw, LIMITS)
    assert isinstance(result.disposition, Disposition)
    assert result.format in (*known_formats(), "text")
    assert len(result.reports) <= LIMITS.max_reports
    for report in result.reports:
        assert isinstance(report, ParsedReport)
        assert report.evidence is None or len(report.evidence) <= ParsedReport.MAX_EVIDENCE + 1
        assert report.occurred_at is None or report.occurred_at.utcoffset() is not None
        if report.source_port is not None:
            assert 0 <= report.source_port <= 65535
    if not result.reports and result.disposition is Disposition.REPORT:
        assert result.review_reasons, "a complaint with no report must say why"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_mime_never_escapes_the_parsers(raw: bytes) -> None:
    check(raw)


def fixtures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(DATA.rglob("*.eml"))][:200]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_fixtures_never_escape_the_parsers(data: st.DataObject) -> None:
    samples = fixtures() or [b"From: a@b\r\nSubject: spam from 192.0.2.1\r\n\r\nbody\r\n"]
    raw = bytearray(data.draw(st.sampled_from(samples)))
    for _ in range(data.draw(st.integers(1, 8))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        if action == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del raw[at:at + data.draw(st.integers(1, 64))]
        elif action == "insert":
            raw[at:at] = data.draw(st.sampled_from(SNIPPETS))
        else:
            del raw[at:]
    check(bytes(raw))
