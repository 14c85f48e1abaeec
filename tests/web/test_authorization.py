"""Every route of the web desk, found from the app itself (so a new route is covered the day it
is added): anonymous requests refused, lower roles refused, forms refused without the CSRF
token; only a short list of routes is public, each for a stated reason."""

from __future__ import annotations

import re
from typing import Any

from abuse_desk.app.wiring import Desk
from abuse_desk.web import auth
from abuse_desk.web.app import create_app
from starlette.routing import Mount, Route

from tests.web.web_support import client_for, form_token, signed_in

# Public on purpose: the way in, health for load balancers, the customers' signed link, the
# API's own description, static files.
PUBLIC = {
    "/": "redirects to the review queue, which asks for a login",
    "/login": "the way in",
    "/status": "counts of messages by state, for operators",
    "/healthz": "for load balancers",
    "/metrics": "for Prometheus",
    "/self-service/{token}": "the signed, expiring token is the credential",
    "/api/v1/openapi.json": "the API's description (no data)",
    "/api/v1/docs": "the API's description, as a page (no data)",
}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
SAMPLES = {"id": "1", "ref": "C-2026-000001", "action": "resolve", "fee_id": "1",
           "token": "x", "message_id": "1", "report_id": "1"}


def fill(path: str) -> str:
    return PARAM.sub(lambda m: SAMPLES.get(m.group(1), "1"), path)


def guarded_routes(desk: Desk) -> list[tuple[str, str, str, str]]:
    """(path, method, guard, role) for every route that is not public."""
    found = []
    for route in create_app(desk.web).routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            if route.path in PUBLIC:
                continue
            guard = getattr(route.endpoint, "guard", None)
            role = getattr(route.endpoint, "required_role", None)
            assert guard in ("page", "api") and role in auth.ROLES, (
                f"{method} {route.path} is neither public (PUBLIC) nor wrapped by web.page/"
                "abuse_desk.web.api: it would be open to anyone")
            found.append((route.path, method, guard, role))
    return found


def test_the_desk_has_guarded_routes_of_each_kind(desk: Desk) -> None:
    routes = guarded_routes(desk)
    kinds = {(guard, method) for _, method, guard, _ in routes}
    assert {("page", "GET"), ("page", "POST"), ("api", "GET"), ("api", "POST")} <= kinds
    assert any(role == "supervisor" for *_, role in routes)


def test_anonymous_requests_are_refused_everywhere(desk: Desk) -> None:
    client = client_for(desk)
    for path, method, guard, _ in guarded_routes(desk):
        answer = client.request(method, fill(path), data={} if method == "POST" else None)
        if guard == "api":
            assert answer.status_code == 401, (method, path)
            assert answer.headers["www-authenticate"].startswith("Bearer")
        elif method == "GET":
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/login?next=")
        else:
            assert answer.status_code == 401, (method, path)


def test_a_bad_session_cookie_is_anonymous(desk: Desk) -> None:
    client = client_for(desk)
    client.cookies.set("adk_session", "forged-session-token")
    for path, method, guard, _ in guarded_routes(desk):
        if guard == "page" and method == "GET":
            assert client.get(fill(path)).status_code == 303, path


def test_specialists_are_refused_supervisor_routes(desk: Desk) -> None:
    sam = signed_in(desk, "sam")
    csrf = form_token(sam, "/account")
    token = auth.add_token(desk.engine, "sam", "t", desk.clock())
    supervisor_only = [r for r in guarded_routes(desk) if r[3] == "supervisor"]
    for path, method, guard, _ in supervisor_only:
        if guard == "page":
            answer = sam.request(method, fill(path),
                                 data={"csrf": csrf} if method == "POST" else None)
        else:
            answer = client_for(desk).request(
                method, fill(path), headers={"Authorization": f"Bearer {token}"},
                json={} if method == "POST" else None)
        assert answer.status_code == 403, (method, path, answer.status_code)


def test_forms_without_the_csrf_token_are_refused(desk: Desk) -> None:
    sue = signed_in(desk, "sue")  # the supervisor: no route refuses her for her role
    for path, method, guard, _ in guarded_routes(desk):
        if guard == "page" and method == "POST":
            for data in ({}, {"csrf": "not-the-token"}):
                answer = sue.post(fill(path), data=data)
                assert answer.status_code == 403, (path, data)
                assert "CSRF" in answer.text


def test_csrf_token_of_another_session_is_refused(desk: Desk) -> None:
    other = form_token(signed_in(desk, "sam"), "/account")
    sue = signed_in(desk, "sue")
    answer = sue.post("/account/password", data={"csrf": other, "current": "x", "new": "y",
                                                 "again": "y"})
    assert answer.status_code == 403


def test_oversized_and_overfull_forms_are_refused(desk: Desk) -> None:
    sue = signed_in(desk, "sue")
    csrf = form_token(sue, "/account")
    big = sue.post("/account/password", content=b"csrf=" + csrf.encode() + b"&a=" +
                   b"x" * (300 * 1024),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 400
    many = "&".join(f"f{i}=1" for i in range(500))
    overfull = sue.post("/account/password", content=f"csrf={csrf}&{many}".encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert overfull.status_code == 400


def test_public_routes_show_no_case_or_report_data(desk: Desk) -> None:
    client = client_for(desk)
    for path in ("/status", "/healthz"):
        text: Any = client.get(path).text
        assert "C-1" not in text and "Alpha Hosting" not in text
