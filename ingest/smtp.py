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
* ``452 4.5.3`` a RCPT past ``smtp.max_recipients`` in one transaction (RFC 5321 4.5.3.1.10).
* ``452 4.3.1`` at DATA, ``451 4.3.1`` (and the connection closed) during DATA: the DATA bytes
  held by all sessions, from the first line until the store commits, are at
  ``smtp.max_bytes_in_flight``. Memory stays bounded by it, not by connections x message size.
* ``421 4.4.2`` a session older than ``smtp.max_session_s``; ``421 4.7.0`` one past
  ``smtp.max_commands`` commands, or closed to make room for another peer (below).

Holding a slot: a "peer" is an IPv4 address or an IPv6 /64 (:func:`peer_key`), for the
connection cap as for the message rate. The idle timer (``smtp.idle_timeout_s``) runs from the
last progress (HELO/EHLO, MAIL, RCPT, DATA, STARTTLS, QUIT, any byte of a message received):
NOOP, RSET, HELP, VRFY and the like do not keep a connection open, while a big message whose
bytes keep flowing is never cut by it. At the total connection cap a peer holding fewer
connections than the biggest holder still gets in: that holder's connection idle longest is
closed (421 4.7.0). At the byte budget, likewise, the transfer of the peer holding most bytes
makes room for a peer holding fewer (451 4.3.1). No session is ever cut while its message is
being committed: 250 is sent for what was stored, and only for that.

End of DATA, and SMTP smuggling (CVE-2023-51764/51765/51766, aiosmtpd's CVE-2024-27305): only
``<CRLF>.<CRLF>`` ends DATA. DATA is read in lines ending in CRLF (``IntakeSMTP.smtp_DATA``
keeps the reading loop of aiosmtpd >= 1.4.5, which fixed it; we require 1.4.6), so a bare LF or
a bare CR around a dot (``\n.\n``, ``\n.\r\n``, ``\r.\r\n``, ``\r\n.\r``, ...) is data:
whatever follows it, a smuggled ``MAIL FROM``/``RCPT TO``/``DATA`` and a second message included,
becomes body bytes of the one message, stored as sent (dot-unstuffing aside).
We neither refuse nor normalize bare LF or CR (Postfix's ``smtpd_forbid_bare_newline`` refuses
or rewrites): a report is never lost for the sloppy line endings of its sender, nothing here
relays the bytes onward, and the raw message stays exactly what the reporter sent.
``tests/ingest/test_smtp_hostile.py`` holds the listener to this.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import ipaddress
import logging
import re
import ssl
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiosmtpd.smtp import MISSING, SMTP, Session, syntax
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from ..core import metrics
from ..core.clock import Clock
from ..core.config import SmtpConfig
from ..core.mailboxes import mailbox_of
from .store import Envelope

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
LISTENER_FULL = "421 4.7.0 Too many connections, try again later"
PEER_FULL = "421 4.7.0 Too many connections from your address, try again later"
MAKE_ROOM = ("421 4.7.0 Too many connections from your address, closing this one to make room "
             "for other senders")
SESSION_TOO_LONG = "421 4.4.2 Session time limit reached, closing: please reconnect"
TOO_MANY_COMMANDS = "421 4.7.0 Too many commands in one session, closing: please reconnect"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients, send the others in another transaction"
NO_ROOM = "452 4.3.1 Insufficient system storage, please try again later"
DATA_ABORTED = ("451 4.3.1 Insufficient system storage, message not accepted: please try again "
                "later")

# Commands that move a session on: they (and DATA lines) restart the idle timer; the others
# (NOOP, RSET, HELP, VRFY, EXPN) do not, so chatter cannot keep a connection open.
PROGRESS = frozenset({"HELO", "EHLO", "MAIL", "RCPT", "DATA", "STARTTLS", "QUIT"})

# DATA bytes are counted against the budget in steps of this much (not line by line).
CHARGE_STEP = 64 * 1024
# When the bytes in flight fall back to 0 after reaching this much, free memory is given back
# to the system (see _trim_memory), a second later: the store writer drops its last batch.
TRIM_AFTER = 16 * 1024 * 1024
TRIM_DELAY_S = 1.0
# A connection closed by us gets this long to take its last reply before it is cut.
CLOSE_GRACE_S = 10.0

StoreFn = Callable[[bytes, Envelope], Awaitable[int]]  # GroupCommitWriter.store

# An address as nearly every MTA writes it in MAIL FROM and RCPT TO: <dot-atom@dot-atom>, ASCII
# atext without "?" (so never an RFC 2047 encoded word), nothing between the brackets but it.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*)>")


def plain_address(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a MAIL FROM or RCPT TO argument in the plain form above, as
    aiosmtpd's ``SMTP._getaddr`` gives them (its RFC 5322 parser, white space after the ``>``
    dropped); None for any other form (a comment after the ``>`` included): the parser's."""
    match = _PLAIN_ADDRESS.match(arg)
    if match is None:
        return None
    rest = arg[match.end():]
    if rest[:1] in (" ", "\t"):
        rest = rest.lstrip()
    if rest.startswith("("):
        return None
    return match.group(1), rest

_last_warned: dict[str, float] = {}


def _warn(reason: str, message: str, peer: str) -> None:
    """Log *message* at most once a minute per *reason*: a flood is counted by the metric
    (abuse_desk_smtp_rejected{reason}), not logged line by line."""
    now = time.monotonic()
    if now - _last_warned.get(reason, float("-inf")) >= 60.0:
        _last_warned[reason] = now
        log.warning(message, extra={"fields": {"peer": peer, "reason": reason}})


def peer_key(ip: str) -> str:
    """What connections and the message rate are counted by: an IPv4 address, or the /64 of an
    IPv6 address (one site gets a /64: per address, a sender would walk its 2**64 addresses past
    the limits)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class Slot(Protocol):
    """A session as the connection tracker and the byte budget see it."""

    peer: str  # its peer_key
    held: int  # DATA bytes it holds against the budget

    def shed_rank(self) -> tuple[int, float] | None:
        """Which to close first to make room (lowest first); None: not now (storing)."""

    def shed(self, reply: str) -> None:
        """Answer *reply*, close, and give back the slot and the bytes at once."""


class ConnectionTracker:
    """Counts open connections, per peer (:func:`peer_key`) and in all, against the caps.

    At the total cap, a new connection from a peer that holds at least two fewer connections
    than the biggest holder still gets in: that holder's connection that made no progress for
    longest (between commands first, then in DATA; never one whose message is being stored) is
    closed with 421 4.7.0. So a few peers with many sockets cannot lock every other sender out,
    and they cannot take the slot back either. Called from the event loop only: no lock.
    """

    def __init__(self, per_ip: int, total: int) -> None:
        self.per_ip, self.total_cap = per_ip, total
        self.by_peer: dict[str, dict[Slot, None]] = {}  # insertion-ordered sets
        self.total = 0

    def admit(self, ip: str, slot: Slot) -> str | None:
        """Count *slot*, a new connection from *ip*, or return why it is refused."""
        key = peer_key(ip)
        held = self.by_peer.get(key)
        holding = len(held) if held else 0
        if holding >= self.per_ip:
            return PEER_FULL
        if self.total >= self.total_cap:
            victim = self._victim(holding)
            if victim is None:
                return LISTENER_FULL
            metrics.SMTP_REJECTED.labels("shed").inc()
            _warn("shed", "at the connection cap, closing a connection of the biggest holder "
                  "for a new peer", victim.peer)
            victim.shed(MAKE_ROOM)
            self.release(victim)
        slot.peer = key
        self.by_peer.setdefault(key, {})[slot] = None
        self.total += 1
        return None

    def release(self, slot: Slot) -> None:
        """Forget *slot* (again: a no-op)."""
        held = self.by_peer.get(slot.peer)
        if held is None or slot not in held:
            return
        del held[slot]
        if not held:
            del self.by_peer[slot.peer]
        self.total -= 1

    def _victim(self, holding: int) -> Slot | None:
        best: Slot | None = None
        best_rank: tuple[int, int, float] | None = None
        for held in self.by_peer.values():
            if len(held) < holding + 2:
                continue
            for slot in held:
                rank = slot.shed_rank()
                if rank is None:
                    continue
                ranked = (-len(held), *rank)
                if best_rank is None or ranked < best_rank:
                    best, best_rank = slot, ranked
        return best


def _malloc_trim() -> Callable[[], object]:
    """glibc's malloc_trim(0): hand freed heap pages back to the system. Without it, the RSS
    a burst of big messages raised stays up after they are gone. A no-op elsewhere."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class InFlightBudget:
    """The DATA bytes held by all sessions, from the first line received until the store has
    committed the message (or the transfer ended otherwise), against *total*.

    A transfer that would go past it makes room first, by cutting (451 4.3.1) the transfer of
    another peer that holds more bytes than the asking one would: the peer holding most goes
    first, its transfer idle longest first; messages being stored are never cut. When there is
    no such transfer, the asking one is refused. When the bytes fall back to 0 after a burst,
    *trim* gives freed memory back to the system. Called from the event loop only: no lock.
    """

    def __init__(self, total: int, trim: Callable[[], object] | None = None) -> None:
        self.total_cap = total
        self.held = 0
        self.by_peer: Counter[str] = Counter()
        self._receiving: dict[Slot, None] = {}  # sessions in DATA, which may be cut
        self._high_water = 0
        self._trim = trim if trim is not None else _malloc_trim()
        self._trim_handle: asyncio.TimerHandle | None = None

    def has_room(self, slot: Slot) -> bool:
        """Whether *slot* may start a DATA transfer."""
        return self.held < self.total_cap or self._victim(slot, 1) is not None

    def take(self, slot: Slot, n: int) -> bool:
        """Count *n* more bytes held by *slot*, making room if need be; False: no room."""
        while self.held + n > self.total_cap:
            victim = self._victim(slot, n)
            if victim is None:
                return False
            metrics.SMTP_REJECTED.labels("budget").inc()
            _warn("budget-shed", "at the byte budget, cutting the transfer of the peer holding "
                  "most bytes for another peer", victim.peer)
            victim.shed(DATA_ABORTED)
            self.give(victim)
        slot.held += n
        self.held += n
        self.by_peer[slot.peer] += n
        self._receiving[slot] = None
        if self.held > self._high_water:
            self._high_water = self.held
        return True

    def storing(self, slot: Slot) -> None:
        """*slot*'s message is being stored: it keeps its bytes but may no longer be cut."""
        self._receiving.pop(slot, None)

    def give(self, slot: Slot) -> None:
        """*slot* holds no bytes any more (again: a no-op)."""
        self._receiving.pop(slot, None)
        n, slot.held = slot.held, 0
        if not n:
            return
        self.held -= n
        left = self.by_peer[slot.peer] - n
        if left > 0:
            self.by_peer[slot.peer] = left
        else:
            del self.by_peer[slot.peer]
        if self.held == 0 and self._high_water >= TRIM_AFTER and self._trim_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._trim_now()
            else:
                self._trim_handle = loop.call_later(TRIM_DELAY_S, self._trim_now)

    def _trim_now(self) -> None:
        self._trim_handle = None
        if self.held == 0:
            self._high_water = 0
            self._trim()

    def _victim(self, slot: Slot, n: int) -> Slot | None:
        mine = self.by_peer.get(slot.peer, 0) + n
        best: Slot | None = None
        best_rank: tuple[int, int, float] | None = None
        for other in self._receiving:
            theirs = self.by_peer.get(other.peer, 0)
            if other.peer == slot.peer or theirs <= mine:
                continue
            rank = other.shed_rank()
            if rank is None:
                continue
            ranked = (-theirs, *rank)
            if best_rank is None or ranked < best_rank:
                best, best_rank = other, ranked
        return best


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
        mailbox = mailbox_of(local, self._cfg.recipient_delimiter)  # abuse+r-TOKEN is abuse
        return (mailbox is not None and mailbox.lower() in self._mailboxes
                and domain.lower().rstrip(".") in self._domains)

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
        if len(envelope.rcpt_tos) >= self._cfg.max_recipients:
            metrics.SMTP_REJECTED.labels("recipients").inc()
            return TOO_MANY_RECIPIENTS
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
        try:
            # asyncio.timeout, not wait_for: no extra task per message. On timeout the store's
            # future is cancelled: a writer that has not taken the message yet skips it.
            async with asyncio.timeout(self._cfg.store_timeout_s):
                message_id = await self._store(raw, env)
        except Exception as exc:
            metrics.SMTP_REJECTED.labels("tempfail").inc()
            log.error("not stored, answered 451: %s: %s", exc.__class__.__name__, exc,
                      extra={"fields": {"peer": env.peer_ip, "size": len(raw)}})
            return TEMPFAIL
        metrics.SMTP_ACCEPTED.inc()
        metrics.SMTP_BYTES.inc(len(raw))
        # The message id as a field, not a log_context: the same line, without setting and
        # resetting a context variable per message.
        log.info("accepted", extra={"fields": {"message_id": message_id, "peer": env.peer_ip,
                                               "size": len(raw), "mail_from": env.mail_from}})
        return f"250 2.0.0 queued as {message_id}"

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error, answered 451", exc_info=error)
        metrics.SMTP_REJECTED.labels("tempfail").inc()
        return TEMPFAIL


# What a session is doing, for the idle and lifetime timers and for shedding.
_COMMANDS, _RECEIVING, _STORING = 0, 1, 2


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with our line limit, enhanced status codes and the intake bounds:
    connection caps, idle timer and session lifetime, command cap, byte budget."""

    def __init__(self, handler: IntakeHandler, cfg: SmtpConfig, tracker: ConnectionTracker,
                 budget: InFlightBudget, tls_context: ssl.SSLContext | None = None,
                 **kwargs: Any) -> None:
        # aiosmtpd sizes its stream reader from this attribute in __init__ (1001 by default,
        # which refuses real reports from senders that do not wrap lines).
        self.line_length_limit = cfg.max_line_length + 2
        self._cfg = cfg
        self._tracker = tracker
        self._budget = budget
        self._tracked = False
        self._refused = False
        self._closing = False
        self.peer = "unknown"
        self.held = 0
        self._data = bytearray()
        self._phase = _COMMANDS
        self._started = self._progress = time.monotonic()
        self._commands = 0
        self._in_command = False
        self._deadline_armed = False  # the idle/lifetime timer is armed for the deadline
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
        self._smtp_methods = {name: self._counted(name, method)
                              for name, method in self._smtp_methods.items()}

    # --- connections ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self._original_transport is None:
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if peer else "unknown"
            self._started = self._progress = time.monotonic()
            refusal = self._tracker.admit(ip, self)
            if refusal is not None:
                metrics.SMTP_REJECTED.labels("connections").inc()
                self._refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(refusal.encode() + b"\r\n")
                transport.close()
                return
            self._tracked = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._closing = True
        self._drop_data()
        if self._tracked:
            self._tracker.release(self)
            self._tracked = False
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase == _RECEIVING:
            self._progress = time.monotonic()  # bytes of a message flow: not idle
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    def shed_rank(self) -> tuple[int, float] | None:
        if self._phase == _STORING or self._closing:
            return None
        return self._phase, self._progress

    def shed(self, reply: str) -> None:
        self._close_with(reply)
        self._tracker.release(self)
        self._tracked = False

    def _drop_data(self) -> None:
        """Free the DATA buffer and give its bytes back (a message being stored keeps them)."""
        self._data.clear()
        if self._phase != _STORING:
            self._budget.give(self)

    def _close_with(self, reply: str | None) -> None:
        """Answer *reply* (None: nothing), close, free the DATA buffer at once; a peer that
        does not read its last reply is cut CLOSE_GRACE_S later."""
        self._drop_data()
        if self._closing:
            return
        self._closing = True
        transport = self.transport
        if transport is None:
            return
        if reply is not None:
            assert isinstance(transport, asyncio.WriteTransport)
            try:
                transport.write(reply.encode() + b"\r\n")
            except Exception:  # a transport broken under us: closing is all that is left
                pass
        transport.close()
        self.loop.call_later(CLOSE_GRACE_S, transport.abort)  # type: ignore[attr-defined]

    # --- timers -----------------------------------------------------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd calls this at connect and before every command it knows, NOOP included: our
        # deadlines (last progress + idle time, start + lifetime) do not move for chatter, and
        # never move earlier. So a timer armed for the deadline stays armed (not one timer per
        # command): when it fires before the deadline has come, _timeout_cb arms the next.
        if duration is None and self._deadline_armed:
            return
        self._deadline_armed = duration is None
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        due = min(self._progress + self._cfg.idle_timeout_s,
                  self._started + self._cfg.max_session_s)
        self._timeout_handle = self.loop.call_later(
            duration if duration is not None else max(due - time.monotonic(), 0.0),
            self._timeout_cb)

    def _timeout_cb(self) -> None:
        self._deadline_armed = False
        if self.transport is None or self._closing:
            return
        now = time.monotonic()
        if self._phase == _STORING:
            # The message is being committed: its reply must go out (store_timeout_s bounds it).
            self._reset_timeout(1.0)
        elif now >= self._started + self._cfg.max_session_s:
            metrics.SMTP_REJECTED.labels("lifetime").inc()
            _warn("lifetime", "session past smtp.max_session_s, closed with 421 4.4.2", self.peer)
            self._close_with(SESSION_TOO_LONG)
        elif now >= self._progress + self._cfg.idle_timeout_s:
            log.info("%s idle for %.0f s, closing", self.peer, now - self._progress)
            self._close_with(None)
        else:
            self._reset_timeout()

    # --- commands ---------------------------------------------------------------------------

    def _counted(self, name: str, method: Callable[[str | None], Awaitable[None]]
                 ) -> Callable[[str | None], Awaitable[None]]:
        """*method* behind the command cap; the commands of PROGRESS restart the idle timer."""
        progress = name in PROGRESS

        @functools.wraps(method)  # keeps the HELP text (__smtp_syntax__) aiosmtpd looks up
        async def counted(arg: str | None) -> None:
            if self._over_command_cap():
                return
            if progress:
                self._progress = time.monotonic()
            self._in_command = True
            try:
                await method(arg)
            finally:
                self._in_command = False

        return counted

    def _over_command_cap(self) -> bool:
        if self._closing:  # what was pipelined behind the last reply: ignored, not counted
            return True
        self._commands += 1
        if self._commands <= self._cfg.max_commands:
            return False
        metrics.SMTP_REJECTED.labels("commands").inc()
        _warn("commands", "session past smtp.max_commands, closed with 421 4.7.0", self.peer)
        self._close_with(TOO_MANY_COMMANDS)
        return True

    async def push(self, status: Any) -> None:
        status = _REPLIES.get(status, status)
        if status.startswith("552"):
            metrics.SMTP_REJECTED.labels("size").inc()
        elif status.startswith("530"):
            metrics.SMTP_REJECTED.labels("tls-required").inc()
        if self._closing:
            return
        # A 5xx outside a command we run answers a line that is none (unknown, bad syntax,
        # too long, refused before STARTTLS): it counts against the command cap too.
        if not self._in_command and status.startswith("5") and self._over_command_cap():
            return
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every address with the email package's header parser, and defines a
        # class on each call: most of the CPU of MAIL and RCPT. The plain form skips both.
        # (A local-part limit, which we do not set, is the parser's to check.)
        plain = plain_address(arg)
        if plain is None or self.local_part_limit:
            return super()._getaddr(arg)
        return plain

    # --- DATA -------------------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (same replies, same end of data: only <CRLF>.<CRLF>), with the
        message in one buffer, counted against the byte budget, instead of a list of lines."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        if not self._budget.has_room(self):
            metrics.SMTP_REJECTED.labels("budget").inc()
            _warn("budget", "DATA refused: smtp.max_bytes_in_flight reached", self.peer)
            await self.push(NO_ROOM)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._phase = _RECEIVING
        try:
            raw = await self._receive()
            if raw is None:
                return
            self._phase = _STORING
            self._budget.storing(self)
            self.envelope.content = self.envelope.original_content = raw
            del raw
            status = await self._call_handler_hook("DATA")
        finally:
            if self._phase == _STORING:
                self._set_post_data_state()  # the envelope holds the message: let it go
            self._phase = _COMMANDS
            self._drop_data()
        self._progress = time.monotonic()
        await self.push("250 OK" if status is MISSING else status)

    async def _receive(self) -> bytes | None:
        """The message of one DATA, dot-unstuffed; None when refused or cut (and answered)."""
        limit = self.data_size_limit
        received = 0
        state = ""  # or the reply refusing the message, sent once its end is read
        partial = False  # the last read was part of a line longer than the reader's limit
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                self._writer.close()
                raise
            except asyncio.IncompleteReadError:  # closed before the end: no message
                return None
            except asyncio.LimitOverrunError as e:
                # Longer than the line limit: read on to the end, then refuse (RFC 5321 4.2.5).
                state = state or "500 5.5.2 Line too long"
                self._drop_data()
                line = await self._reader.read(e.consumed)
            if self._closing:  # cut meanwhile (lifetime, budget): the reply is sent
                return None
            if not partial and line == b".\r\n":
                break
            partial = not line.endswith(b"\r\n")
            if state:
                continue
            received += len(line)
            if limit and received > limit:
                state = "552 5.3.4 Message too big for this system"
                self._drop_data()
                continue
            if len(line) > self.line_length_limit:
                state = "500 5.5.2 Line too long"
                self._drop_data()
                continue
            if len(self._data) + len(line) > self.held and \
                    not self._budget.take(self, max(len(line), CHARGE_STEP)):
                metrics.SMTP_REJECTED.labels("budget").inc()
                _warn("budget", "DATA cut: smtp.max_bytes_in_flight reached", self.peer)
                self._close_with(DATA_ABORTED)
                return None
            self._data += line[1:] if line.startswith(b".") else line
        if self.transport is None:
            return None
        if state:
            self._set_post_data_state()
            await self.push(state)
            return None
        raw = bytes(self._data)
        self._data.clear()  # the copy above is the message; the buffer goes now
        return raw


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
    budget: InFlightBudget

    async def drain(self, grace_s: float) -> None:
        """Stop listening, then give open sessions *grace_s* to finish their transaction."""
        self.server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.tracker.total > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)


async def start_smtp(cfg: SmtpConfig, store: StoreFn, clock: Clock,
                     reuse_port: bool = False) -> SmtpListener:
    """Listen on ``cfg.host:cfg.port`` in the running loop; *clock* dates each message.
    *reuse_port*: bind with SO_REUSEPORT, so that the kernel spreads the connections over
    the listener processes bound to the same port (``abuse-desk smtp --processes N``)."""
    handler = IntakeHandler(cfg, store, clock)
    tracker = ConnectionTracker(cfg.max_connections_per_ip, cfg.max_connections)
    budget = InFlightBudget(cfg.max_bytes_in_flight)
    context = tls_context(cfg)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: IntakeSMTP(handler, cfg, tracker, budget, tls_context=context),
        host=cfg.host, port=cfg.port, reuse_address=True, reuse_port=reuse_port or None)
    return SmtpListener(server, handler, tracker, budget)
