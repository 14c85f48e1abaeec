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

At start, a ``worker`` or ``scheduler`` on a real broker waits for it (:func:`wait_for_broker`):
it says so once ("waiting for the broker redis://…"), tries again with a bounded backoff,
reminds every ``BROKER_REMINDER_S``, says when the broker answers, and only then starts its
threads and logs "ready". An ``smtp`` listener never waits (mail is stored whatever the broker
does): it says that the broker does not answer and when it does. A process that will send
notices (``worker``, ``scheduler``, ``serve``) with production-like settings that still speak
for the sample organisation warns at start (:func:`production_warnings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import dramatiq
import uvicorn
from dramatiq.brokers.stub import StubBroker
from starlette.applications import Starlette

from ..core.broker import (
    QUEUE,
    broker_problem,
    in_batches,
    is_in_process,
    many_sender,
    safe_url,
)
from ..core.clock import Clock, system_clock
from ..core.config import Config, NotifyConfig
from ..core.db import FileModeError, is_sqlite, private_folders
from ..ingest.smtp import SmtpListener, start_smtp
from ..ingest.store import LINGER_S, Dispatcher, GroupCommitWriter
from ..parsers.registry import PluginError
from ..web.app import create_app, create_metrics_app
from ..workflow.actors import declare_actors
from ..workflow.examiner import ExaminerPool
from ..workflow.scheduler import Scheduler
from .wiring import Desk, open_desk

log = logging.getLogger(__name__)

PARTS = ("smtp", "worker", "scheduler", "web")
SMTP_GRACE_S = 5.0
# Waiting for the broker at start: the first retry after this many seconds, doubling up to
# BROKER_MAX_RETRY_S; a reminder every BROKER_REMINDER_S; each probe gives up after
# BROKER_PROBE_S (so that a stop signal is obeyed promptly).
BROKER_FIRST_RETRY_S = 0.5
BROKER_MAX_RETRY_S = 15.0
BROKER_REMINDER_S = 60.0
BROKER_PROBE_S = 2.0
_monotonic = time.monotonic  # (the tests move it)
# The sample organisation of config.toml, which a production desk must not speak for.
SAMPLE_DOMAIN = "integra-isp.example"


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
    broker_watch: asyncio.Task[bool] | None = None  # smtp: says when the broker answers


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
    is made: ``core.db.private_database``.)"""
    if config.notify.transport != "maildir":
        return
    box = Path(config.notify.maildir)
    try:
        private_folders([box, box / "tmp", box / "new", box / "cur"])
    except FileModeError as exc:
        raise UsageError(str(exc)) from None


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _in_sample_domain(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == SAMPLE_DOMAIN or host.endswith("." + SAMPLE_DOMAIN)


def production_signs(config: Config) -> list[str]:
    """What makes *config* look like a production desk rather than a try-out on one machine."""
    signs = []
    if not is_sqlite(config.database.url):
        signs.append("database.url is not SQLite")
    if not is_in_process(config.broker.url):
        signs.append(f"broker.url is {safe_url(config.broker.url)}")
    for key, host in (("smtp.host", config.smtp.host), ("web.host", config.web.host)):
        if not _is_loopback(host):
            signs.append(f"{key} is {host}")
    return signs


def production_warnings(config: Config) -> list[str]:
    """Warnings for a production-like *config* whose notices would still speak for the sample
    organisation of config.toml, or send customers self-service links to a loopback address;
    each names the keys to set. Empty for a try-out desk (SQLite, memory://, loopback)."""
    signs = production_signs(config)
    if not signs:
        return []
    notify, sample = config.notify, NotifyConfig()
    keep = [f"notify.{key} ({value!r})" for key, value, is_sample in (
        ("organization", notify.organization, notify.organization == sample.organization),
        ("from_name", notify.from_name, notify.from_name == sample.from_name),
        ("from_address", notify.from_address,
         _in_sample_domain(notify.from_address.rpartition("@")[2])),
        ("copyright_guide_url", notify.copyright_guide_url,
         _in_sample_domain(_host_of(notify.copyright_guide_url)))) if is_sample]
    why = "; ".join(signs)
    warnings = []
    if keep:
        warnings.append(
            f"production-like settings ({why}), but notices still speak for the sample "
            f"organisation of config.toml: set {', '.join(keep)} to your own (see the "
            "README, Production: notice delivery)")
    if _is_loopback(_host_of(notify.public_url)):
        warnings.append(
            f"production-like settings ({why}), but notify.public_url is "
            f"{notify.public_url!r}, a loopback address: the self-service links in notices "
            "will not open for customers; set notify.public_url to the address customers "
            "reach the web desk at (e.g. https://abuse.example.net)")
    return warnings


async def wait_for_broker(url: str, stopping: asyncio.Event | None = None,
                          waiting: str = "the worker starts once it answers") -> bool:
    """Wait until the broker at *url* answers: True then, False when *stopping* is set first.
    Says once that it waits (with *waiting*: what happens meanwhile), tries again after
    ``BROKER_FIRST_RETRY_S`` doubling up to ``BROKER_MAX_RETRY_S``, reminds every
    ``BROKER_REMINDER_S``, and says when the broker answers."""

    async def probe() -> str | None:
        return await asyncio.to_thread(broker_problem, url, BROKER_PROBE_S)

    why = await probe()
    if why is None:
        return True
    shown = safe_url(url)
    log.warning("waiting for the broker %s (%s): %s; trying again with a backoff of up to "
                "%.0f s", shown, why, waiting, BROKER_MAX_RETRY_S)
    started = said = _monotonic()
    delay = BROKER_FIRST_RETRY_S
    while True:
        if stopping is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                return False
        why = await probe()
        now = _monotonic()
        if why is None:
            log.info("the broker %s answers (waited %.0f s)", shown, now - started)
            return True
        if now - said >= BROKER_REMINDER_S:
            log.warning("still waiting for the broker %s after %.0f s: %s", shown,
                        now - started, why)
            said = now
        delay = min(delay * 2, BROKER_MAX_RETRY_S)


class BrokerErrorThrottle(logging.Filter):
    """While a worker's broker is away, dramatiq's consumer threads log a CRITICAL "Consumer
    encountered a connection error" and "Restarting consumer in 3.00 seconds" every three
    seconds each. This lets one of them through per ``BROKER_REMINDER_S``, as a WARNING that
    says what goes on, and drops the restart lines."""

    def __init__(self) -> None:
        super().__init__("abuse-desk broker errors")
        self._lock = threading.Lock()
        self._last: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.msg if isinstance(record.msg, str) else ""
        if text.startswith("Restarting consumer in"):
            return False
        if not text.startswith("Consumer encountered a connection error"):
            return True
        with self._lock:
            now = _monotonic()
            if self._last is not None and now - self._last < BROKER_REMINDER_S:
                return False
            self._last = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = ("lost the broker (%s); the worker reconnects every few seconds (said "
                      "again every %.0f s while it lasts)")
        record.args = (*(record.args if isinstance(record.args, tuple) else ()),
                       BROKER_REMINDER_S)
        return True


_THROTTLE = BrokerErrorThrottle()


def throttle_broker_errors(broker: dramatiq.Broker) -> None:
    """Install :class:`BrokerErrorThrottle` on the loggers of *broker*'s consumer threads (one
    per queue and delay queue: ``dramatiq.worker.ConsumerThread(QUEUE)``), one throttle for
    all of them."""
    queues = {*broker.get_declared_queues(), *broker.get_declared_delay_queues()}
    for queue in sorted(queues):
        logger = logging.getLogger(f"dramatiq.worker.ConsumerThread({queue})")
        if _THROTTLE not in logger.filters:
            logger.addFilter(_THROTTLE)


def _serve(app: Starlette, host: str, port: int) -> tuple[_EmbeddedServer, asyncio.Task[None]]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _EmbeddedServer(uvicorn.Config(app, log_config=None, access_log=False,
                                            lifespan="off"))
    return server, asyncio.create_task(server.serve(sockets=[sock]))


async def start(config: Config, parts: tuple[str, ...],
                clock: Clock = system_clock, stopping: asyncio.Event | None = None,
                reuse_port: bool = False, metrics: bool = True) -> Running:
    """Start *parts*. A worker or scheduler on a real broker first waits for it; when
    *stopping* is set meanwhile, returns with nothing but the desk open (:func:`stop` it).
    *reuse_port*: the listener binds with SO_REUSEPORT (one of ``smtp --processes N``);
    *metrics*: serve ``metrics.port`` when there is no web desk (only one of N listeners
    does)."""
    check_parts(config, parts)
    check_files(config)
    try:
        desk = open_desk(config, clock)
    except (FileModeError, PluginError) as exc:
        raise UsageError(str(exc)) from None
    running = Running(desk=desk)
    desk.broker.emit_after("process_boot")
    send_work = many_sender(desk.broker)

    def send(message_ids: list[int]) -> None:  # a worker writes each batch in one transaction
        send_work("process_messages", in_batches(message_ids, config.pipeline.batch_max))

    waits = bool({"worker", "scheduler"} & set(parts)) and not is_in_process(config.broker.url)
    if {"worker", "scheduler"} & set(parts):
        for warning in production_warnings(config):
            log.warning("%s", warning)
    if not waits:
        await _start_workers(running, parts)
        await _start_front(running, parts, send, watch_broker=True, reuse_port=reuse_port,
                           metrics=metrics)
        return running
    # The listener and the web never wait for the broker: they start first.
    await _start_front(running, parts, send, watch_broker=False, reuse_port=reuse_port,
                       metrics=metrics)
    starts = " and ".join(p for p in ("worker", "scheduler") if p in parts)
    if await wait_for_broker(config.broker.url, stopping, f"the {starts} starts once it answers"):
        await _start_workers(running, parts)
    return running


async def _start_workers(running: Running, parts: tuple[str, ...]) -> None:
    """The worker (with its examiners) and the scheduler, as far as *parts* has them."""
    desk, config = running.desk, running.desk.config
    if "worker" in parts:
        if config.pipeline.examiners > 0:
            running.examiners = ExaminerPool(config, desk.clock, config.pipeline.examiners)
            # The worker's messages are examined in its examiner processes from now on.
            desk.pipeline.examiner = running.examiners.start()
        declare_actors(desk.broker, desk.pipeline, desk.workflow, config.pipeline.max_retries)
        throttle_broker_errors(desk.broker)
        running.worker = dramatiq.Worker(
            desk.broker, worker_threads=config.pipeline.worker_threads, worker_timeout=250)
        running.worker.start()
    if "scheduler" in parts:
        running.scheduler = Scheduler(desk.engine, desk.clock, config.pipeline, desk.workflow)
        if isinstance(desk.broker, StubBroker):
            # The in-process queue died with the last process: re-send all that is left now.
            await asyncio.to_thread(running.scheduler.sweep, 0.0)
        running.scheduler.start()


async def _start_front(running: Running, parts: tuple[str, ...],
                       send: Callable[[list[int]], None], watch_broker: bool,
                       reuse_port: bool = False, metrics: bool = True) -> None:
    """The SMTP listener and the web desk (or /metrics alone), as far as *parts* has them;
    *send* hands the ids of one group commit to the broker in one round trip; *watch_broker*:
    the listener says when a real broker does not answer, and when it does."""
    desk, config = running.desk, running.desk.config
    if "smtp" in parts:
        running.dispatcher = Dispatcher(send_many=send, fill=config.pipeline.batch_max,
                                        linger_s=LINGER_S).start()
        running.writer = GroupCommitWriter(
            desk.engine, running.dispatcher.dispatch,
            batch_max=config.smtp.commit_batch_max).start()
        running.smtp = await start_smtp(config.smtp, running.writer.store, desk.clock,
                                        reuse_port=reuse_port)
        log.info("SMTP listening on %s:%d", config.smtp.host, config.smtp.port)
        if watch_broker and not is_in_process(config.broker.url):
            # Mail never waits for the broker: what arrives meanwhile is stored and sent on
            # (the dispatcher, then the sweeper).
            running.broker_watch = asyncio.create_task(wait_for_broker(
                config.broker.url, None, "mail is accepted and stored meanwhile, and sent to "
                "the workers once it answers"))
    if "web" in parts:
        running.web, running.web_task = _serve(create_app(desk.web), config.web.host,
                                               config.web.port)
        log.info("web on http://%s:%d/", config.web.host, config.web.port)
    elif config.metrics.port and metrics:
        # The same /metrics as the web desk's, with the same rule (metrics.allow, metrics.token),
        # on metrics.host (loopback unless configured).
        running.metrics, running.metrics_task = _serve(
            create_metrics_app(desk.web), config.metrics.host, config.metrics.port)
        log.info("metrics on http://%s:%d/metrics", config.metrics.host, config.metrics.port)


async def stop(running: Running) -> None:
    if running.broker_watch is not None:
        running.broker_watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.broker_watch
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
                              clock: Clock = system_clock, reuse_port: bool = False,
                              metrics: bool = True) -> None:
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
    running = await start(config, parts, clock, stopping, reuse_port=reuse_port,
                          metrics=metrics)
    if not stopping.is_set():  # (set while it waited for the broker: nothing was started)
        log.info("abuse-desk %s ready", "+".join(parts))
        await stopping.wait()
    await stop(running)
    log.info("stopped cleanly")


def run(config: Config, parts: tuple[str, ...], clock: Clock = system_clock,
        reuse_port: bool = False, metrics: bool = True) -> None:
    asyncio.run(run_until_signalled(config, parts, clock, reuse_port, metrics))
