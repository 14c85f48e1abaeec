"""What a claim may cause, by who stands behind it, and who lifts a restriction.

Anyone can write a From line: only claims of authenticated reporters (trusted by configuration,
or a DKIM signature aligned with the From domain) count toward repeat escalation, fees and
restrictions. Unauthenticated complaints open a case and notify the customer; a specialist
decides whether to escalate on them. A restriction is lifted by a supervisor (or by
configuration), never by a specialist's resolve or a customer's "fixed"."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app import cli
from abuse_desk.app.wiring import Desk
from abuse_desk.casework import actions as case_actions
from abuse_desk.core.db import as_utc
from abuse_desk.core.models import Event, FeeEntry, Report
from abuse_desk.web import auth
from abuse_desk.workflow import cases
from sqlalchemy import select

from tests.classifier.test_trust import Dns, Key, make_key, signed, txt

from .workflow_support import (
    Clock,
    MakeDesk,
    arf,
    case_by_id,
    deliver,
    notices_of,
    outbox,
    person,
    reports_of,
    steps_of,
    text_of,
    the_case,
    workflow_desk,
)

SPAM = ("Spam from 45.137.21.7", "Your customer at 45.137.21.7 spammed me again today.")
FORGED = ["jane@people.example", "john@mailer.example", "ceo@big-bank.example"]
DKIM_DOMAIN = "mailbox-two.example"
DKIM_FBL = f"feedback@fbl.{DKIM_DOMAIN}"


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    # Restrictions would be applied at once: the worst case for a forged complaint.
    return make_desk(workflow={"auto_actions": ["all"]})


@pytest.fixture(scope="module")
def key() -> Key:
    return make_key(1916)


def events(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(Event).where(
            Event.subject_type == "case", Event.subject_id == case_id).order_by(Event.id)))


def fees(desk: Desk, case_id: int) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(FeeEntry).where(FeeEntry.case_id == case_id)
                                 .order_by(FeeEntry.id)))


def kinds(desk: Desk, case_id: int) -> list[str]:
    return [s.kind for s in steps_of(desk, case_id)]


def forged_complaints(desk: Desk, clock: Clock, count: int = 3) -> Any:
    """*count* free-text spam complaints about 45.137.21.7 from different unsigned senders,
    a minute apart; returns their case."""
    case_ids = set()
    for n, sender in enumerate(FORGED[:count]):
        message_id = deliver(desk, person(*SPAM, f"forged{n}", sender=sender, authentic=False))
        (report,) = reports_of(desk, message_id)
        assert not report.decision.get("authenticated"), report.decision
        case_ids.add(the_case(desk, message_id).id)
        clock.now += timedelta(minutes=1)
    assert len(case_ids) == 1
    return case_by_id(desk, case_ids.pop())


def dkim_arf(key: Key, n: int, ip: str = "45.137.21.7") -> bytes:
    """A feedback-loop report from a sender the desk does not list, signed by its own domain."""
    return signed(arf(ip, n, sender=DKIM_FBL), key, DKIM_DOMAIN)


def use_dns(desk: Desk, key: Key) -> None:
    desk.examination.classifier.classifier._dns = Dns({txt("s2026", DKIM_DOMAIN): key.dns_record})


# ---- the probe's finding: forged complaints escalate and charge ---------------------------------

def test_three_forged_free_text_complaints_do_not_escalate_or_charge(desk: Desk,
                                                                      clock: Clock) -> None:
    case = forged_complaints(desk, clock)
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.claims, case.proposed_action) == ("notified", 3, None)
    assert fees(desk, case.id) == []
    assert not {"escalation", "restrict", "terminate"} & set(kinds(desk, case.id))
    assert [n.kind for n in notices_of(desk, case.id) if n.kind != "ack"] == ["notice"]
    customer_mail = [m for m in outbox(desk) if m["To"] == "noc@alpha.example"]
    assert len(customer_mail) == 1 and "escalated" not in str(customer_mail[0]["Subject"])
    # The case says why it waits for a person.
    detail = desk.cases.case_detail(case.reference)
    assert (detail["claims_authenticated"], detail["claims_unauthenticated"]) == (0, 3)
    assert detail["escalation_note"] == ("3 unauthenticated claims: a specialist decides "
                                         "whether to escalate")
    assert [r["authenticated"] for r in detail["reports"]] == [False] * 3


def test_three_authenticated_feedback_loop_reports_escalate_at_the_deadline(
        desk: Desk, clock: Clock, key: Key) -> None:
    use_dns(desk, key)
    first = deliver(desk, dkim_arf(key, 1))
    (report,) = reports_of(desk, first)
    # Not a listed reporter: authenticated by its aligned DKIM signature alone.
    assert (report.trusted, report.decision["authenticated"]) == (False, True)
    assert report.decision["authentication"]["name"] == "auth:dkim-aligned"
    for n in (2, 3):
        clock.now += timedelta(hours=1)
        deliver(desk, dkim_arf(key, n))
    desk.workflow.run_due()
    case = the_case(desk, first)
    # Within hours of the notice: one occasion, the customer has its time.
    assert (case.state, fees(desk, case.id)) == ("notified", [])
    clock.now = as_utc(case.deadline_at)  # type: ignore[assignment]
    desk.workflow.run_due()  # no answer by the deadline: escalated, every complaint charged
    case = the_case(desk, first)
    assert [f.amount_cents for f in fees(desk, case.id)] == [10_000] * 3
    (restrict,) = [s for s in steps_of(desk, case.id) if s.kind == "restrict"]
    assert (restrict.state, case.state) == ("done", "restricted")  # auto_actions = ["all"]
    assert "escalation" in [n.kind for n in notices_of(desk, case.id)]


def test_a_signature_of_another_domain_does_not_authenticate(desk: Desk, clock: Clock,
                                                             key: Key) -> None:
    use_dns(desk, key)
    raw = signed(arf("45.137.21.7", 1, sender="fbl@elsewhere.example"), key, DKIM_DOMAIN)
    (report,) = reports_of(desk, deliver(desk, raw))
    assert report.decision["authenticated"] is False


def test_the_deadline_charges_only_authenticated_complaints(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7", 1)))  # the trusted test FBL
    clock.now += timedelta(hours=1)
    deliver(desk, arf("45.137.21.7", 2))
    clock.now += timedelta(hours=1)
    deliver(desk, person(*SPAM, "forged", sender=FORGED[0], authentic=False))
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    assert (case.state, case.claims) == ("notified", 3)
    assert desk.cases.case_detail(case.reference)["escalation_note"] == (
        "1 unauthenticated claim: a specialist decides whether to escalate")
    clock.now = as_utc(case.deadline_at)  # type: ignore[assignment]
    desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"  # auto_actions = ["all"]
    # Only the authenticated complaints are charged by the timeline's escalation.
    charged = {f.report_id for f in fees(desk, case.id)}
    with desk.engine.connect() as conn:
        formats = {r.id: r.format for r in conn.execute(select(Report).where(
            Report.case_id == case.id))}
    assert sorted(formats[r] for r in charged) == ["arf"] * 2


def test_a_specialist_escalates_on_unauthenticated_claims_and_charges_them(
        desk: Desk, clock: Clock) -> None:
    case = forged_complaints(desk, clock)
    said = case_actions.apply(desk.workflow, case.reference, case_actions.Request(
        "escalate", "three complaints, the customer confirmed the spam"),
        cases.Actor("specialist", "sam"))
    assert said == f"{case.reference} escalated"
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    assert len(fees(desk, case.id)) == 3
    # A later forged claim on the escalated case is recorded but not charged.
    deliver(desk, person(*SPAM, "forged-late", sender="someone@else.example",
                         authentic=False))
    assert (case_by_id(desk, case.id).claims, len(fees(desk, case.id))) == (4, 3)


def test_a_deadline_passed_on_forged_claims_escalates_without_fee_or_restriction(
        desk: Desk, clock: Clock) -> None:
    case = forged_complaints(desk, clock)
    desk.workflow.run_due()
    clock.now = as_utc(case.deadline_at) + timedelta(minutes=1)  # type: ignore[operator]
    desk.workflow.run_due()
    case = case_by_id(desk, case.id)
    # The customer did not answer: the case escalates and the customer is told ...
    assert (case.state, case.proposed_action) == ("escalated", None)
    escalation = [m for m in outbox(desk) if ".escalation." in m["Message-ID"]]
    assert len(escalation) == 1
    assert "ADMINISTRATION FEE" not in text_of(escalation[0])
    # ... but nothing is charged or restricted on forged claims until a person confirms.
    assert fees(desk, case.id) == []
    assert not {"restrict", "terminate"} & set(kinds(desk, case.id))
    assert "a specialist decides" in desk.cases.case_detail(case.reference)["escalation_note"]
    case_actions.apply(desk.workflow, case.reference, case_actions.Request(
        "escalate", "checked: the spam is real"), cases.Actor("specialist", "sam"))
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    assert len(fees(desk, case.id)) == 3
    assert ("escalation-confirmed", "sam") in [(e.action, e.actor)
                                               for e in events(desk, case.id)]
    assert desk.cases.case_detail(case.reference)["escalation_note"] is None
    with pytest.raises(cases.CaseError, match="only open"):  # confirmed once
        case_actions.apply(desk.workflow, case.reference, case_actions.Request("escalate", "again"),
                           cases.Actor("specialist", "sam"))


# ---- who lifts a restriction -----------------------------------------------------------------

def restricted(tmp_path: Path, clock: Clock, **workflow: Any) -> tuple[Desk, Any, Path]:
    """A desk whose provisioning hook logs each action, and a case restricted after its
    deadline passed (by a supervisor's approval, or by *workflow* auto_actions)."""
    log = tmp_path / "hook.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho ok\n")
    hook.chmod(0o755)
    desk = workflow_desk(tmp_path, clock, workflow={"action_hook_command": [str(hook)],
                                                    **workflow})
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    clock.now = as_utc(case.deadline_at)  # type: ignore[assignment]
    desk.workflow.run_due()
    if case_by_id(desk, case.id).state == "escalated":  # not restricted by auto_actions
        with desk.engine.begin() as conn:
            cases.approve_action(conn, case.id, clock.now, cases.Actor("supervisor", "sue"))
        desk.workflow.run_due()
    assert case_by_id(desk, case.id).state == "restricted"
    return desk, case, log


def restores(log: Path) -> int:
    return sum(line.startswith("restore ") for line in log.read_text().splitlines())


def test_a_specialist_resolving_a_restricted_case_does_not_lift_the_restriction(
        tmp_path: Path, clock: Clock) -> None:
    desk, case, log = restricted(tmp_path, clock)
    with desk.engine.begin() as conn:
        outcome = cases.resolve(conn, desk.config.workflow, case.id, clock.now,
                                cases.Actor("specialist", "sam"), "customer cleaned up")
    desk.workflow.run_due()
    assert restores(log) == 0
    assert case_by_id(desk, case.id).state == "restricted"
    assert outcome == "restore-proposed"
    (restore,) = [s for s in steps_of(desk, case.id) if s.kind == "restore"]
    assert restore.state == "proposed" and restore.detail["proposed_by"] == "sam"
    # A specialist cannot approve it either, whoever calls.
    with desk.engine.begin() as conn, pytest.raises(cases.CaseError, match="supervisor"):
        cases.approve_action(conn, case.id, clock.now, cases.Actor("specialist", "sam"),
                             "restore")
    # The supervisor's approval lifts it, and the specialist's resolution then holds.
    with desk.engine.begin() as conn:
        cases.approve_action(conn, case.id, clock.now, cases.Actor("supervisor", "sue"))
    desk.workflow.run_due()
    assert restores(log) == 1
    case = case_by_id(desk, case.id)
    assert case.state == "resolved"
    (restored,) = [e for e in events(desk, case.id) if e.action == "restored"]
    assert restored.detail["approved_by"] == "sue"
    assert [n.kind for n in notices_of(desk, case.id)][-2:] == ["action", "resolved"]


def test_auto_actions_lift_a_restriction_on_a_specialists_resolve(tmp_path: Path,
                                                                  clock: Clock) -> None:
    desk, case, log = restricted(tmp_path, clock, auto_actions=["spam"])
    with desk.engine.begin() as conn:
        assert cases.resolve(conn, desk.config.workflow, case.id, clock.now,
                             cases.Actor("specialist", "sam"), "fixed") == "resolved"
    desk.workflow.run_due()
    assert restores(log) == 1
    (restored,) = [e for e in events(desk, case.id) if e.action == "restored"]
    assert restored.detail["approved_by"] == cases.AUTO_APPROVER


def _use(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """`abuse-desk` commands on this desk's database and outbox."""
    monkeypatch.setenv("ABUSE_DESK_CONFIG", "/dev/null")
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", desk.config.database.url)
    monkeypatch.setenv("ABUSE_DESK_NOTIFY__MAILDIR", json.dumps(desk.config.notify.maildir))


def test_the_command_line_goes_through_the_lift_rule(
        tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    desk, case, log = restricted(tmp_path, clock)
    auth.add_user(desk.engine, "sam", "specialist", "x" * 12, clock())
    auth.add_user(desk.engine, "sue", "supervisor", "y" * 12, clock())
    _use(desk, monkeypatch)
    capsys.readouterr()
    assert cli.main(["cases", "resolve", case.reference, "--by", "sam", "--reason", "fixed"],
                    clock=clock) == 0
    desk.workflow.run_due()
    assert restores(log) == 0 and case_by_id(desk, case.id).state == "restricted"
    assert "restore proposed" in capsys.readouterr().out
    for by, why in (("sam", "only a supervisor lifts a restriction"),  # a specialist
                    ("nobody-in-particular", "is not an account of the desk")):  # issue 18
        assert cli.main(["cases", "approve", case.reference, "--action", "restore",
                         "--by", by], clock=clock) == 2
        assert why in capsys.readouterr().err
    desk.workflow.run_due()
    assert restores(log) == 0 and case_by_id(desk, case.id).state == "restricted"
    assert cli.main(["cases", "approve", case.reference, "--by", "sue"], clock=clock) == 0
    desk.workflow.run_due()
    assert restores(log) == 1 and case_by_id(desk, case.id).state == "resolved"


def test_a_customer_cannot_resolve_an_escalated_case_through_the_rule(desk: Desk,
                                                                     clock: Clock) -> None:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    with desk.engine.begin() as conn:
        cases.escalate(conn, desk.config.workflow, case.id, clock.now,
                       cases.Actor("specialist", "sam"), "repeat offender")
        with pytest.raises(cases.CaseError, match="the abuse team decides"):
            cases.resolve(conn, desk.config.workflow, case.id, clock.now,
                          cases.Actor("customer", "self-service"), "fixed")
