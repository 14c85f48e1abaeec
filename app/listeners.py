"""``abuse-desk smtp --processes N``: N listener processes on one host:port, so that a host's
every core takes mail.

Each child is an ordinary ``abuse-desk smtp`` (its own store writer, group commit and broker
dispatcher: a message is committed and fsynced before its 250, our own failure answers 451) that
binds the port with SO_REUSEPORT; the kernel spreads new connections over them. This process
only supervises: it starts the children, restarts one that dies (logged, with a backoff while
it keeps dying), and on SIGTERM or SIGINT passes one SIGTERM to each child, which drains and
stops as a single listener does, and waits for them (a second signal passes it on: the children
exit at once). A child that refuses to start (its configuration, a port another program holds:
exit status 2) stops them all with that status. The children run in their own process group,
so a terminal's Ctrl-C reaches them once, through this process; they are sent SIGTERM by the
kernel should this process die. Only the first child serves ``metrics.port`` (its own
figures).

Linux only (SO_REUSEPORT spreading connections); it needs a real broker, as any ``smtp`` does
(a memory:// broker lives inside one process), and with SQLite each child commits on its own
connection (WAL: one writer at a time, each group commit short).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from ..core.config import Config
from .runner import UsageError, check_files, check_parts

log = logging.getLogger(__name__)

# A child that exits is started again after RESTART_FIRST_S, doubling while it keeps dying
# within RESTART_HEALTHY_S of its start, up to RESTART_MAX_S.
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
RESTART_HEALTHY_S = 60.0
# How long the children get to drain and stop after SIGTERM before they are killed.
STOP_TIMEOUT_S = 60.0
# The exit status of a child that refused to start (cli.fail): not retried.
USAGE_STATUS = 2
_PR_SET_PDEATHSIG = 1


def check_processes(config: Config, processes: int) -> None:
    """Raise :class:`UsageError` when *processes* listeners cannot run with *config*."""
    if processes < 1:
        raise UsageError("--processes must be 1 or more")
    if processes == 1:
        return
    check_parts(config, ("smtp",))  # memory:// cannot be shared by processes
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--processes N > 1 needs Linux (SO_REUSEPORT spreads the connections "
                         "over the listener processes); run one listener per host port "
                         "instead")


def _die_with_parent() -> None:  # (runs in the child, between fork and exec)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def child_argv(config_path: str | None, index: int) -> list[str]:
    """The command line of listener child *index* (``--listener-child`` is not in --help)."""
    argv = [sys.executable, "-m", "abuse_desk.app.cli", "smtp", "--listener-child", str(index)]
    if config_path is not None:
        argv += ["--config", config_path]
    return argv


class Supervisor:
    """Runs the children until :meth:`stop`; see the module docstring."""

    def __init__(self, argv_of: Callable[[int], Sequence[str]], processes: int) -> None:
        self._argv_of = argv_of
        self._processes = processes
        self._children: list[subprocess.Popen[bytes] | None] = [None] * processes
        self._started: list[float] = [0.0] * processes
        self._delay: list[float] = [RESTART_FIRST_S] * processes
        self._due: list[float] = [0.0] * processes
        self._stopping = threading.Event()
        self._signals = 0
        self.status = 0

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children if c is not None and c.poll() is None]

    def _start(self, index: int) -> None:
        child = subprocess.Popen(list(self._argv_of(index)), process_group=0,
                                 preexec_fn=_die_with_parent)
        self._children[index] = child
        self._started[index] = time.monotonic()
        log.info("listener process %d started (pid %d)", index + 1, child.pid)

    def on_signal(self, signum: int, frame: object = None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: the listener processes exit now", signal.Signals(signum).name)
            self._signal_all(signal.SIGTERM)
        else:
            log.info("%s: stopping the %d listener processes (again to force)",
                     signal.Signals(signum).name, self._processes)
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()

    def _signal_all(self, signum: int) -> None:
        for child in self._children:
            if child is not None and child.poll() is None:
                try:
                    child.send_signal(signum)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        """Start the children, supervise them until stopped; the exit status."""
        for index in range(self._processes):
            self._start(index)
        log.info("abuse-desk smtp: %d listener processes (pids %s)", self._processes,
                 ", ".join(str(p) for p in self.pids))
        try:
            while not self._stopping.wait(0.2):
                self._check()
        finally:
            self._stop_children()
        return self.status

    def _check(self) -> None:
        now = time.monotonic()
        for index, child in enumerate(self._children):
            if child is None:
                if now >= self._due[index]:
                    self._start(index)
                continue
            code = child.poll()
            if code is None:
                continue
            self._children[index] = None
            how = (f"was killed by {signal.Signals(-code).name}" if code < 0
                   else f"exited with status {code}")
            if code == USAGE_STATUS:
                log.error("listener process %d (pid %d) %s: it cannot start; stopping all",
                          index + 1, child.pid, how)
                self.status = USAGE_STATUS
                self._stopping.set()
                return
            if now - self._started[index] >= RESTART_HEALTHY_S:
                self._delay[index] = RESTART_FIRST_S
            delay = self._delay[index]
            self._delay[index] = min(delay * 2, RESTART_MAX_S)
            self._due[index] = now + delay
            log.error("listener process %d (pid %d) %s; starting it again in %.1f s",
                      index + 1, child.pid, how, delay)

    def _stop_children(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for index, child in enumerate(self._children):
            if child is None:
                continue
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("listener process %d (pid %d) did not stop in %.0f s: killing it",
                          index + 1, child.pid, STOP_TIMEOUT_S)
                child.kill()
                child.wait()
            if child.returncode not in (0, -signal.SIGTERM) and not self.status:
                self.status = 1


def run_listeners(config: Config, processes: int, config_path: str | None) -> int:
    """``abuse-desk smtp --processes N`` (N > 1): supervise N listener children until a
    signal; the exit status."""
    check_processes(config, processes)
    check_files(config)
    supervisor = Supervisor(lambda index: child_argv(config_path, index), processes)
    previous = {signum: signal.signal(signum, supervisor.on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = supervisor.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if status == 0:
        log.info("stopped cleanly")
    else:
        log.warning("stopped (status %d)", status)
    return status


def config_path_of(explicit: str | None) -> str | None:
    """The configuration file a child is to read: the one given, made absolute (the children
    run in this working directory anyway); None: they find it as this process did."""
    return os.path.abspath(explicit) if explicit else None
