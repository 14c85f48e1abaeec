"""SMTP accept rate of the abuse@ listener, beside the C and the Python ceilings.

    .venv/bin/python bench/smtp.py                  # 5,000 messages of 4 KiB per run, 3 rounds
    .venv/bin/python bench/smtp.py --quick          # 500 messages, 1 round: to see that it runs
    .venv/bin/python bench/smtp.py --json out.json

Servers, all started as child processes and left up for the whole run:

* ``smtp-sink`` (Postfix's test server, C; ``-p``: no PIPELINING, as aiosmtpd offers none):
  accepts and stores nothing. The C ceiling.
* bare aiosmtpd (``bench/smtp.py --bare-server PORT``): a handler that answers 250 and stores
  nothing. The Python ceiling, and the reference of the target.
* ``abuse-desk smtp`` on PostgreSQL (a throwaway database) and Redis (db 13): the production
  listener, storing every message durably (group commit) before its 250, then sending its id
  to the broker.
* ``abuse-desk smtp --processes 2`` on the same PostgreSQL database and Redis: two listener
  processes on one port (SO_REUSEPORT), one per core of this machine, beside smtp-sink: the
  figure for a host that uses all its cores. Its CPU is the children's.
* ``abuse-desk smtp`` on SQLite (a temp dir) and Redis: the same listener on the embedded
  database.
* ``abuse-desk serve`` on SQLite: the embedded default, whose workers parse the messages in the
  same process while the load runs, as they would. It gets 1,000 messages per run, not 5,000.

Load comes from separate processes: Postfix's ``smtp-source`` (5,000 messages of 4 KiB; 1 and
10 parallel sessions; connection reuse on (``-d``) and off) gives the accept rates; a Python
client (``bench/common.py smtp-load``: asyncio, timing from sending the final ``\\r\\n.\\r\\n``
to reading the reply) gives p50/p99 of end-of-DATA to 250. ``smtp-source`` and ``smtp-sink``
come out of Debian's ``postfix`` package, fetched with ``apt-get download`` and unpacked under
/tmp/postfix-x (never installed, no postfix daemon runs); without them the Python client
measures the rates too and the notes say so. The CPU time each server used per message is
read from /proc. Each round runs every load against all the servers back to back in random
order (waiting for the desks to go idle first), the loads themselves in random order; a
figure is the median over the rounds, a ratio the median of the per-round ratios.

Targets (issues 7 and 20): one listener process storing durably accepts at least 0.9 x what
bare aiosmtpd accepts at 10 sessions in the same run; the listener processes of a host
(``--processes 2`` here) accept at least 4,000 msg/s at 10 sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

POSTFIX_DIR = Path("/tmp/postfix-x")
SENDER = "reporter@example.net"
RCPT = "abuse@integra-isp.example"
SIZE = 4096
LABELS = {
    "sink": "smtp-sink (C, stores nothing)",
    "bare": "bare aiosmtpd (stores nothing)",
    "desk-pg": "abuse-desk smtp, PostgreSQL + Redis",
    "desk-pg-2": "abuse-desk smtp --processes 2, PostgreSQL + Redis",
    "desk-sqlite": "abuse-desk smtp, SQLite + Redis",
    "serve": "abuse-desk serve, SQLite (embedded default)",
}
LISTENERS = ("desk-pg", "desk-sqlite")  # the target is about these: the listener on its own
HOST_LISTENERS = ("desk-pg-2",)  # the listener processes of a host, beside smtp-sink
HOST_TARGET = 4000.0  # msg/s


# ---------------------------------------------------------------- Postfix's test tools

def postfix_tools() -> tuple[Path, dict[str, str]] | None:
    """The folder holding smtp-source and smtp-sink and the environment they run in, fetching
    Debian's postfix package (``apt-get download``, unpacked, not installed) if need be; None
    when that is not possible."""
    sbin = POSTFIX_DIR / "usr/sbin"
    if not (sbin / "smtp-source").exists():
        if not (shutil.which("apt-get") and shutil.which("dpkg")):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run(["apt-get", "download", "postfix"], cwd=tmp,
                                 capture_output=True, check=False, timeout=300)
            debs = list(Path(tmp).glob("postfix_*.deb"))
            if got.returncode != 0 or not debs:
                return None
            subprocess.run(["dpkg", "-x", str(debs[0]), str(POSTFIX_DIR)], check=False,
                           capture_output=True, timeout=300)
    if not (sbin / "smtp-source").exists():
        return None
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(POSTFIX_DIR / "usr/lib/postfix")
    return sbin, env


def smtp_source(tools: tuple[Path, dict[str, str]], port: int, messages: int, sessions: int,
                size: int, reuse: bool) -> float:
    """Messages per second ``smtp-source`` got accepted (it exits non-zero on any refusal)."""
    sbin, env = tools
    argv = [str(sbin / "smtp-source"), "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-f", SENDER, "-t", RCPT, "-M", "bench.example"]
    if reuse:
        argv.append("-d")
    argv.append(f"127.0.0.1:{port}")
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {done.stderr.strip()[-500:]}")
    return messages / elapsed


# ---------------------------------------------------------------- the bare aiosmtpd ceiling

class _Bare:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def bare_server(port: int) -> None:
    """aiosmtpd answering 250 to everything, storing nothing, in this process's loop."""
    from aiosmtpd.smtp import SMTP

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(_Bare(), hostname="bare.example", decode_data=False,
                         data_size_limit=25 * 1024 * 1024, enable_SMTPUTF8=True),
            host="127.0.0.1", port=port, reuse_address=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# ---------------------------------------------------------------- servers under load

def listening_pids(port: int, pids: Sequence[int]) -> list[int]:
    """Those of *pids* that hold a socket listening on 127.0.0.1:*port* (/proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    holding = []
    for pid in pids:
        with contextlib.suppress(OSError):
            folder = Path(f"/proc/{pid}/fd")
            for fd in folder.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        holding.append(pid)
                        break
    return holding


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_listeners(pid: int, port: int, count: int, timeout_s: float = 60.0) -> list[int]:
    """The *count* children of *pid* once each listens on *port*."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kids = children_of(pid)
        if len(kids) == count and len(listening_pids(port, kids)) == count:
            return kids
        time.sleep(0.2)
    raise TimeoutError(f"{count} listener processes did not all listen on {port}")


@dataclass
class Server:
    key: str
    label: str
    port: int
    pids: list[int] = field(default_factory=list)
    desk: bool = False


@contextlib.contextmanager
def _child(argv: Sequence[str], port: int, env: dict[str, str] | None = None
           ) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(list(argv), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        common.wait_for_port("127.0.0.1", port, 30, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def servers(tools: tuple[Path, dict[str, str]] | None, folder: Path, with_postgres: bool,
            notes: list[str]) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack:
        up: list[Server] = []
        if tools is not None:
            port = common.free_port()
            sink = [str(tools[0] / "smtp-sink")]
            if os.geteuid() == 0:
                sink += ["-u", "nobody"]
            # -p: no PIPELINING (aiosmtpd offers none either), so the dialogue is the same.
            proc = stack.enter_context(_child([*sink, "-p", f"127.0.0.1:{port}", "256"],
                                              port, tools[1]))
            up.append(Server("sink", LABELS["sink"], port, [proc.pid]))
        port = common.free_port()
        proc = stack.enter_context(_child(
            [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)], port))
        up.append(Server("bare", LABELS["bare"], port, [proc.pid]))

        if with_postgres:
            url = stack.enter_context(common.postgres_database())
            common.upgrade_database(url)
            common.flush_redis()
            stack.callback(common.flush_redis)
            sections = common.base_sections(folder / "pg", database_url=url,
                                            broker_url=common.redis_url())
            desk = stack.enter_context(common.DeskProcess("smtp", sections))
            up.append(Server("desk-pg", LABELS["desk-pg"], desk.smtp_port, [desk.pid],
                             desk=True))
            (folder / "pg-2").mkdir()
            sections = common.base_sections(folder / "pg-2", database_url=url,
                                            broker_url=common.redis_url())
            desk = stack.enter_context(common.DeskProcess(["smtp", "--processes", "2"],
                                                          sections))
            kids = wait_listeners(desk.pid, desk.smtp_port, 2)
            up.append(Server("desk-pg-2", LABELS["desk-pg-2"], desk.smtp_port, kids,
                             desk=True))
            (folder / "sqlite-smtp").mkdir()
            sections = common.base_sections(folder / "sqlite-smtp",
                                            broker_url=common.redis_url())
            desk = stack.enter_context(common.DeskProcess("smtp", sections))
            up.append(Server("desk-sqlite", LABELS["desk-sqlite"], desk.smtp_port, [desk.pid],
                             desk=True))
        else:
            notes.append("PostgreSQL or Redis not reachable: only `abuse-desk serve` was "
                         "measured, not the listener on its own")
        (folder / "serve").mkdir()
        sections = common.base_sections(folder / "serve")
        desk = stack.enter_context(common.DeskProcess("serve", sections))
        up.append(Server("serve", LABELS["serve"], desk.smtp_port, [desk.pid], desk=True))
        yield up


# ---------------------------------------------------------------- the run

def run(quick: bool = False) -> dict[str, Any]:
    messages = 500 if quick else 5000
    latency_messages = 300 if quick else 2000
    serve_messages = 200 if quick else 1000  # serve parses as it goes: 5,000 take minutes
    rounds = 1 if quick else 3
    notes: list[str] = []
    tools = postfix_tools()
    if tools is None:
        notes.append("smtp-source/smtp-sink not available (apt-get download postfix failed): "
                     "rates measured with the Python client, no C ceiling")
    with_postgres = common.postgres_available() and common.redis_available()
    rng = random.Random()
    rates: dict[tuple[str, int, bool], list[float]] = {}
    cpu: dict[tuple[str, int, bool], list[float]] = {}
    lat: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-smtp-") as tmp, \
            servers(tools, Path(tmp), with_postgres, notes) as up:
        desk_pids = [p for s in up if s.desk for p in s.pids]
        for s in up:  # warm-up: the first messages pay for imports, connections, caches
            common.smtp_load_process(s.port, 50, 5, SIZE)
        for n in range(rounds):
            # Each load runs against every server back to back (in random order), so a
            # figure and its reference see the same moment of a noisy machine; the loads too
            # come in a new random order each round.
            groups: list[tuple[str, int, bool]] = [
                ("rate", sessions, reuse) for sessions in (1, 10) for reuse in (True, False)]
            groups += [("latency", sessions, True) for sessions in (1, 10)]
            rng.shuffle(groups)
            for kind, sessions, reuse in groups:
                for s in rng.sample(up, len(up)):
                    common.wait_idle(desk_pids, timeout_s=300)
                    count = (messages if s.key != "serve" else serve_messages)
                    if kind == "rate":
                        _rate_run(s, tools, count, sessions, reuse, rates, cpu, n)
                    else:
                        _latency_run(s, min(count, latency_messages), sessions, lat, notes, n)
        common.wait_idle(desk_pids, timeout_s=300)
    notes.append(f"rates: {'smtp-source' if tools else 'Python client'}, {messages:,} messages "
                 f"of {SIZE} bytes per run ({serve_messages:,} for serve); latencies: Python "
                 f"client (separate process, connection reuse), {latency_messages:,} messages "
                 f"per run ({min(serve_messages, latency_messages):,} for serve); figures are "
                 f"medians of {rounds} round{'s' if rounds > 1 else ''}, ratios medians of "
                 "the per-round ratios (each load runs against all servers back to back, in "
                 "random order)")
    return section(rates, cpu, lat, notes)


def _rate_run(s: Server, tools: tuple[Path, dict[str, str]] | None, messages: int,
              sessions: int, reuse: bool, rates: dict[tuple[str, int, bool], list[float]],
              cpu: dict[tuple[str, int, bool], list[float]], n: int) -> None:
    cpu_before = sum(common.cpu_seconds(p) for p in s.pids)
    if tools is not None:
        rate = smtp_source(tools, s.port, messages, sessions, SIZE, reuse)
    else:
        rate = common.smtp_load_process(s.port, messages, sessions, SIZE, reuse)["per_s"]
    used_ms = (sum(common.cpu_seconds(p) for p in s.pids) - cpu_before) / messages * 1000
    rates.setdefault((s.key, sessions, reuse), []).append(rate)
    cpu.setdefault((s.key, sessions, reuse), []).append(used_ms)
    print(f"round {n + 1}: {s.key} {sessions} sessions reuse={reuse}: {rate:,.0f}/s, "
          f"{used_ms:.3f} ms CPU/msg", file=sys.stderr, flush=True)


def _latency_run(s: Server, messages: int, sessions: int,
                 lat: dict[tuple[str, int], list[dict[str, Any]]], notes: list[str],
                 n: int) -> None:
    got = common.smtp_load_process(s.port, messages, sessions, SIZE)
    if got["failures"]:
        notes.append(f"{s.key}: {got['failures']} failures, e.g. {got['failure_samples'][:1]}")
    lat.setdefault((s.key, sessions), []).append(got)
    print(f"round {n + 1}: {s.key} {sessions} sessions latency: p50 {got['p50_ms']:.2f} ms "
          f"p99 {got['p99_ms']:.2f} ms ({got['per_s']:,.0f}/s)", file=sys.stderr, flush=True)


def _sessions(n: int) -> str:
    return f"{n} session{'s' if n > 1 else ''}"


def _paired(values: list[float], refs: list[float] | None) -> float | None:
    """The median of the per-round ratios value / reference."""
    if not refs:
        return None
    return common.median([v / r for v, r in zip(values, refs, strict=False) if r])


def section(rates: dict[tuple[str, int, bool], list[float]],
            cpu: dict[tuple[str, int, bool], list[float]],
            lat: dict[tuple[str, int], list[dict[str, Any]]],
            notes: list[str]) -> dict[str, Any]:
    """The figures in the common shape: rates beside the ceiling one step up (the desk beside
    bare aiosmtpd, bare aiosmtpd beside smtp-sink), latencies beside bare aiosmtpd's."""
    rows: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    for sessions in (10, 1):
        for reuse in (True, False):
            how = f"{_sessions(sessions)}, {'reuse' if reuse else 'a connection per message'}"
            for key in LABELS:
                values = rates.get((key, sessions, reuse))
                if not values:
                    continue
                ref = ("sink" if key in ("bare", *HOST_LISTENERS) else None if key == "sink"
                       else "bare")
                refs = rates.get((ref, sessions, reuse)) if ref else None
                value, ratio = common.median(values), _paired(values, refs)
                rows.append(common.row(
                    f"accept rate: {LABELS[key]}, {how}", value, "msg/s",
                    LABELS[ref] if ref and refs else None,
                    common.median(refs) if refs else None, ratio))
                if key in LISTENERS and sessions == 10 and refs and ratio is not None:
                    targets.append(common.target(
                        f"accept rate, {LABELS[key]}, {how}", ">= 0.9 x bare aiosmtpd",
                        f"{ratio:.2f} x ({value:,.0f} vs {common.median(refs):,.0f} msg/s)",
                        ratio >= 0.9))
                if key in HOST_LISTENERS and sessions == 10 and reuse:
                    targets.append(common.target(
                        f"accept rate, {LABELS[key]}, {how}", f">= {HOST_TARGET:,.0f} msg/s",
                        f"{value:,.0f} msg/s" + (f" ({ratio:.2f} x smtp-sink, "
                                                 f"{common.median(refs):,.0f} msg/s)"
                                                 if refs and ratio is not None else ""),
                        value >= HOST_TARGET))
    for key in LABELS:
        values = cpu.get((key, 10, True))
        if values:
            refs = cpu.get(("bare", 10, True)) if key not in ("bare", "sink") else None
            rows.append(common.row(
                f"CPU per message: {LABELS[key]}, 10 sessions, reuse", common.median(values),
                "ms", LABELS["bare"] if refs else None, common.median(refs) if refs else None,
                _paired(values, refs)))
    for sessions in (10, 1):
        ref_runs = lat.get(("bare", sessions))
        for key in LABELS:
            runs = lat.get((key, sessions))
            if not runs:
                continue
            for q in ("p50", "p99"):
                values = [r[f"{q}_ms"] for r in runs]
                refs = [r[f"{q}_ms"] for r in ref_runs] if ref_runs and key != "bare" else None
                rows.append(common.row(
                    f"{q} end of DATA -> reply: {LABELS[key]}, {_sessions(sessions)}",
                    common.median(values), "ms", LABELS["bare"] if refs else None,
                    common.median(refs) if refs else None, _paired(values, refs)))
    notes.append("the target is about the listener on its own (`abuse-desk smtp`); "
                 "`abuse-desk serve` also parses every message in the same process (GIL) "
                 "and writes the results to the same SQLite file while the load runs")
    return {"name": "smtp", "rows": rows, "targets": targets, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--bare-server"]:
        bare_server(int(args[1]))
        return 0
    return common.standard_main(__doc__ or "", run, args)


if __name__ == "__main__":
    sys.exit(main())
