"""The JSON API (``/api/v1/``) through Starlette's test client: who its tokens let in, what each
route answers (the same data as the command line), what decisions and case actions change in
the database and under whose name, how bad input is refused, and the OpenAPI document held to
the app's own routes and to the answers."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core.models import Case, Event, FeeEntry, Report, TimelineStep, User
from abuse_desk.web import auth, openapi
from abuse_desk.web.app import create_app
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import func, select, update
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.web.web_support import signed_in
from tests.workflow.workflow_support import (
    START,
    Clock,
    arf,
    case_by_id,
    deliver,
    person,
    reports_of,
    steps_of,
    the_case,
)

API = "/api/v1"
SCRIPT = "<script>alert(1)</script>"
NOBODY_IP = "198.18.7.7"  # no customer owns it: its reports wait in review


@pytest.fixture
def client(desk: Desk) -> TestClient:
    return TestClient(create_app(desk.web))


def token(desk: Desk, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.add_token(desk.engine, user, 'test', desk.clock())}"}


@pytest.fixture
def sam(desk: Desk) -> dict[str, str]:
    """Headers with a specialist's token."""
    return token(desk, "sam")


@pytest.fixture
def sue(desk: Desk) -> dict[str, str]:
    """Headers with a supervisor's token."""
    return token(desk, "sue")


def api_routes(desk: Desk) -> list[tuple[str, str, Any]]:
    """(path, method, endpoint) of every route under /api/v1, from the app itself."""
    found = []
    for route in create_app(desk.web).routes:
        if isinstance(route, Route) and route.path.startswith(API + "/"):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found.append((route.path, method, route.endpoint))
    return found


def guarded(desk: Desk) -> list[tuple[str, str]]:
    found = [(path, method) for path, method, endpoint in api_routes(desk)
             if getattr(endpoint, "guard", None) == "api"]
    assert len(found) >= 7, found
    return found


def fill(path: str, report_id: int, ref: str) -> str:
    return path.replace("{id}", str(report_id)).replace("{ref}", ref)


def events(desk: Desk, **where: Any) -> list[Any]:
    with desk.engine.connect() as conn:
        stmt = select(Event).order_by(Event.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(Event, name) == value)
        return list(conn.execute(stmt))


def count(desk: Desk, table: Any) -> int:
    with desk.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def in_review(desk: Desk, ip: str = NOBODY_IP, n: int = 1) -> int:
    """A feedback-loop report about an address nobody owns: it waits in review. Its id."""
    (report,) = reports_of(desk, deliver(desk, arf(ip, n)))
    assert report.case_id is None and report.review_reason
    return int(report.id)


def a_case(desk: Desk, ip: str = "45.137.21.7", n: int = 1) -> Any:
    """A case of C-1 (45.137.21.0/24) or C-3 (46.29.160.0/24), its first notice sent."""
    case = the_case(desk, deliver(desk, arf(ip, n)))
    desk.workflow.run_due()
    return case_by_id(desk, case.id)


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def database_state(desk: Desk) -> Any:
    """What an action could change: cases, steps, fees, events, reports."""
    with desk.engine.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(select(Case.state, Case.deadline_at,
                                                   Case.proposed_action).order_by(Case.id))],
            [tuple(r) for r in conn.execute(select(TimelineStep.kind, TimelineStep.state,
                                                   TimelineStep.due_at)
                                            .order_by(TimelineStep.id))],
            [tuple(r) for r in conn.execute(select(FeeEntry.state, FeeEntry.waived_by)
                                            .order_by(FeeEntry.id))],
            count(desk, Event),
            [tuple(r) for r in conn.execute(select(Report.case_id, Report.reviewed_by,
                                                   Report.type).order_by(Report.id))])


# ---- who gets in -------------------------------------------------------------------------------

def test_every_route_refuses_requests_without_a_live_token(desk: Desk, client: TestClient,
                                                           sam: dict[str, str]) -> None:
    report_id = in_review(desk)
    case = a_case(desk)
    revoked = token(desk, "sam")["Authorization"]
    auth.revoke_tokens(desk.engine, "sam", "test", desk.clock())  # every token named "test"
    auth.add_user(desk.engine, "dan", "supervisor", "a long enough password", desk.clock())
    of_disabled = token(desk, "dan")["Authorization"]
    auth.set_disabled(desk.engine, "dan", True, desk.clock())
    live = token(desk, "sue")
    refused: list[dict[str, str]] = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"}, {"Authorization": "Bearer adk_forged"},
        {"Authorization": "Basic c2FtOnBhc3N3b3Jk"},
        {"Authorization": live["Authorization"].replace("Bearer ", "Token ")},
        {"Authorization": live["Authorization"] + "x"},
        {"Authorization": revoked}, {"Authorization": sam["Authorization"]},
        {"Authorization": of_disabled}]
    before = database_state(desk)
    for path, method in guarded(desk):
        url = fill(path, report_id, case.reference)
        body = ({"type": "spam", "customer": "C-1"} if "decision" in path
                else {"action": "note", "reason": "x"} if method == "POST" else None)
        for headers in refused:
            answer = client.request(method, url, headers=headers, json=body)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.headers["content-type"] == "application/json"
            assert "Bearer" in answer.json()["error"]
        # The same request with a live token gets in (so the refusals above are the token's).
        if method == "GET":
            assert client.request(method, url, headers=live).status_code == 200, path
    assert database_state(desk) == before


def test_a_disabled_user_is_refused_even_with_a_token_not_revoked(desk: Desk,
                                                                  client: TestClient,
                                                                  sam: dict[str, str]) -> None:
    assert client.get(f"{API}/cases", headers=sam).status_code == 200
    auth.set_disabled(desk.engine, "sam", True, desk.clock())
    # enabled again: its old tokens stay revoked
    auth.set_disabled(desk.engine, "sam", False, desk.clock())
    assert client.get(f"{API}/cases", headers=sam).status_code == 401
    fresh = token(desk, "sam")
    assert client.get(f"{API}/cases", headers=fresh).status_code == 200
    with desk.engine.begin() as conn:  # disabled behind the revocation's back
        conn.execute(update(User).where(User.name == "sam").values(disabled=True))
    answer = client.get(f"{API}/cases", headers=fresh)
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")


# ---- review ------------------------------------------------------------------------------------

def test_the_review_queue_pages_with_its_total(desk: Desk, client: TestClient,
                                               sam: dict[str, str]) -> None:
    ids = [in_review(desk, f"198.18.7.{n}", n) for n in (1, 2, 3)]
    queue = as_json(desk.review.queue())
    first = client.get(f"{API}/review?limit=2", headers=sam)
    assert first.status_code == 200
    assert first.json() == {"items": queue[:2], "total": 3, "limit": 2, "offset": 0}
    rest = client.get(f"{API}/review", params={"limit": "2", "offset": "2"}, headers=sam).json()
    assert rest["items"] == queue[2:] and rest["total"] == 3
    assert [i["report_id"] for i in first.json()["items"] + rest["items"]] == ids
    assert client.get(f"{API}/review?limit=100000", headers=sam).json()["limit"] == 500
    for bad in ("limit=x", "limit=-1", "limit=0", "offset=-3", "limit=1e3", "offset=2.5"):
        answer = client.get(f"{API}/review?{bad}", headers=sam)
        assert answer.status_code == 400, bad
        assert bad.split("=")[0] in answer.json()["error"]


def test_a_report_shows_parsed_fields_classification_and_evidence_not_the_raw_mail(
        desk: Desk, client: TestClient, sam: dict[str, str]) -> None:
    report_id = in_review(desk)
    answer = client.get(f"{API}/reports/{report_id}", headers=sam)
    assert answer.status_code == 200
    shown = answer.json()
    assert shown == {**shown, "id": report_id, "format": "arf", "category": "spam",
                     "type": "spam", "source_ip": NOBODY_IP, "customer": None, "case": None,
                     "review_reasons": ["no customer resolves"], "needs_review": True,
                     "reporter": "Mailbox FBL <fbl@mailbox.example>"}
    assert shown["fields"]["reporter_address"] == "fbl@mailbox.example"
    assert shown["evidence"]["classification"][0]["name"] == "table:arf:abuse"
    assert "raw" not in shown
    assert "Feedback-Type" not in answer.text and "multipart/report" not in answer.text
    assert client.get(f"{API}/reports/999", headers=sam).status_code == 404
    assert client.get(f"{API}/reports/999", headers=sam).json() == {"error": "no report 999"}
    assert client.get(f"{API}/reports/abc", headers=sam).status_code == 400


def test_a_report_in_a_case_names_its_customer_and_case(desk: Desk, client: TestClient,
                                                        sam: dict[str, str]) -> None:
    case = a_case(desk)
    (report,) = reports_of(desk, 1)
    shown = client.get(f"{API}/reports/{report.id}", headers=sam).json()
    assert shown["customer"] == {"id": "C-1", "name": "Alpha Hosting"}
    assert shown["case"] == {"id": case.reference, "number": case.id, "state": "notified"}
    assert shown["review_reasons"] == [] and shown["needs_review"] is False


def test_mail_content_comes_back_as_data(desk: Desk, client: TestClient,
                                         sam: dict[str, str]) -> None:
    (report,) = reports_of(desk, deliver(desk, person(
        f"Phishing {SCRIPT}", f"A phishing page at http://evil.example/login {SCRIPT}", "p1")))
    answer = client.get(f"{API}/reports/{report.id}", headers=sam)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["subject"] == f"Phishing {SCRIPT}"
    assert SCRIPT in answer.json()["fields"]["evidence"]
    (item,) = client.get(f"{API}/review", headers=sam).json()["items"]
    assert item["subject"] == f"Phishing {SCRIPT}"


def test_a_decision_puts_the_report_into_its_customers_case(desk: Desk, client: TestClient,
                                                            sam: dict[str, str]) -> None:
    report_id = in_review(desk)
    answer = client.post(f"{API}/reports/{report_id}/decision", headers=sam,
                         json={"type": "spam", "customer": "C-2"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    with desk.engine.connect() as conn:
        stored = conn.execute(select(Report).where(Report.id == report_id)).one()
    assert stored.case_id is not None and stored.reviewed_by == "sam"
    assert (stored.type, stored.review_reason) == ("spam", None)
    (row,) = desk.cases.case_rows(case_id=stored.case_id)
    assert result == {**result, "report_id": report_id, "case": as_json(row)}
    assert row["customer_id"] == "C-2"
    assert result["classification"] == {**result["classification"], "type": "spam",
                                        "customer_id": "C-2", "review_reasons": [],
                                        "not_abuse": False}
    (decided,) = events(desk, subject_type="report", subject_id=report_id)
    assert (decided.action, decided.actor) == ("review-decision", "sam")
    opened = events(desk, subject_type="case", subject_id=stored.case_id)
    assert [(e.action, e.actor) for e in opened] == [("opened", "sam")]
    assert client.get(f"{API}/review", headers=sam).json()["total"] == 0


def test_not_abuse_takes_the_report_out_of_review_without_a_case(
        desk: Desk, client: TestClient, sam: dict[str, str]) -> None:
    report_id = in_review(desk)
    answer = client.post(f"{API}/reports/{report_id}/decision", headers=sam,
                         json={"type": "not-abuse"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["case"] is None and answer.json()["classification"]["not_abuse"]
    assert count(desk, Case) == 0
    assert client.get(f"{API}/review", headers=sam).json()["total"] == 0


@pytest.mark.parametrize(("body", "status", "says"), [
    ({}, 400, "say what you decided"),
    ({"type": "knitting"}, 400, "unknown type 'knitting'"),
    ({"customer": "C-404"}, 400, "no customer 'C-404'"),
    ({"type": 3}, 400, "type must be a string"),
    ({"type": "spam", "customer": "C-1", "by": "someone-else"}, 400, "unknown field(s): by"),
])
def test_a_bad_decision_is_refused_and_changes_nothing(
        desk: Desk, client: TestClient, sam: dict[str, str], body: dict[str, Any], status: int,
        says: str) -> None:
    report_id = in_review(desk)
    before = database_state(desk)
    answer = client.post(f"{API}/reports/{report_id}/decision", headers=sam, json=body)
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert database_state(desk) == before


def test_a_report_already_in_a_case_is_not_decided_again(desk: Desk, client: TestClient,
                                                         sam: dict[str, str]) -> None:
    case = a_case(desk)
    (report,) = reports_of(desk, 1)
    before = database_state(desk)
    answer = client.post(f"{API}/reports/{report.id}/decision", headers=sam,
                         json={"customer": "C-2"})
    assert answer.status_code == 400
    assert f"already a claim on case {case.reference}" in answer.json()["error"]
    assert database_state(desk) == before


def test_a_decision_on_no_report_is_404(desk: Desk, client: TestClient,
                                        sam: dict[str, str]) -> None:
    answer = client.post(f"{API}/reports/77/decision", headers=sam, json={"type": "spam"})
    assert (answer.status_code, answer.json()) == (404, {"error": "no report 77"})


@pytest.mark.parametrize("path", ["/reports/{id}/decision", "/cases/{ref}/actions"])
def test_bodies_that_are_not_json_objects_or_too_large_are_refused(
        desk: Desk, client: TestClient, sue: dict[str, str], path: str) -> None:
    report_id = in_review(desk)
    case = a_case(desk)
    url = API + path.replace("{id}", str(report_id)).replace("{ref}", case.reference)
    before = database_state(desk)
    json_headers = {**sue, "Content-Type": "application/json"}
    for content in (b"[1, 2]", b'"spam"', b"3", b"null", b"{not json", b"\xff\xfe"):
        answer = client.post(url, headers=json_headers, content=content)
        assert answer.status_code == 400, content
        assert "error" in answer.json()
    padding = "x" * (300 * 1024)
    huge = client.post(url, headers=json_headers, content=json.dumps(
        {"type": "spam", "action": "note", "reason": padding}).encode())
    assert huge.status_code == 413 and "larger than" in huge.json()["error"]
    assert database_state(desk) == before


# ---- cases -------------------------------------------------------------------------------------

def test_the_case_list_is_the_command_lines(desk: Desk, client: TestClient, clock: Clock,
                                            sam: dict[str, str]) -> None:
    first = a_case(desk, "45.137.21.7")
    second = a_case(desk, "46.29.160.5", 2)
    answer = client.get(f"{API}/cases", headers=sam)
    assert answer.status_code == 200
    assert answer.json() == {"cases": as_json(desk.cases.case_rows()), "limit": 50, "offset": 0,
                             "next_offset": None}
    assert [c["id"] for c in answer.json()["cases"]] == [second.reference, first.reference]

    def listed(query: str) -> list[str]:
        got = client.get(f"{API}/cases?{query}", headers=sam)
        assert got.status_code == 200, got.text
        return [c["id"] for c in got.json()["cases"]]

    assert listed("customer=C-1") == [first.reference]
    assert listed("state=notified") == [second.reference, first.reference]
    assert listed("state=resolved") == []
    assert listed("overdue=true") == []
    page = client.get(f"{API}/cases?limit=1", headers=sam).json()
    assert ([c["id"] for c in page["cases"]], page["next_offset"]) == ([second.reference], 1)
    assert listed("limit=1&offset=1") == [first.reference]
    clock.now = START + timedelta(days=30)  # past both deadlines (the timeline not run)
    assert listed("overdue=1") == [second.reference, first.reference]
    assert client.get(f"{API}/cases?overdue=true", headers=sam).json()["cases"] == as_json(
        desk.cases.case_rows(overdue=True))
    for bad in ("state=sleeping", "overdue=maybe", "limit=ten", "offset=-1"):
        refused = client.get(f"{API}/cases?{bad}", headers=sam)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]


def test_a_case_is_the_command_lines_case_detail(desk: Desk, client: TestClient,
                                                  sam: dict[str, str]) -> None:
    case = a_case(desk)
    answer = client.get(f"{API}/cases/{case.reference}", headers=sam)
    assert answer.status_code == 200
    assert answer.json() == as_json(desk.cases.case_detail(case.reference))
    assert [n["kind"] for n in answer.json()["notices"]] == ["notice"]
    assert client.get(f"{API}/cases/{case.id}", headers=sam).json()["id"] == case.reference
    missing = client.get(f"{API}/cases/C-2026-999999", headers=sam)
    assert missing.status_code == 404 and "no case" in missing.json()["error"]


def escalated(desk: Desk, client: TestClient, headers: dict[str, str]) -> Any:
    """A case escalated through the API: a fee assessed and a restriction proposed."""
    case = a_case(desk)
    answer = client.post(f"{API}/cases/{case.reference}/actions", headers=headers,
                         json={"action": "escalate", "reason": "customer unreachable"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == f"{case.reference} escalated"
    assert answer.json()["case"] == as_json(desk.cases.case_rows(case_id=case.id)[0])
    case = case_by_id(desk, case.id)
    assert (case.state, case.proposed_action) == ("escalated", "restrict")
    return case


def test_a_specialist_cannot_approve_or_waive_but_a_supervisor_can(
        desk: Desk, client: TestClient, sam: dict[str, str], sue: dict[str, str]) -> None:
    case = escalated(desk, client, sam)
    url = f"{API}/cases/{case.reference}/actions"
    before = database_state(desk)
    for body in ({"action": "approve", "reason": "repeat offender"},
                 {"action": "approve", "approve": "terminate"},
                 {"action": "waive-fee", "reason": "goodwill"},
                 {"action": "waive-fee", "reason": "goodwill", "fee_id": 1}):
        answer = client.post(url, headers=sam, json=body)
        assert answer.status_code == 403, body
        assert "supervisor" in answer.json()["error"]
    assert database_state(desk) == before

    approved = client.post(url, headers=sue, json={"action": "approve",
                                                   "reason": "repeat offender"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["result"].startswith(f"{case.reference}: restrict approved; ")
    (restrict,) = [s for s in steps_of(desk, case.id) if s.kind == "restrict"]
    assert restrict.state == "pending" and restrict.detail["approved_by"] == "sue"
    waived = client.post(url, headers=sue, json={"action": "waive-fee", "reason": "goodwill"})
    assert waived.status_code == 200, waived.text
    assert waived.json()["case"]["fee_total"] == "0.00"
    with desk.engine.connect() as conn:
        fees = list(conn.execute(select(FeeEntry).where(FeeEntry.case_id == case.id)))
    assert [(f.state, f.waived_by, f.waive_reason) for f in fees] == [
        ("waived", "sue", "goodwill")]
    trail = [(e.actor_kind, e.actor, e.action)
             for e in events(desk, subject_type="case", subject_id=case.id)]
    assert trail[-3:] == [("specialist", "sam", "escalated"),
                          ("supervisor", "sue", "action-approved"),
                          ("supervisor", "sue", "fee-waived")]


def test_case_actions_run_under_the_tokens_user(desk: Desk, client: TestClient,
                                                sam: dict[str, str]) -> None:
    case = a_case(desk)
    url = f"{API}/cases/{case.reference}/actions"
    noted = client.post(url, headers=sam, json={"action": "note", "reason": f"called {SCRIPT}"})
    assert noted.status_code == 200, noted.text
    extended = client.post(url, headers=sam, json={"action": "extend", "business_days": 3,
                                                   "reason": "customer asked"})
    assert extended.status_code == 200, extended.text
    deadline = extended.json()["case"]["deadline_at"]
    assert deadline != desk.cases.case_rows(case_id=case.id)[0]["opened_at"]
    until = client.post(url, headers=sam, json={"action": "extend", "reason": "again",
                                                "until": "2026-12-20T15:00:00Z"})
    assert until.status_code == 200, until.text
    assert until.json()["case"]["deadline_at"] == "2026-12-20T15:00:00Z"
    resolved = client.post(url, headers=sam, json={"action": "resolve", "reason": "fixed"})
    assert resolved.json() == {"result": f"{case.reference} resolved",
                               "case": as_json(desk.cases.case_rows(case_id=case.id)[0])}
    assert case_by_id(desk, case.id).state == "resolved"
    trail = events(desk, subject_type="case", subject_id=case.id)
    assert [(e.actor_kind, e.actor, e.action) for e in trail][-4:] == [
        ("specialist", "sam", "note"), ("specialist", "sam", "deadline-extended"),
        ("specialist", "sam", "deadline-extended"), ("specialist", "sam", "resolved")]
    assert trail[-4].detail["text"] == f"called {SCRIPT}"


@pytest.mark.parametrize(("body", "says"), [
    ({}, "say which action"),
    ({"action": "paint"}, "unknown action 'paint'"),
    ({"action": "note"}, "note needs a reason"),
    ({"action": "extend", "reason": "x"}, "say until when"),
    ({"action": "extend", "reason": "x", "until": "next week"}, "ISO 8601"),
    ({"action": "extend", "reason": "x", "until": "2020-01-01T00:00:00Z"}, "in the future"),
    ({"action": "extend", "reason": "x", "business_days": "3"}, "whole number"),
    ({"action": "extend", "reason": "x", "business_days": True}, "whole number"),
    ({"action": "extend", "reason": "x", "business_days": 0}, "whole number"),
    ({"action": "extend", "reason": "x", "business_days": 3,
      "until": "2026-12-20T15:00:00Z"}, "not both"),
    ({"action": "note", "reason": ["a"]}, "reason must be a string"),
    ({"action": "note", "reason": "x", "by": "sue"}, "unknown field(s): by"),
    ({"action": "resolve", "reason": "x", "fee_id": "one"}, "fee_id must be"),
])
def test_bad_case_actions_are_refused_and_change_nothing(
        desk: Desk, client: TestClient, sam: dict[str, str], body: dict[str, Any],
        says: str) -> None:
    case = a_case(desk)
    before = database_state(desk)
    answer = client.post(f"{API}/cases/{case.reference}/actions", headers=sam, json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]
    assert database_state(desk) == before


def test_an_action_the_case_cannot_take_is_400_and_no_case_is_404(
        desk: Desk, client: TestClient, sam: dict[str, str], sue: dict[str, str]) -> None:
    case = a_case(desk)
    url = f"{API}/cases/{case.reference}/actions"
    assert client.post(url, headers=sam, json={"action": "resolve"}).status_code == 200
    again = client.post(url, headers=sam, json={"action": "resolve"})
    assert again.status_code == 400 and "already resolved" in again.json()["error"]
    nothing = client.post(url, headers=sue, json={"action": "waive-fee", "reason": "x"})
    assert nothing.status_code == 400 and "no assessed fee" in nothing.json()["error"]
    missing = client.post(f"{API}/cases/C-2026-999999/actions", headers=sam,
                          json={"action": "note", "reason": "x"})
    assert missing.status_code == 404 and "no case" in missing.json()["error"]


# ---- dashboard ---------------------------------------------------------------------------------

def test_the_dashboard_is_web_dashboards_stats(desk: Desk, client: TestClient, clock: Clock,
                                               sam: dict[str, str]) -> None:
    from abuse_desk.web.dashboard import stats

    escalated(desk, client, sam)  # a fee this month
    a_case(desk, "46.29.160.5", 2)
    in_review(desk)
    doc = client.get(f"{API}/openapi.json").json()
    answer = client.get(f"{API}/dashboard?days=7", headers=sam)
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    assert figures == as_json(stats(desk.web, 7))
    assert figures["days"] == 7 and len(figures["reports"]["days"]) == 7
    assert figures["review"]["size"] == 1  # (reports count by wall-clock arrival: not here)
    assert figures["fees"]["assessed"]["totals"] == {"USD": 10000}
    assert [e.message for e in validator(doc, "Dashboard").iter_errors(figures)] == []
    clock.now = START + timedelta(days=12)  # the notified case's deadline has passed
    later = client.get(f"{API}/dashboard?days=7", headers=sam).json()
    assert later == as_json(stats(desk.web, 7))
    assert later["deadlines"]["overdue"]["count"] == 1
    assert [e.message for e in validator(doc, "Dashboard").iter_errors(later)] == []
    assert client.get(f"{API}/dashboard", headers=sam).json()["days"] == 30
    assert client.get(f"{API}/dashboard?days=100000", headers=sam).json()["days"] == 365
    for bad in ("days=0", "days=week", "days=-7", "days=7.5"):
        refused = client.get(f"{API}/dashboard?{bad}", headers=sam)
        assert refused.status_code == 400 and "days" in refused.json()["error"], bad


# ---- the description ---------------------------------------------------------------------------

def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_openapi_document_describes_exactly_the_apps_routes(desk: Desk,
                                                               client: TestClient) -> None:
    answer = client.get(f"{API}/openapi.json")  # public: no token
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"], "type": "http",
        "scheme": "bearer"}
    assert doc["security"] == [{"bearerAuth": []}]
    served = {(path, method.lower()) for path, method, _ in api_routes(desk)}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == documented
    endpoints = {(path, method.lower()): endpoint for path, method, endpoint in api_routes(desk)}
    operation_ids = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            operation_ids.append(op["operationId"])
            endpoint = endpoints[(path, method)]
            assert op["x-required-role"] == getattr(endpoint, "required_role", None), path
            if op["x-required-role"] is None:
                assert op["security"] == [] and getattr(endpoint, "guard", None) is None
            else:
                assert "security" not in op and "401" in op["responses"], path
            assert "200" in op["responses"], path
            in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert in_path == {part[1:-1] for part in path.split("/")
                               if part.startswith("{")}, path
            if method == "post":
                assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert "413" in op["responses"]
    assert len(operation_ids) == len(set(operation_ids))
    assert {"Case", "CaseDetail", "ReviewItem", "Report", "Decision", "Error",
            "Dashboard"} <= set(doc["components"]["schemas"])
    found = refs(doc)
    assert len(found) > 20
    for ref in found:
        openapi.resolve(doc, ref)  # KeyError if it points at nothing
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert schema.get("description") or name in ("Error",), name
    assert doc["paths"][f"{API}/cases/{{ref}}/actions"]["post"]["x-supervisor-actions"] == [
        "approve", "waive-fee"]


def test_a_dangling_ref_would_be_caught() -> None:
    doc = openapi.document()
    with pytest.raises(KeyError):
        openapi.resolve(doc, "#/components/schemas/Nothing")
    assert openapi.resolve(doc, "#/components/schemas/Case")["type"] == "object"


def validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:abuse-desk-api", Resource.from_contents(doc, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"urn:abuse-desk-api#/components/schemas/{name}"},
                                registry=registry)


def test_the_answers_are_what_the_document_says(desk: Desk, client: TestClient,
                                                sam: dict[str, str],
                                                sue: dict[str, str]) -> None:
    doc = client.get(f"{API}/openapi.json").json()
    report_id = in_review(desk)
    (person_report,) = reports_of(desk, deliver(desk, person(
        "Fraud", "They took my money", "f1")))
    case = escalated(desk, client, sam)
    checked = [
        ("ReviewPage", client.get(f"{API}/review", headers=sam)),
        ("Report", client.get(f"{API}/reports/{report_id}", headers=sam)),
        ("Report", client.get(f"{API}/reports/{person_report.id}", headers=sam)),
        ("CaseList", client.get(f"{API}/cases", headers=sam)),
        ("CaseDetail", client.get(f"{API}/cases/{case.reference}", headers=sam)),
        ("DecisionResult", client.post(f"{API}/reports/{report_id}/decision", headers=sam,
                                       json={"customer": "C-3"})),
        ("DecisionResult", client.post(f"{API}/reports/{person_report.id}/decision",
                                       headers=sam, json={"type": "not-abuse"})),
        ("CaseActionResult", client.post(f"{API}/cases/{case.reference}/actions", headers=sue,
                                         json={"action": "approve", "reason": "x"})),
        ("CaseDetail", client.get(f"{API}/cases/{case.reference}", headers=sam)),
        ("Error", client.get(f"{API}/reports/999", headers=sam)),
        ("Error", client.get(f"{API}/cases", headers={})),
        ("Error", client.post(f"{API}/cases/{case.reference}/actions", headers=sam,
                              json={"action": "waive-fee", "reason": "x"})),
    ]
    for name, answer in checked:
        assert answer.status_code < 500, (name, answer.text)
        errors = [e.message for e in validator(doc, name).iter_errors(answer.json())]
        assert errors == [], (name, errors)
    # And the schemas do say something: a wrong answer does not pass.
    assert list(validator(doc, "Case").iter_errors({"id": 1}))
    assert list(validator(doc, "CaseDetail").iter_errors(
        {**checked[3][1].json()["cases"][0], "steps": "none"}))
    assert not validator(doc, "Decision").is_valid({"type": "spam", "by": "x"})
    assert validator(doc, "Decision").is_valid({"type": "not-abuse"})
    assert validator(doc, "CaseAction").is_valid({"action": "extend", "business_days": 2,
                                                  "reason": "asked"})


def test_the_docs_page_lists_every_route_of_the_document(desk: Desk,
                                                         client: TestClient) -> None:
    doc = client.get(f"{API}/openapi.json").json()
    page = client.get(f"{API}/docs")  # public
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert f"<code>{method.upper()} {path}</code>" in html, path
            assert f'id="{op["operationId"]}"' in html
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    # No script but the desk's own file, no inline style, nothing from elsewhere.
    assert html.count("<script") == 1 and '<script src="/static/desk.js"' in html
    assert "style=" not in html and "<style" not in html
    assert 'src="http' not in html and 'href="http' not in html
    assert "&#34;error&#34;" in html  # the description's JSON example, as text


def test_the_docs_page_shows_the_desk_navigation_to_a_signed_in_user(desk: Desk) -> None:
    sam = signed_in(desk, "sam")
    html = sam.get(f"{API}/docs").text
    assert 'href="/review"' in html and ">sam</a>" in html
    anonymous = TestClient(create_app(desk.web)).get(f"{API}/docs").text
    assert ">sam</a>" not in anonymous and 'href="/review" accesskey' not in anonymous
