"""The dramatiq actors, declared on the desk's broker when a process starts (never at import).

Actors take ids, not objects, and are idempotent: a message may be delivered twice. Retries are
few and short: a message that still fails stays ``received`` and the sweeper re-sends it later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq

from ..core.broker import QUEUE
from .examiner import ExaminerStopped
from .pipeline import Pipeline, batch_time_limit_s
from .timeline import Workflow


@dataclass(frozen=True)
class Actors:
    process_message: dramatiq.Actor[[int], None]
    process_messages: dramatiq.Actor[[list[int]], None]
    run_step: dramatiq.Actor[[int], None]
    deliver_notice: dramatiq.Actor[[int], None]

    def send(self, name: str, ident: int) -> None:
        actor: dramatiq.Actor[[int], None] = getattr(self, name)
        actor.send(ident)


def declare_actors(broker: dramatiq.Broker, pipeline: Pipeline, workflow: Workflow,
                   max_retries: int) -> Actors:
    """Declare the actors on *broker*: what a worker runs. Work is sent to them by name
    (``core.broker.sender``), so the parts that send it need not know them."""

    def process_message(message_id: int) -> None:
        pipeline.process(message_id)

    def process_messages(message_ids: list[int]) -> None:
        """A group commit's messages: examined one by one, written in one transaction."""
        pipeline.process_many([int(i) for i in message_ids])

    def run_step(step_id: int) -> None:
        workflow.run_step(step_id)

    def deliver_notice(notice_id: int) -> None:
        workflow.deliver_notice(notice_id)

    def declare(fn: Callable[[Any], None], time_limit_ms: int,
                **options: Any) -> dramatiq.Actor[[Any], None]:
        return dramatiq.actor(
            broker=broker, actor_name=fn.__name__, queue_name=QUEUE,
            max_retries=max_retries, min_backoff=1_000,
            max_backoff=60_000, time_limit=time_limit_ms, **options)(fn)

    # A message whose examination a stop cut short is not retried: it stays received, and
    # the next start (or another worker's sweeper) sends it again.
    return Actors(process_message=declare(process_message, 600_000,
                                          throws=(ExaminerStopped,)),
                  process_messages=declare(
                      process_messages,
                      max(600_000, int(batch_time_limit_s(pipeline.config.parsers) * 1000)),
                      throws=(ExaminerStopped,)),
                  run_step=declare(run_step, 300_000),
                  deliver_notice=declare(deliver_notice, 300_000))
