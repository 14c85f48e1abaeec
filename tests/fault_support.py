"""Helpers for the fault tests (tests/test_faults.py): desk processes that are killed and
started again, the burst sender, private PostgreSQL and RabbitMQ servers that a test may stop,
a small filesystem to fill, and the checks that nothing was lost or done twice."""

from __future__ import annotations

import contextlib
import email
import email.policy
import errno
import glob
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from abuse_desk.classifier.customer_import import import_customers
from abuse_desk.core.clock import system_clock
from abuse_desk.core.config import Config, SmtpConfig
from abuse_desk.core.models import Case, Customer, Event, Message, Notice, Report, TimelineStep
from abuse_desk.workflow.delivery import maildir_name

from tests.burst_sender import ARF_PREFIXES, arf_source_ip
from tests.conftest import unavailable
from tests.support import ROOT, config_env, free_port, wait_for, wait_port

# The customers the ARF bursts complain about: customer i owns ARF_PREFIXES[i].0/24.
CUSTOMER_IDS = [f"F-{i + 1}" for i in range(len(ARF_PREFIXES))]


def customers_csv() -> str:
    rows = ["customer_id,name,email,resource,valid_from,valid_until"]
    for i, prefix in enumerate(ARF_PREFIXES):
        rows.append(f"F-{i + 1},Fault Customer {i + 1},noc@f{i + 1}.example,{prefix}.0/24,,")
    return "\n".join(rows) + "\n"


def expected_customer(token: int) -> str:
    prefix = arf_source_ip(token).rsplit(".", 1)[0]
    return CUSTOMER_IDS[ARF_PREFIXES.index(prefix)]


def smtp_settings(**values: Any) -> dict[str, Any]:
    """``[smtp]`` for a fault test: *values*, and no per-peer message rate limit (every
    burst comes from 127.0.0.1; where the limit exists, 0 turns it off)."""
    if "max_messages_per_ip_per_minute" in {f.name for f in fields(SmtpConfig)}:
        values.setdefault("max_messages_per_ip_per_minute", 0)
    return values


def prepare_database(config: Config, tmp_path: Path, log: Path,
                     customers: bool = True) -> sa.Engine:
    """`abuse-desk db upgrade` (as production does, by hand) and the fault customers."""
    with log.open("ab") as fh:
        subprocess.run([sys.executable, "-m", "abuse_desk.app.cli", "db", "upgrade"], cwd=ROOT,
                       env=config_env(config), stdout=fh, stderr=subprocess.STDOUT, check=True)
    engine = sa.create_engine(config.database.url)
    if customers:
        csv = tmp_path / "fault-customers.csv"
        csv.write_text(customers_csv())
        import_customers(engine, csv, clock=system_clock)  # the processes' clock
    return engine


# ---- processes ---------------------------------------------------------------------------

class DeskProcess:
    """``abuse-desk ARGS`` as a child process that a test kills and starts again."""

    def __init__(self, config: Config, *args: str, log: Path, port: int | None = None) -> None:
        self.config, self.args, self.log, self.port = config, args, log, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> DeskProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as fh:
            fh.write(f"---- start {self.starts + 1} of abuse-desk {' '.join(self.args)}\n"
                     .encode())
            fh.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "abuse_desk.app.cli", *self.args], cwd=ROOT,
                env=config_env(self.config), stdout=fh, stderr=subprocess.STDOUT)
        self.starts += 1
        if self.port is not None:
            wait_port(self.port, 60, proc=self.proc)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.proc is not None and self.alive(), "not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> DeskProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Burst:
    """tests/burst_sender.py in its own process: COUNT messages, each retried until a 250."""

    def __init__(self, port: int, count: int, out: Path, arf: bool = True,
                 deadline_s: float = 900.0) -> None:
        self.count, self.out = count, out
        self.codes_file = out.with_suffix(".codes")
        args = [sys.executable, "-m", "tests.burst_sender", "--port", str(port), "--count",
                str(count), "--out", str(out), "--deadline-s", str(deadline_s),
                "--codes", str(self.codes_file)]
        self.proc = subprocess.Popen([*args, *(["--arf"] if arf else [])], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def refusals(self) -> Counter[int]:
        """How often each code other than 250 answered a DATA."""
        if not self.codes_file.exists():
            return Counter()
        return Counter(int(line.split()[1]) for line in self.codes_file.read_text().splitlines()
                       if len(line.split()) == 2)

    def acked(self) -> list[tuple[int, int]]:
        """(token, message id) of every 250 so far."""
        if not self.out.exists():
            return []
        pairs = []
        for line in self.out.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:  # a line being written has no id yet
                pairs.append((int(parts[0]), int(parts[1])))
        return pairs

    def finish(self, timeout: float) -> list[tuple[int, int]]:
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, out.decode(errors="replace")
        pairs = self.acked()
        assert sorted(t for t, _ in pairs) == list(range(self.count)), "a token was not acked"
        return pairs

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def send(port: int, raw: bytes, timeout: float = 30) -> tuple[int, bytes]:
    """One message on a new connection: (code, reply) of its DATA (or of the refusal)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        client.ehlo("prober.example.org")
        client.mail("prober@example.org")
        code, reply = client.rcpt("abuse@localhost")
        if code != 250:
            return code, reply
        return client.data(raw)


def queued_id(reply: bytes) -> int:
    return int(reply.decode().rsplit(" ", 1)[1])


# ---- the database: progress and the final checks -------------------------------------------

def count_states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(Message.state, sa.func.count())
                                 .group_by(Message.state)).all())


def processed_count(engine: sa.Engine) -> int:
    return count_states(engine).get("processed", 0)


def quiescent(engine: sa.Engine, at_least: int) -> bool:
    """At least *at_least* messages, every one processed, no step due and not done, no notice
    waiting to go."""
    states = count_states(engine)
    if "received" in states or sum(states.values()) < at_least:
        return False
    with engine.connect() as conn:
        due = sa.select(sa.func.count()).select_from(TimelineStep).where(
            TimelineStep.state.in_(("pending", "queued", "running")),
            TimelineStep.due_at <= system_clock())  # the processes run on it
        waiting = sa.select(sa.func.count()).select_from(Notice).where(
            Notice.state.in_(("pending", "sending")))
        return not conn.execute(due).scalar() and not conn.execute(waiting).scalar()


@dataclass
class Outcome:
    messages: int = 0
    copies: int = 0  # messages stored twice (stored, then no 250 reached the sender)
    cases: dict[str, int] = field(default_factory=dict)  # customer -> claims
    notices: int = 0
    fees: int = 0


def token_of(raw: bytes) -> int:
    start = raw.index(b"X-Test-Token: ") + len(b"X-Test-Token: ")
    return int(raw[start:raw.index(b"\r\n", start)])


def check_stored(engine: sa.Engine, acked: list[tuple[int, int]],
                 sent: set[int]) -> dict[int, list[int]]:
    """Every 250 is a stored message with the bytes of its token, and every stored message
    carries a token of *sent*; returns {token: [message ids]} (a token stored, then killed
    before its 250 reached the sender, and sent again is two messages)."""
    with engine.connect() as conn:
        raws = dict(conn.execute(sa.select(Message.id, Message.raw)).all())
    for token, message_id in acked:
        assert message_id in raws, f"message {message_id} (token {token}) got a 250 but is lost"
        assert token_of(raws[message_id]) == token
    tokens: dict[int, list[int]] = defaultdict(list)
    for message_id, raw in raws.items():
        tokens[token_of(raw)].append(message_id)
    assert set(tokens) <= sent, f"stored tokens we never sent: {sorted(set(tokens) - sent)[:5]}"
    return tokens


def check_nothing_lost(engine: sa.Engine, acked: list[tuple[int, int]], count: int,
                       maildir: Path | None, arf: bool = True) -> Outcome:
    """:func:`check_stored`; each stored message processed exactly once; with *arf*, each
    token's report in its customer's one case (copies merged into it), one notice per step,
    every notice sent, a fee per claim, and the outbox holding each notice once."""
    outcome = Outcome()
    assert sorted(t for t, _ in acked) == list(range(count)), "not every token got its 250"
    tokens = check_stored(engine, acked, set(range(count)))
    assert set(tokens) == set(range(count))
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(Message.id, Message.state,
                                                        Message.error))}
        events = Counter(conn.execute(sa.select(Event.subject_id).where(
            Event.subject_type == "message")).scalars())
        reports = list(conn.execute(sa.select(
            Report.id, Report.message_id, Report.case_id, Report.duplicate_of,
            Report.customer_id, Report.review_reason)))
        cases = {c.id: c for c in conn.execute(
            sa.select(Case.id, Case.customer_id, Case.type, Case.claims, Case.state))}
        customers = dict(conn.execute(sa.select(Customer.id, Customer.external_id)).all())
        notices = list(conn.execute(sa.select(
            Notice.id, Notice.case_id, Notice.step_id, Notice.kind, Notice.state,
            Notice.header_message_id)))
        steps = dict(conn.execute(sa.select(TimelineStep.id, TimelineStep.kind)).all())
        outcome.fees = int(conn.execute(sa.text("SELECT count(*) FROM fees")).scalar() or 0)
    outcome.messages = len(rows)
    outcome.copies = len(rows) - count

    # Each stored message processed exactly once: one outcome event, never stuck.
    bad = {i: (r.state, r.error) for i, r in rows.items() if r.state != "processed"}
    assert not bad, f"{len(bad)} message(s) not processed, e.g. {list(bad.items())[:3]}"
    assert set(events) == set(rows), "a message without its outcome event, or an event without"
    twice = {i: n for i, n in events.items() if n != 1}
    assert not twice, f"processed more than once: {twice}"
    if not arf:
        return outcome

    # One report per message; per token one claim, in the case of the customer behind the IP.
    by_message = defaultdict(list)
    for r in reports:
        by_message[r.message_id].append(r)
    assert {i: len(v) for i, v in by_message.items() if len(v) != 1} == {}
    assert set(by_message) == set(rows)
    by_id = {r.id: r for r in reports}
    case_of_customer: dict[str, int] = {}
    for token, ids in tokens.items():
        mine = [by_message[i][0] for i in ids]
        claims = [r for r in mine if r.duplicate_of is None]
        assert len(claims) == 1, f"token {token}: {len(claims)} claims from {len(ids)} copies"
        claim = claims[0]
        assert claim.review_reason is None, f"token {token} in review: {claim.review_reason}"
        assert claim.case_id is not None, f"token {token}: its report joined no case"
        want = expected_customer(token)
        assert customers[claim.customer_id] == want
        case = cases[claim.case_id]
        assert customers[case.customer_id] == want and case.type == "spam"
        assert case_of_customer.setdefault(want, case.id) == case.id, (
            f"two cases for {want}: {case_of_customer[want]} and {case.id}")
        for copy in mine:
            if copy is not claim:
                assert by_id[copy.duplicate_of].id == claim.id and copy.case_id is None
    claims_per_case = Counter(r.case_id for r in reports if r.case_id is not None)
    assert set(cases) == set(claims_per_case), "a case without claims"
    for case_id, n in claims_per_case.items():
        assert cases[case_id].claims == n, f"case {case_id}: claims counter {cases[case_id]} != {n}"
    outcome.cases = {customers[cases[c].customer_id]: n for c, n in claims_per_case.items()}
    # Three claims escalate a case: from then on every claim carries one fee (report_id is
    # unique in the ledger, so a claim charged twice would have failed its transaction).
    if all(cases[c].state == "escalated" for c in cases):
        assert outcome.fees == sum(claims_per_case.values())

    # One notice per step and per kind of case mail; every notice sent, once, in the outbox.
    assert all(n.step_id is not None for n in notices), "a notice without its step"
    assert len({n.step_id for n in notices}) == len(notices)
    kinds = Counter((n.case_id, n.kind) for n in notices)
    assert {k: v for k, v in kinds.items() if v != 1 and k[1] != "update"} == {}, kinds
    assert all(steps[n.step_id] == n.kind for n in notices)
    for case_id in cases:
        # The first notice, or (when the case escalated before its notice step ran, as a
        # burst does after three claims: that step is then skipped) the escalation notice.
        told = {k: kinds[(case_id, k)] for k in ("notice", "escalation")}
        assert sum(told.values()) >= 1, f"case {case_id}: the customer was never told"
        if cases[case_id].state != "escalated":
            assert told["notice"] == 1, f"case {case_id} ({cases[case_id].state}): {told}"
    unsent = [(n.id, n.state) for n in notices if n.state != "sent"]
    assert not unsent, f"notices not sent: {unsent[:5]}"
    outcome.notices = len(notices)
    if maildir is not None:
        files = sorted((maildir / "new").glob("*.eml"))
        # One file per notice, named notice-<id>-<16 hex of its Message-ID>.eml (issue 18).
        assert sorted(p.name for p in files) == sorted(maildir_name(
            f"notice-{n.id}", f"Message-ID: {n.header_message_id}\r\n\r\n".encode())
            for n in notices)
        header_ids = Counter(
            str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                ["Message-ID"]).strip("<>") for p in files)
        assert all(v == 1 for v in header_ids.values()), "two outbox files, one Message-ID"
        assert set(header_ids) == {n.header_message_id.strip("<>") for n in notices}
    return outcome


# ---- private servers -----------------------------------------------------------------------

def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _find(name: str, patterns: list[str]) -> str | None:
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[-1]
    return shutil.which(name)


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb in a temporary directory, a free
    port), which the test may stop and start. As root it runs as the ``postgres`` user (initdb
    refuses root)."""

    def __init__(self) -> None:
        initdb = _find("initdb", ["/usr/lib/postgresql/*/bin/initdb"])
        if initdb is None:
            unavailable("initdb is not installed: cannot make a private PostgreSQL cluster")
        assert initdb is not None
        self.bindir = Path(os.path.realpath(initdb)).parent
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no `postgres` user to run initdb as")
            self.user = "postgres"
        self.dir = Path(tempfile.mkdtemp(prefix="abuse-desk-pg-"))
        if self.user is not None:
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.running = False
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        cmd = [str(self.bindir / program), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): "
                               f"{(done.stdout + done.stderr).decode(errors='replace')[-2000:]}")

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.dir}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o",
                  opts, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: every server process quits at once, as in a crash (the next start
        recovers from the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.stop("fast")
        shutil.rmtree(self.dir, ignore_errors=True)


RABBIT_START_S = 60.0


def quiet_port() -> int:
    """A free port below the ephemeral range (32768+ on Linux), where no outgoing connection
    takes it between now and the server's bind (an Erlang node checks its ports and gives up)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class PrivateRabbit:
    """A RabbitMQ node of this test's own: its own port, distribution port, node name, Mnesia
    and log directories, and its own epmd, so that stopping it touches nothing else."""

    def __init__(self, base: Path) -> None:
        script = _find("rabbitmq-server",
                       ["/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"])
        epmd = _find("epmd", ["/usr/lib/erlang/erts-*/bin/epmd"])
        if script is None or epmd is None:
            unavailable("rabbitmq-server (or Erlang's epmd) is not installed")
        assert script is not None and epmd is not None
        self.script, self.epmd_binary = script, epmd
        self.base = base
        for sub in ("mnesia", "log", "home"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        self.epmd_port = quiet_port()
        self.node = f"abusedesk{os.getpid()}x{self.epmd_port}@localhost"
        (base / "rabbitmq-env.conf").write_text("")
        (base / "enabled_plugins").write_text("[].\n")
        self._ports(quiet_port())
        self.epmd: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _ports(self, amqp_port: int) -> None:
        """Use *amqp_port* for AMQP and a new distribution port."""
        base = self.base
        self.port, self.dist_port = amqp_port, quiet_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "disk_free_limit.absolute = 1MB\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> float:
        """Start the node (again: the same name, AMQP port and Mnesia directory, so its
        durable queues come back); returns the seconds it took. A port found taken at boot is
        replaced (on a restart only the distribution port). Unavailable if the node is not up
        within 60 s."""
        began = time.monotonic()
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [self.epmd_binary, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        while True:
            mark = len(self.output())
            log = (self.base / "server.out").open("ab")
            try:
                self.proc = subprocess.Popen([self.script], cwd=self.base, env=self.env,
                                             stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            finally:
                log.close()
            while not self._amqp_ok():
                late = time.monotonic() - began > RABBIT_START_S
                if self.proc.poll() is not None or late:
                    said = self.output()[mark:]
                    if not late and ("already_used" in said or "eaddrinuse" in said):
                        self._ports(quiet_port() if self.starts == 1 else self.port)
                        break
                    self.close()
                    unavailable(f"a private rabbitmq-server did not start within "
                                f"{RABBIT_START_S:.0f} s (start {self.starts}): {said[-1500:]}")
                time.sleep(0.5)
            else:
                return time.monotonic() - began

    def _amqp_ok(self) -> bool:
        if not _port_open(self.port):
            return False
        import pika

        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1"
                                                       "&socket_timeout=2")).close()
        except Exception:
            return False
        return True

    def output(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the node's process group (the one this helper started): an outage with
        no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        wait_for(lambda: not _port_open(self.port), 30, "the AMQP port to close")

    def close(self) -> None:
        self.kill()
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(10)


# ---- a small filesystem --------------------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int = 8) -> Iterator[Path]:
    """A filesystem of *size_mb* MiB mounted at *path* (tmpfs, else an ext4 loop device), for
    as long as the context lasts. Skips where the environment cannot mount (not root, or the
    container forbids it): a capability of the machine, not a service."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the disk-full test needs root")
    path.mkdir(parents=True, exist_ok=True)
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs",
                            str(path)], capture_output=True, text=True)
    if tried.returncode != 0:
        image = path.with_suffix(".img")
        with image.open("wb") as fh:
            fh.truncate(size_mb * 1024 * 1024)
        loop = subprocess.run(
            f"mkfs.ext4 -q -F {image} && mount -o loop {image} {path}", shell=True,
            capture_output=True, text=True)
        if loop.returncode != 0:
            pytest.skip(f"cannot mount a small filesystem here: tmpfs: {tried.stderr.strip()}; "
                        f"loop device: {loop.stderr.strip()} (the container forbids mount)")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a filler file in *directory* until its filesystem has no byte left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def as_text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
