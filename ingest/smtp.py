"""The abuse@ SMTP listener (aiosmtpd): accept, store durably, answer. Nothing else.

Replies, by design:

* ``550 5.1.1`` a recipient other than ``<mailbox>@<domain>`` from config: we relay nothing.
* ``552 5.3.4`` a message over ``smtp.max_message_size`` (SIZE is advertised).
* ``250 2.0.0 queued as <id>`` only after the message is committed to the database.
* ``451 4.3.0`` on any failure of ours (database down or locked, disk full, a bug): the sender keeps
  the message and retries. Never a 5xx for our own failure, never internals in the text.
* ``421 4.7.0`` a peer over its connection cap, or the listener over its total cap.
* ``451 4.7.1`` at MAIL: a peer over its message rate (``smtp.max_messages_per_ip_per_minute``,
  a token bucket per peer IP, per /64 for IPv6): a well-behaved MTA slows down and retries.

End of DATA, and SMTP smuggling (CVE-2023-51764/51765/51766, aiosmtpd's CVE-2024-27305): only
``<CRLF>.<CRLF>`` ends DATA. aiosmtpd (>= 1.4.5; we require 1.4.6) reads DATA in lines ending in
CRLF, so a bare LF or a bare CR around a dot (``\n.\n``, ``\n.\r\n``, ``\r.\r\n``, ``\r\n.\r``,
...) is data: whatever follows it, a smuggled ``MAIL FROM``/``RCPT TO``/``DATA`` and a second
message included, becomes body bytes of the one message, stored as sent (dot-unstuffing aside).
We neither refuse nor normalize bare LF or CR (Postfix's ``smtpd_forbid_bare_newline`` refuses
or rewrites): a report is never lost for the sloppy line endings of its sender, nothing here
relays the bytes onward, and the raw message stays exactly what the reporter sent.
``tests/ingest/test_smtp_hostile.py`` holds the listener to this.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import ssl
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from abuse_desk import metrics
from abuse_desk.clock import Clock
from abuse_desk.config import SmtpConfig
from abuse_desk.logs import log_context
from ingest.store import Envelope

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Temporary local problem, message not accepted: please try again later"

# aiosmtpd's stock replies that lack an enhanced status code (RFC 3463), rewritten on the way out.
_REPLIES = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for this system",
    "552 Error: message size exceeds fixed maximum message size":
        "552 5.3.4 Message size exceeds fixed maximum message size",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
}

SLOW_DOWN = "451 4.7.1 Too many messages from your address, slow down and try again later"

StoreFn = Callable[[bytes, Envelope], concurrent.futures.Future[int]]


class ConnectionTracker:
    """Counts open connections, per peer IP and in all, to refuse those over the caps."""

    def __init__(self, per_ip: int, total: int) -> None:
        self.per_ip, self.total_cap = per_ip, total
        self.by_ip: Counter[str] = Counter()
        self.total = 0

    def admit(self, ip: str) -> str | None:
        """Count a new connection, or return why it is refused."""
        if self.total >= self.total_cap:
            return "421 4.7.0 Too many connections, try again later"
        if self.by_ip[ip] >= self.per_ip:
            return "421 4.7.0 Too many connections from your address, try again later"
        self.by_ip[ip] += 1
        self.total += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]


def peer_key(ip: str) -> str:
    """What the message rate is counted by: an IPv4 address, or the /64 of an IPv6 address (one
    site gets a /64: per address, a sender would walk its 2**64 addresses past the limit)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class _Bucket:
    __slots__ = ("stamp", "tokens", "warned")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens, self.stamp, self.warned = tokens, stamp, float("-inf")


class PeerRateLimiter:
    """A token bucket per peer (:func:`peer_key`): holds *per_minute* tokens, refills at
    *per_minute* a minute, one token per MAIL. *per_minute* 0 turns it off.

    Bounded in memory: a peer idle long enough for its bucket to be full again is forgotten (it
    is then no different from a new one), and past *max_peers* the peer idle longest is
    forgotten too (it starts again with a full bucket: the limiter fails open, never shut).
    Called from the event loop only: no lock.
    """

    def __init__(self, per_minute: int, max_peers: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_peers = max_peers
        self._clock = clock
        # Least recently used first: every take() moves its peer to the end.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, ip: str) -> bool:
        """Spend one token of *ip*'s peer; False (and nothing spent) when it has none."""
        if not self.enabled:
            return True
        now = self._clock()
        full_after = self.capacity / self.rate
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest.stamp < full_after:
                break
            buckets.popitem(last=False)
        key = peer_key(ip)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(self.capacity, now)
            while len(buckets) > self.max_peers:
                buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            buckets.move_to_end(key)
        if bucket.tokens < 1.0:
            if now - bucket.warned >= 60.0:  # one line a minute per peer, not one per refusal
                bucket.warned = now
                log.warning("peer over its message rate, answering 451 4.7.1",
                            extra={"fields": {"peer": key,
                                              "per_minute": int(self.capacity)}})
            return False
        bucket.tokens -= 1.0
        return True


class IntakeHandler:
    """aiosmtpd handler: recipient policy and store-before-250."""

    def __init__(self, cfg: SmtpConfig, store: StoreFn, clock: Clock) -> None:
        self._clock = clock
        self._cfg = cfg
        self._store = store
        self._mailboxes = {m.lower() for m in cfg.mailboxes}
        self._domains = {d.lower().rstrip(".") for d in cfg.domains}
        self.limiter = PeerRateLimiter(cfg.max_messages_per_ip_per_minute,
                                       cfg.rate_limit_max_peers)

    def accepts(self, address: str) -> bool:
        """Only ``<mailbox>@<domain>`` from config: no source routes, no % hacks, no relaying."""
        local, at, domain = address.rpartition("@")
        if not at or not local or "@" in local or ":" in address or "," in address:
            return False
        return local.lower() in self._mailboxes and domain.lower().rstrip(".") in self._domains

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        # Our replies carry RFC 3463 codes: say so (RFC 2034). No AUTH: nobody logs in here.
        kept = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        return [*kept, "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, mail_options: list[str]) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        if not self.limiter.take(str(peer)):
            metrics.SMTP_REJECTED.labels("rate").inc()
            return SLOW_DOWN
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.accepts(address):
            metrics.SMTP_REJECTED.labels("recipient").inc()
            return "550 5.1.1 Recipient address rejected: not a mailbox of this abuse desk"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer if isinstance(session.peer, tuple) else (str(session.peer), None)
        env = Envelope(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            origin="smtp",
            peer_ip=str(peer[0]),
            peer_port=int(peer[1]) if peer[1] is not None else None,
            helo=session.host_name,
            tls=session.ssl is not None,
            received_by=self._cfg.hostname,
            received_at=self._clock(),
        )
        future = self._store(raw, env)
        try:
            # asyncio.timeout, not wait_for: no extra task per message. On timeout the wrapped
            # future is cancelled, which cancels *future*: the writer then skips it.
            async with asyncio.timeout(self._cfg.store_timeout_s):
                message_id = await asyncio.wrap_future(future)
        except Exception as exc:
            metrics.SMTP_REJECTED.labels("tempfail").inc()
            log.error("not stored, answered 451: %s: %s", exc.__class__.__name__, exc,
                      extra={"fields": {"peer": env.peer_ip, "size": len(raw)}})
            return TEMPFAIL
        metrics.SMTP_ACCEPTED.inc()
        metrics.SMTP_BYTES.inc(len(raw))
        with log_context(message_id=message_id):
            log.info("accepted", extra={"fields": {"peer": env.peer_ip, "size": len(raw),
                                                   "mail_from": env.mail_from}})
        return f"250 2.0.0 queued as {message_id}"

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error, answered 451", exc_info=error)
        metrics.SMTP_REJECTED.labels("tempfail").inc()
        return TEMPFAIL


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with our line limit, enhanced status codes and connection caps."""

    def __init__(self, handler: IntakeHandler, cfg: SmtpConfig, tracker: ConnectionTracker,
                 tls_context: ssl.SSLContext | None = None, **kwargs: Any) -> None:
        # aiosmtpd sizes its stream reader from this attribute in __init__ (1001 by default,
        # which refuses real reports from senders that do not wrap lines).
        self.line_length_limit = cfg.max_line_length + 2
        self._tracker = tracker
        self._tracked_ip: str | None = None
        self._refused = False
        super().__init__(
            handler,
            hostname=cfg.hostname,
            ident="abuse-desk",
            data_size_limit=cfg.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=cfg.idle_timeout_s,
            tls_context=tls_context,
            require_starttls=cfg.require_tls and tls_context is not None,
            **kwargs,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self._original_transport is None:
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if peer else "unknown"
            refusal = self._tracker.admit(ip)
            if refusal is not None:
                metrics.SMTP_REJECTED.labels("connections").inc()
                self._refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(refusal.encode() + b"\r\n")
                transport.close()
                return
            self._tracked_ip = ip
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._tracked_ip is not None:
            self._tracker.release(self._tracked_ip)
            self._tracked_ip = None
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    async def push(self, status: Any) -> None:
        status = _REPLIES.get(status, status)
        if status.startswith("552"):
            metrics.SMTP_REJECTED.labels("size").inc()
        elif status.startswith("530"):
            metrics.SMTP_REJECTED.labels("tls-required").inc()
        await super().push(status)


def tls_context(cfg: SmtpConfig) -> ssl.SSLContext | None:
    if not cfg.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key or None)
    return ctx


@dataclass
class SmtpListener:
    server: asyncio.Server
    handler: IntakeHandler
    tracker: ConnectionTracker

    async def drain(self, grace_s: float) -> None:
        """Stop listening, then give open sessions *grace_s* to finish their transaction."""
        self.server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.tracker.total > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)


async def start_smtp(cfg: SmtpConfig, store: StoreFn, clock: Clock) -> SmtpListener:
    """Listen on ``cfg.host:cfg.port`` in the running loop; *clock* dates each message."""
    handler = IntakeHandler(cfg, store, clock)
    tracker = ConnectionTracker(cfg.max_connections_per_ip, cfg.max_connections)
    context = tls_context(cfg)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: IntakeSMTP(handler, cfg, tracker, tls_context=context),
        host=cfg.host, port=cfg.port, reuse_address=True)
    return SmtpListener(server, handler, tracker)
