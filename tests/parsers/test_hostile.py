"""Bombs through the whole registry, as the worker meets them: each is answered with a review
reason, without expanding what it asks to expand.

The time each takes is measured by `make bench`, not here (no timed tests); the timeout below
only turns a hang into a failure.
"""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from abuse_desk.parsers.base import Disposition, ParseResult
from abuse_desk.parsers.registry import default_registry

pytestmark = pytest.mark.timeout(20)


def parse(raw: bytes) -> ParseResult:
    return default_registry().parse(raw)


def reasons(result: ParseResult) -> str:
    return " | ".join([*result.review_reasons, *(r for rep in result.reports
                                                 for r in rep.review_reasons)])


def attach(filename: str, ctype: str, data: bytes, subject: str = "report") -> bytes:
    return (f"From: reporter@example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=HOSTILE\r\n\r\n--HOSTILE\r\n"
            "Content-Type: text/plain\r\n\r\nSee the attachment.\r\n--HOSTILE\r\n"
            f"Content-Type: {ctype}; name={filename}\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename={filename}\r\n\r\n").encode() \
        + base64.encodebytes(data) + b"--HOSTILE--\r\n"


def test_billion_laughs_in_acns() -> None:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    xml = (f'<?xml version="1.0"?><!DOCTYPE Infringement [{entities}]>'
           '<Infringement xmlns="http://www.acns.net/ACNS"><Source><IP_Address>192.0.2.10'
           '</IP_Address><TimeStamp>&l9;</TimeStamp></Source></Infringement>')
    result = parse(attach("notice.xml", "application/xml", xml.encode(),
                          subject="Notice of Claimed Infringement"))
    assert result.format == "acns"
    assert "entit" in reasons(result).lower()
    assert all("lollol" not in (r.occurred_raw or "") for r in result.reports)


def test_external_entity_in_acns_is_not_fetched() -> None:
    xml = ('<?xml version="1.0"?><!DOCTYPE Infringement [<!ENTITY x SYSTEM '
           '"file:///etc/passwd">]><Infringement><Source><IP_Address>&x;</IP_Address>'
           '</Source></Infringement>')
    result = parse(attach("notice.xml", "application/xml", xml.encode()))
    assert result.format == "acns"
    assert "root:" not in str(result)
    assert reasons(result)


def test_yaml_alias_bomb_in_xarf() -> None:
    bomb = "---\nReported-From: a@example.org\nReport-Type: login-attack\nSource: 192.0.2.20\n"
    bomb += "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, "
        f"*{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}]\n"
        for n in range(20))
    raw = (b"From: reports@blocklist.example\r\nSubject: abuse report\r\nX-XARF: PLAIN\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nAttack from 192.0.2.20\r\n"
           b"--B\r\nContent-Type: text/plain; name=report.txt\r\n\r\n" + bomb.encode()
           + b"\r\n--B--\r\n")
    result = parse(raw)
    assert result.format == "xarf"
    assert "alias" in reasons(result).lower() or "anchor" in reasons(result).lower()
    assert [r.source_ip for r in result.reports] == ["192.0.2.20"]


def test_yaml_tags_construct_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    payload = (f"---\nReported-From: a@example.org\nReport-Type: spam\nSource: 192.0.2.21\n"
               f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    raw = (b"From: r@example.org\r\nSubject: x\r\nX-XARF: PLAIN\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; "
           b"name=report.txt\r\n\r\n" + payload.encode() + b"\r\n--B--\r\n")
    parse(raw)
    assert not marker.exists()


def test_zip_bomb_in_a_shadowserver_report() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("2026-01-01-scan_ssh-org-asn.csv",
                    b'"timestamp","ip","port"\n' + b"0" * 200_000_000)
    result = parse(attach("2026-01-01-scan_ssh-org-asn.csv.zip", "application/zip",
                          buffer.getvalue(), subject="Shadowserver scan_ssh report"))
    assert result.format == "shadowserver"
    assert "zip" in reasons(result).lower()


def test_thousand_deep_multipart() -> None:
    head = (b"From: r@example.org\r\nSubject: deep\r\n"
            b"Content-Type: multipart/mixed; boundary=b0\r\n")
    body = b"".join(b"\r\n--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n" % (i - 1, i)
                    for i in range(1, 1000))
    result = parse(head + body + b"\r\n--b999\r\n\r\nhi 192.0.2.1\r\n")
    assert result.disposition is Disposition.REPORT
    assert "nesting" in reasons(result) or "MIME" in reasons(result)


def test_hundred_thousand_parts() -> None:
    raw = (b"From: r@example.org\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=X"
           b"\r\n\r\n" + b"--X\r\n\r\npart\r\n" * 100_000 + b"--X--\r\n")
    result = parse(raw)
    assert "too many MIME parts" in reasons(result)
