"""Signing in and out of the specialists' desk.

The login form carries a token that must match a short-lived cookie (double submit), so no
other site can sign a browser in under its own account. A successful login always makes a new
session (no fixation) and goes back to the page that asked for it (a local path only).
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from . import auth
from .base import (
    COOKIE,
    PRE_COOKIE,
    SECURITY_HEADERS,
    Ctx,
    FormError,
    Web,
    bound,
    new_pre_token,
    read_form,
    safe_next,
)

log = logging.getLogger("abuse_desk.web")


def _login_page(web: Web, next_url: str, message: str | None = None, status: int = 200,
                name: str = "") -> Response:
    pre = new_pre_token()
    response = web.render("login.j2", status=status, next_url=next_url, message=message,
                          name=name, csrf=pre, user=None, flash=None, ctx=None)
    response.set_cookie(PRE_COOKIE, pre, max_age=3600, httponly=True, samesite="strict",
                        secure=web.desk.config.web.cookie_secure, path="/login")
    return response


def throttled(web: Web, refused: str) -> str:
    """What a refused login says: what to wait for, and who can help."""
    minutes = f"{web.desk.config.web.login_window_minutes:g}"
    if refused == auth.ADDRESS:
        return (f"Too many failed logins from your address: wait {minutes} minutes and try "
                "again.")
    return (f"Too many failed logins for this name: wait {minutes} minutes and try again, "
            "or ask a supervisor to unlock your account.")


async def login_form(web: Web, request: Request) -> Response:
    return _login_page(web, safe_next(request.query_params.get("next")))


async def login(web: Web, request: Request) -> Response:
    desk = web.desk
    try:
        form = await read_form(request)
    except FormError as exc:
        return _login_page(web, "/review", str(exc), 400)
    next_url = safe_next(form.get("next"))
    name = (form.get("name") or "").strip().lower()[:64]
    if not auth.csrf_ok(request.cookies.get(PRE_COOKIE) or "", form.get("csrf")):
        return _login_page(web, next_url, "The login form was out of date: sign in again.",
                           403, name)
    peer = request.client.host if request.client else ""
    keys = auth.LoginKeys.of(name, peer)
    shown, unlocks = await run_in_threadpool(auth.login_state, desk.engine, name)
    refused = web.throttle.attempt(keys, unlocks)
    if refused is not None:
        log.warning("login refused for %s from %s: too many failures (%s)",
                    repr(shown) if shown else "an unknown name", peer, refused)
        return _login_page(web, next_url, throttled(web, refused), 429, name)
    user = await run_in_threadpool(auth.authenticate, desk.engine, name,
                                   form.get("password") or "")
    if user is None:  # counted as a failure by attempt()
        log.info("failed login for %s from %s",
                 repr(shown) if shown else "an unknown name", peer)
        return _login_page(web, next_url, "Wrong name or password.", 401, name)
    web.throttle.succeeded(keys)
    cfg = desk.config.web
    old = request.cookies.get(COOKIE)
    if old:
        previous = await run_in_threadpool(auth.load_session, desk.engine, old,
                                           desk.clock(), cfg.session_hours,
                                           cfg.session_max_hours)
        if previous is not None:
            await run_in_threadpool(auth.end_session, desk.engine, previous.id)
    token = await run_in_threadpool(auth.start_session, desk.engine, user, desk.clock(),
                                    cfg.session_hours, peer, cfg.session_max_hours)
    log.info("%s signed in from %s", user.name, peer)
    response = RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=desk.config.web.cookie_secure, path="/")
    response.delete_cookie(PRE_COOKIE, path="/login")
    return response


def logout(ctx: Ctx) -> Response:
    assert ctx.session is not None
    auth.end_session(ctx.desk.engine, ctx.session.id)
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


def account(ctx: Ctx) -> Response:
    return ctx.render("account.j2", message=None)


def change_password(ctx: Ctx) -> Response:
    desk, web = ctx.desk, ctx.web
    current, new = ctx.form.get("current") or "", ctx.form.get("new") or ""
    if new != (ctx.form.get("again") or ""):
        return ctx.render("account.j2", status=400, message="The two new passwords differ.")
    # The login's throttle: a session left open must not be a way to guess the password.
    peer = ctx.request.client.host if ctx.request.client else ""
    keys = auth.LoginKeys.of(ctx.user.name, peer)
    _, unlocks = auth.login_state(desk.engine, ctx.user.name)
    if web.throttle.attempt(keys, unlocks) is not None:
        return ctx.render("account.j2", status=429, message=(
            "Too many wrong passwords: wait "
            f"{desk.config.web.login_window_minutes:g} minutes and try again."))
    if auth.authenticate(desk.engine, ctx.user.name, current) is None:
        log.info("%s gave a wrong current password to change it", ctx.user.name)
        return ctx.render("account.j2", status=400,
                          message="Your current password is not right.")
    web.throttle.succeeded(keys)
    try:
        revoked = auth.set_password(desk.engine, ctx.user.name, new, desk.clock())
    except auth.AuthError as exc:
        return ctx.render("account.j2", status=400, message=f"{str(exc).capitalize()}.")
    log.info("%s changed their password; %d API token(s) revoked", ctx.user.name, revoked)
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


def unlock(ctx: Ctx) -> Response:
    desk = ctx.desk
    name = (ctx.form.get("name") or "").strip()
    try:
        auth.unlock_logins(desk.engine, name, desk.clock(), ctx.user.role, ctx.user.name)
    except auth.AuthError as exc:
        return ctx.render("account.j2", status=404 if isinstance(exc, auth.NoSuchUser) else 400,
                          message=None, unlock_message=f"{str(exc).capitalize()}.")
    log.info("%s unlocked the logins of %s", ctx.user.name, auth.check_name(name))
    return ctx.redirect("/account", f"{auth.check_name(name)} can sign in again.")


def routes(web: Web) -> list[Route]:
    return [Route("/account", web.page()(account), methods=["GET"]),
            Route("/account/password", web.page()(change_password), methods=["POST"]),
            Route("/account/unlock", web.page("supervisor")(unlock), methods=["POST"]),
            Route("/login", bound(login_form, web), methods=["GET"]),
            Route("/login", bound(login, web), methods=["POST"]),
            Route("/logout", web.page()(logout), methods=["POST"])]
