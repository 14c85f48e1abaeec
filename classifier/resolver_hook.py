"""The resolver hook: ask another system who had an IP at a time (RADIUS or DHCP logs, a
billing API), for desks whose assignments do not live in the customer tables.

Two kinds, both answering one JSON object::

    {"customer_id": "C-1042", "valid_from": "2026-02-01T00:00:00Z", "valid_until": null}

(``customer_id`` null, or HTTP 404: nobody had it.)

* HTTP: ``GET URL?ip=IP&port=PORT&time=TIME`` (``port`` left out when unknown), or ``POST URL``
  with the JSON object ``{"ip", "port", "time"}``; urllib, no proxy, with a timeout.
* A command: ``ARGV... IP PORT TIME`` (PORT ``-`` when unknown), no shell, read from its
  standard output, killed with its process group past the timeout.

Answers are cached with their validity: an answer valid from F until U is reused for lookups of
the same IP and port at incident times in ``[F, U)`` (an open ``valid_until`` means "still
holds": up to the time of asking plus ``open_ttl_s``; an open ``valid_from``: from the time
asked about). "Nobody" answers are reused for ``negative_ttl_s`` by the desk's clock. A failure
(timeout, bad JSON, an error status, a non-zero exit) gives no customer with the reason, never
an exception; after one the hook rests for ``failure_backoff_s``, so a dead hook costs one
timeout, not one per report.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shlex
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..core.clock import Clock, system_clock

if TYPE_CHECKING:
    from ..core.config import ClassifierConfig

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
NOBODY = "the resolver hook knows nobody with this IP at the incident time"


class HookFailure(Exception):
    """The hook did not answer usably; the message says how."""


# Asks the other system about (ip, port, time); returns the raw answer or raises HookFailure.
Transport = Callable[[str, int | None, datetime], bytes]


def iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class HookAnswer:
    """The hook's answer about one IP (and port) at one time."""

    ip: str
    port: int | None
    at: datetime
    external_id: str | None  # the customer, as the customers table knows it; None: nobody
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    reason: str | None = None  # why nobody: the hook said so, or failed
    source: str = "hook"  # which hook answered: "http GET URL", "command ARGV0"
    cached: bool = False

    @property
    def detail(self) -> str:
        port = f" port {self.port}" if self.port is not None else ""
        what = self.external_id or f"nobody ({self.reason})"
        window = "".join(part for part in (
            f" from {iso(self.valid_from)}" if self.valid_from else "",
            f" until {iso(self.valid_until)}" if self.valid_until else ""))
        cached = ", cached" if self.cached else ""
        return f"{self.source}: {self.ip}{port} at {iso(self.at)} is {what}{window}{cached}"


@dataclass(frozen=True)
class _Held:
    """A cached positive answer: usable for incident times in [start, end)."""

    start: float
    end: float
    external_id: str
    valid_from: datetime | None
    valid_until: datetime | None


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HookFailure(f"bad answer: {name} is not an ISO 8601 string or null")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HookFailure(f"bad answer: {name} {value[:40]!r} is not ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_answer(raw: bytes) -> tuple[str | None, datetime | None, datetime | None]:
    """(customer, valid_from, valid_until) of a hook's answer; HookFailure if unusable."""
    try:
        doc = json.loads(raw[:MAX_ANSWER_BYTES].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HookFailure(f"bad JSON: {exc}") from None
    if not isinstance(doc, dict) or "customer_id" not in doc:
        raise HookFailure('bad answer: expected an object with "customer_id"')
    customer = doc["customer_id"]
    if isinstance(customer, bool) or not isinstance(customer, str | int | None):
        raise HookFailure("bad answer: customer_id is not a string, a number or null")
    external_id = str(customer).strip() if customer is not None else None
    return (external_id or None, _time(doc.get("valid_from"), "valid_from"),
            _time(doc.get("valid_until"), "valid_until"))


# -- transports ------------------------------------------------------------------------------


def http_transport(url: str, *, timeout_s: float, method: str = "GET") -> Transport:
    """GET URL?ip=..&port=..&time=.. or POST URL with a JSON body; 404 means nobody."""
    if method not in ("GET", "POST"):
        raise ValueError(f"resolver hook method {method!r}: GET or POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ask(ip: str, port: int | None, at: datetime) -> bytes:
        query = {"ip": ip, **({"port": str(port)} if port is not None else {}), "time": iso(at)}
        if method == "GET":
            request = urllib.request.Request(
                url + ("&" if "?" in url else "?") + urlencode(query), method="GET")
        else:
            body = {"ip": ip, "port": port, "time": iso(at)}
            request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
        request.add_header("Accept", "application/json")
        try:
            with opener.open(request, timeout=timeout_s) as response:
                return bytes(response.read(MAX_ANSWER_BYTES + 1))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return b'{"customer_id": null}'
            raise HookFailure(f"HTTP {exc.code} {exc.reason}") from None
        except TimeoutError:
            raise HookFailure(f"no answer within {timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise HookFailure(f"no answer within {timeout_s:g} s") from None
            raise HookFailure(f"cannot reach {url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise HookFailure(f"cannot reach {url}: {exc.__class__.__name__}: {exc}") from None

    return ask


def command_transport(argv: Sequence[str], *, timeout_s: float) -> Transport:
    """ARGV... IP PORT TIME, no shell; its standard output is the answer."""
    if not argv:
        raise ValueError("resolver hook command: empty")
    program = list(argv)

    def ask(ip: str, port: int | None, at: datetime) -> bytes:
        args = [*program, ip, str(port) if port is not None else "-", iso(at)]
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise HookFailure(f"cannot run {program[0]}: {exc.strerror or exc}") from None
        with proc:
            try:
                out, err = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its children too: they hold the pipes
                proc.communicate()
                raise HookFailure(f"no answer within {timeout_s:g} s") from None
        if proc.returncode != 0:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise HookFailure(f"{program[0]} exited with status {proc.returncode}"
                              + (f": {last[0][:200]}" if last[0] else ""))
        return out

    return ask


# -- the hook --------------------------------------------------------------------------------


class ResolverHook:
    """Asks a transport who had an IP at a time, caching answers with their validity."""

    def __init__(self, transport: Transport, source: str, *, negative_ttl_s: float = 300.0,
                 open_ttl_s: float = 300.0, failure_backoff_s: float = 10.0,
                 max_entries: int = 100_000, clock: Clock = system_clock) -> None:
        self._transport = transport
        self.source = source
        self._negative_ttl = negative_ttl_s
        self._open_ttl = open_ttl_s
        self._backoff = failure_backoff_s
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[tuple[str, int | None], list[_Held]] = {}
        self._nobody_until: dict[tuple[str, int | None], float] = {}
        self._resting_until = 0.0
        self._last_failure = ""
        self.calls = 0  # questions actually sent
        self.cache_hits = 0

    @classmethod
    def http(cls, url: str, *, timeout_s: float = 5.0, method: str = "GET",
             **options: Any) -> ResolverHook:
        return cls(http_transport(url, timeout_s=timeout_s, method=method),
                   f"http {method} {url}", **options)

    @classmethod
    def command(cls, argv: Sequence[str], *, timeout_s: float = 5.0,
                **options: Any) -> ResolverHook:
        return cls(command_transport(argv, timeout_s=timeout_s), f"command {shlex.join(argv)}",
                   **options)

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, clock: Clock) -> ResolverHook:
        """The hook of ``[classifier]`` (``resolver_hook_url`` or ``resolver_hook_command``),
        asking at the times *clock* gives."""
        if cfg.resolver_hook_url and cfg.resolver_hook_command:
            raise ValueError("classifier.resolver_hook_url and classifier.resolver_hook_command "
                             "are both set: keep one")
        timeout, ttl = cfg.resolver_hook_timeout_s, cfg.resolver_hook_negative_ttl_s
        if cfg.resolver_hook_url:
            return cls.http(cfg.resolver_hook_url, timeout_s=timeout, negative_ttl_s=ttl,
                            clock=clock)
        if cfg.resolver_hook_command:
            return cls.command(cfg.resolver_hook_command, timeout_s=timeout,
                               negative_ttl_s=ttl, clock=clock)
        raise ValueError("no resolver hook configured (classifier.resolver_hook_url or "
                         "classifier.resolver_hook_command)")

    def resolve(self, ip: str, port: int | None, at: datetime) -> HookAnswer:
        """Who had *ip* (at *port*) at *at*. Never raises. The desk's clock says when it
        asks: an answer without an end holds from its start until a while after asking."""
        now = self._clock().timestamp()
        when = at if at.tzinfo else at.replace(tzinfo=UTC)
        key, t = (ip, port), when.timestamp()
        cached = self._cached(key, t, now)
        if cached is not None:
            self.cache_hits += 1
            return HookAnswer(ip, port, when, cached.external_id, cached.valid_from,
                              cached.valid_until, source=self.source, cached=True)
        if key in self._nobody_until and now < self._nobody_until[key]:
            self.cache_hits += 1
            return HookAnswer(ip, port, when, None, reason=NOBODY, source=self.source,
                              cached=True)
        if now < self._resting_until:
            return self._failed(ip, port, when, f"resting after a failure ({self._last_failure})")
        with self._lock:
            self.calls += 1
        try:
            external_id, valid_from, valid_until = parse_answer(self._transport(ip, port, when))
        except Exception as exc:  # a failure of the other system, never the report's
            if not isinstance(exc, HookFailure):
                log.exception("resolver hook: unexpected failure")
                exc = HookFailure(f"{exc.__class__.__name__}: {exc}")
            with self._lock:
                self._resting_until = now + self._backoff
                self._last_failure = str(exc)
            log.warning("resolver hook failed for %s: %s", ip, exc)
            return self._failed(ip, port, when, str(exc))
        return self._remember(key, ip, port, when, now, external_id, valid_from, valid_until)

    def _failed(self, ip: str, port: int | None, when: datetime, why: str) -> HookAnswer:
        return HookAnswer(ip, port, when, None, reason=f"resolver hook failed: {why}",
                          source=self.source)

    def _cached(self, key: tuple[str, int | None], t: float, now: float) -> _Held | None:
        with self._lock:
            return next((h for h in self._held.get(key, ()) if h.start <= t < h.end), None)

    def _remember(self, key: tuple[str, int | None], ip: str, port: int | None, when: datetime,
                  now: float, external_id: str | None, valid_from: datetime | None,
                  valid_until: datetime | None) -> HookAnswer:
        t = when.timestamp()
        if external_id is None:
            with self._lock:
                self._evict(self._nobody_until)
                self._nobody_until[key] = now + self._negative_ttl
            return HookAnswer(ip, port, when, None, reason=NOBODY, source=self.source)
        start = valid_from.timestamp() if valid_from else t
        end = valid_until.timestamp() if valid_until else max(now, t) + self._open_ttl
        if not start <= t < end:
            return self._failed(ip, port, when, f"it answered {external_id} for a window "
                                "that does not contain the incident time")
        with self._lock:
            self._evict(self._held)
            self._held.setdefault(key, []).append(
                _Held(start, end, external_id, valid_from, valid_until))
        return HookAnswer(ip, port, when, external_id, valid_from, valid_until,
                          source=self.source)

    def _evict(self, cache: dict[Any, Any]) -> None:
        while len(cache) >= self._max_entries:
            cache.pop(next(iter(cache)))
