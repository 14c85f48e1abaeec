"""The specialists' desk in a real browser: Debian's Chromium, headless, driven by Playwright,
against `abuse-desk serve` running as a child process on SQLite with its in-process workers.

A screenshot of every page the tests see is saved under ``test-output/browser/<test>/``
(``ABUSE_DESK_TEST_OUTPUT`` moves it). Without Chromium or Playwright the tests skip, saying
why; under ``CI=true`` (``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.wiring import open_desk
from abuse_desk.classifier.customer_import import import_customers
from abuse_desk.core.db import as_utc, upgrade
from abuse_desk.core.models import Case, Message, MessageState, Report
from abuse_desk.web import auth
from abuse_desk.workflow.calendar import BusinessCalendar
from sqlalchemy import select

from tests.conftest import unavailable
from tests.support import desk_process, make_config, wait_for
from tests.web.web_support import PASSWORD, USERS
from tests.workflow.workflow_support import CUSTOMERS

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("ABUSE_DESK_TEST_OUTPUT") or ROOT / "test-output") / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path() -> str | None:
    return (os.environ.get("ABUSE_DESK_TEST_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (`make test` installs the dev extras)")
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium to drive: install Debian's `chromium` package "
                    "(apt-get install chromium) or set ABUSE_DESK_TEST_CHROMIUM")
    driver = sync_playwright().start()
    try:
        # Chromium keeps the real clock under `make test-at`: it hangs under libfaketime, and
        # only the desk's clock is under test (the server's cookies and pages carry its time).
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        launched = driver.chromium.launch(executable_path=executable, headless=True,
                                          args=CHROMIUM_ARGS, env=env)
    except Exception as exc:
        driver.stop()
        unavailable(f"Chromium at {executable} did not start: {exc}")
    yield launched
    launched.close()
    driver.stop()


@dataclass
class Live:
    """`abuse-desk serve` for one test, and where its screenshots go."""

    url: str
    smtp: tuple[str, int]
    config: Any
    shots: Path
    hook_log: Path
    count: int = 0

    def shot(self, page: Any, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000, f"an empty screenshot of {name}"
        return path

    def send(self, raw: bytes, sender: str = "reporter@people.example") -> None:
        with smtplib.SMTP(*self.smtp, timeout=30) as smtp:
            smtp.sendmail(sender, ["abuse@localhost"], raw)

    def engine(self) -> Any:
        return open_desk(self.config, sends=False, upgrade_schema=True).engine

    def web_when(self, moment: datetime) -> str:
        """*moment* as the pages write it: in the desk's zone, to the minute."""
        zone = BusinessCalendar.from_config(self.config.workflow).zone
        local = as_utc(moment).astimezone(zone)
        return local.strftime("%Y-%m-%d %H:%M %Z")

    def hook_calls(self) -> list[str]:
        """The provisioning hook's invocations (ACTION CUSTOMER CASE), one a line."""
        return self.hook_log.read_text().splitlines() if self.hook_log.exists() else []


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Live]:
    hook_log = tmp_path / "hook.log"
    # The provisioning system: a command that writes down what it was asked to do.
    hook = ["sh", "-c", f'echo "$1 $2 $3" >> {hook_log}', "hook"]
    config = make_config(tmp_path, workflow={"time_zone": "America/New_York",
                                             "holiday_country": "US",
                                             "action_hook_command": hook})
    desk = open_desk(config, sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    csv = tmp_path / "customers.csv"
    csv.write_text(CUSTOMERS)
    import_customers(desk.engine, csv, clock=desk.clock)
    for name, role in USERS.items():
        auth.add_user(desk.engine, name, role, PASSWORD, desk.clock())
    desk.close()
    shots = OUTPUT / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    with desk_process(config, "serve", log=tmp_path / "serve.log", wait=config.web.port):
        yield Live(f"http://127.0.0.1:{config.web.port}", (config.smtp.host, config.smtp.port),
                   config, shots, hook_log)


def sign_in(browser: Any, live: Live, name: str) -> Any:
    """A new browser context signed in as *name* through the login page; returns its page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # CSP violations and script errors land here
    page.goto(f"{live.url}/review")
    assert page.url.startswith(f"{live.url}/login?next=")
    live.shot(page, f"login-{name}")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/review")
    return page


def complaint(subject: str, body: str, msg_id: str) -> bytes:
    return (f"From: Jane Doe <jane@people.example>\r\nTo: abuse@localhost\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{msg_id}@people.example>\r\n"
            f"Date: Tue, 24 Nov 2026 14:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def processed(live: Live, count: int) -> None:
    engine = live.engine()
    try:
        wait_for(lambda: _settled(engine, count), timeout=60, what=f"{count} message(s) processed")
    finally:
        engine.dispose()


def _settled(engine: Any, count: int) -> bool:
    with engine.connect() as conn:
        states = list(conn.execute(select(Message.state)).scalars())
    return len(states) >= count and all(s != MessageState.RECEIVED for s in states)


def test_sign_in_and_out(browser: Any, live: Live) -> None:
    page = sign_in(browser, live, "sam")
    live.shot(page, "review-queue-empty")
    page.get_by_role("link", name="sam").click()
    page.wait_for_url(f"{live.url}/account")
    assert page.get_by_text("specialist").first.is_visible()
    live.shot(page, "account")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live.url}/login")
    page.goto(f"{live.url}/review")
    assert "/login?next=" in page.url
    assert page.errors == []


def test_wrong_password_in_the_browser(browser: Any, live: Live) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.get_by_label("Name").fill("sam")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong name or password."
    live.shot(page, "login-refused")
    context.close()


def accept_dialogs(page: Any) -> None:
    """Confirm every `data-confirm` question, as a specialist who means it would."""
    page.on("dialog", lambda dialog: dialog.accept())


def press(page: Any, button: str) -> None:
    """Click the submit button named *button* and wait for the page the POST leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def flash(page: Any) -> str:
    return str(page.get_by_role("status").inner_text())


def case_of(live: Live, report_id: int) -> Any:
    engine = live.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(select(Case.reference, Case.opened_at, Case.deadline_at,
                                       Case.timeline_class)
                                .join(Report, Report.case_id == Case.id)
                                .where(Report.id == report_id)).one()
    finally:
        engine.dispose()


def test_review_to_case_to_restriction_to_dashboard(browser: Any, live: Live) -> None:
    """The day's work in one pass: a free-text complaint about an address nobody holds waits
    in the review queue; sam names the customer, the report opens a case with a five-business-
    day deadline; sam escalates it; sue approves the proposed restriction, which reaches the
    provisioning hook; the dashboard draws the day's report."""
    live.send(complaint("Spam from your network",
                        "Your customer at 198.51.100.7 keeps sending us spam, see below.\n\n"
                        "Received: from [198.51.100.7] by mx.people.example\n"
                        "Subject: CHEAP PILLS <script>alert('x')</script>", "c1"))
    processed(live, 1)

    sam = sign_in(browser, live, "sam")
    accept_dialogs(sam)
    rows = sam.locator("table.queue tbody tr")
    assert rows.count() == 1
    assert "no customer" in rows.first.inner_text()
    live.shot(sam, "review-queue")
    rows.first.get_by_role("link").click()
    sam.wait_for_url(re.compile(r"/review/report/\d+$"))
    report_id = int(sam.url.rsplit("/", 1)[1])
    # The reporter's HTML is text on the page, not markup.
    assert sam.locator("pre.raw").inner_text().count("<script>alert('x')</script>") == 1
    assert sam.locator("main script").count() == 0
    live.shot(sam, "report")

    sam.get_by_label("Category and type").select_option("spam")
    press(sam, "Set the type")
    sam.wait_for_url(f"{live.url}/review/report/{report_id}")
    assert "spam, no customer yet; not in a case yet" in flash(sam)
    sam.get_by_label("Customer ID").fill("C-1")
    press(sam, "Set the customer")
    sam.wait_for_url(f"{live.url}/review")
    case = case_of(live, report_id)
    reference = case.reference
    # The standard class: five business days in the desk's calendar from the decision.
    calendar = BusinessCalendar.from_config(live.config.workflow)
    assert case.timeline_class == "standard"
    assert as_utc(case.deadline_at) == calendar.add_business_days(as_utc(case.opened_at), 5)
    assert f"customer C-1, opened case {reference} (deadline" in flash(sam)
    assert "nothing needs a person" in sam.locator("main").inner_text()
    live.shot(sam, "review-queue-done")

    sam.get_by_role("link", name="Cases").click()
    sam.get_by_role("link", name=reference).click()
    sam.wait_for_url(f"{live.url}/cases/{reference}")
    fields = sam.locator("dl.fields").first.inner_text()
    assert "Alpha Hosting (C-1)" in fields
    assert "standard" in fields
    deadline_text = sam.locator("dt:has-text('Deadline') + dd").inner_text()
    assert deadline_text.startswith(live.web_when(case.deadline_at))
    assert sam.locator("table.reports").get_by_role("link", name=f"#{report_id}").is_visible()
    live.shot(sam, "case")

    sam.get_by_label("Escalate: why").fill("no answer to two calls")
    press(sam, "Escalate now")
    sam.wait_for_url(f"{live.url}/cases/{reference}")
    assert "escalated" in sam.locator("h1").inner_text()
    assert "restrict" in sam.locator("dt:has-text('Proposed action') + dd").inner_text()
    assert sam.locator("form[action$='/approve'] fieldset[disabled]").count() == 1
    live.shot(sam, "case-escalated")
    assert sam.errors == []

    sue = sign_in(browser, live, "sue")
    accept_dialogs(sue)
    sue.goto(f"{live.url}/cases/{reference}")
    sue.get_by_label("Why").last.fill("customer unreachable, spam continues")
    press(sue, "Approve")
    sue.wait_for_url(f"{live.url}/cases/{reference}")
    wait_for(lambda: live.hook_calls() != [], timeout=60, what="the provisioning hook called")
    assert live.hook_calls() == [f"restrict C-1 {reference}"]

    def shown_restricted() -> bool:
        sue.reload()
        return "restricted" in sue.locator("h1").inner_text()

    wait_for(shown_restricted, timeout=30, what="the case shown as restricted")
    audit = sue.locator("main").inner_text()
    assert "sue" in audit and "sam" in audit
    live.shot(sue, "case-restricted")

    sue.get_by_role("link", name="Dashboard").click()
    sue.wait_for_url(re.compile(r"/dashboard"))
    chart = sue.locator("svg")
    assert chart.count() >= 1
    assert chart.first.locator("rect").count() >= 1
    assert "restricted" in sue.locator("main").inner_text()
    live.shot(sue, "dashboard")
    assert sue.errors == []
