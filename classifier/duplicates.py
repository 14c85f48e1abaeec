"""The same report twice is one report: its fingerprint, and the keys a later copy is found by.

Reporters resend: a feedback loop retries, a notice sender reminds, a mail is forwarded again,
an archive is imported twice. A copy is merged into the first report and counted there, never
opened as a second case. The pipeline stores each report's keys (``duplicate_keys`` table) and a
new report that shares any key with a recent one is a copy of it. The keys:

``fp:<reporter>:<fingerprint>``
    The same incident from the same reporter, in a new message: a resend with a new Message-ID
    and Date. Scoped by reporter so that two reporters who saw the same spam run in the same
    second stay two complaints, and so that anyone who can guess an incident cannot pre-empt a
    real reporter's report with a forged one that the real one would be merged into. Only for
    reports that say *when* and *what* (a time, and an IP, URL or domain): without them, two
    different complaints could share a fingerprint.
``msgid:<reporter>:<Message-ID>:<fingerprint prefix>``
    The same message delivered again (an MTA retry, a re-import with other Received lines),
    whatever it says. A Message-ID alone is not enough: it is the sender's choice, and two
    reporters can use the same one, so it is scoped by the reporter's address. The fingerprint
    prefix keeps the reports of one message apart (a Shadowserver CSV of 3 rows is 3 reports
    with one Message-ID), so no report of a message is merged into its sibling.
``acns:<complainant>:<case id>[:<source IP>]``
    A DMCA/ACNS notice for a case already received: a reminder (with a new timestamp), the
    same notice from a second address of the agent. Case ids are numbered by each complainant,
    so the key is scoped by the complainant (its address, else its organisation). An ACNS case
    names one source; the IP is in the key so that a notice naming another IP under a known
    case id (a mistake, or a forgery sent ahead of the real notice) is never merged away.

Keys are at most ``MAX_KEY_CHARS`` long (the column's size); a longer one is hashed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..core.headers import first_address
from ..parsers.base import ParsedReport

FINGERPRINT_VERSION = "v1"  # part of the hashed form: change it when the canonical form changes
MAX_KEY_CHARS = 255
MSGID_FINGERPRINT_CHARS = 16

_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_SPACE = re.compile(r"\s+")


def _ip(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    try:
        return ipaddress.ip_address(value.strip()).compressed  # 2001:DB8:0::1 -> 2001:db8::1
    except ValueError:
        return value.strip().lower()


def _second(value: datetime | None) -> str | None:
    """UTC to the second; a naive time is taken as UTC (the parsers give UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # drops the fraction


def _url(url: str) -> str:
    """Scheme and host are case-insensitive; path and query are not."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    path = parts.path or ("/" if parts.netloc else "")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query,
                       parts.fragment))


def _domain(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def case_id(report: ParsedReport) -> str | None:
    """The ACNS/DMCA case id of a report, if it has one."""
    value = report.extra.get("case_id")
    text = str(value).strip() if value is not None else ""
    return text or None


def canonical_form(report: ParsedReport) -> list[Any]:
    """What makes two reports the same report: the incident, not how it was written (no
    evidence text, reporter name or formatting, warnings, or order of URLs)."""
    return [
        FINGERPRINT_VERSION,
        report.format.strip().lower(),
        (report.type_hint or "").strip().lower() or None,
        _ip(report.source_ip),
        report.source_port,
        _second(report.occurred_at),
        sorted({_url(u) for u in report.urls if u.strip()}),
        sorted({_domain(d) for d in report.domains if d.strip()}),
        case_id(report),
    ]


def report_fingerprint(report: ParsedReport) -> str:
    """sha256 (hex) of the report's canonical form."""
    text = json.dumps(canonical_form(report), separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def identifies_incident(report: ParsedReport) -> bool:
    """Whether the fingerprint pins one incident: it says when, and who or what."""
    return report.occurred_at is not None and bool(
        _ip(report.source_ip) or any(u.strip() for u in report.urls)
        or any(d.strip() for d in report.domains))


def normalize_message_id(header: str | None) -> str | None:
    """The msg-id inside the angle brackets (the first one), or the stripped value."""
    if not header or not header.strip():
        return None
    match = _MESSAGE_ID.search(header)
    return match.group(1) if match else _SPACE.sub("", header) or None


def _reporter(value: str | None) -> str | None:
    """An address, lower case, without display name: ``Yahoo <Feedback@X>`` -> ``feedback@x``."""
    if not value or not value.strip():
        return None
    return first_address(value) or value.strip().lower()


def _complainant(report: ParsedReport, reporter: str | None) -> str | None:
    org = _SPACE.sub(" ", report.reporter_org or "").strip().casefold()
    return _reporter(report.reporter_address) or org or reporter


def _bounded(kind: str, *parts: str) -> str:
    key = f"{kind}:" + ":".join(parts)
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:sha256:{digest}"


def duplicate_keys(report: ParsedReport, message_id_header: str | None,
                   reporter: str | None) -> list[str]:
    """The keys a copy of *report* is found by (see the module's docstring for why each).

    *message_id_header* is the Message-ID header of the message the report came in; *reporter*
    its From address (the report's own reporter address when None).
    """
    fingerprint = report_fingerprint(report)
    sender = _reporter(reporter) or _reporter(report.reporter_address)
    keys = []
    if identifies_incident(report):
        keys.append(_bounded("fp", sender, fingerprint) if sender
                    else _bounded("fp", fingerprint))
    message_id = normalize_message_id(message_id_header)
    if message_id and sender:
        keys.append(_bounded("msgid", sender, message_id,
                             fingerprint[:MSGID_FINGERPRINT_CHARS]))
    case = case_id(report)
    complainant = _complainant(report, sender)
    if case and complainant:
        ip = _ip(report.source_ip)
        keys.append(_bounded("acns", complainant, case, *([ip] if ip else [])))
    return keys
