"""Cases and their timeline, driven through the pipeline and `timeline run` with a clock the
tests move: notices, reminders, deadlines over holidays, escalation, fees, repeat claims,
replies, acknowledgements, idempotent steps and header injection."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from abuse_desk.app import cli
from abuse_desk.app.wiring import Desk
from abuse_desk.casework import review
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Event, FeeEntry, Notice
from abuse_desk.workflow import cases
from sqlalchemy import select, update

from .workflow_support import (
    START,
    TRUSTED_FBL,
    Clock,
    arf,
    authenticated,
    case_by_id,
    deliver,
    message_row_of,
    notices_of,
    outbox,
    person,
    reports_of,
    steps_of,
    text_of,
    the_case,
    workflow_desk,
)

# Thu 2026-12-03 10:00 EST: five business days after Tue 2026-11-24 10:00, skipping
# Thanksgiving (Thu 11-26), the desk's closure the day after (Fri 11-27) and the weekend.
DEADLINE = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)

PHISHING = ("Phishing site at 45.137.21.7",
            "Your server 45.137.21.7 hosts a phishing page imitating a bank login page that "
            "steals credentials: http://45.137.21.7/bank/login")


def events(desk: Desk, case_id: int) -> list[tuple[str, str, str]]:
    with desk.engine.connect() as conn:
        return [(e.actor_kind, e.actor, e.action) for e in conn.execute(
            select(Event).where(Event.subject_type == "case", Event.subject_id == case_id)
            .order_by(Event.id))]


# ---- opening a case ---------------------------------------------------------------------------

def test_a_spam_report_opens_a_standard_case_with_notice_reminder_and_deadline(
        desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    assert (case.category, case.type, case.state) == ("spam", "spam", "open")
    assert case.timeline_class == "standard"
    assert case.reference == f"C-2026-{case.id:06d}"
    assert case.claims == 1
    assert case.deadline_at.replace(tzinfo=UTC) == DEADLINE
    plan = [(s.kind, s.due_at.replace(tzinfo=UTC), s.state) for s in steps_of(desk, case.id)]
    assert plan == [("notice", START, "pending"),
                    ("reminder", DEADLINE - timedelta(hours=24), "pending"),
                    ("deadline", DEADLINE, "pending")]
    assert events(desk, case.id) == [("system", "pipeline", "opened")]


def test_the_first_notice_goes_to_the_customer_with_the_case_tag(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    summary = desk.workflow.run_due()
    assert summary.steps == {"done": 1} and summary.notices == {"sent": 1}
    (mail,) = outbox(desk)
    assert mail["To"] == "noc@alpha.example"
    assert mail["Subject"].startswith(f"[Abuse Case {case.reference}] ")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].startswith(f"<{case.reference}.notice.")
    assert mail["Message-ID"].endswith(f"@{desk.config.smtp.hostname}>")
    body = text_of(mail)
    assert "Thursday, 3 December 2026, 10:00 EST" in body
    assert "45.137.21.7" in body
    assert "/self-service/" in body
    # RFC 6590: the complainant's address is not shown, its domain is.
    assert "victim.person" not in mail.as_string()
    assert "@mailbox.example" in body
    assert case_by_id(desk, case.id).state == "notified"
    (notice,) = notices_of(desk, case.id)
    assert (notice.kind, notice.state, notice.attempts) == ("notice", "sent", 1)


def test_a_customer_in_its_own_time_zone_reads_the_deadline_in_it(desk: Desk) -> None:
    with desk.engine.begin() as conn:
        from abuse_desk.core.models import Customer

        conn.execute(update(Customer).where(Customer.external_id == "C-1").values(
            time_zone="Europe/Berlin"))
    deliver(desk, arf("45.137.21.7"))
    desk.workflow.run_due()
    (mail,) = outbox(desk)
    assert "Thursday, 3 December 2026, 16:00 CET" in text_of(mail)


def test_phishing_is_prompt_with_a_24_hour_deadline(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, person(*PHISHING, "ph1")))
    assert (case.type, case.timeline_class) == ("phishing", "prompt")
    assert case.deadline_at.replace(tzinfo=UTC) == START + timedelta(hours=24)
    reminder = [s for s in steps_of(desk, case.id) if s.kind == "reminder"]
    assert reminder[0].due_at.replace(tzinfo=UTC) == START + timedelta(hours=18)


def test_prompt_types_come_from_config(tmp_path: Path, clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"prompt_types": ["spam"]})
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    assert case.timeline_class == "prompt"


def test_a_report_without_customer_waits_in_review_then_joins_a_case(desk: Desk) -> None:
    message_id = deliver(desk, arf("198.18.7.7"))  # nobody's address
    (report,) = reports_of(desk, message_id)
    assert report.case_id is None and report.review_reason
    desk.review.decide(review.ReviewDecision(report.id, "alice", customer="C-2"))
    (report,) = reports_of(desk, message_id)
    assert report.case_id is not None
    case = case_by_id(desk, report.case_id)
    assert events(desk, case.id) == [("specialist", "alice", "opened")]


# ---- related conduct ---------------------------------------------------------------------------

def test_related_reports_join_one_case_and_count_as_claims(desk: Desk, clock: Clock) -> None:
    first = the_case(desk, deliver(desk, arf("45.137.21.8", 1)))
    clock.now += timedelta(hours=1)
    second = the_case(desk, deliver(desk, arf("45.137.21.9", 2)))
    assert second.id == first.id and second.claims == 2
    other = the_case(desk, deliver(desk, person(*PHISHING, "ph2")))  # 45.137.21.7
    assert other.id != first.id  # another type, another case ...
    clock.now += timedelta(hours=1)
    # ... but the same IP as a phishing report joins the phishing case.
    again = the_case(desk, deliver(desk, person(
        "Scam", "Fraud: fake shop taking payments at 45.137.21.7", "fr1")))
    assert again.id == other.id


def test_a_prompt_claim_on_a_standard_case_shortens_its_deadline(desk: Desk,
                                                                  clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    clock.now += timedelta(hours=1)
    joined = the_case(desk, deliver(desk, person(*PHISHING, "ph3")))  # the same IP
    assert joined.id == case.id
    assert joined.timeline_class == "prompt"
    assert joined.deadline_at.replace(tzinfo=UTC) == clock.now + timedelta(hours=24)
    pending = [(s.kind, s.due_at.replace(tzinfo=UTC)) for s in steps_of(desk, case.id)
               if s.state == "pending"]
    assert ("deadline", clock.now + timedelta(hours=24)) in pending
    assert ("deadline", DEADLINE) not in pending


def test_an_update_notice_collects_new_claims_on_a_notified_case(tmp_path: Path,
                                                                 clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"repeat_claims": 10})
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    desk.workflow.run_due()
    clock.now += timedelta(minutes=5)
    deliver(desk, arf("45.137.21.7", 2))
    clock.now += timedelta(minutes=5)
    deliver(desk, arf("45.137.21.7", 3))
    updates = [s for s in steps_of(desk, case.id) if s.kind == "update"]
    assert len(updates) == 1  # one pending update collects both
    clock.now += timedelta(minutes=60)
    desk.workflow.run_due()
    kinds = [n.kind for n in notices_of(desk, case.id)]
    assert kinds == ["notice", "update"]


def test_one_mail_with_many_reports_counts_once_for_repeats(desk: Desk) -> None:
    body = "\n".join(f"Phishing page stealing bank logins at http://45.137.21.{n}/login"
                     for n in (7, 8, 9))
    message_id = deliver(desk, person("Phishing pages", body, "many"))
    case_ids = {r.case_id for r in reports_of(desk, message_id)}
    assert len(case_ids) == 1
    assert case_by_id(desk, case_ids.pop()).state == "open"


# ---- the clock moves on ------------------------------------------------------------------------

def test_reminder_then_deadline_escalates_with_fees_and_a_proposed_restriction(
        desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    clock.now = DEADLINE - timedelta(hours=24)
    desk.workflow.run_due()
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice", "reminder"]
    clock.now = DEADLINE - timedelta(seconds=1)
    assert desk.workflow.run_due().steps == {}
    clock.now = DEADLINE
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert case.state == "escalated"
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice", "reminder", "escalation"]
    escalation = outbox(desk)[-1]
    assert "USD 100.00" in text_of(escalation)
    proposed = [s for s in steps_of(desk, case.id) if s.kind == "restrict"]
    assert [s.state for s in proposed] == ["proposed"]
    # Proposed actions wait for a specialist, however often the timeline runs.
    clock.now += timedelta(days=3)
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "escalated"


def test_timeline_run_now_from_the_command_line(desk: Desk, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    _use(desk, monkeypatch)
    assert cli.main(["timeline", "run", "--now", "2026-11-24T15:00:00Z", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notices"] == {"sent": 1}
    assert cli.main(["timeline", "run", "--now", DEADLINE.isoformat()]) == 0
    assert "steps" in capsys.readouterr().out
    assert case_by_id(desk, case.id).state == "escalated"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["timeline", "run", "--now", "yesterday"])
    assert exit_.value.code == 2
    assert "not ISO 8601" in capsys.readouterr().err


def test_extended_deadline_moves_the_steps(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    later = DEADLINE + timedelta(days=7)
    with desk.engine.begin() as conn:
        cases.extend_deadline(conn, desk.config.workflow, case.id, later, clock.now,
                              cases.Actor("specialist", "bob"), "customer asked for time")
    clock.now = DEADLINE
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "notified"
    clock.now = later
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "escalated"


def test_resolved_case_skips_its_steps_and_a_new_claim_reopens_it(desk: Desk,
                                                                   clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    desk.workflow.run_due()
    with desk.engine.begin() as conn:
        cases.resolve(conn, desk.config.workflow, case.id, clock.now,
                      cases.Actor("specialist", "alice"), "customer removed the mailer")
    desk.workflow.run_due()
    assert [n.kind for n in notices_of(desk, case.id)] == ["notice", "resolved"]
    clock.now = DEADLINE
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "resolved"
    deliver(desk, arf("45.137.21.7", 2))
    case = case_by_id(desk, case.id)
    assert (case.state, case.claims) == ("open", 2)
    assert ("system", "pipeline", "reopened") in events(desk, case.id)
    assert case.deadline_at.replace(tzinfo=UTC) > DEADLINE


# ---- actions and fees --------------------------------------------------------------------------

def test_approved_restriction_runs_the_hook_and_restores_on_resolve(
        tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "hook.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\ncat >> {log}\necho ok\n")
    hook.chmod(0o755)
    desk = workflow_desk(tmp_path, clock, workflow={"action_hook_command": [str(hook)]})
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    clock.now = DEADLINE
    desk.workflow.run_due()
    assert not log.exists()  # proposed, not approved
    with desk.engine.begin() as conn:
        cases.approve_action(conn, case.id, clock.now, cases.Actor("supervisor", "sam"))
    desk.workflow.run_due()
    assert log.read_text().startswith(f"restrict C-1 {case.reference}\n")
    assert case_by_id(desk, case.id).state == "restricted"
    assert [n.kind for n in notices_of(desk, case.id)][-1] == "action"
    with desk.engine.begin() as conn:  # a supervisor's resolve lifts it (tests/workflow/
        cases.resolve(conn, desk.config.workflow, case.id, clock.now,  # test_claim_trust.py:
                      cases.Actor("supervisor", "sue"), "fixed")  # a specialist's does not)
    desk.workflow.run_due()
    assert f"restore C-1 {case.reference}" in log.read_text()
    assert case_by_id(desk, case.id).state == "resolved"


def test_a_failing_hook_is_retried_with_backoff(tmp_path: Path, clock: Clock) -> None:
    desk = workflow_desk(tmp_path, clock, workflow={"action_hook_command": ["false"],
                                                    "auto_actions": ["spam"]})
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    clock.now = DEADLINE
    desk.workflow.run_due()
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "restrict"]
    assert (step.state, step.attempts) == ("pending", 1)
    assert "exited 1" in step.error
    assert step.due_at.replace(tzinfo=UTC) > clock.now
    assert case_by_id(desk, case.id).state == "escalated"


def test_waived_fees_stay_in_the_ledger_and_the_export(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    clock.now = DEADLINE
    desk.workflow.run_due()
    out = io.StringIO()
    assert desk.cases.export_fees(datetime(2026, 12, 1, tzinfo=UTC),
                       datetime(2027, 1, 1, tzinfo=UTC), out) == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["case"], row["customer_id"], row["amount"], row["currency"]) == (
        case.reference, "C-1", "100.00", "USD")
    with desk.engine.begin() as conn:
        cases.waive_case_fees(conn, case.id, clock.now, cases.Actor("supervisor", "sam"),
                              "first offence, customer cooperated")
    out = io.StringIO()
    assert desk.cases.export_fees(datetime(2026, 12, 1, tzinfo=UTC),
                       datetime(2027, 1, 1, tzinfo=UTC), out) == 0
    out = io.StringIO()
    desk.cases.export_fees(datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
                out, include_waived=True)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["state"], row["waived_by"]) == ("waived", "sam")
    assert desk.cases.case_rows()[0]["fee_total"] == "0.00"


# ---- idempotency -------------------------------------------------------------------------------

def test_a_step_delivered_twice_sends_one_notice(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    assert desk.workflow.run_step(step.id) == "done"
    assert desk.workflow.run_step(step.id) == "skipped"
    (notice,) = notices_of(desk, case.id)
    assert desk.workflow.deliver_notice(notice.id) == "sent"
    assert desk.workflow.deliver_notice(notice.id) == "skipped"
    assert len(outbox(desk)) == 1


def test_concurrent_deliveries_of_one_step_send_one_notice(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    results: list[str] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(desk.workflow.run_step(step.id))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["done", "skipped", "skipped", "skipped"]
    assert len(notices_of(desk, case.id)) == 1


def test_a_notice_whose_sender_died_is_sent_again_once(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    desk.workflow.run_step(step.id)
    (notice,) = notices_of(desk, case.id)
    with desk.engine.begin() as conn:  # as if a worker claimed it and died
        conn.execute(update(Notice).where(Notice.id == notice.id).values(
            state="sending", lease_until=clock.now + timedelta(minutes=5)))
    assert desk.workflow.claim_due_notices(clock.now) == []
    clock.now += timedelta(minutes=6)
    assert desk.workflow.claim_due_notices(clock.now) == [notice.id]
    assert desk.workflow.deliver_notice(notice.id) == "sent"
    assert len(outbox(desk)) == 1


def test_a_broken_template_fails_its_step_visibly_once(tmp_path: Path, clock: Clock) -> None:
    templates = tmp_path / "templates" / "notice"
    templates.mkdir(parents=True)
    (templates / "spam.txt.j2").write_text("Subject: x\n\n{{ no_such_value }}\n")
    desk = workflow_desk(tmp_path, clock, notify={"templates_dir": str(tmp_path / "templates")})
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    assert desk.workflow.run_due().steps == {"failed": 1}
    (step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    assert step.state == "failed" and "no_such_value" in step.error
    assert ("system", "timeline", "step-failed") in events(desk, case.id)
    assert desk.workflow.run_due().steps == {}  # not retried in a loop
    assert notices_of(desk, case.id) == []


def test_a_customer_without_address_shows_the_unsent_notice(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("46.29.160.5")))  # C-3 has no e-mail
    desk.workflow.run_due()
    (notice,) = notices_of(desk, case.id)
    assert notice.state == "failed"
    assert "no valid e-mail address" in notice.error
    assert outbox(desk) == []


# ---- replies and bounces -----------------------------------------------------------------------

def _notice_mail(desk: Desk) -> tuple[str, str]:
    mail = outbox(desk)[0]
    return mail["Message-ID"], mail["Subject"]


def test_a_customer_reply_threads_into_its_case(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    msg_id, subject = _notice_mail(desk)
    reply = (f"From: NOC <noc@alpha.example>\r\nTo: abuse@localhost\r\nSubject: Re: {subject}"
             f"\r\nIn-Reply-To: {msg_id}\r\nReferences: {msg_id}\r\n"
             "Message-ID: <r1@alpha.example>\r\n\r\nWe removed the spam script from "
             "45.137.21.7, sorry.\r\n").encode()
    message_id = deliver(desk, reply)
    assert reports_of(desk, message_id) == []  # never a new complaint
    row = message_row_of(desk, message_id)
    assert (row.disposition, row.case_id, row.state) == ("reply", case.id, "processed")
    assert case_by_id(desk, case.id).state == "customer-responded"
    assert ("customer", "noc@alpha.example", "customer-responded") in events(desk, case.id)
    assert desk.cases.case_detail(case.reference)["replies"][0]["message_id"] == message_id


@pytest.mark.parametrize("tag", ["[Abuse Case {ref}]", "[{ref}]"])
def test_a_new_mail_with_only_the_case_tag_threads_too(desk: Desk, tag: str) -> None:
    # From the customer's own address, authenticated (tests/workflow/test_mail_rules.py: from
    # anyone else the tag proves nothing).
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    subject = "about " + tag.format(ref=case.reference)  # as the notice asks them to write
    reply = (f"{authenticated('alpha.example')}From: noc@alpha.example\r\nSubject: {subject}"
             "\r\nMessage-ID: <r2@alpha.example>\r\n\r\nfixed\r\n").encode()
    message_id = deliver(desk, reply)
    assert message_row_of(desk, message_id).case_id == case.id
    assert reports_of(desk, message_id) == []


def test_a_reply_to_an_unknown_case_goes_to_review(desk: Desk) -> None:
    reply = (b"From: noc@alpha.example\r\nSubject: Re: [Abuse Case C-2026-999999] x\r\n"
             b"Message-ID: <r3@alpha.example>\r\n\r\nfixed\r\n")
    message_id = deliver(desk, reply)
    row = message_row_of(desk, message_id)
    assert row.state == "review"
    assert "no case matches" in row.error


def test_a_bounce_of_our_notice_marks_it_on_the_case(desk: Desk) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    msg_id, subject = _notice_mail(desk)
    verp = outbox(desk)[0]["Return-Path"]  # the notice's envelope sender: abuse+b-TOKEN@
    bounce = (
        f"From: MAILER-DAEMON@alpha.example\r\nTo: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@alpha.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        "boundary=\"d\"\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nnot delivered\r\n"
        "--d\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; noc@alpha.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        "--d\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {msg_id}\r\nSubject: {subject}\r\n--d--\r\n").encode()
    message_id = deliver(desk, bounce, mail_from=None)
    assert message_row_of(desk, message_id).case_id == case.id
    (notice,) = notices_of(desk, case.id)
    assert notice.state == "bounced"
    assert "5.1.1" in notice.error
    assert ("system", "timeline", "notice-bounced") in events(desk, case.id)


# ---- acknowledgements --------------------------------------------------------------------------

def test_a_person_gets_one_acknowledgement_with_the_case_reference(desk: Desk) -> None:
    message_id = deliver(desk, person(*PHISHING, "ack1"))
    case = the_case(desk, message_id)
    desk.workflow.run_due()
    acks = [m for m in outbox(desk) if m["To"] == "jane@people.example"]
    assert len(acks) == 1
    ack = acks[0]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<ack1@people.example>"
    assert f"[Abuse Case {case.reference}]" in ack["Subject"]
    assert "noc@alpha.example" not in ack.as_string()  # the customer is not named


@pytest.mark.parametrize("headers, mail_from", [
    ("Auto-Submitted: auto-generated\r\n", "jane@people.example"),
    ("Precedence: bulk\r\n", "jane@people.example"),
    ("List-Id: <abuse.lists.example>\r\n", "jane@people.example"),
    ("", None),  # a null sender
])
def test_automated_senders_get_no_acknowledgement(desk: Desk, headers: str,
                                                  mail_from: str | None) -> None:
    message_id = deliver(desk, person(*PHISHING, "auto", extra_headers=headers),
                         mail_from=mail_from)
    the_case(desk, message_id)
    desk.workflow.run_due()
    assert [m["To"] for m in outbox(desk)] == ["noc@alpha.example"]


def test_feedback_loops_get_no_acknowledgement(desk: Desk) -> None:
    deliver(desk, arf("45.137.21.7"))
    desk.workflow.run_due()
    assert [m["To"] for m in outbox(desk)] == ["noc@alpha.example"]


def test_acknowledgements_are_rate_limited_per_sender(desk: Desk, clock: Clock) -> None:
    for n in range(5):
        clock.now += timedelta(minutes=1)
        deliver(desk, person(f"Phishing at 45.137.21.{n + 1}",
                             f"phishing page stealing bank logins at http://45.137.21.{n + 1}/",
                             f"rl{n}"))
    desk.workflow.run_due()
    acks = [m for m in outbox(desk) if m["To"] == "jane@people.example"]
    assert len(acks) == desk.config.notify.ack_limit_per_sender == 1  # one per hour


# ---- hostile values ----------------------------------------------------------------------------

def test_crlf_from_reporters_never_reaches_a_header(desk: Desk) -> None:
    # RFC 2047 words that decode to CRLF, a Message-ID carrying a header, a Reply-To with one.
    subject = "=?utf-8?q?Phishing_at_45.137.21.7=0D=0ABcc:_victim@evil.example?="
    raw = (f"From: Jane <jane@people.example>\r\nTo: abuse@localhost\r\nSubject: {subject}\r\n"
           "Message-ID: <x@people.example>\r\n\tBcc: victim2@evil.example\r\n\r\n"
           "Phishing page stealing bank logins at http://45.137.21.7/login\r\n").encode()
    message_id = deliver(desk, raw)
    the_case(desk, message_id)
    desk.workflow.run_due()
    for mail in outbox(desk):
        names = [k.lower() for k in mail]
        assert "bcc" not in names
        raw_bytes = mail.as_bytes()
        assert b"\nBcc:" not in raw_bytes and b"\rBcc:" not in raw_bytes
        assert "victim2@evil.example" not in str(mail.get("In-Reply-To", ""))


# ---- commands ----------------------------------------------------------------------------------

def _use(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `abuse-desk` commands use this desk's database and outbox."""
    monkeypatch.setenv("ABUSE_DESK_CONFIG", "/dev/null")
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", desk.config.database.url)
    monkeypatch.setenv("ABUSE_DESK_NOTIFY__MAILDIR", json.dumps(desk.config.notify.maildir))
    for key in ("time_zone", "holiday_country", "closure_dates"):
        monkeypatch.setenv(f"ABUSE_DESK_WORKFLOW__{key.upper()}",
                           json.dumps(getattr(desk.config.workflow, key)))


def test_cases_commands(desk: Desk, clock: Clock, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    desk.workflow.run_due()
    _use(desk, monkeypatch)
    from abuse_desk.web import auth  # --by names a desk account (issue 18)

    auth.add_user(desk.engine, "bob", "specialist", "b" * 12, clock())
    auth.add_user(desk.engine, "sam", "specialist", "s" * 12, clock())
    capsys.readouterr()
    assert cli.main(["cases", "list", "--json"], clock=clock) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {**row, "id": case.reference, "customer_id": "C-1", "category": "spam",
                   "type": "spam", "state": "notified", "report_count": 1,
                   "fee_total": "0.00", "deadline_at": "2026-12-03T15:00:00Z"}
    assert cli.main(["cases", "list", "--state", "resolved", "--json"], clock=clock) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["cases", "show", case.reference, "--json"], clock=clock) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in shown["steps"]] == ["notice", "reminder", "deadline"]
    assert [s["state"] for s in shown["steps"]] == ["done", "pending", "pending"]
    assert [n["kind"] for n in shown["notices"]] == ["notice"]
    assert shown["events"][0]["action"] == "opened"
    assert cli.main(["cases", "escalate", case.reference, "--by", "bob",
                     "--reason", "customer unreachable"], clock=clock) == 0
    assert cli.main(["cases", "waive-fee", case.reference, "--by", "sam",
                     "--reason", "goodwill"], clock=clock) == 0
    assert cli.main(["cases", "resolve", str(case.id), "--by", "bob", "--reason", "done"],
                    clock=clock) == 0
    capsys.readouterr()
    assert cli.main(["cases", "resolve", case.reference, "--by", "bob", "--reason", "x"],
                    clock=clock) == 2
    assert "already resolved" in capsys.readouterr().err
    assert cli.main(["cases", "show", "C-2026-999999"], clock=clock) == 2
    assert "cases list" in capsys.readouterr().err
    with desk.engine.connect() as conn:  # billed in the month the escalation assessed it
        assessed = as_utc(conn.execute(select(FeeEntry.assessed_at)).scalar_one())
    month = f"{assessed:%Y-%m}"
    assert cli.main(["fees", "export", "--month", month, "--include-waived"], clock=clock) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["state"], r["waived_by"]) for r in exported] == [("waived", "sam")]
    with pytest.raises(SystemExit):
        cli.main(["fees", "export", "--month", "2026-13"], clock=clock)
    assert "not a month as YYYY-MM" in capsys.readouterr().err
    with desk.engine.connect() as conn:
        actors = {(e.actor_kind, e.actor, e.action) for e in conn.execute(select(Event))}
    assert {("specialist", "bob", "escalated"), ("specialist", "sam", "fee-waived"),
            ("specialist", "bob", "resolved")} <= actors


def test_cases_show_prints_the_timeline(desk: Desk, clock: Clock,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    _use(desk, monkeypatch)
    capsys.readouterr()
    assert cli.main(["cases", "show", case.reference], clock=clock) == 0
    out = capsys.readouterr().out
    assert "2026-12-03T15:00:00Z  deadline   pending" in out
    assert "2026-12-02T15:00:00Z  reminder   pending" in out



def test_the_pipeline_hands_the_broker_only_work_that_is_due_now(tmp_path: Path,
                                                                 clock: Clock) -> None:
    # Jane is a reporter the desk trusts (by configuration), so her claim counts as the third.
    jane = {"name": "Jane", "senders": ["jane@people.example"], "require_dkim": False}
    desk = workflow_desk(tmp_path, clock,
                         classifier={"trusted_reporters": [TRUSTED_FBL, jane]})
    sent: list[tuple[str, int]] = []
    desk.workflow.send = lambda actor, ident: sent.append((actor, ident))
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))
    (notice_step,) = [s for s in steps_of(desk, case.id) if s.kind == "notice"]
    assert sent == [("run_step", notice_step.id)]  # the first notice, at once

    sent.clear()
    assert the_case(desk, deliver(desk, arf("45.137.21.7", 2))).id == case.id
    assert sent == []  # a claim on an open case: its notice is still to go, nothing is due

    # A third claim before the customer had its time is the same occasion: nothing escalates;
    # only the person's acknowledgement is due now.
    message_id = deliver(desk, person("Spam from 45.137.21.7", "45.137.21.7 spammed me.", "p1"))
    assert the_case(desk, message_id).id == case.id
    (ack,) = [n for n in notices_of(desk, case.id) if n.kind == "ack"]
    assert [s for s in steps_of(desk, case.id) if s.kind == "escalation"] == []
    assert sorted(sent) == [("deliver_notice", ack.id)]

    # A specialist's escalation is due at once.
    sent.clear()
    with desk.engine.begin() as conn:
        assert cases.escalate(conn, desk.config.workflow, case.id, clock.now,
                              cases.Actor("specialist", "sam"), "confirmed spam run")
    desk.workflow.kick([case.id])
    (escalation,) = [s for s in steps_of(desk, case.id) if s.kind == "escalation"]
    assert ("run_step", escalation.id) in sent
