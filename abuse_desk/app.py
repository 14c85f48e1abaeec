"""The running desk's context: config, database and broker, built once and passed in."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dramatiq
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from abuse_desk.broker import make_broker
from abuse_desk.clock import Clock, system_clock
from abuse_desk.config import Config
from abuse_desk.db import make_engine, make_sessions

if TYPE_CHECKING:
    from classifier.runtime import ClassifierRuntime
    from parsers.registry import Registry
    from workflow.timeline import Workflow


@dataclass
class Desk:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    broker: dramatiq.Broker
    # The one source of "now" for everything this desk decides (abuse_desk.clock).
    clock: Clock = field(default=system_clock)
    # Sends an actor's work to the broker: enqueue("run_step", id); None where there is no
    # worker (the scheduler or `timeline run` picks the work up instead).
    enqueue: Callable[[str, int], None] | None = None

    @functools.cached_property
    def parsers(self) -> Registry:
        from parsers.registry import default_registry

        return default_registry(self.config.smtp.hostname)

    @functools.cached_property
    def classifier(self) -> ClassifierRuntime:
        from classifier.runtime import ClassifierRuntime

        return ClassifierRuntime(self.config, self.engine, self.clock)

    @functools.cached_property
    def workflow(self) -> Workflow:
        from workflow.timeline import Workflow

        return Workflow(self)

    def warm(self) -> None:
        """Build the lazily made parts now, before worker threads share them (a
        ``cached_property`` first read from two threads at once may build it twice)."""
        _ = self.parsers, self.classifier
        _ = self.workflow.writer, self.workflow.transport

    def close(self) -> None:
        self.broker.close()
        self.engine.dispose()


def open_desk(config: Config, clock: Clock = system_clock) -> Desk:
    engine = make_engine(config.database)
    return Desk(config=config, engine=engine, sessions=make_sessions(engine),
                broker=make_broker(config.broker.url), clock=clock)
