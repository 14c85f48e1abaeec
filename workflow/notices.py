"""The mails the desk writes to customers: notices for a case's steps and a specialist's own
messages. Rendering (templates, headers, redaction) is in ``mailer``; this module gathers what a
mail says from the database and stores it as a ``notices`` row, ready to send. The tokens every
mail carries are made in ``tokens``; acknowledgements to people who reported abuse are written
in ``acks``.

A notice row holds the exact bytes to send, so a retry sends the same mail with the same
Message-ID; the row is created in the same transaction as the step that asked for it, and
``notices.step_id`` (unique) makes that one mail per step however often the step is delivered.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, func, insert, select

from ..core.config import Config
from ..core.db import as_utc
from ..core.fields import iso_z
from ..core.headers import first_address
from ..core.models import Case, Customer, Event, Message, Notice, Report
from ..parsers.registry import machine_sent
from . import mailer, redaction
from .calendar import BusinessCalendar
from .tokens import make_token, new_token, reply_address

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


def local_time(value: datetime | None, zone: str) -> str:
    """*value* as our mails show a time, in *zone*; "" for None (also used by ``acks``)."""
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
        "received_at": local_time(row.received_at, zone),
        "format": row.format,
        "reporter": "a third party" if person else _reporter(fields, row.format,
                                                             row.header_from),
        "source_ip": row.source_ip, "source_port": row.source_port,
        "occurred_at": local_time(row.occurred_at, zone) or None,
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
            "opened_at": local_time(case.opened_at, zone),
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
            return local_time(datetime.fromisoformat(str(value)), zone) or None
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
    return [{"amount": _money(r.amount_cents, r.currency), "received_at": local_time(r.received_at,
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
    to_addr = valid_address(customer.email)
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


def valid_address(value: str | None) -> str | None:
    """*value* as a normalised address a mail may go to, or None (also used by ``acks``)."""
    if not value:
        return None
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


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
    to_addr = valid_address(customer.email)
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
