"""Helpers for the web desk's tests: a desk with customers and accounts, a signed-in test client,
and the CSRF token of a page."""

from __future__ import annotations

import re

from abuse_desk.app.wiring import Desk
from abuse_desk.web import auth
from abuse_desk.web.app import create_app
from starlette.testclient import TestClient

PASSWORD = "correct horse battery staple"
USERS = {"sam": "specialist", "sue": "supervisor"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def with_staff(desk: Desk) -> Desk:
    """*desk* (a workflow desk: customers C-1..C-3, the clock at ``START``) with the users
    ``sam`` (specialist) and ``sue`` (supervisor) added, both with password ``PASSWORD``."""
    for name, role in USERS.items():
        auth.add_user(desk.engine, name, role, PASSWORD, desk.clock())
    return desk


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def client_for(desk: Desk) -> TestClient:
    # base_url on http://testserver: cookies are not Secure by default (web.cookie_secure).
    return TestClient(create_app(desk.web), follow_redirects=False)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    """Sign *client* in through the login form, as a browser does."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    answer = client.post("/login", data={"name": name, "password": password,
                                         "csrf": csrf_of(page.text), "next": "/review"})
    assert answer.status_code == 303, answer.text
    return client


def signed_in(desk: Desk, name: str) -> TestClient:
    return sign_in(client_for(desk), name)


def form_token(client: TestClient, path: str) -> str:
    """The CSRF token on the page at *path* (the session's token)."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code, page.text[:500])
    return csrf_of(page.text)
