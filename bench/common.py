"""Helpers the benchmarks share: tables, percentiles, ports, peak RSS, desk child processes,
throwaway PostgreSQL databases and Redis dbs, and a minimal SMTP load client.

The load client also runs as its own process (so the load does not share a GIL or a core's
scheduler slice with the process measured)::

    .venv/bin/python bench/common.py smtp-load --port 2525 --messages 500 --sessions 10 \\
        --size 4096 [--no-reuse]

prints one JSON object: elapsed seconds, messages accepted, per-message latency from the end
of DATA (``\\r\\n.\\r\\n`` sent) to the reply, and the replies that were not 250.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BENCH_REDIS_DB = 13  # ours; tests use 15


# ---------------------------------------------------------------- results and tables

def row(what: str, value: float, unit: str, reference: str | None = None,
        reference_value: float | None = None, ratio: float | None = None) -> dict[str, Any]:
    """One figure in the common shape; the ratio is value / reference_value unless given."""
    if ratio is None and reference_value:
        ratio = value / reference_value
    return {"what": what, "value": _round(value), "unit": unit, "reference": reference,
            "reference_value": None if reference_value is None else _round(reference_value),
            "ratio": None if ratio is None else round(ratio, 3)}


def target(what: str, wanted: str, measured: str, met: bool) -> dict[str, Any]:
    return {"what": what, "target": wanted, "measured": measured, "met": bool(met)}


def _round(value: float) -> float:
    if abs(value) >= 100:
        return float(round(value))
    return round(float(value), 3)


def _num(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, (int, float)):
        return f"{int(value):,}"
    return str(value)


def format_section(section: Mapping[str, Any]) -> str:
    """A benchmark's result as a table: figure, unit, reference, reference figure, ratio;
    then the targets and the notes."""
    header = ("what", "value", "unit", "reference", "ref. value", "ratio")
    lines_: list[tuple[str, ...]] = [header]
    for r in section.get("rows", []):
        lines_.append((r["what"], _num(r["value"]), r["unit"], r.get("reference") or "",
                       "" if r.get("reference_value") is None else _num(r["reference_value"]),
                       "" if r.get("ratio") is None else f"{r['ratio']:.2f}"))
    widths = [max(len(line[i]) for line in lines_) for i in range(len(header))]
    out = [f"== {section.get('name', '?')}"]
    for n, line in enumerate(lines_):
        cells = [line[i].rjust(widths[i]) if i in (1, 4, 5) else line[i].ljust(widths[i])
                 for i in range(len(line))]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    for t in section.get("targets", []):
        out.append(f"target {t['what']}: {t['target']}; measured {t['measured']} -> "
                   f"{'met' if t['met'] else 'MISSED'}")
    for note in section.get("notes", []):
        out.append(f"note: {note}")
    return "\n".join(out)


def standard_main(doc: str, run: Any, argv: Sequence[str] | None = None) -> int:
    """The ``main`` every benchmark module has: ``--quick``, ``--json PATH``, a table."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     epilog=doc.split("\n\n", 1)[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    section = run(quick=args.quick)
    print(format_section(section))
    if args.json:
        args.json.write_text(json.dumps(section, indent=2) + "\n", encoding="utf-8")
    return 0


# ---------------------------------------------------------------- statistics

def percentile(values: Sequence[float], p: float) -> float:
    """The *p*-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- processes and /proc

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mib(pid: int) -> float:
    """The process's resident set size now (VmRSS), MiB."""
    return _status_kb(pid, "VmRSS") / 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/PID/clear_refs``, Linux >= 4.0); False
    when not allowed, and then the peak includes start-up."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pids: Sequence[int], busy_share: float = 0.05, window_s: float = 0.5,
              timeout_s: float = 120.0) -> float:
    """Wait until the processes together use under *busy_share* of a core over *window_s*
    (a desk's workers finishing the backlog of the last run must not slow the next); returns
    the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(window_s)
        if sum(cpu_seconds(p) for p in pids) - before < busy_share * window_s:
            break
    return time.monotonic() - started


def wait_for_port(host: str, port: int, timeout_s: float = 30.0,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until something accepts TCP on host:port (and, for SMTP, has said 220)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(5)
                s.recv(512)
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s} s")


def desk_env(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The environment that gives a child ``abuse-desk`` process exactly this configuration
    (plus the defaults): ``ABUSE_DESK_<SECTION>__<KEY>``, values as JSON (which TOML reads)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABUSE_DESK_")}
    env["ABUSE_DESK_CONFIG"] = os.devnull  # not ./config.toml: only what is set here
    for section, values in sections.items():
        for key, value in values.items():
            env[f"ABUSE_DESK_{section.upper()}__{key.upper()}"] = json.dumps(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def base_sections(folder: Path, database_url: str | None = None,
                  broker_url: str = "memory://", smtp_port: int | None = None,
                  **overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A quiet desk configuration under *folder*: SQLite there unless *database_url*, free
    ports, WARNING logs (a log line per message would be measured too)."""
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": database_url or f"sqlite:///{folder / 'desk.db'}"},
        "broker": {"url": broker_url},
        # All load comes from 127.0.0.1: the per-peer rate limit would answer 451.
        "smtp": {"port": smtp_port or free_port(), "max_messages_per_ip_per_minute": 0,
                 # smtp-source sends every message of a run in one session: not a hostile peer.
                 "max_commands": 1_000_000},
        "web": {"port": free_port()},
        "log": {"level": "WARNING"},
        "notify": {"maildir": str(folder / "outbox")},
    }
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return sections


class DeskProcess:
    """``abuse-desk COMMAND`` as a child process with the configuration *sections*.

    ``with DeskProcess("smtp", sections) as desk: ... desk.pid``; output goes to a log file
    (``desk.log_path``), shown when it fails to start."""

    def __init__(self, command: str | Sequence[str], sections: Mapping[str, Mapping[str, Any]],
                 wait_smtp: bool | None = None, cwd: Path | None = None) -> None:
        self.argv = [command] if isinstance(command, str) else list(command)
        self.sections = sections
        self.wait_smtp = self.argv[0] in ("serve", "smtp") if wait_smtp is None else wait_smtp
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            prefix=f"bench-{self.argv[0]}-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def smtp_port(self) -> int:
        return int(self.sections["smtp"]["port"])

    def start(self, timeout_s: float = 60.0) -> DeskProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "abuse_desk.app.cli", *self.argv], env=desk_env(self.sections),
            cwd=self.cwd or ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        if self.wait_smtp:
            try:
                wait_for_port("127.0.0.1", self.smtp_port, timeout_s, self.proc)
            except Exception:
                self.stop()
                raise RuntimeError(f"abuse-desk {' '.join(self.argv)} did not start:\n"
                                   + self.output()[-3000:]) from None
        return self

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (a clean drain), SIGKILL after *timeout_s*."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> DeskProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if exc[0] is None:
            self.log_path.unlink(missing_ok=True)


# ---------------------------------------------------------------- PostgreSQL and Redis

@contextmanager
def postgres_database(name: str | None = None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (``bench_<pid>``); yields its URL, drops it after."""
    from sqlalchemy import create_engine, text

    name = name or f"bench_{os.getpid()}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def redis_url(db: int = BENCH_REDIS_DB) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def flush_redis(db: int = BENCH_REDIS_DB) -> None:
    """Empty Redis db *db* (ours only: never another number)."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    client.close()


def redis_available() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


def upgrade_database(url: str) -> None:
    """Create the schema (what ``abuse-desk db upgrade`` does)."""
    from abuse_desk.core.config import DatabaseConfig
    from abuse_desk.core.db import make_engine, upgrade

    engine = make_engine(DatabaseConfig(url=url))
    upgrade(engine)
    engine.dispose()


# ---------------------------------------------------------------- messages

def make_message(size: int, n: int = 0, sender: str = "reporter@example.net",
                 rcpt: str = "abuse@integra-isp.example") -> bytes:
    """A plain-text abuse report of about *size* bytes (CRLF, dot-stuffing not needed: no line
    starts with a dot)."""
    head = (f"From: Reporter <{sender}>\r\nTo: {rcpt}\r\n"
            f"Subject: Abuse report {n} from 192.0.2.{n % 250 + 1}\r\n"
            f"Message-ID: <bench-{n}-{os.getpid()}-{time.monotonic_ns()}@example.net>\r\n"
            "Date: Mon, 03 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"Host 192.0.2.{n % 250 + 1} attacked our network at 2024-06-03T09:58:00Z.\r\n")
    filler_line = "Log: sshd[1234]: Failed password for root from 192.0.2.10 port 22 ssh2\r\n"
    body = head
    while len(body) + len(filler_line) <= size - 2:
        body += filler_line
    body += "x" * max(0, size - len(body) - 2) + "\r\n"
    return body.encode()


# ---------------------------------------------------------------- SMTP load client

class SmtpError(Exception):
    pass


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        lines.append(line.decode("latin-1").rstrip())
        if len(line) < 4 or line[3:4] != b"-":
            break
    return int(lines[-1][:3]), "\n".join(lines)


async def _session(host: str, port: int, messages: list[bytes], latencies: list[float],
                   failures: list[str], sender: str, rcpt: str,
                   pipeline_data: bool = False) -> int:
    """One SMTP connection sending *messages* in turn; returns how many got a 250."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    ok = 0
    try:
        code, text = await _reply(reader)
        if code != 220:
            failures.append(text)
            return 0
        writer.write(b"EHLO bench.example\r\n")
        code, text = await _reply(reader)
        for body in messages:
            writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
                         if pipeline_data else f"MAIL FROM:<{sender}>\r\n".encode())
            if not pipeline_data:
                await _reply(reader)
                writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
                await _reply(reader)
                writer.write(b"DATA\r\n")
            else:
                await _reply(reader)
                await _reply(reader)
            code, text = await _reply(reader)
            if code != 354:
                failures.append(text)
                continue
            writer.write(body)
            await writer.drain()
            writer.write(b".\r\n")  # body ends with CRLF: this completes "\r\n.\r\n"
            started = time.perf_counter()
            await writer.drain()
            code, text = await _reply(reader)
            latencies.append(time.perf_counter() - started)
            if code == 250:
                ok += 1
            else:
                failures.append(text)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        try:
            await asyncio.wait_for(_reply(reader), 5)
        except (TimeoutError, SmtpError, ConnectionError):
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    return ok


async def smtp_load(host: str, port: int, messages: int, sessions: int, size: int,
                    reuse: bool = True, sender: str = "reporter@example.net",
                    rcpt: str = "abuse@integra-isp.example",
                    body: bytes | None = None) -> dict[str, Any]:
    """Send *messages* messages of *size* bytes over *sessions* parallel sessions; with
    *reuse*, each session sends its share over one connection, else one connection per
    message. Returns elapsed seconds, accepted count, rate, latency percentiles (end of DATA
    to the reply) and up to 5 failure replies."""
    payloads = [body] if body is not None else [make_message(size, n) for n in range(64)]
    latencies: list[float] = []
    failures: list[str] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for n in range(messages):
        queue.put_nowait(payloads[n % len(payloads)])

    async def worker() -> int:
        ok = 0
        while not queue.empty():
            if reuse:
                batch = []
                while not queue.empty():
                    batch.append(queue.get_nowait())
                    if len(batch) >= -(-messages // sessions):  # its share, rounded up
                        break
            else:
                batch = [queue.get_nowait()]
            try:
                ok += await _session(host, port, batch, latencies, failures, sender, rcpt)
            except (OSError, SmtpError) as exc:
                failures.append(f"{exc.__class__.__name__}: {exc}")
        return ok

    started = time.perf_counter()
    accepted = sum(await asyncio.gather(*(worker() for _ in range(sessions))))
    elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "accepted": accepted, "sent": messages,
            "per_s": accepted / elapsed if elapsed else 0.0,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "failures": len(failures), "failure_samples": failures[:5]}


def smtp_load_process(port: int, messages: int, sessions: int, size: int, reuse: bool = True,
                      host: str = "127.0.0.1", timeout_s: float = 900.0,
                      body_file: Path | None = None) -> dict[str, Any]:
    """:func:`smtp_load` in a separate Python process (so the load has its own GIL)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "smtp-load", "--host", host,
            "--port", str(port), "--messages", str(messages), "--sessions", str(sessions),
            "--size", str(size)]
    if not reuse:
        argv.append("--no-reuse")
    if body_file is not None:
        argv += ["--body-file", str(body_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"smtp-load failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench helpers run as a process")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("smtp-load", help="send messages over parallel SMTP sessions, "
                          "print JSON figures")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--messages", type=int, default=1000)
    load.add_argument("--sessions", type=int, default=1)
    load.add_argument("--size", type=int, default=4096)
    load.add_argument("--no-reuse", action="store_true",
                      help="one connection per message (default: one per session)")
    load.add_argument("--body-file", type=Path,
                      help="send this file's bytes (CRLF, dot-stuffed, ending in CRLF) as each "
                      "message")
    args = parser.parse_args(argv)
    body = args.body_file.read_bytes() if args.body_file else None
    result = asyncio.run(smtp_load(args.host, args.port, args.messages, args.sessions,
                                   args.size, reuse=not args.no_reuse, body=body))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())


# ---------------------------------------------------------------- customers

CUSTOMERS = 10_000


def customers_csv(path: Path, customers: int = CUSTOMERS) -> Path:
    """A customers file for ``abuse-desk customers import``: customer C-i holds
    45.(i/256).(i%256).0/24, 10.(i/256).(i%256).0/24, fdf1:cb9d:f59e:<i>::/64 and
    host<i>.example, and the first ones also 172.16-19.x.0/24 and 192.168.x.0/24 (the corpus's
    sanitised addresses fall in the private blocks; free text only names public ones)."""
    lines = ["customer_id,name,email,resource,valid_from,valid_until"]
    for i in range(customers):
        name = f"C-{i},Customer {i},noc@host{i}.example"
        lines.append(f"{name},45.{i // 256}.{i % 256}.0/24,,")
        lines.append(f"{name},10.{i // 256}.{i % 256}.0/24,,")
        lines.append(f"{name},fdf1:cb9d:f59e:{i:x}::/64,,")
        lines.append(f"{name},host{i}.example,,")
        if i < 1024:
            lines.append(f"{name},172.{16 + i // 256}.{i % 256}.0/24,,")
        if i < 256:
            lines.append(f"{name},192.168.{i}.0/24,,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def customer_ip(i: int, host: int = 10) -> str:
    """A public address of customer C-*i* (see :func:`customers_csv`)."""
    return f"45.{i // 256}.{i % 256}.{host}"
