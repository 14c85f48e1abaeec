"""The desk's JSON API under ``/api/v1/``: the review queue, reports and decisions, cases and
what a person does to them, the dashboard's figures; described by ``web.openapi`` (served at
``/api/v1/openapi.json`` and as a page at ``/api/v1/docs``, both public).

Every other route needs ``Authorization: Bearer adk_...`` (``web.base.Web.api``: 401 with
``WWW-Authenticate: Bearer`` without a live token of an enabled user, 403 for a lower role). A
token acts as its user: decisions and case actions are audit events under that name, made by
the same functions as the command line and the web desk (``casework.review``,
``casework.actions.apply``). ``case_actions.SUPERVISOR_ACTIONS`` need a supervisor's token;
a specialist's is refused (403) before anything is read or changed.

Errors are ``{"error": "..."}``: 400 bad input (parameters and bodies are checked, unknown
fields refused), 404 no such report or case, 413 a body over 256 KiB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..casework import actions as case_actions
from ..casework import review
from ..core.db import as_utc
from ..core.fields import iso_z
from ..core.models import Case, CaseState, Customer, Message, Report
from ..workflow import cases
from . import auth, openapi
from .base import COOKIE, ApiError, Ctx, Web, bound

PREFIX = openapi.PREFIX
_NUMBER = re.compile(r"[0-9]{1,12}")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
CASE_STATES = frozenset(s.value for s in CaseState)
DECISION_FIELDS = frozenset({"type", "customer", "all_rows", "not_ours"})
ACTION_FIELDS = frozenset({"action", "reason", "until", "business_days", "fee_id", "approve",
                           "subject"})


# ---- reading what was sent ---------------------------------------------------------------------

def query_int(ctx: Ctx, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter: 400 if it is not one or below *low*; capped at *high*."""
    text = ctx.query.get(name)
    if text is None or text == "":
        return default
    if not _NUMBER.fullmatch(text) or int(text) < low:
        raise ApiError(400, f"{name} must be a whole number from {low} (got {text[:40]!r})")
    return min(int(text), high)


def query_bool(ctx: Ctx, name: str) -> bool:
    text = (ctx.query.get(name) or "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ApiError(400, f"{name} must be true or false (got {text[:40]!r})")


def only_fields(body: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)[:200]}; the fields are: "
                            f"{', '.join(sorted(allowed))}")


def body_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value


def body_int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
    return value


def body_time(body: dict[str, Any], name: str) -> datetime | None:
    text = body_str(body, name)
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 time, e.g. 2026-12-01T09:00:00Z "
                            f"(got {text[:40]!r})") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def report_id_of(ctx: Ctx) -> int:
    text = ctx.request.path_params["id"]
    if not _NUMBER.fullmatch(text) or int(text) < 1:
        raise ApiError(400, f"a report is named by its number (got {text[:40]!r})")
    return int(text)


def case_reference(ctx: Ctx) -> tuple[str, int]:
    """The case the path names, as (reference, number); 404 if there is none."""
    ref = ctx.request.path_params["ref"]
    with ctx.desk.engine.connect() as conn:
        try:
            case = cases.find_case(conn, ref[:64])
        except cases.CaseError as exc:
            raise ApiError(404, str(exc)) from None
    return case.reference, case.id


def case_row(ctx: Ctx, number: int) -> dict[str, Any]:
    (row,) = ctx.desk.cases.case_rows(case_id=number)
    return row


# ---- review ------------------------------------------------------------------------------------

def review_queue(ctx: Ctx) -> dict[str, Any]:
    limit = query_int(ctx, "limit", openapi.DEFAULT_LIMIT, 1, openapi.MAX_LIMIT)
    offset = query_int(ctx, "offset", 0, 0, 10**9)
    items = ctx.desk.review.queue()
    return {"items": items[offset:offset + limit], "total": len(items), "limit": limit,
            "offset": offset}


def report_detail(ctx: Ctx, report_id: int) -> dict[str, Any]:
    """One report as the API shows it (no raw message); 404 if there is none."""
    stmt = (select(Report, Message.received_at, Message.header_from, Message.header_subject,
                   Customer.external_id, Customer.name, Case.reference, Case.state)
            .join(Message, Message.id == Report.message_id)
            .outerjoin(Customer, Customer.id == Report.customer_id)
            .outerjoin(Case, Case.id == Report.case_id)
            .where(Report.id == report_id))
    with ctx.desk.sessions() as session:
        found = session.execute(stmt).first()
        if found is None:
            raise ApiError(404, f"no report {report_id}")
        r, received, sender, subject, external_id, customer_name, reference, state = found
        return {
            "id": r.id, "message_id": r.message_id, "seq": r.seq, "format": r.format,
            "type_hint": r.type_hint, "category": r.category, "type": r.type,
            "confidence": r.confidence, "source_ip": r.source_ip, "source_port": r.source_port,
            "occurred_at": iso_z(as_utc(r.occurred_at)), "occurred_raw": r.occurred_raw,
            "fields": r.fields or {},
            "customer": ({"id": external_id, "name": customer_name}
                         if external_id is not None else None),
            "case": ({"id": reference, "number": r.case_id, "state": state}
                     if reference is not None else None),
            "review_reasons": r.review_reason.split("; ") if r.review_reason else [],
            "needs_review": bool(r.review_reason and r.reviewed_at is None
                                 and r.duplicate_of is None),
            "evidence": r.decision or {}, "trusted": r.trusted, "duplicate_of": r.duplicate_of,
            "duplicates": r.duplicates or 0, "reviewed_by": r.reviewed_by,
            "reviewed_at": iso_z(as_utc(r.reviewed_at)),
            "created_at": iso_z(as_utc(r.created_at)), "received_at": iso_z(as_utc(received)),
            "reporter": sender, "subject": subject,
        }


def get_report(ctx: Ctx) -> dict[str, Any]:
    return report_detail(ctx, report_id_of(ctx))


def decide_report(ctx: Ctx) -> dict[str, Any]:
    report_id = report_id_of(ctx)
    body = ctx.form
    only_fields(body, DECISION_FIELDS)
    type_, customer = body_str(body, "type"), body_str(body, "customer")
    with ctx.desk.engine.connect() as conn:
        if conn.execute(select(Report.id).where(Report.id == report_id)).first() is None:
            raise ApiError(404, f"no report {report_id}")
    try:
        ctx.desk.review.decidable(report_id)  # not a claim on a case yet, not a copy
        all_rows, not_ours = body.get("all_rows", False), body.get("not_ours", False)
        if not isinstance(all_rows, bool) or not isinstance(not_ours, bool):
            raise ApiError(400, "all_rows and not_ours must be true or false")
        outcome = ctx.desk.review.decide(review.ReviewDecision(
            report_id, decided_by=ctx.user.name, type=type_ and type_.strip(),
            customer=customer and customer.strip(), all_rows=all_rows, not_ours=not_ours))
    except review.ReviewError as exc:
        raise ApiError(400, str(exc)) from None
    with ctx.desk.engine.connect() as conn:
        case_id = conn.execute(select(Report.case_id).where(Report.id == report_id)).scalar()
    return {
        "report_id": report_id,
        "classification": {
            "category": outcome.category, "type": outcome.type,
            "confidence": outcome.confidence, "customer_id": outcome.external_id,
            "not_abuse": outcome.not_abuse, "trusted": outcome.trusted,
            "review_reasons": list(outcome.review_reasons), "evidence": outcome.evidence},
        "case": case_row(ctx, case_id) if case_id is not None else None,
    }


# ---- cases -------------------------------------------------------------------------------------

def list_cases(ctx: Ctx) -> dict[str, Any]:
    state = (ctx.query.get("state") or "").strip()
    if state and state not in CASE_STATES:
        raise ApiError(400, f"there is no state {state[:40]!r}; one of: "
                            f"{', '.join(sorted(CASE_STATES))}")
    customer = (ctx.query.get("customer") or "").strip()[:128]
    overdue = query_bool(ctx, "overdue")
    limit = query_int(ctx, "limit", openapi.DEFAULT_LIMIT, 1, openapi.MAX_LIMIT)
    offset = query_int(ctx, "offset", 0, 0, 10**9)
    rows = ctx.desk.cases.case_rows(state or None, customer or None, overdue, limit + 1,
                     offset=offset)
    return {"cases": rows[:limit], "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > limit else None}


def get_case(ctx: Ctx) -> dict[str, Any]:
    reference, _ = case_reference(ctx)
    try:
        return ctx.desk.cases.case_detail(reference)
    except cases.CaseError as exc:
        raise ApiError(404, str(exc)) from None


def act_on_case(ctx: Ctx) -> dict[str, Any]:
    body = ctx.form
    action = body_str(body, "action")
    if not action or not action.strip():
        raise ApiError(400, "say which action: one of " + ", ".join(case_actions.ACTIONS))
    action = action.strip()
    if action in case_actions.SUPERVISOR_ACTIONS and not ctx.user.can("supervisor"):
        raise ApiError(403, f"{action} needs the supervisor role; the token's user is "
                            f"{ctx.user.role}")
    only_fields(body, ACTION_FIELDS)
    until = body_time(body, "until")
    days = body_int(body, "business_days", 1, 365)
    if until is not None and days is not None:
        raise ApiError(400, "give either until or business_days, not both")
    request = case_actions.Request(
        action=action, reason=body_str(body, "reason") or "", until=until, business_days=days,
        fee_id=body_int(body, "fee_id", 1, 2**62),
        approve=(body_str(body, "approve") or "").strip() or None,
        subject=body_str(body, "subject") or "")
    reference, number = case_reference(ctx)
    try:
        said = case_actions.apply(ctx.desk.workflow, reference, request, ctx.actor)
    except cases.CaseError as exc:
        raise ApiError(400, str(exc)) from None
    return {"result": said, "case": case_row(ctx, number)}


# ---- accounts ----------------------------------------------------------------------------------

UNLOCK_FIELDS = frozenset({"reason"})


def unlock_user(ctx: Ctx) -> dict[str, Any]:
    """A supervisor lets an account refused for wrong passwords sign in again at once."""
    body = ctx.form
    only_fields(body, UNLOCK_FIELDS)
    reason = (body_str(body, "reason") or "").strip()[:500]
    name = ctx.request.path_params["name"][:64]
    try:
        auth.unlock_logins(ctx.desk.engine, name, ctx.desk.clock(), ctx.user.role,
                           ctx.user.name, reason)
    except auth.NoSuchUser as exc:
        raise ApiError(404, str(exc)) from None
    except auth.AuthError as exc:
        raise ApiError(400, str(exc)) from None
    user = auth.check_name(name)
    return {"user": user, "result": f"{user} can sign in again"}


# ---- dashboard ---------------------------------------------------------------------------------

def dashboard(ctx: Ctx) -> Any:
    from .dashboard import stats

    days = query_int(ctx, "days", 30, 1, openapi.MAX_DAYS)
    return stats(ctx.desk, days)  # JSON-able: ISO strings and numbers


# ---- the description ---------------------------------------------------------------------------

def _type_text(schema: dict[str, Any], doc: dict[str, Any]) -> str:
    """A schema as a reader of the docs page wants it: ``string or null``, ``Case``, ..."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "oneOf" in schema:
        return " or ".join(_type_text(s, doc) for s in schema["oneOf"])
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        text = f"array of {_type_text(schema['items'], doc)}"
    if "enum" in schema:
        text += ": " + ", ".join("null" if v is None else str(v) for v in schema["enum"])
    return text


def _fields(schema: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, str]]:
    if "$ref" in schema:
        schema = openapi.resolve(doc, schema["$ref"])
    if "allOf" in schema:
        return [f for part in schema["allOf"] for f in _fields(part, doc)]
    required = set(schema.get("required", []))
    return [{"name": name, "type": _type_text(prop, doc),
             "required": "yes" if name in required else "",
             "description": str(prop.get("description", ""))}
            for name, prop in schema.get("properties", {}).items()]


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation of *doc*, ready for the docs page."""
    found = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            responses = []
            for status, answer in op["responses"].items():
                if "$ref" in answer:
                    answer = openapi.resolve(doc, answer["$ref"])
                content: dict[str, Any] = answer.get("content", {})
                media: dict[str, Any] = next(iter(content.values()), {})
                schema = media.get("schema")
                responses.append({"status": status, "description": answer["description"],
                                  "schema": _type_text(schema, doc) if schema else ""})
            found.append({
                "method": method.upper(), "path": path, "id": op["operationId"],
                "summary": op["summary"], "description": op["description"],
                "role": op.get("x-required-role"),
                "supervisor_actions": op.get("x-supervisor-actions", []),
                "parameters": [{"name": p["name"], "in": p["in"],
                                "type": _type_text(p["schema"], doc),
                                "required": "yes" if p.get("required") else "",
                                "description": p.get("description", "")}
                               for p in op.get("parameters", [])],
                "body": (_type_text(body["schema"], doc), _fields(body["schema"], doc))
                if body else None,
                "responses": responses})
    return found


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.document(), headers={"Cache-Control": "no-cache",
                                                     "X-Content-Type-Options": "nosniff"})


async def docs(web: Web, request: Request) -> Response:
    cfg = web.desk.config.web
    session = await run_in_threadpool(auth.load_session, web.desk.engine,
                                      request.cookies.get(COOKIE), web.desk.clock(),
                                      cfg.session_hours, cfg.session_max_hours)
    doc = openapi.document()
    schemas = [{"name": name, "description": schema.get("description", ""),
                "fields": _fields(schema, doc)}
               for name, schema in doc["components"]["schemas"].items()]
    page: HTMLResponse = web.render(
        "api_docs.j2", doc=doc, operations=operations(doc), schemas=schemas,
        schema_names={s["name"] for s in schemas},
        user=session.user if session else None, csrf=session.csrf if session else "",
        flash=session.flash if session else None, ctx=None)
    return page


def routes(web: Web) -> list[Route]:
    def api(path: str, fn: Any, role: str = "specialist",
            methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(PREFIX + path, web.api(role)(fn), methods=list(methods))

    return [
        api("/review", review_queue),
        api("/reports/{id}", get_report),
        api("/reports/{id}/decision", decide_report, methods=("POST",)),
        api("/cases", list_cases),
        api("/cases/{ref}", get_case),
        api("/cases/{ref}/actions", act_on_case, methods=("POST",)),
        api("/dashboard", dashboard),
        api("/users/{name}/unlock", unlock_user, "supervisor", methods=("POST",)),
        Route(PREFIX + "/openapi.json", openapi_json, methods=["GET"]),
        Route(PREFIX + "/docs", bound(docs, web), methods=["GET"]),
    ]

