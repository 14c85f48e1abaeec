"""Notices through a real smarthost (aiosmtpd in the test) and actions through a real HTTP
provisioning hook (http.server in the test), driven by `timeline.run_due` with a moved clock:
temporary failures retry with backoff, permanent ones fail the notice on its case."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Event
from abuse_desk.workflow import cases
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tests.support import free_port

from .workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    notices_of,
    steps_of,
    the_case,
    workflow_desk,
)

TRY_LATER = "451 4.3.0 try later"
NO_SUCH_USER = "550 5.1.1 no such user"
RETRY_BASE_S = 60.0


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# ---- a smarthost ---------------------------------------------------------------------------

@dataclass
class Smarthost:
    """An aiosmtpd handler whose answer at DATA the test switches; keeps what it accepted."""

    answer: str = ""  # "" accepts
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer:
            self.refused += 1
            return self.answer
        self.accepted.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.original_content})
        return "250 2.0.0 Ok: queued as SMART1"

    def message_ids(self) -> list[str]:
        return [str(email.message_from_bytes(m["data"], policy=email.policy.default)
                    ["Message-ID"]) for m in self.accepted]


@pytest.fixture
def smarthost() -> Iterator[tuple[Smarthost, int]]:
    handler = Smarthost()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def smtp_desk(tmp_path: Path, clock: Clock, port: int, **notify: Any) -> Desk:
    return workflow_desk(tmp_path, clock, notify={
        "transport": "smtp", "smarthost_host": "127.0.0.1", "smarthost_port": port,
        "smarthost_starttls": False, "smarthost_timeout_s": 10.0,
        "retry_base_s": RETRY_BASE_S, **notify})


def case_events(desk: Desk, case_id: int, action: str) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == "case", Event.subject_id == case_id,
            Event.action == action).order_by(Event.id)))


# ---- notices through the smarthost ------------------------------------------------------------

def test_a_4xx_keeps_the_notice_pending_then_it_goes_when_the_smarthost_accepts(
        tmp_path: Path, clock: Clock, smarthost: tuple[Smarthost, int]) -> None:
    server, port = smarthost
    desk = smtp_desk(tmp_path, clock, port)
    server.answer = TRY_LATER
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))  # a machine report: no ack

    summary = desk.workflow.run_due()
    assert summary.notices == {"retry": 1}
    assert server.refused == 1 and server.accepted == []
    (notice,) = notices_of(desk, case.id)
    assert (notice.kind, notice.state, notice.attempts) == ("notice", "pending", 1)
    assert notice.error is not None and "451" in notice.error and "try later" in notice.error
    assert notice.sent_at is None
    retry_at = utc(notice.next_attempt_at)
    assert retry_at is not None
    # retry_delay(1, base, max): base less up to 10% jitter.
    assert START + timedelta(seconds=0.9 * RETRY_BASE_S) <= retry_at
    assert retry_at <= START + timedelta(seconds=RETRY_BASE_S)
    assert case_events(desk, case.id, "notice-failed") == []

    # Not before its time, even with the smarthost willing.
    server.answer = ""
    clock.now = retry_at - timedelta(seconds=1)
    assert desk.workflow.run_due().notices == {}
    assert server.accepted == []

    clock.now = retry_at + timedelta(seconds=1)
    assert desk.workflow.run_due().notices == {"sent": 1}
    (notice,) = notices_of(desk, case.id)
    assert (notice.state, notice.attempts, notice.error) == ("sent", 2, None)
    assert notice.receipt == "250 2.0.0 Ok: queued as SMART1"
    assert server.message_ids() == [notice.header_message_id]
    assert server.accepted[0]["to"] == ["noc@alpha.example"]
    # From the notice's own VERP address, so that its bounces come back matched to it.
    assert server.accepted[0]["from"] == f"abuse+b-{notice.bounce_token}@integra-isp.example"
    assert [e.detail["notice_id"] for e in case_events(desk, case.id, "notice-sent")] == [
        notice.id]

    # Sent is sent: nothing goes twice.
    clock.now += timedelta(hours=1)
    desk.workflow.run_due()
    assert len(server.accepted) == 1


def test_a_5xx_fails_the_notice_at_once_and_shows_on_the_case(
        tmp_path: Path, clock: Clock, smarthost: tuple[Smarthost, int]) -> None:
    server, port = smarthost
    desk = smtp_desk(tmp_path, clock, port)
    server.answer = NO_SUCH_USER
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))

    summary = desk.workflow.run_due()
    assert summary.notices == {"failed": 1}
    (notice,) = notices_of(desk, case.id)
    assert (notice.state, notice.attempts, notice.next_attempt_at) == ("failed", 1, None)
    assert notice.error is not None and "550" in notice.error
    assert "no such user" in notice.error

    (failed,) = case_events(desk, case.id, "notice-failed")
    assert failed.subject_type == "case" and failed.actor_kind == "system"
    assert failed.detail["notice_id"] == notice.id
    assert failed.detail["to"] == "noc@alpha.example"
    assert failed.detail["error"] == notice.error
    assert case_events(desk, case.id, "notice-sent") == []

    # A failed notice is not tried again, however often the timeline runs.
    server.answer = ""
    clock.now += timedelta(hours=2)
    desk.workflow.run_due()
    assert server.accepted == [] and server.refused == 1

    # `cases show --json`
    detail = json.loads(json.dumps(desk.cases.case_detail(case.reference)))
    (shown,) = detail["notices"]
    assert (shown["id"], shown["kind"], shown["state"]) == (notice.id, "notice", "failed")
    assert shown["error"] == notice.error and "no such user" in shown["error"]
    assert shown["sent_at"] is None and shown["attempts"] == 1
    assert "notice-failed" in [e["action"] for e in detail["events"]]


def test_persistent_4xx_fails_after_max_attempts(
        tmp_path: Path, clock: Clock, smarthost: tuple[Smarthost, int]) -> None:
    server, port = smarthost
    desk = smtp_desk(tmp_path, clock, port, max_attempts=2)
    server.answer = TRY_LATER
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))

    assert desk.workflow.run_due().notices == {"retry": 1}
    (notice,) = notices_of(desk, case.id)
    assert (notice.state, notice.attempts) == ("pending", 1)
    retry_at = utc(notice.next_attempt_at)
    assert retry_at is not None and retry_at > clock.now

    clock.now = retry_at + timedelta(seconds=1)
    assert desk.workflow.run_due().notices == {"failed": 1}
    (notice,) = notices_of(desk, case.id)
    assert (notice.state, notice.attempts, notice.next_attempt_at) == ("failed", 2, None)
    assert notice.error is not None and "451" in notice.error
    (failed,) = case_events(desk, case.id, "notice-failed")
    assert failed.detail["attempts"] == 2
    assert server.refused == 2 and server.accepted == []

    clock.now += timedelta(days=1)
    assert desk.workflow.run_due().notices == {}
    assert server.refused == 2


# ---- the provisioning hook by URL ------------------------------------------------------------

@dataclass
class Provisioning:
    """What the tiny provisioning server received, and the status it answers with."""

    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def provisioning() -> Iterator[Provisioning]:
    state = Provisioning()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.bodies.append(json.loads(self.rfile.read(length)))
            state.content_types.append(self.headers.get("Content-Type", ""))
            answer = b'{"ok": true}' if state.status < 300 else b'{"error": "broken"}'
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def escalated_case(desk: Desk, clock: Clock) -> Any:
    """A case escalated because its deadline passed unanswered, with a proposed restriction."""
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    desk.workflow.run_due()
    clock.now = as_utc(case.deadline_at)  # type: ignore[assignment]
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    return case


def restrict_step(desk: Desk, case_id: int) -> Any:
    (step,) = [s for s in steps_of(desk, case_id) if s.kind == "restrict"]
    return step


def approve(desk: Desk, clock: Clock, case_id: int) -> int:
    with desk.engine.begin() as conn:
        return cases.approve_action(conn, case_id, clock.now,
                                    cases.Actor("specialist", "alice"), reason="no answer")


def test_an_approved_restriction_reaches_the_provisioning_hook(
        tmp_path: Path, clock: Clock, provisioning: Provisioning) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"action_hook_url": provisioning.url})
    case = escalated_case(desk, clock)
    assert restrict_step(desk, case.id).state == "proposed"
    assert provisioning.bodies == []  # proposed: waits for a specialist

    step_id = approve(desk, clock, case.id)
    summary = desk.workflow.run_due()
    assert summary.steps.get("done", 0) >= 1

    (body,) = provisioning.bodies
    assert body == {"action": "restrict", "case": case.reference, "customer_id": "C-1",
                    "customer_name": "Alpha Hosting", "reason": "no answer"}
    assert provisioning.content_types == ["application/json"]
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("restricted", None)
    step = restrict_step(desk, case.id)
    assert (step.id, step.state, step.attempts, step.error) == (step_id, "done", 1, None)
    assert step.detail["answer"].startswith("HTTP 200")
    (restricted,) = case_events(desk, case.id, "restricted")
    assert restricted.detail["approved_by"] == "alice"
    # The customer is told about the action.
    assert "action" in [n.kind for n in notices_of(desk, case.id)]

    clock.now += timedelta(hours=1)
    desk.workflow.run_due()
    assert len(provisioning.bodies) == 1  # done once


def test_a_hook_answering_500_leaves_the_step_pending_to_retry(
        tmp_path: Path, clock: Clock, provisioning: Provisioning) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"action_hook_url": provisioning.url})
    case = escalated_case(desk, clock)
    provisioning.status = 500
    approve(desk, clock, case.id)
    approved_at = clock.now
    summary = desk.workflow.run_due()
    assert summary.steps.get("retry") == 1

    step = restrict_step(desk, case.id)
    assert (step.state, step.attempts) == ("pending", 1)
    assert step.error is not None and "HTTP 500" in step.error
    assert provisioning.url in step.error
    due = utc(step.due_at)
    assert due is not None
    assert approved_at + timedelta(seconds=0.9 * RETRY_BASE_S) <= due
    assert due <= approved_at + timedelta(seconds=RETRY_BASE_S)
    assert case_by_id(desk, case.id).state == "escalated"
    (failed,) = case_events(desk, case.id, "restrict-failed")
    assert "HTTP 500" in failed.detail["error"] and failed.detail["final"] is False
    assert len(provisioning.bodies) == 1

    # Not again before its time; then the provisioning system is back.
    provisioning.status = 200
    assert desk.workflow.run_due().steps == {}
    assert len(provisioning.bodies) == 1
    clock.now = due + timedelta(seconds=1)
    desk.workflow.run_due()
    step = restrict_step(desk, case.id)
    assert (step.state, step.attempts, step.error) == ("done", 2, None)
    assert case_by_id(desk, case.id).state == "restricted"
    assert len(provisioning.bodies) == 2
    assert provisioning.bodies[0] == provisioning.bodies[1]
