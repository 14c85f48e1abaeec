"""The running desk's context: config, database and broker, built once and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import dramatiq
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from abuse_desk.broker import make_broker
from abuse_desk.config import Config
from abuse_desk.db import make_engine, make_sessions, utcnow


@dataclass
class Desk:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    broker: dramatiq.Broker
    clock: Callable[[], datetime] = field(default=utcnow)

    def close(self) -> None:
        self.broker.close()
        self.engine.dispose()


def open_desk(config: Config, clock: Callable[[], datetime] = utcnow) -> Desk:
    engine = make_engine(config.database)
    return Desk(config=config, engine=engine, sessions=make_sessions(engine),
                broker=make_broker(config.broker.url), clock=clock)
