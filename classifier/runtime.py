"""The classifier as a worker holds it: the customer index and the text model, kept fresh from
the database, and the writing side of specialists' decisions (training examples, the model).

The index is reloaded when the resources in the database changed (checked at most every
``classifier.index_refresh_s``); the model when its row in ``model_state`` changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..core.config import Config
from ..core.models import CustomerResource, ModelState, TrainingExample
from .classify import Classifier
from .customers import CustomerIndex
from .model import TextModel
from .resolver_hook import ResolverHook
from .signatures import DkimLimits
from .trust import DEFAULT_TRUSTED_REPORTERS, TrustPolicy

MODEL = "text-model"


def upsert(conn: Any, table: Any, values: dict[str, Any], key: str,
           update_columns: list[str]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, on SQLite and PostgreSQL."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[key], set_={c: stmt.excluded[c] for c in update_columns}))


class ClassifierRuntime:
    def __init__(self, config: Config, engine: Engine,
                 clock: Callable[[], datetime]) -> None:
        self._config = config
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._index: CustomerIndex | None = None
        self._index_signature: tuple[Any, ...] | None = None
        self._index_checked = 0.0
        self._model: TextModel | None = None
        self._model_stamp: Any = None
        self._model_checked = 0.0
        cfg = config.classifier
        trusted = [*DEFAULT_TRUSTED_REPORTERS] if cfg.use_default_trusted_reporters else []
        trusted += TrustPolicy.from_config(
            [{"name": r.name, "senders": r.senders, "require_dkim": r.require_dkim}
             for r in cfg.trusted_reporters]).reporters
        hook = None
        if cfg.resolver_hook_url or cfg.resolver_hook_command:
            hook = ResolverHook.from_config(cfg, clock)
        self.classifier = Classifier(cfg, self.index, self.model,
                                     TrustPolicy(trusted, authserv_id=cfg.authserv_id), hook,
                                     dkim=DkimLimits.from_config(config.parsers))

    # -- the customer index ------------------------------------------------------------------

    def _signature(self) -> tuple[Any, ...]:
        with self._engine.connect() as conn:
            return tuple(conn.execute(select(
                func.count(CustomerResource.id), func.max(CustomerResource.id),
                func.sum(CustomerResource.id))).one())

    def index(self) -> CustomerIndex:
        now = time.monotonic()
        with self._lock:
            if self._index is not None and \
                    now - self._index_checked < self._config.classifier.index_refresh_s:
                return self._index
            self._index_checked = now
            signature = self._signature()
            if self._index is None or signature != self._index_signature:
                self._index = CustomerIndex.load(self._engine)
                self._index_signature = signature
            return self._index

    def invalidate(self) -> None:
        with self._lock:
            self._index_checked = 0.0
            self._model_checked = 0.0

    # -- the text model ----------------------------------------------------------------------

    def model(self) -> TextModel | None:
        now = time.monotonic()
        with self._lock:
            if now - self._model_checked < self._config.classifier.index_refresh_s:
                return self._model
            self._model_checked = now
            with self._engine.connect() as conn:
                row = conn.execute(select(ModelState.updated_at, ModelState.data)
                                   .where(ModelState.name == MODEL)).first()
            if row is None:
                self._model, self._model_stamp = None, None
            elif row.updated_at != self._model_stamp:
                self._model, self._model_stamp = TextModel.from_json(row.data), row.updated_at
            return self._model

    def learn(self, conn: Any, text: str, type_: str, decided_by: str,
              report_id: int | None) -> None:
        """Record a specialist's decision as a training example and teach the model, in the
        caller's transaction (so both happen with the decision, or neither)."""
        now = self._clock()
        conn.execute(insert(TrainingExample).values(
            report_id=report_id, text=text, type=type_, decided_by=decided_by, created_at=now))
        stmt = select(ModelState.data).where(ModelState.name == MODEL)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        model = TextModel.from_json(row.data) if row else TextModel()
        model.learn(text, type_)
        if row is None:
            upsert(conn, ModelState.__table__, {"name": MODEL, "data": model.to_json(),
                                                "examples": model.examples_seen,
                                                "updated_at": now},
                   "name", ["data", "examples", "updated_at"])
        else:
            conn.execute(update(ModelState).where(ModelState.name == MODEL).values(
                data=model.to_json(), examples=model.examples_seen, updated_at=now))
        self.invalidate()
