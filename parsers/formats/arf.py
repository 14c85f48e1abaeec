"""ARF feedback reports (RFC 5965, 6591 auth-failure, 6692 Source-Port, 6430 not-spam), and
Microsoft JMRP complaints, which are not ARF but say the same thing.

An ARF message is three parts: a human-readable text, a ``message/feedback-report`` field block,
and the original message (``message/rfc822``) or its headers (``text/rfc822-headers``). Real senders
bend all of it, so the field block is found anywhere in the MIME tree
(also inside ``multipart/mixed``, in an ARF forwarded as a ``message/rfc822`` attachment, or as a
part named ``report.txt``), and its fields are read leniently: any case, folded, bare lines such
as a URL, several fields on one line, an empty part, duplicates (the first is kept, with a
warning).

Where the report names no Source-IP, the offender is the host that handed the original message to
the reporter: the first hop of part 3's Received chain that did not come from the reporter's own
servers (marked inferred; ``core/received.reporter_hop`` reads the chain). The time is
Arrival-Date, else Received-Date, else that hop's timestamp, else part 3's Date, else the
report's own Date (the last three marked inferred).

The helpers (field parsing, locating the parts, reading part 3) are shared with the SpamCop
parser, which sends ARF-style reports too.
"""

from __future__ import annotations

import email
import itertools
import re
from dataclasses import dataclass, field
from email.errors import MessageError, MissingHeaderBodySeparatorDefect
from email.message import Message
from email.policy import compat32
from typing import Any

from ...core.fields import (
    clean_ip,
    domains_of,
    excerpt,
    find_ips,
    parse_time,
    refang,
    unique,
)
from ...core.headers import ADDRESS_HEADERS, clean_address, clean_value, parse_address
from ...core.mail import Mail, Part, decode_text, decode_transfer
from ...core.policy import NOT_ABUSE
from ...core.received import base_domain, is_routable, reporter_hop
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage

MAX_FIELD_BYTES = 64 * 1024  # a field block is a few hundred bytes; more is read no further
MAX_FIELD_LINES = 2000
MAX_VALUES = 1000  # per repeatable field (spam traps list dozens of Original-Rcpt-To)
MAX_RECEIVED = 50  # Received headers of part 3 looked at
MAX_HEADER_BYTES = 256 * 1024  # of a text/rfc822-headers part parsed
EVIDENCE_BYTES = 16 * 1024  # of part 3 decoded for the evidence excerpt

RFC822_TYPES = frozenset({
    "message/rfc822", "message/global", "text/rfc822-headers", "text/rfc822-header",
    "message/rfc822-headers", "message/global-headers"})
SINGLE_FIELDS = frozenset({
    "feedback-type", "user-agent", "version", "original-envelope-id", "original-mail-from",
    "arrival-date", "received-date", "reporting-mta", "source-ip", "source-port", "incidents"})
# Field names that may start a second field on one line ("Source-IP: 192.0.2.1 Reporting-MTA: ...").
_SPLIT_NAMES = sorted(SINGLE_FIELDS | {
    "authentication-results", "original-rcpt-to", "reported-domain", "reported-uri",
    "auth-failure", "delivery-result", "dkim-domain", "dkim-identity", "dkim-selector",
    "removal-recipient", "redacted-address", "abuse-type", "original-message-id"},
    key=len, reverse=True)
_EMBEDDED = re.compile(r"(?<=\s)(" + "|".join(re.escape(n) for n in _SPLIT_NAMES) + r")\s*:\s*",
                       re.I)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,76})[ \t]*+:[ \t]*+(.*)$")
_FIELD_START = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9_-]{0,76})[ \t]*:", re.M)
_FEEDBACK_TYPE_LINE = re.compile(rb"^[ \t]*feedback-type[ \t]*:", re.I | re.M)
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,76}:[ \t]")


def clean(value: object) -> str | None:
    """:func:`clean_value`, which raises CharsetError on an encoded-word naming a broken
    charset (``=?iso-8859<0xff>1?q?...?=``): such a value is kept raw, control characters out."""
    if value is None:
        return None
    try:
        return clean_value(str(value))
    except MessageError:
        return re.sub(r"[\x00-\x1f\x7f]+", " ", str(value)).strip()[:2000] or None


def header(mail: Mail, name: str, msg: Message | None = None) -> str | None:
    """``mail.header(name, msg)`` that never raises."""
    value = (msg or mail.msg).get(name)
    return clean_address(value) if name.lower() in ADDRESS_HEADERS else clean(value)


# -- the field block (part 2) ---------------------------------------------------------------


@dataclass
class FeedbackFields:
    """The fields of one feedback-report part: lower-case names, values in order."""

    values: dict[str, list[str]] = field(default_factory=dict)
    bare: list[str] = field(default_factory=list)  # lines that were no field (a URL, text)
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = self.values.get(name.lower())
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self.values.get(name.lower(), []))

    def count(self) -> int:
        return sum(len(v) for v in self.values.values())


def parse_feedback_fields(text: str, mail: Mail | None = None) -> FeedbackFields:
    """Read an ARF field block leniently, bounded by the MAX_* constants. Raises nothing but
    LimitExceeded, when *mail*'s time budget runs out."""
    result = FeedbackFields()
    if len(text) > MAX_FIELD_BYTES:
        result.warnings.append(f"feedback-report part longer than {MAX_FIELD_BYTES} characters: "
                               "the rest was not read")
        text = text[:MAX_FIELD_BYTES]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > MAX_FIELD_LINES:
        result.warnings.append(f"feedback-report part has more than {MAX_FIELD_LINES} lines: "
                               "the rest was not read")
        del lines[MAX_FIELD_LINES:]
    entries: list[list[str]] = []
    current: list[str] | None = None
    for n, line in enumerate(lines):
        if mail is not None and n % 256 == 0:
            mail.deadline.check()
        if not line.strip():
            current = None
            continue
        if line[0] in " \t" and current is not None:  # a folded continuation
            current[1] = f"{current[1]} {line.strip()}".strip()
            continue
        m = _FIELD.match(line.strip())
        if m and m.group(2).startswith("//"):
            # A bare URL, not a field; Python's email turns "http://x" into "http: //x".
            result.bare.append(f"{m.group(1)}:{m.group(2)}"[:2000])
            current = None
        elif m:
            current = [m.group(1).lower(), m.group(2).strip()]
            entries.append(current)
        else:
            result.bare.append(line.strip()[:2000])
            current = None
    for name, value in _split_embedded(entries):
        _add_field(result, name, value)
    return result


def _split_embedded(entries: list[list[str]]) -> list[tuple[str, str]]:
    """Fields run together on one line become separate fields."""
    out: list[tuple[str, str]] = []
    for name, value in entries:
        pieces = list(_EMBEDDED.finditer(value))
        if not pieces:
            out.append((name, value))
            continue
        out.append((name, value[:pieces[0].start()].strip()))
        for i, m in enumerate(pieces):
            end = pieces[i + 1].start() if i + 1 < len(pieces) else len(value)
            out.append((m.group(1).lower(), value[m.end():end].strip()))
    return out


def _add_field(result: FeedbackFields, name: str, value: str) -> None:
    value = value.strip()[:2000]
    if not value and name not in SINGLE_FIELDS:
        return  # "Authentication-Results:" with nothing after it (Yahoo)
    values = result.values.setdefault(name, [])
    if name in SINGLE_FIELDS and values:
        if not values[0]:  # an empty first one gives way
            values[0] = value
        elif value and value != values[0]:
            result.warnings.append(f"duplicate {_title(name)} field: the first was kept")
        return
    if len(values) >= MAX_VALUES:
        warning = f"more than {MAX_VALUES} {_title(name)} fields: the rest were not read"
        if warning not in result.warnings:
            result.warnings.append(warning)
        return
    values.append(value)


def _title(name: str) -> str:
    return "-".join(w.upper() if w in ("ip", "mta", "uri", "dkim", "spf") else w.capitalize()
                    for w in name.split("-"))


# -- finding the parts ----------------------------------------------------------------------


@dataclass
class ArfDocument:
    """One ARF report inside a mail: its three parts (any may be missing) and its own headers."""

    root: Message  # the ARF message itself: the mail, or one forwarded inside it
    feedback: Part | None
    human: Part | None
    original: Part | None


def find_arf_documents(mail: Mail) -> list[ArfDocument]:
    """Every feedback-report part of *mail* with its sibling parts, in document order.

    A ``multipart/report; report-type=feedback-report`` without any field block gives one
    document with ``feedback=None``.
    """
    parts = mail.parts  # computing them enforces the depth and size limits
    by_message = {id(p.message): p for p in parts}
    parents = _parents(mail)
    candidates = [p for p in parts if p.content_type == "message/feedback-report"]
    if not candidates:
        candidates = [p for p in parts if _looks_like_field_part(p)]
    docs = []
    for p2 in candidates:
        mail.deadline.check()
        human, original = _siblings(p2.message, parents, by_message)
        docs.append(ArfDocument(root=_arf_root(p2.message, parents), feedback=p2, human=human,
                                original=original))
    if not docs and _is_feedback_container(mail.msg):
        human = next((p for p in parts if p.content_type == "text/plain"), None)
        original = next((p for p in parts if p.content_type in RFC822_TYPES), None)
        docs.append(ArfDocument(root=mail.msg, feedback=None, human=human, original=original))
    return docs


def has_feedback_part(mail: Mail) -> bool:
    return any(p.content_type == "message/feedback-report" or _looks_like_field_part(p)
               for p in mail.parts) or _is_feedback_container(mail.msg)


def _is_feedback_container(msg: Message) -> bool:
    return (msg.get_content_type().lower() == "multipart/report"
            and str(msg.get_param("report-type", "") or "").lower() == "feedback-report")


def _looks_like_field_part(part: Part) -> bool:
    """A text part that is a field block: report.txt, or unnamed, starting with a field."""
    if part.content_type not in ("text/plain", "application/octet-stream"):
        return False
    if part.name and not part.name.endswith(".txt"):
        return False
    head = part.data[:4096]
    if not _FEEDBACK_TYPE_LINE.search(head):
        return False
    first = next((line for line in head.splitlines() if line.strip()), b"")
    return bool(_FIELD_START.match(first.decode("latin-1")))


def _parents(mail: Mail) -> dict[int, Message]:
    parents: dict[int, Message] = {}
    stack: list[tuple[Message, int]] = [(mail.msg, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if depth > mail.limits.max_mime_depth or seen > 4 * mail.limits.max_parts + 10:
            break
        if node.is_multipart():
            for child in node.get_payload() or []:
                if isinstance(child, Message):
                    parents[id(child)] = node
                    stack.append((child, depth + 1))
    return parents


def _arf_root(msg: Message, parents: dict[int, Message]) -> Message:
    """The message the part belongs to: the top, or one inside a message/rfc822 part."""
    node = msg
    for _ in range(100):
        parent = parents.get(id(node))
        if parent is None or parent.get_content_type().lower() in ("message/rfc822",
                                                                    "message/global"):
            return node
        node = parent
    return node


def _siblings(msg: Message, parents: dict[int, Message],
              by_message: dict[int, Part]) -> tuple[Part | None, Part | None]:
    """Part 1 (the first text before part 2) and part 3 (the original, after part 2)."""
    container = parents.get(id(msg))
    if container is None or container.get_content_type().lower() in ("message/rfc822",
                                                                     "message/global"):
        return None, None
    siblings = [s for s in container.get_payload() or [] if isinstance(s, Message)]
    index = next((i for i, s in enumerate(siblings) if s is msg), -1)
    human = None
    for sibling in siblings[:index]:
        human = _first_text(sibling, by_message)
        if human is not None:
            break
    original = None
    for sibling in siblings[index + 1:]:
        ctype = sibling.get_content_type().lower()
        part = by_message.get(id(sibling))
        if ctype in RFC822_TYPES and part is not None:
            original = part
            break
        if ctype == "text/plain" and part is not None and _HEADER_LINE.match(
                part.data[:200].decode("latin-1").lstrip()):
            original = part  # headers sent as text/plain
            break
    return human, original


def _first_text(msg: Message, by_message: dict[int, Part]) -> Part | None:
    stack = [msg]
    for _ in range(200):
        if not stack:
            return None
        node = stack.pop(0)
        if node.get_content_type().lower() == "text/plain" and id(node) in by_message:
            return by_message[id(node)]
        if node.is_multipart() and not node.get_content_type().lower().startswith("message/"):
            stack.extend(s for s in node.get_payload() or [] if isinstance(s, Message))
    return None


def feedback_text(part: Part) -> str:
    """Part 2 as text, its transfer encoding undone.

    Python's email parses a ``message/feedback-report`` body as an embedded message: a line
    that is no header (a bare URL, the rest of a quoted-printable soft line break) ends its
    header block, and serialising it back inserts a blank line there, which breaks a
    quoted-printable field in two. So the text is rebuilt from the parsed headers and body as
    they came, and only then decoded.
    """
    inner = part.message.get_payload(0) if part.message.is_multipart() else None
    if not isinstance(inner, Message):
        return decode_text(part.data[:MAX_FIELD_BYTES + 1], part.charset or "utf-8")
    lines = [f"{name}: {value}"
             for name, value in itertools.islice(inner.raw_items(), MAX_FIELD_LINES + 1)]
    split = any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in inner.defects)
    body = inner.get_payload()
    text = "\n".join(lines)
    if isinstance(body, str) and body:
        text = f"{text}\n{body}" if split or not lines else f"{text}\n\n{body}"
    data = text[:4 * MAX_FIELD_BYTES].encode("utf-8", "surrogateescape")
    cte = str(part.message.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte in ("base64", "quoted-printable"):
        data = decode_transfer(data, cte)
    return decode_text(data[:MAX_FIELD_BYTES + 1], part.charset or "utf-8")


# -- part 3: the original message -----------------------------------------------------------


@dataclass
class Original:
    """The headers of part 3 (a second block where a blank line split them), and its text."""

    headers: list[Message]
    text: str
    warnings: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for block in self.headers:
            value = block.get(name)
            if value is not None:
                return clean(value)
        return None

    def all(self, name: str) -> list[str]:
        values: list[str] = []
        for block in self.headers:
            for value in block.get_all(name) or []:
                cleaned = clean(value)
                if cleaned:
                    values.append(cleaned)
        return values


def read_original(part: Part) -> Original:
    """Part 3's header block(s) and an excerpt source; survives malformed parts."""
    text = decode_text(part.data[:EVIDENCE_BYTES], part.charset)
    inner: Message | None = None
    if part.message.is_multipart():
        payload = part.message.get_payload(0)
        if isinstance(payload, Message) and len(payload.keys()) > 0:
            inner = payload
    if inner is None:
        inner = email.message_from_bytes(part.data[:MAX_HEADER_BYTES], policy=compat32)
    original = Original(headers=[inner], text=text)
    spill = _spilled_headers(inner)
    if spill is not None:
        original.headers.append(spill)
        original.warnings.append("part 3 has a blank line inside its header block: the headers "
                                 "after it were read too")
    return original


def _spilled_headers(inner: Message) -> Message | None:
    """RFC 5965 B.2 itself has a blank line in part 3's headers: the rest land in the body."""
    if inner.get("Date") and inner.get("Subject"):
        return None
    if inner.is_multipart():
        return None
    body = inner.get_payload()
    if not isinstance(body, str):
        return None
    body = body[:64 * 1024].lstrip("\r\n")
    if not _HEADER_LINE.match(body[:200]):
        return None
    spill = email.message_from_string(body, policy=compat32)
    known = {"to", "subject", "date", "message-id", "mime-version", "content-type", "from"}
    if not known & {k.lower() for k in spill}:
        return None
    return spill


# -- the Received chain ---------------------------------------------------------------------


# -- building a report ----------------------------------------------------------------------


def address_of(value: str | None) -> str | None:
    _, addr = parse_address(value)
    addr = addr.strip().lower()
    return addr if "@" in addr else None


def reporter_of(root: Message, fields: FeedbackFields | None) -> tuple[str | None, str | None]:
    """(address, organisation) of the reporter: From, Reporting-MTA, User-Agent."""
    sender = clean_address(root.get("From"))
    name, _ = parse_address(sender)
    address = address_of(sender)
    org = name.strip().strip('"') or None
    if org is None and fields is not None:
        mta = fields.get("reporting-mta")
        if mta:
            org = mta.split(";", 1)[-1].strip() or None
    if org is None and address:
        org = address.rsplit("@", 1)[1]
    if org is None and fields is not None and fields.get("user-agent"):
        org = str(fields.get("user-agent")).split("/", 1)[0].strip() or None
    return address, org


def choose_time(candidates: list[tuple[str, str | None, bool]],
                report: ParsedReport) -> None:
    """Set occurred_at from the first readable (label, raw, stated) candidate."""
    for label, raw, stated in candidates:
        if not raw:
            continue
        when, zone_stated = parse_time(raw)
        if when is None:
            report.warnings.append(f"unreadable {label} {excerpt(raw, 80)!r}")
            continue
        report.occurred_at = when
        report.occurred_raw = raw
        if not stated:
            report.inferred.append("occurred_at")
            report.warnings.append(f"time taken from the {label}")
        if not zone_stated:
            if "occurred_at" not in report.inferred:
                report.inferred.append("occurred_at")
            report.warnings.append("time without zone, taken as UTC")
        return


def incidents_of(value: str | None, report: ParsedReport) -> int:
    if value is None or not value.strip():
        return 1
    m = re.fullmatch(r"\s*(\d{1,10})(?:[.,]\d*)?\s*", value)
    if not m:
        report.warnings.append(f"unreadable Incidents {excerpt(value, 40)!r}: taken as 1")
        return 1
    count = min(int(m.group(1)), 2**32 - 1)
    if not value.strip().isdigit():
        report.warnings.append(f"Incidents {value.strip()!r} is not a whole number: taken as "
                               f"{count}")
    if count < 1:
        report.warnings.append("Incidents 0: taken as 1")
        return 1
    return count


def uris_of(values: list[str]) -> list[str]:
    """Reported-URI values, defanged ones restored, angle brackets dropped."""
    out = []
    for value in values:
        uri = refang(value.strip().strip("<>\"'")).strip()
        if uri and re.match(r"^[A-Za-z][A-Za-z0-9+.-]{0,20}:", uri):
            out.append(uri)
    return unique(out)


def domains_from(values: list[str]) -> list[str]:
    out = []
    for value in values:
        for piece in re.split(r"[\s,;]+", refang(value)):
            host = piece.strip().strip("<>.\"'").lower()
            if host and "." in host and re.fullmatch(r"[a-z0-9._-]+", host):
                out.append(host)
    return unique(out)


def arf_report(mail: Mail, doc: ArfDocument) -> ParsedReport:
    """The normalized report of one ARF document."""
    report = ParsedReport(format="arf")
    if doc.feedback is not None:
        fields = parse_feedback_fields(feedback_text(doc.feedback), mail)
        if fields.count() == 0:
            report.warnings.append("empty feedback-report part")
    else:
        fields = FeedbackFields()
        report.review_reasons.append("multipart/report of type feedback-report without a "
                                     "feedback-report part")
    report.warnings.extend(fields.warnings)
    original = read_original(doc.original) if doc.original is not None else None
    if original is not None:
        report.warnings.extend(original.warnings)
    elif doc.feedback is not None:
        report.warnings.append("no original message (part 3)")

    feedback_type = (fields.get("feedback-type") or "").strip().strip("\"'").lower()
    if feedback_type:
        report.type_hint = f"arf:{feedback_type}"
    else:
        report.type_hint = "arf:missing"
        report.warnings.append("no Feedback-Type field: taken as missing")

    report.reporter_address, report.reporter_org = reporter_of(doc.root, fields)
    hop_time = _offender(mail, doc, fields, original, report)
    _source_port(fields, report)
    choose_time([
        ("Arrival-Date", fields.get("arrival-date"), True),
        ("Received-Date", fields.get("received-date"), True),
        ("reporter's Received header", hop_time, False),
        ("original message's Date", original.header("Date") if original else None, False),
        ("report's own Date", clean(doc.root.get("Date")), False),
    ], report)
    if fields.get("arrival-date") and fields.get("received-date"):
        report.warnings.append("both Arrival-Date and Received-Date: Arrival-Date was used")

    report.urls = uris_of(fields.all("reported-uri"))
    report.domains = unique(domains_from(fields.all("reported-domain"))
                            + domains_of([u for u in report.urls if "://" in u]))
    report.incidents = incidents_of(fields.get("incidents"), report)
    report.evidence = _evidence(doc, original)
    report.extra = _extra(fields, original)
    if report.source_ip is None:
        report.review_reasons.append("no source IP: no Source-IP field and none found in the "
                                     "original message's Received headers")
    return report


def _offender(mail: Mail, doc: ArfDocument, fields: FeedbackFields, original: Original | None,
              report: ParsedReport) -> str | None:
    """Source-IP, or the reporter's hop in part 3's Received chain; returns the time of the hop
    that handed the reporter the message (the one naming the stated address, when one does)."""
    hop = None
    received = original.all("Received")[:MAX_RECEIVED] if original is not None else []
    if received:
        mta = (fields.get("reporting-mta") or "").split(";", 1)[-1].strip()
        domains = {base_domain(mta), base_domain((report.reporter_address or "@").split("@")[1])}
        hop = reporter_hop(received, {d for d in domains if d}, mail.deadline.check, MAX_RECEIVED)
    stated = fields.get("source-ip")
    if stated:
        ip = clean_ip(stated)
        if ip is None:
            report.warnings.append(f"unreadable Source-IP {excerpt(stated, 60)!r}")
        else:
            report.source_ip = ip
            if not is_routable(ip):
                report.warnings.append(f"Source-IP {ip} is not a public address")
            # The time of the hop that names the stated address, if one does.
            named = next((v for v in received if ip in find_ips(v.split(" by ", 1)[0], 5)),
                         None)
            if named is not None and ";" in named:
                return named.rsplit(";", 1)[1].strip()
            return hop.time_raw if hop is not None else None
    if hop is not None:
        report.source_ip = hop.ip
        report.inferred.append("source_ip")
        report.warnings.append("no Source-IP: source taken from the reporter's Received header "
                               "of the original message")
        if not is_routable(hop.ip):
            report.warnings.append(f"inferred source {hop.ip} is not a public address")
    return hop.time_raw if hop is not None else None


def _source_port(fields: FeedbackFields, report: ParsedReport) -> None:
    raw = fields.get("source-port")
    if not raw:
        return
    if re.fullmatch(r"\s*\d{1,5}\s*", raw) and 0 < int(raw) <= 65535:
        report.source_port = int(raw)
    else:
        report.warnings.append(f"unreadable Source-Port {excerpt(raw, 40)!r}")


def _evidence(doc: ArfDocument, original: Original | None) -> str | None:
    if original is not None and original.text.strip():
        return excerpt(original.text, ParsedReport.MAX_EVIDENCE)
    if doc.human is not None:
        return excerpt(decode_text(doc.human.data[:EVIDENCE_BYTES], doc.human.charset),
                       ParsedReport.MAX_EVIDENCE) or None
    return None


_EXTRA_FIELDS = (
    "version", "user-agent", "reporting-mta", "original-mail-from", "original-envelope-id",
    "auth-failure", "delivery-result", "dkim-domain", "dkim-identity", "dkim-selector",
    "identity-alignment", "abuse-type", "source-as")
_EXTRA_LISTS = ("original-rcpt-to", "authentication-results", "removal-recipient")


def _extra(fields: FeedbackFields, original: Original | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name in _EXTRA_FIELDS:
        value = fields.get(name)
        if value:
            extra[name.replace("-", "_")] = value
    for name in _EXTRA_LISTS:
        values = fields.all(name)[:20]
        if values:
            extra[name.replace("-", "_")] = values
    if fields.bare:
        extra["bare_lines"] = fields.bare[:20]
    if original is not None:
        for name in ("Subject", "Message-ID", "From"):
            value = original.header(name)
            if value:
                extra["original_" + name.lower().replace("-", "_")] = value
    return extra


# -- Microsoft JMRP -------------------------------------------------------------------------

_JMRP_SUBJECT = re.compile(r"complaint about message from\s+(\S+)", re.I)
_MICROSOFT_DOMAINS = {"hotmail.com", "outlook.com", "live.com", "msn.com", "microsoft.com"}


def jmrp_message(mail: Mail) -> Message | None:
    """The forwarded message of a Microsoft JMRP complaint (not ARF), if this is one."""
    from_staff = address_of(header(mail, "From")) == "staff@hotmail.com"
    first = None
    for part in mail.parts:
        if part.content_type != "message/rfc822" or part.depth > 2:
            continue
        inner = part.message.get_payload(0) if part.message.is_multipart() else None
        if not isinstance(inner, Message):
            continue
        if inner.get("X-HmXmrOriginalRecipient") is not None:
            return inner
        first = first or inner
    return first if from_staff else None


def jmrp_report(mail: Mail, inner: Message) -> ParsedReport:
    report = ParsedReport(format="arf", type_hint="arf:abuse")
    report.reporter_address, report.reporter_org = reporter_of(mail.msg, None)
    report.warnings.append("Microsoft JMRP complaint, not ARF: read from the forwarded message")
    received = [v for v in (clean(x) for x in inner.get_all("Received") or []) if v]
    hop = reporter_hop(received, set(_MICROSOFT_DOMAINS), mail.deadline.check, MAX_RECEIVED)
    subject = _JMRP_SUBJECT.search(header(mail, "Subject") or "")
    subject_ip = clean_ip(subject.group(1)) if subject else None
    if hop is not None:
        report.source_ip = hop.ip
        report.inferred.append("source_ip")
        if subject_ip and subject_ip != hop.ip:
            report.review_reasons.append(
                f"the subject names {subject_ip} but the forwarded message came from {hop.ip}")
    elif subject_ip:
        report.source_ip = subject_ip
        report.warnings.append("source taken from the subject")
    else:
        report.review_reasons.append("no source IP in the forwarded message or the subject")
    if subject_ip:
        report.extra["subject_ip"] = subject_ip
    choose_time([
        ("reporter's Received header", hop.time_raw if hop else None, False),
        ("forwarded message's Date", clean(inner.get("Date")), False),
        ("report's own Date", header(mail, "Date"), False),
    ], report)
    text = inner.as_bytes(policy=compat32)[:EVIDENCE_BYTES] if _safe(inner) else b""
    report.evidence = excerpt(decode_text(text, "utf-8"), ParsedReport.MAX_EVIDENCE) or None
    for name in ("X-SID-PRA", "Subject", "Message-ID"):
        value = inner.get(name)
        if value is not None:
            report.extra["original_" + name.lower().replace("-", "_")] = clean(value)
    report.extra["jmrp"] = True
    return report


def _safe(msg: Message) -> bool:
    try:
        msg.as_bytes(policy=compat32)
    except (ValueError, LookupError, UnicodeError, TypeError):
        return False
    return True


# -- the parser -----------------------------------------------------------------------------


def _feedback_type_is_xarf(mail: Mail) -> bool:
    for part in mail.parts:
        if part.content_type == "message/feedback-report" or _looks_like_field_part(part):
            fields = parse_feedback_fields(feedback_text(part))
            if (fields.get("feedback-type") or "").strip().lower() == "xarf":
                return True
    return False


def _has_json(mail: Mail) -> bool:
    return any(p.content_type == "application/json" or p.name.endswith(".json")
               for p in mail.parts)


# -- the format, as the registry and the classifier know it ------------------------------

# ARF Feedback-Type (RFC 5965, 6430, 6591) and values seen in the wild.
ARF_VOCABULARY: dict[str, tuple[str, float]] = {
    "abuse": ("spam", 0.95),
    "spam": ("spam", 0.9),  # not registered, but says what it means
    "virus": ("virus-spam", 0.9),
    "fraud": ("fraud", 0.55),  # "some kind of fraud or phishing activity": the text decides
    "other": ("spam", 0.5),
    "missing": ("spam", 0.55),  # no Feedback-Type: almost always a feedback-loop complaint
    "opt-out": ("spam", 0.5),  # an unsubscribe request sent as a complaint
    "auth-failure": ("spam", 0.4),  # a failed DKIM/SPF check is not a complaint by itself
    "not-spam": (NOT_ABUSE, 0.95),
}
ARF = Format("arf", machine=True, vocabulary=ARF_VOCABULARY, trusted_senders=(
    ("Yahoo CFL", ("feedback@arf.mail.yahoo.com",)),
    ("Validity FBL", ("feedbackloop@*.senderscore.net",)),
    ("Cox FBL", ("feedbackloop@fbl.cox.net",)),
    ("Fastmail FBL", ("feedbackloop@fbl.fastmail.com",)),
    ("Rackspace FBL", ("feedbackloop@fbl.apps.rackspace.com",)),
    ("Spectrum FBL", ("feedbackloop@feedback.postmaster.rr.com",)),
    ("Synacor FBL", ("feedbackloop@fbl.synacor.com",)),
    ("OpenSRS FBL", ("feedbackloop@fbl.hostedemail.com",)),
    ("USA.net FBL", ("feedbackloop@fbl.usa.net",)),
    ("Zoho FBL", ("feedbackloop@fbl.zoho.com",)),
))


class ArfParser:
    """RFC 5965/6591/6692/6430 feedback reports, and Microsoft JMRP complaints."""

    name = "arf"
    stage = Stage.STRUCTURAL
    formats = (ARF,)
    order = 40

    def matches(self, mail: Mail) -> bool:
        if not has_feedback_part(mail):
            return jmrp_message(mail) is not None
        # XARF JSON travels in ARF with Feedback-Type xarf, or in a feedback-report container
        # without a field block: the XARF parser reads those.
        if not _has_json(mail):
            return True
        has_part2 = any(p.content_type == "message/feedback-report" for p in mail.parts)
        return has_part2 and not _feedback_type_is_xarf(mail)

    def parse(self, mail: Mail) -> ParseResult:
        docs = find_arf_documents(mail)
        if docs:
            reports = []
            for doc in docs:
                mail.deadline.check()
                reports.append(arf_report(mail, doc))
            return ParseResult(disposition=Disposition.REPORT, format="arf", reports=reports)
        inner = jmrp_message(mail)
        if inner is not None:
            return ParseResult(disposition=Disposition.REPORT, format="arf",
                               reports=[jmrp_report(mail, inner)])
        return ParseResult(disposition=Disposition.REPORT, format="arf",
                           review_reasons=["no feedback report found in this message"])


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [ArfParser()]
