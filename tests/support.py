"""Shared test helpers: a desk running in a background thread, desk processes, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abuse_desk.app.runner import Running, start, stop
from abuse_desk.core.config import Config, build_config

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # the clock of `fixed_desk`
CORPUS = ROOT.parent / "shared" / "corpus"  # real sample mails, read-only, may be absent


# How long a hostile input may take before a test calls it a hang. Not a speed target (those
# live in `make bench`): the inputs it guards against (catastrophic backtracking, entity or
# alias expansion, bombs) take minutes to forever; a loaded CI machine takes seconds.
HANG_GUARD_S = 30.0


def corpus_or_skip() -> Path:
    """The shared corpus, or skip the test saying where it was looked for."""
    import pytest

    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    return CORPUS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A config on a fresh SQLite file under *tmp_path*, free ports, fast sweeps; *sections*
    override keys as in config.toml."""
    data: dict[str, dict[str, Any]] = {
        "database": {"url": f"sqlite:///{tmp_path / 'desk.db'}"},
        # Tests send bursts from 127.0.0.1; the rate limit's own tests turn it on.
        "smtp": {"port": free_port(), "max_messages_per_ip_per_minute": 0},
        "web": {"port": free_port()},
        "pipeline": {"sweep_interval_s": 0.5, "worker_threads": 2},
        "log": {"level": "INFO"},
        "notify": {"maildir": str(tmp_path / "outbox")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return build_config(data, "test", env={})


def config_env(config: Config) -> dict[str, str]:
    """The environment that gives a child `abuse-desk` process the same *config*."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("ABUSE_DESK_")}
    env["ABUSE_DESK_CONFIG"] = os.devnull  # not ./config.toml: only what is set here
    for section in ("database", "broker", "smtp", "web", "pipeline", "parsers", "log", "metrics",
                    "workflow", "notify", "classifier"):
        for key, value in vars(getattr(config, section)).items():
            if key == "trusted_reporters":  # tables: not written as one variable
                continue
            env[f"ABUSE_DESK_{section.upper()}__{key.upper()}"] = json.dumps(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LiveDesk:
    """`abuse-desk serve` (or some of its parts) running in this process, in its own loop."""

    def __init__(self, config: Config, parts: tuple[str, ...] = ("smtp", "worker", "scheduler",
                                                                   "web")) -> None:
        self.config = config
        self.parts = parts
        self.loop = asyncio.new_event_loop()
        self.running: Running | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LiveDesk:
        self._thread.start()
        self.running = asyncio.run_coroutine_threadsafe(
            start(self.config, self.parts), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.running is not None
        asyncio.run_coroutine_threadsafe(stop(self.running), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def smtp_addr(self) -> tuple[str, int]:
        return self.config.smtp.host, self.config.smtp.port

    @property
    def engine(self) -> Any:
        assert self.running is not None
        return self.running.desk.engine


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    def up() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(up, timeout, f"port {port}")


@contextlib.contextmanager
def desk_process(config: Config, *args: str, log: Path,
                 wait: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``abuse-desk ARGS`` as a child process with *config*; stop it with SIGTERM after."""
    fh = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "abuse_desk.app.cli", *args], cwd=ROOT,
                            env=config_env(config), stdout=fh, stderr=subprocess.STDOUT)
    try:
        if wait is not None:
            wait_port(wait, proc=proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        fh.close()


def message(subject: str = "test report", body: str = "hello\r\n", extra: str = "") -> bytes:
    return (f"From: reporter@example.org\r\nTo: abuse@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n{extra}\r\n{body}").encode()
