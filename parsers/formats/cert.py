"""Notices from CERTs, CSIRTs, scanners and blocklists: one report per affected host.

Such a notice states what it is about (an open service, an infected host, a phishing page, a
scan, a DDoS, a brute-force attack) in its subject or text, and names the affected hosts in a
table (``parsers.tables``): delimited or aligned text, ``Label: value`` blocks, one line per
host, or a CSV/JSON/XML file attached under any type, zipped or not.

For every row the host column is the one whose label says it is the affected host (``ip``,
``source ip``, ``infected host``, ``IP-Adresse``, ``adresse_ip``, ``IP adresas`` ...), never a
column labelled as a control server, sinkhole, destination, target or honeypot: those
addresses go to ``candidates`` with ``Role.C2`` or ``Role.VICTIM``. The port and time come
from the same row, with the zone the row, its column label or the notice states (UTC when
none). The type comes from the row (a type, classification or malware column), else the
subject, else the text, as ``cert:<key>`` (``classifier/taxonomy.py`` maps it with full
confidence: a machine format states its type). Rows naming one host twice (a bilingual notice
repeats its table) give one report, with the earliest time.

A message whose text holds no such table is not this parser's: it falls through to the
free-text parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from ...core.fields import clean_ip, excerpt, find_ips, find_urls, host_of, parse_time, refang
from ...core.headers import parse_address
from ...core.mail import Mail
from ..base import Candidate, Disposition, Format, ParsedReport, Parser, ParseResult, Role, Stage
from ..tables import (
    Table,
    body_texts,
    clean_cell_ip,
    has_ip,
    host_lines,
    host_port,
    read_tables,
    text_lines,
)

PREFIX = "cert:"
MAX_REPORTS = 10_000

# Who sends such notices: words of the sender's name or address, or of the subject.
_NOTICE = re.compile(
    r"\b(?:cert|csirt|cirt|ncsc|govcert|cyber|security|sicherheit|securite|seguridad|"
    r"seguran[cç]a|kyberturva|sinkhole|block\s?list|blacklist|dnsbl|rbl|listed|listing|"
    r"scan\w*|threat\w*|autoreport\w*|leak\w*|exposure|exposed|shadowserver|honeypot|"
    r"infect\w*|infiz\w*|besmet|u[zž]kr[eė]st\w*|vulnerab\w*|verwundbar\w*|kwetsba\w*|"
    r"offene?|open|aberto|abierto|atvir\w*|botnet\w*|bot|malware|phishing|ddos|incident\w*|"
    r"abuse\s+report|n6|beacon\w*|c2|c&c|\w{1,3}bl|reputation)\b", re.I)
_LISTING = re.compile(r"\blist(?:ed|ing)\b|\bblock\s?list|\bblacklist", re.I)
_TABLE_FILE = re.compile(r"\.(?:csv|tsv|json|jsonl|xml|zip|gz)$", re.I)  # evidence as a file
_CERT_SENDER = re.compile(r"cert|csirt|cirt|ncsc", re.I)  # also inside a name: "HKCERT"
# A blocklist saying an address is no longer listed: nothing to act on.
_DELISTED = re.compile(r"\b(?:removed\s+from|delisted|de-listed|no\s+longer\s+listed|"
                       r"entfernt|verwijderd)\b", re.I)
_NOT_NOTICE = re.compile(r"\bdmarc\b|report\s+domain:|\btls[- ]?rpt\b|\btls report\b|"
                         r"copyright|\bdmca\b|infring|urheberrecht|piracy|trademark", re.I)
# A copyright notice names IPs and times in tables too: it is the DMCA parser's.
_COPYRIGHT = re.compile(r"\bdmca\b|512\s?\(c\)|copyright\s+infringement|infringing\s+"
                        r"(?:material|content|work)", re.I)

# -- column labels --------------------------------------------------------------------------

_C2_WORDS = re.compile(r"c2|c&c|cnc|c-c|command|control|sinkhole|team\s?server|kontrollserver|"
                       r"botnet\s?server", re.I)
_VICTIM_WORDS = re.compile(r"dst|dest|ziel|target|cible|doel|destino|tikslo|tiksl|atakuot|"
                           r"victim|honeypot|attacked|remote|peer|reporter|sensor|dip\b", re.I)
_HOST_WORDS = re.compile(r"ip|host|address|adres|adress|endere|direcci|client|endpoint|source|"
                         r"src|quell|bron|origem|origen|infect|affected|betroffen|beacon|device|"
                         r"system|server|asset|adresas|listed|listing", re.I)
_STRONG_HOST = re.compile(r"source|src|quell|bron|origem|origen|infect|affected|betroffen|"
                          r"client|beacon|your|hosting|ihr|uw\b", re.I)
_PORT_WORDS = re.compile(r"\bport|port\b|_port|poort|prievad|puerto", re.I)
_SOURCE_PORT = re.compile(r"source|src|quell|bron|origem|origen|client|[sš]altinio", re.I)
_TIME_WORDS = re.compile(r"time|zeit|date|datum|data|hora|laikas|tijd|horodatage|detect|seen|"
                         r"observ|report|first|\blast\b|start|utc|tidpunkt|fecha|aikaleima|gmt|when|"
                         r"confirmed|ocorr|verific|created|added|reportad|gemeld", re.I)
_LAST_TIME = re.compile(r"last|letzt|[uú]ltim|laatst|paskutin", re.I)
_TYPE_WORDS = re.compile(r"type|typ|tipas|tipo|kategor|category|classification|incident|"
                         r"activity|feed|event|threat|dienst|service|servi[cç]o|product|"
                         r"vulnerab|kwetsba|indicat|indicador|details|listed|reason|\blist\b", re.I)
_MALWARE_WORDS = re.compile(r"malware|family|infection|bot.?name|schadsoftware|schadprogramm|"
                            r"kenk[eė]jiška|threatcode|threat.?code|trojan", re.I)
_URL_WORDS = re.compile(r"url|link|site|website|page|p[aá]gina|svetain", re.I)

# -- types: (key, pattern), the first that matches wins ---------------------------------------

_TYPES: list[tuple[str, re.Pattern[str]]] = [
    ("phishing", re.compile(r"phish|hame[cç]onn|sukčiav|sukciav|p[aá]gina\s+falsa|"
                            r"nagemaakte|fraudulent\s+(?:page|site)", re.I)),
    ("ddos", re.compile(r"\bddos[- ]?(?:ataka|attack|aanval|angriff|traffic|ataque)|"
                        r"\bddos\b(?!.{0,40}(?:amplif|reflect|verstärk))|"
                        r"d[eé]ni\s+de\s+service|denial.of.service\s+(?:attack|traffic)|"
                        r"deelname|participa", re.I)),
    ("brute-force", re.compile(r"brute|for[cç]a\s+bruta|force\s+brute|password.guess|"
                               r"passwort.?rate|slapta[zž]od|l[oö]senordsattack|login.attack|"
                               r"login.attempt|credential.stuffing", re.I)),
    ("scan", re.compile(r"\bscan(?:s|ning|ner)?\b|varredura|skenav|scanning|escaneo|"
                        r"port.?scan|portscan", re.I)),
    ("bot", re.compile(r"infect|infiz|besmet|u[zž]kr[eė]st|infectad|botnet|\bbots?\b|drone|"
                       r"\bxbl\b|\bcbl\b|"
                       r"sinkhole|\bc2\b|c&c|command.and.control|malware|maliciel|"
                       r"schadprogramm|schadsoftware|c[oó]digo\s+da[nñ]ino|trojan|\brat\b|"
                       r"stealer|webshell|web\s+shell|compromis|kompromit|gecompromitteerd|"
                       r"defacement", re.I)),
    ("open-service", re.compile(r"\bopen\b|offene?\b|[öo]ffentlich|zug[äa]nglich|aberto|"
                                r"abierto|atvir|exposed|exposing|"
                                r"expose|accessible|erreichbar|bereikbaar|unprotected|"
                                r"unauthenticated|without\s+(?:authentication|a\s+password)|"
                                r"resolver|amplif|reflector|vulnerab|verwundbar|kwetsba|"
                                r"veraltet|obsol[eè]te|outdated|end\s+of\s+life|misconfigur|"
                                r"mal\s+configurad|leak|\bcve-\d", re.I)),
    ("spam", re.compile(r"\bspam|snowshoe|\bsbl\b|\bcss\b|listed\s+for\s+sending", re.I)),
]
_ROW_TYPE_KEYS = {"open service": "open-service"}


def type_from(text: str) -> str | None:
    """The ``cert:`` key a short text states (a subject, a row's type cell), or None: the
    first of the keys in their order of precedence."""
    for key, pattern in _TYPES:
        if pattern.search(text[:20_000]):
            return key
    return None


_OUR_SCAN = re.compile(r"\b(?:our|we|us|unsere[mnrs]?|wir|eines|einer|during|while|daily|"
                       r"regular|regelm\w*|zuge|nosso|nossa|nuestro|onze|notre|nos|mūsų|"
                       r"internet-wide|research)\b", re.I)


def type_of_text(text: str) -> str | None:
    """The ``cert:`` key a notice's text states: the one it names first (a notice says what
    it is about before it says what that may lead to: "open resolvers ... abused for DDoS")."""
    text = text[:20_000]
    found = []
    for n, (key, pattern) in enumerate(_TYPES):
        for m in pattern.finditer(text):
            if key == "scan" and _OUR_SCAN.search(text[max(0, m.start() - 30):m.start()]):
                continue  # "during our daily scan", "im Zuge eines Scans": the reporter's scan
            found.append((m.start(), n, key))
            break
    return min(found)[2] if found else None


# -- time -----------------------------------------------------------------------------------

_MONTHS = {m: n for n, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?"
_MONTH_DATE = re.compile(  # "Nov 21, 2026", "21 Nov 2026", "November 21 2026"
    rf"\b(?:(?P<m1>{_MONTH})\s(?P<d1>\d{{1,2}}),?\s(?P<y1>\d{{4}})|"
    rf"(?P<d2>\d{{1,2}})\.?\s(?P<m2>{_MONTH})\s(?P<y2>\d{{4}}))\b", re.I)
_DATE = re.compile(rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[./-]\d{{1,2}}[./-]\d{{4}}|"
                   rf"\b{_MONTH}\s\d{{1,2}},?\s\d{{4}}|\b\d{{1,2}}\.?\s{_MONTH}\s\d{{4}}", re.I)
_DMY = re.compile(r"\b(\d{1,2})([./-])(\d{1,2})\2(\d{4})\b")
_AMPM = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP])\.?M\.?\b", re.I)
_UTC_OFFSET = re.compile(r"\b(?:UTC|GMT)\s?([+\-\u2212])\s?(\d{1,2})(?::?(\d{2}))?\b")
_NUM_OFFSET = re.compile(r"(?<![\d:])([+-])(\d{2}):?(\d{2})\b")
_NAMED = {"UTC": 0, "GMT": 0, "Z": 0, "CET": 60, "MEZ": 60, "CEST": 120, "MESZ": 120,
          "EET": 120, "EEST": 180, "IST": 330, "JST": 540, "HKT": 480, "SGT": 480, "KST": 540,
          "BRT": -180, "BRST": -120, "EST": -300, "EDT": -240, "PST": -480, "PDT": -420,
          "WET": 0, "WEST": 60, "BST": 60, "AEST": 600, "MSK": 180}
_NAMED_RE = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(_NAMED, key=len, reverse=True))
                       + r")(?![A-Za-z])")
_ZONE_CONTEXT = re.compile(r"time|zeit|zone|hora|tijd|heure|laik|aikaleim|fuso", re.I)
_TIME_IN_LINE = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})?"
    r"(?:\s{0,3}(?:UTC|GMT|[A-Z]{3,4}(?![a-z])|[+-]\d{4}))?")


def zone_of(text: str) -> int | None:
    """Minutes east of UTC that *text* states (``UTC+2``, ``-0300``, ``IST``, ``Z``), or None."""
    if not text:
        return None
    m = _UTC_OFFSET.search(text)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        return -minutes if m.group(1) in "-\u2212" else minutes
    m = _NUM_OFFSET.search(text)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return -minutes if m.group(1) == "-" else minutes
    m = _NAMED_RE.search(text)
    if m:
        return _NAMED[m.group(1)]
    if re.search(r"\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?Z\b", text):
        return 0
    return None


def notice_zone(text: str) -> int | None:
    """The zone a notice states for all its times (``times are UTC-3``, ``Zeitzone UTC``)."""
    m = _UTC_OFFSET.search(text[:50_000])
    if m:
        return zone_of(m.group(0))
    for named in _NAMED_RE.finditer(text[:50_000]):  # "all times are CET", "Zeitzone: MEZ"
        before = text[max(0, named.start() - 40):named.start()]
        if _ZONE_CONTEXT.search(before):
            return _NAMED[named.group(1)]
    return None


def row_time(value: str, label: str, default_zone: int | None) -> datetime | None:
    """A row's time as UTC: the zone of the value, else of its label, else the notice's."""
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"1\d{9}(?:\.\d{1,6})?", text):  # seconds since the epoch (JSON feeds)
        return datetime.fromtimestamp(float(text), UTC)
    named_month = _MONTH_DATE.search(text)
    if named_month:
        parts = named_month.groupdict()
        month = _MONTHS[(parts["m1"] or parts["m2"])[:3].lower()]
        day = int(parts["d1"] or parts["d2"])
        text = (text[:named_month.start()] + f"{parts['y1'] or parts['y2']}-{month:02d}-{day:02d}"
                + text[named_month.end():])
    dmy = _DMY.search(text)
    if dmy:  # 22-11-2026, 22.11.2026, 11/23/2026 (month first when the day cannot be a month)
        a, b, year = int(dmy.group(1)), int(dmy.group(3)), dmy.group(4)
        day, month = (b, a) if dmy.group(2) == "/" and b > 12 else (a, b)
        if dmy.group(2) == "/" and a <= 12 and b <= 12:
            day, month = b, a  # US style is the common one with slashes
        text = text[:dmy.start()] + f"{year}-{month:02d}-{day:02d}" + text[dmy.end():]
    ampm = _AMPM.search(text)
    if ampm:
        hour = int(ampm.group(1)) % 12 + (12 if ampm.group(4).upper() == "P" else 0)
        text = (text[:ampm.start()] + f"{hour:02d}:{ampm.group(2)}:{ampm.group(3) or '00'}"
                + text[ampm.end():])
    found = _TIME_IN_LINE.search(text)
    core = found.group(0) if found else text
    parsed, known = parse_time(re.sub(r"(?:\s{0,3}(?:UTC|GMT|[A-Z]{3,4}|[+-]\d{4}))$", "", core)
                               if found else core)
    if parsed is None:
        return None
    if known:  # parse_time read the zone itself (an RFC 5322 date, an ISO offset)
        return parsed
    zone = zone_of(text)
    if zone is None:
        zone = zone_of(label)
    if zone is None:
        zone = default_zone if default_zone is not None else 0
    naive = parsed.astimezone(UTC).replace(tzinfo=None)
    return naive.replace(tzinfo=timezone(timedelta(minutes=zone))).astimezone(UTC)


def _int(value: str) -> int | None:
    m = re.match(r"\s*(\d{1,5})\b", value)
    if not m:
        return None
    port = int(m.group(1))
    return port if 0 < port < 65536 else None


# -- rows -----------------------------------------------------------------------------------


@dataclass
class _Host:
    ip: str
    port: int | None = None
    occurred_at: datetime | None = None
    occurred_raw: str | None = None
    type_key: str | None = None
    urls: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    rows: int = 0


def _role(label: str) -> Role | None:
    """What a column holding an address is, by its label; None when it is no host column."""
    if _C2_WORDS.search(label):
        return Role.C2
    if _VICTIM_WORDS.search(label):
        return Role.VICTIM
    return Role.OFFENDER


def _row_hosts(row: dict[str, str]) -> tuple[str | None, str | None, list[tuple[str, str, Role]]]:
    """(label of the host column, its IP, the other addresses with their roles)."""
    ips: list[tuple[str, str, Role | None]] = []
    for label, value in row.items():
        if not value or not has_ip(value) or _PORT_WORDS.search(label):
            continue  # an address under a port's label: a misaligned row, not a host
        ip = clean_cell_ip(value) or clean_ip(refang(value).split()[0])
        if ip is None:
            if _URL_WORDS.search(label):
                continue
            ip = clean_cell_ip(value.split()[0]) if value.split() else None
            if ip is None:
                continue
        ips.append((label, ip, _role(label)))
    hosts = [(lab, ip) for lab, ip, role in ips if role == Role.OFFENDER
             and (_HOST_WORDS.search(lab) or lab.startswith("column ") or lab == "line")]
    strong = [(lab, ip) for lab, ip in hosts if _STRONG_HOST.search(lab)]
    picked = (strong or hosts)[:1]
    host_label: str | None = picked[0][0] if picked else None
    chosen: str | None = picked[0][1] if picked else None
    others = [(lab, ip, role or Role.MENTIONED) for lab, ip, role in ips if ip != chosen]
    return host_label, chosen, others


def _row_time(row: dict[str, str], zone: int | None,
              latest: bool = False) -> tuple[datetime | None, str | None]:
    """The row's time: its first time column (``first seen`` before ``last seen``), or with
    *latest* (a blocklist listing: the last trap hit keeps it listed) its ``last`` one."""
    labels = [lab for lab in row if _TIME_WORDS.search(lab) and (
        not _PORT_WORDS.search(lab) or re.search(r"time|date|zeit|datum", lab, re.I))]
    labels.sort(key=lambda lab: bool(_LAST_TIME.search(lab)) != latest)
    labels += [lab for lab in row if lab.startswith("column ") or lab == "line"]
    # then any cell that is a whole date and time ("Tested on: 2015-09-23 04:04:18 +0200")
    labels += [lab for lab in row if lab not in labels and not _PORT_WORDS.search(lab)
               and _DATE.search(row[lab]) and re.search(r"\d{1,2}:\d{2}", row[lab])]
    for label in labels:
        value = row[label]
        if not re.search(r"\d{1,2}:\d{2}|^1\d{9}\b", value) and not _DATE.search(value):
            continue
        when = row_time(value, label, zone)
        if when is not None:
            return when, value
    return None, None


def _row_port(row: dict[str, str], host_label: str | None) -> int | None:
    if host_label:
        port = host_port(row[host_label])
        if port is not None:
            return port
    ports = [lab for lab in row if _PORT_WORDS.search(lab) and not _C2_WORDS.search(lab)
             and not _VICTIM_WORDS.search(lab)]
    ports.sort(key=lambda lab: not _SOURCE_PORT.search(lab))
    for label in ports:
        port = _int(row[label])
        if port is not None:
            return port
    if "line" in row and "port" in row:
        return _int(row["port"])
    return None


def _row_type(row: dict[str, str], host_label: str | None) -> str | None:
    labelled = [lab for lab in row if lab != host_label and (
        _TYPE_WORDS.search(lab) or lab.startswith("column "))]
    for label in labelled:
        value = row[label]
        if has_ip(value) and not lab_is_text(value):
            continue
        key = _ROW_TYPE_KEYS.get(value.strip().lower()) or type_from(value)
        if key:
            return key
    if any(_MALWARE_WORDS.search(lab) and row[lab].strip() for lab in row):
        return "bot"
    return None


def lab_is_text(value: str) -> bool:
    return len(re.findall(r"[A-Za-z]{3,}", value)) >= 2


def _row_urls(row: dict[str, str]) -> list[str]:
    return [u for lab, value in row.items() if _URL_WORDS.search(lab)
            for u in find_urls(value, limit=3)]


def _evidence(row: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in row.items() if v)[:1024]


# -- the format, as the registry and the classifier know it ------------------------------

# CERT, CSIRT, scanner and blocklist notices (parsers/cert.py): the notice or its row
# states the type, and a machine format decides its own type with full confidence.
CERT_VOCABULARY: dict[str, tuple[str, float]] = {
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
}
CERT = Format("cert", machine=True, vocabulary=CERT_VOCABULARY)


class CertParser:
    name = "cert"
    stage = Stage.SENDER
    formats = (CERT,)
    order = 10

    def matches(self, mail: Mail) -> bool:
        head = f"{mail.from_} {mail.subject}"
        if _NOT_NOTICE.search(head):
            return False
        if _DELISTED.search(mail.subject) and find_ips(mail.subject, limit=2):
            return True
        return bool(_NOTICE.search(head)) or any(_TABLE_FILE.search(p.name) for p in mail.parts
                                                 if p.filename)

    def parse(self, mail: Mail) -> ParseResult | None:
        warnings: list[str] = []
        tables = read_tables(mail, warnings=warnings)
        texts = body_texts(mail)
        text = "\n".join(texts)
        zone = notice_zone(f"{mail.subject}\n{text}")
        if _DELISTED.search(mail.subject) and find_ips(mail.subject, limit=2):
            return ParseResult(disposition=Disposition.IGNORED, format="cert", extra={
                "reason": "a blocklist says the address is no longer listed"})
        if type_from(mail.subject) is None and _COPYRIGHT.search(text[:100_000]):
            return None
        named = frozenset(find_ips(mail.subject, limit=5))
        latest = type_from(mail.subject) == "spam" or bool(_LISTING.search(mail.subject))
        hosts = self._hosts(tables, zone, named, latest)
        if not hosts:
            hosts = self._hosts(host_lines(text), zone, named, latest)
        if not hosts and (_NOTICE.search(mail.from_) or _CERT_SENDER.search(mail.from_)):
            hosts = self._single_host(mail.subject, text, tables, zone)
        if not hosts:
            return None
        notice_type = type_from(mail.subject) or type_of_text(text)
        if notice_type is None and not any(h.type_key for h in hosts.values()):
            return None  # no type stated: not a security notice (a copyright or brand notice)
        name, address = parse_address(mail.from_)
        reports = []
        for host in list(hosts.values())[:MAX_REPORTS]:
            report = ParsedReport(
                format="cert", type_hint=PREFIX + (host.type_key or notice_type or "incident"),
                source_ip=host.ip or None, source_port=host.port, occurred_at=host.occurred_at,
                occurred_raw=host.occurred_raw, urls=host.urls,
                domains=[d for d in (host_of(u) for u in host.urls) if d],
                reporter_address=address or None, reporter_org=name or None,
                evidence=excerpt("\n".join(host.evidence), ParsedReport.MAX_EVIDENCE),
                incidents=max(1, host.rows), warnings=list(warnings[:10]),
                candidates=([Candidate(host.ip, Role.OFFENDER, 1.0, host.port, host.occurred_at,
                                       host.occurred_raw, "affected host",
                                       PREFIX + (host.type_key or notice_type or "incident")),
                             *host.candidates] if host.candidates and host.ip else []),
                extra={"subject": mail.subject[:200], "rows": host.rows})
            if host.occurred_at is None:
                report.inferred.append("occurred_at")
            reports.append(report)
        return ParseResult(disposition=Disposition.REPORT, format="cert", reports=reports)

    def _single_host(self, subject: str, text: str, tables: list[Table],
                     zone: int | None) -> dict[str, _Host]:
        """A notice about one host named in its subject (or the only address of its text),
        its time the first one the text states; or, with no address at all, the URLs of a
        labelled field (a phishing page)."""
        ips = [ip for ip in find_ips(subject, limit=3)]
        if not ips:
            ips = find_ips(text, limit=3)
        if len(ips) == 1:
            host = _Host(ips[0], rows=1)
            for line in text_lines(text):
                if line.lstrip().startswith(">"):
                    continue
                if re.search(r"\d{1,2}:\d{2}", line) and _DATE.search(line):
                    host.occurred_at = row_time(line, "", zone)
                    if host.occurred_at is not None:
                        host.occurred_raw = line.strip()[:200]
                        break
            host.evidence.append(excerpt(text, 1024))
            return {host.ip: host}
        hosts: dict[str, _Host] = {}
        if ips:
            return hosts
        for table in tables:
            for row in table.rows:
                urls = _row_urls(row)
                if not urls:
                    continue
                key = host_of(urls[0]) or urls[0]
                host = hosts.setdefault(key, _Host("", urls=urls[:10], rows=0))
                host.rows += 1
                when, raw = _row_time(row, zone)
                if when is not None and host.occurred_at is None:
                    host.occurred_at, host.occurred_raw = when, raw
                host.evidence.append(_evidence(row))
        return hosts

    def _hosts(self, tables: list[Table], zone: int | None,
               named: frozenset[str] = frozenset(), latest: bool = False) -> dict[str, _Host]:
        hosts: dict[str, _Host] = {}
        for table in tables:
            for row in table.rows:
                if "line" in row:
                    found = find_ips(row["line"], limit=3)
                    ip = found[0] if len(found) == 1 else None
                    others: list[tuple[str, str, Role]] = []
                    label: str | None = "line"
                else:
                    label, ip, others = _row_hosts(row)
                if ip is None:  # a scanner's "target" is the host its subject names
                    label, ip = next(((lab, x) for lab, x, _ in others if x in named),
                                     (None, None))
                    others = [o for o in others if o[1] != ip]
                if ip is None:
                    continue
                host = hosts.setdefault(ip, _Host(ip))
                host.rows += 1
                when, raw = _row_time(row, zone, latest)
                if when is not None and host.occurred_at is None:  # the first row's time
                    host.occurred_at, host.occurred_raw = when, raw
                port = _row_port(row, label)
                if host.port is None and port is not None:
                    host.port = port
                key = _row_type(row, label)
                if host.type_key is None and key:
                    host.type_key = key
                for url in _row_urls(row):
                    if url not in host.urls and len(host.urls) < 10:
                        host.urls.append(url)
                if len(host.evidence) < 5:
                    host.evidence.append(_evidence(row))
                for lab, other, role in others:
                    if len(host.candidates) < 20 and other not in {c.value for c in
                                                                   host.candidates}:
                        host.candidates.append(Candidate(other, role, 0.0 if role in (
                            Role.C2, Role.VICTIM) else 0.3, context=lab[:100]))
        return hosts


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [CertParser()]
