"""Examining a message (parse, DKIM, classify) in a child process, within the message's budget.

What a message says is worked out from bytes anyone can send. Doing that in the process that
answers SMTP and HTTP let one message stop everything: a regular expression or dkimpy's header
reader holds the GIL for seconds to minutes, and no thread of that process runs meanwhile; a
worker thread stuck on it cannot be stopped either. So examination runs in a small pool of
long-lived **examiner** processes (``pipeline.examiners`` per worker process), each built once
from the configuration (the parser registry, the classifier with its customer index), fed one
message at a time over a pipe by the worker threads, which only wait on that pipe.

Each examination has the message's budget:

* **time**: ``parsers.time_budget_s`` from the moment the examiner starts on it. The parsers'
  own deadline answers with a precise reason; an examiner still busy ``KILL_GRACE_S`` after its
  budget (in DKIM, in a regular expression, anywhere) is killed and replaced, and the message
  goes to review with "processing exceeded its time budget of 30 s (during DKIM verification)".
  The examiner also arms an alarm that kills it a little later, should its parent be gone.
* **memory**: ``parsers.max_memory_mb`` more than the examiner held before the message (an
  address-space limit, set in the examiner before each message); past it the allocation fails,
  the message goes to review with "processing exceeded its memory budget", and that examiner is
  replaced.

Both outcomes are decided in the first attempt and written like any other outcome, so the
message leaves ``received`` and is never sent again. An examiner that dies on its own
(a crash, the kernel's OOM killer) raises :class:`ExaminerDied`: the message stays
``received`` and the attempt is counted (``workflow/pipeline.py`` sends it to review after
``pipeline.max_attempts``). :meth:`ExaminerPool.begin_stop` gives the examinations in hand
``pipeline.stop_grace_s`` and then kills them (:class:`ExaminerStopped`), so a stop is prompt.

Examiners are forked by multiprocessing's fork server (a clean, single-threaded process with
the modules preloaded: a new examiner costs a fork, not an interpreter start), and die with it
(``PR_SET_PDEATHSIG``) when the desk's process dies, however it dies. Results come back pickled
and are read by an unpickler that builds only the desk's own result types.

With ``pipeline.examiners = 0``, or where no pool is given (tests, ``abuse-desk parse``, the
benchmarks), :class:`InlineExaminer` examines in the calling thread with the parsers' own
deadline only.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import enum
import io
import logging
import multiprocessing
import os
import pickle
import re
import selectors
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from ..core.config import Config

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from .examine import Examination, Outcome

log = logging.getLogger(__name__)

# After its budget, the parsers' own deadline has this long to answer with its reason.
KILL_GRACE_S = 1.0
# An examiner's own alarm (its parent gone or stuck) fires this long after the parent's kill.
ALARM_AFTER_KILL_S = 5.0
# A new examiner answers "ready" within this (it loads the customer index first).
START_TIMEOUT_S = 300.0
MIB = 1024 * 1024

# Room for the message's header values on the board an examiner shares with its worker.
BOARD_BYTES = 16 * 1024
# What an examiner is doing, shared with its parent so a reason can name the stage.
STAGES = ("starting", "waiting", "reading headers", "parsing", "sender authentication",
          "DKIM verification",
          "classifying", "returning the result")
PRELOAD = ["abuse_desk.workflow.examiner", "abuse_desk.workflow.examine",
           "abuse_desk.workflow.pipeline", "abuse_desk.classifier.runtime",
           "abuse_desk.parsers.registry", "abuse_desk.core.db"]


class ExaminerUnavailable(Exception):
    """No examiner could take the message (none could be started): the system, not the
    message; the attempt is not counted."""


class ExaminerStopped(ExaminerUnavailable):
    """The desk is stopping: the message stays ``received`` for the next start."""


class ExaminerDied(Exception):
    """The examiner died during the examination, not killed by its budget: the message stays
    ``received`` and the attempt counts (a crash on its content, or the OOM killer)."""


class Slot(Protocol):
    def examine(self, raw: bytes, received_at: datetime, now: datetime,
                message_id: int | None = None,
                sender: dict[str, Any] | None = None) -> Outcome: ...


class Examiner(Protocol):
    def reserve(self) -> contextlib.AbstractContextManager[Slot]: ...


# -- in the calling thread ---------------------------------------------------------------------


class InlineExaminer:
    """Examines in the calling thread: no isolation, the parsers' own deadline only."""

    def __init__(self, examination: Examination) -> None:
        self._examination = examination

    @contextlib.contextmanager
    def reserve(self) -> Iterator[Slot]:
        yield self

    def examine(self, raw: bytes, received_at: datetime, now: datetime,
                message_id: int | None = None,
                sender: dict[str, Any] | None = None) -> Outcome:
        return self._examination.examine(raw, received_at, sender=sender)


# -- the budget's outcomes ---------------------------------------------------------------------


def time_budget_outcome(values: dict[str, Any], budget_s: float, stage: str) -> Outcome:
    from ..core.models import MessageState
    from .examine import Outcome

    return Outcome(MessageState.REVIEW, dict(values), (
        f"processing exceeded its time budget of {budget_s:g} s (during {stage}); the "
        "examination was stopped (parsers.time_budget_s)"))


def memory_budget_outcome(values: dict[str, Any], budget_mb: int, stage: str,
                          detail: str = "") -> Outcome:
    from ..core.models import MessageState
    from .examine import Outcome

    return Outcome(MessageState.REVIEW, dict(values), (
        f"processing exceeded its memory budget of {budget_mb} MiB (during {stage}); the "
        f"examination was stopped (parsers.max_memory_mb){detail}"))


# -- the pool, in the worker's process ---------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    try:
        ctx = multiprocessing.get_context("forkserver")
    except ValueError:  # no fork server on this platform
        return multiprocessing.get_context("spawn")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class Board:
    """Shared memory between an examiner and its worker: the stage the examination is in and
    the message's header values, written by the examiner as it goes (no message on the pipe,
    no wake-up), read by the worker only when the budget ran out."""

    def __init__(self, ctx: multiprocessing.context.BaseContext) -> None:
        self.stage = ctx.Value("i", 0, lock=False)
        self.headers = ctx.Array("B", BOARD_BYTES, lock=False)  # 4-byte length, then a pickle

    def set_stage(self, name: str) -> None:
        self.stage.value = STAGES.index(name)

    @property
    def stage_name(self) -> str:
        index = int(self.stage.value)
        return STAGES[index] if 0 <= index < len(STAGES) else "examination"

    def put_headers(self, values: dict[str, Any]) -> None:
        data = pickle.dumps(values, pickle.HIGHEST_PROTOCOL)
        if len(data) > BOARD_BYTES - 4:  # long encoded values: what fits is enough to find it
            data = pickle.dumps({k: v[:500] if isinstance(v, str) else v
                                 for k, v in values.items()}, pickle.HIGHEST_PROTOCOL)
        if len(data) > BOARD_BYTES - 4:
            data = b""
        view = memoryview(self.headers).cast("B")
        view[4:4 + len(data)] = data
        view[:4] = len(data).to_bytes(4, "little")

    def clear_headers(self) -> None:
        memoryview(self.headers).cast("B")[:4] = bytes(4)

    def take_headers(self) -> dict[str, Any]:
        view = memoryview(self.headers).cast("B")
        size = int.from_bytes(view[:4], "little")
        if not 0 < size <= BOARD_BYTES - 4:
            return {}
        try:
            values = _loads(bytes(view[4:4 + size]))
        except Exception:  # a torn write: the examiner was killed while writing
            return {}
        return values if isinstance(values, dict) else {}


class _Child:
    """One examiner process, seen from the pool."""

    def __init__(self, ctx: multiprocessing.context.BaseContext, config: Config,
                 now: datetime) -> None:
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.board = Board(ctx)
        self.process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=child_main, name="abuse-desk examiner", daemon=True,
            args=(child_conn, config, os.getcwd(), self.board, now))
        self.process.start()
        child_conn.close()
        self.ready = False
        self._selector: selectors.BaseSelector | None = None

    @property
    def stage_name(self) -> str:
        return self.board.stage_name

    def wait(self, stop_r: int, timeout: float) -> set[Any]:
        """Which of the pipe (``conn``), the examiner's exit (``sentinel``) and the pool's stop
        (``stop``) are ready within *timeout* seconds (one selector, kept: this is on every
        message's path)."""
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.conn.fileno(), selectors.EVENT_READ, "conn")
            self._selector.register(self.process.sentinel, selectors.EVENT_READ, "sentinel")
            self._selector.register(stop_r, selectors.EVENT_READ, "stop")
        return {key.data for key, _ in self._selector.select(timeout)}

    def exited(self, stop_r: int) -> bool:
        """Whether the examiner is gone (one poll of the selector, no wait)."""
        return "sentinel" in self.wait(stop_r, 0)

    def forget_stop(self, stop_r: int) -> None:
        """The stop pipe stays readable once stopping: stop watching it."""
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(stop_r)

    def wait_ready(self, timeout: float, stop_r: int,
                   stop_at: Callable[[], float | None]) -> None:
        """Wait for the examiner's "ready" (it loads the customer index first), at most
        *timeout* seconds and not past the pool's stop."""
        end = time.monotonic() + timeout
        while not self.ready:
            stopping = stop_at()
            left = (end if stopping is None else min(end, stopping)) - time.monotonic()
            if left <= 0:
                if stopping is not None:
                    raise ExaminerStopped("the desk is stopping")
                raise ExaminerUnavailable(f"an examiner did not start within {timeout:g} s")
            ready = self.wait(stop_r, left)
            if "stop" in ready:
                self.forget_stop(stop_r)
            if "conn" in ready:
                try:
                    kind, payload = _loads(self.conn.recv_bytes())
                except (EOFError, OSError):
                    kind, payload = "error", "it exited"
                if kind == "error":
                    raise ExaminerUnavailable(f"an examiner could not start: {payload}")
                self.ready = kind == "ready"
            elif "sentinel" in ready:
                if stop_at() is not None:
                    raise ExaminerStopped("the desk is stopping")
                raise ExaminerUnavailable(
                    f"an examiner exited while starting ({_exit_text(self.process)})")

    def kill_process(self) -> None:
        """SIGKILL the examiner (from any thread: the one waiting on it sees it exit)."""
        with contextlib.suppress(Exception):
            if self.process.is_alive():
                self.process.kill()

    def kill(self) -> None:
        """SIGKILL the examiner and let go of everything it held (by the thread using it)."""
        self.kill_process()
        with contextlib.suppress(Exception):
            self.process.join(5)
        for closeable in (self._selector, self.conn):
            with contextlib.suppress(Exception):
                if closeable is not None:
                    closeable.close()


def _exit_text(process: BaseProcess) -> str:
    process.join(0.5)
    code = process.exitcode
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


class _PoolSlot:
    def __init__(self, pool: ExaminerPool, child: _Child) -> None:
        self._pool = pool
        self.child = child
        self.healthy = True

    def examine(self, raw: bytes, received_at: datetime, now: datetime,
                message_id: int | None = None,
                sender: dict[str, Any] | None = None) -> Outcome:
        self.healthy = False  # until its answer is read: killed on any way out
        outcome, healthy = self._pool._examine(self.child, raw, received_at, now, message_id,
                                               sender)
        self.healthy = healthy
        return outcome


class ExaminerPool:
    """*size* examiner processes for the worker threads of one process."""

    def __init__(self, config: Config, clock: Callable[[], datetime], size: int) -> None:
        self._config = config
        self._clock = clock
        self._size = size
        self._ctx = _context()
        self._cond = threading.Condition()
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._count = 0  # started and not yet discarded
        self._stop_at: float | None = None  # monotonic; set once stopping
        self._stop_r, self._stop_w = os.pipe()  # readable once stopping: wakes the waiters
        self._pipe_open = True
        self._closed = False

    @property
    def budget_s(self) -> float:
        return self._config.parsers.time_budget_s

    def start(self) -> ExaminerPool:
        """Start the examiners (they get ready in the background)."""
        with self._cond:
            while self._count < self._size:
                self._idle.append(self._spawn())
                self._count += 1
        return self

    def _spawn(self) -> _Child:
        return _Child(self._ctx, self._config, self._clock())

    def _stopped(self) -> bool:
        return self._stop_at is not None and time.monotonic() >= self._stop_at

    @contextlib.contextmanager
    def reserve(self) -> Iterator[Slot]:
        """An examiner for one message: waits for one to be free."""
        child = self._acquire()
        slot = _PoolSlot(self, child)
        try:
            child.wait_ready(START_TIMEOUT_S, self._stop_r, lambda: self._stop_at)
            yield slot
        except ExaminerUnavailable:
            slot.healthy = False
            raise
        finally:
            self._release(child, slot.healthy)

    def _acquire(self) -> _Child:
        with self._cond:
            while True:
                if self._closed or self._stopped():
                    raise ExaminerStopped("the desk is stopping")
                if self._idle:
                    child = self._idle.pop()
                    if child.ready and child.exited(self._stop_r):  # died while idle
                        self._count -= 1
                        child.kill()
                        continue
                    break
                if self._count < self._size:
                    try:
                        child = self._spawn()
                    except Exception as exc:
                        raise ExaminerUnavailable(
                            f"an examiner could not be started: {exc.__class__.__name__}: "
                            f"{exc}") from exc
                    self._count += 1
                    break
                wait = 1.0 if self._stop_at is None else self._stop_at - time.monotonic()
                self._cond.wait(max(0.01, min(1.0, wait)))
            self._busy.add(child)
            return child

    def _release(self, child: _Child, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(child)
            keep = healthy and not self._closed
            if keep:
                self._idle.append(child)
            else:
                self._count -= 1
            self._cond.notify()
            last = self._closed and not self._busy
        if not keep:
            child.kill()
        if last:
            self._close_stop_pipe()
        if not keep:
            # A new one in its place, ready by the time it is needed.
            with self._cond:
                if not self._closed and self._stop_at is None and self._count < self._size:
                    with contextlib.suppress(Exception):
                        self._idle.append(self._spawn())
                        self._count += 1

    def _examine(self, child: _Child, raw: bytes, received_at: datetime, now: datetime,
                 message_id: int | None,
                 sender: dict[str, Any] | None = None) -> tuple[Outcome, bool]:
        """Run one examination on *child*; returns the outcome and whether *child* may take
        another message."""
        budget = self.budget_s
        task = {"received_at": received_at, "now": now, "message_id": message_id,
                "sender": sender}
        try:
            child.conn.send_bytes(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
            child.conn.send_bytes(raw)
        except OSError as exc:  # it was gone before it had the message
            raise ExaminerUnavailable(f"the examiner could not be given the message: "
                                      f"{exc}") from exc
        hard_end = time.monotonic() + budget + KILL_GRACE_S
        while True:
            stop_at = self._stop_at
            end = hard_end if stop_at is None else min(hard_end, stop_at)
            left = end - time.monotonic()
            if left <= 0:
                stage = child.stage_name
                child.kill()
                if stop_at is not None and stop_at <= hard_end:
                    raise ExaminerStopped(f"the desk is stopping (the examination was in {stage})")
                log.warning("examination exceeded its time budget of %g s during %s: examiner "
                            "killed", budget, stage)
                return time_budget_outcome(child.board.take_headers(), budget, stage), False
            ready = child.wait(self._stop_r, left)
            if "stop" in ready:
                child.forget_stop(self._stop_r)  # the new end is in _stop_at
            if "conn" in ready:
                try:
                    kind, payload = _loads(child.conn.recv_bytes())
                except (EOFError, OSError):
                    kind, payload = "died", None
                if kind == "done":
                    outcome, healthy = payload
                    return outcome, healthy
                if kind == "unavailable":
                    raise ExaminerUnavailable(f"the examiner could not work: {payload}")
                if kind != "died":
                    raise ExaminerDied(f"the examiner answered {kind!r}: {payload}")
            elif "sentinel" not in ready:
                continue
            # the examiner is gone without an answer
            stage = child.stage_name
            how = _exit_text(child.process)
            if self._stop_at is not None:
                raise ExaminerStopped(f"the desk is stopping (the examiner {how} in {stage})")
            if child.process.exitcode == -signal.SIGALRM:  # its own alarm: the time budget
                return time_budget_outcome(child.board.take_headers(), budget, stage), False
            raise ExaminerDied(f"the examiner {how} during {stage}")

    def begin_stop(self, grace_s: float) -> None:
        """Examinations may go on for *grace_s* more; then they are killed."""
        with self._cond:
            if self._stop_at is None or time.monotonic() + grace_s < self._stop_at:
                self._stop_at = time.monotonic() + grace_s
            self._cond.notify_all()
            if self._pipe_open:
                with contextlib.suppress(OSError):
                    os.write(self._stop_w, b"x")

    def close(self) -> None:
        """Kill every examiner (those in use too: their examinations end ExaminerStopped)."""
        self.begin_stop(0.0)
        with self._cond:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._count -= len(idle)
            self._cond.notify_all()
        for child in idle:
            child.kill()
        for child in busy:  # their threads clean up after them
            child.kill_process()
        if not busy:
            self._close_stop_pipe()

    def _close_stop_pipe(self) -> None:
        """Once no thread waits on it any more (a closed fd's number is soon another's)."""
        with self._cond:
            if not self._pipe_open or self._busy:
                return
            self._pipe_open = False
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def pids(self) -> list[int]:
        """The examiners' process ids (for tests and diagnostics)."""
        with self._cond:
            return [c.process.pid for c in (*self._idle, *self._busy) if c.process.pid]


# -- reading what an examiner sends ------------------------------------------------------------

_OUR_PACKAGES = ("abuse_desk.",)
_STDLIB_TYPES = {
    ("builtins", name) for name in ("set", "frozenset", "complex", "bytearray", "range",
                                    "slice")
} | {("datetime", name) for name in ("datetime", "date", "time", "timedelta", "timezone")} | {
    ("decimal", "Decimal"), ("ipaddress", "IPv4Address"), ("ipaddress", "IPv6Address"),
    ("ipaddress", "IPv4Network"), ("ipaddress", "IPv6Network"), ("collections", "OrderedDict"),
    ("zoneinfo", "ZoneInfo"),
}


_ALLOWED: dict[tuple[str, str], Any] = {}  # the types found so far, by (module, name)


class _ResultUnpickler(pickle.Unpickler):
    """Builds only data: the desk's own dataclasses and enums, and a few standard types."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if (module, name) in _STDLIB_TYPES:
            found = super().find_class(module, name)
        elif module.startswith(_OUR_PACKAGES):
            found = super().find_class(module, name)
            if not (isinstance(found, type) and (dataclasses.is_dataclass(found)
                                                 or issubclass(found, enum.Enum))):
                found = None
        if found is None:
            raise pickle.UnpicklingError(
                f"an examiner sent a {module}.{name}: not a result type")
        _ALLOWED[(module, name)] = found
        return found


def _loads(data: bytes) -> Any:
    return _ResultUnpickler(io.BytesIO(data)).load()


# -- the examiner process ----------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """SIGKILL this process when the process that forked it (the fork server, which exits with
    the desk's process) dies: an examiner never outlives its desk. Linux only.

    The fork server exits when the last holder of its "alive" pipe is gone, and it hands that
    pipe to every process it forks (so they could ask it for children of their own, which an
    examiner never does): an examiner busy in C code would keep it, and so itself, alive after
    the desk died. It is closed here."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _limit_memory(budget_mb: int) -> bool:
    """Let this process grow by at most *budget_mb* MiB from now; False where it cannot."""
    import resource

    if budget_mb <= 0:
        return False
    size = _address_space()
    if size is None:
        return False
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = size + budget_mb * MIB
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):
        return False
    return True


def _unlimit_memory() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


# A parser or the classifier caught the MemoryError itself and reported it as its failure.
_MEMORY_FAILURE = re.compile(r"^(?:parser \S+|classifier) failed: MemoryError\b", re.M)


class _Held:
    """What an examiner holds: its own examination (parsers, classifier, the sender's
    authentication) over its own database connection, and the instant its current message is
    examined at (the worker's clock, sent with the message)."""

    def __init__(self, config: Config, now: datetime) -> None:
        from ..classifier.runtime import ClassifierRuntime
        from ..core.db import make_engine
        from .examine import build_examination

        self.now = now
        self.config = config
        self.classifier = ClassifierRuntime(config, make_engine(config.database),
                                            lambda: self.now)
        self.examination = build_examination(config, self.classifier)
        self.refresh()

    def refresh(self) -> None:
        """Reload the customer index and the model now if they changed, so that this does not
        happen inside a message's memory budget."""
        self.classifier.index()
        self.classifier.model()


def child_main(conn: Connection, config: Config, cwd: str, board: Board,
               now: datetime) -> None:
    """The examiner: examine one message at a time until the pipe closes."""
    from ..core.logs import log_context, setup_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the desk, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the alarm kills, even inside C code
    _die_with_parent()
    os.chdir(cwd)  # relative paths in the configuration mean what they mean to the desk
    setup_logging(config.log.level, config.log.format)
    try:
        held = _Held(config, now)
    except BaseException as exc:  # the database is away, a plugin does not import, ...
        with contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps(("error", f"{exc.__class__.__name__}: {exc}")))
        return
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    refresh_s = max(1.0, config.classifier.index_refresh_s)
    while True:
        board.set_stage("waiting")
        try:
            while not conn.poll(refresh_s):
                # While idle, so that a changed index is loaded outside any message's budget;
                # the database away is tried again at the next message.
                with contextlib.suppress(SQLAlchemyError):
                    held.refresh()
            task = pickle.loads(conn.recv_bytes())
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the desk closed the pipe, or is gone
        held.now = task["now"]
        with log_context(message_id=task["message_id"], examiner=os.getpid()):
            answer, healthy = _examine_one(held, board, raw, task["received_at"],
                                           task.get("sender"))
        del raw
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            conn.send_bytes(answer)
        except OSError:
            return
        if not healthy:
            return  # after a MemoryError or the database's failure: a fresh examiner


def _examine_one(held: _Held, board: Board, raw: bytes, received_at: datetime,
                 sender: dict[str, Any] | None = None) -> tuple[bytes, bool]:
    """Examine *raw* within the budget; returns the answer for the desk, pickled, and whether
    this examiner may take another message."""
    from ..core.models import MessageState
    from .examine import Outcome

    limits = held.config.parsers
    values: dict[str, Any] = {}

    def progress(name: str, found: dict[str, Any] | None = None) -> None:
        board.set_stage(name)
        if found is not None:  # the headers: the desk keeps them should the budget run out
            values.update(found)
            board.put_headers(found)

    board.clear_headers()
    signal.setitimer(signal.ITIMER_REAL,
                     limits.time_budget_s + KILL_GRACE_S + ALARM_AFTER_KILL_S)
    limited, healthy = False, True
    try:
        held.refresh()  # before the memory limit: reloading the index is not the message's
        limited = _limit_memory(limits.max_memory_mb)
        outcome = held.examination.examine(raw, received_at, progress, sender)
        if limited and outcome.reason and _MEMORY_FAILURE.search(outcome.reason):
            outcome = memory_budget_outcome(outcome.values, limits.max_memory_mb,
                                            board.stage_name,
                                            f": {outcome.reason.splitlines()[0]}")
            healthy = False
    except MemoryError:
        outcome = memory_budget_outcome(values, limits.max_memory_mb, board.stage_name)
        healthy = False
    except SQLAlchemyError as exc:  # the database, not the message: the worker retries
        text = f"{exc.__class__.__name__}: {exc}"[:500]
        return pickle.dumps(("unavailable", text)), False
    finally:
        _unlimit_memory()
    board.set_stage("returning the result")
    try:
        return pickle.dumps(("done", (outcome, healthy)), pickle.HIGHEST_PROTOCOL), healthy
    except Exception as exc:  # a result that cannot be sent is a bug: the message to a person
        return pickle.dumps(("done", (Outcome(MessageState.REVIEW, values, (
            f"the examiner could not return its result: {exc.__class__.__name__}: {exc}")),
            healthy))), healthy
