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
from abuse_desk.app import cli
from abuse_desk.app.wiring import Desk
from abuse_desk.core.config import Config
from abuse_desk.core.models import Case, Event, FeeEntry, Report
from abuse_desk.web import auth
from sqlalchemy import func, select

from tests.support import ROOT, LiveDesk, config_env, free_port, make_config, wait_for
from tests.web.web_support import USERS, form_token, signed_in, with_staff
from tests.workflow.workflow_support import (
    START,
    Clock,
    MakeDesk,
    arf,
    case_by_id,
    deliver,
    person,
    the_case,
)

# Thu 2026-12-03 10:00 EST: the deadline of a standard case opened at START.
DEADLINE = START + timedelta(days=9)


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    """A workflow desk with the accounts sam (specialist) and sue (supervisor)."""
    return with_staff(make_desk())


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
    desk.workflow.run_due()
    return case_by_id(desk, case.id)


def escalated(desk: Desk, clock: Clock) -> Any:
    """A case past its deadline: escalated, a fee assessed, a restriction proposed."""
    case = notified(desk)
    clock.now = DEADLINE + timedelta(hours=1)
    desk.workflow.run_due()
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


# ---- 3. production-like settings that keep the sample organisation -------------------------------

OWN_NOTIFY = {"organization": "Example Net", "from_name": "Example Net Abuse Desk",
              "from_address": "abuse@example.net",
              "copyright_guide_url": "https://example.net/abuse/copyright",
              "public_url": "https://abuse.example.net"}


@pytest.mark.parametrize(("sections", "signs"), [
    ({"broker": {"url": "redis://redis.internal:6379/0"}},
     "broker.url is redis://redis.internal:6379/0"),
    ({"database": {"url": "postgresql+psycopg://desk:secret@db.internal/abuse"}},
     "database.url is not SQLite"),
    ({"smtp": {"host": "0.0.0.0"}}, "smtp.host is 0.0.0.0"),
    ({"web": {"host": "192.0.2.8"}}, "web.host is 192.0.2.8"),
])
def test_production_like_settings_with_the_sample_organisation_are_named(
        tmp_path: Path, sections: dict[str, Any], signs: str) -> None:
    from abuse_desk.app.runner import production_warnings

    org, url = production_warnings(make_config(tmp_path, **sections))
    assert signs in org and signs in url
    for key in ("notify.organization ('Integra ISP')",
                "notify.from_name ('Integra ISP Abuse Desk')",
                "notify.from_address ('abuse@integra-isp.example')",
                "notify.copyright_guide_url"):
        assert key in org
    assert "notify.public_url is 'http://127.0.0.1:8025', a loopback address" in url
    assert "set notify.public_url" in url
    assert "secret" not in org + url
    # Each key set to the desk's own: nothing to say about it.
    own = make_config(tmp_path, notify=OWN_NOTIFY, **sections)
    assert production_warnings(own) == []
    partly = make_config(tmp_path, notify={**OWN_NOTIFY, "organization": "Integra ISP",
                                           "public_url": "http://localhost:8025"}, **sections)
    org, url = production_warnings(partly)
    assert "notify.organization" in org and "notify.from_name" not in org
    assert "'http://localhost:8025', a loopback address" in url


def test_a_try_out_desk_is_not_warned(tmp_path: Path) -> None:
    from abuse_desk.app.runner import production_warnings

    assert production_warnings(make_config(tmp_path)) == []  # SQLite, memory://, loopback


@pytest.mark.service
def test_worker_and_scheduler_warn_at_start_with_the_sample_organisation(
        tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """`serve`, `worker` and `scheduler` start with these warnings in their log."""
    config = make_config(tmp_path, broker={"url": redis_url}, pipeline={"examiners": 0})
    with caplog.at_level(logging.WARNING, logger="abuse_desk.app.runner"), \
            LiveDesk(config, ("worker", "scheduler")):
        pass
    said = [r.getMessage() for r in caplog.records if r.name == "abuse_desk.app.runner"]
    assert any("notices still speak for the sample organisation" in m
               and "notify.organization" in m for m in said), said
    assert any("notify.public_url is 'http://127.0.0.1:8025'" in m for m in said), said


# ---- 5. waiting for the broker ---------------------------------------------------------------

def lines(log: Path) -> list[str]:
    return log.read_text(errors="replace").splitlines() if log.exists() else []


def said(log: Path, text: str) -> list[str]:
    return [line for line in lines(log) if text in line]


@pytest.mark.service
@pytest.mark.slow
def test_worker_scheduler_and_smtp_wait_for_their_broker_and_say_so_once(
        tmp_path: Path, redis_server_binary: str) -> None:
    """A worker with its broker down used to log "ready" and then a CRITICAL line every 3 s.
    Now worker and scheduler say once that they wait, start (and say "ready") when the broker
    answers; the listener accepts mail meanwhile."""
    from tests.support import desk_process, message

    redis_port = free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    config = make_config(tmp_path, broker={"url": url},
                         pipeline={"sweep_after_s": 1.0, "sweep_interval_s": 0.5},
                         notify=OWN_NOTIFY)
    subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "db", "upgrade"], cwd=ROOT,
                   env=config_env(config), check=True, capture_output=True)
    logs = {part: tmp_path / f"{part}.log" for part in ("smtp", "worker", "scheduler")}
    redis = None
    with desk_process(config, "smtp", log=logs["smtp"], wait=config.smtp.port), \
            desk_process(config, "worker", log=logs["worker"]), \
            desk_process(config, "scheduler", log=logs["scheduler"]):
        for part in ("worker", "scheduler"):
            wait_for(lambda part=part: said(logs[part], f"waiting for the broker {url}"), 60,
                     f"the {part} to say it waits for {url}")
        wait_for(lambda: said(logs["smtp"], f"waiting for the broker {url}"), 60,
                 "the listener to say the broker does not answer")
        import smtplib

        with smtplib.SMTP("127.0.0.1", config.smtp.port, timeout=30) as client:
            client.sendmail("reporter@example.org", ["abuse@localhost"],
                            message("while the broker is away"))
        time.sleep(3)  # several retries (0.5 s, 1 s, 2 s...) while nothing answers
        for part in ("worker", "scheduler"):
            assert not said(logs[part], f"abuse-desk {part} ready"), lines(logs[part])
        assert "mail is accepted and stored meanwhile" in said(logs["smtp"], "waiting")[0]
        redis = subprocess.Popen(
            [redis_server_binary, "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for part in ("worker", "scheduler"):
                wait_for(lambda part=part: said(logs[part], f"abuse-desk {part} ready"), 60,
                         f"the {part} to be ready once Redis answers")
            wait_for(lambda: said(logs["smtp"], f"the broker {url} answers"), 60,
                     "the listener to say the broker answers")
            import sqlalchemy as sa
            from abuse_desk.core.models import Message

            eng = sa.create_engine(config.database.url)
            try:
                def processed() -> bool:
                    with eng.connect() as conn:
                        return conn.execute(sa.select(Message.state)).scalar() == "processed"

                wait_for(processed, 60, "the message to be processed once the broker is back")
            finally:
                eng.dispose()
        finally:
            redis.terminate()
            redis.wait(10)
        # Lost after start: one warning, not a CRITICAL line per consumer every 3 s.
        wait_for(lambda: said(logs["worker"], "lost the broker"), 60,
                 "the worker to say it lost the broker")
        time.sleep(7)  # dramatiq's consumers retry every 3 s: two rounds each
        assert len(said(logs["worker"], "lost the broker")) == 1, lines(logs["worker"])
        assert not said(logs["worker"], "Restarting consumer")
    for part in ("worker", "scheduler"):
        text = lines(logs[part])
        waiting = said(logs[part], "waiting for the broker")
        assert len(waiting) == 1, text  # said once, not every retry
        assert "starts once it answers" in waiting[0]
        answers = said(logs[part], f"the broker {url} answers")
        ready = said(logs[part], f"abuse-desk {part} ready")
        assert len(answers) == 1 and len(ready) == 1, text
        assert text.index(waiting[0]) < text.index(answers[0]) < text.index(ready[0])
        assert not [line for line in text if "CRITICAL" in line or "level=CRITICAL" in line
                    or "could not reach the broker" in line], text


class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_waiting_for_the_broker_backs_off_reminds_and_says_when_it_answers(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from abuse_desk.app import runner

    fake = FakeTime()
    answers = ["Error 111 connecting. Connection refused."] * 12 + [None]
    monkeypatch.setattr(runner, "broker_problem", lambda url, timeout: answers.pop(0))
    monkeypatch.setattr(runner, "_monotonic", fake.monotonic)
    monkeypatch.setattr(runner.asyncio, "sleep", fake.sleep)
    with caplog.at_level(logging.INFO, logger="abuse_desk.app.runner"):
        assert asyncio.run(runner.wait_for_broker("redis://:hunter2hunter2@mq:6379/0")) is True
    # 0.5 s doubling to at most 15 s: 0.5 1 2 4 8 15 15 15 15 15 15 15 (120.5 s in all)
    assert fake.sleeps == [0.5, 1, 2, 4, 8, 15, 15, 15, 15, 15, 15, 15]
    text = [r.getMessage() for r in caplog.records]
    assert [m[:48] for m in text] == ["waiting for the broker redis://:***@mq:6379/0 (E",
                                      "still waiting for the broker redis://:***@mq:637",
                                      "the broker redis://:***@mq:6379/0 answers (waite"]
    assert "the worker starts once it answers" in text[0]
    assert text[1].endswith("after 60 s: Error 111 connecting. Connection refused.")
    assert text[2] == "the broker redis://:***@mq:6379/0 answers (waited 120 s)"
    assert not [m for m in text if "hunter2" in m]


def test_a_stop_while_waiting_for_the_broker_ends_the_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from abuse_desk.app import runner

    monkeypatch.setattr(runner, "broker_problem", lambda url, timeout: "refused")

    async def stopped_meanwhile() -> bool:
        stopping = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stopping.set)
        return await runner.wait_for_broker("redis://127.0.0.1:1/0", stopping)

    assert asyncio.run(asyncio.wait_for(stopped_meanwhile(), 30)) is False  # 30: a hang guard


def test_a_lost_broker_is_one_warning_per_reminder_not_a_critical_line_every_3_s(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once running, dramatiq's consumers log CRITICAL and a restart line every 3 s each."""
    from abuse_desk.app import runner

    fake = FakeTime()
    monkeypatch.setattr(runner, "_monotonic", fake.monotonic)
    throttle = runner.BrokerErrorThrottle()
    passed = []
    for second in range(0, 200, 3):
        fake.now = 1000.0 + second
        for queue in ("abuse-desk", "abuse-desk.DQ"):
            for level, msg, args in (
                    (logging.CRITICAL, "Consumer encountered a connection error: %s",
                     ("Error 111",)),
                    (logging.INFO, "Restarting consumer in %0.2f seconds.", (3.0,))):
                record = logging.LogRecord(f"dramatiq.worker.ConsumerThread({queue})", level,
                                           __file__, 1, msg, args, None)
                if throttle.filter(record):
                    passed.append((fake.now, record.levelname, record.getMessage()))
    assert [when for when, _level, _msg in passed] == [1000.0, 1060.0, 1120.0, 1180.0]
    assert {level for _when, level, _msg in passed} == {"WARNING"}
    assert passed[0][2].startswith("lost the broker (Error 111); the worker reconnects")
    other = logging.LogRecord("dramatiq.worker.ConsumerThread(abuse-desk)", logging.CRITICAL,
                              __file__, 1, "Consumer encountered an unexpected error.", (), None)
    assert throttle.filter(other) and other.levelname == "CRITICAL"  # a bug still shows


# ---- 6. list commands on a closed pipe ---------------------------------------------------------

LIST_COMMANDS = [
    ["review", "list"], ["cases", "list"], ["messages", "list"], ["customers", "list"],
    ["users", "list"], ["fees", "export", "--month", "2026-11"],
]


@pytest.fixture
def listed_desk(tmp_path: Path) -> Config:
    """A desk with something for each list: an account, a customer, many messages."""
    from abuse_desk.app.wiring import open_desk
    from abuse_desk.classifier.customer_import import import_customers
    from abuse_desk.core.db import upgrade
    from abuse_desk.ingest.store import Envelope, insert_messages, message_row

    from tests.support import NOW, message
    from tests.workflow.workflow_support import CUSTOMERS

    config = make_config(tmp_path)
    desk = open_desk(config, clock=lambda: NOW, sends=False, upgrade_schema=True)
    try:
        upgrade(desk.engine)
        auth.add_user(desk.engine, "sam", "specialist", "correct horse battery", NOW)
        (tmp_path / "customers.csv").write_text(CUSTOMERS)
        import_customers(desk.engine, tmp_path / "customers.csv", clock=desk.clock)
        with desk.engine.begin() as conn:  # about 300 KB of `messages list`: more than a pipe holds
            insert_messages(conn, [message_row(message(f"listed {n} " + "x" * 40), Envelope(
                "reporter@example.org", ["abuse@localhost"], received_at=NOW))
                for n in range(3000)])
    finally:
        desk.close()
    return config


@pytest.mark.parametrize("command", LIST_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_a_list_command_whose_reader_is_gone_exits_quietly(
        listed_desk: Config, command: list[str]) -> None:
    """`review list | head` used to end in a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "abuse_desk.app.cli", *command], cwd=ROOT,
                            env=config_env(listed_desk), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the command writes its first line
    _out, err = proc.communicate(timeout=120)  # a hang guard
    assert err.decode() == ""
    assert proc.returncode == cli.CLOSED_PIPE_STATUS == 141


def test_messages_list_into_head_ends_quietly(listed_desk: Config) -> None:
    """As a shell runs it: `abuse-desk messages list | head -3`, the pipe's reader leaving
    after three lines of 3,001."""
    script = (f"{sys.executable} -m abuse_desk.app.cli messages list | head -3; "
              "echo \"status=${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=config_env(listed_desk),
                          capture_output=True, timeout=120, check=False)
    assert done.stdout.decode().count("\n") == 3
    assert done.stdout.decode().splitlines()[1].split()[:2] == ["1", "received"]
    assert done.stderr.decode() == "status=141\n"


def test_a_list_read_to_the_end_exits_0(listed_desk: Config) -> None:
    done = subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "users", "list"], cwd=ROOT,
                          env=config_env(listed_desk), capture_output=True, timeout=120,
                          check=False)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode().split() == ["sam", "specialist", "active"]
