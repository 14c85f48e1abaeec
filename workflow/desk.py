"""The running desk's context: config, database and broker, built once and passed in."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dramatiq
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..core.broker import make_broker
from ..core.clock import Clock, system_clock
from ..core.config import Config
from ..core.db import make_engine, make_sessions

if TYPE_CHECKING:
    from ..classifier.runtime import ClassifierRuntime
    from ..parsers.registry import Registry
    from .examiner import Examiner
    from .timeline import Workflow


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
    # Where messages are examined (parse, DKIM, classify): the examiner processes of a worker
    # (workflow/examiner.py); None: in the calling thread.
    examiner: Examiner | None = None

    @functools.cached_property
    def parsers(self) -> Registry:
        from ..parsers.registry import default_registry

        registry = default_registry(self.config.smtp.hostname)
        for name in self.config.parsers.plugins:
            registry.register(load_plugin(name))
        return registry

    @functools.cached_property
    def classifier(self) -> ClassifierRuntime:
        from ..classifier.runtime import ClassifierRuntime

        return ClassifierRuntime(self.config, self.engine, self.clock)

    @functools.cached_property
    def workflow(self) -> Workflow:
        from .timeline import Workflow

        return Workflow(self)

    def warm(self, examine: bool = True) -> None:
        """Build the lazily made parts now, before worker threads share them (a
        ``cached_property`` first read from two threads at once may build it twice). Without
        *examine* (the examiners hold their own) the classifier and its customer index are
        left to be built when first used."""
        _ = self.parsers
        if examine:
            _ = self.classifier
        _ = self.workflow.writer, self.workflow.transport

    def close(self) -> None:
        self.broker.close()
        self.engine.dispose()


class PluginError(ValueError):
    """A ``parsers.plugins`` entry that does not give a parser."""


def load_plugin(name: str) -> Any:
    """The parser made by the factory *name* (``package.module:factory``)."""
    import importlib

    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        parser = factory()
    except Exception as exc:
        raise PluginError(f"parsers.plugins: {name}: {exc.__class__.__name__}: {exc}") from exc
    if not all(hasattr(parser, a) for a in ("name", "stage", "matches", "parse")):
        raise PluginError(f"parsers.plugins: {name} did not give a parser (name, stage, "
                          "matches, parse: parsers/base.py)")
    return parser


def open_desk(config: Config, clock: Clock = system_clock) -> Desk:
    engine = make_engine(config.database)
    return Desk(config=config, engine=engine, sessions=make_sessions(engine),
                broker=make_broker(config.broker.url), clock=clock)
