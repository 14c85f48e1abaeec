"""XARF JSON: v4 (``xarf_version`` 4.x) and abusix's older v1-v3 (``ReporterInfo`` / ``Report``).

Transports: an attached ``xarf.json`` or any ``application/json`` part with
XARF keys; ARF carrying it (``multipart/report``, part 2 ``Feedback-Type: xarf``, part 3 the JSON,
usually base64); or the JSON bare in a text/plain body. Real senders also send empty parts and
invalid JSON: those give a report that needs review (with part 2's Source-IP, if there is one),
never an exception.

Bounds: a JSON part larger than :data:`MAX_JSON_BYTES` is not parsed; ``json.loads`` recurses, so
nesting deep enough to exhaust the stack is caught; evidence payloads (base64) are never decoded
past what the excerpt needs, and binary ones not at all.

v4 reports are checked with the PyPI ``xarf`` package when it is installed (its JSON schemas),
else against the required fields below; a report that fails gets a warning, not a rejection.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from ...core.fields import (
    clean_ip,
    domains_of,
    excerpt,
    host_of,
    parse_int,
    parse_time,
    refang,
    unique,
)
from ...core.mail import Mail, Part, decode_text
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage
from .xarf import XARF

MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_JSON_PARTS = 20
MAX_DOCS_PER_PART = 1000
MAX_EVIDENCE_ITEMS = 50  # the v4 maximum
MAX_PAYLOAD_CHARS = (5 * 1024 * 1024 * 4) // 3 + 4  # base64 of the v4 maximum of 5 MB
MAX_TEXT_CHARS = 500

_JSON_TYPES = ("application/json", "text/json", "application/xarf+json", "application/x-json")
_FEEDBACK_TYPES = ("message/feedback-report", "text/feedback-report")
_XARF_KEYS = re.compile(
    rb'"(xarf_version|source_identifier|ReporterInfo|ReportType|ReportClass|SourceIp)"\s*:')
_FEEDBACK_XARF = re.compile(r"^[ \t]*feedback-type[ \t]*:[ \t]*xarf\b", re.I | re.M)
# The value up to its last non-blank (not a lazy ".*?" before "[ \t]*$": quadratic on blanks).
_FIELD = re.compile(r"^[ \t]*+([A-Za-z][A-Za-z0-9-]{0,63})[ \t]*+:[ \t]*+((?:.*[^ \t\n])?)[ \t]*$",
                    re.M)
_LOOSE = re.compile(r'"(source_identifier|SourceIp|ReportType|category|type)"\s*:\s*'
                    r'"([^"\\]{1,255})"')
_URL_START = re.compile(r"^[a-z][a-z0-9+.-]{0,15}://", re.I)
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+"
                     r"[a-z][a-z0-9-]{0,62}$", re.I)
_V4_VERSION = re.compile(r"^4\.\d+\.\d+$")
_TEXTUAL = ("text/", "message/rfc822", "message/global", "application/json", "application/xml",
            "application/x-yaml", "application/yaml")
_SIGNATURES = ("application/pgp-signature", "application/pkcs7-signature",
               "application/x-pkcs7-signature")

# The v4 categories and their types (xarf-spec); p2p has a type schema but was missing from the
# master schema's enum for a while: accepted.
V4_TYPES: dict[str, tuple[str, ...]] = {
    "messaging": ("spam", "bulk_messaging"),
    "connection": ("login_attack", "port_scan", "ddos", "infected_host", "reconnaissance",
                   "scraping", "sql_injection", "vulnerability_scan"),
    "content": ("phishing", "malware", "csam", "csem", "exposed_data", "brand_infringement",
                "fraud", "remote_compromise", "suspicious_registration"),
    "copyright": ("copyright", "cyberlocker", "ugc_platform", "link_site", "usenet", "p2p"),
    "infrastructure": ("botnet", "compromised_server"),
    "reputation": ("blocklist", "threat_intelligence"),
    "vulnerability": ("cve", "open_service", "misconfiguration"),
}
_CATEGORY_OF = {t: c for c, types in V4_TYPES.items() for t in types}
ABUSIX_VERSIONS = ("1", "2", "3", "alpha")


# -- the format, as the registry and the classifier know it ------------------------------

# XARF v4 category/type (the xarf-spec schema), and a bare category when the report
# named no type.
XARF4_VOCABULARY: dict[str, tuple[str, float]] = {
    "messaging/spam": ("spam", 0.95),
    "messaging/bulk_messaging": ("spam", 0.8),
    "connection/login_attack": ("hacking", 0.95),
    "connection/port_scan": ("port-scan", 0.95),
    "connection/ddos": ("ddos", 0.95),
    "connection/infected_host": ("malware", 0.95),
    "connection/reconnaissance": ("port-scan", 0.8),
    "connection/scraping": ("hacking", 0.5),
    "connection/sql_injection": ("hacking", 0.95),
    "connection/vulnerability_scan": ("port-scan", 0.8),
    "content/phishing": ("phishing", 0.95),
    "content/malware": ("malware", 0.95),
    "content/csam": ("illegal", 0.95),
    "content/csem": ("illegal", 0.95),
    "content/exposed_data": ("open-service", 0.6),
    "content/brand_infringement": ("copyright", 0.7),
    "content/fraud": ("fraud", 0.95),
    "content/remote_compromise": ("hacking", 0.85),
    "content/suspicious_registration": ("fraud", 0.6),
    "copyright/copyright": ("copyright", 0.95),
    "copyright/cyberlocker": ("copyright", 0.95),
    "copyright/ugc_platform": ("copyright", 0.95),
    "copyright/link_site": ("copyright", 0.95),
    "copyright/usenet": ("copyright", 0.95),
    "copyright/p2p": ("copyright", 0.95),
    "infrastructure/botnet": ("malware", 0.95),
    "infrastructure/compromised_server": ("malware", 0.85),
    "reputation/blocklist": ("spam", 0.5),
    "reputation/threat_intelligence": ("malware", 0.5),
    "vulnerability/cve": ("open-service", 0.85),
    "vulnerability/open_service": ("open-service", 0.95),
    "vulnerability/misconfiguration": ("open-service", 0.8),
    "messaging": ("spam", 0.6),
    "connection": ("hacking", 0.4),
    "content": ("phishing", 0.3),
    "copyright": ("copyright", 0.9),
    "infrastructure": ("malware", 0.6),
    "reputation": ("spam", 0.4),
    "vulnerability": ("open-service", 0.7),
}
XARF4 = Format("xarf4", machine=True, vocabulary=XARF4_VOCABULARY)


class XarfJsonParser:
    """XARF JSON reports, v4 and abusix v1-v3, however they were carried."""

    name = "xarf-json"
    stage = Stage.STRUCTURAL
    formats = (XARF, XARF4)
    order = 10

    def matches(self, mail: Mail) -> bool:
        return bool(_feedback_parts(mail) or json_parts(mail))

    def parse(self, mail: Mail) -> ParseResult:
        feedback = _feedback_fields(mail)
        parts = json_parts(mail)
        result = ParseResult(Disposition.REPORT, "xarf")
        if not parts:
            report = ParsedReport(format="xarf", review_reasons=[
                "Feedback-Type xarf, but no JSON report part was found"])
            _source_from_feedback(report, feedback)
            result.reports.append(report)
        if len(parts) > MAX_JSON_PARTS:
            result.review_reasons.append(
                f"{len(parts)} JSON parts: only the first {MAX_JSON_PARTS} were read")
        for part in parts[:MAX_JSON_PARTS]:
            mail.deadline.check()
            result.reports.extend(_reports_of_part(mail, part, feedback))
        if result.reports and all(r.format == "xarf4" for r in result.reports):
            result.format = "xarf4"
        return result


# -- finding the JSON -----------------------------------------------------------------------


def _feedback_parts(mail: Mail) -> list[Part]:
    return [p for p in mail.parts if p.content_type in _FEEDBACK_TYPES
            and _FEEDBACK_XARF.search(decode_text(p.data[:8192], p.charset))]


def _is_json_part(part: Part) -> bool:
    return part.content_type in _JSON_TYPES or part.name.endswith(".json")


def _is_xarf(head: bytes) -> bool:
    """XARF keys; ``SourceIp`` alone is not enough (other feeds' JSON records use it too)."""
    keys = {m.group(1) for m in _XARF_KEYS.finditer(head[:65536])}
    return bool(keys - {b"SourceIp"})


def json_parts(mail: Mail) -> list[Part]:
    """The parts holding XARF JSON, in document order. None in an ARF report of another
    Feedback-Type: a JSON file there is part of the reported message, not the report."""
    feedback = _feedback_parts(mail)
    if not feedback and any(p.content_type == "message/feedback-report" for p in mail.parts):
        return []
    found: list[Part] = []
    for part in mail.parts:
        mail.deadline.check()
        head = part.data[:65536]
        if _is_json_part(part):
            if feedback or part.name.startswith("xarf") or _is_xarf(head):
                found.append(part)
        elif (part.content_type == "text/plain" and not part.filename
              and head.lstrip()[:1] == b"{" and _is_xarf(head)):
            found.append(part)
    if feedback and not found:
        found.extend(_after_feedback(mail, feedback[0]))
    return found


def _after_feedback(mail: Mail, feedback: Part) -> list[Part]:
    """ARF with Feedback-Type xarf whose third part is not labelled JSON: the part after part 2."""
    parts = mail.parts
    index = next((n for n, p in enumerate(parts) if p is feedback), len(parts))
    for part in parts[index + 1:]:
        if part.content_type not in _SIGNATURES and part.depth <= feedback.depth:
            return [part]
    return []


def _feedback_fields(mail: Mail) -> dict[str, str]:
    """Part 2's fields (lower-case names, first value wins), leniently."""
    fields: dict[str, str] = {}
    for part in _feedback_parts(mail)[:1]:
        for m in _FIELD.finditer(decode_text(part.data[:65536], part.charset)):
            fields.setdefault(m.group(1).lower(), m.group(2))
    return fields


# -- reading one part -----------------------------------------------------------------------


def _reports_of_part(mail: Mail, part: Part, feedback: dict[str, str]) -> list[ParsedReport]:
    label = part.filename or part.content_type
    if len(part.data) > MAX_JSON_BYTES:
        return [_unreadable(decode_text(part.data[:65536], part.charset), feedback,
                            f"JSON part {label} is {len(part.data)} bytes, more than the "
                            f"{MAX_JSON_BYTES} we parse")]
    text = decode_text(part.data, part.charset or "utf-8").lstrip("\ufeff").strip()
    if not text:
        return [_unreadable("", feedback, f"empty XARF JSON part ({label})")]
    try:
        doc = json.loads(text)
    except RecursionError:
        return [_unreadable(text, feedback, f"XARF JSON part {label} is nested too deep to read")]
    except ValueError as exc:  # JSONDecodeError, and integers past the digit limit
        reason = f"invalid XARF JSON in {label}: {excerpt(str(exc), 160)}"
        return [_unreadable(text, feedback, reason)]
    docs = doc if isinstance(doc, list) else [doc]
    reports: list[ParsedReport] = []
    limit = min(MAX_DOCS_PER_PART, mail.limits.max_reports)
    for item in docs[:limit]:
        mail.deadline.check()
        reports.append(_report_of(item, feedback, mail))
    if len(docs) > limit:
        reports[-1].review_reasons.append(
            f"{len(docs)} reports in {label}: only the first {limit} were read")
    if not reports:
        reports.append(_unreadable(text, feedback, f"{label} holds an empty JSON list"))
    for report in reports:
        report.extra.setdefault("json_part", label)
    return reports


def _report_of(doc: Any, feedback: dict[str, str], mail: Mail) -> ParsedReport:
    if not isinstance(doc, dict):
        return _unreadable("", feedback, f"XARF JSON is a {type(doc).__name__}, not an object")
    if "xarf_version" in doc or ("category" in doc and ("source_identifier" in doc
                                                        or "type" in doc)):
        report = _v4(doc, mail)
    elif isinstance(doc.get("Report"), dict) or "ReporterInfo" in doc:
        report = _abusix(doc, mail)
    else:
        keys = ", ".join(str(k)[:40] for k in list(doc)[:8])
        return _unreadable("", feedback, f"JSON is not an XARF report (keys: {keys})")
    _check_feedback_source(report, feedback)
    return report


def _unreadable(text: str, feedback: dict[str, str], reason: str) -> ParsedReport:
    """A report for JSON we could not read: what a loose look finds, and the reason."""
    report = ParsedReport(format="xarf4" if '"xarf_version"' in text[:65536] else "xarf",
                          review_reasons=[reason])
    loose: dict[str, str] = {}
    for m in _LOOSE.finditer(text[:65536]):
        loose.setdefault(m.group(1), m.group(2))
    ip = clean_ip(loose.get("source_identifier") or loose.get("SourceIp"))
    if ip:
        report.source_ip = ip
        report.inferred.append("source_ip")
    if loose.get("ReportType"):
        report.type_hint = "xarf:" + loose["ReportType"]
        report.inferred.append("type_hint")
    elif loose.get("category") and loose.get("type") and report.format == "xarf4":
        report.type_hint = f"xarf4:{loose['category'].lower()}/{_type_name(loose['type'])}"
        report.inferred.append("type_hint")
    if report.source_ip is None:
        _source_from_feedback(report, feedback)
    return report


def _source_from_feedback(report: ParsedReport, feedback: dict[str, str]) -> None:
    ip = clean_ip(feedback.get("source-ip"))
    if ip:
        report.source_ip = ip
        report.warnings.append("source IP taken from the feedback report's Source-IP")
    if report.occurred_at is None and feedback.get("arrival-date"):
        _set_time(report, feedback["arrival-date"], inferred=True)


def _check_feedback_source(report: ParsedReport, feedback: dict[str, str]) -> None:
    stated = clean_ip(feedback.get("source-ip"))
    if not stated:
        return
    if report.source_ip is None and not report.urls and not report.domains:
        _source_from_feedback(report, feedback)
        report.review_reasons[:] = [r for r in report.review_reasons
                                    if not r.startswith("no source")]
    elif report.source_ip and report.source_ip != stated:
        report.warnings.append(f"the feedback report's Source-IP {stated} differs from the "
                               f"JSON's {report.source_ip}")


# -- values ---------------------------------------------------------------------------------


def _s(value: Any, limit: int = 2000) -> str | None:
    """A non-empty string (numbers as text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:limit]
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _type_name(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def _set_port(report: ParsedReport, value: Any) -> None:
    if value is None or value == "":
        return
    port = value if isinstance(value, int) and not isinstance(value, bool) else (
        parse_int(value) if isinstance(value, str) and value.strip().isdigit() else None)
    if port is None or not 0 < port <= 65535:
        report.warnings.append(f"unreadable source port {excerpt(str(value), 40)!r}")
        return
    report.source_port = port


def _set_time(report: ParsedReport, value: Any, inferred: bool = False) -> bool:
    """Set occurred_at from *value* (ISO 8601, RFC 5322 or epoch seconds); False if unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            report.occurred_at = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return False
        report.occurred_raw = str(value)
    else:
        raw = _s(value, 200)
        occurred, zoned = parse_time(raw)
        if occurred is None or raw is None:
            return False
        report.occurred_at, report.occurred_raw = occurred, raw
        if not zoned:
            inferred = True
            report.warnings.append("time without zone, taken as UTC")
    if inferred and "occurred_at" not in report.inferred:
        report.inferred.append("occurred_at")
    return True


def _time(report: ParsedReport, main: tuple[str, Any], *fallbacks: tuple[str, Any]) -> None:
    name, value = main
    if _s(value) is not None or isinstance(value, int | float):
        if _set_time(report, value):
            return
        report.warnings.append(f"unreadable {name} {excerpt(str(value), 80)!r}")
    for other, fallback in fallbacks:
        if (_s(fallback) is not None or isinstance(fallback, int | float)) and _set_time(
                report, fallback, inferred=True):
            report.warnings.append(f"no readable {name}: {other} taken")
            return
    if report.occurred_at is None:
        report.warnings.append(f"no {name} in the report")


def _place_source(report: ParsedReport, value: str, what: str) -> None:
    """An identifier that may be an IP, a URL or a domain name."""
    value = refang(value.strip())
    if _URL_START.match(value):
        report.urls = unique([*report.urls, value])
        host = host_of(value)
        host_ip = clean_ip(host) if host else None
        if host_ip and report.source_ip is None:
            report.source_ip = host_ip
            report.inferred.append("source_ip")
        elif host and not host_ip:
            report.domains = unique([*report.domains, host])
        return
    ip = clean_ip(value)
    if ip:
        report.source_ip = ip
        return
    domain = value.rstrip(".").lower()
    if _DOMAIN.match(domain):
        report.domains = unique([*report.domains, domain])
        return
    report.review_reasons.append(
        f"{what} {excerpt(value, 80)!r} is neither an IP address, a URL nor a domain name")


def _add_urls(report: ParsedReport, *values: Any) -> None:
    urls = [refang(v) for v in (_s(x) for x in values) if v and _URL_START.match(refang(v))]
    if urls:
        report.urls = unique([*report.urls, *urls])
        report.domains = unique([*report.domains, *domains_of(urls)])


def _address(value: Any) -> str | None:
    text = _s(value, 320)
    if not text:
        return None
    address = parseaddr(text)[1]
    return address.lower() if "@" in address else None


def _small(value: Any) -> Any:
    """A bounded copy of a JSON value for ``extra``."""
    if isinstance(value, str):
        return excerpt(value, MAX_TEXT_CHARS)
    if isinstance(value, list):
        return [_small(v) for v in value[:20] if not isinstance(v, dict | list)]
    if isinstance(value, dict):
        return {str(k)[:64]: _small(v) for k, v in list(value.items())[:20]
                if not isinstance(v, dict | list)}
    return value


# -- evidence -------------------------------------------------------------------------------


def _b64_head(payload: str, limit: int) -> str:
    """The first *limit* bytes of a base64 payload, decoded, without decoding the rest."""
    want = (limit // 3 + 1) * 4
    compact = re.sub(r"[^A-Za-z0-9+/=_-]", "", payload[: want * 2])
    compact = compact.replace("-", "+").replace("_", "/").split("=")[0][:want]
    if len(compact) % 4 == 1:
        compact = compact[:-1]
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact)
    except (binascii.Error, ValueError):
        return "[payload is not valid base64]"
    return decode_text(data[:limit], "utf-8")


def _evidence(report: ParsedReport, items: Any, keys: dict[str, str]) -> None:
    """Evidence items -> a bounded excerpt and a list of what was there. *keys* names the
    fields: content_type, description, payload, base64 (a flag, or "" when always base64)."""
    if items is None:
        return
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        report.warnings.append("evidence is not a list")
        return
    if len(items) > MAX_EVIDENCE_ITEMS:
        report.warnings.append(f"{len(items)} evidence items: only the first "
                               f"{MAX_EVIDENCE_ITEMS} were looked at")
    texts: list[str] = []
    listed: list[dict[str, Any]] = []
    budget = ParsedReport.MAX_EVIDENCE
    for item in items[:MAX_EVIDENCE_ITEMS]:
        if not isinstance(item, dict):
            continue
        ctype = (_s(item.get(keys["content_type"]), 100) or "application/octet-stream").lower()
        description = _s(item.get(keys["description"]), MAX_TEXT_CHARS)
        payload = item.get(keys["payload"])
        payload = payload if isinstance(payload, str) else ""
        flag = item.get(keys["base64"]) if keys["base64"] else True
        encoded = flag is True or str(flag).strip().lower() == "true"
        size = (len(payload) * 3) // 4 if encoded else len(payload)
        if len(payload) > MAX_PAYLOAD_CHARS:
            report.warnings.append(f"an evidence payload of about {size} bytes is over the "
                                   "5 MB maximum")
        listed.append({"content_type": ctype, "description": description, "bytes": size,
                       "hash": _s(item.get("hash"), 200)})
        head = f"[{ctype}] {description or ''}".strip()
        if budget > 0 and payload and ctype.startswith(_TEXTUAL):
            body = _b64_head(payload, budget) if encoded else payload[:budget]
            texts.append(f"{head}\n{body}")
            budget -= len(body)
        else:
            texts.append(f"{head} ({size} bytes, not decoded)" if payload else head)
    report.extra["evidence_items"] = listed
    if texts:
        report.evidence = excerpt("\n\n".join(texts), ParsedReport.MAX_EVIDENCE)


# -- v4 -------------------------------------------------------------------------------------


def _v4(doc: dict[str, Any], mail: Mail) -> ParsedReport:
    report = ParsedReport(format="xarf4")
    version = _s(doc.get("xarf_version"), 40)
    category = (_s(doc.get("category"), 80) or "").lower()
    if not category and _s(doc.get("class"), 80):
        category = (_s(doc.get("class"), 80) or "").lower()
        report.warnings.append("'class' read as 'category' (an earlier draft of the spec)")
    raw_type = _s(doc.get("type"), 80) or ""
    type_ = _type_name(raw_type)
    if raw_type and raw_type != type_:
        report.warnings.append(f"type {raw_type!r} normalised to {type_!r}")
    if not category and type_ in _CATEGORY_OF:
        category = _CATEGORY_OF[type_]
        report.inferred.append("type_hint")
    if category and type_:
        report.type_hint = f"xarf4:{category}/{type_}"
    elif category or type_:
        report.type_hint = f"xarf4:{category or type_}"
        report.warnings.append("XARF v4 report without " + ("type" if category else "category"))
    else:
        report.review_reasons.append("XARF v4 report without category and type")

    identifier = _s(doc.get("source_identifier"), 2000) or _s(doc.get("source_ip"), 200)
    if identifier:
        _place_source(report, identifier, "source_identifier")
    _add_urls(report, doc.get("url"), doc.get("infringing_url"))
    domain = _s(doc.get("domain"), 253)
    if domain and _DOMAIN.match(domain.rstrip(".")):
        report.domains = unique([*report.domains, domain.rstrip(".").lower()])
    if not identifier and not report.urls and not report.domains:
        report.review_reasons.append("no source in the XARF report (source_identifier)")
    _set_port(report, doc.get("source_port"))
    _time(report, ("timestamp", doc.get("timestamp")), ("first_seen", doc.get("first_seen")),
          ("last_seen", doc.get("last_seen")))

    reporter = _dict(doc.get("reporter"))
    report.reporter_address = _address(reporter.get("contact"))
    report.reporter_org = _s(reporter.get("org"), 200) or _s(reporter.get("domain"), 253)
    if report.reporter_address is None:
        report.reporter_address = _address(mail.from_)
        if report.reporter_address:
            report.inferred.append("reporter_address")

    _evidence(report, doc.get("evidence"), {"content_type": "content_type",
                                            "description": "description", "payload": "payload",
                                            "base64": ""})
    report.extra.update({
        "xarf_version": version,
        "report_id": _s(doc.get("report_id"), 200),
        "category": category or None,
        "type": type_ or None,
        "reporter_domain": _s(reporter.get("domain"), 253),
        "sender": _small(doc.get("sender")) if isinstance(doc.get("sender"), dict) else None,
        "evidence_source": _s(doc.get("evidence_source"), 200),
        "confidence": doc.get("confidence") if isinstance(doc.get("confidence"), int | float)
        else None,
        "tags": _small(doc.get("tags")) if isinstance(doc.get("tags"), list) else [],
        "description": _s(doc.get("description"), MAX_TEXT_CHARS),
        "destination_ip": clean_ip(_s(doc.get("destination_ip"), 100)),
        "destination_port": doc.get("destination_port"),
        "protocol": _s(doc.get("protocol"), 40),
        "service": _s(doc.get("service"), 100),
        "first_seen": _s(doc.get("first_seen"), 100),
        "last_seen": _s(doc.get("last_seen"), 100),
        "legacy_version": _s(doc.get("legacy_version"), 20),
    })
    if "_internal" in doc:
        report.warnings.append("the report carries '_internal', which is never to be sent")
    problems = validate_v4({**doc, "category": category, "type": type_})
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        report.warnings.append("XARF v4 validation: " + "; ".join(problems[:3]) + more)
    return report


def _required_v4(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    version = _s(doc.get("xarf_version"), 40)
    if not version or not _V4_VERSION.match(version):
        problems.append(f"xarf_version {version!r} is not 4.x.y")
    missing = [k for k in ("report_id", "timestamp", "source_identifier", "category", "type")
               if _s(doc.get(k)) is None]
    for block in ("reporter", "sender"):
        value = doc.get(block)
        if not isinstance(value, dict):
            missing.append(block)
        else:
            missing.extend(f"{block}.{k}" for k in ("org", "contact", "domain")
                           if _s(value.get(k)) is None)
    if missing:
        problems.append("missing " + ", ".join(missing))
    category, type_ = doc.get("category"), doc.get("type")
    if category and type_ and type_ not in V4_TYPES.get(str(category), ()):
        problems.append(f"unknown category/type {category}/{type_}")
    return problems


def validate_v4(doc: dict[str, Any]) -> list[str]:
    """Problems with a v4 report: the required fields, then the ``xarf`` package's schemas."""
    problems = _required_v4(doc)
    if problems:
        return problems  # the schema would say the same, at length
    try:
        from xarf import schema_validator
    except ImportError:
        return problems
    try:
        errors = schema_validator.validate(doc)
    except Exception as exc:  # the validator's own trouble must not cost us the report
        return [f"the xarf schema validator failed: {exc.__class__.__name__}"]
    messages = [excerpt(f"{e.field}: {e.message}" if e.field else e.message, 160)
                for e in errors if "is not valid under any of the given schemas" not in e.message]
    if errors and not messages:
        messages = ["does not match the schema of its category and type"]
    return unique(messages)


# -- abusix v1-v3 ---------------------------------------------------------------------------


def _abusix(doc: dict[str, Any], mail: Mail) -> ParsedReport:
    report = ParsedReport(format="xarf")
    body = _dict(doc.get("Report"))
    info = _dict(doc.get("ReporterInfo"))
    version = _s(doc.get("Version"), 20)
    if version is not None and version.lower() not in ABUSIX_VERSIONS:
        report.warnings.append(f"unknown XARF Version {version!r}")
    if not body:
        report.review_reasons.append("XARF JSON without a Report object")
    report_type = _s(body.get("ReportType"), 80)
    report_class = _s(body.get("ReportClass"), 80)
    if report_type:
        report.type_hint = "xarf:" + report_type
    elif report_class:
        report.type_hint = "xarf:" + report_class
        report.inferred.append("type_hint")
        report.warnings.append("no ReportType: the ReportClass taken instead")
    elif body:
        report.review_reasons.append("XARF report without ReportType or ReportClass")

    ip_value = _s(body.get("SourceIp"), 200)
    if ip_value:
        ip = clean_ip(ip_value)
        if ip:
            report.source_ip = ip
        else:
            report.warnings.append(f"unreadable SourceIp {excerpt(ip_value, 80)!r}")
    _add_urls(report, body.get("SourceUrl"), body.get("InfringingUrl"))
    url = _s(body.get("SourceUrl"), 2000)
    if url and report.source_ip is None:
        _place_source(report, url, "SourceUrl")
    if report.source_ip is None and not report.urls and body:
        report.review_reasons.append("no source in the XARF report (SourceIp, SourceUrl)")
    _set_port(report, body.get("SourcePort"))
    _time(report, ("Date", body.get("Date")), ("FirstSeen", body.get("FirstSeen")))

    report.reporter_org = _s(info.get("ReporterOrg"), 200) or _s(info.get("ReporterOrgDomain"),
                                                                   253)
    report.reporter_address = (_address(info.get("ReporterOrgEmail"))
                               or _address(info.get("ReporterContactEmail")))
    if report.reporter_address is None:
        report.reporter_address = _address(mail.from_)
        if report.reporter_address:
            report.inferred.append("reporter_address")
    if not info:
        report.warnings.append("XARF report without ReporterInfo")

    samples = body.get("Samples", body.get("Sample"))
    _evidence(report, samples, {"content_type": "ContentType", "description": "Description",
                                "payload": "Payload", "base64": "Base64Encoded"})
    on_behalf = doc.get("OnBehalfOf")
    report.extra.update({
        "version": version,
        "report_class": report_class,
        "report_type": report_type,
        "report_subtype": _s(body.get("ReportSubType"), 80),
        "reporter_contact": _address(info.get("ReporterContactEmail")),
        "reporter_domain": _s(info.get("ReporterOrgDomain"), 253),
        "on_behalf_of": _small(on_behalf) if isinstance(on_behalf, dict) else None,
        "disclosure": doc.get("Disclosure") if isinstance(doc.get("Disclosure"), bool | str)
        else None,
        "destination_ip": clean_ip(_s(body.get("DestinationIp"), 100)),
        "destination_port": body.get("DestinationPort"),
        "first_seen": _s(body.get("FirstSeen"), 100),
        "smtp_mail_from": _s(body.get("SmtpMailFromAddress") or body.get("FromAddress"), 320),
        "ongoing": body.get("Ongoing") if isinstance(body.get("Ongoing"), bool) else None,
    })
    return report


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [XarfJsonParser()]
