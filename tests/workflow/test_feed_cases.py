"""A scanner's or a CERT's feed: one mail, many rows (a table per report kind), rows about
several customers. The rows for one customer are one complaint: one case holding all of them,
one notice listing them, whatever kind each row is."""

from __future__ import annotations

import base64

import pytest
from abuse_desk.app.wiring import Desk

from .workflow_support import (
    TRUSTED_FBL,
    MakeDesk,
    case_by_id,
    deliver,
    notices_of,
    outbox,
    reports_of,
    text_of,
)

# A scanner feed trusted by configuration (its mails are believed by their From here).
FEED = {"name": "Scanner feed", "senders": ["autoreports@scanner.example"],
        "require_dkim": False}


def table(name: str, ips: list[str]) -> str:
    csv = ('"timestamp","ip","protocol","port","hostname","tag","asn","geo"\r\n'
           + "".join(f'"2026-11-24 10:00:00","{ip}","tcp",22,,"x",64500,"DE"\r\n'
                     for ip in ips)).encode()
    encoded = base64.encodebytes(csv).decode().replace("\n", "\r\n")
    return (f'--b\r\nContent-Type: text/csv; name="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{encoded}')


def feed_mail(tables: list[str]) -> bytes:
    return ("From: Scanner <autoreports@scanner.example>\r\nTo: abuse@localhost\r\n"
            "Message-ID: <feed-1@scanner.example>\r\n"
            "Subject: Shadowserver Integra ISP Report: 2026-11-24\r\n"
            "Date: Tue, 24 Nov 2026 14:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
            + "".join(tables) + "--b--\r\n").encode()


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    # The feed is a trusted reporter too.
    return make_desk(classifier={"trusted_reporters": [TRUSTED_FBL, FEED]})


def test_one_customers_rows_of_several_kinds_make_one_case_and_one_notice(desk: Desk) -> None:
    message_id = deliver(desk, feed_mail([
        table("2026-11-24-scan_ssh-integra_isp-asn64500.csv",
              ["45.137.21.7", "45.137.21.8", "46.29.160.5"]),
        table("2026-11-24-botnet_drone-integra_isp-asn64500.csv", ["45.137.21.9"]),
    ]))
    reports = reports_of(desk, message_id)
    assert len(reports) == 4 and all(r.review_reason is None for r in reports)
    by_customer: dict[int, set[int]] = {}
    for r in reports:
        by_customer.setdefault(r.customer_id, set()).add(r.case_id)
    assert all(len(ids) == 1 for ids in by_customer.values())  # one case per customer
    (alpha,) = by_customer[1]
    case = case_by_id(desk, alpha)
    assert case.claims == 3
    assert {r.type for r in reports if r.case_id == alpha} == {"open-service", "malware"}
    desk.workflow.run_due()
    assert [n.kind for n in notices_of(desk, alpha)] == ["notice"]
    (notice,) = [m for m in outbox(desk) if m["To"] == "noc@alpha.example"]
    text = text_of(notice)
    assert all(ip in text for ip in ("45.137.21.7", "45.137.21.8", "45.137.21.9"))
    assert "46.29.160.5" not in text  # another customer's row
