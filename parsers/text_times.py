"""Times written in free text, read the way a person would: ISO 8601, RFC 5322, "March 2, 2026
10:00 AM", ctime, syslog, "23.11.2026 21:31:52", "22/11/2026 01:22:51 PM", with their zone (an
offset, a zone name, or the place a text names its times by, "heure de Paris"); the zone a text
declares for the times it lists (:func:`declared_zone`) for those written without one.

The free-text parser (``parsers/formats/text.py``) reads its times with :func:`times_in`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..core.fields import parse_time

# declared_zone reads the head of a text only (as much as the free-text parser's keyword guess)
MAX_DECLARING_CHARS = 64 * 1024

_MON = r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_DOW = r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+)?"
_HMS = r"(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?"
_AMPM = r"(?:\s*(?P<ampm>[AaPp])\.?\s?[Mm]\.?(?![a-z]))?"
_ZONE = (r"(?:\s*(?:Uhr\s*)?\(?(?P<zone>(?:UTC|GMT) ?[+-]\d{1,2}(?::?\d{2})?(?!\d)|"
         r"[+-]\d{2}:?\d{2}|Z(?![a-z])|(?:UTC|GMT|UT|CEST|CET|MESZ"
         r"|MEZ|MEST|MET|EEST|EET|WET|BST|EST|EDT|CST|CDT|MST|MDT|PST|PDT|JST|IST|AEST|BRT|ART)\b)\)?"
         r"(?:\s*\([A-Za-z ]{1,20}\))?)?")
_TIMES = [
    re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?:T|\s+)" + _HMS + _ZONE),
    re.compile(r"\b" + _DOW + r"(?P<d>\d{1,2})\s+" + _MON + r"\s+(?P<y>\d{4}),?\s+(?:at\s+)?"
               + _HMS + _AMPM + _ZONE),
    re.compile(r"\b" + _DOW + _MON + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4}),?\s+"
               r"(?:at\s+)?" + _HMS + _AMPM + _ZONE),
    re.compile(r"\b" + _DOW + _MON + r"\s+(?P<d>\d{1,2})\s+" + _HMS + r"\s+(?:(?P<zone>[A-Z]{3,4})"
               r"\s+)?(?P<y>\d{4})\b"),  # ctime and date(1)
    re.compile(r"(?m)^[ \t]*" + _MON + r"\s+(?P<d>\d{1,2})\s+" + _HMS  # syslog: no year
               + r"(?!\s*\d{4})\b"),
    # "23.11.2026 21:31:52" (German, Dutch ...), "22/11/2026 01:22:51 PM", "11/22/2026 ..."
    re.compile(r"\b(?P<d>\d{1,2})\.(?P<mo>\d{1,2})\.(?P<y>\d{4}|\d{2}),?\s+(?:um\s+|à\s+|a las\s+)?"
               + _HMS + _AMPM + _ZONE),
    re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}),?\s+(?:at\s+|um\s+|à\s+|a las\s+)?"
               + _HMS + _AMPM
               + _ZONE),
]
_LOCAL_NAMES = {"MEZ": "CET", "MESZ": "CEST"}
_UTC_OFFSET = re.compile(r"(?:UTC|GMT) ?([+-])(\d{1,2})(?::?(\d{2}))?")
# A zone the text declares for the times it lists ("Server time zone is CET", "times below are
# US Eastern (EST, UTC-5)", "Datum/Zeit (MEZ)"): taken for its times written without one.
_DECLARED = re.compile(r"\b(?:time[ \t]?zones?|timezone|times?|clock|zeitzone|zeiten|uhrzeit|zeit|"
                       r"heures?|horas?|hor[áa]rio|ora|orario|fuseau|zona|"
                       # "Logs (CET):", "log excerpt, UTC", "Auszug aus dem Log (MEZ)"
                       r"logs?|log excerpts?|log entries|logfiles?|protokoll|journaux|registros)"
                       r"\b[^\n]{0,80}", re.I)
_ZONE_WORD = re.compile(r"\b(?:UTC|GMT)[ \t]?(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?\b"
                        r"|\b(?P<name>UTC|GMT|CEST|CET|MESZ|MEZ|EEST|EET|WET|BST|EST|EDT|CST|CDT|"
                        r"MST|MDT|PST|PDT|JST|AEST|BRT|ART)\b")


# Places people name a zone by ("hora de Madrid", "heure de Paris", "horário de Brasília",
# "Berlin time", "Eastern time"): their IANA zone, so that the offset is the one in force on the
# date of each time (daylight saving included).
_PLACES = {
    "madrid": "Europe/Madrid", "paris": "Europe/Paris", "berlin": "Europe/Berlin",
    "amsterdam": "Europe/Amsterdam", "brussels": "Europe/Brussels", "bruxelles": "Europe/Brussels",
    "vienna": "Europe/Vienna", "wien": "Europe/Vienna", "rome": "Europe/Rome",
    "roma": "Europe/Rome", "zurich": "Europe/Zurich", "zürich": "Europe/Zurich",
    "stockholm": "Europe/Stockholm", "oslo": "Europe/Oslo", "copenhagen": "Europe/Copenhagen",
    "warsaw": "Europe/Warsaw", "warszawa": "Europe/Warsaw", "prague": "Europe/Prague",
    "praha": "Europe/Prague", "lisbon": "Europe/Lisbon", "lisboa": "Europe/Lisbon",
    "london": "Europe/London", "dublin": "Europe/Dublin", "helsinki": "Europe/Helsinki",
    "vilnius": "Europe/Vilnius", "riga": "Europe/Riga", "tallinn": "Europe/Tallinn",
    "athens": "Europe/Athens", "kyiv": "Europe/Kyiv", "kiev": "Europe/Kyiv",
    "moscow": "Europe/Moscow", "istanbul": "Europe/Istanbul", "bucharest": "Europe/Bucharest",
    "brasília": "America/Sao_Paulo", "brasilia": "America/Sao_Paulo",
    "são paulo": "America/Sao_Paulo", "sao paulo": "America/Sao_Paulo",
    "buenos aires": "America/Argentina/Buenos_Aires", "mexico": "America/Mexico_City",
    "new york": "America/New_York", "eastern": "America/New_York",
    "central": "America/Chicago", "chicago": "America/Chicago", "mountain": "America/Denver",
    "pacific": "America/Los_Angeles", "los angeles": "America/Los_Angeles",
    "toronto": "America/Toronto", "tokyo": "Asia/Tokyo", "singapore": "Asia/Singapore",
    "india": "Asia/Kolkata", "sydney": "Australia/Sydney",
}
_PLACE = "|".join(sorted((re.escape(p) for p in _PLACES), key=len, reverse=True))
# "hora de Madrid", "heure de Paris", "horário de Brasília", "time in Berlin", "Zeit in Wien"
_PLACE_AFTER = re.compile(r"\b(?:hora|heure|hor[áa]rio|time|zeit|ora)\s(?:de\s|in\s|of\s|di\s)?"
                          r"(?:la\s|el\s)?(?P<place>" + _PLACE + r")\b", re.I)
# "Berlin time", "Eastern time", "Pacific Time (US)"
_PLACE_BEFORE = re.compile(r"\b(?P<place>" + _PLACE + r")\s(?:standard\s|daylight\s|local\s)?"
                           r"time\b", re.I)


def declared_zone(text: str) -> str | None:
    """The zone a text declares for its times, as "+HHMM", a name parse_time knows, or the
    IANA name of a place it names ("Europe/Madrid")."""
    head = text[:MAX_DECLARING_CHARS]
    for n, m in enumerate(_DECLARED.finditer(head)):
        if n >= 50:
            break
        zone = _ZONE_WORD.search(m.group(0))
        if zone is None:
            continue
        if zone.group("name"):
            return _LOCAL_NAMES.get(zone.group("name"), zone.group("name"))
        return f"{zone.group('sign')}{int(zone.group('h')):02d}{zone.group('m') or '00'}"
    place = _PLACE_AFTER.search(head) or _PLACE_BEFORE.search(head)
    if place is not None:
        return _PLACES[" ".join(place.group("place").lower().split())]
    return None


def _in_place(iso: str, zone: str) -> datetime | None:
    """*iso* (a local date and time) in the IANA *zone*, as UTC."""
    try:
        local = datetime.fromisoformat(iso)
        return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except (ValueError, ZoneInfoNotFoundError):
        return None


_MONTHS = {m: n for n, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


@dataclass
class Found:
    at: datetime
    raw: str
    zone_stated: bool
    year_inferred: bool = False


def times_in(text: str, date_header: datetime | None, limit: int = 20,
             zone: str | None = None) -> list[Found]:
    """Times in *text*, in order of appearance; *zone* for those written without one."""
    hits: list[tuple[int, re.Match[str]]] = []
    for pattern in _TIMES:
        for n, m in enumerate(pattern.finditer(text)):
            if n >= limit:
                break
            hits.append((m.start(), m))
    hits.sort(key=lambda h: h[0])
    found: list[Found] = []
    taken: list[tuple[int, int]] = []
    for _start, m in hits:
        if any(a <= m.start() < b for a, b in taken):
            continue
        value = _time_of(m, date_header, zone)
        if value is not None:
            taken.append((m.start(), m.end()))
            found.append(value)
    return found


def _time_of(m: re.Match[str], date_header: datetime | None,
             default_zone: str | None = None) -> Found | None:
    parts = m.groupdict()
    if parts.get("a"):  # d/m/y or m/d/y: a day above 12 decides, else AM/PM says American
        a, b = int(parts["a"]), int(parts["b"])
        us = b > 12 or (a <= 12 and bool(parts.get("ampm")))
        parts["mo"], parts["d"] = (str(a), str(b)) if us else (str(b), str(a))
    month = int(parts["mo"]) if parts.get("mo") else _MONTHS[parts["mon"][:3].lower()]
    hour = int(parts["h"])
    if parts.get("ampm"):
        if hour > 12:
            return None
        hour = hour % 12 + (12 if parts["ampm"].lower() == "p" else 0)
    year_inferred = parts.get("y") is None
    if year_inferred:
        if date_header is None:
            return None
        year = date_header.year
    else:
        year = int(parts["y"])
        if year < 100:  # "22.11.26"
            year += 2000
    zone = _LOCAL_NAMES.get(parts.get("zone") or "", parts.get("zone") or "")
    offset = _UTC_OFFSET.fullmatch(zone)
    if offset:  # "UTC-6", "GMT+05:30"
        zone = f"{offset.group(1)}{int(offset.group(2)):02d}{offset.group(3) or '00'}"
    if not zone and default_zone:
        zone = default_zone
    second = (parts["s"] or "00") + (f".{parts['frac']}" if parts.get("frac") else "")
    iso = f"{year:04d}-{month:02d}-{int(parts['d']):02d} {hour:02d}:{parts['mi']}:{second}"
    if "/" in zone:  # a place's zone: its offset on that date
        at, stated = _in_place(iso, zone), True
    else:
        at, stated = parse_time(f"{iso} {zone}".strip())
    if at is None:
        return None
    if year_inferred and date_header is not None and at > date_header + timedelta(days=1):
        at = at.replace(year=at.year - 1)
    return Found(at, m.group(0).strip(), stated, year_inferred)
