"""Durable storage of incoming messages, with group commit.

One writer thread owns the database writes of a listener. SMTP sessions (and importers) hand it
a message and wait on a future; the writer takes every message that is waiting, inserts them in
one transaction and commits once, so N concurrent sessions cost one fsync, not N. A future is
resolved only after the commit returned: the caller answers 250 only then.

After the commit, the new ids go to a :class:`Dispatcher` thread that sends them to the broker,
all that are waiting in one round trip. A failed send loses nothing: the message stays
``received`` and the scheduler's sweeper re-sends it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.exc import DBAPIError

from ..core import metrics
from ..core.logs import log_context
from ..core.models import Message, MessageState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    """What the SMTP transaction (or the importer) knew about a message besides its bytes."""

    mail_from: str | None
    rcpt_tos: Sequence[str]
    origin: str = "smtp"
    peer_ip: str | None = None
    peer_port: int | None = None
    helo: str | None = None
    tls: bool = False
    received_by: str | None = None
    # When the desk took the message, from the desk's clock (core/clock.py).
    received_at: datetime = field(kw_only=True)
    # False: no broker send follows the store (an import beside an in-process broker); the
    # message is marked never-sent, and the sweeper of the running desk sends it at its next tick.
    enqueued: bool = True


NEVER_SENT = datetime(1970, 1, 1, tzinfo=UTC)


def message_row(raw: bytes, env: Envelope, sha256: str | None = None) -> dict[str, Any]:
    return {
        "state": MessageState.RECEIVED.value,
        "origin": env.origin,
        "raw": raw,
        "sha256": sha256 or hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "mail_from": env.mail_from,
        "rcpt_tos": list(env.rcpt_tos),
        "peer_ip": env.peer_ip,
        "peer_port": env.peer_port,
        "helo": env.helo,
        "tls": env.tls,
        "received_at": env.received_at,
        "received_by": env.received_by,
        "enqueued_at": env.received_at if env.enqueued else NEVER_SENT,
    }


# Built once: SQLAlchemy caches its compiled form by the statement's cache key, which a
# statement built per batch would compute again every time.
_INSERT_MESSAGES = insert(Message).returning(Message.id, sort_by_parameter_order=True)


def insert_messages(conn: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert *rows* in the caller's transaction; return their ids in order."""
    return [row.id for row in conn.execute(_INSERT_MESSAGES, rows)]


@dataclass
class _Pending:
    row: dict[str, Any]
    # submit()'s, or the asyncio future of store()'s caller, set in that caller's loop only.
    future: concurrent.futures.Future[int] | asyncio.Future[int]


def _claim(future: concurrent.futures.Future[int] | asyncio.Future[int]) -> bool:
    """Whether the caller still waits: a session that gave up (store timeout, answered 451)
    cancelled its future."""
    if isinstance(future, asyncio.Future):
        return not future.done()
    return future.set_running_or_notify_cancel()


def _in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _set_results(results: list[tuple[asyncio.Future[int], int]]) -> None:
    for future, message_id in results:
        if not future.done():  # not cancelled meanwhile
            future.set_result(message_id)


def _set_exception(future: asyncio.Future[int], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _deliver(batch: list[_Pending], ids: list[int]) -> None:
    """Each caller's id: a concurrent future's at once; the asyncio futures of one loop in one
    call in that loop, so a group commit wakes the loop once, not once per message."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    for p, message_id in zip(batch, ids, strict=True):
        if isinstance(p.future, asyncio.Future):
            by_loop.setdefault(p.future.get_loop(), []).append((p.future, message_id))
        else:
            p.future.set_result(message_id)
    for loop, results in by_loop.items():
        _in_loop(loop, _set_results, results)


_STOP = object()


class GroupCommitWriter:
    """The one thread that writes incoming messages; see the module docstring."""

    def __init__(self, engine: Engine, on_committed: Callable[[list[int]], None] | None = None,
                 batch_max: int = 128, batch_bytes: int = 64 * 1024 * 1024,
                 hold_s: float = 1.0) -> None:
        self._engine = engine
        self._on_committed = on_committed
        self._batch_max = batch_max
        self._batch_bytes = batch_bytes
        # While messages keep coming, the writer keeps its database connection (for up to
        # *hold_s* without one) instead of checking one out, and pinging it, per batch.
        self._hold_s = hold_s
        self._conn: Connection | None = None
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._stopped = False

    def start(self) -> GroupCommitWriter:
        self._thread.start()
        return self

    def submit(self, raw: bytes, envelope: Envelope) -> concurrent.futures.Future[int]:
        """Queue *raw* for storing; the future gives its id once committed."""
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        if self._stopped:
            fut.set_exception(RuntimeError("the store writer is stopped"))
            return fut
        self._queue.put(_Pending(message_row(raw, envelope), fut))
        return fut

    async def store(self, raw: bytes, envelope: Envelope) -> int:
        """Store *raw*; its id once committed. For a coroutine (the SMTP sessions): the writer
        hands a group commit's ids to the loop in one call. Cancelling the caller (a store
        timeout) before the writer takes the message leaves it out."""
        if self._stopped:
            raise RuntimeError("the store writer is stopped")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put(_Pending(message_row(raw, envelope), future))
        return await future

    def stop(self, timeout: float = 30.0) -> None:
        """Store everything already submitted, then end the thread."""
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _take_batch(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, size, stop = [first], len(first.row["raw"]), False
        while len(batch) < self._batch_max and size < self._batch_bytes:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            assert isinstance(item, _Pending)
            batch.append(item)
            size += len(item.row["raw"])
        return batch, stop

    def _run(self) -> None:
        try:
            while True:
                if self._conn is None:
                    item = self._queue.get()
                else:
                    try:
                        item = self._queue.get(timeout=self._hold_s)
                    except queue.Empty:
                        self._release()
                        continue
                if item is _STOP:
                    return
                assert isinstance(item, _Pending)
                batch, stop = self._take_batch(item)
                self._commit(batch)
                # Not kept until the next message comes: a batch may hold 64 MiB of mail.
                del item, batch
                if stop:
                    return
        finally:
            self._release()

    def _release(self, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:
                conn.invalidate()
            conn.close()
        except Exception as exc:
            log.warning("closing the store connection failed: %s", exc.__class__.__name__)

    def _commit(self, batch: list[_Pending]) -> None:
        # A session that gave up waiting (store timeout, answered 451) cancelled its future.
        batch = [p for p in batch if _claim(p.future)]
        if batch:
            self._store(batch)

    def _insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert and commit *rows* on the held connection (checked out, and so pinged, when
        there is none). A held connection found closed (the server dropped it while it sat
        idle) is replaced and the batch tried once more; other errors are the caller's."""
        for attempt in (1, 2):
            held = self._conn is not None
            if self._conn is None:
                self._conn = self._engine.connect()
            try:
                with self._conn.begin():
                    return insert_messages(self._conn, rows)
            except Exception as exc:
                lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
                if lost or self._conn.invalidated:
                    self._release(invalidate=True)
                if not (held and lost and attempt == 1):
                    raise
        raise AssertionError("unreachable")

    def _store(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            ids = self._insert([p.row for p in batch])
        except Exception as exc:
            if len(batch) > 1:
                # One bad message must not fail the others: store them one by one.
                log.warning("group commit of %d messages failed (%s); retrying singly",
                            len(batch), exc.__class__.__name__)
                for p in batch:
                    self._store([p])
                return
            log.error("storing a message failed: %s", exc, exc_info=True)
            future = batch[0].future
            if isinstance(future, asyncio.Future):
                _in_loop(future.get_loop(), _set_exception, future, exc)
            else:
                future.set_exception(exc)
            return
        metrics.STORE_COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.STORE_BATCH_SIZE.observe(len(batch))
        _deliver(batch, ids)
        if self._on_committed is not None:
            self._on_committed(ids)


# How long the listener's dispatcher lets fewer ids than a worker's batch wait for more:
# a message's processing starts at most this much later, a worker's batch is fuller.
LINGER_S = 0.05


class Dispatcher:
    """Sends stored message ids to the broker from its own thread, off the SMTP path.

    The thread takes every id that is waiting (up to ``batch_max``) and hands them to the
    broker in one call, *send_many* (``core.broker.many_sender``: one round trip for a group
    commit's ids); without it, *send* (one id: ``process_message.send``) is called for each id
    in turn, and the first failure ends the batch. One :meth:`dispatch` call (a group commit's
    ids) is queued at once, so the thread never takes half of it; with *fill* and *linger_s*,
    fewer than *fill* waiting ids wait up to *linger_s* for more before they are sent. A batch
    that fails is logged and counted (per id); its messages wait for the sweeper. The queue is
    bounded: past ``max_pending`` ids are left to the sweeper too, so a broker outage cannot
    grow this process's memory.
    """

    def __init__(self, send: Callable[[int], Any] | None = None, max_pending: int = 100_000,
                 backoff_s: float = 1.0, *,
                 send_many: Callable[[list[int]], Any] | None = None,
                 batch_max: int = 500, fill: int = 1, linger_s: float = 0.0) -> None:
        if send_many is None:
            if send is None:
                raise TypeError("Dispatcher needs send or send_many")
            send_one = send

            def send_each(ids: list[int]) -> None:
                for message_id in ids:
                    send_one(message_id)

            send_many = send_each
        self._send_many = send_many
        self._batch_max = batch_max
        self._fill = min(fill, batch_max)
        self._linger_s = linger_s
        self._backoff_s = backoff_s
        self._max_pending = max_pending
        self._pending: collections.deque[int] = collections.deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._failing_since: float | None = None

    def start(self) -> Dispatcher:
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        """How many ids wait to be sent."""
        with self._ready:
            return len(self._pending)

    def dispatch(self, ids: Sequence[int]) -> None:
        with self._ready:
            room = max(self._max_pending - len(self._pending), 0)
            self._pending.extend(ids[:room])
            self._ready.notify()
        if len(ids) > room:
            metrics.ENQUEUE_FAILURES.inc(len(ids) - room)

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is already waiting, then end the thread (waiting at most *timeout*)."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout)

    def _take_batch(self) -> list[int] | None:
        """The next batch to send, or None once stopping with nothing left. Fewer than *fill*
        ids wait up to *linger_s* for more: while mail pours in, a worker then gets batches
        of the size it writes best instead of one small group commit each."""
        with self._ready:
            while not self._pending and not self._stopping:
                self._ready.wait()
            if len(self._pending) < self._fill and self._linger_s > 0:
                until = time.monotonic() + self._linger_s
                while len(self._pending) < self._fill and not self._stopping and (
                        left := until - time.monotonic()) > 0:
                    self._ready.wait(left)
            take = min(len(self._pending), self._batch_max)
            return [self._pending.popleft() for _ in range(take)] if take else None

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            self._send(batch)

    def _send(self, batch: list[int]) -> None:
        if (self._failing_since is not None
                and time.monotonic() - self._failing_since < self._backoff_s):
            # The broker failed a moment ago: leave these to the sweeper rather than wait
            # on another connect timeout.
            metrics.ENQUEUE_FAILURES.inc(len(batch))
            return
        try:
            self._send_many(batch)
            self._failing_since = None
        except Exception as exc:
            metrics.ENQUEUE_FAILURES.inc(len(batch))
            if self._failing_since is None:
                with log_context(message_id=batch[0]):
                    log.warning("could not send %d message id(s) to the broker (%s: %s); the "
                                "sweeper will re-send them", len(batch),
                                exc.__class__.__name__, exc)
            self._failing_since = time.monotonic()
