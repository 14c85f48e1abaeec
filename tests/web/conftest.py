"""The web tests' desk: SQLite under tmp_path with the workflow's customers, the users of
``web_support.USERS``, and a clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest
from abuse_desk.app.wiring import Desk

from tests.web.web_support import web_desk
from tests.workflow.workflow_support import START, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> Desk:
    return web_desk(tmp_path, clock)
