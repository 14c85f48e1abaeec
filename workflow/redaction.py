"""What a customer may read of a person's complaint: the evidence without the reporter's
personal data.

Notices, reminders, escalation mails and the self-service page show the evidence of each report
to the accused customer. A machine report's evidence (feedback loops, X-ARF, Shadowserver, ACNS,
SpamCop) is structured data about the incident and stays as it is (its recipients' addresses
are already hashed, RFC 6590). A complaint a person wrote (free text, a DMCA notice in prose)
carries the writer's name, addresses, phone numbers and signature; :func:`redact_person` takes
them out and keeps what the customer needs to find the problem: IP addresses, URLs, domains,
times and log lines.

What is removed, conservatively (a line too many rather than a phone number leaked):

- the signature: everything after an RFC 3676 ``-- `` line; a closing ("Regards,", "Best
  regards, Jane", "Mit freundlichen Grüßen") with the rest of its paragraph, and the next
  paragraph when the closing ends its own (unless that paragraph starts with evidence);
- the writer's name wherever it appears: the From display name (the whole, and each of its
  words that is not a common word), "my name is ...", "I am ...", "this is ...";
- display names on recipient header lines of forwarded mail (``To: Jane Doe <...>``);
- labelled personal lines ("Name:", "Phone:", "Tel.:", "Mobile:", "Fax:", "Address:",
  "Contact:", "E-mail:" and the like): the value;
- phone numbers: 7 to 15 digits with the usual separators, never an IP address, a date or a
  time;
- postal addresses: lines with a street ("12 Main Street", "Hauptstraße 5"), a P.O. box or a
  postcode with a place ("Springfield, IL 62704", "D-10115 Berlin", "SW1A 1AA");
- every e-mail address's local part, replaced by a keyed hash as RFC 6590 does (the domain
  stays, and the same address gives the same code).

Bounded: the text is at most ``notices.EVIDENCE_LIMIT``-ish characters already; every pattern
here is linear (no nested quantifiers over the same characters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import mailer

MAX_TEXT = 64_000  # characters looked at; evidence in a notice is cut well before this
SIGNATURE = "[signature removed]"
NAME = "[name removed]"
PHONE = "[phone removed]"
ADDRESS_LINE = "[postal address removed]"
REMOVED = "[removed]"

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
                   r"(?![0-9A-Fa-f:])")
_URL = re.compile(r"\b(?:https?|hxxps?|ftp)://", re.I)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}|\b\d{1,2}:\d{2}(?::\d{2})?\b"
                        r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? \d{1,2} [A-Z][a-z]{2} \d{4}")

# Closings that start a signature, in the languages abuse mail comes in most.
_CLOSING_WORDS = (
    r"(?:(?:best|kind|warm|warmest|many|with|yours)\s*+)?(?:regards|wishes|greetings)"
    r"|sincerely(?: yours)?|yours (?:truly|sincerely|faithfully)|respectfully(?: yours)?"
    r"|cheers|best|thanks(?: again| in advance)?|thank you(?: in advance)?|many thanks"
    r"|regards|rgds|br|sent from my \w+"
    r"|mit freundlichen gr(?:ü|ue)(?:ß|ss)en|freundliche gr(?:ü|ue)(?:ß|ss)e"
    r"|viele gr(?:ü|ue)(?:ß|ss)e"
    r"|gr(?:ü|ue)(?:ß|ss)e|mfg|lg|vg|cordialement|bien (?:à|a) vous|salutations"
    r"|saludos(?: cordiales)?|atentamente|cordiali saluti|distinti saluti|saluti"
    r"|met vriendelijke groet(?:en)?|groeten|med vänliga hälsningar|hälsningar"
    r"|z poważaniem|с уважением")
# Linear: blanks are taken whole (possessive), and the rest up to its last non-blank greedily.
_CLOSING = re.compile(rf"^\s*+(?:{_CLOSING_WORDS})\s*+(?:[,.!:;–-]++\s*+(.*\S)?)?\s*+$",
                      re.I)
# "Regards Jane Doe" (no comma) for the unambiguous closings only: "Thanks for the help" is not.
_CLOSING_NAME = re.compile(
    r"^\s*(?:(?:[Bb]est|[Kk]ind|[Ww]arm|[Ww]armest|[Mm]any)\s+[Rr]egards|[Rr]egards|[Ss]incerely"
    r"|[Cc]heers|[Mm]it freundlichen [Gg]r(?:ü|ue)(?:ß|ss)en)\s+([A-Z][\w'’.-]*"
    r"(?:\s+[A-Z][\w'’.-]*){0,3})\s*$")
# What may follow a closing on its line: a name, a role, a company; no digits, no address.
_AFTER_CLOSING = re.compile(r"[^\d@:/]{0,60}")
_SIG_DELIMITER = re.compile(r"^--[ \t]?$")

_SELF_INTRO = re.compile(
    r"\b((?i:my name is|i am|i'm|this is|signed|ich bin|mein name ist|je suis|je m'appelle))"
    r"([ \t]+)((?:(?:Dr|Mr|Mrs|Ms|Prof|Herr|Frau)\.?[ \t]+)?[A-Z][a-zà-ÿ][\w'’-]*"
    r"(?:[ \t]+[A-Z][a-zà-ÿ][\w'’-]*){0,3})")
_LABELS = (
    r"(?:full |first |last |sur|given |real |legal |contact |sender'?s? |reporter'?s? )?name"
    r"|contact(?: person| details| info(?:rmation)?)?|reported by|complainant|signed|signature"
    r"|sender|author|submitted by|on behalf of|requester|applicant"
    r"|(?:tele)?phone(?: number)?|tel|fon|telefon|telefonnummer|t[ée]l[ée]phone|mobile|mobil"
    r"|cell(?: phone)?|handy|fax|telefax|whatsapp|signal|telegram|skype"
    r"|(?:postal |mailing |street |home |office )?address|adresse|anschrift|street|stra(?:ß|ss)e"
    r"|city|zip(?: code)?|post ?code|postal code|plz|ort|country of residence"
    r"|e-?mail(?: address)?|mail|reply to|date of birth|dob|birthday|social security|ssn"
    r"|passport|id number|personalausweis")
_LABELLED = re.compile(
    rf"^([ \t]*+(?:[-*•>]++[ \t]*+)?(?:{_LABELS})(?:[ \t]*\.)?[ \t]*[:=][ \t]*)(\S.*)$", re.I)
# A recipient header line of forwarded mail: its display names go, the addresses are hashed.
_RECIPIENT_LINE = re.compile(
    r"^([ \t]*+(?:>++[ \t]*+)?(?:to|cc|bcc|delivered-to|x-original-to|envelope-to|x-envelope-to"
    r"|reply-to|original-recipient|resent-to)[ \t]*+:[ \t]*+)(.*)$", re.I)
# An address anywhere (linear: a local part is matched at most 256 characters back from its @).
_ATEXT = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]"
_EMAIL = re.compile(rf"{_ATEXT}{{1,256}}@[A-Za-z0-9](?:[A-Za-z0-9-]{{0,62}}[A-Za-z0-9])?"
                    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{{0,62}}[A-Za-z0-9])?){{0,20}}")

_PHONE_CANDIDATE = re.compile(
    r"(?<![\w.:/@%=#-])(?:\+|00)?\(?\d[\d\s().\-/]{5,24}\d(?![\w:/@%]|\.\d|-\d)")
_DATE_LIKE = re.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$"
    r"|^\d{1,2}[-/.]\d{1,2}[-/.]\d{4}\b")

# Postal addresses. Case matters: "12 Main Street" is an address, "500 messages via smtp" is not.
_STREET_WORDS = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl"
    r"|Square|Sq|Terrace|Parkway|Pkwy|Highway|Hwy|Circle|Crescent|Close|Gardens|Row|Walk"
    r"|Stra(?:ß|ss)e|Str|Weg|Platz|Allee|Gasse|Ring|Damm|Ufer|Chaussee")
_STREET = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?,?[ \t]+(?:[A-Z][A-Za-zÀ-ÿ'’.-]*[ \t]+){{1,4}}(?:{_STREET_WORDS})\b\.?"
    rf"|\b[A-ZÄÖÜ][A-Za-zÀ-ÿ'’-]*(?:stra(?:ß|ss)e|str\.|weg|platz|allee|gasse|ring|damm)"
    rf"[ \t]+\d{{1,5}}[a-z]?\b"
    rf"|\b(?:Rue|Avenida|Calle|Via|Viale|Piazza|Ulica|Carrer)[ \t]+[A-Z][A-Za-zÀ-ÿ'’ .-]{{1,40}}"
    rf"\d{{1,5}}\b"
    rf"|\b[Pp]\.?[ \t]?[Oo]\.?[ \t]+[Bb]ox[ \t]+\d+|\bPostfach[ \t]+\d+"
    rf"|\b(?:Suite|Apt\.?|Apartment|Floor)[ \t]+\d+")
_POSTCODE = re.compile(
    r"\b[A-Z][a-zA-Z .'-]{1,40},[ \t]*[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?\b"  # Springfield, IL 62704
    r"|(?:^|[ \t,])(?:[A-Z]{1,2}-)?\d{4,5}[ \t]+[A-ZÄÖÜ][a-zäöüß]+(?:[ -][A-ZÄÖÜ][a-zäöüß]+)*"
    r"[ \t]*$"  # 10115 Berlin, D-10115 Berlin
    r"|\b[A-Z]{1,2}\d[A-Z\d]?[ \t]+\d[A-Z]{2}\b")  # SW1A 1AA

# Words of a display name that are no person's name: never removed from the text on their own.
_COMMON = frozenset([
    "abuse", "team", "department", "dept", "desk", "support", "security", "noc", "admin",
    "administrator", "administration", "report", "reports", "reporting", "service", "services",
    "center", "centre", "office", "info", "information", "contact", "legal", "inc", "ltd", "llc",
    "gmbh", "ag", "corp", "corporation", "company", "co", "the", "of", "and", "for", "via",
    "mail", "email", "e-mail", "postmaster", "hostmaster", "webmaster", "network", "networks",
    "operations", "ops", "customer", "customers", "notice", "notices", "compliance", "copyright",
    "anti", "spam", "antispam", "feedback", "loop", "help", "helpdesk", "it", "ict", "team's",
    "group",
])


def _is_evidence_line(line: str) -> bool:
    return bool(_IPV4.search(line) or _URL.search(line) or _TIMESTAMP.search(line)
                or (_IPV6.search(line) and line.count(":") >= 3))


def _is_closing(line: str) -> bool:
    if len(line) > 80 or _is_evidence_line(line):
        return False
    closing = _CLOSING.match(line)
    if closing is not None:
        rest = closing.group(1) or ""
        return len(rest.split()) <= 6 and _AFTER_CLOSING.fullmatch(rest) is not None
    return _CLOSING_NAME.match(line) is not None


def _signature_line(line: str) -> bool:
    """A line that may belong to a signature block: anything but evidence (unless it also
    looks personal: "Web: https://jane.example" next to a phone number)."""
    return bool(line.strip()) and (not _is_evidence_line(line) or _looks_personal(line))


def _strip_signature(lines: list[str]) -> list[str]:
    """The lines without the signature block (see the module docstring)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _SIG_DELIMITER.match(line) and i > 0:
            out.append(SIGNATURE)
            return out
        if not _is_closing(line):
            out.append(line)
            i += 1
            continue
        out.append(SIGNATURE)
        i += 1
        if i < len(lines) and lines[i].strip():
            while i < len(lines) and _signature_line(lines[i]):
                i += 1
        else:
            # "Regards," then a blank line, then the name: the next paragraph is the
            # signature (unless it starts with evidence).
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and _signature_line(lines[j]):
                while j < len(lines) and _signature_line(lines[j]):
                    j += 1
                i = j
    return out


def _looks_personal(line: str) -> bool:
    return bool(_LABELLED.match(line) or _STREET.search(line) or _phone_spans(line))


def _phone_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _PHONE_CANDIDATE.finditer(text):
        value = match.group(0).strip()
        digits = sum(c.isdigit() for c in value)
        if not 7 <= digits <= 15:
            continue
        bare = value.strip("()")
        if _IPV4.search(bare) or _DATE_LIKE.search(bare):
            continue  # an IP address or a date with something after it
        if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){2,}", bare):
            continue  # a version number
        spans.append((match.start(), match.start() + len(match.group(0).rstrip())))
    return spans


def _redact_phones(line: str) -> str:
    spans = _phone_spans(line)
    for start, end in reversed(spans):
        line = line[:start] + PHONE + line[end:]
    return line


def _name_patterns(names: Iterable[str]) -> list[re.Pattern[str]]:
    """The writer's name: each given name as a whole (any case), and each of its words that is
    not a common word, as written (so "Hi, I'm Jane" loses "Jane" too)."""
    wholes: set[str] = set()
    words: set[str] = set()
    for name in names:
        name = re.sub(r"\s+", " ", name.strip().strip("'\"")).strip()
        if not name or "@" in name:
            continue
        wholes.add(name)
        for word in re.split(r"[\s,.;:()\"'/]+", name):
            if len(word) >= 3 and word.lower() not in _COMMON and not word.isdigit():
                words.add(word)
    patterns = []
    for parts, flags in ((wholes, re.I), (words - wholes, 0)):
        if parts:
            alternatives = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
            patterns.append(re.compile(rf"(?<![\w@.-])(?:{alternatives})(?![\w-]|@|\.\w)",
                                       flags))
    return patterns


def _addresses(text: str) -> list[str]:
    return [m.group(0).strip(".").lower() for m in _EMAIL.finditer(text)]


def _recipients_only(value: str) -> str:
    """A recipient header's value as its addresses only: display names (the reporter's own
    name, often) are dropped."""
    found = [m.group(0).strip(".") for m in _EMAIL.finditer(value)]
    if found:
        return ", ".join(f"<{a}>" for a in found)
    return value if value.strip().lower().startswith("undisclosed") else REMOVED


def redact_person(text: str, *, names: Iterable[str] = (), addresses: Iterable[str] = (),
                  secret: bytes) -> str:
    """*text* (a person's complaint) without its writer's personal data. *names*: the writer's
    names known from the message (the From display name, an Organization that is a person's);
    *addresses*: addresses to hash besides every address found in the text; *secret*: the
    RFC 6590 redaction key."""
    text = text[:MAX_TEXT]
    lines = _strip_signature(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    name_patterns = _name_patterns(names)
    out: list[str] = []
    for line in lines:
        evidence = bool(_IPV4.search(line) or _URL.search(line))
        recipient = _RECIPIENT_LINE.match(line)
        labelled = _LABELLED.match(line)
        if recipient is not None:
            line = recipient.group(1) + _recipients_only(recipient.group(2))
        elif labelled is not None and not evidence:
            line = labelled.group(1) + REMOVED
        postal = [_STREET, _POSTCODE]
        if any(p.search(line) for p in postal):
            if evidence:  # keep the IP address or URL, take out the address
                for pattern in postal:
                    line = pattern.sub(" " + ADDRESS_LINE, line)
            else:
                line = ADDRESS_LINE
        line = _SELF_INTRO.sub(lambda m: m.group(1) + m.group(2) + NAME, line)
        for pattern in name_patterns:
            line = pattern.sub(NAME, line)
        out.append(_redact_phones(line))
    result = "\n".join(out)
    found = [*_addresses(result), *(a.lower() for a in addresses if a)]
    return mailer.redact(result, found, secret)
