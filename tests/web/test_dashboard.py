"""The dashboard: the numbers of ``web.dashboard.stats`` (reports per local day and category,
cases by state, deadlines, the review queue, this month's fees), the page that shows them, and
the CSV export."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.casework.review import ReviewDecision
from abuse_desk.core.models import Customer, FeeEntry, Report
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.web.dashboard import clamp_days, stats
from abuse_desk.workflow import cases
from sqlalchemy import insert, update
from sqlalchemy.engine import make_url

from tests.web.web_support import client_for, signed_in
from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    person,
    reports_of,
    the_case,
    workflow_desk,
)

SCRIPT = "<script>alert(1)</script>"
DEADLINE = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # of a standard case opened at START
PHISHING = ("Phishing site at 45.137.21.7",
            "A phishing page at http://45.137.21.7/login steals bank logins")
BRUTE_FORCE = ("SSH brute force",
               "Brute force login attempts from 45.137.21.9 against our SSH server")
ODD = ("hello", "Something odd keeps coming from 46.29.161.7")  # no type, no customer
SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def deliver_now(desk: Desk, clock: Clock, raw: bytes) -> int:
    """Store *raw* as received at the clock's time (``deliver`` stamps the wall clock) and run
    the pipeline on it; returns the message id."""
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            "sender@example.org", ["abuse@localhost"], received_at=clock.now))])
    desk.pipeline.process(message_id)
    return message_id


def at(clock: Clock, when: datetime) -> Clock:
    clock.now = when
    return clock


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def per_day(data: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{day: {category: n}} without the zeros."""
    reports = data["reports"]
    return {day: {c: reports["series"][c][i] for c in reports["categories"]
                  if reports["series"][c][i]}
            for i, day in enumerate(reports["days"])
            if any(reports["series"][c][i] for c in reports["categories"])}


def svg_of(html: str) -> ET.Element:
    match = SVG.search(html)
    assert match, "no chart on the page"
    return ET.fromstring(match.group(0))


# ---- stats() -----------------------------------------------------------------------------------

def test_reports_per_new_york_day_and_category(desk: Desk, clock: Clock) -> None:
    counts_per_local_day(desk, clock)


@pytest.mark.service
def test_reports_per_new_york_day_on_postgresql(tmp_path: Path, clock: Clock,
                                                postgres_url: str) -> None:
    """The same days on PostgreSQL, whose session runs in yet another zone."""
    url = make_url(postgres_url).update_query_dict({"options": "-c timezone=Asia/Kolkata"})
    desk = workflow_desk(tmp_path, clock,
                         database={"url": url.render_as_string(hide_password=False)})
    try:
        counts_per_local_day(desk, clock)
    finally:
        desk.engine.dispose()


def counts_per_local_day(desk: Desk, clock: Clock) -> None:
    # Sun 22 Nov, 10:00 EST: a spam report, and the same mail again (merged, not counted).
    deliver_now(desk, at(clock, utc(2026, 11, 22, 15)), arf("45.137.21.7", 1))
    copy = deliver_now(desk, clock, arf("45.137.21.7", 1))
    assert reports_of(desk, copy)[0].duplicate_of is not None
    # 24 Nov 03:00 UTC is still Monday 23 Nov in New York (22:00 EST).
    deliver_now(desk, at(clock, utc(2026, 11, 24, 3)), arf("45.137.21.7", 2))
    # New York's midnight is 05:00 UTC: one second before it, and on it.
    deliver_now(desk, at(clock, utc(2026, 11, 24, 4, 59, 59)), person(*BRUTE_FORCE, "bf1"))
    deliver_now(desk, at(clock, utc(2026, 11, 24, 5)), person(
        "Port scan", "Port scan from 45.137.21.10 hitting all our ports", "ps1"))
    # Tue 24 Nov, 10:00 EST: phishing (other), a complaint nobody could classify, and an FBL
    # report that says "not spam".
    at(clock, START)
    deliver_now(desk, clock, person(*PHISHING, "ph1"))
    deliver_now(desk, clock, person(*ODD, "odd1"))
    deliver_now(desk, clock, arf("45.137.21.8", 3, feedback="not-spam"))
    # Ten days ago: in the 30-day window only.
    deliver_now(desk, at(clock, START - timedelta(days=10)), arf("45.137.21.7", 4))
    at(clock, START)

    week = stats(desk.web, 7)
    assert week["time_zone"] == "America/New_York" and week["days"] == 7
    assert week["reports"]["days"] == [f"2026-11-{d}" for d in range(18, 25)]
    assert per_day(week) == {
        "2026-11-22": {"spam": 1},
        "2026-11-23": {"spam": 1, "network": 1},
        "2026-11-24": {"network": 1, "other": 1, "unclassified": 1, "not-abuse": 1},
    }
    assert week["reports"]["categories"] == ["spam", "network", "other", "not-abuse",
                                             "unclassified"]
    assert week["reports"]["per_category"] == {"spam": 2, "network": 2, "other": 1,
                                               "not-abuse": 1, "unclassified": 1}
    assert week["reports"]["total"] == 7

    month = stats(desk.web, 30)
    assert len(month["reports"]["days"]) == 30
    assert month["reports"]["days"][-1] == "2026-11-24"
    assert per_day(month)["2026-11-14"] == {"spam": 1}
    assert month["reports"]["total"] == 8


def test_quiet_days_still_show_the_three_categories(desk: Desk) -> None:
    data = stats(desk.web, 7)
    assert data["reports"]["categories"] == ["spam", "network", "other"]
    assert data["reports"]["series"] == {c: [0] * 7 for c in ("spam", "network", "other")}
    assert data["review"] == {"size": 0, "reports": 0, "messages": 0,
                              "oldest_received_at": None, "oldest_age_seconds": None}


def test_cases_by_state_and_deadlines(desk: Desk, clock: Clock) -> None:
    spam = the_case(desk, deliver_now(desk, clock, arf("45.137.21.7", 1)))
    desk.workflow.run_due()  # the first notice goes: notified
    c3 = the_case(desk, deliver_now(desk, clock, arf("46.29.160.5", 1)))  # no mail: stays open
    data = stats(desk.web)
    assert data["cases"]["by_state"] == {
        "open": 1, "notified": 1, "customer-responded": 0, "resolved": 0, "escalated": 0,
        "restricted": 0, "terminated": 0}
    assert data["cases"]["active"] == 2
    assert data["deadlines"]["due_today"] == {"count": 0, "cases": []}
    assert data["deadlines"]["overdue"] == {"count": 0, "cases": []}

    # Thu 3 Dec, 07:00 EST: both deadlines (10:00 EST) are due today.
    at(clock, utc(2026, 12, 3, 12))
    data = stats(desk.web)
    assert data["deadlines"]["today"] == "2026-12-03"
    due = data["deadlines"]["due_today"]
    assert due["count"] == 2
    assert {c["reference"] for c in due["cases"]} == {spam.reference, c3.reference}
    assert due["cases"][0]["deadline_at"] == "2026-12-03T15:00:00Z"
    assert data["deadlines"]["overdue"]["count"] == 0

    # A minute past the deadline, before the timeline ran: overdue, no longer "due today".
    at(clock, DEADLINE + timedelta(minutes=1))
    with desk.engine.begin() as conn:
        cases.resolve(conn, desk.config.workflow, c3.id, clock.now,
                      cases.Actor("specialist", "sam"), "fixed")
    data = stats(desk.web)
    assert data["deadlines"]["due_today"]["count"] == 0
    overdue = data["deadlines"]["overdue"]
    assert overdue["count"] == 1
    assert [(c["reference"], c["state"], c["customer_id"]) for c in overdue["cases"]] == [
        (spam.reference, "notified", "C-1")]
    assert data["cases"]["by_state"]["resolved"] == 1

    # The timeline escalates it: no longer overdue (it waits on the desk, not the customer).
    desk.workflow.run_due()
    data = stats(desk.web)
    assert data["deadlines"]["overdue"]["count"] == 0
    assert data["cases"]["by_state"]["escalated"] == 1
    assert data["cases"]["by_state"]["notified"] == 0
    assert "closed" not in data["cases"]["by_state"]


def test_review_queue_count_matches_the_queue(desk: Desk, clock: Clock) -> None:
    # Three hours ago: an FBL report about an address no customer holds.
    first = deliver_now(desk, at(clock, START - timedelta(hours=3)), arf("185.220.101.9", 1))
    copy = deliver_now(desk, clock, arf("185.220.101.9", 1))  # the same mail again: merged
    with desk.engine.begin() as conn:  # a merged copy stays out of the queue, reasons or not
        conn.execute(update(Report).where(Report.message_id == copy)
                     .values(review_reason="no customer resolves"))
    assert reports_of(desk, copy)[0].duplicate_of is not None
    odd = deliver_now(desk, at(clock, START - timedelta(hours=2)), person(*ODD, "odd1"))
    # A reply to a case that does not exist: a message without report.
    deliver_now(desk, at(clock, START - timedelta(hours=1)), person(
        "Re: [Abuse Case C-2026-999999] spam from your network", "We fixed it.", "reply1",
        sender="noc@alpha.example"))
    deliver_now(desk, at(clock, START), arf("45.137.21.7", 1))  # decided by the machine
    items = desk.review.queue()
    data = stats(desk.web)["review"]
    assert data["size"] == len(items) == 3
    assert (data["reports"], data["messages"]) == (2, 1)
    assert data["oldest_received_at"] == items[0]["received_at"] == "2026-11-24T12:00:00Z"
    assert data["oldest_age_seconds"] == 3 * 3600

    (report,) = reports_of(desk, first)
    desk.review.decide(ReviewDecision(report.id, "sam", customer="C-1"))
    data = stats(desk.web)["review"]
    assert data["size"] == len(desk.review.queue()) == 2
    assert data["oldest_age_seconds"] == 2 * 3600
    # The customer only, its type still unknown: still in the queue (no dead end) ...
    (report,) = reports_of(desk, odd)
    desk.review.decide(ReviewDecision(report.id, "sam", customer="C-3"))
    assert reports_of(desk, odd)[0].review_reason
    assert stats(desk.web)["review"]["size"] == len(desk.review.queue()) == 2
    # ... until the type is decided too.
    desk.review.decide(ReviewDecision(report.id, "sam", type="harassment"))
    data = stats(desk.web)["review"]
    assert data["size"] == len(desk.review.queue()) == 1
    assert (data["reports"], data["messages"], data["oldest_age_seconds"]) == (0, 1, 3600)


def test_fees_of_this_month(desk: Desk, clock: Clock) -> None:
    actor = cases.Actor("specialist", "sam")
    cfg = desk.config.workflow
    # 1 Nov 03:30 UTC is still 31 October in New York: last month's fee.
    october = the_case(desk, deliver_now(desk, at(clock, utc(2026, 11, 1, 3, 30)),
                                         person(*BRUTE_FORCE, "bf1")))
    with desk.engine.begin() as conn:
        assert cases.escalate(conn, cfg, october.id, clock.now, actor, "test")
    at(clock, START)
    billed = the_case(desk, deliver_now(desk, clock, arf("45.137.21.7", 1)))
    waived = the_case(desk, deliver_now(desk, clock, arf("46.29.160.5", 1)))
    with desk.engine.begin() as conn:
        assert cases.escalate(conn, cfg, billed.id, clock.now, actor, "repeat")
        assert cases.escalate(conn, cfg, waived.id, clock.now, actor, "repeat")
        cases.waive_case_fees(conn, waived.id, clock.now, actor, "goodwill")
        conn.execute(insert(FeeEntry).values(case_id=billed.id, amount_cents=2550,
                                             currency="EUR", assessed_at=clock.now,
                                             state="assessed"))
    fees = stats(desk.web)["fees"]
    assert fees == {"month": "2026-11",
                    "assessed": {"count": 2, "totals": {"EUR": 2550, "USD": 10000}},
                    "waived": {"count": 1, "totals": {"USD": 10000}}}
    # In December, November's fees are last month's.
    at(clock, utc(2026, 12, 1, 5))
    assert stats(desk.web)["fees"]["assessed"] == {"count": 0, "totals": {}}


def test_days_are_clamped_to_7_30_or_90(desk: Desk) -> None:
    assert [clamp_days(v) for v in ("7", "30", "90", 14, "25", "1000", "-3", "x", None, "")] \
        == [7, 30, 90, 7, 30, 90, 7, 30, 30, 30]
    # stats() itself (the API's) takes 1 to 366 days.
    assert [len(stats(desk.web, n)["reports"]["days"]) for n in (0, 1, 10_000)] == [1, 1, 366]


# ---- the page and the CSV ----------------------------------------------------------------------

def test_the_page_shows_the_chart_and_the_numbers(desk: Desk, clock: Clock) -> None:
    spam = the_case(desk, deliver_now(desk, at(clock, utc(2026, 11, 23, 15)),
                                      arf("45.137.21.7", 1)))
    at(clock, START)
    hacking = the_case(desk, deliver_now(desk, clock, person(*BRUTE_FORCE, "bf1")))
    deliver_now(desk, clock, person(*ODD, "odd1"))
    case = the_case(desk, deliver_now(desk, clock, arf("46.29.160.5", 1)))
    with desk.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.external_id == "C-3")
                     .values(name=f"Gamma {SCRIPT}"))
    at(clock, DEADLINE + timedelta(hours=1))  # the three cases are overdue

    page = signed_in(desk, "sam").get("/dashboard?days=7")
    assert page.status_code == 200
    html = page.text
    assert 'aria-current="page">Dashboard' in html
    assert '<option value="7" selected>' in html
    chart = svg_of(html)
    assert chart.get("role") == "img"
    bars = {b.get("data-label"): b.get("data-total")
            for b in chart.iter("{http://www.w3.org/2000/svg}g") if b.get("class") == "bar"}
    assert len(bars) == 7 and bars["2026-12-03"] == "0"  # the week up to the clock's day
    assert 'href="/dashboard.csv?days=7"' in html
    assert '<a href="/cases?state=open">' in html
    assert re.search(r'id="overdue-count">3<', html)
    for overdue in (spam, hacking, case):
        assert f'<a href="/cases/{overdue.reference}">{overdue.reference}</a>' in html
    assert re.search(r'id="review-size">1<', html)
    assert 'href="/review"' in html
    assert f"Gamma {SCRIPT}" not in html and "Gamma &lt;script&gt;alert(1)&lt;/script&gt;" in html

    # The last 30 days hold the reports of 23 and 24 November.
    page = signed_in(desk, "sam").get("/dashboard")
    chart = svg_of(page.text)
    totals = {b.get("data-label"): b.get("data-total")
              for b in chart.iter("{http://www.w3.org/2000/svg}g") if b.get("class") == "bar"}
    assert len(totals) == 30
    assert (totals["2026-11-23"], totals["2026-11-24"]) == ("1", "3")
    assert '<option value="30" selected>' in page.text


def test_fees_on_the_page(desk: Desk, clock: Clock) -> None:
    case = the_case(desk, deliver_now(desk, clock, arf("45.137.21.7", 1)))
    with desk.engine.begin() as conn:
        cases.escalate(conn, desk.config.workflow, case.id, clock.now,
                       cases.Actor("specialist", "sam"), "repeat")
    html = signed_in(desk, "sue").get("/dashboard").text
    assert "Fees in 2026-11" in html
    assert re.search(r'id="fees-count">1<', html)
    assert "100.00 USD" in html
    assert re.search(r'id="fees-waived-count">0<', html)


def test_category_text_is_escaped_in_the_chart_and_neutralised_in_the_csv(
        desk: Desk, clock: Clock) -> None:
    first = deliver_now(desk, clock, arf("45.137.21.7", 1))
    second = deliver_now(desk, clock, arf("45.137.21.7", 2))
    with desk.engine.begin() as conn:  # what a bad category value would look like
        conn.execute(update(Report).where(Report.message_id == first).values(category=SCRIPT))
        conn.execute(update(Report).where(Report.message_id == second)
                     .values(category="=HYPERLINK(1)"))
    client = signed_in(desk, "sam")
    html = client.get("/dashboard?days=7").text
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    svg_of(html)  # still well-formed
    rows = list(csv.reader(io.StringIO(client.get("/dashboard.csv?days=7").text)))
    assert ["2026-11-24", "'=HYPERLINK(1)", "1"] in rows
    assert ["2026-11-24", SCRIPT, "1"] in rows


def test_csv_export(desk: Desk, clock: Clock) -> None:
    deliver_now(desk, at(clock, utc(2026, 11, 24, 3)), arf("45.137.21.7", 1))  # 23 Nov in NY
    at(clock, START)
    deliver_now(desk, clock, arf("45.137.21.7", 2))
    deliver_now(desk, clock, person(*PHISHING, "ph1"))
    answer = signed_in(desk, "sam").get("/dashboard.csv?days=7")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == \
        'attachment; filename="abuse-desk-reports-2026-11-24.csv"'
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["day", "category", "reports"]
    assert len(rows) == 1 + 7 * 3
    assert rows[1] == ["2026-11-18", "spam", "0"]
    counted = {(d, c): int(n) for d, c, n in rows[1:] if n != "0"}
    assert counted == {("2026-11-23", "spam"): 1, ("2026-11-24", "spam"): 1,
                       ("2026-11-24", "other"): 1}
    # Anything but 7, 30 or 90 days is clamped.
    assert len(signed_in(desk, "sam").get("/dashboard.csv?days=500").text.splitlines()) \
        == 1 + 90 * 3


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard?days=7", "/dashboard.csv"])
def test_anonymous_goes_to_the_login_page(desk: Desk, path: str) -> None:
    answer = client_for(desk).get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=/dashboard")

