"""The dashboard's DMARC and TLS reports: counted per reporting domain and kind in the window,
never a case; shown on the page with the domains escaped."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Case, Message
from abuse_desk.web.dashboard import stats
from sqlalchemy import func, select

from tests.web.test_dashboard import at, deliver_now
from tests.web.web_support import signed_in
from tests.workflow.workflow_support import START, Clock

AGGREGATE = """<?xml version="1.0"?>
<feedback><report_metadata><org_name>{org}</org_name><email>d@{org}</email>
<report_id>1</report_id><date_range><begin>1795305600</begin><end>1795391999</end></date_range>
</report_metadata><policy_published><domain>isp.example</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.25</source_ip><count>3</count></row></record></feedback>
"""


def aggregate(sender: str) -> bytes:
    org = sender.rsplit("@", 1)[1]
    return (f"From: DMARC <{sender}>\r\nTo: abuse@isp.example\r\n"
            f"Subject: Report Domain: isp.example Submitter: {org} Report-ID: 1\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/xml\r\n\r\n"
            + AGGREGATE.format(org=org)).encode()


def tls(sender: str) -> bytes:
    report = {"organization-name": "R", "date-range": {
        "start-datetime": "2026-11-22T00:00:00Z", "end-datetime": "2026-11-22T23:59:59Z"},
        "contact-info": sender, "report-id": "t", "policies": []}
    return (f"From: {sender}\r\nTo: abuse@isp.example\r\nSubject: TLS report\r\n"
            "TLS-Report-Domain: isp.example\r\nMIME-Version: 1.0\r\n"
            "Content-Type: application/tlsrpt+json\r\n\r\n"
            + json.dumps(report)).encode()


def failure(sender: str) -> bytes:
    return (f"From: {sender}\r\nTo: abuse@isp.example\r\nSubject: DMARC failure report\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            "report-type=feedback-report; boundary=\"f\"\r\n\r\n"
            "--f\r\nContent-Type: text/plain\r\n\r\nfailure\r\n"
            "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: auth-failure\r\nVersion: 1\r\nReported-Domain: isp.example\r\n"
            "Source-IP: 192.0.2.25\r\n\r\n--f--\r\n").encode()


def test_dmarc_and_tls_reports_are_counted_per_reporting_domain(desk: Desk,
                                                                 clock: Clock) -> None:
    for raw in (aggregate("noreply@google.example"), aggregate("dmarc@google.example"),
                failure("ruf@google.example"), tls("tls@google.example"),
                aggregate("reports@yahoo.example")):
        deliver_now(desk, clock, raw)
    deliver_now(desk, at(clock, START - timedelta(days=40)), aggregate("old@other.example"))
    at(clock, START)
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Case)).scalar_one() == 0
        formats = sorted(f for (f,) in conn.execute(select(Message.format)))
    assert formats == ["dmarc-aggregate"] * 4 + ["dmarc-failure", "tls-report"]

    data = stats(desk.web, 30)["auth_reports"]
    assert data["total"] == 5
    assert data["by_kind"] == {"dmarc-aggregate": 3, "dmarc-failure": 1, "tls-report": 1}
    assert data["domains"] == 2
    assert data["by_domain"] == [
        {"domain": "google.example", "dmarc-aggregate": 2, "dmarc-failure": 1,
         "tls-report": 1, "total": 4},
        {"domain": "yahoo.example", "dmarc-aggregate": 1, "dmarc-failure": 0,
         "tls-report": 0, "total": 1},
    ]
    assert stats(desk.web, 90)["auth_reports"]["total"] == 6


def test_the_page_shows_them_escaped(desk: Desk, clock: Clock) -> None:
    deliver_now(desk, clock, aggregate('x@"<b>bold</b>".example'))
    deliver_now(desk, clock, aggregate("noreply@google.example"))
    html = signed_in(desk, "sam").get("/dashboard").text
    assert re.search(r'id="auth-reports-total">2<', html)
    assert "<td>google.example</td>" in html
    assert "<b>bold</b>" not in html


def test_no_reports_no_table(desk: Desk) -> None:
    assert stats(desk.web, 7)["auth_reports"] == {
        "total": 0, "by_kind": {"dmarc-aggregate": 0, "dmarc-failure": 0, "tls-report": 0},
        "domains": 0, "by_domain": []}
    html = signed_in(desk, "sam").get("/dashboard").text
    assert 'id="auth-reports-total">0<' in html and 'class="auth-reports"' not in html
