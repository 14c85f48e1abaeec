"""The web tests' desk: the shared workflow desk (tests/conftest.py: SQLite under tmp_path with
the workflow's customers, a clock the test moves) with the users of ``web_support.USERS``."""

from __future__ import annotations

import pytest
from abuse_desk.app.wiring import Desk

from tests.web.web_support import with_staff
from tests.workflow.workflow_support import MakeDesk


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    return with_staff(make_desk())
