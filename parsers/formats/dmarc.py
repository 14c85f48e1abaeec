"""DMARC aggregate and failure reports, and SMTP TLS reports: mail about a domain's
authentication that lands at abuse@ because someone put the address in a DMARC ``rua``/``ruf``
or a TLSRPT ``rua`` record. None of it is a complaint: each is IGNORED, with its kind named in
``result.extra["non_report"]`` and the reporting organisation, the domain reported on and the
period, so that the dashboard can count them per reporter. A case is never opened for one.

* **DMARC aggregate** (RFC 7489 appendix C, DMARCbis): an XML ``<feedback>`` document with a
  ``<report_metadata>`` and a ``<policy_published>``, sent inline (``text/xml``), as a ``.xml``,
  ``.xml.gz`` or ``.zip`` attachment of any declared type (``application/octet-stream`` too),
  or as the whole body. Archives are opened within ``parsers.max_zip_uncompressed_bytes`` and
  ``parsers.max_zip_ratio``, whatever they declare; XML is parsed with defusedxml (no DTD, no
  entities). A message named the way RFC 7489 names report files
  (``submitter!domain!begin!end``) whose archive cannot be read is still recognised, with why.
* **DMARC failure** (RFC 6591, an ARF report with ``Feedback-Type: auth-failure``), and the
  plain-text "forensic" reports some receivers send instead.
* **SMTP TLS report** (RFC 8460): JSON (``application/tlsrpt+json``, or gzipped
  ``application/tlsrpt+gzip``), in a ``multipart/report; report-type=tlsrpt``.
"""

from __future__ import annotations

import io
import json
import re
import struct
import weakref
import zipfile
import zlib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from ...core.fields import iso_z
from ...core.headers import parse_address
from ...core.mail import Mail, Part
from ..base import Disposition, Format, Parser, ParseResult, Stage

AGGREGATE = "dmarc-aggregate"
FAILURE = "dmarc-failure"
TLS = "tls-report"
KINDS = (AGGREGATE, FAILURE, TLS)

# RFC 7489 section 7.2.1.1: receiver "!" policy domain "!" begin "!" end ["!" unique] "." ext
_REPORT_FILE = re.compile(
    r"^(?P<submitter>[^!/\\]{1,253})!(?P<domain>[^!/\\]{1,253})!(?P<begin>\d{9,11})!"
    r"(?P<end>\d{9,11})(?:![^!./\\]{0,64})?\.(?P<ext>xml|json|xml\.gz|json\.gz|gz|zip)$",
    re.I)
_SUBJECT_AGGREGATE = re.compile(r"\breport[ -]domain:\s{0,5}\S{1,253}\s{1,5}.{0,5}submitter:",
                                re.I)
_SUBJECT_FAILURE = re.compile(
    r"\bdmarc\b.{0,40}?\b(?:failure|forensic|fehler)[ -]?(?:report|bericht)|"
    r"\bfeedback-type:\s{0,5}auth-failure|\bauthentication failure report\b|"
    r"\bdmarc-fehlerbericht\b", re.I)
_TEXT_FAILURE = re.compile(r"\bfail(?:ed|s)? (?:the )?(?:published )?dmarc\b|"
                           r"\bdmarc (?:evaluation|check) failed\b|\bruf=mailto:", re.I)
_FORWARDED = re.compile(r"^\s{0,5}(?:fwd?|wg|tr|rv|vs)\s{0,3}:", re.I)  # a person forwarding one
_FIELD = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9-]{0,40}):[ \t]*(?P<value>[^\r\n]{0,500})",
                    re.M)
# "  Reported domain:   example.org" in a plain-text failure report
_TEXT_FIELD = re.compile(r"^[ \t]{0,8}(?P<name>[A-Za-z][A-Za-z -]{0,30}):[ \t]*"
                         r"(?P<value>[^\r\n]{0,500})", re.M)
_XML_START = re.compile(rb"<(?:[A-Za-z][\w.-]{0,30}:)?feedback[\s>]")
_GZIP = b"\x1f\x8b"
_ZIP = b"PK\x03\x04"
MAX_MEMBERS = 20  # members of one archive looked at
MAX_DOCS = 20  # documents read from one message
MAX_RECORDS = 10_000  # aggregate rows summed
_XML_TYPES = {"text/xml", "application/xml"}
_TLS_TYPES = {"application/tlsrpt+json", "application/tlsrpt+gzip"}


class Unreadable(Exception):
    """An attachment past a limit, or not what it says it is."""


# -- bounded inflation ------------------------------------------------------------------------


def _allowed(mail: Mail, compressed: int, budget: list[int]) -> int:
    limits = mail.limits
    return max(0, min(budget[0], max(compressed, 1) * limits.max_zip_ratio))


def _report_head(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a report: XML with a ``<feedback>`` root,
    or JSON."""
    return bool(_XML_START.search(head)) or head.lstrip()[:1] == b"{"


def _gunzip(data: bytes, mail: Mail, budget: list[int]) -> bytes:
    allowed = _allowed(mail, len(data), budget)
    try:
        # A look at the first bytes first: a complaint's gzipped CSV is not inflated here.
        if not _report_head(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, 4096)):
            return b""
    except zlib.error as exc:
        raise Unreadable(f"gzip unreadable: {exc}") from None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, allowed + 1)
    except zlib.error as exc:
        raise Unreadable(f"gzip unreadable: {exc}") from None
    if len(out) > allowed:
        raise Unreadable(f"gzip inflates past {allowed} bytes (parsers.max_zip_ratio, "
                         "parsers.max_zip_uncompressed_bytes): not read")
    budget[0] -= len(out)
    return out


def _zip_entries(data: bytes) -> int:
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return 0
    (count,) = struct.unpack("<H", data[end + 10: end + 12])
    return 10**9 if count == 0xFFFF else count


def _unzip(data: bytes, mail: Mail, budget: list[int]) -> list[tuple[str, bytes]]:
    if _zip_entries(data) > MAX_MEMBERS:
        raise Unreadable(f"ZIP with more than {MAX_MEMBERS} members: not opened")
    members: list[tuple[str, bytes]] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist()[:MAX_MEMBERS]:
                mail.deadline.check()
                if info.is_dir() or info.flag_bits & 0x1 or \
                        not info.filename.lower().endswith((".xml", ".json")):
                    continue  # reports are .xml (DMARC) or .json (TLS): a CSV is not read
                allowed = _allowed(mail, info.compress_size, budget)
                if info.file_size > allowed:
                    raise Unreadable(f"ZIP member declares {info.file_size} bytes, more than "
                                     f"{allowed} allowed (parsers.max_zip_ratio, "
                                     "parsers.max_zip_uncompressed_bytes): not read")
                with archive.open(info) as member:
                    out = member.read(allowed + 1)
                if len(out) > allowed:
                    raise Unreadable("ZIP member inflates past what it declared: not read")
                budget[0] -= len(out)
                members.append((info.filename.rsplit("/", 1)[-1], out))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, OSError, ValueError, zlib.error, struct.error, KeyError) as exc:
        raise Unreadable(f"ZIP unreadable: {exc.__class__.__name__}: {exc}") from None
    return members


def _contents(name: str, data: bytes, mail: Mail, budget: list[int]) -> list[tuple[str, bytes]]:
    """The files inside one attachment: itself, or what its ZIP or gzip holds (one level)."""
    if data.startswith(_ZIP):
        return _unzip(data, mail, budget)
    if data.startswith(_GZIP):
        return [(re.sub(r"\.gz$", "", name, flags=re.I), _gunzip(data, mail, budget))]
    return [(name, data)]


# -- aggregate reports ------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _child(node: Any, *path: str) -> Any:
    for name in path:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == name), None)
    return node


def _text(node: Any, *path: str) -> str | None:
    found = _child(node, *path)
    text = (found.text or "").strip() if found is not None else ""
    return text[:253] or None


def _epoch(value: str | None) -> str | None:
    try:
        return iso_z(datetime.fromtimestamp(int(value or ""), UTC))
    except (ValueError, OverflowError, OSError):
        return None


def read_aggregate(data: bytes) -> dict[str, Any] | None:
    """The summary of a DMARC aggregate report (``<feedback>``), or None if *data* is not one."""
    start = _XML_START.search(data[:4096])
    if start is None:
        return None
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, SafeET.ParseError, ValueError, RecursionError):
        return None
    if _local(root.tag) != "feedback":
        return None
    meta = _child(root, "report_metadata")
    policy = _child(root, "policy_published")
    if meta is None or policy is None:
        return None
    messages = failing = rows = 0
    for record in root:
        if _local(record.tag) != "record":
            continue
        rows += 1
        if rows > MAX_RECORDS:
            break
        try:
            count = int(_text(record, "row", "count") or 0)
        except ValueError:
            count = 0
        messages += count
        evaluated = _child(record, "row", "policy_evaluated")
        if evaluated is not None and _text(evaluated, "dkim") != "pass" and \
                _text(evaluated, "spf") != "pass":
            failing += count
    return {
        "reporter": _text(meta, "org_name"),
        "reporter_email": _text(meta, "email"),
        "report_id": _text(meta, "report_id"),
        "domain": _text(policy, "domain"),
        "period_begin": _epoch(_text(meta, "date_range", "begin")),
        "period_end": _epoch(_text(meta, "date_range", "end")),
        "messages": messages, "failing": failing, "sources": rows,
    }


# -- TLS reports ------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return iso_z(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def read_tls(data: bytes) -> dict[str, Any] | None:
    """The summary of an SMTP TLS report (RFC 8460 JSON), or None if *data* is not one."""
    if data[:4096].lstrip()[:1] != b"{":
        return None
    try:
        doc = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("policies"), list) or \
            not isinstance(doc.get("date-range"), dict):
        return None
    domains: list[str] = []
    good = bad = 0
    for entry in doc["policies"][:MAX_RECORDS]:
        if not isinstance(entry, dict):
            continue
        policy, summary = entry.get("policy"), entry.get("summary")
        if isinstance(policy, dict) and isinstance(policy.get("policy-domain"), str):
            domains.append(policy["policy-domain"][:253].lower())
        if isinstance(summary, dict):
            good += _int(summary.get("total-successful-session-count"))
            bad += _int(summary.get("total-failure-session-count"))
    return {
        "reporter": str(doc.get("organization-name") or "")[:253] or None,
        "reporter_email": str(doc.get("contact-info") or "")[:253] or None,
        "report_id": str(doc.get("report-id") or "")[:253] or None,
        "domain": domains[0] if domains else None,
        "policy_domains": list(dict.fromkeys(domains))[:20],
        "period_begin": _iso(doc["date-range"].get("start-datetime")),
        "period_end": _iso(doc["date-range"].get("end-datetime")),
        "sessions_successful": good, "sessions_failed": bad,
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- failure reports --------------------------------------------------------------------------


def _fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in _FIELD.finditer(text[:20_000]):
        found.setdefault(m.group("name").lower(), m.group("value").strip())
    return found


def _arrival(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return iso_z(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def _feedback_fields(mail: Mail) -> dict[str, str] | None:
    for part in mail.parts:
        if part.content_type == "message/feedback-report":
            return _fields(part.text())
    return None


# -- the parser -------------------------------------------------------------------------------


def _attachment_name(part: Part) -> str:
    return (part.filename or "").strip().rsplit("/", 1)[-1]


def _is_tls_mail(mail: Mail) -> bool:
    report_type = str(mail.msg.get_param("report-type", "") or "").lower()
    if mail.header("TLS-Report-Domain") or report_type == "tlsrpt":
        return True
    return any(p.content_type in _TLS_TYPES for p in mail.parts)


def _report_file(mail: Mail) -> re.Match[str] | None:
    for part in mail.parts:
        m = _REPORT_FILE.match(_attachment_name(part))
        if m:
            return m
    return None


def _looks_like_report(part: Part) -> bool:
    """A cheap look at a part's first bytes: XML with a ``<feedback>`` root, TLS report JSON,
    or an archive (opened only by :meth:`DmarcParser.parse`, within the limits)."""
    head = part.data[:4096]
    if head.startswith((_GZIP, _ZIP)):
        return True
    if part.content_type in _XML_TYPES or _XML_START.search(head):
        return True
    return head.lstrip()[:1] == b"{" and b'"policies"' in part.data[:200_000] and \
        b'"date-range"' in part.data[:200_000]


_TAG_TEXT = re.compile(rb"<(?:\w{1,30}:)?(org_name|email|report_id|domain|begin|end)>"
                       rb"\s{0,20}([^<]{1,253})<")


def read_aggregate_leniently(data: bytes) -> dict[str, Any] | None:
    """What can be read of an aggregate report that is not well-formed XML (a bad byte, an
    unclosed tag): recognised by its three parts, read tag by tag."""
    head = data[:1_000_000]
    if not (_XML_START.search(head[:4096]) and b"report_metadata>" in head
            and b"policy_published>" in head):
        return None
    found: dict[str, str | None] = dict.fromkeys(
        ("org_name", "email", "report_id", "domain", "begin", "end"))
    for m in _TAG_TEXT.finditer(head):
        name = m.group(1).decode("ascii")
        if found[name] is None:
            found[name] = m.group(2).decode("utf-8", "replace").strip()
    return {"reporter": found["org_name"], "reporter_email": found["email"],
            "report_id": found["report_id"], "domain": found["domain"],
            "period_begin": _epoch(found["begin"]), "period_end": _epoch(found["end"])}


# -- the format, as the registry and the classifier know it ------------------------------

DMARC_AGGREGATE = Format("dmarc-aggregate", machine=True)

DMARC_FAILURE = Format("dmarc-failure", machine=True)

TLS_REPORT = Format("tls-report", machine=True)


class DmarcParser:
    """DMARC aggregate and failure reports and SMTP TLS reports: ignored, with their kind."""

    name = "dmarc"
    stage = Stage.GUARD
    formats = (DMARC_AGGREGATE, DMARC_FAILURE, TLS_REPORT)
    order = 30

    @staticmethod
    def _might_be(mail: Mail) -> bool:
        if _is_tls_mail(mail) or _report_file(mail) is not None:
            return True
        fields = _feedback_fields(mail)
        if fields is not None:
            return fields.get("feedback-type", "").lower() == "auth-failure" or (
                "feedback-type" not in fields and "reported-domain" in fields)
        if _SUBJECT_AGGREGATE.search(mail.subject) or _SUBJECT_FAILURE.search(mail.subject):
            return True
        return any(_looks_like_report(p) for p in mail.parts if p.depth <= 1 and p.data)

    def __init__(self) -> None:
        # What matches() found, for parse(): the message is read once.
        self._found: weakref.WeakKeyDictionary[Mail, ParseResult] = weakref.WeakKeyDictionary()

    def matches(self, mail: Mail) -> bool:
        if not self._might_be(mail):
            return False
        result = self._read(mail)
        if result is not None:
            self._found[mail] = result
        return result is not None

    def parse(self, mail: Mail) -> ParseResult:
        result = self._found.pop(mail, None) or self._read(mail)
        if result is None:
            raise ValueError("not a DMARC or TLS report")
        return result

    def _read(self, mail: Mail) -> ParseResult | None:
        if _is_tls_mail(mail):
            return self._tls(mail)
        fields = _feedback_fields(mail)
        if fields is not None:
            if fields.get("feedback-type", "").lower() == "auth-failure" or (
                    "feedback-type" not in fields and "reported-domain" in fields):
                return self._failure(mail, fields)
            return None
        aggregate = self._aggregate(mail)
        if aggregate is not None:
            return aggregate
        if _SUBJECT_FAILURE.search(mail.subject) and not _FORWARDED.search(mail.subject) and any(
                _TEXT_FAILURE.search(p.text()[:50_000]) for p in mail.parts
                if p.content_type == "text/plain" and p.depth <= 1):
            return self._failure(mail, self._text_fields(mail))
        return None

    @staticmethod
    def _text_fields(mail: Mail) -> dict[str, str]:
        for part in mail.parts:
            if part.content_type == "text/plain":
                found: dict[str, str] = {}
                for m in _TEXT_FIELD.finditer(part.text()[:20_000]):
                    name = "-".join(m.group("name").lower().split())
                    found.setdefault(name, m.group("value").strip())
                if found:
                    return found
        return {}

    def _result(self, mail: Mail, kind: str, summary: dict[str, Any],
                errors: list[str] | None = None) -> ParseResult:
        _, sender = parse_address(mail.from_)
        sender_domain = sender.rsplit("@", 1)[-1].lower() if "@" in sender else None
        contact = str(summary.get("reporter_email") or "")
        if not sender_domain and "@" in contact:
            sender_domain = contact.rsplit("@", 1)[-1].strip(" >").lower()[:253] or None
        extra = {"non_report": kind, "reporter": summary.get("reporter") or sender_domain,
                 "reporting_domain": sender_domain, **summary}
        extra.setdefault("domain", None)
        if errors:  # what could not be read; nothing of it would have made a complaint
            extra["unreadable"] = errors[:10]
        return ParseResult(disposition=Disposition.IGNORED, format=kind, extra=extra)

    def _documents(self, mail: Mail) -> tuple[list[tuple[str, bytes]], list[str]]:
        budget = [mail.limits.max_zip_uncompressed_bytes]
        found: list[tuple[str, bytes]] = []
        errors: list[str] = []
        for part in mail.parts:
            mail.deadline.check()
            if not part.data or part.content_type.startswith(("multipart/", "message/")):
                continue
            if part.content_type == "text/html":
                continue
            name = _attachment_name(part)
            try:
                found += _contents(name, part.data, mail, budget)
            except Unreadable as exc:
                errors.append(f"{name or part.content_type}: {exc}")
            if len(found) >= MAX_DOCS:
                break
        return found[:MAX_DOCS], errors

    def _aggregate(self, mail: Mail) -> ParseResult | None:
        documents, errors = self._documents(mail)
        for _, data in documents:
            summary = read_aggregate(data)
            if summary is not None:
                return self._result(mail, AGGREGATE, summary, errors)
        for _, data in documents:
            summary = read_aggregate_leniently(data)
            if summary is not None:
                return self._result(mail, AGGREGATE, summary,
                                    [*errors, "not well-formed XML: read tag by tag"])
        for _, data in documents:
            summary = read_tls(data)
            if summary is not None:
                return self._result(mail, TLS, summary, errors)
        named = _report_file(mail)
        if named is not None and named.group("ext").lower() != "json" and (
                errors or _SUBJECT_AGGREGATE.search(mail.subject)):
            # Named as RFC 7489 names aggregate reports, but unreadable: still not a complaint.
            return self._result(mail, AGGREGATE, {
                "domain": named.group("domain").lower(),
                "period_begin": _epoch(named.group("begin")),
                "period_end": _epoch(named.group("end"))}, errors or ["no <feedback> document"])
        return None

    def _tls(self, mail: Mail) -> ParseResult:
        documents, errors = self._documents(mail)
        for _, data in documents:
            summary = read_tls(data)
            if summary is not None:
                return self._result(mail, TLS, summary, errors)
        domain = mail.header("TLS-Report-Domain")
        return self._result(mail, TLS, {"domain": domain.lower()[:253] if domain else None},
                            errors or ["no TLS report JSON found"])

    def _failure(self, mail: Mail, fields: dict[str, str]) -> ParseResult:
        arrival = fields.get("arrival-date") or fields.get("received-date")
        return self._result(mail, FAILURE, {
            "domain": (fields.get("reported-domain") or fields.get("sender-domain")
                       or "").lower()[:253] or None,
            "source_ip": fields.get("source-ip") or fields.get("sender-ip-address") or None,
            "auth_failure": fields.get("auth-failure") or None,
            "period_begin": _arrival(arrival),
            "period_end": _arrival(arrival),
        })


__all__ = ["AGGREGATE", "FAILURE", "KINDS", "TLS", "DmarcParser", "read_aggregate", "read_tls"]


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [DmarcParser()]
