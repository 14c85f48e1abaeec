"""Reading the top-level headers of a raw message, bounded and lenient.

Only the header block is parsed (at most ``MAX_HEADER_BYTES``), so a 25 MiB body costs nothing
here. Values are decoded from RFC 2047 where possible, kept raw where not, and never carry CR or
LF out (a decoded encoded-word can contain them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses

MAX_HEADER_BYTES = 1024 * 1024
MAX_VALUE_CHARS = 2000

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")


@dataclass(frozen=True)
class TopHeaders:
    message_id: str | None
    from_: str | None
    subject: str | None
    date: str | None


def header_block(raw: bytes) -> bytes:
    """The bytes up to the first blank line, cut at MAX_HEADER_BYTES."""
    match = _BLANK_LINE.search(raw, 0, MAX_HEADER_BYTES)
    return raw[: match.end()] if match else raw[:MAX_HEADER_BYTES]


def clean_value(value: str | None) -> str | None:
    """Decode RFC 2047 words; fold whitespace; drop control characters; bound the length."""
    if value is None:
        return None
    text = _FOLD.sub("", str(value))  # RFC 5322 unfolding: the line break goes, the blank stays
    try:
        text = str(make_header(decode_header(text)))
    except (MessageError, ValueError, LookupError, UnicodeError, AssertionError):
        pass  # a broken encoded-word: keep the text as it came
    text = _CONTROL.sub(" ", text.replace("\t", " ")).strip()
    return text[:MAX_VALUE_CHARS] or None


def read_top_headers(raw: bytes) -> TopHeaders:
    block = header_block(raw)
    try:  # raw UTF-8 in headers (RFC 6532, SMTPUTF8); anything else 8-bit read as Latin-1
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    msg = HeaderParser(policy=compat32).parsestr(text)
    return TopHeaders(
        message_id=clean_value(msg.get("Message-ID")),
        from_=clean_value(msg.get("From")),
        subject=clean_value(msg.get("Subject")),
        date=clean_value(msg.get("Date")),
    )


def first_address(header: str | None) -> str | None:
    """The first addr-spec of a From header, lower case, or None."""
    if not header:
        return None
    for _name, address in getaddresses([header]):
        if "@" in address:
            return address.lower()
    return None
