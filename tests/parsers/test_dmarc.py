"""DMARC aggregate reports (RFC 7489 appendix C), DMARC failure reports (RFC 6591) and SMTP TLS
reports (RFC 8460): never a complaint, each ignored with its kind, its reporter, the domain it
is about and its period; archives read within the ZIP limits."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile

from abuse_desk.core.config import ParserLimits
from abuse_desk.parsers.registry import default_registry

REGISTRY = default_registry("desk.integra-isp.example")

AGGREGATE_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>receiver.example</org_name>
    <email>dmarc@receiver.example</email>
    <report_id>r-1</report_id>
    <date_range><begin>1795305600</begin><end>1795391999</end></date_range>
  </report_metadata>
  <policy_published><domain>isp.example</domain><p>none</p></policy_published>
  <record>
    <row><source_ip>192.0.2.25</source_ip><count>4</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf>
      </policy_evaluated></row>
    <identifiers><header_from>isp.example</header_from></identifiers>
  </record>
  <record>
    <row><source_ip>198.51.100.7</source_ip><count>10</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf>
      </policy_evaluated></row>
    <identifiers><header_from>isp.example</header_from></identifiers>
  </record>
</feedback>
"""
NAME = "receiver.example!isp.example!1795305600!1795391999"


def mail_with(data: bytes, ctype: str, filename: str, subject: str = "Report") -> bytes:
    body = base64.encodebytes(data).decode()
    return (
        f"From: DMARC <noreply-dmarc@receiver.example>\r\nTo: abuse@isp.example\r\n"
        f"Subject: {subject}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
        f"--b\r\nContent-Type: {ctype}; name=\"{filename}\"\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n{body}\r\n--b--\r\n"
    ).encode()


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def test_an_aggregate_report_in_a_zip_is_ignored_with_its_reporter_domain_and_period() -> None:
    result = REGISTRY.parse(mail_with(zipped(NAME + ".xml", AGGREGATE_XML), "application/zip",
                                      NAME + ".zip"))
    assert (result.disposition.value, result.format, result.reports) == (
        "ignored", "dmarc-aggregate", [])
    extra = result.extra
    assert extra["non_report"] == "dmarc-aggregate"
    assert (extra["reporter"], extra["reporting_domain"], extra["domain"]) == (
        "receiver.example", "receiver.example", "isp.example")
    assert (extra["period_begin"], extra["period_end"]) == (
        "2026-11-22T00:00:00Z", "2026-11-22T23:59:59Z")
    assert (extra["messages"], extra["failing"], extra["sources"]) == (14, 4, 2)


def test_any_declared_type_gzip_and_inline_xml_are_read() -> None:
    for raw in (
        mail_with(zipped("report.xml", AGGREGATE_XML), "application/octet-stream", "x.zip"),
        mail_with(gzip.compress(AGGREGATE_XML), "application/gzip", NAME + ".xml.gz"),
        b"From: r@receiver.example\r\nSubject: x\r\nContent-Type: text/xml\r\n\r\n"
        + AGGREGATE_XML,
    ):
        result = REGISTRY.parse(raw)
        assert (result.disposition.value, result.format) == ("ignored", "dmarc-aggregate")
        assert result.extra["domain"] == "isp.example"


def test_a_namespaced_dmarcbis_report_is_read() -> None:
    xml = AGGREGATE_XML.replace(b"<feedback>",
                                b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">')
    result = REGISTRY.parse(mail_with(xml, "text/xml", NAME + ".xml"))
    assert (result.format, result.extra["reporter"]) == ("dmarc-aggregate", "receiver.example")


def test_a_report_that_is_not_well_formed_is_still_recognised() -> None:
    broken = AGGREGATE_XML.replace(b"</record>\n</feedback>", b"<record><row>")
    result = REGISTRY.parse(mail_with(broken, "text/xml", "report.xml"))
    assert (result.disposition.value, result.format) == ("ignored", "dmarc-aggregate")
    assert result.extra["domain"] == "isp.example"
    assert result.extra["unreadable"]


def test_entities_are_refused_and_a_complaint_with_xml_stays_a_complaint() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa">]>'
            b"<feedback>&a;</feedback>")
    result = REGISTRY.parse(mail_with(bomb, "text/xml", "x.xml",
                                      subject="spam from 192.0.2.9"))
    assert result.format != "dmarc-aggregate"


def test_a_zip_bomb_named_as_a_report_is_not_inflated_past_the_limit() -> None:
    limits = ParserLimits(max_zip_ratio=10)
    bomb = zipped(NAME + ".xml", b"<feedback>" + b" " * 2_000_000)
    raw = mail_with(bomb, "application/zip", NAME + ".zip",
                    subject="Report Domain: isp.example Submitter: receiver.example "
                    "Report-ID: 1")
    result = REGISTRY.parse(raw, limits)
    assert (result.disposition.value, result.format) == ("ignored", "dmarc-aggregate")
    assert "ratio" in " ".join(result.extra["unreadable"])


def test_a_zip_attachment_that_is_no_report_is_left_to_the_other_parsers() -> None:
    csv = b"timestamp,ip,port\n2026-11-22 10:00:00,192.0.2.44,23\n"
    raw = mail_with(zipped("scan.csv", csv), "application/zip", "scan.zip",
                    subject="open telnet on 192.0.2.44")
    assert REGISTRY.parse(raw).format != "dmarc-aggregate"


FAILURE = (
    "From: dmarc-ruf@receiver.example\r\nTo: abuse@isp.example\r\n"
    "Subject: DMARC failure report for isp.example\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n"
    "--f\r\nContent-Type: text/plain\r\n\r\nAn authentication failure report.\r\n"
    "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
    "Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\n"
    "Original-Mail-From: <bounce@isp.example>\r\nArrival-Date: Mon, 23 Nov 2026 07:12:44 +0000\r\n"
    "Source-IP: 192.0.2.25\r\nReported-Domain: isp.example\r\nAuth-Failure: dkim\r\n"
    "\r\n--f\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: billing@isp.example\r\n"
    "Subject: invoice\r\n--f--\r\n")


def test_an_rfc6591_auth_failure_report_is_no_spam_complaint() -> None:
    result = REGISTRY.parse(FAILURE.encode())
    assert (result.disposition.value, result.format, result.reports) == (
        "ignored", "dmarc-failure", [])
    assert result.extra["non_report"] == "dmarc-failure"
    assert (result.extra["domain"], result.extra["source_ip"], result.extra["period_begin"]) == (
        "isp.example", "192.0.2.25", "2026-11-23T07:12:44Z")


def test_an_abuse_feedback_report_stays_a_complaint() -> None:
    raw = FAILURE.replace("auth-failure", "abuse").replace("DMARC failure report for",
                                                           "Spam from")
    result = REGISTRY.parse(raw.encode())
    assert (result.disposition.value, result.format) == ("report", "arf")


def test_a_plain_text_forensic_report_is_recognised_by_subject_and_wording() -> None:
    raw = (b"From: noreply@receiver.example\r\nSubject: DMARC forensic report for isp.example\r\n"
           b"Auto-Submitted: auto-replied\r\n\r\n"
           b"A message claiming to be from your domain failed DMARC evaluation.\r\n"
           b"  Reported domain: isp.example\r\n  Source IP: 192.0.2.25\r\n")
    result = REGISTRY.parse(raw)
    assert (result.format, result.extra["domain"], result.extra["source_ip"]) == (
        "dmarc-failure", "isp.example", "192.0.2.25")


def test_a_person_mentioning_dmarc_in_a_complaint_is_still_a_complaint() -> None:
    raw = (b"From: Jane <jane@mail.example>\r\nSubject: Phishing from 192.0.2.80\r\n\r\n"
           b"This phishing mail failed DMARC at my provider but still arrived.\r\n"
           b"It came from 192.0.2.80 on 2026-11-22 10:00 UTC.\r\n")
    assert REGISTRY.parse(raw).disposition.value == "report"


TLS_REPORT = {
    "organization-name": "Receiver Inc.",
    "date-range": {"start-datetime": "2026-11-22T00:00:00Z",
                   "end-datetime": "2026-11-22T23:59:59Z"},
    "contact-info": "tlsrpt@receiver.example", "report-id": "t-1",
    "policies": [{"policy": {"policy-type": "sts", "policy-domain": "isp.example"},
                  "summary": {"total-successful-session-count": 90,
                              "total-failure-session-count": 3},
                  "failure-details": [{"result-type": "certificate-expired",
                                       "sending-mta-ip": "192.0.2.30",
                                       "failed-session-count": 3}]}],
}


def test_a_gzipped_tls_report_is_ignored_with_its_sessions() -> None:
    data = gzip.compress(json.dumps(TLS_REPORT).encode())
    raw = mail_with(data, "application/tlsrpt+gzip",
                    "receiver.example!isp.example!1795305600!1795391999.json.gz")
    result = REGISTRY.parse(raw)
    assert (result.disposition.value, result.format, result.reports) == (
        "ignored", "tls-report", [])
    extra = result.extra
    assert (extra["non_report"], extra["reporter"], extra["domain"]) == (
        "tls-report", "Receiver Inc.", "isp.example")
    assert (extra["sessions_successful"], extra["sessions_failed"]) == (90, 3)
    assert extra["period_begin"] == "2026-11-22T00:00:00Z"


def test_a_bare_tls_report_json_is_recognised() -> None:
    raw = (b"From: tls@receiver.example\r\nSubject: report\r\n"
           b"Content-Type: application/json\r\n\r\n" + json.dumps(TLS_REPORT).encode())
    result = REGISTRY.parse(raw)
    assert (result.format, result.extra["reporting_domain"]) == ("tls-report",
                                                                 "receiver.example")
