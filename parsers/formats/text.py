"""Free text: the fallback for every message no other parser understood.

It always matches and always gives one report, read the way a person would: the offender is the
most prominent *public* address (the first one in the subject; else one the text labels as the
source, "Offending IP: ...", "attack from ..."; else the first external hop of a forwarded
message's Received lines; else the first one in the text); the others go to
``extra["other_ips"]``. The first external hop is the first Received line, from the top, whose
sending address is public and whose sender name (the receiver's rDNS lookup, else the HELO) is
in neither the reporter's domain nor the receiving server's. Private and reserved addresses are
never the offender, only a warning (``extra["non_public_ips"]``), and addresses inside quoted
Received lines count only as that hop, so the reporter's own relays are never taken for the
offender. CIDR ranges are not addresses (``extra["networks"]``).

Read: IPv4, IPv6 (also ``IPv6:``-prefixed and at the end of a sentence), IPv4-mapped addresses,
defanged URLs and domains (``hxxp``, ``[.]``), ports (the offender's when written next to it,
``1.2.3.4:8080``, ``1.2.3.4 port 4242``, or labelled ``src_port=``/``source port``; a bare
"port 22" is usually the service attacked and only goes to ``extra["ports"]``), times with their
zone (ISO 8601, RFC 5322, "March 2, 2026 10:00 AM", ctime, syslog: ``parsers/text_times.py``),
forwarded blocks ("-----Original Message-----", "---------- Forwarded message ---------",
"Begin forwarded message:", ...: ``parsers/forwarded.py``) and attached messages (message/rfc822,
text/rfc822-headers).

The type hint is a guess from keywords, ``text:<kind>`` with kind one of phishing, copyright,
ddos, brute_force, botnet, malware, scan, spam, or unknown; a forwarded email with no keyword
is taken as a spam complaint. Everything deduced is listed in ``inferred``.
"""

from __future__ import annotations

import bisect
import html
import re
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

from ...core.fields import (
    IPV4_RE,
    IPV6_RE,
    clean_ip,
    domains_of,
    excerpt,
    find_urls,
    host_of,
    is_public_ip,
    parse_time,
    refang,
    unique,
)
from ...core.headers import parse_address
from ...core.mail import Mail, drop_scripts
from ...core.received import (  # noqa: F401 - the Received readers' linear-time helpers
    Hop,
    _bracketed,
    _first_parenthesized,
    base_domain,
    external_hop,
    is_documentation,
    read_chain,
)
from ..base import (
    NOT_OFFENDERS,
    Candidate,
    Disposition,
    Format,
    ParsedReport,
    Parser,
    ParseResult,
    Role,
    Stage,
)
from ..forwarded import MAX_FORWARDED, MAX_HEADER_BLOCKS, Body, split_body
from ..text_times import Found, declared_zone, times_in

NO_OFFENDER = "no offender found in the text"
ZONELESS = "time without zone, taken as UTC"

MAX_TEXT_CHARS = 1024 * 1024
MAX_KEYWORD_CHARS = 64 * 1024
MAX_MENTIONS = 1000
MAX_LISTED = 100
MAX_HOPS = 30

# -- text clean-up --------------------------------------------------------------------------

_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")


def _clean(text: str) -> str:
    """Compatibility forms folded (full-width digits), soft hyphens and zero-width marks gone,
    a defanged colon ("2001[:]db8[:]:1", "1.2.3.4[:]8080") a colon again."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("[:]", ":") if "[:]" in text else text


def _ip_text(text: str) -> str:
    """The text for address matching, same length: "IPv6:" and a sentence's final "." or ":"
    no longer glue themselves to an address."""
    text = re.sub(r"(?i)ipv6:", "IPv6 ", text)
    return re.sub(r"[.:](?=\s|$)", " ", text)


# -- addresses ------------------------------------------------------------------------------


@dataclass
class Mention:
    start: int
    end: int
    ip: str
    labelled: bool = False
    port: int | None = None


_PORT_AFTER = re.compile(  # "1.2.3.4:8080", "[2001:db8::1]:443", "1.2.3.4 port 4242"
    r"\]?:(?P<a>\d{1,5})(?![\d.])"
    r"|\s*+(?:,\s*+)?(?:\(\s*+)?(?:(?:source|src)\s*+)?port\s*+(?:[:=#]\s*+)?(?P<b>\d{1,5})\b",
    re.I)
_CIDR_AFTER = re.compile(r"/\d{1,3}\b")
_LABEL = re.compile(
    r"\b(?:source|src|offending|offender|attacker|attacking|attacks?|abusive|abuse|infected|"
    r"compromised|malicious|suspicious|spamming|spammer|sender|from|by|host|client|bot|scanner|"
    r"von|vom|ip|ipv4|ipv6)\b(?:[\s/_-]*(?:ip|ipv4|ipv6|host|address|addr))*"
    r"\s*(?:[:=#]|\bis\b|\bwas\b)?\s*[(\[\"']?\s*$", re.I)
_NEGATIVE = re.compile(r"\b(?:dest\w*|dst|target\w*|victim|our|my|to|towards|against)\b"
                       r"[^.\n]{0,30}$", re.I)
_GENERIC_PORT = re.compile(r"\bport[\s:=#]*(\d{1,5})\b", re.I)
_SOURCE_PORT = re.compile(r"\b(?:src[_ -]?port|source[_ -]?port|sport)\b\s*+(?:[:=#]\s*+)?"
                          r"(\d{1,5})\b", re.I)


def _mentions(text: str, networks: list[str]) -> list[Mention]:
    """Every address in *text*, in order, with its label and the port written next to it."""
    scan = _ip_text(text)
    found: list[Mention] = []
    v6_spans: list[tuple[int, int]] = []  # in order: finditer gives them so
    for pattern in (IPV6_RE, IPV4_RE):
        for n, m in enumerate(pattern.finditer(scan)):
            if n >= MAX_MENTIONS:
                break
            ip = clean_ip(m.group(0))
            if ip is None or _inside(v6_spans, m.start()):
                continue  # not an address, or the IPv4 part of an IPv4-mapped one
            if pattern is IPV6_RE:
                v6_spans.append((m.start(), m.end()))
            cidr = _CIDR_AFTER.match(scan, m.end())
            if cidr:
                networks.append(ip + cidr.group(0))
                continue
            found.append(Mention(m.start(), m.end(), ip))
    found.sort(key=lambda f: f.start)
    for mention in found:
        line_start = scan.rfind("\n", 0, mention.start) + 1
        before = scan[max(line_start, mention.start - 48): mention.start]
        mention.labelled = bool(_LABEL.search(before)) and not _NEGATIVE.search(before)
        port = _PORT_AFTER.match(scan, mention.end)
        if port:
            value = int(port.group("a") or port.group("b"))
            mention.port = value if 0 < value <= 65535 else None
    return found


def _inside(spans: list[tuple[int, int]], pos: int) -> bool:
    i = bisect.bisect_right(spans, (pos, sys.maxsize)) - 1
    return i >= 0 and spans[i][0] <= pos < spans[i][1]


def _base(host: str | None) -> str | None:
    return base_domain(host)


# -- what kind of abuse ---------------------------------------------------------------------

_KINDS: list[tuple[str, re.Pattern[str]]] = [  # in order of precedence on a tie
    ("phishing", re.compile(r"phish\w*|credential harvest\w*|fake login|spoofed (?:site|page|"
                            r"website)", re.I)),
    ("copyright", re.compile(r"copyright\w*|\bdmca\b|infring\w*|pira(?:cy|ted)|"
                             r"intellectual property|\b17 u\.?s\.?c", re.I)),
    ("ddos", re.compile(r"\bddos\b|\bdos attack|denial[- ]of[- ]service|amplification attack|"
                        r"\b(?:syn|udp|http) flood", re.I)),
    ("brute_force", re.compile(r"brute[- ]?forc\w*|failed password|authentication failure|"
                               r"login attempts?|failed logins?|dictionary attacks?|"
                               r"password guessing|invalid user|\bssh\b|wp-login|"
                               r"credential stuffing", re.I)),
    ("botnet", re.compile(r"botnet\w*|botware|\bbots?\b|\bc&c\b|command[- ]and[- ]control|"
                          r"\bc2\b|sinkhole\w*|\bdrones?\b|zombie", re.I)),
    ("malware", re.compile(r"malware|malicious (?:content|code|file|software|url|link)|"
                           r"\bvirus(?:es)?\b|trojan|ransomware|\binfected\b|webshell|backdoor|"
                           r"exploit kit", re.I)),
    ("scan", re.compile(r"port ?scan\w*|\bscann(?:ing|er|ers)\b|\bscans?\b|\bprob(?:ing|es)\b",
                        re.I)),
    ("spam", re.compile(r"\bspam\w*|unsolicited|\bu[bc]e\b|junk mail|bulk e?-?mail|"
                        r"(?:e-?mail|address) harvest\w*|\bharvest(?:ing|er)\b", re.I)),
]
_BOILERPLATE = re.compile(r"scanned (?:for viruses|by)|virus[- ]?(?:free|scanned|checked)|"
                          r"anti-?virus|spam (?:folder|filter)|not spam", re.I)


def _kind(subject: str, text: str) -> tuple[str | None, dict[str, int]]:
    for where in (subject, _BOILERPLATE.sub(" ", text[:MAX_KEYWORD_CHARS])):
        counts = {kind: len(pattern.findall(where)) for kind, pattern in _KINDS}
        counts = {k: v for k, v in counts.items() if v}
        if counts:
            best = max(counts.values())
            return next(k for k, _ in _KINDS if counts.get(k) == best), counts
    return None, {}



# -- candidates: every address with what its line says it is --------------------------------

MAX_CANDIDATES = 500
MAX_LINE = 2000  # a longer line is read around each address only
_WHOIS_RANGE = re.compile(  # a WHOIS block's lines: their addresses are ranges, not hosts
    r"^[ \t>]*(?:inetnum|inet6num|netrange|cidr|route6?|netblock|ip[- ]?range|network|"
    r"nethandle|parent|ref|netname|origin\w*|descr|remarks|mnt-[a-z-]{1,20}|orgname|"
    r"orgid|nettype|rdap|whois)[ \t]*+:|^[ \t>]*[%#].{0,60}(?:related to|abuse contact for)",
    re.I)
_WHOIS_DATE = re.compile(  # a WHOIS block's record dates: never the incident's time
    r"^[ \t>]*(?:created|last-modified|changed|regdate|updated|registration date|"
    r"last updated|modified)[ \t]*+:", re.I)
# "A - B" where B is an address too ("198.51.100.0 - 198.51.100.255"), not "1.2.3.4 - 2026-..."
_RANGE_DASH = re.compile(r"^\s{0,3}[-\u2013]\s{0,3}(?:\d{1,3}\.\d{1,3}\.|[0-9a-fA-F]{1,4}:)")
_RANGE_BEFORE = re.compile(r"(?:\d\.\d{1,3}|[0-9a-fA-F]:[0-9a-fA-F]{0,4})\s{0,3}[-\u2013]\s{0,3}$")
# Words before an address, on its line: the last one found says what the address is.
_OFFENDER_WORDS = re.compile(
    r"\b(?:source|src|offending|offender|attacker|attacking|attacks?|attacked\s+(?:us|from)|"
    r"abusive|infected|compromised|malicious|suspicious|spamming|spammer|sending|sender|"
    r"bot|scanner|scanning|originating|origin|culprit|harass\w*|hosted\s+(?:at|on)|hosting|"
    r"resolves\s+to|from|von|vom|depuis|desde|de\s+la\s+ip|origen|angreifer|quelle|"
    r"client|connecting|remote|rhost|peer)\b", re.I)
# "our" / "my" only with a machine after it ("our server", "my web site", "unser Mailserver"):
# "our client", "unserer Mandantin" are people, and the address after them is often the
# offender's.
_VICTIM_WORDS = re.compile(
    r"\b(?:dest\w*|dst|dpt|target\w*|victim\w*|honeypot\w*|sensor\w*|trap|to|towards|"
    r"against|ziel\w*|cible|destino|local|attacked\s+(?:host|server|ip)|"
    r"(?:our|my|unser\w*|mein\w*|notre|nos|nuestr\w*|mi)\s+(?:own\s+)?(?:web\s*|mail\s*)?"
    r"(?:servers?|hosts?|honeypots?|networks?|netz\w*|sites?|websites?|systems?|machines?|"
    r"ip|ips|address\w*|adresse\w*|firewall\w*|sensors?|range|platform|infrastructure|"
    r"servidor\w*|serveur\w*|rechner|server\w*|shop|forum|blog|instance|vps))\b", re.I)
_C2_WORDS = re.compile(r"(?:\bc2\b|\bc&c\b|\bcnc\b|command[- ]and[- ]control|sinkhole\w*|"
                       r"control\s+server|\bpanel\b|\bcontacted\b|\bconnects?\s+to\b|"
                       r"\bbeacon\w*)", re.I)
_ARROW = re.compile(r"(?:->|=>|\u2192|\s>\s)")


def _line_at(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


def _role_of(before: str) -> tuple[Role, float]:
    """What the words before an address (on its line) say it is."""
    last: tuple[int, Role] | None = None
    for pattern, role in ((_OFFENDER_WORDS, Role.OFFENDER), (_VICTIM_WORDS, Role.VICTIM),
                          (_C2_WORDS, Role.C2)):
        for m in pattern.finditer(before):
            if last is None or m.end() > last[0] or (m.end() == last[0] and role is Role.C2):
                last = (m.end(), role)
    if last is None:
        return Role.MENTIONED, 0.5
    near = len(before) - last[0] <= 24
    if last[1] is Role.OFFENDER:
        return (Role.OFFENDER, 0.8) if near else (Role.MENTIONED, 0.6)
    if last[1] is Role.C2:
        return (Role.C2, 0.3) if near else (Role.MENTIONED, 0.45)
    return (Role.VICTIM, 0.1) if near else (Role.MENTIONED, 0.4)


def _text_candidates(text: str, mentions: list[Mention], where: str, weight_bonus: float,
                     date_header: datetime | None, zone: str | None = None,
                     zoneless: set[int] | None = None) -> list[Candidate]:
    """A candidate for each address of *text*: its role from its line, the time of its line
    (the ids of those whose time had no zone go to *zoneless*)."""
    out: list[Candidate] = []
    line_times: dict[int, Found | None] = {}
    previous: Mention | None = None
    for mention in mentions:
        start, end = _line_at(text, mention.start)
        key = start
        if end - start > MAX_LINE:  # a huge line: the words around the address only
            key = -1 - mention.start
            line = text[max(start, mention.start - 300):min(end, mention.end + 300)]
        else:
            line = text[start:end]
        before = text[max(start, mention.start - 64):mention.start]
        after = text[mention.end:min(end, mention.end + 8)]
        if _WHOIS_RANGE.match(line) or _RANGE_DASH.match(after) or \
                _RANGE_BEFORE.search(before):
            role, weight = Role.RANGE, 0.0
        else:
            role, weight = _role_of(before)
            gap = text[previous.end:mention.start] if previous is not None and \
                previous.start >= start and mention.start - previous.end <= 24 else ""
            if gap and _ARROW.search(gap):
                role, weight = Role.VICTIM, 0.1  # "src -> dst"
        if line.lstrip().startswith(">"):
            weight *= 0.8  # a quoted reply: said before, perhaps by someone else
        if key not in line_times:
            found = times_in(line, date_header, limit=2, zone=zone) \
                if not _WHOIS_DATE.match(line) else []
            line_times[key] = found[0] if found else None
        timed = line_times[key]
        candidate = Candidate(
            value=mention.ip, role=role, weight=min(1.0, weight + weight_bonus),
            port=mention.port, occurred_at=timed.at if timed else None,
            occurred_raw=timed.raw[:200] if timed else None,
            context=f"{where}: {line.strip()[:160]}")
        if timed is not None and not timed.zone_stated and zoneless is not None:
            zoneless.add(id(candidate))
        out.append(candidate)
        previous = mention
    return out


def _prefer_stated_zones(candidates: list[Candidate], zoneless: set[int]) -> None:
    """An address with a time whose zone is known somewhere (a Received line, "... CET")
    loses the zone-less times of its other lines: "08:05:44 (heure de Paris)" is not UTC."""
    stated = {c.value for c in candidates if c.occurred_at is not None and id(c) not in zoneless}
    for c in candidates:
        if id(c) in zoneless and c.value in stated:
            c.occurred_at, c.occurred_raw = None, None


def _hop_candidates(blocks: list[Message], reporter_base: str | None) -> list[Candidate]:
    """The hops of quoted or attached Received chains: the provider's and the reporter's own
    are relays, the first outside them is the sender, the ones below it are mentioned."""
    out: list[Candidate] = []
    for block in blocks:
        first = True
        for hop, internal in read_chain(block, reporter_base).hops:
            if internal:
                role, weight = Role.RELAY, 0.0
            elif first:
                role, weight, first = Role.OFFENDER, 0.75, False
            else:
                role, weight = Role.MENTIONED, 0.3
            out.append(Candidate(value=hop.ip, role=role, weight=weight, port=hop.port,
                                 occurred_at=hop.time, occurred_raw=hop.time_raw,
                                 context=f"received: from {hop.rdns or hop.helo} by {hop.by}"))
        for value in (block.get_all("X-Originating-IP") or [])[:3]:
            ip = clean_ip(str(value))
            if ip:
                out.append(Candidate(value=ip, role=Role.MENTIONED, weight=0.6,
                                     context="X-Originating-IP"))
    return out


_BARE_HOST = re.compile(
    r"(?<![\w.@/-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,10}"
    r"(?:[a-z]{2,24}))(?![\w@-])(?!\.[a-z0-9])", re.I)
_COMMON_FILES = frozenset({"exe", "zip", "php", "html", "htm", "js", "txt", "pdf", "doc", "docx",
                           "xls", "xlsx", "png", "jpg", "gif", "eml", "csv", "xml", "json",
                           "log", "sh", "py", "asp", "aspx", "jsp", "cgi", "dll", "bin", "rar",
                           "gz", "tar", "msg", "ini", "conf", "cfg", "jpeg", "svg", "css",
                           "mp4", "mp3", "avi", "mkv", "iso", "apk", "jar", "vbs", "ps1"})


_GENERIC_TLDS = frozenset({
    "com", "net", "org", "info", "biz", "edu", "gov", "mil", "int", "io", "me", "tv", "cc",
    "xyz", "top", "site", "online", "shop", "store", "app", "dev", "cloud", "club", "live", "pro",
    "asia", "tech", "website", "space", "fun", "icu", "vip", "work", "link", "click", "win",
    "bid", "loan", "host", "press", "email", "services", "support", "digital", "media", "news",
    "blog", "world", "life", "today", "agency", "company", "group", "network", "solutions",
    "eu", "ru", "su", "uk", "mobi", "name", "example", "test", "invalid", "museum", "travel",
    "jobs", "cat", "tel", "coop", "aero", "page", "rest", "bar", "monster", "cyou", "sbs",
})


def _known_tld(tld: str) -> bool:
    """A top-level domain a bare host name may end in: a country code or a common gTLD (not
    "log.filter", "index.php")."""
    return tld not in _COMMON_FILES and (len(tld) == 2 or tld in _GENERIC_TLDS)


def _host_candidates(text: str, urls: list[str], defanged: list[str],
                     reporter_base: str | None) -> list[Candidate]:
    """URL hosts and host names written bare ("the site shop.example"), never the
    reporter's own."""
    out: list[Candidate] = []
    for url in urls:
        host = (host_of(url) or "").lower().strip("[]")
        if host and _base(host) != reporter_base:
            ip = clean_ip(host)
            out.append(Candidate(value=ip or host, role=Role.MENTIONED, weight=0.45,
                                 context=f"url: {url[:160]}"))
    for domain in defanged:
        if _base(domain) != reporter_base:
            out.append(Candidate(value=domain, role=Role.MENTIONED, weight=0.45,
                                 context="defanged name"))
    for n, m in enumerate(_BARE_HOST.finditer(text[:MAX_TEXT_CHARS])):
        if n >= MAX_CANDIDATES:
            break
        host = m.group(1).lower()
        tld = host.rsplit(".", 1)[-1]
        if not _known_tld(tld) or _base(host) == reporter_base or clean_ip(host):
            continue
        start, _end = _line_at(text, m.start())
        role, weight = _role_of(text[max(start, m.start() - 64):m.start()])
        if role is Role.OFFENDER:
            role, weight = Role.MENTIONED, 0.45
        out.append(Candidate(value=host, role=role, weight=min(weight, 0.4),
                             context=f"name: {text[start:m.end()][-160:].strip()}"))
    return out


# -- the format, as the registry and the classifier know it ------------------------------

# The free-text parser's keyword guess (parsers/formats/text.py): a hint, never decisive.
TEXT_VOCABULARY: dict[str, tuple[str, float]] = {
    "phishing": ("phishing", 0.45),
    "copyright": ("copyright", 0.45),
    "ddos": ("ddos", 0.45),
    "brute_force": ("hacking", 0.45),
    "botnet": ("malware", 0.45),
    "malware": ("malware", 0.45),
    "scan": ("port-scan", 0.4),
    "spam": ("spam", 0.4),
}
TEXT = Format("text", machine=False, vocabulary=TEXT_VOCABULARY, hint_only=True)


# -- the parser -----------------------------------------------------------------------------


class TextParser:
    name = "text"
    stage = Stage.FALLBACK
    formats = (TEXT,)
    order = 10

    def matches(self, mail: Mail) -> bool:
        return True

    def parse(self, mail: Mail) -> ParseResult:
        return ParseResult(disposition=Disposition.REPORT, format="text",
                           reports=[read_text(mail)])


def read_text(mail: Mail) -> ParsedReport:
    """The one report a free-text message gives."""
    report = ParsedReport(format="text")
    extra: dict[str, Any] = {}
    date_header, _ = parse_time(mail.header("Date"))
    reporter_base = _take_reporter(report, extra, mail)
    texts = _read_texts(mail)
    if texts.jmrp:
        extra["jmrp"] = True  # Microsoft's Junk Mail Reporting Program
    mentions = _find_mentions(texts)
    hop, first_timed = external_hop(texts.blocks, reporter_base)
    zone = declared_zone(texts.body.plain)
    if zone:
        extra["declared_zone"] = zone
    candidates = _address_candidates(texts, mentions, reporter_base, date_header, zone)
    ranked = _ranked(mentions, hop)
    _choose_source(report, extra, ranked, candidates)
    _list_other_addresses(report, extra, ranked, texts.blocks, mentions.networks)
    _take_ports(report, extra, texts, mentions, hop)
    _when(report, extra, mail, texts.body, hop, first_timed, date_header)
    _take_urls(report, extra, texts, reporter_base)
    defanged = _take_domains(report, mail, texts, reporter_base)
    candidates += _host_candidates(texts.subject + "\n" + texts.body.plain, report.urls, defanged,
                                   reporter_base)
    report.candidates = candidates[:MAX_CANDIDATES]
    _take_kind(report, extra, texts)
    _take_context(report, extra, texts, hop)
    if not report.source_ip and not report.urls and not report.domains:
        report.review_reasons.append(NO_OFFENDER)
    report.extra = extra
    return report


# -- the steps of read_text -----------------------------------------------------------------


@dataclass
class Texts:
    """A message's texts, cleaned (:func:`_clean`) and refanged (but *own*)."""

    subject: str
    own: str  # the message's own text, not refanged
    attached_raw: str  # the text of the messages attached to it, as it came
    attached: str
    body: Body  # the own text split into what a person wrote and the blocks quoted in it
    blocks: list[Message]  # the header blocks of attached and quoted messages
    jmrp: bool  # an attached message of Microsoft's Junk Mail Reporting Program


@dataclass
class Mentions:
    """The addresses written in the subject, the forwarded messages' subjects and the text, and
    the CIDR ranges written there (not addresses)."""

    subject: list[Mention]
    forwarded_subjects: list[Mention]
    body: list[Mention]
    networks: list[str]


def _take_reporter(report: ParsedReport, extra: dict[str, Any], mail: Mail) -> str | None:
    """The reporter's address and organisation (and the forwarder in between) into *report*;
    gives the base domain of the reporter's address."""
    reporter_address, reporter_org, via = _reporter(mail, report)
    report.reporter_address, report.reporter_org = reporter_address, reporter_org
    if via:
        extra["forwarded_by"] = via
    return _base(reporter_address.rsplit("@", 1)[-1] if reporter_address else None)


def _read_texts(mail: Mail) -> Texts:
    """The subject and the texts of *mail*; the attached messages' From/Date/Subject go to the
    body's forwarded list (after the ones quoted inline)."""
    own, attached_raw, attached_blocks = _texts(mail)
    subject = refang(_clean(mail.subject))
    own = _clean(own)
    body = split_body(refang(own), mail)
    attached = refang(_clean(attached_raw))
    for block in attached_blocks:
        if len(body.forwarded) < MAX_FORWARDED:
            fields = {k: v for k, v in (("from", block.get("From")), ("date", block.get("Date")),
                                        ("subject", block.get("Subject"))) if v}
            body.forwarded.append({"kind": "attached", **{k: " ".join(str(v).split())[:500]
                                                          for k, v in fields.items()}})
    blocks = (attached_blocks + body.header_blocks)[:MAX_HEADER_BLOCKS]
    jmrp = any(b.get("X-HmXmrOriginalRecipient") for b in attached_blocks)
    return Texts(subject, own, attached_raw, attached, body, blocks, jmrp)


def _find_mentions(texts: Texts) -> Mentions:
    """Every address of the subject, the inline forwarded messages' subjects and the text."""
    networks: list[str] = []
    subject = _mentions(texts.subject, networks)
    forwarded_subjects = [m for f in texts.body.forwarded if f.get("kind") == "inline"
                          for m in _mentions(refang(_clean(f.get("subject", ""))), networks)]
    body = _mentions(texts.body.plain, networks)
    return Mentions(subject, forwarded_subjects, body, networks)


def _ranked(mentions: Mentions, hop: Hop | None) -> list[tuple[str, str]]:
    """Every address named, as (ip, where), the most prominent first: the subject's, the
    forwarded subjects', the text's labelled ones, the first external hop, the text's others."""
    ranked: list[tuple[str, str]] = []
    ranked += [(m.ip, "subject") for m in mentions.subject]
    ranked += [(m.ip, "forwarded subject") for m in mentions.forwarded_subjects]
    ranked += [(m.ip, "text, labelled") for m in mentions.body if m.labelled]
    if hop is not None:
        ranked.append((hop.ip, "received header"))
    ranked += [(m.ip, "text") for m in mentions.body]
    return ranked


def _address_candidates(texts: Texts, mentions: Mentions, reporter_base: str | None,
                        date_header: datetime | None, zone: str | None) -> list[Candidate]:
    """The candidates of the addresses (the classifier keeps the ones that are ours,
    classifier/offenders.py): the subject's, the inline forwarded subjects', the text's (*zone*
    for its times written without one), the quoted hops'."""
    candidates: list[Candidate] = []
    candidates += _text_candidates(texts.subject, mentions.subject, "subject", 0.15, date_header)
    for f in texts.body.forwarded:
        if f.get("kind") == "inline":
            fw = refang(_clean(f.get("subject", "")))
            candidates += _text_candidates(fw, _mentions(fw, []), "forwarded subject", 0.1,
                                           date_header)
    zoneless: set[int] = set()
    candidates += _text_candidates(texts.body.plain, mentions.body, "text", 0.0, date_header,
                                   zone, zoneless)
    candidates += _hop_candidates(texts.blocks, reporter_base)
    _prefer_stated_zones(candidates, zoneless)
    return candidates


def _choose_source(report: ParsedReport, extra: dict[str, Any], ranked: list[tuple[str, str]],
                   candidates: list[Candidate]) -> None:
    """The offender: the first public address of *ranked* that no candidate excludes (a
    documentation or private one when no other is named), and where it was found."""
    public = [(ip, where) for ip, where in ranked if is_public_ip(ip) or is_documentation(ip)]
    excluded = {c.value for c in candidates if c.role in NOT_OFFENDERS}
    offered = {c.value for c in candidates if c.role not in NOT_OFFENDERS}
    public = [(ip, where) for ip, where in public if ip in offered or ip not in excluded]
    if not public:  # documentation and private ranges count when nothing else is named
        public = [(ip, where) for ip, where in ranked if ip in offered]
    if public:
        report.source_ip, extra["source_ip_from"] = public[0]
        report.inferred.append("source_ip")


def _list_other_addresses(report: ParsedReport, extra: dict[str, Any],
                          ranked: list[tuple[str, str]], blocks: list[Message],
                          networks: list[str]) -> None:
    """The public addresses other than the offender (with the attached messages'
    X-Originating-IP), the non-public ones (with a warning) and the CIDR ranges, into *extra*."""
    public = [ip for ip, _ in ranked if is_public_ip(ip) or is_documentation(ip)]
    originating = [clean_ip(str(v)) for b in blocks for v in (b.get_all("X-Originating-IP") or [])]
    public_ips = unique(public + [ip for ip in originating if ip and is_public_ip(ip)])
    non_public = unique(ip for ip, _ in ranked if not is_public_ip(ip) and not is_documentation(ip))
    if public_ips[1:]:
        extra["other_ips"] = public_ips[1:MAX_LISTED + 1]
    if non_public:
        extra["non_public_ips"] = non_public[:MAX_LISTED]
        if report.source_ip in non_public:
            report.warnings.append(
                f"only non-public addresses named: {report.source_ip} taken (the provider's "
                "only if the customer file or classifier.own_networks says so)")
        else:
            shown = ", ".join(non_public[:10]) + (" ..." if len(non_public) > 10 else "")
            report.warnings.append(f"non-public addresses not taken as the offender: {shown}")
    if networks:
        extra["networks"] = unique(networks)[:MAX_LISTED]


def _take_ports(report: ParsedReport, extra: dict[str, Any], texts: Texts, mentions: Mentions,
                hop: Hop | None) -> None:
    """The offender's port, and every port the subject and the text name (``extra["ports"]``)."""
    if report.source_ip is not None:
        report.source_port = _source_port(report.source_ip, extra.get("source_ip_from"),
                                          texts.body.plain, mentions, hop)
        if report.source_port is not None:
            report.inferred.append("source_port")
    ports = unique(p for p in _GENERIC_PORT.findall(
        texts.subject + "\n" + texts.body.plain[:MAX_TEXT_CHARS]) if 0 < int(p) <= 65535)
    if ports:
        extra["ports"] = [int(p) for p in ports[:20]]


def _source_port(source_ip: str, source_ip_from: str | None, plain: str, mentions: Mentions,
                 hop: Hop | None) -> int | None:
    """The offending hop's port; else the one written next to the offender's address; else one
    the text labels as the source port."""
    if source_ip_from == "received header" and hop is not None:
        port = hop.port
    else:
        port = next((m.port for m in mentions.subject + mentions.forwarded_subjects + mentions.body
                     if m.ip == source_ip and m.port is not None), None)
    if port is None:
        labelled_port = _SOURCE_PORT.search(plain)
        if labelled_port and 0 < int(labelled_port.group(1)) <= 65535:
            port = int(labelled_port.group(1))
    return port


def _take_urls(report: ParsedReport, extra: dict[str, Any], texts: Texts,
               reporter_base: str | None) -> None:
    """The URLs of the subject and the texts; the reporter's own go to
    ``extra["reporter_urls"]``."""
    urls = [u for u in find_urls(texts.subject + "\n" + texts.body.plain + "\n" + texts.attached,
                                 limit=500)
            if _good_host(host_of(u))]
    own_urls = [u for u in urls if reporter_base and _base(host_of(u)) == reporter_base]
    report.urls = [u for u in urls if u not in own_urls][:MAX_LISTED]
    if own_urls:
        extra["reporter_urls"] = own_urls[:20]


def _take_domains(report: ParsedReport, mail: Mail, texts: Texts,
                  reporter_base: str | None) -> list[str]:
    """The domains: the URLs' and the defanged names written in the subject and the own text
    (not the reporter's); gives the defanged names."""
    defanged = _defanged_domains(_clean(mail.subject) + "\n" + texts.own)
    report.domains = [d for d in unique(domains_of(report.urls) + defanged)
                      if _base(d) != reporter_base][:MAX_LISTED]
    return defanged


def _take_kind(report: ParsedReport, extra: dict[str, Any], texts: Texts) -> None:
    """The type hint from the keywords; a forwarded email with none is a spam complaint."""
    kind, counts = _kind(texts.subject, texts.body.plain)
    if kind is None and (texts.blocks or extra.get("jmrp")):
        kind, counts = "spam", {}
        extra["kind_from"] = "a forwarded email"
    report.type_hint = f"text:{kind or 'unknown'}"
    if kind:
        report.inferred.append("type_hint")
    if counts:
        extra["keywords"] = counts


def _take_context(report: ParsedReport, extra: dict[str, Any], texts: Texts,
                  hop: Hop | None) -> None:
    """The forwarded messages, the offending hop and the evidence (the own text, else the
    attached one)."""
    if texts.body.forwarded:
        extra["forwarded"] = texts.body.forwarded
    if hop is not None:
        extra["received_hop"] = {"ip": hop.ip, "helo": hop.helo, "rdns": hop.rdns, "by": hop.by,
                                 "time": hop.time_raw}
    report.evidence = excerpt(texts.own.strip() or texts.attached_raw.strip(),
                              ParsedReport.MAX_EVIDENCE)


def _when(report: ParsedReport, extra: dict[str, Any], mail: Mail, body: Body, hop: Hop | None,
          first_timed: Hop | None, date_header: datetime | None) -> None:
    """occurred_at: the offending hop's time; else the first time in the text; else the first
    quoted hop's; else a forwarded message's Date; else this message's Date."""
    chosen: Found | None = None
    source = None
    if extra.get("source_ip_from") == "received header" and hop and hop.time and hop.time_raw:
        chosen, source = Found(hop.time, hop.time_raw, hop.zone_stated), "received header"
    if chosen is None:
        text_times = times_in(_without_record_dates(body.plain), date_header,
                            zone=extra.get("declared_zone"))
        if text_times:
            chosen, source = text_times[0], "text"
    if chosen is None and first_timed and first_timed.time and first_timed.time_raw:
        chosen = Found(first_timed.time, first_timed.time_raw, first_timed.zone_stated)
        source = "received header"
    for forwarded in body.forwarded if chosen is None else []:
        raw = forwarded.get("date")
        if not raw:
            continue
        found = times_in(raw, date_header, limit=1)
        if found:
            chosen = found[0]
        else:
            at, stated = parse_time(raw)
            if at is None:
                continue
            chosen = Found(at, raw, stated)
        source = "forwarded message"
        break
    if chosen is None and date_header is not None:
        at, stated = parse_time(mail.header("Date"))
        if at is not None:
            chosen = Found(at, mail.header("Date") or "", stated)
            source = "message date"
            report.warnings.append("no time in the text: the message's Date taken")
    if chosen is None:
        return
    report.occurred_at, report.occurred_raw = chosen.at, chosen.raw[:200]
    report.inferred.append("occurred_at")
    extra["occurred_from"] = source
    if not chosen.zone_stated:
        report.warnings.append(ZONELESS)
    if chosen.year_inferred:
        report.warnings.append("time without a year, the year taken from the message's Date")


def _without_record_dates(text: str) -> str:
    """*text* without a WHOIS block's "created:" and "last-modified:" lines (record dates, not
    the incident's time)."""
    if "created" not in text.lower() and "modified" not in text.lower() and \
            "changed" not in text.lower() and "regdate" not in text.lower():
        return text
    return "\n".join(line for line in text.split("\n") if not _WHOIS_DATE.match(line))


# -- helpers --------------------------------------------------------------------------------


def _texts(mail: Mail) -> tuple[str, str, list[Message]]:
    """The message's own text, the text of messages attached to it, and their headers."""
    inside: set[int] = set()
    blocks: list[Message] = []
    for part in mail.parts:
        if part.content_type in ("message/rfc822", "message/global") and id(part.message) \
                not in inside:
            payload = part.message.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                blocks.append(inner)
                inside.update(id(sub) for sub in inner.walk())
        elif part.content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            blocks.append(HeaderParser(policy=compat32).parsestr(part.text()[:256 * 1024]))
        elif part.content_type == "text/plain" and part.filename and \
                id(part.message) not in inside:
            saved = _saved_headers(part.text()[:256 * 1024])  # a message's source as a file
            if saved is not None:
                blocks.append(saved)
    own: list[str] = []
    attached: list[str] = []
    for kind in ("text/plain", "text/html"):
        for part in mail.parts:
            if part.content_type != kind or part.filename:
                continue
            text = part.text() if kind == "text/plain" else _strip_html(part.text())
            (attached if id(part.message) in inside else own).append(text)
        if own:
            break
    if not own and not mail.msg.is_multipart() and not mail.content_type.startswith("text/"):
        own.append(mail.body_text())
    return ("\n".join(own)[:MAX_TEXT_CHARS], "\n".join(attached)[:MAX_TEXT_CHARS], blocks)


_SAVED_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,60}:")


def _saved_headers(text: str) -> Message | None:
    """The header block of a message saved as a text file ("message source", "original
    message"), when the file starts with header lines and has Received lines."""
    head = text.lstrip()[:64 * 1024]
    if not _SAVED_HEADER.match(head):
        return None
    block = HeaderParser(policy=compat32).parsestr(head)
    return block if block.get_all("Received") else None


_TAG = re.compile(r"<[^>]{0,2000}>")


def _strip_html(text: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</tr\s*>", "\n", text)
    return html.unescape(_TAG.sub(" ", drop_scripts(text)))


def _reporter(mail: Mail, report: ParsedReport) -> tuple[str | None, str | None, str | None]:
    """The sender, or the real one behind a forwarder ("'X' via abuse", X-Original-From)."""
    display, parsed = parse_address(mail.from_)
    address = parsed.lower() or None
    originals = [mail.header(h) for h in ("X-Original-From", "X-Original-Sender")]
    forwarder = bool(re.search(r"\svia\s", f" {display} ", re.I))
    for value in originals + ([mail.header("Reply-To")] if forwarder else []):
        if not value:
            continue
        real_display, real = parse_address(value)
        if real and real.lower() != address:
            report.inferred.append("reporter_address")
            org = mail.header("Organization") or real_display.strip() or None
            if org and not mail.header("Organization"):
                report.inferred.append("reporter_org")
            return real.lower(), org, address
    org = mail.header("Organization")
    if not org and display.strip():
        org = _VIA_TAIL.sub("", display.strip()).strip("'\" ") or None
        if org:
            report.inferred.append("reporter_org")
    return address, org, None


# " via Forwarder" to the end: starts only where a blank run starts (from inside one, "\s+via"
# rescanned the rest of the run from each of its blanks).
_VIA_TAIL = re.compile(r"(?<!\s)\s++via\s++.*$", re.I)
_HOST = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")


def _good_host(host: str | None) -> bool:
    """A host name with a dot, or an address: not "*MUNGED*", "[Site" or half an IPv6."""
    return bool(host) and (bool(_HOST.match(host or "")) or clean_ip(host) is not None)


_DEFANG_DOT = r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)"
_DEFANGED_DOMAIN = re.compile(  # not starting inside a name, nor right after a defanged dot
    r"(?<![\w.\[/@-])(?<!\[\.\])(?<!\(\.\))(?<!\{\.\})(?<!\[dot\])(?<!\(dot\))"
    r"((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:" + _DEFANG_DOT + r"|\.))+[a-z]{2,24})(?![\w-])",
    re.I)


def _defanged_domains(text: str) -> list[str]:
    """Bare domain names someone took the care to defang: "evil[.]example" (not every name)."""
    found = []
    for m in _DEFANGED_DOMAIN.finditer(text[:MAX_TEXT_CHARS]):
        raw = m.group(1)
        if not re.search(_DEFANG_DOT, raw, re.I):
            continue
        domain = refang(raw).lower().strip(".")
        if "." in domain and clean_ip(domain) is None:
            found.append(domain)
        if len(found) >= MAX_LISTED:
            break
    return unique(found)


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [TextParser()]
