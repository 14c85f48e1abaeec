"""The abuse@ SMTP listener (aiosmtpd): accept, store durably, answer. Nothing else.

Replies, by design:

* ``550 5.1.1`` a recipient other than ``<mailbox>@<domain>`` from config: we relay nothing.
* ``552 5.3.4`` a message over ``smtp.max_message_size`` (SIZE is advertised).
* ``250 2.0.0 queued as <id>`` only after the message is committed to the database.
* ``451 4.3.0`` on any failure of ours (database down or locked, disk full, a bug): the sender keeps
  the message and retries. Never a 5xx for our own failure, never internals in the text.
* ``421 4.7.0`` a peer over its connection cap, or the listener over its total cap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from abuse_desk import metrics
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


class IntakeHandler:
    """aiosmtpd handler: recipient policy and store-before-250."""

    def __init__(self, cfg: SmtpConfig, store: StoreFn) -> None:
        self._cfg = cfg
        self._store = store
        self._mailboxes = {m.lower() for m in cfg.mailboxes}
        self._domains = {d.lower().rstrip(".") for d in cfg.domains}

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


async def start_smtp(cfg: SmtpConfig, store: StoreFn) -> SmtpListener:
    """Listen on ``cfg.host:cfg.port`` in the running loop."""
    handler = IntakeHandler(cfg, store)
    tracker = ConnectionTracker(cfg.max_connections_per_ip, cfg.max_connections)
    context = tls_context(cfg)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: IntakeSMTP(handler, cfg, tracker, tls_context=context),
        host=cfg.host, port=cfg.port, reuse_address=True)
    return SmtpListener(server, handler, tracker)
