"""The OpenAPI 3.1 document of the desk's JSON API (``web.api``), written as Python data beside the
routes it describes. ``GET /api/v1/openapi.json`` serves it and ``GET /api/v1/docs`` renders it
as a page; the tests hold it to the app's routes (every ``/api/v1`` route documented, nothing
documented that is not a route) and the API's answers to its schemas.

Each operation names the role its token needs in ``x-required-role`` (``null``: public).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from ..casework import actions as case_actions
from ..classifier.taxonomy import NOT_ABUSE
from ..core import __version__
from ..core.models import CaseState
from ..core.policy import TYPES
from ..workflow import cases

PREFIX = "/api/v1"
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_DAYS = 365
SUPERVISOR_ONLY = sorted(case_actions.SUPERVISOR_ACTIONS)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str, **more: Any) -> dict[str, Any]:
    return {"type": [type_, "null"], **more}


STR = {"type": "string"}
INT = {"type": "integer"}
TIME = _nullable("string", format="date-time")
ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _object(required: list[str] | None, description: str = "",
            **properties: dict[str, Any]) -> dict[str, Any]:
    """An object schema; *required* None: every property is required."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties) if required is None else required}
    if description:
        schema["description"] = description
    return schema


CASE_STATES = [s.value for s in CaseState]
CASE = _object(
    None, "A case as `abuse-desk cases list --json` prints it.",
    id={"type": "string", "description": "the reference, e.g. C-2026-000123",
        "examples": ["C-2026-000123"]},
    number={**INT, "description": "the case's number (also accepted where a reference is)"},
    customer_id={**STR, "description": "the customer's external id"},
    category=STR, type=STR,
    state={"type": "string", "enum": CASE_STATES},
    timeline_class={"type": "string", "description": "standard or prompt"},
    opened_at={"type": "string", "format": "date-time"},
    deadline_at=TIME,
    report_count=INT, claims=INT,
    fee_total={"type": "string", "description": "assessed (not waived) fees, e.g. 100.00"},
    fee_currency=STR,
    proposed_action=_nullable("string", description="restrict or terminate, awaiting approval"),
)
CASE_REPORT = _object(
    None, "A report that is part of a case.",
    id=INT, message_id=INT, format=STR, category=_nullable("string"), type=_nullable("string"),
    source_ip=_nullable("string"), source_port=_nullable("integer"), occurred_at=TIME,
    received_at=TIME, reporter=_nullable("string"),
    duplicates={**INT, "description": "later copies merged into this report"},
    authenticated={"type": "boolean", "description": "its reporter is authenticated (trusted "
                   "by configuration, or DKIM aligned with the From domain): only such claims "
                   "count toward repeats, fees and restrictions"})
STEP = _object(
    None, "A step of the case's timeline.",
    id=INT, kind=STR, state=STR, due_at=TIME, done_at=TIME, attempts=INT,
    error=_nullable("string"), detail={"type": ["object", "null"]})
NOTICE = _object(
    None, "A mail the desk sent (or will send) the customer.",
    id=INT, kind=STR, to=STR, subject=STR, state=STR, message_id=STR, created_at=TIME,
    sent_at=TIME, attempts=INT, error=_nullable("string"), receipt=_nullable("string"),
    bounced_at=TIME, step_id=_nullable("integer"))
REPLY = _object(
    None, "A customer's reply, or a bounce of a notice, threaded into the case.",
    message_id=INT, received_at=TIME, **{"from": _nullable("string")},
    subject=_nullable("string"), kind={"type": "string", "enum": ["reply", "bounce"]})
FEE = _object(
    None, "A fee in the ledger.",
    id=INT, report_id=_nullable("integer"), amount=STR, currency=STR,
    state={"type": "string", "description": "assessed or waived"}, assessed_at=TIME,
    waived_by=_nullable("string"), waive_reason=_nullable("string"),
    reason=_nullable("string", description="why it was charged: the deadline passed "
                                           "unanswered, the conduct returned after 'fixed', "
                                           "or a specialist's escalation"))
EVENT = _object(
    None, "An entry of the audit trail.",
    at=TIME, actor_kind={"type": "string", "description": "system, specialist, supervisor, "
                                                          "customer"},
    actor=STR, action=STR, detail={"type": ["object", "null"]})
CASE_DETAIL = {
    "description": "Everything about one case, as `abuse-desk cases show --json` prints it.",
    "allOf": [_ref("Case"), _object(
        None, escalated_at=TIME, resolved_at=TIME,
        claims_authenticated={**INT, "description": "complaints of authenticated reporters"},
        claims_unauthenticated={**INT, "description": "complaints of anyone else"},
        escalation_note=_nullable("string", description="why the case waits for a specialist "
                                  "to escalate (or to confirm an escalation), if it does"),
        reports={"type": "array", "items": _ref("CaseReport")},
        steps={"type": "array", "items": _ref("Step")},
        notices={"type": "array", "items": _ref("Notice")},
        replies={"type": "array", "items": _ref("Reply")},
        fees={"type": "array", "items": _ref("Fee")},
        events={"type": "array", "items": _ref("Event")})]}
CASE_LIST = _object(
    ["cases", "limit", "offset", "next_offset"], "A page of cases, newest first.",
    cases={"type": "array", "items": _ref("Case")}, limit=INT, offset=INT,
    next_offset=_nullable("integer", description="the offset of the next page; null: none"))
REVIEW_ITEM = _object(
    None, "What needs a person: a report the machine could not decide, or a message no report "
          "could be made of (`report_id` null).",
    report_id=_nullable("integer"), message_id=INT, received_at=TIME,
    format=_nullable("string"), type_hint=_nullable("string"), category=_nullable("string"),
    type=_nullable("string"), confidence=_nullable("number"),
    customer_id=_nullable("string", description="the customer's external id, if known"),
    source_ip=_nullable("string"), source_port=_nullable("integer"), occurred_at=TIME,
    reporter=_nullable("string"), subject=_nullable("string"),
    review_reasons={"type": "array", "items": STR})
REVIEW_PAGE = _object(
    None, "A page of the review queue, oldest first.",
    items={"type": "array", "items": _ref("ReviewItem")},
    total={**INT, "description": "everything in the queue"}, limit=INT, offset=INT)
REPORT = _object(
    None, "One report: what the parser found, how it was classified and why (the evidence), "
          "its customer and case. The raw message is not part of it.",
    id=INT, message_id=INT, seq=INT, format=STR, type_hint=_nullable("string"),
    category=_nullable("string"), type=_nullable("string"), confidence=_nullable("number"),
    source_ip=_nullable("string"), source_port=_nullable("integer"), occurred_at=TIME,
    occurred_raw=_nullable("string"),
    fields={**ANY_OBJECT, "description": "parsed fields: urls, domains, reporter_address, "
                                         "reporter_org, evidence, incidents, extra"},
    customer={"oneOf": [{"type": "null"}, _object(None, id={
        **STR, "description": "external id"}, name=STR)]},
    case={"oneOf": [{"type": "null"}, _object(None, id=STR, number=INT, state=STR)]},
    review_reasons={"type": "array", "items": STR},
    needs_review={"type": "boolean", "description": "in the review queue"},
    evidence={**ANY_OBJECT, "description": "the named evidence behind each decision"},
    trusted=_nullable("boolean"), duplicate_of=_nullable("integer"), duplicates=INT,
    reviewed_by=_nullable("string"), reviewed_at=TIME, created_at=TIME, received_at=TIME,
    reporter=_nullable("string"), subject=_nullable("string"))
DECISION = {
    **_object([], "A specialist's decision on a report: its type (or `not-abuse`), its "
                  "customer, or both.",
              type={"type": ["string", "null"], "enum": [*TYPES, NOT_ABUSE, None]},
              customer=_nullable("string", description="the customer's external id, "
                                                       "e.g. C-1"),
              all_rows={"type": "boolean", "description": "the same decision on every other "
                        "row of the report's message waiting for review for the same customer "
                        "(a feed's table): one case, one notice"},
              not_ours={"type": "boolean", "description": "the report is about no customer "
                        "of ours: closed without a case"}),
    "additionalProperties": False, "minProperties": 1}
CLASSIFICATION = _object(
    None, "A report's classification after the decision.",
    category=_nullable("string"), type=_nullable("string"), confidence={"type": "number"},
    customer_id=_nullable("string", description="the customer's external id"),
    not_abuse={"type": "boolean"}, trusted={"type": "boolean"},
    review_reasons={"type": "array", "items": STR,
                    "description": "empty: decided, the report joins its customer's case"},
    evidence=ANY_OBJECT)
DECISION_RESULT = _object(
    None, "What the decision did.",
    report_id=INT, classification=_ref("Classification"),
    case={"oneOf": [{"type": "null"}, _ref("Case")],
          "description": "the case the report is part of now; null: none (not abuse, or "
                         "still undecided)"})
CASE_ACTION = {
    **_object(
        ["action"], "Something a person does to a case. "
                    f"{' and '.join(f'`{a}`' for a in SUPERVISOR_ONLY)} need a supervisor's "
                    "token.",
        action={"type": "string", "enum": list(case_actions.ACTIONS)},
        reason={**STR, "description": "why (kept in the audit trail); needed by extend, "
                                      "waive-fee and note. For `note` and `message` it is the "
                                      "text."},
        until={"type": "string", "format": "date-time",
               "description": "extend: the new deadline (ISO 8601; UTC without an offset)"},
        business_days={"type": "integer", "minimum": 1, "maximum": 365,
                       "description": "extend: or this many business days from now"},
        fee_id={**INT, "description": "waive-fee: only this fee (else every assessed fee)"},
        approve={"type": "string", "enum": list(cases.ACTIONS),
                 "description": "approve: this action instead of the proposed one"},
        subject={**STR, "description": "message: the subject after the case tag"}),
    "additionalProperties": False}
CASE_ACTION_RESULT = _object(
    None, "What the action did, and the case afterwards.",
    result={**STR, "description": "a sentence, e.g. 'C-2026-000001 resolved'"},
    case=_ref("Case"))
ERROR = _object(None, "What went wrong.", error=STR)
COUNTS = {"type": "object", "additionalProperties": INT}
DUE_CASES = _object(
    None, "Active cases whose deadline falls in a span: how many, and the first of them by "
          "deadline (at most 25).",
    count=INT, cases={"type": "array", "items": _object(
        None, reference=STR, state={"type": "string", "enum": CASE_STATES}, category=STR,
        type=STR, deadline_at=TIME, customer_id=STR, customer_name=STR)})
FEE_SUM = _object(None, "Fees assessed this month, in a state.", count=INT, totals={
    **COUNTS, "description": "cents per currency, e.g. {\"USD\": 10000}"})
DASHBOARD = _object(
    None, "The dashboard's figures (`web.dashboard.stats`): reports per day and category over "
          "the last `days` days of the desk's time zone, cases by state, deadlines due today "
          "and overdue, the review queue, this month's fees.",
    generated_at={"type": "string", "format": "date-time"}, time_zone=STR, days=INT,
    reports=_object(
        None, days={"type": "array", "items": {"type": "string", "format": "date"}},
        categories={"type": "array", "items": STR},
        series={"type": "object", "additionalProperties": {"type": "array", "items": INT},
                "description": "per category, the count of each day of `days`"},
        per_category=COUNTS, total=INT),
    cases=_object(None, by_state=COUNTS, active=INT),
    deadlines=_object(None, today={"type": "string", "format": "date"},
                      due_today=_ref("DueCases"), overdue=_ref("DueCases")),
    review=_object(None, size=INT, reports=INT, messages=INT, oldest_received_at=TIME,
                   oldest_age_seconds=_nullable("integer")),
    fees=_object(None, month={"type": "string", "examples": ["2026-11"]},
                 assessed=_ref("FeeSum"), waived=_ref("FeeSum")))

UNLOCK = {
    **_object([], "A supervisor's unlock of an account refused after wrong passwords.",
              reason={**STR, "description": "why (kept in the audit trail)"}),
    "additionalProperties": False}
UNLOCK_RESULT = _object(
    None, "The account unlocked: every web process forgets its failed logins at its next "
          "login attempt.",
    user={**STR, "description": "the account's name"},
    result={**STR, "description": "a sentence, e.g. 'sam can sign in again'"})

SCHEMAS: dict[str, Any] = {
    "Case": CASE, "CaseDetail": CASE_DETAIL, "CaseList": CASE_LIST, "CaseReport": CASE_REPORT,
    "Step": STEP, "Notice": NOTICE, "Reply": REPLY, "Fee": FEE, "Event": EVENT,
    "ReviewItem": REVIEW_ITEM, "ReviewPage": REVIEW_PAGE, "Report": REPORT,
    "Decision": DECISION, "Classification": CLASSIFICATION, "DecisionResult": DECISION_RESULT,
    "CaseAction": CASE_ACTION, "CaseActionResult": CASE_ACTION_RESULT, "Error": ERROR,
    "Dashboard": DASHBOARD, "DueCases": DUE_CASES, "FeeSum": FEE_SUM,
    "Unlock": UNLOCK, "UnlockResult": UNLOCK_RESULT,
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {"application/json": {"schema": _ref("Error")}}}
    if headers:
        answer["headers"] = headers
    return answer


RESPONSES: dict[str, Any] = {
    "BadRequest": _error("Bad input: a parameter or the body is wrong (the message says what)."),
    "Unauthorized": _error(
        "No token, or a token that is malformed, expired, revoked or of a disabled user.",
        {"WWW-Authenticate": {"description": "Bearer realm=\"abuse-desk\"", "schema": STR}}),
    "Forbidden": _error("The token's user lacks the role this needs."),
    "NotFound": _error("No such report, case or user."),
    "TooLarge": _error("The body is larger than 256 KiB."),
}


def _answer(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


LIMIT = _query("limit", f"at most this many (capped at {MAX_LIMIT})",
               {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT})
OFFSET = _query("offset", "skip this many", {"type": "integer", "minimum": 0, "default": 0})
REPORT_ID = _path("id", "the report's number", {"type": "integer", "minimum": 1})
CASE_REF = _path("ref", "the case's reference (C-2026-000123) or number", STR)
GUARDED = {"400": _answer("BadRequest"), "401": _answer("Unauthorized")}


def _operation(operation_id: str, summary: str, description: str, role: str | None,
               responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None,
               body: str | None = None, tag: str = "desk",
               supervisor_actions: list[str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                          "description": description, "tags": [tag], "x-required-role": role}
    if supervisor_actions:
        op["x-supervisor-actions"] = supervisor_actions
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = _body(body)
    if role is None:
        op["security"] = []
        op["responses"] = responses
    else:
        op["responses"] = {**responses, **GUARDED}
        if body:
            op["responses"]["413"] = _answer("TooLarge")
    return op


PATHS: dict[str, dict[str, Any]] = {
    f"{PREFIX}/review": {"get": _operation(
        "listReview", "The review queue",
        "Reports the machine could not decide and messages no report could be made of, oldest "
        "first, a page at a time, with the size of the whole queue.",
        "specialist", {"200": _ok("a page of the queue", _ref("ReviewPage"))},
        [LIMIT, OFFSET], tag="review")},
    f"{PREFIX}/reports/{{id}}": {"get": _operation(
        "getReport", "One report",
        "The report's parsed fields, classification, customer, case, review reasons and the "
        "evidence of each decision. Not the raw message.",
        "specialist", {"200": _ok("the report", _ref("Report")),
                       "404": _answer("NotFound")}, [REPORT_ID], tag="review")},
    f"{PREFIX}/reports/{{id}}/decision": {"post": _operation(
        "decideReport", "Decide a report in review",
        "Set the report's type (or `not-abuse`), its customer, or both, under the token's "
        "user. The report is classified again with the decided values; decided, it joins (or "
        "opens) its customer's case and the reporter is acknowledged. The decision is an audit "
        "event and a training example. A report that is already a claim on a case, or a copy "
        "of another report, is refused (400).",
        "specialist", {"200": _ok("the new classification and the case",
                                  _ref("DecisionResult")),
                       "404": _answer("NotFound")}, [REPORT_ID], body="Decision",
        tag="review")},
    f"{PREFIX}/cases": {"get": _operation(
        "listCases", "Cases", "Cases, newest first, filtered, a page at a time.",
        "specialist", {"200": _ok("a page of cases", _ref("CaseList"))},
        [_query("state", "only cases in this state", {"type": "string", "enum": CASE_STATES}),
         _query("customer", "only this customer's cases (external id)", STR),
         _query("overdue", "only unresolved cases whose deadline has passed",
                {"type": "boolean", "default": False}),
         LIMIT, OFFSET], tag="cases")},
    f"{PREFIX}/cases/{{ref}}": {"get": _operation(
        "getCase", "One case",
        "Everything about one case: reports, timeline steps, notices, replies, fees, events.",
        "specialist", {"200": _ok("the case", _ref("CaseDetail")),
                       "404": _answer("NotFound")}, [CASE_REF], tag="cases")},
    f"{PREFIX}/cases/{{ref}}/actions": {"post": _operation(
        "actOnCase", "Act on a case",
        "Resolve, escalate, extend the deadline, add a note, write to the customer — or, with a "
        "supervisor's token, approve the proposed restriction or termination or waive fees "
        f"(actions {', '.join(SUPERVISOR_ONLY)}: a specialist's token gets 403 and nothing "
        "changes). Every change is an audit event under the token's user.",
        "specialist", {"200": _ok("what was done", _ref("CaseActionResult")),
                       "403": _answer("Forbidden"), "404": _answer("NotFound")},
        [CASE_REF], body="CaseAction", tag="cases", supervisor_actions=SUPERVISOR_ONLY)},
    f"{PREFIX}/dashboard": {"get": _operation(
        "getDashboard", "The dashboard's figures", "The figures of the desk's dashboard.",
        "specialist", {"200": _ok("the figures", _ref("Dashboard"))},
        [_query("days", f"the last this many days (capped at {MAX_DAYS})",
                {"type": "integer", "minimum": 1, "default": 30})], tag="dashboard")},
    f"{PREFIX}/users/{{name}}/unlock": {"post": _operation(
        "unlockUser", "Unlock an account's logins",
        "After too many wrong passwords an account is refused from the addresses they came "
        "from (and, under a spread-out attack, from addresses it has not signed in from). "
        "This lets it sign in again at once, from everywhere; an address refused for guessing "
        "many names stays refused until its window passes. Needs a supervisor's token; an "
        "audit event records who unlocked it.",
        "supervisor", {"200": _ok("the account unlocked", _ref("UnlockResult")),
                       "403": _answer("Forbidden"), "404": _answer("NotFound")},
        [_path("name", "the account's name", STR)], body="Unlock", tag="accounts")},
    f"{PREFIX}/openapi.json": {"get": _operation(
        "getOpenApi", "This document", "The API's OpenAPI 3.1 document. Public.", None,
        {"200": {"description": "the document",
                 "content": {"application/json": {"schema": {"type": "object"}}}}},
        tag="about")},
    f"{PREFIX}/docs": {"get": _operation(
        "getDocs", "This document as a page", "The routes of this document as HTML. Public.",
        None, {"200": {"description": "the page",
                       "content": {"text/html": {"schema": STR}}}}, tag="about")},
}

DESCRIPTION = """\
The JSON API of the abuse desk: the review queue, reports, cases and the dashboard.

Every route but this document needs an API token, sent as `Authorization: Bearer adk_...`
(make one with `abuse-desk users token NAME`). A token acts as its user, with the user's role:
a specialist works the review queue and cases; a supervisor also approves restrictions and
terminations, waives fees and unlocks accounts. A token expires (`web.api_token_days`, or
`--days N` when it is made) and is revoked when its user's password changes or the user is
disabled. Errors are JSON: `{"error": "what went wrong"}`."""


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "abuse-desk API", "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "AGPL-3.0-or-later",
                             "identifier": "AGPL-3.0-or-later"}},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "review", "description": "the review queue and reports"},
                 {"name": "cases", "description": "cases and what a person does to them"},
                 {"name": "dashboard", "description": "the desk's figures"},
                 {"name": "accounts", "description": "the desk's users"},
                 {"name": "about", "description": "this description"}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "adk_...",
                "description": "an API token of a desk user (`abuse-desk users token NAME`)"}},
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_document())


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """What a local ``$ref`` (``#/components/...``) points at; KeyError if nothing."""
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise KeyError(ref)
        node = node[part]
    return node
