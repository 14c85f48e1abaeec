"""The web side (Starlette): the specialists' desk (``web.review``, ``web.cases``,
``web.dashboard``, the JSON API in ``web.api``, sign-in in ``web.login``), the customers'
self-service page, and the public ``/status`` page, ``/healthz`` for load balancers and
``/metrics`` (for ``metrics.allow`` and ``metrics.token`` only). Every desk page needs a
signed-in user (``web.base``). Every answer, whatever route made it, is sent with
``frame-ancestors 'none'``, ``X-Frame-Options: DENY`` and ``nosniff``
(:class:`web.base.SecurityHeaders`).

:func:`create_metrics_app` is ``/metrics`` alone, for ``metrics.port`` in processes without
the web part."""

from __future__ import annotations

import html
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..core import __version__
from ..core.config import MetricsConfig
from ..core.db import as_utc
from ..core.metrics import BacklogCollector
from ..core.models import Message, MessageState
from .base import WebDesk


def backlog(desk: WebDesk) -> tuple[dict[str, int], float]:
    """Messages by state, and the age in seconds of the oldest one not yet processed."""
    with desk.engine.connect() as conn:
        counts = {state: n for state, n in conn.execute(
            select(Message.state, func.count()).group_by(Message.state))}
        oldest: datetime | None = conn.execute(
            select(func.min(Message.received_at)).where(
                Message.state == MessageState.RECEIVED)).scalar()
    oldest = as_utc(oldest)
    lag = max(0.0, (desk.clock() - oldest).total_seconds()) if oldest else 0.0
    for state in MessageState:
        counts.setdefault(state.value, 0)
    return counts, lag


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>abuse-desk</title>
<style>body{{font:15px/1.4 system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}
td,th{{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}}
.ok{{color:#070}}.bad{{color:#b00}}</style></head>
<body><h1>abuse-desk</h1>
<p class="{cls}">Database: {db}</p>
<table><tr><th>Messages</th><th>count</th></tr>{rows}</table>
<p>Oldest message waiting for processing: {lag:.0f} s</p>
<p><a href="/review">the desk</a> · <a href="/metrics">/metrics</a> ·
<a href="/healthz">/healthz</a> · version {version}</p>
</body></html>"""


def metrics_allowed(request: Request, cfg: MetricsConfig) -> bool:
    """May this request read ``/metrics``: from an address in ``metrics.allow`` (the client
    uvicorn believes: behind a proxy on 127.0.0.1, the one it names in X-Forwarded-For), or
    with ``Authorization: Bearer <metrics.token>``."""
    if cfg.token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
                given.strip().encode("utf-8", "replace"), cfg.token.encode()):
            return True
    try:
        client = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(client in ipaddress.ip_network(net, strict=False) for net in cfg.allow)


def metrics_endpoint(desk: WebDesk, backlog_too: bool = True) -> Callable[[Request],
                                                                       Awaitable[Response]]:
    """``/metrics``: this process's counters and (*backlog_too*) the desk's backlog, for the
    clients :func:`metrics_allowed` lets in; 403 for anyone else."""
    registry = CollectorRegistry()  # not auto_describe: that would query the database here
    registry.register(BacklogCollector(lambda: backlog(desk)))
    cfg = desk.config.metrics

    async def endpoint(request: Request) -> Response:
        if not metrics_allowed(request, cfg):
            return PlainTextResponse(
                "/metrics answers only to the addresses in metrics.allow, or with "
                "Authorization: Bearer <metrics.token>.\n", status_code=403,
                headers={"Cache-Control": "no-store"})
        body = generate_latest(REGISTRY)
        if backlog_too:
            try:
                body += await run_in_threadpool(generate_latest, registry)
            except Exception:  # database away: still serve this process's counters
                pass
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return endpoint


def create_metrics_app(desk: WebDesk) -> Starlette:
    """``/metrics`` alone (``metrics.port``), under the same rule as on the web desk."""
    from .base import SecurityHeaders

    return Starlette(middleware=[Middleware(SecurityHeaders)], routes=[
        Route("/metrics", metrics_endpoint(desk), methods=["GET"])])


def create_app(desk: WebDesk) -> Starlette:

    async def health_page(request: Request) -> Response:
        try:
            counts, lag = await run_in_threadpool(backlog, desk)
        except Exception as exc:
            return HTMLResponse(PAGE.format(
                cls="bad", db=html.escape(f"unreachable ({exc.__class__.__name__})"),
                rows="", lag=0, version=__version__), status_code=503)
        rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{n}</td></tr>"
                       for s, n in sorted(counts.items()))
        return HTMLResponse(PAGE.format(cls="ok", db="reachable", rows=rows, lag=lag,
                                        version=__version__))

    async def healthz(request: Request) -> Response:
        try:
            counts, lag = await run_in_threadpool(backlog, desk)
        except Exception as exc:
            return JSONResponse({"ok": False, "database": exc.__class__.__name__},
                                status_code=503)
        return JSONResponse({"ok": True, "messages": counts, "queue_lag_seconds": lag})

    from starlette.responses import RedirectResponse
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from . import api, cases, dashboard, login, review
    from .base import SecurityHeaders, Web, api_error
    from .selfservice import routes as self_service_routes

    web = Web(desk)

    async def home(request: Request) -> Response:
        return RedirectResponse("/review", status_code=303)

    async def server_error(request: Request, exc: Exception) -> Response:
        # The traceback goes to the log (the server logs it after this answer); the person
        # gets the desk's own page, with its security headers, and no internals.
        text = ("The desk failed on its side; the error is in its log. Nothing was changed "
                "unless a page says so: try again, and if it keeps failing, tell whoever runs "
                "the desk.")
        if request.url.path.startswith("/api/"):
            return api_error(500, text)
        return web.plain(500, text)

    return Starlette(exception_handlers={Exception: server_error},
                     middleware=[Middleware(SecurityHeaders)], routes=[
        Route("/", home),
        Route("/status", health_page),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint(desk), methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")),
              name="static"),
        *login.routes(web),
        *review.routes(web),
        *cases.routes(web),
        *dashboard.routes(web),
        *api.routes(web),
        *self_service_routes(desk),
    ])
