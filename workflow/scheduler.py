"""The scheduler: moves stored work on to the broker when it is due.

Two duties, every ``pipeline.sweep_interval_s``:

- the sweeper: every message still ``received`` whose last send to the broker is older than
  ``pipeline.sweep_after_s`` is sent again (the broker was down, a worker died, the in-process
  queue was lost with its process);
- the timeline: every step whose ``due_at`` has come and every notice due for (another) attempt
  is claimed with a lease and sent to its actor (``workflow/timeline.py``); a claim whose lease
  ran out (its worker died) is claimed again.

Two schedulers may run at once (one per host, or `serve` beside `scheduler`): a message is claimed
by an UPDATE that moves its ``enqueued_at`` forward, with SKIP LOCKED on PostgreSQL, so each due
message is sent by one of them.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from ..core import metrics
from ..core.broker import in_batches
from ..core.clock import Clock
from ..core.config import PipelineConfig
from ..core.models import Message, MessageState
from .timeline import CLAIM_BATCH, Workflow

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


class Scheduler:
    """Re-sends messages left ``received`` (the sweeper) and sends due steps and notices: all
    of it the one way work is sent, *workflow*'s ``send`` (``core.broker.sender``); without
    one (no broker) nothing is sent or claimed."""

    def __init__(self, engine: Engine, clock: Clock, config: PipelineConfig,
                 workflow: Workflow) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._workflow = workflow
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim_stale(self, now: datetime, older_than_s: float, after_id: int = 0,
                    limit: int = SWEEP_BATCH) -> list[int]:
        """Claim up to *limit* messages, with ids above *after_id*, left ``received`` since
        before ``now - older_than_s``."""
        cutoff = now - timedelta(seconds=older_than_s)
        due = (
            select(Message.id)
            .where(Message.state == MessageState.RECEIVED, Message.enqueued_at <= cutoff,
                   Message.id > after_id)
            .order_by(Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(Message)
            .where(Message.id.in_(due), Message.state == MessageState.RECEIVED,
                   Message.enqueued_at <= cutoff)
            .values(enqueued_at=now)
            .returning(Message.id)
        )
        with self._engine.begin() as conn:
            return sorted(conn.execute(stmt).scalars())

    def sweep(self, older_than_s: float | None = None) -> int:
        """Re-send stale ``received`` messages; returns how many were sent."""
        send = self._workflow.send
        if send is None:
            return 0
        if older_than_s is None:
            older_than_s = self._config.sweep_after_s
        sent = last_id = 0
        while True:
            # Move on by id: with older_than_s=0 a message just claimed is due again at once.
            ids = self.claim_stale(self._clock(), older_than_s, after_id=last_id)
            for batch in in_batches(ids, self._config.batch_max):  # a worker writes each at once
                try:
                    send("process_messages", batch)
                except Exception as exc:
                    metrics.ENQUEUE_FAILURES.inc()
                    log.warning("sweeper could not reach the broker (%s: %s); will retry",
                                exc.__class__.__name__, exc)
                    return sent
                sent += len(batch)
                metrics.SWEEPER_RESENT.inc(len(batch))
            if len(ids) < SWEEP_BATCH:
                break
            last_id = ids[-1]
        if sent:
            log.info("sweeper re-sent %d message(s) to the broker", sent)
        return sent

    def due_work(self) -> int:
        """Send due timeline steps and notices to their actors; returns how many."""
        send = self._workflow.send
        if send is None:
            return 0
        sent = 0
        for claim, actor in ((self._workflow.claim_due_steps, "run_step"),
                             (self._workflow.claim_due_notices, "deliver_notice")):
            while True:
                ids = claim(self._clock())
                for ident in ids:
                    send(actor, ident)
                sent += len(ids)
                if len(ids) < CLAIM_BATCH:
                    break
        return sent

    def tick(self) -> None:
        for duty in (self.sweep, self.due_work):
            try:
                duty()
            except Exception as exc:  # the database or broker is away: try again next tick
                log.warning("scheduler %s failed: %s: %s", duty.__name__,
                            exc.__class__.__name__, exc)

    def run(self) -> None:
        """Tick every ``pipeline.sweep_interval_s`` until :meth:`stop`."""
        interval = self._config.sweep_interval_s
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(interval)

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self.run, name="scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
