"""End to end: mixed reports through SMTP until each is classified and in a case.

    .venv/bin/python bench/pipeline.py                    # 10,000 reports, both setups
    .venv/bin/python bench/pipeline.py --quick            # 1,000 reports
    .venv/bin/python bench/pipeline.py --messages 3000 --only postgres --json out.json

Two setups, each on a fresh database with 10,000 customers imported (``abuse-desk customers
import``, the file of ``bench/parse.py``):

* **embedded**: ``abuse-desk serve`` (SQLite, the in-process broker, its worker threads);
* **postgres**: ``abuse-desk smtp`` + 2 x ``abuse-desk worker`` + ``abuse-desk scheduler`` on a
  PostgreSQL database of our own (``bench_<pid>``, ``abuse-desk db upgrade`` first) and Redis
  db 13.

The reports are an even mix of ARF (feedback loop), X-ARF 0.2 (login attack), ACNS (DMCA XML),
free text from a person, and a Shadowserver-style CSV (one row): each about a different
incident (address, time, Message-ID), each from a reporter that claims no trusted identity, each
about an address of one of the customers (chosen with a Zipf-like skew: a few customers draw
many complaints), so that every report resolves, is not a duplicate and joins a case (opening
one, or adding a claim to the customer's open one; a new case also sends its notice and the
person's report its acknowledgement, to the Maildir outbox).

A separate process (``bench/pipeline.py send``) sends them over 10 concurrent SMTP sessions as
fast as the desk answers, and records for each the wall-clock time of its ``250`` and the id in
``queued as N``. Meanwhile this process samples the backlog (messages still ``received``) every
half second; when every message is processed it reads ``messages.processed_at`` (set in the
transaction that also puts the reports in their cases) and checks that every report has a
``case_id``. Figures:

* reports/s from the first 250 to the last report in a case, beside the intake rate (250s/s
  over the same sessions, in the same run);
* p50/p99 latency from a message's 250 to its case, beside the SMTP reply latency;
* the backlog over time: its peak, and its slope while mail is still arriving (positive: the
  pipeline does not keep up with intake; the backlog then grows as long as mail arrives);
* the CPU seconds each process used per report, which says where the 2 cores went.

Then two **paced** runs of the same mix: offered at the target rate (500 reports/s) for 10 s,
to see whether the pipeline keeps up (the backlog stays flat, or grows); and offered at half the
throughput the burst measured, for 20 s, for the latency of a pipeline that keeps up.

``--py-spy DIR`` records the workers during the burst (``py-spy record --gil``, installed by
hand: it is no dependency of the project) and prints their top costs.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    BENCH_REDIS_DB,
    CUSTOMERS,
    DeskProcess,
    base_sections,
    customer_ip,
    customers_csv,
    desk_env,
    flush_redis,
    format_section,
    peak_rss_mib,
    percentile,
    postgres_available,
    postgres_database,
    redis_available,
    redis_url,
    row,
    target,
)

RCPT = "abuse@integra-isp.example"
KINDS = ("arf", "xarf", "acns", "text", "shadowserver")


# ---------------------------------------------------------------- the mix of reports

def _date(at: datetime) -> str:
    return at.strftime("%a, %d %b %Y %H:%M:%S +0000")


def arf_report(ip: str, n: int, at: datetime) -> bytes:
    """A feedback-loop report (RFC 5965) about spam from *ip*."""
    return (
        f"From: Mailbox FBL <fbl@mailbox.example>\r\nTo: {RCPT}\r\n"
        f"Subject: FW: Cheap watches {n}\r\nDate: {_date(at)}\r\n"
        f"Message-ID: <fbl.{n}.{ip}@mailbox.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Source-IP: {ip}\r\nArrival-Date: {_date(at)}\r\n"
        "Original-Rcpt-To: <victim.person@mailbox.example>\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Received: from spammer ([{ip}]) by mx.mailbox.example\r\n"
        f"    for <victim.person@mailbox.example>; {_date(at)}\r\n"
        "From: offers@bulk.example\r\nTo: victim.person@mailbox.example\r\n"
        f"Subject: Cheap watches {n}\r\nMessage-ID: <spam.{n}.{ip}@bulk.example>\r\n\r\n"
        "Buy now! Genuine replica watches at 90% off.\r\n--b--\r\n").encode()


def xarf_report(ip: str, n: int, at: datetime) -> bytes:
    """An X-ARF 0.2 login-attack report (YAML report.txt, log attached)."""
    return (
        "From: Honeypot Abuse Team <reports@honeypot.example>\r\n"
        f"To: {RCPT}\r\nSubject: abuse report about {ip} - {_date(at)} -- service: ssh\r\n"
        f"Date: {_date(at)}\r\nMessage-ID: <xarf.{n}@reports.honeypot.example>\r\n"
        "MIME-Version: 1.0\r\nX-XARF: PLAIN\r\n"
        "Content-Type: multipart/mixed; boundary=\"Abuse-3e0d5c1f\"\r\n\r\n"
        "--Abuse-3e0d5c1f\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello Abuse-Team,\r\n\r\nyour customer with the IP {ip} has attacked one of our "
        "servers (ssh).\r\nThe logs are attached. This mail can be parsed with X-ARF tools."
        "\r\n\r\n--Abuse-3e0d5c1f\r\n"
        "Content-Type: text/plain; charset=utf-8; name=\"report.txt\"\r\n\r\n"
        "---\r\nReported-From: reports@honeypot.example\r\nCategory: abuse\r\n"
        "Report-Type: login-attack\r\nService: ssh\r\nVersion: 0.2\r\n"
        f"User-Agent: HoneypotFeedback 1.4\r\nDate: {_date(at)}\r\nSource-Type: ipv4\r\n"
        f"Source: {ip}\r\nPort: 22\r\nOccurrences: {3 + n % 20}\r\n"
        f"Report-ID: {n}@honeypot.example\r\n"
        "Schema-URL: http://www.x-arf.org/schema/abuse_login-attack_0.1.2.json\r\n"
        "Attachment: text/plain\r\n\r\n--Abuse-3e0d5c1f\r\n"
        "Content-Type: text/plain; charset=utf-8; name=\"logfile.log\"\r\n\r\n"
        f"{at:%b %d %H:%M:%S} trap sshd[2211]: Invalid user admin from {ip} port 50022\r\n"
        f"{at:%b %d %H:%M:%S} trap sshd[2211]: Failed password for invalid user admin from "
        f"{ip} port 50022 ssh2\r\n\r\n--Abuse-3e0d5c1f--\r\n").encode()


def acns_report(ip: str, n: int, at: datetime) -> bytes:
    """A DMCA notice with its ACNS XML inline."""
    case = f"88-{n:07d}"
    return (
        "From: Studio Example Enforcement <enforcement@studio.example>\r\n"
        f"To: {RCPT}\r\nSubject: Notice of Claimed Infringement - Case ID {case}\r\n"
        f"Date: {_date(at)}\r\nMessage-ID: <{case}@studio.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n"
        "Dear Sir or Madam,\r\n\r\na subscriber of yours shared our film over BitTorrent. "
        "The notice in machine-readable form follows.\r\n\r\n"
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
        "<Infringement xmlns=\"http://www.acns.net\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\r\n"
        f" <Case><ID>{case}</ID><Status>Open</Status></Case>\r\n"
        " <Complainant>\r\n  <Entity>Studio Example Inc.</Entity>\r\n"
        "  <Email>p2p@studio.example</Email>\r\n </Complainant>\r\n"
        f" <Source>\r\n  <TimeStamp>{at:%Y-%m-%dT%H:%M:%SZ}</TimeStamp>\r\n"
        f"  <IP_Address>{ip}</IP_Address>\r\n  <Port>{6881 + n % 100}</Port>\r\n"
        "  <Type>BitTorrent</Type>\r\n  <Number_Files>1</Number_Files>\r\n </Source>\r\n"
        " <Content>\r\n  <Item>\r\n   <Title>Night Train</Title>\r\n"
        "   <FileName>Night.Train.2014.avi</FileName>\r\n"
        f"   <Hash Type=\"SHA1\">{n:040x}</Hash>\r\n  </Item>\r\n </Content>\r\n"
        "</Infringement>\r\n").encode()


def text_report(ip: str, n: int, at: datetime) -> bytes:
    """A complaint written by a person."""
    return (
        f"From: Jane Doe <jane{n % 97}@people.example>\r\nTo: {RCPT}\r\n"
        f"Subject: SSH brute force from {ip}\r\nDate: {_date(at)}\r\n"
        f"Message-ID: <person.{n}@people.example>\r\n\r\n"
        f"Hello,\r\n\r\nyour customer at {ip} has been running an SSH brute force attack "
        f"(password guessing) against our server since {at:%Y-%m-%d %H:%M:%S} UTC, "
        f"{20 + n % 50} failed logins so far:\r\n\r\n"
        f"{at:%b %d %H:%M:%S} web1 sshd[811]: Failed password for root from {ip} port 41122 "
        "ssh2\r\n"
        f"{at:%b %d %H:%M:%S} web1 sshd[811]: Failed password for root from {ip} port 41124 "
        "ssh2\r\n\r\nPlease make it stop.\r\nJane\r\n").encode()


def shadowserver_report(ip: str, n: int, at: datetime) -> bytes:
    """A Shadowserver scan report (one CSV row) forwarded by a colleague."""
    csv = ("\"timestamp\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\","
           "\"region\",\"city\"\r\n"
           f"\"{at:%Y-%m-%d %H:%M:%S}\",\"{ip}\",\"tcp\",\"{1000 + n % 60000}\",\"\","
           "\"ssh\",\"64500\",\"NL\",\"NOORD-HOLLAND\",\"AMSTERDAM\"\r\n")
    return (
        f"From: Ops Colleague <ops@integra-isp.example>\r\nTo: {RCPT}\r\n"
        f"Subject: Fwd: Shadowserver Scan SSH Report: {at:%Y-%m-%d} ({n})\r\n"
        f"Date: {_date(at)}\r\nMessage-ID: <fwd-{n}@integra-isp.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fw\"\r\n\r\n"
        "--fw\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nForwarding this.\r\n\r\n"
        f"--fw\r\nContent-Type: text/csv; name=\"{at:%Y-%m-%d}-scan_ssh-isp.csv\"\r\n"
        "Content-Disposition: attachment; "
        f"filename=\"{at:%Y-%m-%d}-scan_ssh-isp.csv\"\r\n\r\n{csv}\r\n--fw--\r\n").encode()


BUILDERS = {"arf": arf_report, "xarf": xarf_report, "acns": acns_report, "text": text_report,
            "shadowserver": shadowserver_report}


def zipf_customer(rng: random.Random, customers: int = CUSTOMERS, s: float = 1.1) -> int:
    """A customer index in [0, customers) with P(k) ~ 1/(k+1)^s, by inversion on a cached
    table."""
    table = _ZIPF.get((customers, s))
    if table is None:
        weights = [1 / (k + 1) ** s for k in range(customers)]
        total = sum(weights)
        acc, table = 0.0, []
        for w in weights:
            acc += w / total
            table.append(acc)
        _ZIPF[(customers, s)] = table
    return min(bisect.bisect_left(table, rng.random()), customers - 1)


_ZIPF: dict[tuple[int, float], list[float]] = {}


def mixed_reports(count: int, first: int = 0, seed: int = 7) -> list[tuple[str, bytes]]:
    """*count* (kind, message) pairs numbered from *first* (give each run its own numbers:
    the number makes the incident, Message-ID and ACNS case unique), the kinds in turn, each
    about a customer drawn with a Zipf-like skew (customers are shuffled, so the busy ones are
    spread over the address plan)."""
    rng = random.Random(seed + first)
    order = list(range(CUSTOMERS))
    random.Random(seed).shuffle(order)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for n in range(first, first + count):
        kind = KINDS[n % len(KINDS)]
        customer = order[zipf_customer(rng)]
        ip = customer_ip(customer, 10 + n % 240)  # hosts of the customer's /24
        at = start + timedelta(seconds=n)
        out.append((kind, BUILDERS[kind](ip, n, at)))
    return out


# ---------------------------------------------------------------- the sender (own process)

def write_messages(path: Path, messages: Sequence[bytes]) -> Path:
    """Length-prefixed messages, for the sender process."""
    with path.open("wb") as fh:
        for raw in messages:
            fh.write(struct.pack(">I", len(raw)))
            fh.write(raw)
    return path


def read_messages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        out.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return out


def dot_stuff(raw: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ending in CRLF."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines)


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    text = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        text.append(line.decode("latin-1").rstrip())
        if len(line) < 4 or line[3:4] != b"-":
            return int(text[-1][:3]), "\n".join(text)


async def send_all(host: str, port: int, messages: list[bytes], sessions: int,
                   rate: float | None) -> dict[str, Any]:
    """Send *messages* over *sessions* SMTP connections, as fast as answered or, with *rate*,
    message i not before start + i / rate. Returns, per message accepted, [index, queued id,
    wall time of the 250, seconds from the end of DATA to the 250]."""
    payloads = [dot_stuff(m) for m in messages]
    accepted: list[list[Any]] = []
    failures: list[str] = []
    next_index = 0
    started = time.monotonic()

    async def session() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        try:
            await _reply(reader)
            writer.write(b"EHLO bench.example\r\n")
            await _reply(reader)
            while next_index < len(payloads):
                i = next_index
                next_index += 1
                if rate:
                    delay = started + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                writer.write(b"MAIL FROM:<reporter@example.net>\r\n")
                await _reply(reader)
                writer.write(f"RCPT TO:<{RCPT}>\r\n".encode())
                await _reply(reader)
                writer.write(b"DATA\r\n")
                code, text = await _reply(reader)
                if code != 354:
                    failures.append(f"{i}: {text}")
                    continue
                writer.write(payloads[i] + b".\r\n")
                sent = time.perf_counter()
                await writer.drain()
                code, text = await _reply(reader)
                now_wall, took = time.time(), time.perf_counter() - sent
                if code == 250 and "queued as" in text:
                    accepted.append([i, int(text.rsplit(" ", 1)[1]), now_wall, took])
                else:
                    failures.append(f"{i}: {text}")
            writer.write(b"QUIT\r\n")
            await writer.drain()
        finally:
            writer.close()

    results = await asyncio.gather(*(session() for _ in range(sessions)),
                                   return_exceptions=True)
    failures += [f"{r.__class__.__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"elapsed_s": time.monotonic() - started, "accepted": accepted,
            "failures": len(failures), "failure_samples": failures[:5]}


def _send_cli(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="pipeline.py send")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(send_all("127.0.0.1", args.port, read_messages(args.messages),
                                  args.sessions, args.rate or None))
    args.out.write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------- CPU accounting from /proc

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process *pid* so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids.extend(int(k) for k in (task / "children").read_text().split())
    except OSError:
        pass
    return kids


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of *pid* and every process under it: a worker's examiner processes parse
    and classify, so a worker's cost per report is its own CPU and theirs (those that ended
    are in the parent's reaped-children time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_seconds(kid) for kid in _children(pid))


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backends serving *database* (their process title names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(proc.name))
    return pids


def pids_named(name: str) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == name:
                    out.append(int(proc.name))
            except OSError:
                continue
    return out


# ---------------------------------------------------------------- one setup

@dataclass
class Setup:
    name: str  # "embedded" or "postgres"
    url: str
    sections: dict[str, dict[str, Any]]
    processes: dict[str, DeskProcess] = field(default_factory=dict)
    database: str | None = None  # PostgreSQL database name, for its backends' CPU
    engine: Any = None

    @property
    def port(self) -> int:
        return int(self.sections["smtp"]["port"])

    def others(self) -> dict[str, list[int]]:
        """Processes that are not ours but work for us: the database and the broker."""
        if self.database is None:
            return {}
        return {"postgres backends": postgres_backends(self.database),
                "redis-server (shared)": pids_named("redis-server")}


def _cli(sections: dict[str, dict[str, Any]], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", *args], cwd=ROOT,
                          env=desk_env(sections), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"abuse-desk {' '.join(args)} failed: {done.stderr[-2000:]}")


@contextmanager
def running(name: str, folder: Path, logs: Path | None = None,
            redis_db: int = BENCH_REDIS_DB) -> Iterator[Setup]:
    """The desk of setup *name* running on a fresh database with the customers imported; with
    *logs*, the processes' output is copied there when they stop."""
    from abuse_desk.core.config import DatabaseConfig
    from abuse_desk.core.db import make_engine

    with ExitStack() as stack:
        if name == "embedded":
            url = f"sqlite:///{folder / 'desk.db'}"
            setup = Setup(name, url, base_sections(folder, url))
        else:
            database = f"bench_{os.getpid()}"
            url = stack.enter_context(postgres_database(database))
            flush_redis(redis_db)
            stack.callback(flush_redis, redis_db)  # runs last: after the processes stopped
            setup = Setup(name, url, base_sections(folder, url, redis_url(redis_db)),
                          database=database)
        _cli(setup.sections, "db", "upgrade")
        _cli(setup.sections, "customers", "import", str(customers_csv(folder / "customers.csv")))
        setup.engine = make_engine(DatabaseConfig(url=url))
        stack.callback(setup.engine.dispose)
        commands = {"serve": "serve"} if name == "embedded" else {
            "smtp": "smtp", "worker 1": "worker", "worker 2": "worker",
            "scheduler": "scheduler"}
        for label, command in commands.items():
            proc = DeskProcess(command, setup.sections, wait_smtp=command in ("serve", "smtp"))
            setup.processes[label] = stack.enter_context(proc)
            if logs is not None:
                logs.mkdir(parents=True, exist_ok=True)
                stack.callback(_copy_log, proc, logs / f"{name}-{label.replace(' ', '')}.log")
        yield setup


def _copy_log(proc: DeskProcess, to: Path) -> None:
    proc.stop()
    if proc.log_path.exists():
        to.write_bytes(proc.log_path.read_bytes())


# ---------------------------------------------------------------- one run

def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _backlog(engine: Any, above: int) -> tuple[int, int]:
    """(messages above id *above*, those still received)."""
    from abuse_desk.core.models import Message
    from sqlalchemy import case, func, select

    with engine.connect() as conn:
        total, waiting = conn.execute(select(
            func.count(Message.id),
            func.coalesce(func.sum(case((Message.state == "received", 1), else_=0)), 0))
            .where(Message.id > above)).one()
    return int(total), int(waiting)


def _last_id(engine: Any) -> int:
    from abuse_desk.core.models import Message
    from sqlalchemy import func, select

    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(Message.id), 0))).scalar_one())


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than 3 points)."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


@contextmanager
def py_spy(setup: Setup, folder: Path | None) -> Iterator[None]:
    """With *folder*: ``py-spy record --gil`` (collapsed stacks of the thread that holds the
    GIL: where the CPU goes) of each worker process (or ``serve``) while the block runs,
    written to FOLDER/<setup>-<label>.txt; see :func:`top_costs`."""
    if folder is None:
        yield
        return
    import shutil
    import signal

    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    folder.mkdir(parents=True, exist_ok=True)
    spies = []
    for label, proc in setup.processes.items():
        if label.startswith(("worker", "serve")):
            out = folder / f"{setup.name}-{label.replace(' ', '')}.txt"
            spies.append(subprocess.Popen(
                [exe, "record", "--format", "raw", "--rate", "100", "--gil", "--nonblocking",
                 "-o", str(out),
                 "-p", str(proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(60)


def top_costs(path: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """From py-spy's collapsed stacks: (function, share of samples anywhere on the stack
    (inclusive), share at the top (self)), the largest inclusive first."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return [(name, n / total, own.get(name, 0) / total) for name, n in ranked]


def settle(setup: Setup, timeout_s: float = 180.0) -> float:
    """Wait until the desk is idle (its processes used under 5% of a core over a second): the
    notices and timeline steps of the previous run are done. Returns the seconds waited."""
    started = time.monotonic()
    pids = [p.pid for p in setup.processes.values()]
    while time.monotonic() - started < timeout_s:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(1.0)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.05:
            break
    return time.monotonic() - started


def run_load(setup: Setup, messages: list[bytes], folder: Path, rate: float | None = None,
             sessions: int = 10, drain_timeout_s: float = 600.0,
             profile: Path | None = None, logs: Path | None = None,
        redis_db: int = BENCH_REDIS_DB) -> dict[str, Any]:
    """Once the desk is idle, send *messages* to the running *setup*, wait until every one is
    processed, and measure (see the module's docstring); with *profile*, py-spy records the
    workers meanwhile."""
    settle(setup)
    with py_spy(setup, profile):
        return _run_load(setup, messages, folder, rate, sessions, drain_timeout_s)


def _run_load(setup: Setup, messages: list[bytes], folder: Path, rate: float | None,
              sessions: int, drain_timeout_s: float) -> dict[str, Any]:
    from abuse_desk.core.models import Message, Report
    from sqlalchemy import select

    above = _last_id(setup.engine)
    path = write_messages(folder / "messages.bin", messages)
    out = folder / "sent.json"
    ours = {label: p.pid for label, p in setup.processes.items()}
    others = setup.others()
    cpu0 = {label: tree_cpu_seconds(pid) for label, pid in ours.items()}
    cpu0.update({label: sum(cpu_seconds(p) for p in pids) for label, pids in others.items()})
    busy0, total0 = machine_busy()
    db0 = _database_counters(setup)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = time.process_time()
    argv = [sys.executable, str(Path(__file__).resolve()), "send", "--port", str(setup.port),
            "--messages", str(path), "--sessions", str(sessions), "--out", str(out)]
    if rate:
        argv += ["--rate", str(rate)]
    t0 = time.time()
    sender = subprocess.Popen(argv, cwd=ROOT)
    samples: list[tuple[float, int, int]] = []  # (seconds since start, stored, waiting)
    sending_until: float | None = None
    deadline = time.monotonic() + drain_timeout_s + len(messages) / (rate or 1000)
    while True:
        total, waiting = _backlog(setup.engine, above)
        samples.append((time.time() - t0, total, waiting))
        if sending_until is None and sender.poll() is not None:
            sending_until = time.time() - t0
        if sending_until is not None and total >= len(messages) and waiting == 0:
            break
        if sending_until is not None and total < len(messages) and \
                time.time() - t0 > sending_until + 30:
            break  # not everything was accepted: no use waiting for it
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    done_at = time.time()
    busy1, total1 = machine_busy()
    db1 = _database_counters(setup)
    cpu1 = {label: tree_cpu_seconds(pid) for label, pid in ours.items()}
    cpu1.update({label: sum(cpu_seconds(p) for p in others[label]) for label in others})
    if sender.wait(60) != 0:
        raise RuntimeError(f"the sender exited {sender.returncode}")
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = (sum(cpu1[label] - cpu0[label] for label in cpu1 if "shared" not in label)
            + children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime
            + time.process_time() - self0)
    sent = json.loads(out.read_text())
    accepted = sent["accepted"]
    by_id = {queued: (t250, took) for _i, queued, t250, took in accepted}
    with setup.engine.connect() as conn:
        rows = conn.execute(select(Message.id, Message.state, Message.processed_at)
                            .where(Message.id > above)).all()
        reports = conn.execute(select(Report.message_id, Report.case_id, Report.review_reason,
                                      Report.duplicate_of, Report.customer_id)
                               .join(Message, Message.id == Report.message_id)
                               .where(Message.id > above)).all()
    latencies, finished = [], []
    not_done = 0
    for message_id, state, processed_at in rows:
        if message_id not in by_id or processed_at is None or state != "processed":
            not_done += message_id in by_id
            continue
        at = _utc(processed_at).timestamp()
        finished.append(at)
        latencies.append(at - by_id[message_id][0])
    outside = [r for r in reports if r.case_id is None]
    t250s = [t for t, _ in by_id.values()]
    first250 = min(t250s) if t250s else t0
    span = (max(finished) - first250) if finished else float("nan")
    send_window = [(t, w) for t, _, w in samples if t <= (sending_until or 0)]
    result: dict[str, Any] = {
        "messages": len(messages), "accepted": len(accepted), "failures": sent["failures"],
        "failure_samples": sent["failure_samples"], "processed": len(finished),
        "not_processed": not_done, "reports": len(reports),
        "reports_in_case": len(reports) - len(outside),
        "cases": len({r.case_id for r in reports if r.case_id is not None}),
        "customers": len({r.customer_id for r in reports if r.customer_id is not None}),
        "outside_case_samples": [str(r.review_reason or f"duplicate_of={r.duplicate_of}")
                                 for r in outside[:5]],
        "offered_rate": rate,
        "intake_per_s": len(accepted) / sent["elapsed_s"] if sent["elapsed_s"] else 0.0,
        "send_s": sent["elapsed_s"],
        "reports_per_s": (len(reports) - len(outside)) / span if finished else 0.0,
        "first_250_to_last_case_s": span,
        "latency_p50_s": percentile(latencies, 50), "latency_p99_s": percentile(latencies, 99),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "smtp_reply_p50_ms": percentile([t for _, t in by_id.values()], 50) * 1000,
        "smtp_reply_p99_ms": percentile([t for _, t in by_id.values()], 99) * 1000,
        "backlog_peak": max((w for _, _, w in samples), default=0),
        "backlog_slope_per_s": _slope(send_window),
        "backlog_at_end_of_send": send_window[-1][1] if send_window else 0,
        "backlog_samples": [[round(t, 1), w] for t, _, w in samples[::max(1, len(samples) // 60)]],
        "wall_s": done_at - t0,
        "cpu_s_per_report": {label: (cpu1[label] - cpu0[label]) / max(1, len(finished))
                             for label in cpu1},
        "machine_busy_share": (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0,
        # CPU the machine spent on anything but this benchmark (other people's work)
        "foreign_cpu_share": max(0.0, (busy1 - busy0 - mine) / (total1 - total0))
        if total1 > total0 else 0.0,
        "peak_rss_mib": {label: peak_rss_mib(pid) for label, pid in ours.items()},
        "database_per_report": {key: (db1[key] - db0[key]) / max(1, len(reports))
                                for key in db1},
    }
    return result


def _database_counters(setup: Setup) -> dict[str, float]:
    """PostgreSQL's own counters (empty on SQLite): the bench database's transactions and rows
    written (``pg_stat_database``), and the WAL the server wrote (cluster-wide: anything else
    on the server counts too). Statistics reach the view after the backends flush them, so
    the figures are read after a short wait."""
    if setup.database is None:
        return {}
    from sqlalchemy import text

    time.sleep(1.2)  # backends report their statistics about once a second
    with setup.engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(text(
            "SELECT xact_commit + xact_rollback AS transactions,"
            " tup_inserted + tup_updated + tup_deleted AS rows_written,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS wal_bytes"
            " FROM pg_stat_database WHERE datname = current_database()")).one()
    return {"transactions": float(row.transactions), "rows written": float(row.rows_written),
            "WAL bytes": float(row.wal_bytes)}


# ---------------------------------------------------------------- the benchmark

TARGET_RATE = 500.0
SETUPS = ("embedded", "postgres")


def _ms(seconds: float) -> float:
    return seconds * 1000


def _rows(name: str, burst: dict[str, Any], paced: dict[str, Any],
          easy: dict[str, Any]) -> list[dict[str, Any]]:
    label = "(i) embedded, SQLite" if name == "embedded" else "(ii) PostgreSQL + Redis, 2 workers"
    n = burst["messages"]
    rows = [
        row(f"{label}: {n:,} mixed reports, first 250 to last in a case", burst["reports_per_s"],
            "reports/s", "SMTP intake over 10 sessions, same run", burst["intake_per_s"]),
        row(f"{label}: 250 to case, p50", _ms(burst["latency_p50_s"]), "ms",
            "SMTP reply p50 (end of DATA to 250)", burst["smtp_reply_p50_ms"]),
        row(f"{label}: 250 to case, p99", _ms(burst["latency_p99_s"]), "ms",
            "SMTP reply p99", burst["smtp_reply_p99_ms"]),
        row(f"{label}: backlog growth while sending", burst["backlog_slope_per_s"], "msgs/s",
            "SMTP intake", burst["intake_per_s"]),
        row(f"{label}: offered {paced['offered_rate']:.0f}/s ({paced['messages']:,} msgs): "
            "processed", paced["reports_per_s"], "reports/s", "intake reached",
            paced["intake_per_s"]),
        row(f"{label}: offered {paced['offered_rate']:.0f}/s: backlog growth while sending",
            paced["backlog_slope_per_s"], "msgs/s", "intake reached", paced["intake_per_s"]),
        row(f"{label}: offered {paced['offered_rate']:.0f}/s: 250 to case, p50 / p99",
            _ms(paced["latency_p50_s"]), "ms", "p99", _ms(paced["latency_p99_s"])),
        row(f"{label}: offered {easy['offered_rate']:.0f}/s (half the throughput, "
            f"{easy['messages']:,} msgs): 250 to case, p50 / p99",
            _ms(easy["latency_p50_s"]), "ms", "p99", _ms(easy["latency_p99_s"])),
        row(f"{label}: offered {easy['offered_rate']:.0f}/s: backlog growth while sending",
            easy["backlog_slope_per_s"], "msgs/s", "intake reached", easy["intake_per_s"]),
    ]
    return rows


def _cpu_note(name: str, result: dict[str, Any]) -> str:
    parts = ", ".join(f"{label} {seconds * 1000:.1f}"
                      for label, seconds in result["cpu_s_per_report"].items())
    database = "".join(f"; {key} per report {value:,.1f}"
                       for key, value in result.get("database_per_report", {}).items())
    return (f"{name}: CPU ms per report (a process with its children: a worker's examiners): "
            f"{parts}{database}; machine busy {result['machine_busy_share']:.0%} "
            f"of 2 cores during the burst, {result['foreign_cpu_share']:.0%} of it not this "
            "benchmark's; peak RSS MiB: "
            + ", ".join(f"{k} {v:.0f}" for k, v in result["peak_rss_mib"].items()))


def run(quick: bool = False, messages: int | None = None,
        only: Sequence[str] | None = None, paced_s: float | None = None,
        profile: Path | None = None, logs: Path | None = None,
        redis_db: int = BENCH_REDIS_DB) -> dict[str, Any]:
    count = messages or (1_000 if quick else 10_000)
    paced_count = int(TARGET_RATE * (paced_s or (2 if quick else 10)))
    rows: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    notes: list[str] = []
    details: dict[str, Any] = {}
    for name in only or SETUPS:
        if name == "postgres" and not (postgres_available() and redis_available()):
            notes.append("postgres: skipped, PostgreSQL or Redis is not on 127.0.0.1")
            continue
        with tempfile.TemporaryDirectory(prefix=f"bench-pipeline-{name}-") as tmp:
            folder = Path(tmp)
            with running(name, folder, logs, redis_db) as setup:
                # warm up: the workers load the customer index, schemas, templates
                run_load(setup, [m for _, m in mixed_reports(50, first=9_000_000)], folder)
                burst = run_load(setup, [m for _, m in mixed_reports(count)], folder,
                                 profile=profile)
                paced = run_load(setup, [m for _, m in mixed_reports(paced_count,
                                                                     first=5_000_000)],
                                 folder, rate=TARGET_RATE)
                easy_rate = max(5.0, round(burst["reports_per_s"] / 2))
                easy = run_load(setup, [m for _, m in mixed_reports(
                    int(easy_rate * (paced_s or (4 if quick else 20))), first=7_000_000)],
                    folder, rate=easy_rate)
        details[name] = {"burst": burst, "paced": paced, "half_load": easy}
        rows += _rows(name, burst, paced, easy)
        notes.append(_cpu_note(name, burst))
        notes.append(f"{name}: {burst['reports_in_case']:,} of {burst['reports']:,} reports in "
                     f"{burst['cases']:,} cases of {burst['customers']:,} customers; "
                     f"{burst['failures']} SMTP failures; backlog peak "
                     f"{burst['backlog_peak']:,} messages")
        for run_name, result in (("burst", burst), ("paced", paced), ("half load", easy)):
            if result["reports_in_case"] < result["messages"]:
                notes.append(f"{name} {run_name}: only {result['reports_in_case']:,} of "
                             f"{result['messages']:,} reports reached a case: "
                             f"{result['outside_case_samples'] or result['failure_samples']}")
        if name == "postgres":
            rate = burst["reports_per_s"]
            targets.append(target("(ii) reports/s on this 2-core machine", f">= {TARGET_RATE:.0f}",
                                  f"{rate:.0f}", rate >= TARGET_RATE))
            grows = paced["backlog_slope_per_s"]
            keeps_up = (paced["intake_per_s"] >= 0.95 * TARGET_RATE
                        and grows < 0.05 * TARGET_RATE)
            targets.append(target(
                f"(ii) keeps up with intake at {TARGET_RATE:.0f}/s offered",
                "backlog does not grow while mail arrives",
                f"intake {paced['intake_per_s']:.0f}/s, backlog {grows:+.0f} msgs/s, "
                f"{paced['backlog_at_end_of_send']:,} waiting when the sending stopped",
                keeps_up))
    notes.append("latency: from the client's 250 to messages.processed_at, the time the worker "
                 "starts the transaction that stores the reports and puts them in cases (its "
                 "commit, a few ms, is not included)")
    return {"name": "pipeline", "rows": rows, "targets": targets, "notes": notes,
            "details": details}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["send"]:
        return _send_cli(argv[1:])
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     epilog=doc.split("\n\n", 1)[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 reports: a smoke run")
    parser.add_argument("--messages", type=int, metavar="N",
                        help="reports in the burst (default 10,000; 1,000 with --quick)")
    parser.add_argument("--paced-seconds", type=float, metavar="S",
                        help="length of the paced run at 500/s (default 10; 2 with --quick)")
    parser.add_argument("--only", nargs="+", choices=SETUPS, help="run only these setups")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", dest="profile",
                        help="record the workers with py-spy during the burst (collapsed "
                        "stacks in DIR) and print their top costs")
    parser.add_argument("--redis-db", type=int, default=BENCH_REDIS_DB, metavar="N",
                        help=f"the Redis db of the broker, emptied before and after (default "
                        f"{BENCH_REDIS_DB}; two benchmarks running at once must not share one: "
                        "each would take the other's jobs and empty its queue)")
    parser.add_argument("--logs", type=Path, metavar="DIR",
                        help="keep the desk processes' output in DIR")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    section = run(args.quick, args.messages, args.only, args.paced_seconds, args.profile,
                  args.logs, args.redis_db)
    print(format_section(section))
    if args.profile:
        for path in sorted(args.profile.glob("*.txt")):
            print(f"\n== py-spy {path.stem}: inclusive / self share of samples")
            for name, inclusive, own in top_costs(path):
                print(f"{inclusive:6.1%} {own:6.1%}  {name}")
    if args.json:
        args.json.write_text(json.dumps(section, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
