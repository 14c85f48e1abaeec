"""The desk's dashboard: reports per day per category, open cases by state, deadlines due today
and overdue, the review queue, this month's fees, and the DMARC and TLS reports received per
reporting domain (never cases); and the same report counts as CSV.

:func:`stats` is the data (JSON-able: ISO strings and ints); the JSON API serves it as is. Every
number is a SQL aggregate: the tables can hold millions of rows, and nothing here loops over them.

Days are the desk's days (``workflow.time_zone``). The database buckets each report by the local
day it arrived in with a ``CASE`` over the UTC instants of the local midnights of the window
(computed here with the zone's rules, daylight saving included), so the counts are exact on
SQLite (which knows no time zones) and PostgreSQL alike, in any zone (also those half an hour
off UTC).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import Connection, and_, case, func, literal, select
from starlette.responses import Response
from starlette.routing import Route

from ..casework.queries import csv_safe
from ..classifier.categorize import NOT_ABUSE
from ..core.db import as_utc
from ..core.fields import iso_z
from ..core.headers import parse_address
from ..core.models import Case, CaseState, Customer, FeeEntry, Message, MessageState, Report
from ..core.policy import CATEGORIES
from ..workflow.cases import ACTIVE
from . import svg
from .base import SECURITY_HEADERS, Ctx, Web, WebDesk

DAY_CHOICES = (7, 30, 90)
DEFAULT_DAYS = 30
UNCLASSIFIED = "unclassified"
# Shown always, in this order; "not-abuse" and "unclassified" only when there are some.
CATEGORY_ORDER = (*CATEGORIES, NOT_ABUSE, UNCLASSIFIED)
OPEN_STATES = tuple(s.value for s in CaseState if s is not CaseState.CLOSED)
MAX_DAYS = 366  # what stats() accepts at most (the API may ask for other numbers than the page)
LIST_LIMIT = 25  # cases listed per deadline card (the count is always complete)


def clamp_days(value: object) -> int:
    """7, 30 or 90: the nearest of them to *value*; 30 for anything that is not a number."""
    try:
        wanted = int(str(value).strip())
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return min(DAY_CHOICES, key=lambda d: (abs(d - wanted), -d))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which *day* starts in *zone*."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _category_expr() -> Any:
    """A report's category for the chart: its category; without one, ``not-abuse`` when the
    classifier (or a specialist) left it nothing to review, else ``unclassified``."""
    return case(
        (Report.category.is_not(None), Report.category),
        (Report.review_reason.is_(None), literal(NOT_ABUSE)),
        else_=literal(UNCLASSIFIED))


def _reports_per_day(conn: Connection, days: list[date],
                     starts: list[datetime], end: datetime) -> dict[str, list[int]]:
    """{category: [count per day]} for reports (not merged duplicates) by arrival day."""
    day_index = case(*[(Message.received_at < bound, literal(i))
                       for i, bound in enumerate([*starts[1:], end])], else_=literal(-1))
    # A subquery, so the outer GROUP BY names plain columns (PostgreSQL would not match two
    # copies of an expression with bound parameters).
    rows = (select(day_index.label("day"), _category_expr().label("category"))
            .select_from(Report).join(Message, Message.id == Report.message_id)
            .where(Report.duplicate_of.is_(None), Message.received_at >= starts[0],
                   Message.received_at < end)
            .subquery())
    counts: dict[str, list[int]] = {c: [0] * len(days) for c in CATEGORY_ORDER}
    for index, category, n in conn.execute(
            select(rows.c.day, rows.c.category, func.count())
            .group_by(rows.c.day, rows.c.category)):
        if 0 <= int(index) < len(days):
            counts.setdefault(str(category), [0] * len(days))[int(index)] += int(n)
    return {c: v for c, v in counts.items() if c in CATEGORIES or any(v)}


def _cases_due(conn: Connection, *conditions: Any) -> dict[str, Any]:
    where = and_(Case.state.in_([s.value for s in ACTIVE]), *conditions)
    count = int(conn.execute(select(func.count()).select_from(Case).where(where)).scalar_one())
    listed = [{
        "reference": c.reference, "state": c.state, "category": c.category, "type": c.type,
        "deadline_at": iso_z(as_utc(c.deadline_at)), "customer_id": c.external_id,
        "customer_name": c.name,
    } for c in conn.execute(
        select(Case.reference, Case.state, Case.category, Case.type, Case.deadline_at,
               Customer.external_id, Customer.name)
        .join(Customer, Customer.id == Case.customer_id)
        .where(where).order_by(Case.deadline_at, Case.id).limit(LIST_LIMIT))]
    return {"count": count, "cases": listed}


def _review(conn: Connection, now: datetime) -> dict[str, Any]:
    """The review queue's size and oldest item, with the conditions of
    ``casework.review``'s queue (reports with review reasons, undecided, not merged duplicates;
    and messages no report could be made of)."""
    reports, oldest_report = conn.execute(
        select(func.count(), func.min(Message.received_at))
        .select_from(Report).join(Message, Message.id == Report.message_id)
        .where(Report.review_reason.is_not(None), Report.reviewed_at.is_(None),
               Report.duplicate_of.is_(None))).one()
    messages, oldest_message = conn.execute(
        select(func.count(), func.min(Message.received_at))
        .where(Message.state == MessageState.REVIEW)).one()
    candidates = [as_utc(t) for t in (oldest_report, oldest_message) if t is not None]
    oldest = min((t for t in candidates if t is not None), default=None)
    return {
        "size": int(reports) + int(messages), "reports": int(reports),
        "messages": int(messages), "oldest_received_at": iso_z(oldest),
        "oldest_age_seconds": (max(0, int((now - oldest).total_seconds()))
                               if oldest is not None else None),
    }


def _fees(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Fees assessed in [start, end): count and total per currency, waived ones apart."""
    out: dict[str, Any] = {"assessed": {"count": 0, "totals": {}},
                           "waived": {"count": 0, "totals": {}}}
    waived = FeeEntry.state == "waived"
    for is_waived, currency, n, cents in conn.execute(
            select(waived.label("waived"), FeeEntry.currency, func.count(),
                   func.sum(FeeEntry.amount_cents))
            .where(FeeEntry.assessed_at >= start, FeeEntry.assessed_at < end)
            .group_by(waived, FeeEntry.currency).order_by(FeeEntry.currency)):
        bucket = out["waived" if is_waived else "assessed"]
        bucket["count"] += int(n)
        bucket["totals"][currency] = bucket["totals"].get(currency, 0) + int(cents or 0)
    return out


# Mail about a domain's authentication (parsers/dmarc.py): never a case, counted here per
# reporting domain (the domain of the sender's address).
AUTH_REPORT_FORMATS = ("dmarc-aggregate", "dmarc-failure", "tls-report")
MAX_REPORTERS = 25  # reporting domains listed (the totals count them all)
MAX_SENDERS = 1000  # distinct sender addresses read to fold them into domains


def _domain_of(header_from: str | None) -> str:
    address = parse_address(header_from)[1].lower()
    return address.rsplit("@", 1)[-1] if "@" in address else "(unknown)"


def _auth_reports(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """DMARC aggregate and failure reports and TLS reports received in [start, end): how many
    of each kind, in all and per reporting domain (most first)."""
    by_kind = dict.fromkeys(AUTH_REPORT_FORMATS, 0)
    domains: dict[str, dict[str, int]] = {}
    for kind, sender, n in conn.execute(
            select(Message.format, Message.header_from, func.count())
            .where(Message.format.in_(AUTH_REPORT_FORMATS), Message.received_at >= start,
                   Message.received_at < end)
            .group_by(Message.format, Message.header_from)
            .order_by(func.count().desc()).limit(MAX_SENDERS)):
        by_kind[str(kind)] += int(n)
        row = domains.setdefault(_domain_of(sender), dict.fromkeys(AUTH_REPORT_FORMATS, 0))
        row[str(kind)] += int(n)
    total = int(conn.execute(
        select(func.count()).select_from(Message)
        .where(Message.format.in_(AUTH_REPORT_FORMATS), Message.received_at >= start,
               Message.received_at < end)).scalar_one())
    ranked = sorted(domains.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return {
        "total": total, "by_kind": by_kind, "domains": len(domains),
        "by_domain": [{"domain": domain, **counts, "total": sum(counts.values())}
                      for domain, counts in ranked[:MAX_REPORTERS]],
    }


def stats(desk: WebDesk, days: int = 30) -> dict[str, Any]:
    """What the dashboard shows, JSON-able (ISO strings, ints); *days* local days up to today
    (1 to ``MAX_DAYS``; other numbers are clamped)."""
    days = min(MAX_DAYS, max(1, int(days)))
    zone_name = desk.config.workflow.time_zone
    zone = ZoneInfo(zone_name)
    now = desk.clock()
    today = now.astimezone(zone).date()
    window = [today - timedelta(days=days - 1 - i) for i in range(days)]
    starts = [_midnight(d, zone) for d in window]
    tomorrow = _midnight(today + timedelta(days=1), zone)
    month_start = _midnight(today.replace(day=1), zone)
    next_month = _midnight((today.replace(day=28) + timedelta(days=4)).replace(day=1), zone)
    with desk.engine.connect() as conn:
        series = _reports_per_day(conn, window, starts, tomorrow)
        by_state = {s: 0 for s in OPEN_STATES}
        for state, n in conn.execute(select(Case.state, func.count())
                                     .where(Case.state.in_(OPEN_STATES))
                                     .group_by(Case.state)):
            by_state[state] = int(n)
        overdue = _cases_due(conn, Case.deadline_at < now)
        due_today = _cases_due(conn, Case.deadline_at >= now, Case.deadline_at < tomorrow)
        review = _review(conn, now)
        fees = _fees(conn, month_start, next_month)
        auth_reports = _auth_reports(conn, starts[0], tomorrow)
    return {
        "generated_at": iso_z(now),
        "time_zone": zone_name,
        "days": days,
        "reports": {
            "days": [d.isoformat() for d in window],
            "categories": list(series),
            "series": series,
            "per_category": {c: sum(v) for c, v in series.items()},
            "total": sum(sum(v) for v in series.values()),
        },
        "cases": {"by_state": by_state,
                  "active": sum(by_state[s.value] for s in ACTIVE)},
        "deadlines": {"today": today.isoformat(), "due_today": due_today, "overdue": overdue},
        "review": review,
        "fees": {"month": today.strftime("%Y-%m"), **fees},
        "auth_reports": auth_reports,
    }


def csv_rows(data: dict[str, Any]) -> list[list[str | int]]:
    """``day,category,reports`` rows of :func:`stats`' report counts, header first."""
    rows: list[list[str | int]] = [["day", "category", "reports"]]
    reports = data["reports"]
    for i, day in enumerate(reports["days"]):
        for category in reports["categories"]:
            rows.append([csv_safe(day), csv_safe(category), int(reports["series"][category][i])])
    return rows


def chart(data: dict[str, Any]) -> Markup:
    """The reports chart as inline SVG; safe to insert: svg.stacked_bars escapes every text."""
    reports = data["reports"]
    markup = svg.stacked_bars(
        reports["series"], reports["days"], tick_labels=[d[5:] for d in reports["days"]],
        title=f"Reports per day, last {data['days']} days ({data['time_zone']})",
        id_prefix="reports-chart")
    return Markup(markup)  # built from escaped text only


def dashboard_page(ctx: Ctx) -> Response:
    days = clamp_days(ctx.query.get("days", DEFAULT_DAYS))
    data = stats(ctx.desk, days)
    return ctx.render("dashboard.j2", nav="dashboard", data=data, days=days,
                      choices=DAY_CHOICES, chart=chart(data))


def dashboard_csv(ctx: Ctx) -> Response:
    days = clamp_days(ctx.query.get("days", DEFAULT_DAYS))
    data = stats(ctx.desk, days)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_rows(data))
    filename = f"abuse-desk-reports-{data['deadlines']['today']}.csv"
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers={
        **SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})


def routes(web: Web) -> list[Route]:
    return [Route("/dashboard", web.page()(dashboard_page), methods=["GET"]),
            Route("/dashboard.csv", web.page()(dashboard_csv), methods=["GET"])]
