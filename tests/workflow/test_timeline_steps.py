"""Which case states each timeline step runs in is one table (``MAIL_STEP_STATES``); a step
due in any other state is skipped with the reason, and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from abuse_desk.core.models import CaseState
from abuse_desk.workflow.timeline import MAIL_STEP_STATES, _mail_step

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize("kind", sorted(MAIL_STEP_STATES))
def test_a_step_due_in_a_state_it_does_not_run_in_is_skipped(kind: str) -> None:
    allowed = MAIL_STEP_STATES[kind]
    skipped = [state for state in CaseState if allowed is not None and state not in allowed]
    for state in skipped:
        case = SimpleNamespace(id=1, state=state.value, deadline_at=None)
        step = SimpleNamespace(id=2, kind=kind, detail={})
        # no connection: a skipped step touches nothing
        assert _mail_step(None, None, case, step, NOW) == (f"case is {state.value}", None)  # type: ignore[arg-type]


def test_an_unknown_step_kind_is_skipped_with_its_name() -> None:
    case = SimpleNamespace(id=1, state=CaseState.OPEN.value, deadline_at=None)
    step = SimpleNamespace(id=2, kind="carrier-pigeon", detail={})
    assert _mail_step(None, None, case, step, NOW) == (  # type: ignore[arg-type]
        "unknown step kind 'carrier-pigeon'", None)


def test_the_table_keeps_the_policy() -> None:
    """Reminders and deadlines only while the customer can still act; the first notice only
    to an open case; the escalation and resolution mails only in their states."""
    closed = {CaseState.RESOLVED, CaseState.TERMINATED, CaseState.CLOSED}
    for kind in ("reminder", "deadline", "notice", "escalation"):
        assert not (MAIL_STEP_STATES[kind] or set()) & closed, kind
    assert MAIL_STEP_STATES["notice"] == {CaseState.OPEN}
    assert MAIL_STEP_STATES["resolved"] == {CaseState.RESOLVED}
    assert MAIL_STEP_STATES["action"] is None
