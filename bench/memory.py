"""Peak memory of the listener and of a worker under big messages: is it bounded?

    .venv/bin/python bench/memory.py                # 20 sessions x 10 MiB; one 25 MiB message
    .venv/bin/python bench/memory.py --quick        # 5 sessions x 2 MiB; one 5 MiB message
    .venv/bin/python bench/memory.py --json out.json

* The listener: ``abuse-desk smtp`` (PostgreSQL in a throwaway database, Redis db 13; and on
  SQLite) while 20 sessions each send a 10 MiB message at once (a Python client in a separate
  process). Its peak RSS (VmHWM, reset to the resting RSS just before the load through
  /proc/PID/clear_refs) is set beside its RSS at rest; the growth is set beside the bytes in
  flight (sessions x message size): a ratio of 1 is one copy of every message held at once.
* The same load against bare aiosmtpd (``bench/smtp.py --bare-server``), storing nothing:
  what aiosmtpd itself holds (it keeps a message as a list of lines, then joins them).
* A worker: ``abuse-desk worker`` (PostgreSQL, Redis db 13) parsing one message of about
  25 MiB (a written complaint with a CSV, a zip of logs, a PDF and a screenshot attached,
  base64), stored with ``abuse-desk import``. Its peak beside its RSS at rest (after it has
  processed a small message, so that the parsers are loaded), the growth beside the message.

Prints a table; ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import base64
import io
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

MIB = 1024 * 1024


# ---------------------------------------------------------------- messages

def _b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def _part(content_type: str, filename: str, data: bytes) -> bytes:
    return (f"Content-Type: {content_type}; name=\"{filename}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + _b64_lines(data)


def _head(subject: str, n: int, boundary: str) -> bytes:
    return (f"From: NOC <noc@reporter.example>\r\nTo: abuse@integra-isp.example\r\n"
            f"Subject: {subject}\r\nDate: Tue, 24 Nov 2026 14:00:00 +0000\r\n"
            f"Message-ID: <bench-memory-{n}-{time.monotonic_ns()}@reporter.example>\r\n"
            "MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").encode()


def session_message(size: int, n: int, rng: random.Random) -> bytes:
    """A complaint of *size* bytes, mostly one base64 attachment (a packet capture)."""
    boundary = f"b-{n}"
    text = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"Port scan from 45.137.21.{n % 250 + 1} at 2026-11-24 13:00:00 UTC, capture "
            "attached.\r\n").encode()
    head = _head(f"Port scan from 45.137.21.{n % 250 + 1}", n, boundary)
    tail = f"--{boundary}--\r\n".encode()
    room = size - len(head) - len(text) - len(tail) - 200
    raw_len = room * 57 // 78  # base64 with CRLF every 76 characters
    body = _part("application/vnd.tcpdump.pcap", "capture.pcap", rng.randbytes(raw_len))
    return head + text + f"--{boundary}\r\n".encode() + body + tail


def worker_message(size: int, rng: random.Random) -> bytes:
    """A written complaint of about *size* bytes with several attachments: a CSV of attacks, a
    zip of logs, a PDF and a PNG (the last two random bytes), all base64."""
    boundary = "bench-mixed"
    ip = "45.137.21.77"
    text = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"Hello,\r\n\r\nyour customer at {ip} has been attacking our SSH servers since "
            "2026-11-24 12:00 UTC. The attempts, our server logs, our report and a "
            "screenshot are attached.\r\n\r\nRegards,\r\nNOC\r\n").encode()
    raw_budget = size * 57 // 78  # what base64 leaves for the attachments' own bytes
    csv_rows = ["time,source_ip,source_port,destination_port,attempts"]
    csv_size = raw_budget * 3 // 10
    total = 0
    while total < csv_size:
        row = (f"2026-11-24T{rng.randrange(12, 14):02d}:{rng.randrange(60):02d}:"
               f"{rng.randrange(60):02d}Z,{ip},{rng.randrange(1024, 65536)},22,"
               f"{rng.randrange(1, 50)}")
        csv_rows.append(row)
        total += len(row) + 2
    csv = ("\r\n".join(csv_rows) + "\r\n").encode()
    logs = io.BytesIO()
    with zipfile.ZipFile(logs, "w", zipfile.ZIP_DEFLATED) as z:
        lines = []
        log_size = 0
        while log_size < raw_budget * 6 // 10:  # compresses to about a third
            line = (f"Nov 24 13:{rng.randrange(60):02d}:{rng.randrange(60):02d} ssh1 sshd"
                    f"[{rng.randrange(99999)}]: Failed password for "
                    f"{rng.choice(['root', 'admin', 'oracle', 'ubuntu'])} from {ip} port "
                    f"{rng.randrange(1024, 65536)} ssh2 {rng.randbytes(6).hex()}\n")
            lines.append(line)
            log_size += len(line)
        z.writestr("auth.log", "".join(lines))
    zipped = logs.getvalue()
    left = max(0, raw_budget - len(csv) - len(zipped))
    pdf = b"%PDF-1.4\n" + rng.randbytes(left * 6 // 10)
    png = b"\x89PNG\r\n\x1a\n" + rng.randbytes(left * 4 // 10)
    parts = [text]
    for content_type, name, data in (("text/csv", "attempts.csv", csv),
                                     ("application/zip", "auth-logs.zip", zipped),
                                     ("application/pdf", "report.pdf", pdf),
                                     ("image/png", "screenshot.png", png)):
        parts.append(f"--{boundary}\r\n".encode() + _part(content_type, name, data))
    return (_head(f"SSH brute force from {ip}", 0, boundary) + b"".join(parts)
            + f"--{boundary}--\r\n".encode())


# ---------------------------------------------------------------- measuring

@contextmanager
def _backends(folder: Path, kind: str) -> Iterator[str]:
    """The database URL for *kind* (``pg``: a throwaway PostgreSQL database; ``sqlite``)."""
    if kind == "pg":
        with common.postgres_database() as url:
            common.upgrade_database(url)
            yield url
    else:
        url = f"sqlite:///{folder / 'desk.db'}"
        common.upgrade_database(url)
        yield url


def _rest(pid: int) -> float:
    """Let the process settle, then its RSS; resets its peak to that."""
    time.sleep(1.0)
    rest = common.rss_mib(pid)
    if not common.reset_peak_rss(pid):
        raise RuntimeError("cannot reset VmHWM (/proc/PID/clear_refs): the peak would include "
                           "start-up")
    return rest


def measure_listener(kind: str, sessions: int, size: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(7)
    body_file = folder / f"session-{kind}.eml"
    body_file.write_bytes(session_message(size, 1, rng))
    with _backends(folder, kind) as url:
        common.flush_redis()
        sections = common.base_sections(folder / kind, database_url=url,
                                        broker_url=common.redis_url(),
                                        smtp={"max_connections_per_ip": max(20, sessions)})
        try:
            with common.DeskProcess("smtp", sections) as desk:
                warm = common.smtp_load_process(desk.smtp_port, 20, 4, 4096)
                assert warm["accepted"] == 20, warm
                rest = _rest(desk.pid)
                got = common.smtp_load_process(desk.smtp_port, sessions, sessions, size,
                                               body_file=body_file)
                peak = common.peak_rss_mib(desk.pid)
                after = common.rss_mib(desk.pid)
        finally:
            common.flush_redis()
    if got["accepted"] != sessions:
        raise RuntimeError(f"listener accepted {got['accepted']} of {sessions}: "
                           f"{got['failure_samples']}")
    return {"rest_mib": rest, "peak_mib": peak, "after_mib": after, "seconds": got["elapsed_s"],
            "message_mib": body_file.stat().st_size / MIB, "sessions": sessions}


def measure_bare(sessions: int, size: int, folder: Path) -> dict[str, Any]:
    """The same load against bare aiosmtpd (``bench/smtp.py --bare-server``): what aiosmtpd
    itself holds, storing nothing."""
    body_file = folder / "session-bare.eml"
    body_file.write_bytes(session_message(size, 1, random.Random(7)))
    port = common.free_port()
    proc = subprocess.Popen([sys.executable, str(common.HERE / "smtp.py"), "--bare-server",
                             str(port)], start_new_session=True)
    try:
        common.wait_for_port("127.0.0.1", port, 30, proc)
        common.smtp_load_process(port, 20, 4, 4096)
        rest = _rest(proc.pid)
        got = common.smtp_load_process(port, sessions, sessions, size, body_file=body_file)
        peak = common.peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return {"rest_mib": rest, "peak_mib": peak, "seconds": got["elapsed_s"],
            "message_mib": body_file.stat().st_size / MIB, "sessions": sessions}


def _processed(url: str, count: int) -> bool:
    from abuse_desk.core.models import Message, MessageState
    from sqlalchemy import create_engine, func, select

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            done = conn.execute(select(func.count()).select_from(Message)
                                .where(Message.state != MessageState.RECEIVED.value)).scalar()
    finally:
        engine.dispose()
    return int(done or 0) >= count


def _import(sections: dict[str, dict[str, Any]], path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "import", "--quiet",
                           str(path)], env=common.desk_env(sections), cwd=common.ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"abuse-desk import failed: {done.stderr[-2000:]}")


def _wait_processed(url: str, count: int, pid: int, timeout_s: float = 600) -> float:
    started = time.monotonic()
    while not _processed(url, count):
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the worker did not process message {count} in {timeout_s} s")
        time.sleep(0.2)
    return time.monotonic() - started


def measure_worker(size: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(11)
    big = folder / "big.eml"
    big.write_bytes(worker_message(size, rng))
    small = folder / "small.eml"
    small.write_bytes(common.make_message(4096, 1))
    with _backends(folder, "pg") as url:
        common.flush_redis()
        sections = common.base_sections(folder / "worker", database_url=url,
                                        broker_url=common.redis_url())
        try:
            with common.DeskProcess("worker", sections) as worker:
                _import(sections, small)
                _wait_processed(url, 1, worker.pid)
                common.wait_idle([worker.pid])
                rest = _rest(worker.pid)
                _import(sections, big)
                took = _wait_processed(url, 2, worker.pid)
                common.wait_idle([worker.pid])
                peak = common.peak_rss_mib(worker.pid)
                after = common.rss_mib(worker.pid)
                outcome = _outcome(url)
        finally:
            common.flush_redis()
    return {"rest_mib": rest, "peak_mib": peak, "after_mib": after, "seconds": took,
            "message_mib": big.stat().st_size / MIB, "outcome": outcome}


def _outcome(url: str) -> str:
    """What the pipeline made of the big message: its state and reports."""
    from abuse_desk.core.models import Message, Report
    from sqlalchemy import create_engine, func, select

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            state, disposition, fmt, error = conn.execute(
                select(Message.state, Message.disposition, Message.format, Message.error)
                .order_by(Message.id.desc()).limit(1)).one()
            reports = conn.execute(select(func.count()).select_from(Report)).scalar()
    finally:
        engine.dispose()
    return (f"state {state}, disposition {disposition}, format {fmt}"
            f"{f', error {error!r}' if error else ''}; {reports} report(s) in the database")


# ---------------------------------------------------------------- the run

def run(quick: bool = False) -> dict[str, Any]:
    sessions, size = (5, 2 * MIB) if quick else (20, 10 * MIB)
    worker_size = 5 * MIB if quick else 25 * MIB
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    targets: list[dict[str, Any]] = []
    if not (common.postgres_available() and common.redis_available()):
        return {"name": "memory", "rows": [], "targets": [],
                "notes": ["PostgreSQL or Redis not reachable: nothing measured"]}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        bare = measure_bare(sessions, size, folder)
        load = f"{bare['sessions']} sessions x {bare['message_mib']:.1f} MiB at once"
        in_flight = bare["sessions"] * bare["message_mib"]
        bare_growth = bare["peak_mib"] - bare["rest_mib"]
        for kind, label in (("pg", "PostgreSQL + Redis"), ("sqlite", "SQLite + Redis")):
            (folder / kind).mkdir()
            m = measure_listener(kind, sessions, size, folder)
            growth = m["peak_mib"] - m["rest_mib"]
            rows.append(common.row(f"peak RSS, listener ({label}), {load}", m["peak_mib"],
                                   "MiB", "its RSS at rest", m["rest_mib"]))
            rows.append(common.row(f"growth (peak - rest), listener ({label}), {load}",
                                   growth, "MiB", "bytes in flight (sessions x size)",
                                   in_flight))
            rows.append(common.row(f"growth, listener ({label}), {load}", growth, "MiB",
                                   "growth of bare aiosmtpd (stores nothing), same load",
                                   bare_growth))
            notes.append(f"listener ({label}): {m['seconds']:.1f} s for the {m['sessions']} "
                         f"messages; RSS {m['after_mib']:.0f} MiB afterwards (freed memory "
                         "stays with the process)")
        rows.append(common.row(f"growth (peak - rest), bare aiosmtpd, {load}", bare_growth,
                               "MiB", "bytes in flight (sessions x size)", in_flight))
        w = measure_worker(worker_size, folder)
        what = f"worker parsing one {w['message_mib']:.1f} MiB message with 4 attachments"
        rows.append(common.row(f"peak RSS, {what}", w["peak_mib"], "MiB", "RSS at rest",
                               w["rest_mib"]))
        rows.append(common.row(f"growth (peak - rest), {what}", w["peak_mib"] - w["rest_mib"],
                               "MiB", "message size", w["message_mib"]))
        notes.append(f"worker: {w['seconds']:.1f} s to process the message "
                     f"({w['outcome']}); RSS {w['after_mib']:.0f} MiB afterwards")
    notes.append("peak = VmHWM after the load, reset to the resting RSS just before it "
                 "(/proc/PID/clear_refs); rest = VmRSS after warming up (a few small "
                 "messages)")
    return {"name": "memory", "rows": rows, "targets": targets, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    return common.standard_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
