"""Guards, tried before any report format: replies to our own notices, bounces, auto-replies.

``Auto-Submitted: auto-generated`` alone proves nothing here: blocklists, Netcraft, IP-Echelon and
abusix put it on real reports (it means "do not auto-reply to this"). Only ``auto-replied`` and
the other auto-reply markers make a message an auto-reply.
"""

from __future__ import annotations

import re

from parsers.base import Disposition, ParseResult, Stage
from parsers.mail import Mail

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


class ReplyParser:
    """A reply to one of our notices: our Message-ID in In-Reply-To/References, or our case tag."""

    name = "reply"
    stage = Stage.GUARD

    def __init__(self, message_id_domain: str = "abuse-desk.localhost") -> None:
        self._ours = re.compile(r"<[^<>@\s]+@" + re.escape(message_id_domain.lower()) + ">")

    def matches(self, mail: Mail) -> bool:
        refs = " ".join(mail.headers("In-Reply-To") + mail.headers("References")).lower()
        return bool(self._ours.search(refs) or CASE_TAG.search(mail.subject))

    def parse(self, mail: Mail) -> ParseResult:
        tag = CASE_TAG.search(mail.subject)
        refs = mail.headers("In-Reply-To") + mail.headers("References")
        ours = [m.group(0) for ref in refs for m in self._ours.finditer(ref.lower())]
        # The workflow attaches the reply to its case by either of these.
        return ParseResult(disposition=Disposition.REPLY, format="reply", extra={
            "case_reference": tag.group(1).upper() if tag else None, "notice_message_ids": ours})


class BounceParser:
    """Delivery-status notifications (RFC 3464) and read receipts (RFC 8098). A bounce of one
    of our notices names its Message-ID in the returned headers; the workflow marks that notice
    bounced on its case."""

    name = "bounce"
    stage = Stage.GUARD

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
        for part in mail.parts:
            if part.content_type in ("message/delivery-status",
                                     "message/global-delivery-status"):
                text = part.text()
                found = re.search(r"^status:\s*([245]\.\d{1,3}\.\d{1,3})", text, re.I | re.M)
                status = status or (found.group(1) if found else None)
                found = re.search(r"^diagnostic-code:\s*(.{1,300})", text, re.I | re.M)
                diagnostic = diagnostic or (found.group(1).strip() if found else None)
            elif part.content_type in ("message/rfc822", "text/rfc822-headers",
                                       "message/rfc822-headers", "text/plain"):
                ours += [m.group(1).lower() for m in self._ours.finditer(part.text()[:200_000])]
        return ParseResult(disposition=Disposition.IGNORED, format="bounce", extra={
            "notice_message_ids": list(dict.fromkeys(ours)), "status": status,
            "diagnostic": diagnostic})


class AutoReplyParser:
    """Out-of-office and other auto-replies, and other desks' "ticket opened" acknowledgements."""

    name = "autoreply"
    stage = Stage.GUARD

    def matches(self, mail: Mail) -> bool:
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
        return ParseResult(disposition=Disposition.IGNORED, format="autoreply")
