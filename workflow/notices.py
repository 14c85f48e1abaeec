"""The mails the desk writes: customer notices for a case's steps and acknowledgements to
people who reported abuse. Rendering (templates, headers, redaction) is in ``mailer``; this module
gathers what a mail says from the database and stores it as a ``notices`` row, ready to send.

A notice row holds the exact bytes to send, so a retry sends the same mail with the same
Message-ID; the row is created in the same transaction as the step that asked for it, and
``notices.step_id`` (unique) makes that one mail per step however often the step is delivered.

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

Every mail gets two tokens of its own (:func:`new_token`, 130 random bits, stored on its row):
the **reply token** is the random part of its Message-ID and, for mails to customers, of its
Reply-To (``abuse+r-TOKEN@``): a reply that names it (In-Reply-To/References, or sent to that
address) comes from someone who received that mail, and threads into its case (as the
customer's answer for a customer mail, as a reporter's follow-up for an acknowledgement). The
**bounce token** is in the envelope sender (VERP, ``abuse+b-TOKEN@``): a DSN with a null sender
that names it is a bounce of that mail. The case reference (``C-2026-000123``, sequential) is
for people to read; nothing threads or authorizes on it alone.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import re
import secrets
from base64 import b32encode, urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parseaddr
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from ..classifier.signatures import aligned
from ..core.config import Config
from ..core.db import as_utc, write_transaction
from ..core.fields import iso_z
from ..core.headers import first_address
from ..core.models import Case, Customer, Event, Message, Notice, Report, Setting
from ..parsers.registry import machine_sent
from . import mailer, redaction
from .calendar import BusinessCalendar

ACK_SUBJECT = "We received your report"
THEIR_SUBJECT_LIMIT = 80  # characters of the reporter's subject an acknowledgement's body shows
EVIDENCE_LIMIT = 8_000  # characters of evidence per report in a notice
REPORTS_LIMIT = 20  # reports listed per notice (the rest are counted)


def type_label(type_: str | None) -> str:
    labels = {"spam": "Spam", "virus-spam": "Virus-carrying spam",
              "spamvertising": "Spamvertizing", "malware": "Infected host (malware)",
              "hacking": "Hacking", "port-scan": "Port scanning", "ddos": "Denial of service",
              "open-service": "Open or abusable service", "copyright": "Copyright infringement",
              "harassment": "Harassment", "phishing": "Phishing", "fraud": "Fraud",
              "illegal": "Illegal content"}
    return labels.get(type_ or "", (type_ or "abuse").capitalize())


# ---- the desk's secret and self-service tokens -------------------------------------------------

def secret_key(engine: Engine, config: Config) -> bytes:
    """``notify.secret_key``, else the key kept in the database (made once, shared by all the
    desk's processes)."""
    if config.notify.secret_key:
        return config.notify.secret_key.encode()
    # Read, then maybe insert: on SQLite the write lock is taken first, or a process that
    # committed in between (a listener in a burst) made a starting worker exit with "database
    # is locked".
    with write_transaction(engine) as conn:
        value = conn.execute(select(Setting.value).where(Setting.key == "secret_key")).scalar()
        if value is None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(Setting.__table__)
                         .values(key="secret_key", value=secrets.token_urlsafe(32))
                         .on_conflict_do_nothing(index_elements=["key"]))
            value = conn.execute(select(Setting.value).where(
                Setting.key == "secret_key")).scalar_one()
    return str(value).encode()


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(secret: bytes, case_id: int, expires: datetime) -> str:
    """A self-service token for one case, valid until *expires*: ``CASE.EXPIRY.MAC``."""
    body = f"{case_id}.{int(expires.timestamp())}"
    mac = hmac.new(secret, b"self-service:" + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac[:18])}"


class TokenError(ValueError):
    """A self-service link that is not ours, altered, or expired."""


def read_token(secret: bytes, token: str, now: datetime) -> int:
    """The case id a token grants, or TokenError."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise TokenError("this link is not valid")
    body = f"{parts[0]}.{parts[1]}"
    mac = hmac.new(secret, b"self-service:" + body.encode(), hashlib.sha256).digest()
    try:
        given = urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except ValueError as exc:
        raise TokenError("this link is not valid") from exc
    if not hmac.compare_digest(given, mac[:18]):
        raise TokenError("this link is not valid")
    if int(parts[1]) < now.timestamp():
        raise TokenError("this link has expired: reply to the notice mail instead, keeping "
                         "the case reference in the subject")
    return int(parts[0])


# ---- the tokens of our mails ----------------------------------------------------------------

def new_token() -> str:
    """130 random bits in 26 characters of lower-case base32: fit for a local part (and safe
    from the MTAs that lower-case one)."""
    return b32encode(secrets.token_bytes(17)).decode("ascii").lower()[:26]


def tagged_address(address: str, delimiter: str, tag: str) -> str:
    """``abuse@example.net`` with *tag*: ``abuse+TAG@example.net`` (*delimiter* "+")."""
    local, _, domain = address.rpartition("@")
    return f"{local}{delimiter}{tag}@{domain}"


def envelope_sender(config: Config, bounce_token: str | None) -> str:
    """The MAIL FROM of a mail: its VERP address ``abuse+b-TOKEN@`` (bounces come back to it),
    or ``notify.from_address`` without a token or with ``smtp.recipient_delimiter`` empty."""
    delimiter = config.smtp.recipient_delimiter
    if not bounce_token or not delimiter:
        return config.notify.from_address
    return tagged_address(config.notify.from_address, delimiter, f"b-{bounce_token}")


def reply_address(config: Config, reply_token: str) -> str | None:
    """The Reply-To of a mail to a customer, ``abuse+r-TOKEN@``; None without a delimiter."""
    delimiter = config.smtp.recipient_delimiter
    if not delimiter:
        return None
    return tagged_address(config.notify.from_address, delimiter, f"r-{reply_token}")


# ---- what a notice says --------------------------------------------------------------------------

@dataclass(frozen=True)
class Writer:
    """Everything a notice needs that is not in the database."""

    config: Config
    calendar: BusinessCalendar
    templates: mailer.Templates
    secret: bytes

    def message_id(self, case_ref: str, tag: str, token: str | None = None) -> str:
        """``<C-2026-000123.notice.TOKEN@smtp.hostname>``: the reply token makes it unguessable
        (a reply naming it in In-Reply-To proves it answers this mail)."""
        return (f"<{case_ref}.{tag}.{token or secrets.token_hex(6)}"
                f"@{self.config.smtp.hostname}>")

    def self_service_url(self, case_id: int, now: datetime) -> str:
        token = make_token(self.secret, case_id,
                           now + timedelta(days=self.config.notify.token_days))
        return f"{self.config.notify.public_url.rstrip('/')}/self-service/{token}"


def _when(value: datetime | None, zone: str) -> str:
    value = as_utc(value)
    return mailer.format_deadline(value.replace(microsecond=0), zone) if value else ""


def _report_view(row: Any, secret: bytes, zone: str,
                 show_reporter_for: Collection[str] = ()) -> dict[str, Any]:
    fields = row.fields or {}
    evidence = str(fields.get("evidence") or "")
    recipients = mailer.recipients_in_evidence(evidence)
    rcpt = (fields.get("extra") or {}).get("original_rcpt_to")
    # Values arrive as the reporter wrote them ("<victim@example.net>", several per field):
    # take the bare addresses out so the redaction matches them wherever they appear.
    for value in rcpt if isinstance(rcpt, list) else [rcpt] if isinstance(rcpt, str) else []:
        recipients.extend(mailer.addresses_in(str(value)))
    evidence = mailer.redact(evidence, recipients, secret)
    # A complaint a person wrote: the customer reads it without the writer's personal data,
    # unless notify.show_reporter_for names its type or format (workflow/redaction.py).
    person = (not machine_sent(row.format)
              and not {row.format, row.type} & set(show_reporter_for))
    if person:
        display = parseaddr(row.header_from or "")[0]
        evidence = redaction.redact_person(
            evidence, names=[n for n in (display, fields.get("reporter_org")) if n],
            addresses=[a for a in (fields.get("reporter_address"),
                                   first_address(row.header_from)) if a], secret=secret)
    if len(evidence) > EVIDENCE_LIMIT:
        evidence = evidence[:EVIDENCE_LIMIT] + "\n[... evidence cut here ...]"
    return {
        "received_at": _when(row.received_at, zone),
        "format": row.format,
        "reporter": "a third party" if person else _reporter(fields, row.format,
                                                             row.header_from),
        "source_ip": row.source_ip, "source_port": row.source_port,
        "occurred_at": _when(row.occurred_at, zone) or None,
        "urls": [str(u) for u in (fields.get("urls") or [])][:20],
        "domains": [str(d) for d in (fields.get("domains") or [])][:20],
        "evidence": evidence,
    }


def _reporter(fields: dict[str, Any], fmt: str, header_from: str | None) -> str:
    """Who complained, as the customer may read it: an organisation's name or a machine
    sender's domain; never the name or address of a person."""
    if fields.get("reporter_org"):
        return mailer.header_safe(fields["reporter_org"], 120)
    sender = first_address(header_from)
    if machine_sent(fmt) and sender:
        return sender.rpartition("@")[2]
    return "a third party"


def report_views(conn: Connection, case_id: int, secret: bytes, zone: str,
                 since: datetime | None = None,
                 show_reporter_for: Collection[str] = ()) -> list[dict[str, Any]]:
    """The case's reports as a notice shows them, evidence redacted (RFC 6590; a person's
    personal data, see :mod:`workflow.redaction`) and cut."""
    stmt = (select(Report.format, Report.type, Report.source_ip, Report.source_port,
                   Report.occurred_at, Report.fields, Message.received_at,
                   Message.header_from)
            .join(Message, Message.id == Report.message_id)
            .where(Report.case_id == case_id).order_by(Report.id))
    if since is not None:
        stmt = stmt.where(Report.created_at >= since)
    return [_report_view(r, secret, zone, show_reporter_for)
            for r in conn.execute(stmt.limit(REPORTS_LIMIT))]


def _money(cents: int, currency: str) -> str:
    return f"{currency} {cents / 100:,.2f}"


def context(conn: Connection, writer: Writer, case: Any, customer: Any, kind: str,
            now: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    cfg = writer.config
    zone = customer.time_zone or cfg.workflow.time_zone
    deadline = as_utc(case.deadline_at)
    if case.timeline_class == "prompt":
        time_left = f"{cfg.workflow.prompt_hours:g} hours"
    else:
        time_left = f"{cfg.workflow.business_days} business days"
    fee = None
    if kind == "escalation":
        from ..core.models import FeeEntry

        amounts = conn.execute(select(func.count(), func.coalesce(func.sum(
            FeeEntry.amount_cents), 0)).where(FeeEntry.case_id == case.id,
                                               FeeEntry.state == "assessed")).one()
        fee = {"amount": _money(cfg.workflow.fee_amount_cents, cfg.workflow.fee_currency),
               "currency": cfg.workflow.fee_currency, "count": int(amounts[0]),
               "total": _money(int(amounts[1]), cfg.workflow.fee_currency),
               "lines": _fee_lines(conn, case.id, zone)} if amounts[0] else None
    since = None
    if kind == "update" and detail.get("since"):
        since = datetime.fromisoformat(detail["since"])
    return {
        "org": cfg.notify.organization,
        "kind": kind,
        "case": {
            "reference": case.reference, "category": case.category, "type": case.type,
            "type_label": type_label(case.type), "state": case.state, "claims": case.claims,
            "timeline_class": case.timeline_class,
            "opened_at": _when(case.opened_at, zone),
            "deadline": mailer.format_deadline(deadline, zone) if deadline else "",
            "deadline_utc": iso_z(deadline) or "",
            "time_left": time_left,
        },
        "customer": {"name": customer.name, "external_id": customer.external_id},
        "reports": report_views(conn, case.id, writer.secret, zone,
                                show_reporter_for=cfg.notify.show_reporter_for),
        "new_reports": report_views(conn, case.id, writer.secret, zone, since,
                                    cfg.notify.show_reporter_for) if since else [],
        "self_service_url": writer.self_service_url(case.id, now),
        "copyright_guide_url": (cfg.notify.copyright_guide_url
                                if case.type == "copyright" else None),
        "fee_amount": _money(cfg.workflow.fee_amount_cents, cfg.workflow.fee_currency),
        "fee": fee,
        "action": detail.get("action"),
        "reason": detail.get("reason"),
        "history": _history(detail, zone) if kind == "escalation" else None,
        "ack": None,
    }


def _history(detail: dict[str, Any], zone: str) -> dict[str, Any]:
    """What happened before an escalation, as its mail tells it: when the customer was
    notified, which deadline passed, when they said it was fixed and when the conduct came back
    (the dates ``workflow.cases`` put on the escalation step)."""
    def when(key: str) -> str | None:
        value = detail.get(key)
        if not value:
            return None
        try:
            return _when(datetime.fromisoformat(str(value)), zone) or None
        except ValueError:
            return None

    return {"notified": when("notified_at"), "deadline": when("deadline_at"),
            "fixed": when("fixed_at"), "returned": when("incident_at"),
            "cooperating": bool(detail.get("cooperating"))}


def _fee_lines(conn: Connection, case_id: int, zone: str) -> list[dict[str, Any]]:
    """The case's assessed fees, one per complaint, with the complaint's arrival and the reason
    it was charged."""
    from ..core.models import FeeEntry

    rows = conn.execute(
        select(FeeEntry.amount_cents, FeeEntry.currency, FeeEntry.reason, Message.received_at,
               Report.source_ip)
        .join(Report, Report.id == FeeEntry.report_id)
        .join(Message, Message.id == Report.message_id)
        .where(FeeEntry.case_id == case_id, FeeEntry.state == "assessed")
        .order_by(FeeEntry.id).limit(REPORTS_LIMIT))
    return [{"amount": _money(r.amount_cents, r.currency), "received_at": _when(r.received_at,
                                                                                  zone),
             "source_ip": r.source_ip, "reason": r.reason or ""} for r in rows]


def create_notice(conn: Connection, writer: Writer, case_id: int, kind: str, step_id: int,
                  now: datetime, detail: dict[str, Any] | None = None) -> int:
    """Write the customer's notice for a step; returns the notice id. A customer without an
    address gets a notice row marked failed, so the case shows it was not sent."""
    detail = detail or {}
    case = conn.execute(select(Case).where(Case.id == case_id)).one()
    customer = conn.execute(select(Customer).where(Customer.id == case.customer_id)).one()
    rendered = writer.templates.render(kind, case.category, case.type,
                                       context(conn, writer, case, customer, kind, now, detail))
    subject = f"[Abuse Case {case.reference}] {rendered.subject}"
    reply_token, bounce_token = new_token(), new_token()
    msg_id = writer.message_id(case.reference, kind, reply_token)
    notify = writer.config.notify
    to_addr = _valid_address(customer.email)
    values: dict[str, Any] = {
        "case_id": case_id, "step_id": step_id, "kind": kind, "header_message_id": msg_id,
        "to_addr": to_addr or (customer.email or ""), "subject": subject,
        "body_text": rendered.text, "body_html": rendered.html, "created_at": now,
        "next_attempt_at": now, "attempts": 0, "reply_token": reply_token,
        "bounce_token": bounce_token}
    if to_addr is None:
        values.update(state="failed", error=(
            f"customer {customer.external_id} has no valid e-mail address "
            f"({customer.email!r}); set it with `abuse-desk customers import`"))
    else:
        values.update(state="pending", raw=mailer.compose(
            from_addr=notify.from_address, from_name=notify.from_name, to_addr=to_addr,
            subject=subject, message_id=msg_id, date=now, text=rendered.text,
            html=rendered.html, organization=notify.organization,
            reply_to=reply_address(writer.config, reply_token)))
    return int(conn.execute(insert(Notice).values(**values).returning(Notice.id)).scalar_one())


def _valid_address(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


# ---- acknowledgements ------------------------------------------------------------------------

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
    return _valid_address(modern[0])


def ack_address(raw: bytes, authentication: Mapping[str, Any] | None) -> str | None:
    """Where an acknowledgement may go: nowhere unless the From is authenticated
    (*authentication* as ``SenderAuthentication.to_json()`` gives it); then the Reply-To when it
    is one unambiguous address whose domain is aligned with the authenticated From domain (a
    person writing from a colleague's mailbox of the same organisation), else the From."""
    if not authentication or authentication.get("authenticated") is not True:
        return None
    sender = _valid_address(str(authentication.get("address") or ""))
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


def mail_event(conn: Connection, now: datetime, case_id: int | None, message_id: int | None,
               what: str, **detail: Any) -> None:
    """An audit event about one of our mails (sent, failed, bounced): on its case, or, for an
    acknowledgement of a complaint without a case, on the message it answers."""
    subject_type, subject_id = ("case", case_id) if case_id is not None else ("message",
                                                                              message_id)
    if subject_id is None:
        return
    conn.execute(insert(Event).values(at=now, actor_kind="system", actor="timeline",
                                      subject_type=subject_type, subject_id=subject_id,
                                      action=what, detail=detail))


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
                "received_at": _when(msg.received_at, writer.config.workflow.time_zone)},
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


# ---- a specialist's own message to the customer -------------------------------------------------

_MESSAGE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
MESSAGE_LIMIT = 10_000  # characters of a specialist's message


class NoAddress(ValueError):
    """The customer has no address a message can go to."""


def message_text(text: str) -> str:
    """A person's message as the text part carries it: line ends normalised (CR LF, lone CR,
    NEL, LINE/PARAGRAPH SEPARATOR become LF), other control characters dropped (tabs kept),
    trailing spaces cut, at most ``MESSAGE_LIMIT`` characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x85", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _MESSAGE_CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")[:MESSAGE_LIMIT]


def _first_notice_id(conn: Connection, case_id: int) -> str | None:
    """The Message-ID of the first mail the case sent the customer (not an acknowledgement to
    a reporter), to thread a message under it."""
    value = conn.execute(select(Notice.header_message_id).where(
        Notice.case_id == case_id, Notice.kind != "ack", Notice.step_id.is_not(None))
        .order_by(Notice.id).limit(1)).scalar()
    return mailer.msg_id_or_none(value)


def create_message(conn: Connection, writer: Writer, case_id: int, text: str, now: datetime,
                   subject: str = "") -> int:
    """A specialist's message to the case's customer, as a notice of kind ``message`` ready to
    send (the timeline delivers it like any notice); returns the notice id.

    The text is the person's, so it goes out as it was written, in a plain-text part only (no
    HTML to escape it into): :func:`message_text` keeps it to text, and it never reaches a
    header. The mail carries the case tag in its Subject, answers the case's first notice
    (In-Reply-To, References) and says ``Auto-Submitted: no`` (RFC 3834: a person wrote it, so
    the customer's systems may answer it like any mail). Raises :class:`NoAddress` when the
    customer has no valid address and ValueError for an empty text."""
    body = message_text(text)
    if not body.strip():
        raise ValueError("the message is empty")
    case = conn.execute(select(Case).where(Case.id == case_id)).one()
    customer = conn.execute(select(Customer).where(Customer.id == case.customer_id)).one()
    to_addr = _valid_address(customer.email)
    if to_addr is None:
        raise NoAddress(f"customer {customer.external_id} ({customer.name}) has no valid e-mail "
                        f"address ({customer.email!r}); set it with `abuse-desk customers "
                        "import`, or reach them another way")
    cfg = writer.config
    notify = cfg.notify
    title = mailer.header_safe(subject, 150) if subject.strip() else (
        f"A message about your case ({type_label(case.type)})")
    full_subject = f"[Abuse Case {case.reference}] {title}"
    link = writer.self_service_url(case.id, now)
    text_part = (
        f"Dear {mailer.header_safe(customer.name, 200)},\n\n"
        f"{body}\n\n"
        f"Case reference:  {case.reference}\n"
        f"Customer number: {customer.external_id}\n\n"
        f"Reply to this email and keep the case reference [{case.reference}] in\n"
        "the subject line, so that your answer reaches the right case.\n"
        f"You can also see the case and answer online:\n{link}\n\n"
        f"Kind regards,\n{notify.organization} Abuse Team\n")
    reply_token, bounce_token = new_token(), new_token()
    msg_id = writer.message_id(case.reference, "message", reply_token)
    parent = _first_notice_id(conn, case_id)
    raw = mailer.compose(
        from_addr=notify.from_address, from_name=notify.from_name, to_addr=to_addr,
        subject=full_subject, message_id=msg_id, date=now, text=text_part, html=None,
        in_reply_to=parent, references=[parent] if parent else [], auto_submitted="no",
        organization=notify.organization, reply_to=reply_address(cfg, reply_token))
    return int(conn.execute(insert(Notice).values(
        case_id=case_id, kind="message", header_message_id=msg_id, to_addr=to_addr,
        subject=mailer.header_safe(full_subject, 250), body_text=text_part, body_html=None,
        state="pending", attempts=0, raw=raw, created_at=now, next_attempt_at=now,
        reply_token=reply_token, bounce_token=bounce_token,
    ).returning(Notice.id)).scalar_one())
