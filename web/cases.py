"""The cases of the specialists' desk: the list (``/cases``), one case (``/cases/{ref}``) and what
a specialist does to it (``POST /cases/{ref}/{action}``).

The data is the CLI's (``casework.queries``) and every action goes through
``casework.actions.apply`` under the signed-in user's name, so the desk, the command line and
the API change cases the same way. Approving a restriction or termination and waiving fees are
supervisor routes (``SUPERVISOR_ACTIONS``): the wrapper refuses a specialist with 403 before
anything is read or changed.

Everything a case shows that came from outside (reports, customers' replies and bounces, the
customer's name) is text: autoescaped, mails decoded to their text part and shown in ``<pre>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.responses import Response
from starlette.routing import Route

from ..casework import actions as case_actions
from ..core.db import as_utc
from ..core.mail import Mail
from ..core.models import Case, CaseState, Customer, Message, Notice
from ..core.policy import CATEGORIES
from ..workflow import cases
from .base import Ctx, Web, bound

STATES = [s.value for s in CaseState]
ACTIVE = frozenset(s.value for s in cases.ACTIVE)
CLOSED = frozenset({CaseState.RESOLVED.value, CaseState.CLOSED.value,
                    CaseState.TERMINATED.value})
MAIL_TEXT_LIMIT = 50_000  # characters of a reply or bounce shown on the case page
MAX_PAGE = 100_000
# What each action form sends; the route's role comes from case_actions.SUPERVISOR_ACTIONS.
FORM_ACTIONS = ("resolve", "escalate", "extend", "approve", "waive-fee", "note", "message")
NEEDS_REASON = {"resolve": "say why the case is resolved (it goes in the audit trail)",
                "escalate": "say why the case is escalated (it goes in the audit trail)"}
_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")


# ---- the list --------------------------------------------------------------------------------

def _page_number(value: str | None) -> int:
    try:
        return min(max(1, int(value or "1")), MAX_PAGE)
    except ValueError:
        return 1


def _as_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _customer_names(ctx: Ctx, external_ids: set[str]) -> dict[str, str]:
    if not external_ids:
        return {}
    with ctx.desk.engine.connect() as conn:
        return {ext: name for ext, name in conn.execute(
            select(Customer.external_id, Customer.name)
            .where(Customer.external_id.in_(sorted(external_ids))))}


def case_list(ctx: Ctx) -> Response:
    query = ctx.query
    problems = []
    state = str(query.get("state") or "")
    if state and state not in STATES:
        problems.append(f"there is no state {state!r}: showing every state")
        state = ""
    category = str(query.get("category") or "")
    if category and category not in CATEGORIES:
        problems.append(f"there is no category {category!r}: showing every category")
        category = ""
    customer = str(query.get("customer") or "").strip()[:128]
    overdue = str(query.get("overdue") or "") in ("1", "on", "yes", "true")
    page = _page_number(query.get("page"))
    size = max(1, ctx.desk.config.web.page_size)
    rows = ctx.desk.cases.case_rows(state or None, customer or None, overdue, size + 1,
                     category=category or None, offset=(page - 1) * size)
    more = len(rows) > size
    rows = rows[:size]
    names = _customer_names(ctx, {r["customer_id"] for r in rows})
    now = ctx.desk.clock()
    for row in rows:
        deadline = _as_time(row["deadline_at"])
        row["overdue"] = row["state"] in ACTIVE and deadline is not None and deadline < now
        row["customer_name"] = names.get(row["customer_id"], "")
    filters = {k: v for k, v in (("state", state), ("category", category),
                                 ("customer", customer), ("overdue", "1" if overdue else ""))
               if v}

    def url(to_page: int) -> str:
        params = {**filters, **({"page": str(to_page)} if to_page > 1 else {})}
        return "/cases" + (f"?{urlencode(params)}" if params else "")

    return ctx.render(
        "cases/list.j2", nav="cases", rows=rows, states=STATES, categories=list(CATEGORIES),
        state=state, category=category, customer=customer, overdue=overdue, page=page,
        size=size, problems=problems, filtered=bool(filters),
        prev_url=url(page - 1) if page > 1 else None, next_url=url(page + 1) if more else None)


# ---- one case --------------------------------------------------------------------------------

def mail_text(raw: bytes | None, ctx: Ctx) -> str:
    """What a person reads in a mail: its text part (else its HTML without tags), decoded;
    never rendered. A mail the parser cannot take apart is shown as it came."""
    if not raw:
        return ""
    try:
        text = Mail(raw, ctx.desk.config.parsers).body_text(MAIL_TEXT_LIMIT + 1)
    except Exception:  # a mail beyond the parser's limits or broken: its bytes as text
        text = raw.decode("utf-8", "replace")
    text = text.strip("\r\n")
    if len(text) > MAIL_TEXT_LIMIT:
        text = text[:MAIL_TEXT_LIMIT] + "\n[... cut here ...]"
    return text


def load_case(ctx: Ctx, ref: str) -> dict[str, Any] | None:
    """``case_detail`` with what the page shows besides: the customer's name and address, the
    body of each notice and the text of each reply or bounce. None: no such case."""
    try:
        detail = ctx.desk.cases.case_detail(ref)
    except cases.CaseError:
        return None
    number = detail["number"]
    with ctx.desk.engine.connect() as conn:
        customer = conn.execute(select(Customer.name, Customer.email).join(
            Case, Case.customer_id == Customer.id).where(Case.id == number)).one()
        bodies = {nid: body for nid, body in conn.execute(
            select(Notice.id, Notice.body_text).where(Notice.case_id == number))}
        texts = {mid: mail_text(raw, ctx) for mid, raw in conn.execute(
            select(Message.id, Message.raw).where(Message.case_id == number))}
    for notice in detail["notices"]:
        notice["body"] = bodies.get(notice["id"], "")
    for reply in detail["replies"]:
        reply["text"] = texts.get(reply["message_id"], "")
    detail["customer_name"] = customer.name
    detail["customer_email"] = customer.email or ""
    deadline = _as_time(detail["deadline_at"])
    detail["overdue"] = (detail["state"] in ACTIVE and deadline is not None
                         and deadline < ctx.desk.clock())
    detail["assessed_fees"] = [f for f in detail["fees"] if f["state"] == "assessed"]
    detail["proposed_steps"] = [s for s in detail["steps"] if s["state"] == "proposed"]
    detail["proposed_label"] = detail["proposed_action"] or next(
        (s["kind"] for s in detail["proposed_steps"] if s["kind"] == "restore"), None)
    return detail


def render_case(ctx: Ctx, ref: str, status: int = 200, error: str = "",
                failed: str = "") -> Response:
    detail = load_case(ctx, ref)
    if detail is None:
        return ctx.error(404, f"There is no case {ref!r}. The case list shows them all.")
    form = ctx.form if failed else {}
    return ctx.render(
        "cases/case.j2", status=status, nav="cases", case=detail, error=error, failed=failed,
        form=form, supervisor=ctx.user.can("supervisor"), active=detail["state"] in ACTIVE,
        closed=detail["state"] in CLOSED, approvable=list(cases.ACTIONS))


def case_page(ctx: Ctx) -> Response:
    return render_case(ctx, ctx.request.path_params["ref"])


# ---- actions ---------------------------------------------------------------------------------

def _until(text: str, zone: str) -> datetime | None:
    """The new deadline from the form: a date and time in the desk's zone (what a
    ``datetime-local`` field sends), or ISO 8601 with an offset."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or (value.tzinfo is None and not _LOCAL_TIME.fullmatch(text)):
        raise cases.CaseError(f"{text!r} is not a date and time: write it as YYYY-MM-DD HH:MM "
                              f"({zone})")
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value


def _business_days(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 365:
        raise cases.CaseError(f"{text!r} is not a number of business days (1 to 365)")
    return int(text)


def _fee_id(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise cases.CaseError(f"{text!r} is not a fee number")
    return int(text)


def action_request(ctx: Ctx, action: str) -> case_actions.Request:
    """The form of *action* as a ``case_actions.Request``; CaseError for what does not fit."""
    form = ctx.form
    reason = form.get("reason", "")
    if action in NEEDS_REASON and not reason.strip():
        raise cases.CaseError(NEEDS_REASON[action])
    if action in ("note", "message"):
        reason = form.get("text", "")
    if action == "extend":
        until = _until(form.get("until", ""), ctx.desk.config.workflow.time_zone)
        days = _business_days(form.get("business_days", ""))
        if until is not None and days is not None:
            raise cases.CaseError("give either the new deadline or a number of business days, "
                                  "not both")
        return case_actions.Request(action, reason, until=until, business_days=days)
    if action == "approve":
        chosen = form.get("approve", "").strip()
        if chosen and chosen not in cases.ACTIONS:
            raise cases.CaseError(f"{chosen!r} is not an action: one of "
                                  f"{', '.join(cases.ACTIONS)}")
        return case_actions.Request(action, reason, approve=chosen or None)
    if action == "waive-fee":
        return case_actions.Request(action, reason, fee_id=_fee_id(form.get("fee_id", "")))
    if action == "message":
        return case_actions.Request(action, reason, subject=form.get("subject", ""))
    return case_actions.Request(action, reason)


def act(ctx: Ctx, action: str) -> Response:
    ref = ctx.request.path_params["ref"]
    with ctx.desk.engine.connect() as conn:
        try:
            reference = cases.find_case(conn, ref).reference
        except cases.CaseError:
            return ctx.error(404, f"There is no case {ref!r}. The case list shows them all.")
    try:
        said = case_actions.apply(ctx.desk.workflow, reference, action_request(ctx, action),
                                  ctx.actor)
    except cases.CaseError as exc:
        return render_case(ctx, reference, status=400, error=str(exc), failed=action)
    return ctx.redirect(f"/cases/{reference}", flash=said)


def action_role(action: str) -> str:
    return "supervisor" if action in case_actions.SUPERVISOR_ACTIONS else "specialist"


def action_page(action: str) -> Callable[[Ctx], Response]:
    """The page of ``POST /cases/{ref}/<action>``: :func:`act` for *action*, named
    ``case_<action>``."""
    return bound(act, action=action, name=f"case_{action.replace('-', '_')}")


def routes(web: Web) -> list[Route]:
    return [Route("/cases", web.page()(case_list), methods=["GET"]),
            Route("/cases/{ref}", web.page()(case_page), methods=["GET"]),
            *(Route(f"/cases/{{ref}}/{action}", web.page(action_role(action))(action_page(action)),
                    methods=["POST"]) for action in FORM_ACTIONS)]
