"""The one place the desk is built: every part made once, eagerly, in the order they need each
other, and each given only what it uses.

    engine (schema checked or upgraded) -> sessions -> broker -> send
    -> examination (parsers + plugins, classifier, sender authentication)
    -> workflow (timeline: calendar, notice writer, transport; sends due work)
    -> pipeline (examination + workflow) -> review, case views -> the web desk's parts

The runner (app/runner.py) and the CLI's commands open a desk here; nothing else builds parts.
The actors, the examiner processes, the listener and the scheduler are started by the runner
from these parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..casework.queries import CaseQueries
from ..casework.review import Review
from ..classifier.runtime import ClassifierRuntime
from ..core.broker import Send, make_broker, sender
from ..core.clock import Clock, system_clock
from ..core.config import Config
from ..core.db import ensure_schema, is_sqlite, make_engine, make_sessions, upgrade
from ..web.base import WebDesk
from ..workflow.examine import Examination, build_examination
from ..workflow.pipeline import Pipeline
from ..workflow.timeline import Workflow


@dataclass(frozen=True)
class Desk:
    """Everything one process of the desk runs on (its own engine and broker)."""

    config: Config
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    broker: dramatiq.Broker
    send: Send | None
    examination: Examination
    workflow: Workflow
    pipeline: Pipeline
    review: Review
    cases: CaseQueries
    web: WebDesk

    def close(self) -> None:
        self.broker.close()
        self.engine.dispose()


def open_engine(config: Config, *, upgrade_schema: bool | None = None) -> Engine:
    """The database engine, its schema checked: upgraded where *upgrade_schema* says so (by
    default only the embedded SQLite database is upgraded by itself; PostgreSQL waits for
    ``abuse-desk db upgrade``)."""
    engine = make_engine(config.database)
    try:
        if upgrade_schema:
            upgrade(engine)
        else:
            auto = is_sqlite(config.database.url) if upgrade_schema is None else False
            ensure_schema(engine, auto_upgrade=auto)
    except BaseException:
        engine.dispose()
        raise
    return engine


def open_desk(config: Config, clock: Clock = system_clock, *, sends: bool = True,
              upgrade_schema: bool | None = None) -> Desk:
    """The desk *config* describes, at *clock*. *sends*: work that becomes due goes to the
    broker at once (a running desk); without it the scheduler or ``abuse-desk timeline run``
    picks it up (the CLI's commands). Raises :class:`parsers.registry.PluginError` for a
    configured parser plugin that does not load, :class:`core.db.SchemaOutOfDate` for a
    database whose schema is not the code's."""
    engine = open_engine(config, upgrade_schema=upgrade_schema)
    try:
        sessions = make_sessions(engine)
        broker = make_broker(config.broker.url)
        send = sender(broker) if sends else None
        classifier = ClassifierRuntime(config, engine, clock)
        examination = build_examination(config, classifier)
        workflow = Workflow(config, engine, clock, send)
        pipeline = Pipeline(config, engine, clock, examination, workflow)
        review = Review(config, engine, sessions, clock, classifier, workflow,
                        pipeline)
        cases = CaseQueries(config.workflow, engine, sessions, clock)
    except BaseException:
        engine.dispose()
        raise
    web = WebDesk(config=config, engine=engine, sessions=sessions, clock=clock,
                  workflow=workflow, review=review, cases=cases)
    return Desk(config=config, clock=clock, engine=engine, sessions=sessions, broker=broker,
                send=send, examination=examination, workflow=workflow, pipeline=pipeline,
                review=review, cases=cases, web=web)
