"""What every page and API route of the specialists' desk shares.

A page is a plain function ``fn(ctx) -> Response`` wrapped by :func:`Web.page`, which
- refuses anonymous requests (pages: a redirect to the login page; API: 401) and wrong roles
  (403), before the function runs;
- reads a POST's form (bounded in size and in fields) and refuses it without the session's
  CSRF token (403);
- runs the function in a worker thread (the database calls are blocking);
- sets the security headers: a Content-Security-Policy that allows no inline script and no
  foreign origin, ``nosniff``, ``no-store``, no framing.

Templates are Jinja2 with autoescape on: every value from a report or a customer is text.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..casework.queries import CaseQueries
from ..casework.review import Review
from ..core.clock import Clock
from ..core.config import Config
from ..core.db import as_utc
from ..workflow import cases as wf_cases
from ..workflow.timeline import Workflow
from . import auth


@dataclass(frozen=True)
class WebDesk:
    """What the web desk works with, built once by the composition root (app/wiring.py): the
    database and the clock, the timeline's workflow, the review queue's decisions, the case
    views."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    workflow: Workflow
    review: Review
    cases: CaseQueries

COOKIE = "adk_session"
PRE_COOKIE = "adk_pre"  # double-submit token of the login form, before there is a session
MAX_FORM = 256 * 1024
MAX_FIELDS = 200
TEMPLATES = Path(__file__).parent / "templates"

# JSON answers: never cached, never sniffed into something a browser would run, never framed.
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
               "X-Frame-Options": "DENY"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Endpoint = Callable[[Request], Any]


class SecurityHeaders:
    """ASGI middleware: every answer of the app, whichever route (or Starlette itself: a 404,
    a 405, a redirect, a static file) made it, may not be framed by another site
    (``frame-ancestors 'none'`` added to its Content-Security-Policy, or as one, and
    ``X-Frame-Options: DENY``) and is not sniffed (``nosniff``). A route's own policy is kept
    otherwise (the self-service page's inline style, ``/status``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_frame_rules(list(message.get("headers", [])))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_frame_rules(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """*headers* (raw ASGI pairs) with the no-framing and no-sniffing rules in them."""
    names = {name.lower() for name, _ in headers}
    out = []
    for name, value in headers:
        if name.lower() == b"content-security-policy" and b"frame-ancestors" not in value:
            value = value.rstrip(b"; ") + b"; frame-ancestors 'none'"
        out.append((name, value))
    if b"content-security-policy" not in names:
        out.append((b"content-security-policy", b"frame-ancestors 'none'"))
    if b"x-frame-options" not in names:
        out.append((b"x-frame-options", b"DENY"))
    if b"x-content-type-options" not in names:
        out.append((b"x-content-type-options", b"nosniff"))
    return out


class FormError(ValueError):
    """A form that could not be read (too large, too many fields)."""


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body as {name: first value}; bounded in bytes and in fields."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise FormError(f"the form is larger than {MAX_FORM // 1024} KiB")
    try:
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise FormError("the form has too many fields") from exc
    return {k: v[0] for k, v in parsed.items()}


def safe_next(value: str | None) -> str:
    """A local path to go back to after login; anything else goes to the review queue."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value \
            and not any(c in value for c in "\r\n"):
        return value
    return "/review"


@dataclass
class Ctx:
    """One request to a page: who asks, what they sent, and the desk."""

    web: Web
    request: Request
    user: auth.WebUser
    session: auth.SessionInfo | None
    form: dict[str, str] = field(default_factory=dict)

    @property
    def desk(self) -> WebDesk:
        return self.web.desk

    @property
    def actor(self) -> wf_cases.Actor:
        """The audit trail's name for this user."""
        return wf_cases.Actor(self.user.role, self.user.name)

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return self.web.render(template, status=status, ctx=self, user=self.user,
                               csrf=self.csrf, flash=self.session.flash if self.session else None,
                               **values)

    def redirect(self, url: str, flash: str | None = None) -> RedirectResponse:
        """After a POST: see the result with a GET (303), with *flash* shown once there."""
        if flash and self.session is not None:
            auth.set_flash(self.desk.engine, self.session.id, flash)
        return RedirectResponse(url, status_code=303)

    def error(self, status: int, message: str) -> HTMLResponse:
        return self.render("error.j2", status=status, message=message)


class Web:
    """The desk's web side: templates, login throttle, and the page/API wrappers."""

    def __init__(self, desk: WebDesk) -> None:
        self.desk = desk
        cfg = desk.config.web
        self.throttle = auth.LoginThrottle(
            cfg.login_attempts, cfg.login_window_minutes * 60,
            per_address=cfg.login_attempts_per_address,
            per_account=cfg.login_attempts_per_account)
        self.zone = ZoneInfo(desk.config.workflow.time_zone)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(when=self.when, ago=self.ago, money=money, tojson_pretty=pretty)
        self.env.globals.update(zone_name=desk.config.workflow.time_zone, nav="")

    # ---- rendering ----
    def when(self, value: datetime | str | None, seconds: bool = False) -> str:
        """A time in the desk's zone, as specialists read it: ``2026-12-03 10:00 EST``."""
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        else:
            parsed = value
        local = as_utc(parsed).astimezone(self.zone)  # type: ignore[union-attr]
        return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")

    def ago(self, value: datetime | str | None) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        seconds = (self.desk.clock() - as_utc(value)).total_seconds()  # type: ignore[operator]
        future = seconds < 0
        seconds = abs(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds >= size:
                text = f"{int(seconds // size)} {unit}"
                break
        else:
            text = "now"
            return text
        return f"in {text}" if future else f"{text} ago"

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = self.env.get_template(template).render(**values)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    # ---- wrappers ----
    def page(self, role: str = "specialist") -> Callable[[Callable[[Ctx], Response]], Endpoint]:
        """Wrap ``fn(ctx) -> Response`` as a signed-in page for *role* and above."""
        def wrap(fn: Callable[[Ctx], Response]) -> Endpoint:
            @functools.wraps(fn)
            async def endpoint(request: Request) -> Response:
                cfg = self.desk.config.web
                session = await run_in_threadpool(
                    auth.load_session, self.desk.engine, request.cookies.get(COOKIE),
                    self.desk.clock(), cfg.session_hours, cfg.session_max_hours)
                if session is None:
                    if request.method == "GET":
                        target = request.url.path + (f"?{request.url.query}"
                                                     if request.url.query else "")
                        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                    return self.plain(401, "You are not signed in (or your session ended): "
                                           "sign in again at /login.")
                ctx = Ctx(self, request, session.user, session)
                if not session.user.can(role):
                    return ctx.error(403, f"This needs the {role} role; you are "
                                          f"{session.user.role}. Ask a supervisor.")
                if request.method == "POST":
                    try:
                        ctx.form = await read_form(request)
                    except FormError as exc:
                        return ctx.error(400, f"{exc}. Go back and send less.")
                    given = ctx.form.get("csrf") or request.headers.get("x-csrf-token")
                    if not auth.csrf_ok(session.csrf, given):
                        return ctx.error(403, "This form is out of date or was not sent from "
                                              "the desk (CSRF token missing or wrong). Reload "
                                              "the page and try again.")
                return await run_in_threadpool(fn, ctx)
            endpoint.required_role = role  # type: ignore[attr-defined]  # read by the tests
            endpoint.guard = "page"  # type: ignore[attr-defined]
            return endpoint
        return wrap

    def api(self, role: str = "specialist") -> Callable[[Callable[[Ctx], Any]], Endpoint]:
        """Wrap ``fn(ctx) -> JSON-able`` as an API route for a bearer token of *role*."""
        def wrap(fn: Callable[[Ctx], Any]) -> Endpoint:
            @functools.wraps(fn)
            async def endpoint(request: Request) -> Response:
                header = request.headers.get("authorization", "")
                scheme, _, token = header.partition(" ")
                user = None
                if scheme.lower() == "bearer" and token.strip():
                    user = await run_in_threadpool(auth.token_user, self.desk.engine,
                                                   token.strip(), self.desk.clock())
                if user is None:
                    return api_error(401, "send an API token: Authorization: Bearer adk_... "
                                          "(make one with `abuse-desk users token NAME`)",
                                     {"WWW-Authenticate": 'Bearer realm="abuse-desk"'})
                if not user.can(role):
                    return api_error(403, f"this needs the {role} role; the token's user is "
                                          f"{user.role}")
                ctx = Ctx(self, request, user, None)
                try:
                    if request.method in ("POST", "PUT", "PATCH"):
                        ctx.form = await read_json(request)
                    result = await run_in_threadpool(fn, ctx)
                except ApiError as exc:
                    return api_error(exc.status, str(exc))
                if isinstance(result, Response):
                    return result
                return JSONResponse(result, headers=API_HEADERS)
            endpoint.required_role = role  # type: ignore[attr-defined]  # read by the tests
            endpoint.guard = "api"  # type: ignore[attr-defined]
            return endpoint
        return wrap

    def plain(self, status: int, message: str) -> Response:
        return self.render("error.j2", status=status, message=message, user=None, csrf="",
                           flash=None, ctx=None)


class ApiError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status,
                        headers={**API_HEADERS, **(headers or {})})


async def read_json(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise ApiError(413, f"the body is larger than {MAX_FORM // 1024} KiB")
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


def money(cents: int | None, currency: str = "USD") -> str:
    if cents is None:
        return ""
    return f"{cents / 100:,.2f} {currency}"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def bound(handler: Callable[..., Any], *args: Any, name: str | None = None,
          **kwargs: Any) -> Callable[..., Any]:
    """*handler* with what it works with given (``bound(login_form, web)``), as a route's
    endpoint or a page's function for :meth:`Web.page`: a ``functools.partial``, which
    Starlette takes as an endpoint function (it looks through the partial: an ``async def``
    handler runs in the event loop). Named as *handler*, or *name*, so the route keeps the
    handler's name."""
    endpoint = functools.update_wrapper(functools.partial(handler, *args, **kwargs), handler)
    if name is not None:
        endpoint.__name__ = endpoint.__qualname__ = name
    return endpoint


def new_pre_token() -> str:
    return secrets.token_urlsafe(24)
