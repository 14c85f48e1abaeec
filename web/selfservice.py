"""The customer's self-service page, behind the signed link in every notice.

``/self-service/<token>``: the token (``workflow/tokens.py``) names one case and expires after
``notify.token_days``; it is the only credential, so the page shows nothing of other cases and
nothing of the reporters beyond the redacted evidence the notice carried. The customer can read
the evidence and the deadline, answer, and say the issue is fixed (which resolves the case when
``workflow.customer_can_resolve`` is true and the case is not escalated; otherwise it is an
answer, which moves an open or notified case to customer-responded). Everything the customer
sends is an audit event under the name ``customer``.

There is no CSRF token on the form: no cookie or other ambient credential is involved, so a
request from another site can only act with a token it already knows, and anyone who knows it
can act directly. The page sends no referrer (the token stays off other sites' logs).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..core.db import as_utc, write_transaction
from ..core.models import Case, CaseState, Customer
from ..workflow import cases, mailer, notices, tokens
from .base import WebDesk, bound

MAX_FORM = 64 * 1024
MAX_ANSWER = 10_000

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="robots" content="noindex">
<style>body{{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:50em;color:#222}}
pre{{white-space:pre-wrap;background:#f5f5f5;padding:.8em;border-radius:4px}}
textarea{{width:100%;min-height:8em}} .note{{color:#555}}</style></head>
<body>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; form-action 'self'"})


def _load(desk: WebDesk, token: str) -> tuple[Any, Any] | str:
    try:
        case_id = tokens.read_token(desk.workflow.writer.secret, token, desk.clock())
    except tokens.TokenError as exc:
        return str(exc)
    with desk.engine.connect() as conn:
        case = conn.execute(select(Case).where(Case.id == case_id)).first()
        if case is None:
            return "this link is not valid"
        customer = conn.execute(select(Customer).where(Customer.id == case.customer_id)).one()
    return case, customer


def _render(desk: WebDesk, token: str, said: str = "") -> HTMLResponse:
    loaded = _load(desk, token)
    if isinstance(loaded, str):
        return _page("Link not valid", f"<h1>Link not valid</h1><p>{html.escape(loaded)}.</p>",
                     403)
    case, customer = loaded
    zone = customer.time_zone or desk.config.workflow.time_zone
    deadline = as_utc(case.deadline_at)
    with desk.engine.connect() as conn:
        reports = notices.report_views(
            conn, case.id, desk.workflow.writer.secret, zone,
            show_reporter_for=desk.config.notify.show_reporter_for)
    e = html.escape
    items = "".join(
        f"<li>{e(r['received_at'])}: {e(r['format'])} report"
        f"{' about ' + e(r['source_ip']) if r['source_ip'] else ''}"
        f"<pre>{e(r['evidence'] or '(no evidence text)')}</pre></li>" for r in reports)
    open_ = CaseState(case.state) not in (CaseState.RESOLVED, CaseState.CLOSED,
                                          CaseState.TERMINATED)
    form = (f"""<h2>Answer</h2><form method="post">
<p><label for="answer">What did you find, and what did you do?</label></p>
<textarea id="answer" name="answer" maxlength="{MAX_ANSWER}"></textarea>
<p><label><input type="checkbox" name="fixed" value="1"> The issue is fixed</label></p>
<p><button type="submit">Send</button></p></form>""" if open_ else
            "<p>This case is closed for answers. Reply to the notice mail if needed.</p>")
    body = (
        f"<h1>Abuse case {e(case.reference)}</h1>"
        + (f"<p><strong>{e(said)}</strong></p>" if said else "")
        + f"<p>{e(desk.config.notify.organization)} received a complaint about your service "
        f"({e(customer.name)}): <strong>{e(notices.type_label(case.type))}</strong>. "
        f"State: {e(case.state)}.</p>"
        + (f"<p>Please correct it by <strong>{e(mailer.format_deadline(deadline, zone))}"
           "</strong>.</p>" if deadline and open_ else "")
        + f"<h2>Evidence</h2><ol>{items}</ol>{form}"
        + "<p class=note>Recipient addresses in the evidence are redacted (RFC 6590); the "
        "names, addresses and phone numbers of people who complained are removed.</p>")
    return _page(f"Abuse case {case.reference}", body)


def _answer(desk: WebDesk, token: str, answer: str, fixed: bool) -> HTMLResponse:
    loaded = _load(desk, token)
    if isinstance(loaded, str):
        return _render(desk, token)
    case, _customer = loaded
    now = desk.clock()
    who = cases.Actor("customer", "self-service")
    wf = desk.config.workflow
    with write_transaction(desk.engine) as conn:
        state = CaseState(case.state)
        if state in (CaseState.RESOLVED, CaseState.CLOSED, CaseState.TERMINATED):
            return _render(desk, token, "This case no longer takes answers.")
        # The case rule decides (workflow.cases.may_resolve): before escalation only, where
        # customer_can_resolve allows; "fixed" on an escalated or restricted case would cancel
        # the proposed restriction, or restore the service, with no supervisor's approval.
        if fixed and cases.may_resolve(wf, state, who) is None:
            cases.customer_responded(conn, case.id, now, who, via="self-service",
                                     answer=answer, fixed=True)
            cases.resolve(conn, wf, case.id, now, who, "the customer reported it fixed")
            said = "Thank you: the case is resolved. A new complaint would reopen it."
        else:
            cases.customer_responded(conn, case.id, now, who, via="self-service",
                                     answer=answer, fixed=fixed)
            said = "Thank you: your answer is with our abuse team."
    desk.workflow.kick([case.id])
    return _render(desk, token, said)


async def show(desk: WebDesk, request: Request) -> Response:
    return await run_in_threadpool(_render, desk, request.path_params["token"])


async def post(desk: WebDesk, request: Request) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return _page("Too long", "<h1>Your answer is too long</h1>", 413)
    try:
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:
        return _page("Bad form", "<h1>This form could not be read</h1>"
                     "<p>Reload the page and send your answer again.</p>", 400)
    answer = (form.get("answer") or [""])[0][:MAX_ANSWER]
    fixed = (form.get("fixed") or [""])[0] == "1"
    if not answer.strip() and not fixed:
        return await run_in_threadpool(_render, desk, request.path_params["token"],
                                       "Write an answer or tick 'The issue is fixed'.")
    return await run_in_threadpool(_answer, desk, request.path_params["token"], answer,
                                   fixed)


def routes(desk: WebDesk) -> list[Route]:
    return [Route("/self-service/{token}", bound(show, desk), methods=["GET"]),
            Route("/self-service/{token}", bound(post, desk), methods=["POST"])]
