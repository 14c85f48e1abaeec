"""Outgoing mail of the abuse desk: notices to customers, acknowledgements to reporters.

Everything that came from outside (reporters, customers) and ends up in a header goes through
:func:`header_safe` (or :func:`msg_id_or_none` for message ids), so a CR/LF in a reporter's subject
can never create a header. Evidence shown to a customer is redacted first (:func:`redact`, RFC 6590)
so the people who received the spam are not revealed.

Templates (``workflow/templates/<kind>/<name>.{txt,html}.j2``, overridable by an operator
directory) are rendered in a sandbox with ``StrictUndefined``. The text template's first line is
``Subject: ...``. The context the caller passes (a dict; every key always present, ``None`` or
``[]`` where it does not apply)::

    org: str                      # provider name, e.g. "Integra ISP"
    kind: str                     # notice, reminder, update, escalation, action, resolved, ack
    case: {reference: str,        # "C-2026-000123"
           category: str,         # "spam" | "network" | "other"
           type: str,             # "spam", "copyright", "ssh_bruteforce", ...
           type_label: str,       # "Spam", "Copyright infringement", ...
           state: str, claims: int,
           timeline_class: str,   # "standard" | "prompt"
           opened_at: str,
           deadline: str,         # format_deadline(...) in the customer's zone
           deadline_utc: str,     # ISO 8601
           time_left: str}        # "5 business days" / "24 hours"
    customer: {name: str, external_id: str}       # never used by the ack template
    reports: [{received_at: str, format: str,
               reporter: str,     # shown to the customer (not for category "other"): pass a
                                  # public name such as an organisation, never a private person
               source_ip: str | None, source_port: int | None, occurred_at: str | None,
               urls: [str], domains: [str],
               evidence: str}]    # already redacted by the caller
    new_reports: [...]            # same shape; for "update", [] otherwise
    self_service_url: str | None
    copyright_guide_url: str | None
    fee_amount: str               # "USD 100.00", the administration fee per complaint
    fee: {amount: str, currency: str, count: int, total: str} | None   # for "escalation"
    action: "restrict" | "terminate" | "restore" | None                # for "action"
    reason: str | None            # for "escalation" and "action"
    ack: {their_subject: str, received_at: str} | None                 # for "ack"

Template filters: ``header_safe``, ``plural`` (``3|plural("complaint")`` -> "3 complaints"),
``source`` (a report -> "203.0.113.7 port 25" or "").
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "Rendered",
    "Templates",
    "compose",
    "format_deadline",
    "header_safe",
    "msg_id_or_none",
    "recipients_in_evidence",
    "redact",
    "sample_context",
]

BUILTIN_TEMPLATES = Path(__file__).resolve().parent / "templates"

# C0 controls (CR, LF, NUL, TAB, ...), DEL, C1 controls (incl. NEL U+0085), LINE/PARAGRAPH SEP.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")

# RFC 5322 msg-id restricted to printable ASCII without "<", ">" or whitespace; "@" only once.
_ID_CHARS = r"[\x21-\x3b\x3d\x3f\x41-\x7e]+"
_MSG_ID = re.compile(rf"<{_ID_CHARS}@{_ID_CHARS}>")
MSG_ID_MAX = 250

_ATEXT = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
# From the start of a run of atext only, taken whole: searched in a long run without "@", the
# plain "{_ATEXT}+@" would try again from every position of it (quadratic).
_ADDRESS = re.compile(rf"(?<!{_ATEXT}){_ATEXT}++@{_DOMAIN}")
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOMAIN}")
_RECEIVED_FOR = re.compile(rf"\bfor\s+<?({_ATEXT}+@{_DOMAIN})>?", re.IGNORECASE)
_HEADER_LINE = re.compile(r"([!-9;-~]+):[ \t]*(.*)", re.DOTALL)
_RECIPIENT_HEADERS = frozenset({
    "to", "cc", "delivered-to", "x-original-to", "original-rcpt-to", "envelope-to",
    "x-envelope-to", "removal-recipient",
})

# Headers compose() sets itself; extra_headers may not replace them.
_RESERVED = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to", "references",
    "auto-submitted", "mime-version", "organization", "content-type",
    "content-transfer-encoding", "sender", "reply-to", "return-path",
})
_FIELD_NAME = re.compile(r"[!-9;-~]+")

# Headers set with set_raw (pre-folded, never RFC 2047 encoded) are left as they are.
_POLICY = email.policy.SMTP.clone(refold_source="none")

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def header_safe(value: object, limit: int = 200) -> str:
    """``str(value)`` fit for a header: controls and line separators become spaces, whitespace
    runs collapse, stripped, at most ``limit`` characters (ending in "…" when cut)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    text = _SPACES.sub(" ", _CONTROL.sub(" ", str(value))).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def msg_id_or_none(value: str | None) -> str | None:
    """Exactly one RFC 5322 msg-id ``<left@right>`` (printable ASCII, no spaces, no ``<>``
    inside, at most 250 characters) from ``value`` (stripped), or None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > MSG_ID_MAX or not _MSG_ID.fullmatch(value):
        return None
    return value


def _unfold(text: str) -> list[str]:
    """Logical lines: a line starting with a space or tab continues the one before."""
    lines: list[str] = []
    for raw in text.splitlines():
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += " " + raw.strip()
        else:
            lines.append(raw)
    return lines


def recipients_in_evidence(text: str) -> list[str]:
    """Addresses of the complainant side in evidence text: To, Cc, Delivered-To, X-Original-To,
    Original-Rcpt-To, Envelope-To, X-Envelope-To and Removal-Recipient values and ``for <addr>``
    in Received headers (folded lines understood). Lower-cased, de-duplicated, in order."""
    found: dict[str, None] = {}
    for line in _unfold(text):
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name in _RECIPIENT_HEADERS:
            addresses = _ADDRESS.findall(value)
        elif name == "received":
            addresses = _RECEIVED_FOR.findall(value)
        else:
            continue
        for address in addresses:
            found.setdefault(address.lower(), None)
    return list(found)


def addresses_in(value: str) -> list[str]:
    """The bare addresses in a value a reporter wrote (``"<Victim@x.example>, b@y"``),
    lower-cased, in order."""
    return [address.lower() for address in _ADDRESS.findall(value)]


def _redaction_token(local_part: str, secret: bytes) -> str:
    return hmac.new(secret, local_part.lower().encode("utf-8"), hashlib.sha256).hexdigest()


def redact(text: str, addresses: Iterable[str], secret: bytes) -> str:
    """Replace the local-part of each address in ``text`` by a keyed hash, keeping the domain.

    Follows RFC 6590, Section 3 ("Redaction of Data"): the local-part is replaced by a hash of
    the local-part and a secret redaction key, hex-encoded, so the result is still a
    syntactically valid address, stable for the same address and key (reports stay
    correlatable) and does not reveal it. Here the keyed hash is HMAC-SHA256 (64 hex digits, the
    RFC 5321 maximum local-part length); the local-part is lower-cased first. Matches are
    case-insensitive and only where the local-part stands before ``@domain`` (also written
    ``%40`` or ``=40``, as in URLs and quoted-printable), so ``<victim@example.net>`` is covered
    and ``jimvictim@example.net`` is not.
    """
    if not secret:
        raise ValueError("redact needs a non-empty secret (an unkeyed hash is easy to reverse)")
    seen: set[str] = set()
    alternatives: list[str] = []
    for address in addresses:
        local, at, domain = address.strip().rpartition("@")
        if not at or not local or not domain:
            continue
        key = f"{local.lower()}@{domain.lower()}"
        if key in seen:
            continue
        seen.add(key)
        alternatives.append(
            re.escape(local)
            + rf"(?=(?:@|%40|=40){re.escape(domain)}(?![A-Za-z0-9-]|\.[A-Za-z0-9]))"
        )
    if not alternatives:
        return text
    pattern = re.compile(r"(?<![A-Za-z0-9._+-])(?:" + "|".join(alternatives) + ")", re.IGNORECASE)
    return pattern.sub(lambda match: _redaction_token(match.group(0), secret), text)


def format_deadline(when: datetime, zone: str) -> str:
    """``when`` in the customer's zone, in English, with UTC alongside:
    "Friday, 4 December 2026, 10:00 EST (15:00 UTC)"."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("format_deadline needs an aware datetime")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone!r}") from exc
    local = when.astimezone(tz)
    utc = when.astimezone(UTC)
    text = (f"{_DAYS[local.weekday()]}, {local.day} {_MONTHS[local.month - 1]} {local.year}, "
            f"{local:%H:%M} {local.tzname() or zone}")
    if local.utcoffset() == timedelta(0) and local.tzname() in ("UTC", "GMT"):
        return text
    if utc.date() != local.date():
        return f"{text} ({utc.day} {_MONTHS[utc.month - 1]}, {utc:%H:%M} UTC)"
    return f"{text} ({utc:%H:%M} UTC)"


def _plain_address(value: str, what: str) -> str:
    if not isinstance(value, str) or not _PLAIN_ADDRESS.fullmatch(value):
        raise ValueError(f"{what} is not a plain address: {value!r}")
    return value


def compose(*, from_addr: str, from_name: str, to_addr: str, subject: str, message_id: str,
            date: datetime, text: str, html: str | None = None, in_reply_to: str | None = None,
            references: Sequence[str] = (), auto_submitted: str = "auto-generated",
            organization: str = "", extra_headers: Mapping[str, str] | None = None,
            reply_to: str | None = None) -> bytes:
    """The complete message as bytes with CRLF line ends (policy SMTP).

    Every header value passes :func:`header_safe` (non-ASCII becomes RFC 2047); In-Reply-To and
    References keep only values passing :func:`msg_id_or_none`. *reply_to*, a plain address,
    becomes the Reply-To (our own tagged address: replies to it carry the notice's token).
    Bodies are UTF-8, quoted-printable: text/plain alone, or multipart/alternative with
    text/html. Raises ValueError for an address that is not plain, a bad Message-ID, a naive
    date, or an extra header that is malformed or one compose() sets itself.
    """
    sender = _plain_address(from_addr, "from_addr")
    recipient = _plain_address(to_addr, "to_addr")
    answer_to = _plain_address(reply_to, "reply_to") if reply_to is not None else None
    own_id = msg_id_or_none(message_id)
    if own_id is None or own_id != message_id:
        raise ValueError(f"message_id is not a single <left@right> msg-id: {message_id!r}")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be an aware datetime")

    msg = EmailMessage(policy=_POLICY)
    msg["From"] = Address(display_name=header_safe(from_name, 100), addr_spec=sender)
    msg["To"] = Address(addr_spec=recipient)
    if answer_to is not None:
        msg["Reply-To"] = Address(addr_spec=answer_to)
    msg["Subject"] = header_safe(subject, 250)
    msg["Date"] = format_datetime(date)
    msg.set_raw("Message-ID", own_id)
    parent = msg_id_or_none(in_reply_to)
    if parent is not None:
        msg.set_raw("In-Reply-To", parent)
    chain = [mid for mid in (msg_id_or_none(ref) for ref in references) if mid is not None]
    if chain:
        msg.set_raw("References", "\n ".join(dict.fromkeys(chain)))
    msg["Auto-Submitted"] = header_safe(auto_submitted, 100) or "auto-generated"
    msg["MIME-Version"] = "1.0"
    if organization.strip():
        msg["Organization"] = header_safe(organization, 200)
    for name, value in (extra_headers or {}).items():
        if not _FIELD_NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise ValueError(f"extra header not allowed: {name!r}")
        msg[name] = header_safe(value, 900)

    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _source(report: Mapping[str, Any]) -> str:
    ip = report.get("source_ip")
    if not ip:
        return ""
    port = report.get("source_port")
    return f"{ip}, port {port}" if port else str(ip)


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


class Templates:
    """Notice templates: an operator directory (searched first) over the built-in ones."""

    def __init__(self, templates_dir: str = "") -> None:
        self.search_path: list[Path] = []
        if templates_dir:
            self.search_path.append(Path(templates_dir))
        self.search_path.append(BUILTIN_TEMPLATES)
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.search_path]),
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["header_safe"] = header_safe
        self.env.filters["plural"] = _plural
        self.env.filters["source"] = _source

    def kinds(self) -> list[str]:
        """Kinds with a ``default.txt.j2`` in any search directory."""
        found = {
            entry.name
            for base in self.search_path if base.is_dir()
            for entry in base.iterdir()
            if _NAME.fullmatch(entry.name) and (entry / "default.txt.j2").is_file()
        }
        return sorted(found)

    def _names(self, kind: str, category: str | None, type_: str | None, ext: str) -> list[str]:
        stems = [s for s in (type_, category) if s and _NAME.fullmatch(s)] + ["default"]
        return [f"{kind}/{stem}.{ext}.j2" for stem in dict.fromkeys(stems)]

    def render(self, kind: str, category: str | None, type_: str | None,
               context: Mapping[str, Any]) -> Rendered:
        """Render the most specific text and HTML templates (type, then category, then default).
        The text output's first line ``Subject: ...`` becomes the subject."""
        if not isinstance(kind, str) or kind not in self.kinds():
            raise ValueError(f"unknown notice kind: {kind!r}")
        text_template = self.env.select_template(self._names(kind, category, type_, "txt"))
        html_template = self.env.select_template(self._names(kind, category, type_, "html"))
        output = text_template.render(dict(context)).lstrip("\r\n")
        first, _, body = output.partition("\n")
        if not first.startswith("Subject:"):
            raise ValueError(f"template {text_template.name} does not start with 'Subject:'")
        subject = header_safe(first[len("Subject:"):], 250)
        text = body.lstrip("\r\n").rstrip() + "\n"
        html = html_template.render(dict(context)).strip() + "\n"
        return Rendered(subject=subject, text=text, html=html)


# --- sample context (tests, ``abuse-desk notices preview``) -------------------------------------

_SAMPLE_SECRET = b"sample redaction key"

_SAMPLE_ARF = """\
--part
Content-Type: text/plain

This is an email abuse report for an email message received from IP
203.0.113.45 on Mon, 30 Nov 2026 14:02:11 +0000.

--part
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: MailboxFBL/1.0
Version: 1
Source-IP: 203.0.113.45
Original-Rcpt-To: alice.jones@mailbox.example
Arrival-Date: Mon, 30 Nov 2026 14:02:11 +0000

--part
Content-Type: message/rfc822

Received: from customer-pc (dyn-203-0-113-45.integra-isp.example [203.0.113.45])
\tby mx.mailbox.example with ESMTP id 4f2a9c
\tfor <alice.jones@mailbox.example>; Mon, 30 Nov 2026 14:02:10 +0000
From: "Account Security" <security@bank-verify.example>
To: alice.jones@mailbox.example
Subject: Your account will be suspended
Date: Mon, 30 Nov 2026 14:02:08 +0000

Dear alice.jones@mailbox.example, confirm your details at
http://bank-verify.example/login?u=alice.jones%40mailbox.example
--part--
"""

_SAMPLE_SSH = """\
Date: Tue, 01 Dec 2026 03:15:40 +0000
From: honeypot@cert.example
Subject: [CERT-EX #88121] SSH brute force from 203.0.113.45

Our sensors recorded 1,284 failed SSH logins from 203.0.113.45 between
2026-12-01 02:58 and 03:14 UTC (times are UTC):

2026-12-01T02:58:03Z 203.0.113.45:51234 -> 198.51.100.22:22 user=root
2026-12-01T02:58:05Z 203.0.113.45:51240 -> 198.51.100.22:22 user=admin
2026-12-01T03:14:57Z 203.0.113.45:60111 -> 198.51.100.23:22 user=ubuntu
"""

_SAMPLE_PHISH = """\
Reported URL: http://203.0.113.45/secure-login/bank/index.php
Brand: Example Bank
First seen: 2026-12-01 08:40 UTC
Detection: visual match of the login page of Example Bank; form posts credentials to
http://203.0.113.45/secure-login/bank/post.php
"""

_SAMPLE_DMCA = """\
Notice ID: 2026-DMCA-0047113
Rights holder: Northwind Pictures LLC
Title: The Long Harbour (2026)
Protocol: BitTorrent
Infohash: 9f3c1a7d2e44b0c6a1f85e27d9b3c4a6e1f0d2b7
Filename: The.Long.Harbour.2026.1080p.WEB.mkv
File size: 2.1 GB
IP address: 203.0.113.45 Port: 51413
Timestamp: 2026-12-01T21:17:09Z

I have a good faith belief that use of the material in the manner complained of is not
authorized by the copyright owner, its agent, or the law. The information in this
notification is accurate, and under penalty of perjury, I am authorized to act on behalf
of the owner of an exclusive right that is allegedly infringed.
"""


def _sample_report(category: str, type_: str | None) -> dict[str, Any]:
    if type_ == "copyright":
        return {"received_at": "2026-12-01 21:30 UTC", "format": "ACNS XML",
                "reporter": "Northwind Pictures LLC",
                "source_ip": "203.0.113.45", "source_port": 51413,
                "occurred_at": "2026-12-01 21:17 UTC", "urls": [], "domains": [],
                "evidence": _SAMPLE_DMCA}
    if category == "network":
        return {"received_at": "2026-12-01 03:16 UTC", "format": "plain text",
                "reporter": "CERT Example", "source_ip": "203.0.113.45", "source_port": None,
                "occurred_at": "2026-12-01 02:58 UTC", "urls": [], "domains": [],
                "evidence": _SAMPLE_SSH}
    if category == "other":
        return {"received_at": "2026-12-01 08:52 UTC", "format": "X-ARF",
                "reporter": "Example Bank security team", "source_ip": "203.0.113.45",
                "source_port": 80, "occurred_at": "2026-12-01 08:40 UTC",
                "urls": ["http://203.0.113.45/secure-login/bank/index.php"], "domains": [],
                "evidence": _SAMPLE_PHISH}
    evidence = redact(_SAMPLE_ARF, recipients_in_evidence(_SAMPLE_ARF), _SAMPLE_SECRET)
    return {"received_at": "2026-11-30 14:05 UTC", "format": "ARF",
            "reporter": "Mailbox.example feedback loop", "source_ip": "203.0.113.45",
            "source_port": 25, "occurred_at": "2026-11-30 14:02 UTC",
            "urls": ["http://bank-verify.example/login"], "domains": ["bank-verify.example"],
            "evidence": evidence}


_SAMPLE_TYPES = {
    "spam": ("spam", "Spam"),
    "network": ("ssh_bruteforce", "SSH brute-force attack"),
    "other": ("phishing", "Phishing website"),
}


def sample_context(kind: str, *, category: str = "spam",
                   type_: str | None = None) -> dict[str, Any]:
    """A realistic context for ``kind`` (and ``category``; ``type_="copyright"`` for the
    copyright notice), with every documented key."""
    if category not in _SAMPLE_TYPES:
        raise ValueError(f"unknown category: {category!r}")
    case_type, label = _SAMPLE_TYPES[category]
    prompt = type_ == "copyright"
    if prompt:
        case_type, label = "copyright", "Copyright infringement"
    deadline = (datetime(2026, 12, 2, 21, 30, tzinfo=UTC) if prompt
                else datetime(2026, 12, 7, 15, 0, tzinfo=UTC))
    report = _sample_report(category, type_)
    new_report = dict(report, received_at="2026-12-02 09:12 UTC",
                      occurred_at="2026-12-02 09:01 UTC")
    time_left = "24 hours" if prompt else "5 business days"
    if kind == "reminder":
        time_left = "6 hours" if prompt else "1 business day"
    return {
        "org": "Integra ISP",
        "kind": kind,
        "case": {
            "reference": "C-2026-000123",
            "category": category,
            "type": case_type,
            "type_label": label,
            "state": {"resolved": "resolved", "escalation": "escalated",
                      "action": "escalated"}.get(kind, "notified"),
            "claims": 3 if kind in ("update", "escalation") else 1,
            "timeline_class": "prompt" if prompt else "standard",
            "opened_at": "2026-11-30 14:05 UTC",
            "deadline": format_deadline(deadline, "America/New_York"),
            "deadline_utc": deadline.isoformat(),
            "time_left": time_left,
        },
        "customer": {"name": "Jane Doe", "external_id": "100234"},
        "reports": [report],
        "new_reports": [new_report, dict(new_report, received_at="2026-12-02 11:40 UTC")]
        if kind == "update" else [],
        "self_service_url": "https://abuse.integra-isp.example/case/C-2026-000123?t=8f1c2e",
        "copyright_guide_url": "https://www.integra-isp.example/help/copyright-notices",
        "fee_amount": "USD 100.00",
        "fee": {"amount": "USD 100.00", "currency": "USD", "count": 3, "total": "USD 300.00"}
        if kind == "escalation" else None,
        "action": "restrict" if kind == "action" else None,
        "reason": {
            "escalation": "The deadline passed and the problem has not been resolved.",
            "action": "The problem reported in this case continued after the deadline.",
        }.get(kind),
        "ack": {"their_subject": "Spam from 203.0.113.45", "received_at": "2026-11-30 14:05 UTC"}
        if kind == "ack" else None,
    }
