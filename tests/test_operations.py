"""No dead ends in operations (issue 18): who may act from the command line, what approving an
action says, the start-up warnings of a production-like desk that keeps the sample
organisation, waiting for the broker, list commands on a closed pipe.

(The outbox file names are tested in tests/workflow/test_delivery.py, `import DIR` in
tests/ingest/test_importer.py.)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from abuse_desk import cli
from abuse_desk.app import Desk
from abuse_desk.config import Config
from abuse_desk.models import Case, Event, FeeEntry, Report
from tests.support import ROOT, LiveDesk, config_env, free_port, make_config, wait_for
from tests.web.web_support import USERS, form_token, signed_in, web_desk
from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    person,
    the_case,
)
from web import auth
from workflow import timeline

# Thu 2026-12-03 10:00 EST: the deadline of a standard case opened at START.
DEADLINE = START + timedelta(days=9)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> Desk:
    """A workflow desk with the accounts sam (specialist) and sue (supervisor)."""
    return web_desk(tmp_path, clock)


def use(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """`abuse-desk` commands in this process on *desk*'s database and outbox."""
    monkeypatch.setenv("ABUSE_DESK_CONFIG", os.devnull)
    monkeypatch.setenv("ABUSE_DESK_DATABASE__URL", desk.config.database.url)
    monkeypatch.setenv("ABUSE_DESK_NOTIFY__MAILDIR", json.dumps(desk.config.notify.maildir))
    for key in ("time_zone", "holiday_country", "closure_dates", "action_hook_command"):
        monkeypatch.setenv(f"ABUSE_DESK_WORKFLOW__{key.upper()}",
                           json.dumps(getattr(desk.config.workflow, key)))


def notified(desk: Desk) -> Any:
    case = the_case(desk, deliver(desk, arf("45.137.21.7")))
    timeline.run_due(desk)
    return case_by_id(desk, case.id)


def escalated(desk: Desk, clock: Clock) -> Any:
    """A case past its deadline: escalated, a fee assessed, a restriction proposed."""
    case = notified(desk)
    clock.now = DEADLINE + timedelta(hours=1)
    timeline.run_due(desk)
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    return case


def audit(desk: Desk) -> list[tuple[str, str, str]]:
    with desk.engine.connect() as conn:
        return [(e.actor_kind, e.actor, e.action)
                for e in conn.execute(select(Event).order_by(Event.id))]


def snapshot(desk: Desk) -> Any:
    """What an action could change: the events, the cases' states, the fees."""
    with desk.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(Event)).scalar_one(),
                sorted(conn.execute(select(Case.id, Case.state, Case.deadline_at)).all()),
                sorted(conn.execute(select(FeeEntry.id, FeeEntry.state)).all()))


# ---- 1. --by names a known, enabled account ---------------------------------------------------

CASE_ACTIONS = [
    ["resolve", "--reason", "fixed"],
    ["escalate", "--reason", "unreachable"],
    ["approve", "--reason", "repeat"],
    ["extend", "--business-days", "2", "--reason", "asked for time"],
    ["waive-fee", "--reason", "goodwill"],
]


@pytest.mark.parametrize("action", CASE_ACTIONS, ids=lambda a: a[0])
@pytest.mark.parametrize(("by", "why"), [
    ("nobody-such", "is not an account of the desk"),
    ("system", "is the desk's own identity"),
    ("", "say who acts"),
])
def test_cases_commands_refuse_a_name_that_is_no_account(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], action: list[str], by: str, why: str) -> None:
    """`cases resolve … --by nobody-such` used to be done, the audit trail saying
    "specialist:nobody-such"."""
    case = escalated(desk, clock) if action[0] in ("approve", "waive-fee") else notified(desk)
    use(desk, monkeypatch)
    before = snapshot(desk)
    capsys.readouterr()
    code = cli.main(["cases", action[0], case.reference, *action[1:], "--by", by], clock=clock)
    err = capsys.readouterr().err
    assert code == 2, err
    assert why in err
    assert "abuse-desk users list" in err  # how to find the accounts
    assert snapshot(desk) == before
    assert by == "" or not [a for a in audit(desk) if a[1] == by]


def test_a_disabled_account_cannot_act_and_is_told_how_to_enable_it(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    case = notified(desk)
    auth.set_disabled(desk.engine, "sam", True, clock())
    use(desk, monkeypatch)
    before = snapshot(desk)
    capsys.readouterr()
    assert cli.main(["cases", "resolve", case.reference, "--by", "sam", "--reason", "x"],
                    clock=clock) == 2
    err = capsys.readouterr().err
    assert "'sam' is disabled" in err and "abuse-desk users enable sam" in err
    assert snapshot(desk) == before


def test_an_account_acts_with_its_role_under_its_own_name(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    case = escalated(desk, clock)
    use(desk, monkeypatch)
    # Account names are lower case; --by SUE names the account sue.
    assert cli.main(["cases", "approve", case.reference, "--by", "SUE", "--reason", "repeat"],
                    clock=clock) == 0
    assert ("supervisor", "sue", "action-approved") in audit(desk)
    assert cli.main(["cases", "resolve", case.reference, "--by", "sam", "--reason", "fixed"],
                    clock=clock) == 0
    assert ("specialist", "sam", "resolved") in audit(desk)
    people = {(kind, name) for kind, name, _action in audit(desk)
              if kind in ("specialist", "supervisor")}
    assert people == {(role, name) for name, role in USERS.items()}


def review_item(desk: Desk) -> int:
    """A complaint about an address no customer holds: in the review queue."""
    message_id = deliver(desk, person("Spam from 203.0.113.9",
                                      "Your server 203.0.113.9 sent me spam.", "rev-1"))
    with desk.engine.connect() as conn:
        report = conn.execute(select(Report).where(Report.message_id == message_id)).one()
    assert report.case_id is None and report.review_reason
    return int(report.id)


def test_review_decide_refuses_a_name_that_is_no_account(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    report_id = review_item(desk)
    use(desk, monkeypatch)
    before = snapshot(desk)
    for by, why in (("nobody-such", "is not an account of the desk"),
                    ("system", "is the desk's own identity")):
        capsys.readouterr()
        assert cli.main(["review", "decide", str(report_id), "--not-abuse", "--by", by],
                        clock=clock) == 2
        err = capsys.readouterr().err
        assert why in err and "abuse-desk users list" in err
    assert snapshot(desk) == before
    with desk.engine.connect() as conn:
        assert conn.execute(select(Report.reviewed_by).where(
            Report.id == report_id)).scalar_one() is None
    assert cli.main(["review", "decide", str(report_id), "--not-abuse", "--by", "Sam"],
                    clock=clock) == 0
    with desk.engine.connect() as conn:
        assert conn.execute(select(Report.reviewed_by).where(
            Report.id == report_id)).scalar_one() == "sam"


# ---- 2. what approving an action says -----------------------------------------------------------

def test_approving_without_a_provisioning_hook_says_it_is_only_recorded(
        desk: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The approve dialog said "It goes to the provisioning system at once" with no hook set."""
    case = escalated(desk, clock)
    assert not desk.config.workflow.action_hook_url
    assert not desk.config.workflow.action_hook_command
    sue = signed_in(desk, "sue")
    page = sue.get(f"/cases/{case.reference}").text
    assert "at once" not in page
    assert ("No provisioning hook is configured: it is only recorded on the case; carry it out "
            "on the customer's service yourself.") in page
    use(desk, monkeypatch)
    capsys.readouterr()
    assert cli.main(["cases", "approve", case.reference, "--by", "sue"], clock=clock) == 0
    out = capsys.readouterr().out
    assert "restrict approved; recorded on the case only: no provisioning hook is configured" \
        in out
    assert "goes to the provisioning system" not in out


def test_approving_with_a_provisioning_hook_says_where_it_goes(
        tmp_path: Path, clock: Clock) -> None:
    from tests.workflow.workflow_support import workflow_desk

    desk = workflow_desk(tmp_path, clock, workflow={"action_hook_command": ["/bin/true"]})
    auth.add_user(desk.engine, "sue", "supervisor", "correct horse battery staple", clock())
    case = escalated(desk, clock)
    sue = signed_in(desk, "sue")
    page = sue.get(f"/cases/{case.reference}").text
    assert "It goes to the provisioning system (the configured hook) when the timeline runs " \
           "it." in page
    assert "No provisioning hook" not in page
    answer = sue.post(f"/cases/{case.reference}/approve",
                      data={"csrf": form_token(sue, f"/cases/{case.reference}"), "approve": "",
                            "reason": "repeat"})
    assert answer.status_code == 303
    shown = sue.get(answer.headers["location"]).text
    assert "it goes to the provisioning system (action_hook_command) when the timeline runs " \
           "its step" in shown
