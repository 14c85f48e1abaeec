"""Mail about the desk's own mails: replies threaded into their cases, bounces marked on their
notices, and case tags that prove nothing on their own.

What proves what (``workflow/tokens.py`` makes the tokens):

* **A reply** threads into a case when it names one of our mails by something only its
  recipients know: the mail's Message-ID in In-Reply-To/References, or its reply address
  ``abuse+r-TOKEN@`` as a recipient (envelope or header). A reply to a mail to the customer
  (notice, reminder, a specialist's message, ...) is the customer's answer; a reply to an
  acknowledgement is the reporter's follow-up, attached to the case and never taken for the
  customer's word.
* **A case tag alone** (``[Abuse Case C-2026-000123]`` in a Subject: sequential, anyone can
  write it) threads only a message whose From is authenticated (``classifier/authentication``)
  and is one of the customer's known addresses (``customers.email``, and the customer's
  ``email`` resources valid now). Any other message with a tag is a new report, parsed and
  classified as usual, with the reference kept on it as a hint for specialists. A tag naming
  no case at all sends the message to review, as a reply that matched nothing.
* **A bounce** marks a mail bounced only when it came with a null envelope sender (as DSNs do,
  RFC 5321 section 4.5.5) and names the mail's bounce token (its VERP envelope sender
  ``abuse+b-TOKEN@``), and is a failure: not a delay warning (4.x.x) or a success notice
  (2.x.x), not a read receipt. Any other DSN is ignored, with the reason on the message's
  event and in the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from ..core.models import Case, Customer, CustomerResource, Notice, Report
from ..parsers.base import ParseResult
from ..parsers.formats.guards import BOUNCE_TOKEN, REPLY_TOKEN, case_reference, tokens_in
from . import cases


@dataclass(frozen=True)
class Threaded:
    """What became of a reply or a bounce: the case it joined, or why a person must look at
    it (``review``), and a note for the message's event."""

    case_id: int | None = None
    review: str | None = None
    note: str | None = None


def null_sender(mail_from: str | None) -> bool:
    return (mail_from or "").strip() in ("", "<>")


def _envelope_tokens(pattern: Any, rcpt_tos: Sequence[str] | None) -> list[str]:
    return tokens_in(pattern, [str(r) for r in (rcpt_tos or [])[:100]])


# ---- a case tag, and who may use it ------------------------------------------------------------

def customer_addresses(conn: Connection, customer_id: int, now: datetime) -> set[str]:
    """The addresses a customer writes from, as far as the desk knows: its ``email`` and its
    ``email`` resources valid at *now* (lower case)."""
    found = {str(e).strip().lower() for e in conn.execute(
        select(Customer.email).where(Customer.id == customer_id)).scalars() if e}
    found.update(str(v).strip().lower() for v in conn.execute(
        select(CustomerResource.value).where(
            CustomerResource.customer_id == customer_id, CustomerResource.kind == "email",
            or_(CustomerResource.valid_from.is_(None), CustomerResource.valid_from <= now),
            or_(CustomerResource.valid_until.is_(None), CustomerResource.valid_until > now)))
        .scalars())
    return found


@dataclass(frozen=True)
class CaseTag:
    """A case reference in a Subject and what it proves: ``case_id`` when the message is the
    customer's (authenticated From, a known address), else ``why_not``."""

    reference: str
    case_id: int | None
    why_not: str
    exists: bool = True  # False: no case has this reference

    def hint(self) -> dict[str, str]:
        return {"reference": self.reference, "not_threaded": self.why_not}


def case_tag(conn: Connection, subject: str | None,
             authentication: Mapping[str, Any] | None, now: datetime) -> CaseTag | None:
    """The case tag of *subject* and whether the sender may thread by it (None: no tag)."""
    reference = case_reference(subject)
    if reference is None:
        return None
    case = conn.execute(select(Case.id, Case.customer_id).where(
        Case.reference == reference)).first()
    if case is None:
        return CaseTag(reference, None, f"no case {reference}", exists=False)
    auth = authentication or {}
    if auth.get("authenticated") is not True:
        return CaseTag(reference, None, "the sender's From is not authenticated ("
                       f"{str(auth.get('reason') or 'not checked')[:200]})")
    address = str(auth.get("address") or "").lower()
    if address not in customer_addresses(conn, case.customer_id, now):
        return CaseTag(reference, None,
                       f"{address} is not an address of the case's customer")
    return CaseTag(reference, int(case.id), "")


# ---- replies -------------------------------------------------------------------------------------

def envelope_reply_tokens(rcpt_tos: Sequence[str] | None) -> list[str]:
    """The reply tokens of our tagged addresses among the envelope's recipients."""
    return _envelope_tokens(REPLY_TOKEN, rcpt_tos)


def known_reply_token(conn: Connection, tokens: Sequence[str]) -> bool:
    """Whether one of *tokens* is the reply token of a mail of ours."""
    return bool(tokens) and conn.execute(select(Notice.id).where(
        Notice.reply_token.in_(list(tokens))).limit(1)).first() is not None


def _named_mail(conn: Connection, message_ids: Sequence[str], tokens: Sequence[str]) -> Any:
    """The newest of our mails that *message_ids* (exact Message-IDs) or *tokens* (reply
    tokens) name, or None."""
    conditions = []
    if message_ids:
        conditions.append(func.lower(Notice.header_message_id).in_(list(message_ids)))
    if tokens:
        conditions.append(Notice.reply_token.in_(list(tokens)))
    if not conditions:
        return None
    return conn.execute(select(Notice.id, Notice.case_id, Notice.kind, Notice.to_addr)
                        .where(or_(*conditions)).order_by(Notice.id.desc()).limit(1)).first()


def _case_of_acknowledged(conn: Connection, notice_id: int) -> int | None:
    """The case the complaint an acknowledgement without a case answered has joined since (a
    specialist decided it), or None."""
    acknowledged = select(Notice.message_id).where(Notice.id == notice_id).scalar_subquery()
    found = conn.execute(select(Report.case_id).where(
        Report.message_id == acknowledged, Report.case_id.is_not(None))
        .order_by(Report.seq).limit(1)).scalar()
    return int(found) if found is not None else None


def attach_reply(conn: Connection, message_id: int, sender: str, result: ParseResult,
                 now: datetime, *, rcpt_tos: Sequence[str] | None = None) -> Threaded:
    """Thread a reply (see the module docstring): into the case of the mail it names, or, with
    ``contact_case`` in its ``extra`` (a case tag the pipeline proved with
    :func:`case_tag`), into that case as the customer's answer."""
    extra = result.extra or {}
    ids = [str(i).lower() for i in extra.get("notice_message_ids") or []]
    tokens = list(dict.fromkeys(
        [str(t).lower() for t in extra.get("reply_tokens") or []]
        + _envelope_tokens(REPLY_TOKEN, rcpt_tos)))
    mail = _named_mail(conn, ids, tokens)
    if mail is not None and mail.case_id is None:  # our acknowledgement of a caseless report
        case_id = _case_of_acknowledged(conn, mail.id)
        if case_id is None:
            return Threaded(review=(
                f"a reporter's follow-up to acknowledgement {mail.id}, whose complaint has no "
                "case (it is in review or was not ours)"))
        cases.attach_message(conn, message_id, case_id)
        cases.event(conn, now, cases.Actor("reporter", sender), case_id, "reporter-replied",
                    message_id=message_id, notice_id=mail.id)
        return Threaded(case_id, note=f"a reporter's follow-up to notice {mail.id}")
    if mail is not None:
        cases.attach_message(conn, message_id, mail.case_id)
        if mail.kind == "ack":  # the reporter who got our acknowledgement, not the customer
            cases.event(conn, now, cases.Actor("reporter", sender), mail.case_id,
                        "reporter-replied", message_id=message_id, notice_id=mail.id)
            return Threaded(mail.case_id, note=f"a reporter's follow-up to notice {mail.id}")
        cases.customer_responded(conn, mail.case_id, now, cases.Actor("customer", sender),
                                 message_id=message_id, via="mail",
                                 proof="names our mail", notice_id=mail.id)
        return Threaded(mail.case_id, note=f"the customer's answer to notice {mail.id}")
    contact_case = extra.get("contact_case")
    if isinstance(contact_case, int):
        cases.attach_message(conn, message_id, contact_case)
        cases.customer_responded(conn, contact_case, now, cases.Actor("customer", sender),
                                 message_id=message_id, via="mail",
                                 proof="case tag from an authenticated customer address")
        return Threaded(contact_case, note="the customer's answer, by case tag")
    return Threaded(review=(
        "a reply to one of our mails, but no case matches: no mail of ours has its "
        f"Message-IDs {ids[:3]} or {len(tokens)} reply token(s) (reference "
        f"{extra.get('case_reference')!r})"))


# ---- bounces -------------------------------------------------------------------------------------

def attach_bounce(conn: Connection, message_id: int, result: ParseResult, now: datetime, *,
                  mail_from: str | None, rcpt_tos: Sequence[str] | None = None) -> Threaded:
    """Mark the mail a DSN names by its bounce token bounced (see the module docstring)."""
    extra = result.extra or {}
    if not null_sender(mail_from):
        return Threaded(note=f"DSN ignored: its envelope sender <{str(mail_from)[:100]}> is not "
                             "null, and a real DSN's is")
    tokens = list(dict.fromkeys(
        [str(t).lower() for t in extra.get("bounce_tokens") or []]
        + _envelope_tokens(BOUNCE_TOKEN, rcpt_tos)))
    if not tokens:
        return Threaded(note="DSN ignored: it names no bounce address of ours")
    notice = conn.execute(select(Notice.id, Notice.case_id, Notice.to_addr, Notice.state)
                          .where(Notice.bounce_token.in_(tokens))
                          .order_by(Notice.id.desc()).limit(1)).first()
    if notice is None:
        return Threaded(note="DSN ignored: no mail of ours has its bounce token")
    status = str(extra.get("status") or "")
    if extra.get("read_receipt"):
        return Threaded(note=f"a read receipt (MDN) for notice {notice.id}: not a bounce")
    if status[:1] in ("2", "4"):  # relayed or delivered; or delayed, still trying
        return Threaded(note=f"DSN status {status} for notice {notice.id}: not a bounce")
    conn.execute(update(Notice).where(Notice.id == notice.id).values(
        state="bounced", bounced_at=now,
        error=" ".join(str(v) for v in (extra.get("status"), extra.get("diagnostic")) if v)
        or "bounced"))
    if notice.case_id is None:  # an acknowledgement of a complaint without a case
        return Threaded(note=f"bounce of acknowledgement {notice.id}")
    cases.attach_message(conn, message_id, notice.case_id)
    cases.event(conn, now, cases.SYSTEM, notice.case_id, "notice-bounced",
                notice_id=notice.id, to=notice.to_addr, message_id=message_id,
                status=extra.get("status"), diagnostic=extra.get("diagnostic"))
    return Threaded(notice.case_id, note=f"bounce of notice {notice.id}")
