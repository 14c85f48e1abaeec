"""A claimed trusted reporter whose DKIM could not be checked (the DNS did not answer) is
examined again later with backoff, a bounded number of times, then goes to review with "DKIM
could not be checked (DNS ...)"; a signature that does not verify goes to review at once; our
boundary MTA's Authentication-Results make a report trusted without any DNS."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Event, MessageState
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.workflow.pipeline import dkim_retry_delay
from abuse_desk.workflow.scheduler import Scheduler
from sqlalchemy import select

from tests.classifier.test_trust import Dns, Key, make_key, signed, txt
from tests.workflow.workflow_support import (
    AUTHSERV_ID,
    Clock,
    arf,
    message_row_of,
    reports_of,
    workflow_desk,
)

YAHOO = "arf.mail.yahoo.com"  # Yahoo CFL: a default trusted reporter that must sign
IP = "45.137.21.9"  # customer C-1


@pytest.fixture(scope="module")
def key() -> Key:
    return make_key(2026)


class FlakyDns:
    """No answer until told otherwise, then the key."""

    def __init__(self, key: Key) -> None:
        self.answering = False
        self.asked = 0
        self.dns = Dns({txt("s2026", YAHOO): key.dns_record})

    def __call__(self, name: bytes) -> bytes | None:
        self.asked += 1
        if not self.answering:
            raise TimeoutError("the resolver did not answer")
        return self.dns(name)


def make_desk(tmp_path: Path, clock: Clock, dns: Any, **pipeline: Any) -> Desk:
    desk = workflow_desk(tmp_path, clock, pipeline={"sweep_after_s": 60.0, **pipeline})
    desk.examination.classifier.classifier._dns = dns
    return desk


def store(desk: Desk, raw: bytes) -> int:
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            "bounce@yahoo.com", ["abuse@localhost"], received_at=desk.clock()))])
    return message_id


def yahoo_report(key: Key, extra_headers: str = "") -> bytes:
    return signed(arf(IP, sender=f"feedback@{YAHOO}", extra_headers=extra_headers), key, YAHOO)


def retries(desk: Desk, message_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == "message", Event.subject_id == message_id,
            Event.action == "dkim-retry").order_by(Event.id)))


def due(desk: Desk) -> list[int]:
    return Scheduler(desk.engine, desk.clock, desk.config.pipeline, desk.workflow).claim_stale(
        desk.clock(), desk.config.pipeline.sweep_after_s)


def test_a_dns_failure_is_retried_with_backoff_then_reviewed_with_the_reason(
        tmp_path: Path, clock: Clock, key: Key) -> None:
    dns = FlakyDns(key)
    desk = make_desk(tmp_path, clock, dns)
    message_id = store(desk, yahoo_report(key))

    waits = []
    for retry in (1, 2, 3):
        assert desk.pipeline.process(message_id) == "retry"
        row = message_row_of(desk, message_id)
        assert row.state == MessageState.RECEIVED
        assert row.attempts == 0  # a retry is not an attempt that died
        assert reports_of(desk, message_id) == []
        wait = as_utc(row.enqueued_at) + timedelta(seconds=60) - clock.now
        waits.append(wait.total_seconds())
        clock.now += wait - timedelta(seconds=1)
        assert message_id not in due(desk)  # not before its time ...
        clock.now += timedelta(seconds=1)
        assert due(desk) == [message_id]  # ... then the sweeper sends it again
        assert len(retries(desk, message_id)) == retry

    assert waits == [120.0, 240.0, 480.0]
    assert [e.detail["retry"] for e in retries(desk, message_id)] == [1, 2, 3]
    assert desk.pipeline.process(message_id) == "processed"  # the retries are spent
    (report,) = reports_of(desk, message_id)
    assert report.case_id is None
    assert report.trusted is False
    assert ("claims to be Yahoo CFL but DKIM could not be checked (DNS lookup of "
            f"s2026._domainkey.{YAHOO}. failed: TimeoutError: the resolver did not answer) "
            f"for {YAHOO} (tried 4 times)") in report.review_reason
    assert dns.asked == 4


def test_a_retry_that_reaches_the_dns_decides_as_usual(tmp_path: Path, clock: Clock,
                                                       key: Key) -> None:
    dns = FlakyDns(key)
    desk = make_desk(tmp_path, clock, dns)
    message_id = store(desk, yahoo_report(key))
    assert desk.pipeline.process(message_id) == "retry"

    dns.answering = True
    clock.now += timedelta(seconds=120)
    assert desk.pipeline.process(message_id) == "processed"

    (report,) = reports_of(desk, message_id)
    assert report.trusted is True
    assert report.review_reason is None
    assert report.case_id is not None


def test_a_signature_that_does_not_verify_is_not_retried(tmp_path: Path, clock: Clock,
                                                         key: Key) -> None:
    other = make_key(4711)
    desk = make_desk(tmp_path, clock, Dns({txt("s2026", YAHOO): key.dns_record}))
    message_id = store(desk, signed(arf(IP, sender=f"feedback@{YAHOO}"), other, YAHOO))

    assert desk.pipeline.process(message_id) == "processed"

    assert retries(desk, message_id) == []
    (report,) = reports_of(desk, message_id)
    assert "claims to be Yahoo CFL but DKIM does not verify" in report.review_reason


def test_no_retries_configured_means_review_at_once(tmp_path: Path, clock: Clock,
                                                    key: Key) -> None:
    desk = make_desk(tmp_path, clock, FlakyDns(key), dkim_retries=0)
    message_id = store(desk, yahoo_report(key))

    assert desk.pipeline.process(message_id) == "processed"

    (report,) = reports_of(desk, message_id)
    assert "DKIM could not be checked (DNS lookup" in report.review_reason
    assert "tried" not in report.review_reason


def test_our_boundary_mtas_pass_needs_no_dns(tmp_path: Path, clock: Clock, key: Key) -> None:
    dns = FlakyDns(key)
    desk = make_desk(tmp_path, clock, dns)
    message_id = store(desk, yahoo_report(key, extra_headers=(
        f"Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d={YAHOO}; "
        f"dmarc=pass header.from={YAHOO}\r\n")))

    assert desk.pipeline.process(message_id) == "processed"

    (report,) = reports_of(desk, message_id)
    assert report.trusted is True
    assert report.review_reason is None
    assert report.case_id is not None


def test_our_boundary_mtas_temperror_is_retried(tmp_path: Path, clock: Clock, key: Key) -> None:
    desk = make_desk(tmp_path, clock, FlakyDns(key))
    message_id = store(desk, yahoo_report(key, extra_headers=(
        f"Authentication-Results: {AUTHSERV_ID}; dkim=temperror header.d={YAHOO}\r\n")))

    assert desk.pipeline.process(message_id) == "retry"
    (event,) = retries(desk, message_id)
    assert "DKIM could not be checked" in event.detail["reason"]


def test_the_backoff_doubles_up_to_its_limit() -> None:
    assert [dkim_retry_delay(n, 120.0, 1800.0) for n in range(1, 7)] == [
        120.0, 240.0, 480.0, 960.0, 1800.0, 1800.0]
