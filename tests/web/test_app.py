"""The web side through Starlette's test client: the health page, /healthz and /metrics."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from abuse_desk.app.wiring import Desk
from abuse_desk.core import metrics
from abuse_desk.core.config import DatabaseConfig
from abuse_desk.core.db import make_engine
from abuse_desk.core.models import MessageState
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from abuse_desk.web.app import create_app
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine
from starlette.testclient import TestClient

from tests.support import NOW, message

# Prometheus on the desk's host: an address metrics.allow lets in by default.
LOCAL = ("127.0.0.1", 50000)


@pytest.fixture
def desk(fixed_desk: Desk) -> Desk:
    return fixed_desk


def store(desk: Desk, state: MessageState, age_s: float, subject: str = "report") -> int:
    row = message_row(message(subject), Envelope(
        mail_from="reporter@example.org", rcpt_tos=["abuse@localhost"],
        received_at=NOW - timedelta(seconds=age_s)))
    row["state"] = state.value
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [row])
    return message_id


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def broken_engine(tmp_path: Path) -> Engine:
    """An engine on a SQLite file in a directory that does not exist (nothing creates it)."""
    return create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'desk.db'}")


@pytest.fixture
def backlog_desk(desk: Desk) -> Desk:
    """3 received (oldest 90 s), 2 processed (older still), 1 review."""
    store(desk, MessageState.RECEIVED, 90)
    store(desk, MessageState.RECEIVED, 30)
    store(desk, MessageState.RECEIVED, 5)
    store(desk, MessageState.PROCESSED, 1000)
    store(desk, MessageState.PROCESSED, 500)
    store(desk, MessageState.REVIEW, 2000)
    return desk


# --- /healthz ---------------------------------------------------------------------------------


def test_healthz_empty_database(desk: Desk) -> None:
    response = TestClient(create_app(desk.web)).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True, "messages": {"received": 0, "processed": 0, "review": 0},
        "queue_lag_seconds": 0.0}


def test_healthz_counts_per_state_and_lag(backlog_desk: Desk) -> None:
    response = TestClient(create_app(backlog_desk.web)).get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["messages"] == {"received": 3, "processed": 2, "review": 1}
    # the oldest *received* one; the older processed and review messages do not count
    assert body["queue_lag_seconds"] == 90.0


def test_healthz_follows_the_clock(backlog_desk: Desk) -> None:
    later = dataclasses.replace(backlog_desk.web, clock=lambda: NOW + timedelta(seconds=10))
    body = TestClient(create_app(later)).get("/healthz").json()
    assert body["queue_lag_seconds"] == 100.0


def test_healthz_no_lag_without_received_messages(desk: Desk) -> None:
    store(desk, MessageState.PROCESSED, 3600)
    store(desk, MessageState.REVIEW, 7200)
    body = TestClient(create_app(desk.web)).get("/healthz").json()
    assert body["messages"] == {"received": 0, "processed": 1, "review": 1}
    assert body["queue_lag_seconds"] == 0.0


def test_healthz_lag_never_negative(desk: Desk) -> None:
    store(desk, MessageState.RECEIVED, -30)  # received "in the future" (clock skew)
    assert TestClient(create_app(desk.web)).get("/healthz").json()["queue_lag_seconds"] == 0.0


def test_healthz_sees_new_messages_without_restart(desk: Desk) -> None:
    client = TestClient(create_app(desk.web))
    assert client.get("/healthz").json()["messages"]["received"] == 0
    store(desk, MessageState.RECEIVED, 12)
    body = client.get("/healthz").json()
    assert body["messages"]["received"] == 1
    assert body["queue_lag_seconds"] == 12.0


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_expose_backlog_and_process_counters(backlog_desk: Desk) -> None:
    response = TestClient(create_app(backlog_desk.web), client=LOCAL).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert found[("abuse_desk_messages", (("state", "received"),))] == 3
    assert found[("abuse_desk_messages", (("state", "processed"),))] == 2
    assert found[("abuse_desk_messages", (("state", "review"),))] == 1
    assert found[("abuse_desk_queue_lag_seconds", ())] == 90.0
    assert ("abuse_desk_smtp_accepted_total", ()) in found
    assert ("abuse_desk_enqueue_failures_total", ()) in found


def test_metrics_counters_are_live(desk: Desk) -> None:
    client = TestClient(create_app(desk.web), client=LOCAL)
    before = samples(client.get("/metrics").text)[("abuse_desk_smtp_accepted_total", ())]
    metrics.SMTP_ACCEPTED.inc()
    metrics.SMTP_ACCEPTED.inc()
    after = samples(client.get("/metrics").text)[("abuse_desk_smtp_accepted_total", ())]
    assert after == before + 2


def test_metrics_backlog_follows_the_database(desk: Desk) -> None:
    client = TestClient(create_app(desk.web), client=LOCAL)
    assert samples(client.get("/metrics").text)[
        ("abuse_desk_messages", (("state", "received"),))] == 0
    store(desk, MessageState.RECEIVED, 42)
    found = samples(client.get("/metrics").text)
    assert found[("abuse_desk_messages", (("state", "received"),))] == 1
    assert found[("abuse_desk_queue_lag_seconds", ())] == 42.0


# --- the health page --------------------------------------------------------------------------


def test_health_page_is_html_with_counts(backlog_desk: Desk) -> None:
    response = TestClient(create_app(backlog_desk.web)).get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!doctype html>")
    assert "Database: reachable" in page
    assert "<tr><td>received</td><td>3</td></tr>" in page
    assert "<tr><td>processed</td><td>2</td></tr>" in page
    assert "<tr><td>review</td><td>1</td></tr>" in page
    assert "90 s" in page


def test_unknown_path_is_404(desk: Desk) -> None:
    assert TestClient(create_app(desk.web)).get("/nope").status_code == 404


# --- the database unreachable -----------------------------------------------------------------


def check_unreachable(client: TestClient) -> None:
    healthz = client.get("/healthz")
    assert healthz.status_code == 503
    assert healthz.json() == {"ok": False, "database": "OperationalError"}

    page = client.get("/status")
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "unreachable (OperationalError)" in page.text

    response = client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert ("abuse_desk_smtp_accepted_total", ()) in found
    assert not any(name == "abuse_desk_messages" for name, _ in found)


def lose_database(desk: Desk, away: Engine) -> None:
    """The running web desk's database goes away: its engine now reaches nothing (the web
    desk's record is frozen; this is the test's doing, as a crash of the server would be)."""
    object.__setattr__(desk.web, "engine", away)


def test_database_lost_after_start(backlog_desk: Desk, tmp_path: Path) -> None:
    client = TestClient(create_app(backlog_desk.web), client=LOCAL)
    assert client.get("/healthz").status_code == 200
    lose_database(backlog_desk, broken_engine(tmp_path))
    check_unreachable(client)


def test_database_lost_after_start_postgres(backlog_desk: Desk) -> None:
    client = TestClient(create_app(backlog_desk.web), client=LOCAL)
    assert client.get("/healthz").status_code == 200
    lose_database(backlog_desk, make_engine(DatabaseConfig(
        url="postgresql+psycopg://desk@127.0.0.1:1/desk", connect_timeout_s=1.0)))
    check_unreachable(client)


@pytest.mark.parametrize("where", ["sqlite-missing-dir", "postgres-port-1"])
def test_database_unreachable_from_the_start(desk: Desk, tmp_path: Path, where: str) -> None:
    if where == "sqlite-missing-dir":
        engine = broken_engine(tmp_path)
    else:
        engine = make_engine(DatabaseConfig(url="postgresql+psycopg://desk@127.0.0.1:1/desk",
                                            connect_timeout_s=1.0))
    try:
        check_unreachable(TestClient(create_app(dataclasses.replace(desk, engine=engine)),
                                     client=LOCAL))
    finally:
        engine.dispose()


# --- who may read /metrics --------------------------------------------------------------------


def metrics_desk(desk: Desk, **metrics_cfg: object) -> Desk:
    return dataclasses.replace(desk, config=dataclasses.replace(
        desk.config, metrics=dataclasses.replace(desk.config.metrics, **metrics_cfg)))


def test_metrics_refuse_a_client_outside_metrics_allow_without_the_token(desk: Desk) -> None:
    """/metrics was public: anyone who reached the web desk read the backlog and the traffic
    counters. It now answers metrics.allow (loopback by default) and the bearer
    metrics.token; everyone else gets 403 and no figure."""
    app = create_app(desk.web)
    outside = TestClient(app, client=("203.0.113.7", 40000))
    refused = outside.get("/metrics")
    assert refused.status_code == 403
    assert "metrics.allow" in refused.text and "abuse_desk_" not in refused.text
    assert TestClient(app, client=("testclient", 1)).get("/metrics").status_code == 403
    for local in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert TestClient(app, client=(local, 40000)).get("/metrics").status_code == 200, local

    token = "a-long-enough-scrape-token"
    app = create_app(metrics_desk(desk, token=token, allow=["10.0.0.0/8"]))
    inside = TestClient(app, client=("10.1.2.3", 40000)).get("/metrics")
    assert inside.status_code == 200 and "abuse_desk_messages" in inside.text
    outside = TestClient(app, client=("203.0.113.7", 40000))
    assert outside.get("/metrics").status_code == 403
    assert outside.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert outside.get("/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 403
    scraped = outside.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200 and "abuse_desk_messages" in scraped.text
    assert TestClient(app, client=("127.0.0.1", 1)).get("/metrics").status_code == 403


def test_metrics_config_is_checked() -> None:
    from abuse_desk.core.config import ConfigError, build_config

    with pytest.raises(ConfigError, match=r"metrics\.allow"):
        build_config({"metrics": {"allow": ["not a network"]}}, env={})
    with pytest.raises(ConfigError, match=r"metrics\.token") as refused:
        build_config({"metrics": {"token": "short"}}, env={})
    assert "short" not in str(refused.value)  # a secret is not shown


def test_metrics_behind_a_proxy_go_by_the_client_it_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the server `abuse-desk web` runs (uvicorn believes X-Forwarded-For from
    127.0.0.1 only): a proxy on this host forwarding an outside client gets 403, its own
    request 200; a client elsewhere cannot pass for 127.0.0.1 with the header; the token works
    through the proxy."""
    import asyncio
    from typing import Any

    import httpx2 as httpx
    from abuse_desk.app import runner

    from tests.support import make_config

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    token = "prometheus-scrape-token-0001"
    config = make_config(tmp_path, metrics={"token": token})

    async def scenario() -> None:
        running = await runner.start(config, ("web",))
        try:
            server = running.web
            assert server is not None
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            app: Any = server.config.loaded_app

            async def scrape(peer: str, headers: dict[str, str]) -> int:
                transport = httpx.ASGITransport(app=app, client=(peer, 40000))
                async with httpx.AsyncClient(transport=transport,
                                             base_url="http://desk.example") as c:
                    return (await c.get("/metrics", headers=headers)).status_code

            assert await scrape("127.0.0.1", {}) == 200
            assert await scrape("127.0.0.1", {"X-Forwarded-For": "198.51.100.1"}) == 403
            assert await scrape("203.0.113.7", {"X-Forwarded-For": "127.0.0.1"}) == 403
            assert await scrape("127.0.0.1", {"X-Forwarded-For": "198.51.100.1",
                                              "Authorization": f"Bearer {token}"}) == 200
        finally:
            await runner.stop(running)

    asyncio.run(scenario())


@pytest.mark.service
def test_the_metrics_port_listens_on_loopback_not_on_web_host(
        tmp_path: Path, redis_url: str) -> None:
    """metrics.port (processes without the web part) used to listen on web.host, which is
    0.0.0.0 where the desk faces a proxy on another host: every counter was public. It now
    listens on metrics.host (127.0.0.1) and applies metrics.allow and metrics.token."""
    import asyncio

    import httpx2 as httpx
    from abuse_desk.app import runner

    from tests.support import free_port, make_config

    port = free_port()
    config = make_config(tmp_path, broker={"url": redis_url}, web={"host": "0.0.0.0"},
                         metrics={"port": port})

    async def scenario() -> None:
        running = await runner.start(config, ("scheduler",))
        try:
            server = running.metrics
            assert server is not None
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            bound = {s.getsockname()[0] for srv in server.servers for s in srv.sockets}
            assert bound == {"127.0.0.1"}
            async with httpx.AsyncClient() as c:
                answer = await c.get(f"http://127.0.0.1:{port}/metrics")
            assert answer.status_code == 200 and "abuse_desk_smtp_accepted_total" in answer.text
            assert answer.headers["x-frame-options"] == "DENY"
            app = server.config.loaded_app
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
                assert (await c.get("/metrics")).status_code == 403
        finally:
            await runner.stop(running)
        assert running.metrics_task is not None and running.metrics_task.done()

    asyncio.run(scenario())
