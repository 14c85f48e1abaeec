"""The review queue of the specialists' desk: the queue (``/review``), one report
(``/review/report/{id}``) with what a specialist decides on it, and one message no report could
be made of (``/review/message/{id}``) with "reprocess".

The data and every decision are ``casework.review``'s (``queue``, ``decide``,
``merge_into_case``, ``reprocess``), under the signed-in user's name, so the desk, the command
line and the API decide the same way. After a decision the specialist lands on the queue's next
item, with a flash saying what happened; a decision that left the report short of a case (no
customer yet, no type yet) comes back to the report, saying what is missing.

Everything here came from outside (mail headers, report fields, the raw message) and is shown as
text: autoescaped, the raw message decoded with ``errors="replace"`` in a ``<pre>``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.responses import Response
from starlette.routing import Route

from ..casework import review
from ..classifier.categorize import NOT_ABUSE
from ..core.db import as_utc
from ..core.models import Case, Customer, Report
from ..core.policy import CATEGORIES
from ..workflow import cases
from .base import Ctx, Web

RAW_LIMIT = 512 * 1024  # bytes of a raw message shown on a page
MAX_PAGE = 100_000
CUSTOMER_CHOICES = 1000  # customers offered in the customer field's suggestions
CASE_CHOICES = 50  # open cases of the candidate customers offered to merge into
ACTIONS = ("type", "customer", "not-abuse", "not-ours", "merge")
ACTIVE = frozenset(s.value for s in cases.ACTIVE)


# ---- helpers ---------------------------------------------------------------------------------

def raw_text(raw: bytes | None) -> tuple[str, bool]:
    """A raw message as text to show in a ``<pre>`` (never rendered), and whether it was cut."""
    if not raw:
        return "", False
    cut = len(raw) > RAW_LIMIT
    return raw[:RAW_LIMIT].decode("utf-8", "replace"), cut


def _page_number(value: str | None) -> int:
    try:
        return min(max(1, int(value or "1")), MAX_PAGE)
    except ValueError:
        return 1


def _item_url(item: dict[str, Any]) -> str:
    if item["report_id"] is None:
        return f"/review/message/{item['message_id']}"
    return f"/review/report/{item['report_id']}"


def _next_url(ctx: Ctx, before: dict[str, Any] | None,
              skip: tuple[int | None, int]) -> str:
    item = ctx.desk.review.next_in_queue(before, skip)
    return _item_url(item) if item is not None else "/review"


# ---- the queue -------------------------------------------------------------------------------

def queue_page(ctx: Ctx) -> Response:
    query = ctx.query
    problems = []
    category = str(query.get("category") or "").strip()
    if category and category != "none" and category not in CATEGORIES:
        problems.append(f"there is no category {category[:40]!r}: showing every category")
        category = ""
    age_text = str(query.get("age") or "").strip()
    older: float | None = None
    if age_text:
        try:
            older = float(age_text)
            if not 0 <= older <= 24 * 366 * 10:
                raise ValueError
        except ValueError:
            problems.append(f"age {age_text[:20]!r} is not a number of hours: showing any age")
            older, age_text = None, ""
    message_text = str(query.get("message") or "").strip()
    message: int | None = None
    if message_text:
        if message_text.isdigit() and len(message_text) < 19:
            message = int(message_text)
        else:
            problems.append(f"message {message_text[:20]!r} is not a message number: "
                            "showing every message")
            message_text = ""
    flt = review.QueueFilter(reason=str(query.get("reason") or "").strip()[:200],
                             category=category,
                             reporter=str(query.get("reporter") or "").strip()[:200],
                             older_than_hours=older, message=message)
    everything = ctx.desk.review.queue()
    items = review.filter_queue(everything, flt, ctx.desk.clock())
    kinds: dict[str, int] = {}
    for item in everything:
        for kind in dict.fromkeys(review.reason_kind(r) for r in item["review_reasons"]):
            kinds[kind] = kinds.get(kind, 0) + 1
    # The rows of one message (a feed's table) are one entry of the queue: its heading, the
    # first rows, and a link to all of them; a page holds page_size entries.
    groups = review.group_queue(items)
    size = max(1, ctx.desk.config.web.page_size)
    page = _page_number(query.get("page"))
    shown = groups[(page - 1) * size:page * size]
    rows = []
    for group in shown:
        group["shown"] = (group["items"] if message is not None
                          else group["items"][:review.GROUP_SHOWN])
        group["more"] = group["count"] - len(group["shown"])
        for row in group["shown"]:
            row["url"] = _item_url(row)
            rows.append(row)
    filters = {k: v for k, v in (("reason", flt.reason), ("category", category),
                                 ("reporter", flt.reporter), ("age", age_text),
                                 ("message", message_text)) if v}

    def url(to_page: int) -> str:
        params = {**filters, **({"page": str(to_page)} if to_page > 1 else {})}
        return "/review" + (f"?{urlencode(params)}" if params else "")

    return ctx.render(
        "review/queue.j2", nav="review", rows=rows, total=len(everything),
        matching=len(items), oldest=everything[0]["received_at"] if everything else None,
        oldest_matching=items[0]["received_at"] if items else None,
        reason=flt.reason, category=category, reporter=flt.reporter, age=age_text,
        categories=list(CATEGORIES), kinds=sorted(kinds.items()), filtered=bool(filters),
        problems=problems, page=page, size=size, groups=shown, message=message_text,
        prev_url=url(page - 1) if page > 1 else None,
        next_url=url(page + 1) if page * size < len(groups) else None)


# ---- one report ------------------------------------------------------------------------------

def _customer_choices(ctx: Ctx) -> list[tuple[str, str]]:
    with ctx.desk.engine.connect() as conn:
        return [(ext, name) for ext, name in conn.execute(
            select(Customer.external_id, Customer.name).order_by(Customer.external_id)
            .limit(CUSTOMER_CHOICES))]


def _case_choices(ctx: Ctx, customers: list[str]) -> list[dict[str, Any]]:
    """Cases that can take a claim, of the customers this report might be about."""
    if not customers:
        return []
    with ctx.desk.engine.connect() as conn:
        return [{"reference": r.reference, "customer": r.external_id, "type": r.type,
                 "state": r.state} for r in conn.execute(
            select(Case.reference, Case.type, Case.state, Customer.external_id)
            .join(Customer, Customer.id == Case.customer_id)
            .where(Customer.external_id.in_(customers),
                   Case.state.in_([s.value for s in cases.JOINABLE]))
            .order_by(Case.updated_at.desc()).limit(CASE_CHOICES))]


def show_report(ctx: Ctx, report_id: int, status: int = 200, error: str | None = None,
                form: dict[str, str] | None = None) -> Response:
    detail = ctx.desk.review.report_detail(report_id, when=ctx.web.when)
    if detail is None:
        return ctx.error(404, f"There is no report {report_id}.")
    raw, cut = raw_text(detail.pop("raw"))
    items = ctx.desk.review.queue()
    item = ctx.desk.review.queue_item(report_id, detail["message_id"], items)
    following = ctx.desk.review.next_in_queue(item, (report_id, detail["message_id"]), items)
    customers = [c["customer"] for c in detail["candidates"]]
    rows_in_message = sum(1 for i in items if i["message_id"] == detail["message_id"]
                          and i["report_id"] not in (None, report_id))
    return ctx.render(
        "review/report.j2", status=status, nav="review", r=detail, raw=raw, raw_cut=cut,
        raw_limit_kib=RAW_LIMIT // 1024, error=error, form=form or {},
        categories=CATEGORIES, not_abuse=NOT_ABUSE, customers=_customer_choices(ctx),
        case_choices=_case_choices(ctx, customers),
        next_url=_item_url(following) if following is not None else None,
        rows_in_message=rows_in_message,
        decidable=detail["case"] is None and detail["duplicate_of"] is None)


def report_page(ctx: Ctx) -> Response:
    return show_report(ctx, int(ctx.request.path_params["id"]))


def _outcome_flash(ctx: Ctx, report_id: int) -> tuple[str, bool]:
    """What a decision made of the report, for the flash; and whether it is done with (in a
    case, not abuse, or no reason left)."""
    with ctx.desk.engine.connect() as conn:
        row = conn.execute(
            select(Report.type, Report.review_reason, Report.decision, Customer.external_id,
                   Case.reference, Case.state, Case.deadline_at, Case.claims, Case.opened_at,
                   Report.reviewed_at)
            .outerjoin(Customer, Customer.id == Report.customer_id)
            .outerjoin(Case, Case.id == Report.case_id)
            .where(Report.id == report_id)).one()
    if (row.decision or {}).get("not_abuse"):
        return f"Report {report_id}: not abuse; it has left the queue.", True
    if (row.decision or {}).get("not_ours"):
        return (f"Report {report_id}: about no customer of ours; closed without a case, it has "
                "left the queue.", True)
    parts = [row.type or "no type yet", f"customer {row.external_id}" if row.external_id
             else "no customer yet"]
    if row.reference is not None:
        opened = (row.claims == 1 and row.opened_at is not None
                  and as_utc(row.opened_at) == as_utc(row.reviewed_at))
        text = f"{'opened' if opened else 'joined'} case {row.reference}"
        if row.state in ACTIVE and row.deadline_at is not None:
            text += f" (deadline {ctx.web.when(row.deadline_at)})"
        else:
            text += f" ({row.state})"
        parts.append(text)
        return f"Report {report_id}: {', '.join(parts)}.", True
    if row.review_reason:
        return (f"Report {report_id}: {', '.join(parts)}; not in a case yet: "
                f"{row.review_reason}.", False)
    return f"Report {report_id}: {', '.join(parts)}.", True


def report_action(ctx: Ctx) -> Response:
    report_id = int(ctx.request.path_params["id"])
    action = ctx.request.path_params["action"]
    if action not in ACTIONS:
        return ctx.error(404, f"There is no review action {action[:40]!r}.")
    with ctx.desk.engine.connect() as conn:
        message_id = conn.execute(select(Report.message_id).where(
            Report.id == report_id)).scalar()
    if message_id is None:
        return ctx.error(404, f"There is no report {report_id}.")
    before = ctx.desk.review.queue_item(report_id, message_id)
    form = ctx.form
    try:
        ctx.desk.review.decidable(report_id)
        if action == "merge":
            merged = ctx.desk.review.merge_into_case(report_id, form.get("case", ""),
                                            ctx.user.name)
            text, done = _outcome_flash(ctx, report_id)
            if merged.reopened:
                text = text[:-1] + "; the case was resolved and is open again."
        else:
            decision = _decision(ctx, report_id, action)
            ctx.desk.review.decide(decision)
            text, done = _outcome_flash(ctx, report_id)
    except (review.ReviewError, cases.CaseError) as exc:
        return show_report(ctx, report_id, status=400, error=str(exc), form=form)
    if not done:
        return ctx.redirect(f"/review/report/{report_id}", flash=text)
    return ctx.redirect(_next_url(ctx, before, (report_id, message_id)), flash=text)


def _decision(ctx: Ctx, report_id: int, action: str) -> review.ReviewDecision:
    form = ctx.form
    if action == "not-abuse":
        return review.ReviewDecision(report_id, ctx.user.name, type=NOT_ABUSE)
    if action == "not-ours":
        return review.ReviewDecision(report_id, ctx.user.name, not_ours=True)
    if action == "type":
        type_ = form.get("type", "").strip()
        if not type_:
            raise review.ReviewError("choose a type")
        return review.ReviewDecision(report_id, ctx.user.name, type=type_[:64],
                                     all_rows=form.get("all_rows") == "1")
    customer = form.get("customer", "").strip()
    if not customer:
        raise review.ReviewError("name the customer by its ID, e.g. C-1")
    return review.ReviewDecision(report_id, ctx.user.name, customer=customer[:128],
                                 all_rows=form.get("all_rows") == "1")


# ---- one message without report --------------------------------------------------------------

def show_message(ctx: Ctx, message_id: int, status: int = 200,
                 error: str | None = None) -> Response:
    detail = ctx.desk.review.message_detail(message_id)
    if detail is None:
        return ctx.error(404, f"There is no message {message_id}.")
    raw, cut = raw_text(detail.pop("raw"))
    return ctx.render("review/message.j2", status=status, nav="review", m=detail, raw=raw,
                      raw_cut=cut, raw_limit_kib=RAW_LIMIT // 1024, error=error,
                      in_review=detail["state"] == "review")


def message_page(ctx: Ctx) -> Response:
    return show_message(ctx, int(ctx.request.path_params["id"]))


def reprocess_message(ctx: Ctx) -> Response:
    message_id = int(ctx.request.path_params["id"])
    before = ctx.desk.review.queue_item(None, message_id)
    try:
        done = ctx.desk.review.reprocess(message_id, ctx.actor)
    except review.ReviewError as exc:
        status = 404 if str(exc).startswith("no message") else 400
        return show_message(ctx, message_id, status=status, error=str(exc))
    if done.state == "review":
        first = (done.error or "no reason given").splitlines()[0]
        return ctx.redirect(f"/review/message/{message_id}",
                            flash=f"Message {message_id} reprocessed: it still needs a person: "
                                  f"{first}")
    if not done.reports:
        what = (f"attached to case {done.case} (a reply or a bounce)" if done.case
                else "no complaint in it, nothing left to review")
        return ctx.redirect(_next_url(ctx, before, (None, message_id)),
                            flash=f"Message {message_id} reprocessed: {what}.")
    described = []
    for r in done.reports:
        if r["case"]:
            described.append(f"report {r['id']} in case {r['case']}")
        elif r["duplicate_of"]:
            described.append(f"report {r['id']} a copy of report {r['duplicate_of']}")
        elif r["review_reason"]:
            described.append(f"report {r['id']} needs review ({r['review_reason']})")
        else:
            described.append(f"report {r['id']}")
    text = f"Message {message_id} reprocessed: {'; '.join(described)}."
    waiting = next((r for r in done.reports if r["review_reason"] and not r["case"]
                    and not r["duplicate_of"]), None)
    if waiting is not None:
        return ctx.redirect(f"/review/report/{waiting['id']}", flash=text)
    return ctx.redirect(_next_url(ctx, before, (None, message_id)), flash=text)


def routes(web: Web) -> list[Route]:
    return [
        Route("/review", web.page()(queue_page), methods=["GET"]),
        Route("/review/report/{id:int}", web.page()(report_page), methods=["GET"]),
        Route("/review/report/{id:int}/{action}", web.page()(report_action), methods=["POST"]),
        Route("/review/message/{id:int}", web.page()(message_page), methods=["GET"]),
        Route("/review/message/{id:int}/reprocess", web.page()(reprocess_message),
              methods=["POST"]),
    ]
