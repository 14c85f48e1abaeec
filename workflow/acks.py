"""Acknowledgements to people who reported abuse (the notices to customers are in
``notices``, the tokens every mail carries in ``tokens``).

Every person who writes in is acknowledged, whatever becomes of the complaint: one that opens
or joins a case gets the case's reference, one that goes to review or is not about us gets the
message's own (``M-2026-000123``, :func:`message_reference`; such an acknowledgement has no case,
and its delivery, bounce and follow-ups are recorded on the message). Acknowledgements go to
people only (RFC 3834), and only to a sender whose From is authenticated
(``messages.sender_authentication``, see ``classifier/authentication.py``): to that From, or to
the Reply-To when its domain is aligned with the authenticated From domain. Never to a null
sender, to mail marked ``Auto-Submitted`` (other than ``no``), ``Precedence: bulk/list/junk``,
mailing lists (``List-*``), ``X-Auto-Response-Suppress``, the machine formats
(``parsers.registry.machine_sent``), machines' addresses (MAILER-DAEMON, no-reply, owner-*,
*-request) or
the desk's own addresses; at most ``notify.ack_limit_per_sender`` per reporter address per
``notify.ack_limit_window_hours`` (one an hour by default), one per message. They carry
``Auto-Submitted: auto-replied`` and In-Reply-To/References naming the reporter's message. Their
Subject is ours alone (``[Abuse Case C-...] We received your report``, ``[Abuse Report M-...]``
without a case): nothing the reporter wrote goes into it; their subject appears in the body
only, cut short.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses
from typing import Any

from sqlalchemy import Connection, func, insert, select

from ..classifier.signatures import aligned
from ..core.config import Config
from ..core.models import Case, Message, Notice
from ..parsers.registry import machine_sent
from . import mailer
from .notices import Writer, local_time, type_label, valid_address
from .tokens import new_token

ACK_SUBJECT = "We received your report"
THEIR_SUBJECT_LIMIT = 80  # characters of the reporter's subject an acknowledgement's body shows

_LIST_HEADER = re.compile(r"^list-(?:id|unsubscribe|post|help|owner|archive)$", re.I)
# Local parts of machines' addresses (RFC 3834 section 2: never answer MAILER-DAEMON, owner-*,
# *-request; and the no-reply addresses senders put on mail nobody reads).
_MACHINE_LOCAL = re.compile(
    r"^(?:mailer-daemon|no-?reply|do-?not-?reply|noreply-[a-z0-9._-]{0,64}|"
    r"owner-[a-z0-9._+-]{0,64}|[a-z0-9._+-]{0,64}-(?:request|owner))$", re.I)
# Microsoft's way to ask for no auto-replies.
_SUPPRESS = frozenset({"all", "autoreply", "oof"})


def _head(raw: bytes) -> Any:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:262_144]
    return email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.compat32)


def machine_address(address: str | None) -> bool:
    """Whether *address* is one machines write from (MAILER-DAEMON, owner-*, *-request,
    no-reply ...): never answered."""
    local = (address or "").strip().strip("<>").rpartition("@")[0]
    return bool(_MACHINE_LOCAL.match(local.split("+", 1)[0]))


def automated_reason(raw: bytes, mail_from: str | None, fmt: str | None) -> str | None:
    """Why a message comes from a machine (no acknowledgement, RFC 3834), or None for a
    person."""
    if not mail_from or mail_from.strip() in ("<>", ""):
        return "null sender"
    if machine_address(mail_from):
        return f"sent from a machine's address ({mail_from[:80]})"
    if machine_sent(fmt):
        return f"machine format {fmt}"
    headers = _head(raw)
    auto = str(headers.get("Auto-Submitted", "no")).strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto[:40]}"
    precedence = str(headers.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    if any(_LIST_HEADER.match(name) for name in headers):
        return "mailing list headers"
    suppress = {v.strip().lower() for v in str(headers.get("X-Auto-Response-Suppress", ""))
                .split(",")}
    if suppress & _SUPPRESS:
        return "X-Auto-Response-Suppress"
    return None


def own_address(config: Config, address: str) -> bool:
    """Whether *address* is one of the desk's own: the sender of its mails (with or without a
    tag, ``abuse+r-...@``), or a mailbox it receives at (``smtp.mailboxes`` at
    ``smtp.domains``). The desk never acknowledges itself."""
    local, _, domain = address.strip().lower().rpartition("@")
    delimiter = config.smtp.recipient_delimiter
    base = local.split(delimiter, 1)[0] if delimiter else local
    sender_local, _, sender_domain = config.notify.from_address.lower().rpartition("@")
    if domain == sender_domain and base == sender_local:
        return True
    return domain in {d.lower() for d in config.smtp.domains} \
        and base in {m.lower() for m in config.smtp.mailboxes}


def _one_address(value: str) -> str | None:
    """The one address in a header value, only when the modern parser and ``getaddresses``
    agree on it (the two read crafted values differently: CVE-2023-27043)."""
    try:
        header = email.policy.default.header_factory("From", value)
        modern = [a.addr_spec for a in header.addresses]
    except Exception:  # a value the parser cannot read: no acknowledgement
        return None
    legacy = [addr for _name, addr in getaddresses([value])]
    if len(modern) != 1 or legacy != modern or modern[0].count("@") != 1:
        return None
    return valid_address(modern[0])


def ack_address(raw: bytes, authentication: Mapping[str, Any] | None) -> str | None:
    """Where an acknowledgement may go: nowhere unless the From is authenticated
    (*authentication* as ``SenderAuthentication.to_json()`` gives it); then the Reply-To when it
    is one unambiguous address whose domain is aligned with the authenticated From domain (a
    person writing from a colleague's mailbox of the same organisation), else the From."""
    if not authentication or authentication.get("authenticated") is not True:
        return None
    sender = valid_address(str(authentication.get("address") or ""))
    domain = str(authentication.get("domain") or "")
    if sender is None or not domain:
        return None
    values = [str(v) for v in _head(raw).get_all("Reply-To", [])]
    if len(values) == 1:  # several Reply-To headers: do not guess (CVE-2023-27043)
        reply_to = _one_address(values[0])
        if reply_to is not None and aligned(reply_to.rpartition("@")[2], domain):
            return reply_to
    return sender


def message_reference(message_id: int, received_at: datetime) -> str:
    """The reference of a complaint that has no case (yet): ``M-2026-000123`` (the message's
    id and the year it was received), what an acknowledgement names when the complaint went to
    review or was not ours."""
    year = received_at.replace(tzinfo=received_at.tzinfo or UTC).astimezone(UTC).year
    return f"M-{year}-{message_id:06d}"


def ack_refusal(conn: Connection, config: Config, message_id: int,
                now: datetime) -> tuple[str | None, str | None]:
    """(the address an acknowledgement of *message_id* goes to, None) or (None, why none is
    due): acknowledgements on; not acknowledged already; a person's message (not a null
    sender, a machine's address or format, ``Auto-Submitted``, bulk or list mail); a From
    authenticated (see :func:`ack_address`) and not our own; under the limit of
    ``notify.ack_limit_per_sender`` per address per ``notify.ack_limit_window_hours``."""
    notify = config.notify
    if not notify.acknowledge:
        return None, "acknowledgements are off (notify.acknowledge)"
    if conn.execute(select(Notice.id).where(Notice.message_id == message_id)).first():
        return None, "already acknowledged"
    msg = conn.execute(select(Message.raw, Message.mail_from, Message.format,
                              Message.sender_authentication)
                       .where(Message.id == message_id)).one()
    automated = automated_reason(msg.raw, msg.mail_from, msg.format)
    if automated is not None:
        return None, automated
    to_addr = ack_address(msg.raw, msg.sender_authentication)
    if to_addr is None:
        return None, "the sender is not authenticated"
    if own_address(config, to_addr) or machine_address(to_addr):
        return None, f"{to_addr} is our own or a machine's address"
    since = now - timedelta(hours=notify.ack_limit_window_hours)
    sent = conn.execute(select(func.count()).select_from(Notice).where(
        Notice.kind == "ack", func.lower(Notice.to_addr) == to_addr.lower(),
        Notice.created_at >= since)).scalar_one()
    if sent >= notify.ack_limit_per_sender:
        return None, (f"{to_addr} was acknowledged {sent} time(s) within "
                      f"{notify.ack_limit_window_hours:g} h (notify.ack_limit_per_sender)")
    return to_addr, None


def create_ack(conn: Connection, writer: Writer, message_id: int, case_id: int | None,
               now: datetime) -> int | None:
    """Acknowledge a person's complaint once, with the case reference, or with the message's
    own (:func:`message_reference`) when *case_id* is None (the complaint went to review, or
    is not about us); returns the notice id, or None when no acknowledgement is due (see
    :func:`ack_refusal`)."""
    notify = writer.config.notify
    to_addr, _why = ack_refusal(conn, writer.config, message_id, now)
    if to_addr is None:
        return None
    msg = conn.execute(select(Message.header_subject, Message.header_message_id,
                              Message.received_at).where(Message.id == message_id)).one()
    if case_id is not None:
        case = conn.execute(select(Case).where(Case.id == case_id)).one()
        reference, tag = case.reference, "Abuse Case"
        about = {"reference": case.reference, "category": case.category, "type": case.type,
                 "type_label": type_label(case.type), "state": case.state,
                 "claims": case.claims, "timeline_class": case.timeline_class}
    else:
        reference, tag = message_reference(message_id, msg.received_at), "Abuse Report"
        about = {"reference": reference, "category": None, "type": None,
                 "type_label": type_label(None), "state": "received", "claims": 1,
                 "timeline_class": ""}
    ctx: dict[str, Any] = {
        "org": notify.organization, "kind": "ack",
        "case": {**about, "opened_at": "", "deadline": "", "deadline_utc": "", "time_left": ""},
        "customer": {"name": "", "external_id": ""}, "reports": [], "new_reports": [],
        "self_service_url": None, "copyright_guide_url": None, "fee_amount": "", "fee": None,
        "action": None, "reason": None,
        "ack": {"their_subject": mailer.header_safe(msg.header_subject or "(no subject)",
                                                    THEIR_SUBJECT_LIMIT),
                "received_at": local_time(msg.received_at, writer.config.workflow.time_zone)},
    }
    rendered = writer.templates.render("ack", about["category"], about["type"], ctx)
    # Ours alone, whatever the template says: a Subject that repeated the reporter's would let
    # anyone have the desk send their text under its name.
    subject = f"[{tag} {reference}] {ACK_SUBJECT}"
    reply_token, bounce_token = new_token(), new_token()
    msg_id = writer.message_id(reference, "ack", reply_token)
    their_id = mailer.msg_id_or_none(msg.header_message_id)
    raw = mailer.compose(
        from_addr=notify.from_address, from_name=notify.from_name, to_addr=to_addr,
        subject=subject, message_id=msg_id, date=now, text=rendered.text, html=rendered.html,
        in_reply_to=their_id, references=[their_id] if their_id else [],
        auto_submitted="auto-replied", organization=notify.organization)
    return int(conn.execute(insert(Notice).values(
        case_id=case_id, message_id=message_id, kind="ack", header_message_id=msg_id,
        to_addr=to_addr, subject=subject, body_text=rendered.text, body_html=rendered.html,
        state="pending", attempts=0, raw=raw, created_at=now, next_attempt_at=now,
        reply_token=reply_token, bounce_token=bounce_token,
    ).returning(Notice.id)).scalar_one())
