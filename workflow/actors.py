"""The dramatiq actors, declared on the desk's broker when a process starts (never at import).

Actors take ids, not objects, and are idempotent: a message may be delivered twice. Retries are
few and short: a message that still fails stays ``received`` and the sweeper re-sends it later.
"""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq

from abuse_desk.app import Desk
from abuse_desk.broker import QUEUE
from workflow import pipeline


@dataclass(frozen=True)
class Actors:
    process_message: dramatiq.Actor[[int], None]


def declare_actors(desk: Desk) -> Actors:
    def process_message(message_id: int) -> None:
        pipeline.process_message(desk, message_id)

    return Actors(
        process_message=dramatiq.actor(
            broker=desk.broker, actor_name="process_message",
            queue_name=QUEUE, max_retries=desk.config.pipeline.max_retries,
            min_backoff=1_000, max_backoff=60_000, time_limit=600_000)(process_message),
    )
