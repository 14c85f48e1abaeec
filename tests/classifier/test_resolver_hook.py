"""The resolver hook against a real HTTP server and a real command (classifier/resolver_hook.py)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from abuse_desk.classifier.resolver_hook import NOBODY, HookAnswer, ResolverHook
from abuse_desk.core.config import ClassifierConfig

T = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The desk's clock as the hook sees it, moved by hand (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = T.timestamp() + 86400

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Hook:
    """A tiny resolver service: answers per IP, counts what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.asked: list[dict[str, Any]] = []
        self.delay = 0.0
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/who"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    def answer(self, ip: str, doc: Any, status: int = 200) -> None:
        self.answers[ip] = (status, doc if isinstance(doc, bytes) else json.dumps(doc).encode())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, question: dict[str, Any]) -> None:
                hook.asked.append(question)
                time.sleep(hook.delay)
                status, body = hook.answers.get(str(question.get("ip")), (404, b""))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                self._reply({"method": "GET", **{k: v[0] for k, v in query.items()}})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self._reply({"method": "POST", **json.loads(body)})

        return Handler


@pytest.fixture
def hook() -> Iterator[Hook]:
    served = Hook()
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def window(external_id: str | None, start: str | None = None,
           end: str | None = None) -> dict[str, Any]:
    return {"customer_id": external_id, "valid_from": start, "valid_until": end}


# -- HTTP ------------------------------------------------------------------------------------


def test_http_answer_is_cached_within_its_window(hook: Hook, clock: Clock) -> None:
    hook.answer("198.51.100.7", window("C-7", "2026-01-25T00:00:00Z", "2026-02-05T00:00:00Z"))
    resolver = ResolverHook.http(hook.url, timeout_s=5, clock=clock)
    first = resolver.resolve("198.51.100.7", 51000, T)
    assert first == HookAnswer(
        "198.51.100.7", 51000, T, "C-7", datetime(2026, 1, 25, tzinfo=UTC),
        datetime(2026, 2, 5, tzinfo=UTC), source=f"http GET {hook.url}")
    assert hook.asked == [{"method": "GET", "ip": "198.51.100.7", "port": "51000",
                           "time": "2026-02-01T12:00:00Z"}]

    again = resolver.resolve("198.51.100.7", 51000, T + timedelta(days=2))
    assert (again.external_id, again.cached, len(hook.asked)) == ("C-7", True, 1)
    assert again.detail == (f"http GET {hook.url}: 198.51.100.7 port 51000 at "
                            "2026-02-03T12:00:00Z is C-7 from 2026-01-25T00:00:00Z until "
                            "2026-02-05T00:00:00Z, cached")

    resolver.resolve("198.51.100.7", 51000, T + timedelta(days=5))  # after valid_until
    resolver.resolve("198.51.100.7", 51001, T)  # another port
    resolver.resolve("198.51.100.7", 51000, datetime(2026, 1, 24, tzinfo=UTC))  # before
    assert (len(hook.asked), resolver.calls, resolver.cache_hits) == (4, 4, 1)


def test_http_nobody_is_cached_for_the_negative_ttl(hook: Hook, clock: Clock) -> None:
    hook.answer("198.51.100.8", window(None))
    resolver = ResolverHook.http(hook.url, negative_ttl_s=60, clock=clock)
    for _ in range(3):
        answer = resolver.resolve("198.51.100.8", None, T)
        assert (answer.external_id, answer.reason) == (None, NOBODY)
    assert [q.get("port") for q in hook.asked] == [None]  # no port: left out
    clock.now += 61
    resolver.resolve("198.51.100.8", None, T)
    resolver.resolve("203.0.113.1", None, T)  # 404: nobody too
    resolver.resolve("203.0.113.1", None, T)
    assert len(hook.asked) == 3


def test_http_open_answers_are_reused_a_while(hook: Hook, clock: Clock) -> None:
    hook.answer("198.51.100.9", window("C-9"))  # no window at all: "C-9 has it now"
    resolver = ResolverHook.http(hook.url, open_ttl_s=3600, clock=clock)
    assert resolver.resolve("198.51.100.9", None, T).external_id == "C-9"
    # from the time asked about until an hour after asking
    assert resolver.resolve("198.51.100.9", None, T + timedelta(hours=20)).cached
    assert not resolver.resolve("198.51.100.9", None, T - timedelta(seconds=1)).cached
    assert not resolver.resolve("198.51.100.9", None, T + timedelta(hours=26)).cached
    assert len(hook.asked) == 3


def test_http_post(hook: Hook, clock: Clock) -> None:
    hook.answer("2001:db8::5", {"customer_id": 42, "valid_until": None})
    resolver = ResolverHook.http(hook.url, method="POST", clock=clock)
    assert resolver.resolve("2001:db8::5", 443, T).external_id == "42"
    assert hook.asked == [{"method": "POST", "ip": "2001:db8::5", "port": 443,
                           "time": "2026-02-01T12:00:00Z"}]


@pytest.mark.parametrize(("status", "body", "reason"), [
    (500, b"{}", "resolver hook failed: HTTP 500 Internal Server Error"),
    (200, b"<html>", "resolver hook failed: bad JSON: Expecting value: line 1 column 1 "
                     "(char 0)"),
    (200, b'{"customer": "C-1"}', 'resolver hook failed: bad answer: expected an object with '
                                  '"customer_id"'),
    (200, b'{"customer_id": "C-1", "valid_until": "tomorrow"}',
     "resolver hook failed: bad answer: valid_until 'tomorrow' is not ISO 8601"),
    (200, b'{"customer_id": "C-1", "valid_until": "2026-01-01T00:00:00Z"}',
     "resolver hook failed: it answered C-1 for a window that does not contain the incident "
     "time"),
])
def test_http_failures_give_no_customer_and_the_reason(
        hook: Hook, clock: Clock, status: int, body: bytes, reason: str) -> None:
    hook.answer("198.51.100.1", body, status)
    answer = ResolverHook.http(hook.url, clock=clock).resolve("198.51.100.1", None, T)
    assert (answer.external_id, answer.reason, answer.cached) == (None, reason, False)


def test_http_timeout_and_unreachable(hook: Hook, clock: Clock) -> None:
    hook.answer("198.51.100.1", window("C-1"))
    hook.delay = 2.0
    slow = ResolverHook.http(hook.url, timeout_s=0.2, clock=clock)
    assert slow.resolve("198.51.100.1", None, T).reason == (
        "resolver hook failed: no answer within 0.2 s")
    hook.server.server_close()
    gone = ResolverHook.http(hook.url, timeout_s=1, clock=clock)
    reason = gone.resolve("198.51.100.1", None, T).reason or ""
    assert reason.startswith(f"resolver hook failed: cannot reach {hook.url}")


def test_after_a_failure_the_hook_rests(hook: Hook, clock: Clock) -> None:
    hook.answer("198.51.100.1", b"{}", 503)
    resolver = ResolverHook.http(hook.url, failure_backoff_s=30, clock=clock)
    resolver.resolve("198.51.100.1", None, T)
    hook.answer("198.51.100.1", window("C-1"))
    resting = resolver.resolve("198.51.100.1", None, T)
    assert resting.reason == ("resolver hook failed: resting after a failure "
                              "(HTTP 503 Service Unavailable)")
    assert len(hook.asked) == 1
    clock.now += 31
    assert resolver.resolve("198.51.100.1", None, T).external_id == "C-1"
    assert len(hook.asked) == 2


def test_from_config(clock: Clock) -> None:
    hook = ResolverHook.from_config(ClassifierConfig(resolver_hook_url="http://h.example/x"),
                                    clock)
    assert hook.source == "http GET http://h.example/x"
    command = ResolverHook.from_config(ClassifierConfig(resolver_hook_command=["who", "-q"]),
                                       clock)
    assert command.source == "command who -q"
    with pytest.raises(ValueError, match="both set: keep one"):
        ResolverHook.from_config(ClassifierConfig(resolver_hook_url="http://h.example/",
                                                  resolver_hook_command=["who"]), clock)


# -- a command -------------------------------------------------------------------------------

SCRIPT = '''
import json, sys, time
from pathlib import Path
here = Path(__file__).parent
with open(here / "calls.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
ip = sys.argv[1]
if ip == "192.0.2.66":
    print("boom: the RADIUS log is locked", file=sys.stderr)
    sys.exit(3)
if ip == "192.0.2.77":
    time.sleep(30)
if ip == "192.0.2.88":
    print("not json")
    sys.exit(0)
owners = {"192.0.2.10": "C-10"}
print(json.dumps({"customer_id": owners.get(ip), "valid_from": "2026-01-01T00:00:00Z",
                  "valid_until": "2026-03-01T00:00:00Z"}))
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "who.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def calls(script: Path) -> list[str]:
    log = script.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_command_answers_and_is_cached(script: Path, clock: Clock) -> None:
    resolver = ResolverHook.command([sys.executable, str(script)], clock=clock)
    answer = resolver.resolve("192.0.2.10", 40000, T)
    assert (answer.external_id, answer.valid_until, answer.source) == (
        "C-10", datetime(2026, 3, 1, tzinfo=UTC), f"command {sys.executable} {script}")
    assert resolver.resolve("192.0.2.10", 40000, T + timedelta(days=10)).cached
    assert resolver.resolve("192.0.2.11", None, T).reason == NOBODY
    assert resolver.resolve("192.0.2.11", None, T).cached
    assert calls(script) == ["192.0.2.10 40000 2026-02-01T12:00:00Z",
                             "192.0.2.11 - 2026-02-01T12:00:00Z"]


@pytest.mark.parametrize(("ip", "reason"), [
    ("192.0.2.66", "exited with status 3: boom: the RADIUS log is locked"),
    ("192.0.2.77", "no answer within 0.5 s"),
    ("192.0.2.88", "bad JSON: Expecting value: line 1 column 1 (char 0)"),
])
def test_command_failures(script: Path, clock: Clock, ip: str, reason: str) -> None:
    resolver = ResolverHook.command([sys.executable, str(script)], timeout_s=0.5, clock=clock)
    answer = resolver.resolve(ip, None, T)
    prefix = f"{sys.executable} " if reason.startswith("exited") else ""
    assert (answer.external_id, answer.reason) == (None, f"resolver hook failed: {prefix}{reason}")


def test_a_missing_command(tmp_path: Path, clock: Clock) -> None:
    resolver = ResolverHook.command([str(tmp_path / "nothing-here")], clock=clock)
    assert resolver.resolve("192.0.2.1", None, T).reason == (
        f"resolver hook failed: cannot run {tmp_path / 'nothing-here'}: No such file or directory")


def test_nothing_the_transport_raises_escapes(clock: Clock) -> None:
    def broken(ip: str, port: int | None, at: datetime) -> bytes:
        raise RuntimeError("a bug in the transport")

    resolver = ResolverHook(broken, "fake", clock=clock)
    answer = resolver.resolve("192.0.2.1", None, clock())
    assert (answer.external_id, answer.reason, answer.at) == (
        None, "resolver hook failed: RuntimeError: a bug in the transport",
        datetime.fromtimestamp(clock.now, UTC))
