"""Every source vocabulary the parsers emit, mapped onto the policy's types: tables, not code.

A parser's ``type_hint`` is ``<vocabulary>:<key>`` in the source's own words (``arf:abuse``,
``xarf:LoginAttack``, ``xarf4:connection/port_scan``, ``shadowserver:scan_ssh``). Each vocabulary
has a table of exact keys and, where a vocabulary names things by pattern (Shadowserver's
``scan_*``/``event4_*`` families, ACNS's open-ended source types), an ordered list of
``(pattern, type, confidence)`` rules tried after the exact keys; the first that matches wins.

Keys are compared without case, hyphens, underscores or blanks, so ``login-attack`` (X-ARF 0.x),
``LoginAttack`` (abusix) and ``login_attack`` are one key. Two keys of one table that compare
equal are an error at import time.

The confidence says how much the key alone tells: 0.95 for an explicit structured type, less
for vague ones (``arf:other``, X-ARF ``info``). A table hit decides a report's type only when its
vocabulary is decisive and its confidence reaches the caller's threshold; otherwise it is one
piece of evidence among the free-text rules and the model (see ``classifier.categorize``). The
free-text parser's ``text:*`` guesses are never decisive: they come from a few keywords.

``not-spam`` (RFC 6430) is not abuse at all: it maps to ``NOT_ABUSE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from ..core.policy import TYPES, Evidence

NOT_ABUSE = "not-abuse"  # a result, not a type: the report complains about nothing

# -- the tables: vocabulary -> key (as the source writes it) -> (type, confidence) -----------

_TABLES: dict[str, dict[str, tuple[str, float]]] = {
    # ARF Feedback-Type (RFC 5965, 6430, 6591) and values seen in the wild (FORMATS.md s.1).
    "arf": {
        "abuse": ("spam", 0.95),
        "spam": ("spam", 0.9),  # not registered, but says what it means
        "virus": ("virus-spam", 0.9),
        "fraud": ("fraud", 0.55),  # "some kind of fraud or phishing activity": the text decides
        "other": ("spam", 0.5),
        "missing": ("spam", 0.55),  # no Feedback-Type: almost always a feedback-loop complaint
        "opt-out": ("spam", 0.5),  # an unsubscribe request sent as a complaint
        "auth-failure": ("spam", 0.4),  # a failed DKIM/SPF check is not a complaint by itself
        "not-spam": (NOT_ABUSE, 0.95),
    },
    # X-ARF 0.1/0.2 Report-Type (and Category when there is no Report-Type), and the abusix
    # v1-v3 JSON ReportType (CamelCase, the same key as its hyphenated X-ARF twin).
    "xarf": {
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
    },
    # XARF v4 category/type (xarf-spec; FORMATS.md s.4), and a bare category when the report
    # named no type.
    "xarf4": {
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
    },
    # ACNS source types as the ACNS parser names them; any other ACNS notice: see _PATTERNS.
    "acns": {
        "p2p": ("copyright", 0.95),
        "http": ("copyright", 0.95),
        "usenet": ("copyright", 0.95),
    },
    "dmca": {
        "notice": ("copyright", 0.95),
    },
    "spamcop": {
        "spam": ("spam", 0.95),
        "spamvertised": ("spamvertising", 0.95),
        "summary": ("spam", 0.85),
        "alert": ("spam", 0.6),
    },
    # Shadowserver legacy report names (before the scan_/event4_ families); see _PATTERNS.
    "shadowserver": {
        "botnet_drone": ("malware", 0.9),
        "sinkhole_http_drone": ("malware", 0.9),
        "microsoft_sinkhole": ("malware", 0.9),
        "cc_ip": ("malware", 0.9),
        "botnet_cc": ("malware", 0.9),
        "dns_openresolver": ("open-service", 0.9),
        "ntp_monitor": ("open-service", 0.9),
        "ntp_version": ("open-service", 0.9),
        "open_proxy": ("open-service", 0.9),
        "ssl_scan": ("open-service", 0.85),
        "drone_brute_force": ("hacking", 0.9),
        "spam_url": ("spamvertising", 0.85),
        "phish_url": ("phishing", 0.85),
        "compromised_website": ("malware", 0.75),
        "scan_synfulknock": ("malware", 0.85),  # an implanted router, not an open service
    },
    # CERT, CSIRT, scanner and blocklist notices (parsers/cert.py): the notice or its row
    # states the type, and a machine format decides its own type with full confidence.
    "cert": {
        "bot": ("malware", 1.0),
        "malware": ("malware", 1.0),
        "infected": ("malware", 1.0),
        "compromised": ("malware", 1.0),
        "open-service": ("open-service", 1.0),
        "vulnerable": ("open-service", 1.0),
        "ddos-amplifier": ("open-service", 1.0),
        "ddos": ("ddos", 1.0),
        "brute-force": ("hacking", 1.0),
        "hacking": ("hacking", 1.0),
        "exploit": ("hacking", 1.0),
        "scan": ("port-scan", 1.0),
        "phishing": ("phishing", 1.0),
        "spam": ("spam", 1.0),
    },
    # The free-text parser's keyword guess (parsers/text.py): a hint, never decisive.
    "text": {
        "phishing": ("phishing", 0.45),
        "copyright": ("copyright", 0.45),
        "ddos": ("ddos", 0.45),
        "brute_force": ("hacking", 0.45),
        "botnet": ("malware", 0.45),
        "malware": ("malware", 0.45),
        "scan": ("port-scan", 0.4),
        "spam": ("spam", 0.4),
    },
}

# Tried in order after the exact keys, on the key in lower case with "-" and blanks made "_".
_PATTERNS: dict[str, list[tuple[str, str, float]]] = {
    "shadowserver": [
        (r"brute_?force", "hacking", 0.9),  # event4_honeypot_brute_force
        (r"ddos|amplification", "ddos", 0.8),  # event4_honeypot_ddos_amp, event4_ddos_participant
        (r"darknet", "port-scan", 0.8),  # event4_honeypot_darknet
        (r"honeypot_http_scan", "hacking", 0.7),  # web exploitation attempts
        (r"honeypot_\w*scan", "port-scan", 0.7),  # event4_honeypot_ics_scan, ...
        (r"phish", "phishing", 0.85),
        (r"spam_url", "spamvertising", 0.85),
        (r"spam", "spam", 0.7),
        (r"sinkhole|botnet|drone|(^|_)cc(_|$)|sandbox|malware|infection", "malware", 0.9),
        (r"compromised", "malware", 0.75),
        (r"^scan6?_", "open-service", 0.9),  # every scanner report of an exposed service
        (r"openresolver|^open_|_open$", "open-service", 0.9),
        (r"vulnerable|poodle|freak", "open-service", 0.85),
        (r"^(blocklist|blacklist)", "spam", 0.5),  # the listing's reason column varies
        (r"ip_spoofer", "open-service", 0.5),
        (r"^population6?_|^device_id", "open-service", 0.4),  # inventories, not complaints
    ],
    "acns": [(r".", "copyright", 0.9)],  # any ACNS notice is a copyright notice
    "dmca": [(r".", "copyright", 0.9)],
}

# Vocabularies whose hit is only evidence, never a decision on its own.
HINT_ONLY_VOCABULARIES = frozenset({"text"})


# -- lookup ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableHit:
    """What a table says about one type hint."""

    type: str  # one of classifier.types.TYPES, or NOT_ABUSE
    confidence: float
    evidence: Evidence  # "table:<vocabulary>:<key>"
    vocabulary: str
    decisive: bool  # may decide the type on its own (not a text:* keyword guess)


_SEPARATORS = re.compile(r"[\s_-]+")
MAX_HINT_CHARS = 200


def compact(key: str) -> str:
    """The comparison form of a key: lower case without hyphens, underscores or blanks."""
    return _SEPARATORS.sub("", key.strip().lower())


def _snake(key: str) -> str:
    return _SEPARATORS.sub("_", key.strip().lower()).strip("_")


def _index(tables: dict[str, dict[str, tuple[str, float]]]
           ) -> dict[str, dict[str, tuple[str, str, float]]]:
    """vocabulary -> compact key -> (key as written, type, confidence); refuses clashes."""
    index: dict[str, dict[str, tuple[str, str, float]]] = {}
    for vocabulary, table in tables.items():
        entries: dict[str, tuple[str, str, float]] = {}
        for key, (type_, confidence) in table.items():
            _check(f"{vocabulary}:{key}", type_, confidence)
            if compact(key) in entries:
                raise ValueError(f"taxonomy: {vocabulary}:{key} clashes with "
                                 f"{vocabulary}:{entries[compact(key)][0]}")
            entries[compact(key)] = (key, type_, confidence)
        index[vocabulary] = entries
    return index


def _check(where: str, type_: str, confidence: float) -> None:
    if type_ not in TYPES and type_ != NOT_ABUSE:
        raise ValueError(f"taxonomy: {where} maps to {type_!r}, not one of the policy's types")
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"taxonomy: {where} has confidence {confidence} outside (0, 1]")


def _compile(patterns: dict[str, list[tuple[str, str, float]]]
             ) -> dict[str, list[tuple[re.Pattern[str], str, float]]]:
    for vocabulary, rules in patterns.items():
        for pattern, type_, confidence in rules:
            _check(f"{vocabulary}:/{pattern}/", type_, confidence)
    return {v: [(re.compile(p), t, c) for p, t, c in rules] for v, rules in patterns.items()}


_INDEX = _index(_TABLES)
_COMPILED = _compile(_PATTERNS)

# Read-only views for tests and documentation.
TABLES = MappingProxyType({v: MappingProxyType(t) for v, t in _TABLES.items()})
PATTERNS = MappingProxyType({v: tuple(p) for v, p in _PATTERNS.items()})


def split_hint(type_hint: str) -> tuple[str, str]:
    """``"xarf4:connection/port_scan"`` -> ``("xarf4", "connection/port_scan")``."""
    vocabulary, _, key = type_hint[:MAX_HINT_CHARS].partition(":")
    return vocabulary.strip().lower(), key.strip()


def lookup(type_hint: str) -> TableHit | None:
    """The table's answer for a parser's type hint; None for a hint no table knows."""
    vocabulary, key = split_hint(type_hint)
    if not key:
        return None
    decisive = vocabulary not in HINT_ONLY_VOCABULARIES
    found = _INDEX.get(vocabulary, {}).get(compact(key))
    if found is not None:
        written, type_, confidence = found
        evidence = Evidence(f"table:{vocabulary}:{written}", confidence, f"{type_hint} -> {type_}")
        return TableHit(type_, confidence, evidence, vocabulary, decisive)
    snake = _snake(key)
    for pattern, type_, confidence in _COMPILED.get(vocabulary, ()):
        if pattern.search(snake):
            evidence = Evidence(f"table:{vocabulary}:{snake}", confidence,
                                f"{type_hint} matches /{pattern.pattern}/ -> {type_}")
            return TableHit(type_, confidence, evidence, vocabulary, decisive)
    return None
