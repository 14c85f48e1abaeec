"""`abuse-desk serve` as a user runs it: a real process, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import signal
import smtplib
import socket
import time
from pathlib import Path

import sqlalchemy as sa
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Message

from tests.support import desk_process, make_config, message, wait_for


def test_ctrl_c_finishes_the_open_transaction_and_exits_cleanly(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    log = tmp_path / "serve.log"
    port = config.smtp.port
    with desk_process(config, "serve", log=log, wait=port) as proc:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("tester.example.org")
            client.mail("reporter@example.org")
            client.rcpt("abuse@localhost")
            # Ctrl-C arrives while this session is in its transaction ...
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
            # ... the listener no longer takes new connections ...
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0
            # ... but the open transaction is finished and acknowledged.
            code, reply = client.data(message("during shutdown"))
            assert code == 250, reply
        assert proc.wait(30) == 0
    text = log.read_text()
    assert "stopped cleanly" in text
    assert "Traceback" not in text
    engine = sa.create_engine(config.database.url)
    try:
        with engine.connect() as conn:
            state = conn.execute(sa.select(Message.state)).scalar_one()
        # The in-process queue is drained before exit: the worker processed it.
        assert state == "processed"
    finally:
        engine.dispose()


def test_restart_processes_what_the_last_run_left(tmp_path: Path) -> None:
    """Messages stored but not processed when the process died are processed at the next start."""
    from abuse_desk.core.clock import system_clock
    from abuse_desk.ingest.store import Envelope, insert_messages, message_row

    config = make_config(tmp_path)
    log = tmp_path / "serve.log"
    with desk_process(config, "serve", log=log, wait=config.smtp.port):
        pass  # creates the schema
    engine = sa.create_engine(config.database.url)
    with engine.begin() as conn:  # as if accepted just before a crash: never sent to a worker
        # the serve process runs on the system clock: the message arrived "just now" by it
        envelope = Envelope(None, ["abuse@localhost"], received_at=system_clock())
        insert_messages(conn, [message_row(message(f"left {n}"), envelope) for n in range(3)])
    try:
        with desk_process(config, "serve", log=log, wait=config.smtp.port):
            def done() -> bool:
                with engine.connect() as conn:
                    return set(conn.execute(sa.select(Message.state)).scalars()) == {"processed"}

            wait_for(done, 20, "the left-over messages to be processed")
    finally:
        engine.dispose()


def test_the_desk_is_built_once_at_open_and_its_parts_shared(fixed_desk: Desk) -> None:
    """Every part is made when the desk is opened, before any worker thread runs (nothing is
    built on first use, so two threads cannot build a part twice); the parts that need
    another get that one."""
    desk = fixed_desk
    assert desk.pipeline.examination is desk.examination
    assert desk.pipeline.workflow is desk.workflow
    assert desk.review.workflow is desk.workflow and desk.web.workflow is desk.workflow
    assert desk.review.classifier is desk.examination.classifier
    assert desk.review.pipeline is desk.pipeline and desk.web.review is desk.review
    assert desk.workflow.writer.secret  # the notices' key, read (or made) at open
