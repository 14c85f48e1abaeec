"""Guards, tried before any report format: replies to our own notices, bounces, auto-replies.

A **reply** is a message that answers one of our mails by naming it: one of our Message-IDs in
In-Reply-To/References, or our reply address ``abuse+r-TOKEN@`` among its recipients. Whether
the named mail exists, and so which case the reply belongs to, the workflow decides
(``workflow/replies.py``): a Message-ID or a token no mail of ours has proves nothing. Our
case tag in the Subject alone (``[Abuse Case C-2026-000123]``) does not make a reply: case
references are sequential, anyone can write one. Such a message is parsed as any other; the
workflow threads it only when it comes from an authenticated contact of the case's customer,
and keeps the reference as a hint otherwise.

A **bounce** (DSN, MDN) counts for one of our mails only when it names the mail's bounce token
(``abuse+b-TOKEN@``, the VERP envelope sender the mail went out with) and came with a null
envelope sender; the guard reads the tokens, the workflow checks both.

``Auto-Submitted: auto-generated`` alone proves nothing here: blocklists, Netcraft, IP-Echelon and
abusix put it on real reports (it means "do not auto-reply to this"). Only ``auto-replied`` and
the other auto-reply markers make a message an auto-reply.
"""

from __future__ import annotations

import re

from ...core.fields import find_ips, find_urls, refang
from ...core.mail import Mail
from ..base import Disposition, Format, Parser, ParseResult, Stage
from .nonreports import (
    AUTOREPLY_FORMAT,
    BOUNCE_FORMAT,
    asks_for_action,
    has_evidence,
    own_text,
)

# "[Abuse Case C-2026-000123]" as our subjects carry it, or "[C-2026-000123]" as notices ask
# customers to quote it.
CASE_TAG = re.compile(r"\[(?:Abuse Case )?(C-\d{4}-\d{6,})\]", re.I)

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|risposta automatica|respuesta autom[aá]tica|"
    r"automatisch(?:e)? antwort|i am (?:currently )?(?:out|away)|on vacation|vacation reply)",
    re.I)
# Conservative on purpose: a real complaint taken for an acknowledgement would be ignored.
_ACK_SUBJECT = re.compile(
    r"(?:(?:we have|we've) received your (?:report|complaint|e-?mail|message)|"
    r"your (?:report|complaint|message|request) (?:has been|was) (?:received|logged)|"
    r"(?:ticket|case|request) (?:#\s*)?[\w-]+ (?:has been|was) (?:opened|created|closed|resolved))",
    re.I)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:ed|able)|delivery (?:status notification|failure|has failed)|"
    r"returned mail|mail delivery (?:failed|system)|failure notice|non[- ]?delivery)", re.I)


# The tokens of our tagged addresses (workflow/tokens.py: 26 characters of base32), after any
# of the recipient delimiters smtp.recipient_delimiter allows.
REPLY_TOKEN = re.compile(r"[+\-=_.]r-([a-z2-7]{26})@", re.I)
BOUNCE_TOKEN = re.compile(r"[+\-=_.]b-([a-z2-7]{26})@", re.I)
# Where a mail names the address it was sent to.
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To",
                     "X-Envelope-To")
MAX_TOKENS = 10  # tokens read from one message


def tokens_in(pattern: re.Pattern[str], texts: list[str]) -> list[str]:
    """The distinct tokens *pattern* finds in *texts* (lower case, at most MAX_TOKENS)."""
    found: dict[str, None] = {}
    for text in texts:
        for match in pattern.finditer(text):
            found.setdefault(match.group(1).lower())
            if len(found) >= MAX_TOKENS:
                return list(found)
    return list(found)


def case_reference(subject: str | None) -> str | None:
    """The case reference a Subject names (``[Abuse Case C-2026-000123]``, ``[C-...]``)."""
    tag = CASE_TAG.search(subject or "")
    return tag.group(1).upper() if tag else None


# -- the format, as the registry and the classifier know it ------------------------------

REPLY = Format("reply", machine=False)  # a customer's answer to our notice

BOUNCE = Format("bounce", machine=True)  # a delivery status notification

AUTOREPLY = Format("autoreply", machine=True)  # out of office, ticket acknowledgements


class ReplyParser:
    """A message that names one of our mails: our Message-ID in In-Reply-To/References, or our
    reply address among its recipients. The workflow checks that the mail exists."""

    name = "reply"
    stage = Stage.GUARD
    formats = (REPLY,)
    order = 10

    def __init__(self, message_id_domain: str = "abuse-desk.localhost") -> None:
        self._ours = re.compile(r"<[^<>@\s]+@" + re.escape(message_id_domain.lower()) + ">")

    def _recipients(self, mail: Mail) -> list[str]:
        return [v for name in RECIPIENT_HEADERS for v in mail.headers(name)]

    def matches(self, mail: Mail) -> bool:
        refs = " ".join(mail.headers("In-Reply-To") + mail.headers("References")).lower()
        return bool(self._ours.search(refs)
                    or tokens_in(REPLY_TOKEN, self._recipients(mail)))

    def parse(self, mail: Mail) -> ParseResult:
        refs = mail.headers("In-Reply-To") + mail.headers("References")
        ours = [m.group(0) for ref in refs for m in self._ours.finditer(ref.lower())]
        # The workflow attaches the reply to the case of the mail these name; the case tag of
        # the Subject is kept for people to read, it threads nothing.
        return ParseResult(disposition=Disposition.REPLY, format="reply", extra={
            "case_reference": case_reference(mail.subject),
            "notice_message_ids": list(dict.fromkeys(ours))[:MAX_TOKENS],
            "reply_tokens": tokens_in(REPLY_TOKEN, self._recipients(mail))})


class BounceParser:
    """Delivery-status notifications (RFC 3464) and read receipts (RFC 8098). A bounce of one
    of our mails is sent to its VERP envelope sender, ``abuse+b-TOKEN@``: the guard reads the
    tokens from the recipient headers and the delivery-status and returned-header parts (the
    workflow adds those of the envelope); the workflow marks the mail bounced on its case only
    for a token of ours and a null envelope sender. Our Message-IDs in the returned headers are
    kept for people to read: anyone can copy one into a forged DSN."""

    name = "bounce"
    stage = Stage.GUARD
    formats = (BOUNCE_FORMAT,)
    order = 20

    def __init__(self, message_id_domain: str = "abuse-desk.localhost") -> None:
        self._ours = re.compile(
            r"^message-id:\s*(<[^<>@\s]+@" + re.escape(message_id_domain.lower()) + ">)",
            re.I | re.M)

    def matches(self, mail: Mail) -> bool:
        ctype = mail.content_type
        report_type = str(mail.msg.get_param("report-type", "") or "").lower()
        if ctype == "multipart/report" and report_type in ("delivery-status",
                                                             "disposition-notification"):
            return True
        if any(p.content_type in ("message/delivery-status", "message/disposition-notification",
                                  "message/global-delivery-status")
               for p in mail.parts if p.depth <= 1):
            return True
        sender = mail.from_.lower()
        return bool(re.search(r"mailer-daemon|postmaster@", sender)
                    and _BOUNCE_SUBJECT.search(mail.subject))

    def parse(self, mail: Mail) -> ParseResult:
        ours: list[str] = []
        status = diagnostic = None
        texts = [v for name in RECIPIENT_HEADERS for v in mail.headers(name)]
        receipt = str(mail.msg.get_param("report-type", "") or "").lower() == \
            "disposition-notification"
        for part in mail.parts:
            if part.content_type == "message/disposition-notification":
                receipt = True
            if part.content_type in ("message/delivery-status",
                                     "message/global-delivery-status"):
                text = part.text()
                texts.append(text[:200_000])
                found = re.search(r"^status:\s*([245]\.\d{1,3}\.\d{1,3})", text, re.I | re.M)
                status = status or (found.group(1) if found else None)
                found = re.search(r"^diagnostic-code:\s*(.{1,300})", text, re.I | re.M)
                diagnostic = diagnostic or (found.group(1).strip() if found else None)
            elif part.content_type in ("message/rfc822", "text/rfc822-headers",
                                       "message/rfc822-headers", "text/plain"):
                text = part.text()[:200_000]
                texts.append(text)
                ours += [m.group(1).lower() for m in self._ours.finditer(text)]
        return ParseResult(disposition=Disposition.IGNORED, format="bounce", extra={
            "non_report": "bounce", "notice_message_ids": list(dict.fromkeys(ours))[:MAX_TOKENS],
            "status": status,
            "diagnostic": diagnostic, "bounce_tokens": tokens_in(BOUNCE_TOKEN, texts),
            "read_receipt": receipt})


class AutoReplyParser:
    """Out-of-office and other auto-replies, and other desks' "ticket opened" acknowledgements."""

    name = "autoreply"
    stage = Stage.GUARD
    formats = (AUTOREPLY_FORMAT,)
    order = 50

    def matches(self, mail: Mail) -> bool:
        if not self._marked(mail):
            return False
        # The markers alone decide nothing: a CERT may send its notices as auto-replies. A
        # message that carries a complaint's evidence, names an address in its own text or
        # accuses something of being ours is parsed as a complaint.
        text = own_text(mail, separators=False)
        return (has_evidence(mail, text) is None and not asks_for_action(text)
                and not find_ips(refang(text), 1) and not find_urls(refang(text), 1))

    @staticmethod
    def _marked(mail: Mail) -> bool:
        auto = (mail.header("Auto-Submitted") or "").lower()
        if auto.startswith("auto-replied"):
            return True
        if mail.header("X-Autoreply") or mail.header("X-Autorespond"):
            return True
        if (mail.header("Precedence") or "").lower() == "auto_reply":
            return True
        subject = mail.subject
        return bool(_AUTO_SUBJECT.search(subject) or _ACK_SUBJECT.search(subject))

    def parse(self, mail: Mail) -> ParseResult:
        kind = "ticket-ack" if _ACK_SUBJECT.search(mail.subject) else "out-of-office"
        return ParseResult(disposition=Disposition.IGNORED, format="autoreply",
                           extra={"non_report": kind, "why": "an auto-reply"})


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [ReplyParser(message_id_domain), BounceParser(message_id_domain), AutoReplyParser()]
