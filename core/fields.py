"""Helpers every parser needs: dates with their zone, IPs, URLs (defanged ones restored), domains.

All are pure functions, bounded, and never raise on bad input.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz
from urllib.parse import urlsplit

# -- time -----------------------------------------------------------------------------------

_ZONES = {  # abbreviations seen in real reports (RFC 5322 obs-zone plus common ones)
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 60, "CET": 60, "CEST": 120, "MET": 60,
    "MEST": 120, "EET": 120, "EEST": 180, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
    "MST": -420, "MDT": -360, "PST": -480, "PDT": -420, "JST": 540, "IST": 330, "AEST": 600,
    "BRT": -180, "ART": -180,  # Brasília and Argentina: no daylight saving since 2019 / 2009
}
_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})(?:[T ](?P<h>\d{1,2})[:\-](?P<mi>\d{2})"
    r"(?:[:\-](?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?)?\s*"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2}|UTC|GMT|UT|[A-Z]{3,4}(?![a-z]))?", re.I)
_CTIME = re.compile(  # "Thu Feb 13 18:28:15 2014 +00:00 GMT", "Thu Feb 13 18:28:15 CET 2014"
    r"(?:[A-Z][a-z]{2}\s+)?(?P<mon>[A-Z][a-z]{2})\s+(?P<d>\d{1,2})\s+(?P<h>\d{1,2}):(?P<mi>\d{2})"
    r":(?P<s>\d{2})\s+(?:(?P<zone1>[A-Z]{2,4})\s+)?(?P<y>\d{4})\s*"
    r"(?P<zone>[+-]\d{2}:?\d{2}|[A-Z]{2,4})?")
_DAY_ONLY = re.compile(r"^(?:[A-Z][a-z]{2},?\s+)?(?P<d>\d{1,2})\s+(?P<mon>[A-Za-z]{3,9})\s+"
                       r"(?P<y>\d{4})\s*$")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}


def _zone_offset(zone: str | None) -> int | None:
    """Minutes east of UTC for a zone string, or None when there is none or it is unknown."""
    if not zone:
        return None
    z = zone.strip().upper()
    if z in _ZONES:
        return _ZONES[z]
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", z)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return minutes if m.group(1) == "+" else -minutes
    return None


def parse_time(raw: str | None) -> tuple[datetime | None, bool]:
    """A report's time as UTC, and whether its zone was stated.

    Accepts RFC 5322 dates (with "(PST)" comments and zone names), ISO 8601 (also with a space,
    ``.000Z``, and IP-Echelon's ``2015-05-06T05-00-00UTC``), ``YYYY-MM-DD HH:MM:SS.0 GMT``,
    ctime-like dates, and dates without a time. A zone-less time is taken as UTC and the second
    value is False, so the caller can flag it.
    """
    if not raw:
        return None, False
    text = re.sub(r"\([^)]{0,60}\)", " ", str(raw))[:200].strip()
    if not text:
        return None, False
    iso = _ISO.search(text)
    if iso and (iso.start() == 0 or not re.search(r"[A-Za-z]{3},?\s*$", text[:iso.start()])):
        try:
            frac = (iso.group("frac") or "0")[:6].ljust(6, "0")
            value = datetime(int(iso.group("y")), int(iso.group("mo")), int(iso.group("d")),
                             int(iso.group("h") or 0), int(iso.group("mi") or 0),
                             int(iso.group("s") or 0), int(frac))
        except ValueError:
            value = None
        if value is not None:
            offset = _zone_offset(iso.group("zone"))
            if offset is None:
                return value.replace(tzinfo=UTC), False
            return (value.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(UTC),
                    True)
    parsed = _rfc5322(text)
    if parsed is not None:
        return parsed
    day = _DAY_ONLY.search(text)
    if day and day.group("mon").lower()[:3] in _MONTHS:
        try:
            return datetime(int(day.group("y")), _MONTHS[day.group("mon").lower()[:3]],
                            int(day.group("d")), tzinfo=UTC), False
        except ValueError:
            return None, False
    ctime = _CTIME.search(text)
    if ctime and ctime.group("mon").lower() in _MONTHS:
        try:
            value = datetime(int(ctime.group("y")), _MONTHS[ctime.group("mon").lower()],
                             int(ctime.group("d")), int(ctime.group("h")), int(ctime.group("mi")),
                             int(ctime.group("s")))
        except ValueError:
            return None, False
        offset = _zone_offset(ctime.group("zone") or ctime.group("zone1"))
        if offset is None:
            return value.replace(tzinfo=UTC), False
        return value.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(UTC), True
    return None, False


def _rfc5322(text: str) -> tuple[datetime, bool] | None:
    fields = parsedate_tz(text)
    if fields is None:
        return None
    try:
        value = datetime(*fields[:6])
    except (ValueError, TypeError):
        return None
    if fields[9] is None or not re.search(r"[+-]\d{4}|\b[A-Z]{1,4}\s*$", text):
        named = [z for z in re.findall(r"\b([A-Z]{2,4})\b", text) if z in _ZONES]
        offset = _zone_offset(named[0]) if named else None
        if offset is None:
            return value.replace(tzinfo=UTC), False
        return value.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(UTC), True
    return value.replace(tzinfo=timezone(timedelta(seconds=fields[9]))).astimezone(UTC), True


# -- addresses ------------------------------------------------------------------------------

_IPV4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
IPV4_RE = re.compile(rf"(?<![\d.]){_IPV4}(?![\d]|\.\d)")
IPV6_RE = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
                     + _IPV4 + r")?(?![0-9A-Fa-f]|:[0-9A-Fa-f]|\.\d)")


def clean_ip(value: str | None) -> str | None:
    """A canonical IP from a field: strips ``[...]``, ``IPv6:``, ports, IPv4-mapped prefixes."""
    if not value:
        return None
    text = value.strip().strip("[]<>\"' ")
    text = re.sub(r"^ipv6:", "", text, flags=re.I)
    text = text.replace("[.]", ".").replace("(.)", ".")
    for candidate in (text, text.split()[0] if text.split() else ""):
        try:
            ip = ipaddress.ip_address(candidate.strip("[]"))
        except ValueError:
            m = re.fullmatch(rf"({_IPV4}):\d+", candidate)
            if not m:
                continue
            ip = ipaddress.ip_address(m.group(1))
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip)
    return None


def find_ips(text: str, limit: int = 1000) -> list[str]:
    """IPv4 and IPv6 addresses in *text* (defanged ones too), canonical, in order, unique."""
    text = re.sub(r"(?i)\bipv6:(?=[0-9a-f:])", "", refang(text))
    found: list[tuple[int, str]] = []
    for pattern in (IPV4_RE, IPV6_RE):
        for n, m in enumerate(pattern.finditer(text)):
            if n >= limit:
                break
            text_ip = m.group(0)
            ip = clean_ip(text_ip)
            if ip is None and text_ip.endswith(":") and not text_ip.endswith("::"):
                ip = clean_ip(text_ip[:-1])  # "... 2001:db8::3: done"
            if ip:
                found.append((m.start(), ip))
    return unique(ip for _, ip in sorted(found))[:limit]


def is_public_ip(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).is_global
    except ValueError:
        return False


# -- URLs and domains -----------------------------------------------------------------------

_DEFANG = [
    (re.compile(r"\bh(?:xx|XX|\*\*)p(s?)(?=\[?:)", re.I), r"http\1"),
    (re.compile(r"\[:\]//|\[://\]"), "://"),
    (re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)", re.I), "."),
    (re.compile(r"\[/\]"), "/"),
]
URL_RE = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`)\]}]{1,2000}", re.I)


def refang(text: str) -> str:
    """``hxxp://example[.]com`` -> ``http://example.com``, and the other usual defangings."""
    for pattern, repl in _DEFANG:
        text = pattern.sub(repl, text)
    return text


def find_urls(text: str, limit: int = 1000) -> list[str]:
    found = []
    for m in URL_RE.finditer(refang(text)):
        found.append(m.group(0).rstrip(".,;:!?'\""))
        if len(found) >= limit:
            break
    return unique(found)


def host_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def domains_of(urls: list[str]) -> list[str]:
    """The host names (not IPs) of *urls*."""
    hosts = (host_of(u) for u in urls)
    return unique(h for h in hosts if h and clean_ip(h) is None)


def unique(items: object) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:  # type: ignore[attr-defined]
        if item:
            seen.setdefault(str(item), None)
    return list(seen)


def excerpt(text: str, limit: int = 4096) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    m = re.match(r"\s*(\d{1,10})", str(value))
    return int(m.group(1)) if m else None


# -- Received -------------------------------------------------------------------------------

_FROM_WORD = re.compile(r"\s*+from(?=\s)", re.I)
# A ``by`` with blanks on both sides, then the by-host: up to a blank or ";" (text parser), or
# also "(" and ")" (ARF). Possessive: a by-host never starts with a blank.
BY_HOST = r"[^\s;]+"
BY_HOST_NO_PARENS = r"[^\s;()]+"
_BY_AFTER_BLANK = {host: re.compile(rf"(?<=\s)by\s++({host})", re.I)
                   for host in (BY_HOST, BY_HOST_NO_PARENS)}


def received_from_by(value: str, by_token: str = BY_HOST) -> tuple[str, str] | None:
    """(from clause, by host) of a Received value: what
    ``^\\s*from\\s+(?P<from>.*?)\\s+by\\s+(?P<by>BY_TOKEN)`` (re.I | re.S) matches, for
    BY_TOKEN ``BY_HOST`` or ``BY_HOST_NO_PARENS``, found in linear time. That pattern
    backtracks cubically on a long run of whitespace (its quantifiers around the lazy clause
    all take spaces: 2,000 spaces kept the process on one header for about 14 s, holding the
    GIL).

    The clause starts after the blanks that follow ``from`` and ends at the blanks before the
    first ``by`` that has blanks on both sides and a by-token after them; an empty clause only
    when there is no such ``by`` and ``from`` is followed by two or more blanks and that ``by``
    (``from  by x``), as the backtracking pattern had it.
    """
    head = _FROM_WORD.match(value)
    if head is None:
        return None
    gap = head.end()
    start = gap
    while start < len(value) and value[start].isspace():
        start += 1
    by_after_blank = _BY_AFTER_BLANK[by_token]
    found = by_after_blank.search(value, start + 1)
    if found is not None:
        end = found.start()
        while value[end - 1].isspace():  # stops after value[start], not a blank
            end -= 1
        return value[start:end], found.group(1)
    if start - gap >= 2:  # "from  by x": the first blank is from's, the second by's
        found = by_after_blank.match(value, start)
        if found is not None:
            return "", found.group(1)
    return None


def iso_z(value: datetime | None) -> str | None:
    """UTC ISO 8601 ending in ``Z``, or None."""
    if value is None:
        return None
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"
