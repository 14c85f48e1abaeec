"""Forwarded and quoted messages in free text: "-----Original Message-----", "----------
Forwarded message ---------", "Begin forwarded message:" (and their German, French, Spanish,
Italian and Dutch forms) with the From/Date/Subject/To under them, and quoted header blocks
(Received lines pasted into the text).

:func:`split_body` splits a text into what a person wrote and those blocks; the free-text parser
(``parsers/formats/text.py``) reads the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from ..core.mail import Mail

MAX_FORWARDED = 10
MAX_HEADER_BLOCKS = 20

_QUOTE = re.compile(r"^(?:[ \t]*>)+[ \t]?")

_FW_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|forwarded message|weitergeleitete nachricht|"
    r"urspr(?:ü|ue)ngliche nachricht|message d'origine|message transf[ée]r[ée]|mensaje original|"
    r"mensaje reenviado|messaggio originale|messaggio inoltrato|doorgestuurd bericht|"
    r"oorspronkelijk bericht)\s*-{2,}|begin forwarded message\s*:|"
    r"anfang der weitergeleiteten nachricht\s*:)", re.I)
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,60})[ \t]*+:[ \t]*+(.*)$")
_CONTINUATION = re.compile(r"^[ \t]+\S")
_FW_FIELDS = {
    "from": "from", "von": "from", "de": "from", "van": "from", "da": "from",
    "date": "date", "sent": "date", "datum": "date", "gesendet": "date", "envoyé": "date",
    "enviado": "date", "verzonden": "date", "inviato": "date",
    "subject": "subject", "betreff": "subject", "objet": "subject", "onderwerp": "subject",
    "asunto": "subject", "oggetto": "subject",
    "to": "to", "an": "to", "à": "to", "aan": "to", "para": "to", "a": "to",
}


@dataclass
class Body:
    """The text split into what a person wrote and the header blocks quoted in it."""

    plain: str
    header_blocks: list[Message] = field(default_factory=list)
    forwarded: list[dict[str, str]] = field(default_factory=list)


_CANDIDATE = re.compile(r"(?im)^[ \t>]*(?:-{2,}|begin forwarded|anfang der|received:)")


def split_body(text: str, mail: Mail) -> Body:
    """Only lines that may open a forwarded block or quoted headers are looked at closely."""
    lines = text.split("\n")
    plain: list[str] = []
    body = Body(plain="")
    i = 0
    line_no, counted_to = 0, 0
    for n, m in enumerate(_CANDIDATE.finditer(text)):
        if n % 1000 == 0:
            mail.deadline.check()
        line_no += text.count("\n", counted_to, m.start())
        counted_to = m.start()
        if line_no < i:
            continue  # inside a block already taken
        plain.extend(lines[i:line_no])
        i = line_no
        line = _QUOTE.sub("", lines[i])
        if _FW_MARKER.match(line):
            end, fields, block = _header_run(lines, i + 1, allow_blank=2)
            if fields and len(body.forwarded) < MAX_FORWARDED:
                body.forwarded.append({"kind": "inline", **fields})
            if block is not None and len(body.header_blocks) < MAX_HEADER_BLOCKS:
                body.header_blocks.append(block)
            plain.append("")
            i = max(end, i + 1)
        elif line.lower().startswith("received:"):
            end, fields, block = _header_run(lines, i, allow_blank=0,
                                             parse=len(body.header_blocks) < MAX_HEADER_BLOCKS)
            if block is not None:
                body.header_blocks.append(block)
                if fields and len(body.forwarded) < MAX_FORWARDED:
                    body.forwarded.append({"kind": "inline headers", **fields})
            i = max(end, i + 1)  # quoted headers are not the text, parsed or not
        else:
            plain.append(lines[i])
            i += 1
    plain.extend(lines[i:])
    body.plain = "\n".join(plain)
    return body


def _header_run(lines: list[str], start: int, allow_blank: int, parse: bool = True
                ) -> tuple[int, dict[str, str], Message | None]:
    """Header lines from *start* (after up to *allow_blank* blank lines): where they end, the
    forwarded From/Date/Subject/To, and the block as a parsed header set if it has Received."""
    i = start
    while allow_blank and i < len(lines) and not lines[i].strip():
        i, allow_blank = i + 1, allow_blank - 1
    run: list[str] = []
    fields: dict[str, str] = {}
    while i < len(lines) and len(run) < 500:
        line = _QUOTE.sub("", lines[i])
        header = _HEADER_LINE.match(line)
        if header:
            key = _FW_FIELDS.get(header.group(1).lower())
            if key and key not in fields:
                fields[key] = header.group(2).strip()[:500]
            run.append(line)
        elif run and _CONTINUATION.match(line):
            run.append(line)
        else:
            break
        i += 1
    if not run:
        return start, {}, None
    block = None
    if parse and any(r.lower().startswith("received:") for r in run):
        block = HeaderParser(policy=compat32).parsestr("\n".join(run) + "\n\n")
    return i, fields, block
