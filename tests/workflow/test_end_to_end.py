"""From an SMTP DATA to the customer's notice in the outbox, through real processes: `abuse-desk
serve` on the embedded default, and `smtp` + `worker` + `scheduler` on PostgreSQL and Redis."""

from __future__ import annotations

import email
import email.policy
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from abuse_desk.classifier.customer_import import import_customers
from abuse_desk.core.clock import system_clock
from abuse_desk.core.config import Config
from abuse_desk.core.models import Case, Notice

from tests.support import ROOT, config_env, desk_process, make_config, wait_for

from .workflow_support import AUTHSERV_ID, CUSTOMERS, arf, person

pytestmark = pytest.mark.slow


def send(port: int, raw: bytes, mail_from: str = "fbl@mailbox.example") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(mail_from, ["abuse@localhost"], raw)


def outbox(config: Config) -> list[Any]:
    new = Path(config.notify.maildir) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(new.glob("*.eml"))] if new.is_dir() else []


def prepare(config: Config, tmp_path: Path, log: Path) -> sa.Engine:
    with log.open("ab") as fh:
        subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "db", "upgrade"], cwd=ROOT,
                       env=config_env(config), stdout=fh, stderr=subprocess.STDOUT, check=True)
    engine = sa.create_engine(config.database.url)
    csv = tmp_path / "customers.csv"
    csv.write_text(CUSTOMERS)
    import_customers(engine, csv, clock=system_clock)  # the processes' clock
    return engine


def run_through(config: Config, engine: sa.Engine, log: Path, parts: int = 1) -> None:
    # Every process ready first (a worker starts its examiners: slow on a loaded machine);
    # what follows is then timed from a running desk.
    wait_for(lambda: log.read_text().count(" ready\n") >= parts, 180,
             f"{parts} desk process(es) ready")
    port = config.smtp.port
    send(port, arf("45.137.21.7"))
    send(port, person("Phishing at 45.137.21.9",
                      "A phishing page stealing bank logins at http://45.137.21.9/login", "e2e"),
         mail_from="jane@people.example")

    def mails() -> list[Any] | None:
        got = outbox(config)
        with engine.connect() as conn:  # the file is written before the notice is marked sent
            waiting = conn.execute(sa.select(sa.func.count()).select_from(Notice)
                                   .where(Notice.state != "sent")).scalar()
        return got if len(got) >= 3 and not waiting else None

    got = wait_for(mails, 60, "two notices and one acknowledgement in the outbox, sent")
    with engine.connect() as conn:
        refs = dict(conn.execute(sa.select(Case.type, Case.reference)).all())
        sent = conn.execute(sa.select(Notice.kind, Notice.to_addr, Notice.state)
                            .order_by(Notice.id)).all()
    assert set(refs) == {"spam", "phishing"}
    assert sorted((k, t, s) for k, t, s in sent) == [
        ("ack", "jane@people.example", "sent"), ("notice", "noc@alpha.example", "sent"),
        ("notice", "noc@alpha.example", "sent")]
    subjects = sorted(m["Subject"] for m in got)
    assert any(s.startswith(f"[Abuse Case {refs['spam']}]") for s in subjects)
    assert any(s.startswith(f"[Abuse Case {refs['phishing']}]") for s in subjects)
    assert len(got) == 3  # nothing sent twice


def test_smtp_to_notice_embedded(tmp_path: Path) -> None:
    config = make_config(tmp_path, classifier={"authserv_id": AUTHSERV_ID})  # jane's is ok
    log = tmp_path / "desk.log"
    engine = prepare(config, tmp_path, log)
    try:
        with desk_process(config, "serve", log=log, wait=config.smtp.port):
            run_through(config, engine, log)
    finally:
        engine.dispose()


@pytest.mark.service
def test_smtp_to_notice_on_postgres_and_redis(tmp_path: Path, postgres_url: str,
                                              redis_url: str) -> None:
    config = make_config(tmp_path, database={"url": postgres_url}, broker={"url": redis_url},
                         classifier={"authserv_id": AUTHSERV_ID})
    log = tmp_path / "desk.log"
    engine = prepare(config, tmp_path, log)
    try:
        with desk_process(config, "smtp", log=log, wait=config.smtp.port), \
                desk_process(config, "worker", log=log), \
                desk_process(config, "worker", log=log), \
                desk_process(config, "scheduler", log=log):
            run_through(config, engine, log, parts=4)
    finally:
        engine.dispose()
