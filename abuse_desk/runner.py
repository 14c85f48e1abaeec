"""Starting and stopping the desk's parts, together (`serve`) or one per process.

Parts: ``smtp`` (listener + store writer + broker dispatcher), ``worker`` (dramatiq worker threads
and their examiner processes), ``scheduler`` (sweeper, later timeline steps) and ``web``.
`abuse-desk serve` runs all four in one process on the in-process broker; `abuse-desk
smtp|worker|scheduler|web` runs one, against a real broker. Messages are examined (parsed,
DKIM-checked, classified) only in the examiner processes (``workflow/examiner.py``), never in
the threads that answer SMTP or HTTP. SIGINT or SIGTERM stops the process cleanly and promptly:
the listener stops accepting, open transactions get a grace period, every message handed to the
writer is committed, the worker goes on examining for ``pipeline.stop_grace_s`` and then kills
its examiners (what they held stays received for the next start); a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import uvicorn
from dramatiq.brokers.stub import StubBroker
from starlette.applications import Starlette

from abuse_desk.app import Desk, PluginError, open_desk
from abuse_desk.broker import QUEUE, is_in_process
from abuse_desk.clock import Clock, system_clock
from abuse_desk.config import Config
from abuse_desk.db import FileModeError, ensure_schema, is_sqlite, private_folders
from ingest.smtp import SmtpListener, start_smtp
from ingest.store import Dispatcher, GroupCommitWriter
from web.app import create_app, create_metrics_app
from workflow.actors import declare_actors
from workflow.examiner import ExaminerPool
from workflow.scheduler import Scheduler

log = logging.getLogger(__name__)

PARTS = ("smtp", "worker", "scheduler", "web")
SMTP_GRACE_S = 5.0


class UsageError(Exception):
    """The command cannot run with this configuration; the message says what to change."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals are ours, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


@dataclass
class Running:
    """What a started process holds, in the order it is stopped."""

    desk: Desk
    smtp: SmtpListener | None = None
    writer: GroupCommitWriter | None = None
    dispatcher: Dispatcher | None = None
    scheduler: Scheduler | None = None
    worker: dramatiq.Worker | None = None
    examiners: ExaminerPool | None = None
    web: _EmbeddedServer | None = None
    web_task: asyncio.Task[None] | None = None
    metrics: _EmbeddedServer | None = None
    metrics_task: asyncio.Task[None] | None = None


def check_parts(config: Config, parts: tuple[str, ...]) -> None:
    if is_in_process(config.broker.url) and set(parts) != set(PARTS) and set(parts) != {"web"}:
        raise UsageError(
            "broker.url is memory:// (the in-process broker), which only works inside "
            "`abuse-desk serve`. To run the parts as separate processes set broker.url to "
            "redis://HOST:6379/0 or amqp://USER:PASS@HOST:5672/ (e.g. "
            "ABUSE_DESK_BROKER__URL=redis://127.0.0.1:6379/0).")


def check_files(config: Config) -> None:
    """The Maildir outbox holds notices with customers' and reporters' data: an existing one
    open to other users is closed (a warning says so) or, when it belongs to someone else, the
    process refuses to start. (The SQLite database and its folder are checked where the engine
    is made: ``abuse_desk.db.private_database``.)"""
    if config.notify.transport != "maildir":
        return
    box = Path(config.notify.maildir)
    try:
        private_folders([box, box / "tmp", box / "new", box / "cur"])
    except FileModeError as exc:
        raise UsageError(str(exc)) from None


def _serve(app: Starlette, host: str, port: int) -> tuple[_EmbeddedServer, asyncio.Task[None]]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _EmbeddedServer(uvicorn.Config(app, log_config=None, access_log=False,
                                            lifespan="off"))
    return server, asyncio.create_task(server.serve(sockets=[sock]))


async def start(config: Config, parts: tuple[str, ...],
                clock: Clock = system_clock) -> Running:
    check_parts(config, parts)
    check_files(config)
    try:
        desk = open_desk(config, clock)
    except FileModeError as exc:
        raise UsageError(str(exc)) from None
    running = Running(desk=desk)
    ensure_schema(desk.engine, auto_upgrade=is_sqlite(config.database.url))
    actors = declare_actors(desk)
    desk.broker.emit_after("process_boot")

    def send(message_id: int) -> None:
        actors.process_message.send(message_id)

    if "worker" in parts:
        try:
            _ = desk.parsers  # the configured plugins load here, before any examiner starts
        except PluginError as exc:
            raise UsageError(str(exc)) from None
        if config.pipeline.examiners > 0:
            running.examiners = ExaminerPool(config, desk.clock, config.pipeline.examiners)
            desk.examiner = running.examiners.start()
        # The examiners hold their own classifier; `serve`'s web builds one when first used.
        desk.warm(examine=running.examiners is None)
        running.worker = dramatiq.Worker(
            desk.broker, worker_threads=config.pipeline.worker_threads, worker_timeout=250)
        running.worker.start()
    if "scheduler" in parts:
        running.scheduler = Scheduler(desk, send)
        if isinstance(desk.broker, StubBroker):
            # The in-process queue died with the last process: re-send all that is left now.
            await asyncio.to_thread(running.scheduler.sweep, 0.0)
        running.scheduler.start()
    if "smtp" in parts:
        running.dispatcher = Dispatcher(send).start()
        running.writer = GroupCommitWriter(
            desk.engine, running.dispatcher.dispatch,
            batch_max=config.smtp.commit_batch_max).start()
        running.smtp = await start_smtp(config.smtp, running.writer.submit, desk.clock)
        log.info("SMTP listening on %s:%d", config.smtp.host, config.smtp.port)
    if "web" in parts:
        running.web, running.web_task = _serve(create_app(desk), config.web.host,
                                               config.web.port)
        log.info("web on http://%s:%d/", config.web.host, config.web.port)
    elif config.metrics.port:
        # The same /metrics as the web desk's, with the same rule (metrics.allow, metrics.token),
        # on metrics.host (loopback unless configured).
        running.metrics, running.metrics_task = _serve(
            create_metrics_app(desk), config.metrics.host, config.metrics.port)
        log.info("metrics on http://%s:%d/metrics", config.metrics.host, config.metrics.port)
    return running


async def stop(running: Running) -> None:
    if running.smtp is not None:
        await running.smtp.drain(SMTP_GRACE_S)
    if running.writer is not None:
        await asyncio.to_thread(running.writer.stop)
    if running.dispatcher is not None:
        await asyncio.to_thread(running.dispatcher.stop)
    if running.scheduler is not None:
        await asyncio.to_thread(running.scheduler.stop)
    if running.worker is not None:
        grace_s = running.desk.config.pipeline.stop_grace_s
        if running.examiners is not None:
            # Examinations go on for the grace period, then are killed (the messages stay
            # received); what is still queued then fails at once instead of being examined.
            running.examiners.begin_stop(grace_s)
        broker = running.desk.broker
        if isinstance(broker, StubBroker) and QUEUE in broker.queues:
            # Finish what is queued in memory; anything left is re-sent at the next start.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(broker.join, QUEUE, timeout=int((grace_s + 5) * 1000),
                                        fail_fast=False)
        await asyncio.to_thread(running.worker.stop)
        if running.examiners is not None:
            await asyncio.to_thread(running.examiners.close)
    for server, task in ((running.web, running.web_task),
                         (running.metrics, running.metrics_task)):
        if server is not None and task is not None:
            server.should_exit = True
            await task
    running.desk.close()


async def run_until_signalled(config: Config, parts: tuple[str, ...],
                              clock: Clock = system_clock) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(130)
        log.info("%s: stopping (again to force)", signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    running = await start(config, parts, clock)
    log.info("abuse-desk %s ready", "+".join(parts))
    await stopping.wait()
    await stop(running)
    log.info("stopped cleanly")


def run(config: Config, parts: tuple[str, ...], clock: Clock = system_clock) -> None:
    asyncio.run(run_until_signalled(config, parts, clock))
