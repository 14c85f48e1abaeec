"""``abuse-desk smtp --processes N`` (app/listeners.py): N listener processes on one port."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from abuse_desk.app import cli
from abuse_desk.core.models import Message

from tests.support import ROOT, config_env, make_config, message, wait_for, wait_port

CONNECTIONS = 24


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def sockets(pid: int) -> int:
    fds = f"/proc/{pid}/fd"
    count = 0
    for fd in os.listdir(fds):
        try:
            count += os.readlink(f"{fds}/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


@pytest.mark.service
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreading: Linux")
def test_two_listener_processes_share_the_port_and_stop_cleanly(
        tmp_path: Path, redis_url: str) -> None:
    config = make_config(tmp_path, broker={"url": redis_url})
    port = config.smtp.port
    log = tmp_path / "desk.log"
    subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "db", "upgrade"], cwd=ROOT,
                   env=config_env(config), check=True, capture_output=True)
    with log.open("ab") as fh:
        parent = subprocess.Popen(
            [sys.executable, "-m", "abuse_desk.app.cli", "smtp", "--processes", "2"], cwd=ROOT,
            env=config_env(config), stdout=fh, stderr=subprocess.STDOUT)
    sessions: list[smtplib.SMTP] = []
    try:
        wait_for(lambda: len(children(parent.pid)) == 2, 30, "two listener processes")
        wait_port(port, 60, proc=parent)
        pids = children(parent.pid)
        # Both bound: each child's listening socket shows once both say so.
        wait_for(lambda: log.read_text().count("abuse-desk smtp ready") == 2, 60,
                 "both listeners ready")
        before = {pid: sockets(pid) for pid in pids}
        for _ in range(CONNECTIONS):
            session = smtplib.SMTP("127.0.0.1", port, timeout=30)
            session.ehlo()  # answered: the connection is held by one of the children
            sessions.append(session)
        held = {pid: sockets(pid) - before[pid] for pid in pids}
        # The kernel spreads the connections over both (24 to one alone: 1 in 2**23).
        assert all(n > 0 for n in held.values()), held
        for n, session in enumerate(sessions):
            session.sendmail("reporter@example.org", ["abuse@localhost"],
                             message(f"report {n}"))
            session.quit()
        sessions.clear()

        # A child that dies is started again, and takes mail.
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: len(children(parent.pid)) == 2 and pids[0] not in children(
            parent.pid), 30, "the killed listener started again")
        wait_for(lambda: log.read_text().count("abuse-desk smtp ready") == 3, 60,
                 "the new listener ready")
        for n in range(CONNECTIONS, CONNECTIONS + 8):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as session:
                session.sendmail("reporter@example.org", ["abuse@localhost"],
                                 message(f"report {n}"))
        now = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0, log.read_text()[-3000:]
        # The parent waited for its children: none is left.
        assert not [pid for pid in now if Path(f"/proc/{pid}").exists()]
    finally:
        for session in sessions:
            session.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    text = log.read_text()
    assert "was killed by SIGKILL; starting it again" in text
    # The child that was not killed, the one started again, and the parent.
    assert text.count("stopped cleanly") == 3, text[-3000:]
    engine = sa.create_engine(config.database.url)
    try:
        with engine.connect() as conn:
            subjects = conn.execute(sa.select(Message.raw)).scalars().all()
    finally:
        engine.dispose()
    assert sorted(subjects) == sorted(message(f"report {n}")
                                      for n in range(CONNECTIONS + 8))


def test_processes_refused_with_the_in_process_broker(
        env_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["smtp", "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "memory://" in err and "redis://" in err


def test_processes_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["smtp", "--processes", "0"])
    assert "1 or more" in capsys.readouterr().err
