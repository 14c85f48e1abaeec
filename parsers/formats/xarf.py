"""X-ARF 0.1 / 0.2: a YAML ``report.txt`` beside a human-readable part and, maybe, evidence.

The layout (the X-ARF 0.2 specification, x-arf.org)::

    multipart/mixed                      X-XARF: PLAIN (0.2) / X-ARF: YES (0.1) / either / none
      text/plain                         human readable
      text/plain; name="report.txt"      "Key: value" YAML, first line "---" (often missing)
      <Attachment type>                  evidence (logfile.log, message/rfc822); may come first

The report is YAML read with :class:`_XarfLoader`: no tags are resolved (every scalar stays a
string, so ``Port: 80``, ``Version: 0.2`` and an IPv6 address are read as written), explicit
tags are refused (``!!python/object`` constructs nothing) and so are anchors and aliases, so an
alias bomb is refused at its first anchor instead of being expanded. What YAML cannot read
(clean-mx's ``Schema-URL: http: //...`` is a YAML error) is read again line by line, leniently.
Schema-URL is never fetched: the schema's name says what we need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, ClassVar

import yaml

from ...core.fields import (
    clean_ip,
    domains_of,
    excerpt,
    find_ips,
    host_of,
    parse_int,
    parse_time,
    refang,
    unique,
)
from ...core.headers import parse_address
from ...core.mail import Mail, Part, decode_text
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage

REPORT_NAMES = ("report.txt", "report.yaml", "report.yml")
MAX_REPORT_BYTES = 256 * 1024  # real report.txt files are under 2 KiB
MAX_YAML_CHARS = 64 * 1024  # past this, pure-Python YAML gets slow: read as lines instead
MAX_REPORT_PARTS = 20
MAX_LINES = 2000
MAX_FIELDS = 100
MAX_VALUE_CHARS = 2000
MAX_HUMAN_BYTES = 256 * 1024

_XARF_KEYS = ("reported-from", "report-type", "source", "source-type", "category", "schema-url",
              "report-id", "user-agent")
_KEY_LINE = re.compile(r"^[ \t]*[\"']?(" + "|".join(map(re.escape, _XARF_KEYS)) + r")[\"']?[ \t]*:",
                       re.I | re.M)
_LINE = re.compile(r"^[\"']?(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63})[\"']?[ \t]*+:[ \t]*+"
                   r"(?P<value>.*)$")
_BROKEN_SCHEME = re.compile(r"\b(https?|ftp):\s+//", re.I)
_SCHEMA_NAME = re.compile(r"^(?P<category>[a-z]+)(?:_(?P<type>[a-z][a-z-]*))?"
                          r"_(?P<version>\d+(?:\.\d+)*)\.json$", re.I)
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+"
                     r"[a-z][a-z0-9-]{0,62}$", re.I)
_URL_START = re.compile(r"^[a-z][a-z0-9+.-]{0,15}://", re.I)
_IP_TYPES = ("ipv4", "ipv6", "ip-address", "ip", "ipaddress", "ip_address")
_URL_TYPES = ("uri", "url")
_SIGNATURES = ("application/pgp-signature", "application/pkcs7-signature",
               "application/x-pkcs7-signature")
_BINARY = ("image/", "audio/", "video/", "application/zip", "application/octet-stream",
           "application/x-", "application/pdf", "application/vnd")
# "http://host/path [192.0.2.1]" (Netcraft's human part), "located at IP address 192.0.2.1".
_URL_WITH_IP = re.compile(r"(?:https?://|www\.)\S{1,2000}\s+\[(?P<ip>[0-9A-Fa-f:.]{3,45})\]")
_IP_PHRASE = re.compile(r"\bIP(?:[ -]address)?:?\s+\*?(?P<ip>[0-9A-Fa-f:.]{3,45})", re.I)
_REQUIRED = ("Reported-From", "Category", "Report-Type", "Report-ID", "User-Agent", "Date",
             "Source", "Source-Type", "Attachment", "Schema-URL")


class _Refused(Exception):
    """YAML we will not read: anchors, aliases, explicit tags."""


class _XarfLoader(yaml.SafeLoader):
    """SafeLoader that resolves no tags and refuses anchors, aliases and explicit tags."""

    yaml_implicit_resolvers: ClassVar[dict[str, Any]] = {}  # no implicit tags: all str

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("aliases")
        if getattr(event, "anchor", None) is not None:
            raise _Refused("anchors")
        if getattr(event, "tag", None) not in (None, "!"):
            raise _Refused(f"explicit tags ({str(event.tag)[:40]})")
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """*text* as YAML with no tags and no aliases; raises yaml.YAMLError or _Refused."""
    return yaml.load(text, Loader=_XarfLoader)


@dataclass
class Fields:
    """The report's "Key: value" fields, looked up case-insensitively."""

    items: dict[str, Any] = field(default_factory=dict)  # original key -> value
    warnings: list[str] = field(default_factory=list)
    review_reasons: list[str] = field(default_factory=list)

    def get(self, *names: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.items.items()}
        for name in names:
            value = lowered.get(name.lower())
            if isinstance(value, list):
                value = next((v for v in value if isinstance(v, str) and v), None)
            if isinstance(value, str) and value:
                return value
        return None

    def has(self, name: str) -> bool:
        return name.lower() in {k.lower() for k in self.items}


# -- the format, as the registry and the classifier know it ------------------------------

# X-ARF 0.1/0.2 Report-Type (and Category when there is no Report-Type), and the abusix
# v1-v3 JSON ReportType (CamelCase, the same key as its hyphenated X-ARF twin).
XARF_VOCABULARY: dict[str, tuple[str, float]] = {
    "login-attack": ("hacking", 0.95),
    "malware-attack": ("malware", 0.9),  # a site serving malware (Netcraft, clean-mx)
    "bot-infection": ("malware", 0.95),
    "phishing": ("phishing", 0.95),
    "scam": ("fraud", 0.9),
    "spam": ("spam", 0.95),
    "defacement": ("hacking", 0.9),
    "infected": ("malware", 0.9),
    "harvesting": ("spam", 0.7),  # address harvesters (Project Honey Pot)
    "regbot": ("spam", 0.6),  # forum and wiki registration bots (blocklist.de)
    "dnsbl-listing": ("spam", 0.5),
    "info": ("spam", 0.3),
    "abuse": ("hacking", 0.35),  # the X-ARF category alone
    "fraud": ("fraud", 0.6),  # the X-ARF category alone
    # abusix v1-v3 ReportType
    "port-scan": ("port-scan", 0.95),
    "ddos": ("ddos", 0.95),
    "malware": ("malware", 0.95),
    "copyright": ("copyright", 0.95),
    "botnet": ("malware", 0.95),
    "open-service": ("open-service", 0.95),
    "exploit": ("hacking", 0.9),
    "harassment": ("harassment", 0.9),
    "child-abuse": ("illegal", 0.95),
    "trademark": ("copyright", 0.7),
    "potentially-compromised": ("malware", 0.7),
    "web-crawler": ("hacking", 0.4),
    "rpz": ("malware", 0.5),
}
XARF = Format("xarf", machine=True, vocabulary=XARF_VOCABULARY, trusted_senders=(
    ("Netcraft", ("netcraft.com", "*.netcraft.com",)),
    ("abusix", ("abusix.com", "*.abusix.com",)),
))


class XarfParser:
    """X-ARF 0.1 / 0.2 mails: one report per report.txt."""

    name = "xarf"
    stage = Stage.STRUCTURAL
    formats = (XARF,)
    order = 30

    def matches(self, mail: Mail) -> bool:
        return bool(report_parts(mail))

    def parse(self, mail: Mail) -> ParseResult:
        parts = report_parts(mail)
        if not parts:
            return ParseResult(Disposition.REPORT, "xarf",
                               review_reasons=["no X-ARF report.txt found in the message"])
        result = ParseResult(Disposition.REPORT, "xarf")
        if len(parts) > MAX_REPORT_PARTS:
            result.review_reasons.append(f"{len(parts)} X-ARF report parts: only the first "
                                         f"{MAX_REPORT_PARTS} were read")
        for part in parts[:MAX_REPORT_PARTS]:
            mail.deadline.check()
            result.reports.append(_report(mail, part))
        return result


# -- finding the report ---------------------------------------------------------------------


def has_xarf_header(mail: Mail) -> bool:
    for name in ("X-XARF", "X-ARF"):
        value = mail.header(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return True
    return False


def _head(part: Part, limit: int) -> str:
    return decode_text(part.data[:limit], part.charset)


def _key_count(text: str) -> set[str]:
    return {m.group(1).lower() for m in _KEY_LINE.finditer(text[:65536])}


def report_parts(mail: Mail) -> list[Part]:
    """The parts holding an X-ARF report: named report.txt/.yaml/.yml parts whose content has
    X-ARF keys; failing those, in a mail with an X-ARF header, the text part that looks most
    like one."""
    header = has_xarf_header(mail)
    named: list[Part] = []
    best: tuple[int, Part] | None = None
    for part in mail.parts:
        mail.deadline.check()
        ctype = part.content_type
        if not (ctype.startswith("text/") or ctype in ("application/octet-stream",
                                                        "application/yaml", "application/x-yaml")):
            continue
        name = part.name
        if name.endswith(REPORT_NAMES) or name.endswith((".yaml", ".yml")):
            keys = _key_count(_head(part, 65536))
            if len(keys) >= 2 and keys & {"report-type", "source", "reported-from"}:
                named.append(part)
        elif header and ctype == "text/plain":
            keys = _key_count(_head(part, 65536))
            if {"report-type", "source"} <= keys and len(keys) >= 3 and (
                    best is None or len(keys) > best[0]):
                best = (len(keys), part)
    if named:
        return named
    return [best[1]] if best else []


# -- reading the fields ---------------------------------------------------------------------


def _clean(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].strip()
    value = _BROKEN_SCHEME.sub(lambda m: m.group(1) + "://", value)
    return value[:MAX_VALUE_CHARS]


def _scalar(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list):
        return [_clean(v) if isinstance(v, str) else _clean(str(v)) for v in value[:50]]
    return _clean(str(value))


def read_fields(text: str) -> Fields:
    """The fields of one report.txt: YAML first, "Key: value" lines when YAML fails."""
    fields = Fields()
    doc: Any = None
    try:
        if len(text) > MAX_YAML_CHARS:
            raise yaml.YAMLError(f"longer than {MAX_YAML_CHARS} characters")
        doc = load_yaml(text)
    except _Refused as exc:
        fields.review_reasons.append(
            f"report.txt uses YAML {exc}, which we refuse (no alias expansion, no tags); "
            "it was read as plain 'Key: value' lines")
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        fields.warnings.append(f"report.txt is not valid YAML ({first[:120]}); "
                               "read as 'Key: value' lines")
    if doc is not None and not isinstance(doc, dict):
        fields.warnings.append("report.txt is not a YAML mapping; read as 'Key: value' lines")
        doc = None
    if isinstance(doc, dict):
        for key, value in list(doc.items())[:MAX_FIELDS]:
            fields.items[str(key).strip()[:64]] = _scalar(value)
    else:
        fields.items = _read_lines(text)
    return fields


def _read_lines(text: str) -> dict[str, Any]:
    """Lenient "Key: value" lines: quoted values, extra spaces, indented continuation lines."""
    items: dict[str, Any] = {}
    last: str | None = None
    for line in text.splitlines()[:MAX_LINES]:
        if not line.strip() or line.strip() in ("---", "...") or line.lstrip().startswith("#"):
            last = None
            continue
        m = _LINE.match(line)
        if m:
            key = m.group("key")
            if key not in items and len(items) < MAX_FIELDS:
                items[key] = _clean(m.group("value"))
                last = key
            else:
                last = None
        elif last is not None and line[:1] in (" ", "\t") and isinstance(items[last], str):
            items[last] = _clean(items[last] + " " + line.strip())
    return items


# -- one report -----------------------------------------------------------------------------


def _report(mail: Mail, part: Part) -> ParsedReport:
    report = ParsedReport(format="xarf")
    if len(part.data) > MAX_REPORT_BYTES:
        report.warnings.append(f"report.txt is {len(part.data)} bytes: only the first "
                               f"{MAX_REPORT_BYTES} were read")
    fields = read_fields(_head(part, MAX_REPORT_BYTES))
    report.warnings.extend(fields.warnings)
    report.review_reasons.extend(fields.review_reasons)

    _type_hint(report, fields)
    _source(report, fields, mail, part)
    _port(report, fields)
    _time(report, fields, mail)
    _reporter(report, fields, mail)
    occurrences = parse_int(fields.get("Occurrences"))
    if occurrences:
        report.incidents = occurrences
    _evidence(report, fields, mail, part)

    missing = [name for name in _REQUIRED if not fields.has(name)]
    if missing:
        report.warnings.append("X-ARF fields missing: " + ", ".join(missing))
    return report


def schema_name(url: str | None) -> str | None:
    """``http://www.x-arf.org/schema/abuse_login-attack_0.1.2.json`` -> ``abuse_login-attack_0.1.2``
    (never fetched)."""
    if not url:
        return None
    last = url.strip().rstrip("/").rsplit("/", 1)[-1]
    return last[:-5] if last.lower().endswith(".json") else last or None


def _type_hint(report: ParsedReport, fields: Fields) -> None:
    report_type = fields.get("Report-Type")
    category = fields.get("Category")
    schema_url = fields.get("Schema-URL")
    schema = schema_name(schema_url)
    parsed = _SCHEMA_NAME.match(f"{schema}.json") if schema else None
    if report_type:
        report.type_hint = "xarf:" + report_type.strip().lower()
    elif parsed and parsed.group("type"):
        report.type_hint = "xarf:" + parsed.group("type").lower()
        report.inferred.append("type_hint")
        report.warnings.append("no Report-Type: taken from the schema name")
    elif category:
        report.type_hint = "xarf:" + category.strip().lower()
        report.inferred.append("type_hint")
        report.warnings.append("no Report-Type: the Category taken instead")
    if not category and parsed:
        category = parsed.group("category")
    report.extra.update({
        "category": category.lower() if category else None,
        "report_type": report_type,
        "report_id": fields.get("Report-ID"),
        "service": fields.get("Service"),
        "version": fields.get("Version"),
        "schema": schema,
        "schema_url": schema_url,
        "user_agent": fields.get("User-Agent"),
        "tlp": fields.get("TLP"),
        "attachment": fields.get("Attachment"),
        "destination": fields.get("Destination"),
        "fields": fields.items,
    })


def _source(report: ParsedReport, fields: Fields, mail: Mail, part: Part) -> None:
    source = fields.get("Source")
    stype = (fields.get("Source-Type") or "").strip().lower()
    if source:
        _place_source(report, source, stype)
    else:
        report.review_reasons.append("X-ARF report without a Source")
    for domain in (fields.get("Domain"),):
        if domain and _DOMAIN.match(domain.strip().rstrip(".")):
            report.domains = unique([*report.domains, domain.strip().rstrip(".").lower()])
    link = fields.get("Download-Link")
    if link:
        url = refang(link)
        report.urls = unique([*report.urls, url])
        report.domains = unique([*report.domains, *domains_of([url])])
    if report.source_ip is None and (report.urls or report.domains) and source:
        _ip_from_human_text(report, mail, part)


def _place_source(report: ParsedReport, source: str, stype: str) -> None:
    value = refang(source.strip())
    ip = clean_ip(value) if not _URL_START.match(value) else None
    if stype in _URL_TYPES or _URL_START.match(value):
        url = value if _URL_START.match(value) else "http://" + value
        report.urls.append(url)
        host = host_of(url)
        host_ip = clean_ip(host) if host else None
        if host_ip:
            report.source_ip = host_ip
            report.inferred.append("source_ip")
        elif host:
            report.domains.append(host)
        if stype not in (*_URL_TYPES, ""):
            report.warnings.append(f"Source-Type {stype!r} but Source is a URL")
        return
    if ip:
        report.source_ip = ip
        if stype and stype not in _IP_TYPES:
            report.warnings.append(f"Source-Type {stype!r} but Source is an IP address")
        return
    domain = value.rstrip(".").lower()
    if _DOMAIN.match(domain):
        report.domains.append(domain)
        if stype and stype != "domain":
            report.warnings.append(f"Source-Type {stype!r} but Source is a domain name")
        return
    found = find_ips(value, limit=2)
    if len(found) == 1:
        report.source_ip = found[0]
        report.inferred.append("source_ip")
        report.warnings.append(f"Source {excerpt(source, 80)!r} is not a bare address: "
                               "the address in it taken")
        return
    report.review_reasons.append(
        f"Source {excerpt(source, 80)!r} is neither an IP address, a URL nor a domain name")


def _ip_from_human_text(report: ParsedReport, mail: Mail, report_part: Part) -> None:
    """Netcraft names the host's address beside the URL in the human part: "http://x/ [ip]"."""
    found: list[str] = []
    for part in mail.parts:
        mail.deadline.check()
        if part is report_part or part.filename or part.content_type != "text/plain":
            continue
        text = _head(part, MAX_HUMAN_BYTES)
        matches = list(_URL_WITH_IP.finditer(text)) or list(_IP_PHRASE.finditer(text))
        found.extend(ip for ip in (clean_ip(m.group("ip").rstrip(".:")) for m in matches[:50])
                     if ip)
    candidates = unique(found)
    if len(candidates) == 1:
        report.source_ip = candidates[0]
        report.inferred.append("source_ip")
        report.warnings.append("the Source is a URL or domain: its IP address was taken from "
                               "the human-readable part")
    elif candidates:
        report.extra["candidate_ips"] = candidates[:20]


def _port(report: ParsedReport, fields: Fields) -> None:
    raw = fields.get("Source-Port", "Port")
    if raw is None:
        return
    port = parse_int(raw)
    if port is None or not 0 < port <= 65535:
        report.warnings.append(f"unreadable port {excerpt(raw, 40)!r}")
        return
    report.source_port = port


def _time(report: ParsedReport, fields: Fields, mail: Mail) -> None:
    raw = fields.get("Date")
    if raw:
        occurred, zoned = parse_time(raw)
        report.occurred_raw = raw
        if occurred is None:
            report.warnings.append(f"unreadable Date {excerpt(raw, 80)!r}")
            return
    else:
        header = mail.header("Date")
        occurred, zoned = parse_time(header)
        if occurred is None:
            report.warnings.append("no Date in the report and none readable in the message")
            return
        report.occurred_raw = header
        report.inferred.append("occurred_at")
        report.warnings.append("no Date in the report: the message's Date taken")
    report.occurred_at = occurred
    if not zoned:
        if "occurred_at" not in report.inferred:
            report.inferred.append("occurred_at")
        report.warnings.append("time without zone, taken as UTC")


def _reporter(report: ParsedReport, fields: Fields, mail: Mail) -> None:
    stated = fields.get("Reported-From")
    address = parseaddr(stated)[1] if stated else ""
    if "@" not in address:
        address = parse_address(mail.from_)[1]
        if "@" in address:
            report.inferred.append("reporter_address")
    if "@" in address:
        report.reporter_address = address.lower()
    org = fields.get("Reporter", "Reporter-Org", "Organisation", "Organization")
    if org:
        report.reporter_org = org
    elif report.reporter_address:
        report.reporter_org = report.reporter_address.rsplit("@", 1)[1]
        report.inferred.append("reporter_org")


def _evidence(report: ParsedReport, fields: Fields, mail: Mail, report_part: Part) -> None:
    announced = (fields.get("Attachment") or "").strip().lower()
    expects = announced not in ("", "none", "no", "false", "0")
    part = _evidence_part(mail, report_part, announced if expects else "")
    if part is None:
        if expects:
            report.warnings.append(f"Attachment {announced!r} announced but no evidence found")
        return
    report.extra["evidence_part"] = {"content_type": part.content_type,
                                     "filename": part.filename, "bytes": len(part.data)}
    if part.content_type.startswith(_BINARY):
        report.evidence = (f"[{part.content_type} attachment {part.filename or ''}, "
                           f"{len(part.data)} bytes]")
        return
    text = _head(part, ParsedReport.MAX_EVIDENCE * 4)
    report.evidence = excerpt(text, ParsedReport.MAX_EVIDENCE) or None


def _evidence_part(mail: Mail, report_part: Part, announced: str) -> Part | None:
    """The first attachment that is neither the report nor a signature (before or after it);
    else a part of the announced type after the first, human-readable one."""
    human_seen = False
    fallback: Part | None = None
    for part in mail.parts:
        if part is report_part or part.name.endswith(REPORT_NAMES):
            continue
        ctype = part.content_type
        if ctype in _SIGNATURES:
            continue
        if part.filename or ctype in ("message/rfc822", "message/global", "text/rfc822-headers"):
            return part
        if announced and ctype == announced and human_seen and fallback is None:
            fallback = part
        if ctype.startswith("text/"):
            human_seen = True
    return fallback


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [XarfParser()]
