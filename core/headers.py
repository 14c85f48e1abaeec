"""Reading the top-level headers of a raw message, bounded and lenient.

Only the header block is parsed (at most ``MAX_HEADER_BYTES``), so a 25 MiB body costs nothing
here. Values are decoded from RFC 2047 where possible, kept raw where not, and never carry CR or
LF out (a decoded encoded-word can contain them), nor NUL or a lone surrogate (neither can be
stored: PostgreSQL text refuses NUL, and UTF-8 cannot encode a surrogate, which a
``=?utf-7?...?=`` word can decode to).

Address headers (From, Reply-To, Sender, ...) are decoded so that an encoded-word cannot change
which address they name: a decoded display name with ``<``, ``@``, ``,`` or quotes in it is
quoted (``=?utf-8?q?alice@example.org?= <mallory@evil.example>`` becomes
``"alice@example.org" <mallory@evil.example>``). Addresses are read by :func:`parse_address`
and :func:`first_address`, which answer only when Python's two address parsers agree on the
value: ``email.utils.getaddresses`` of Python 3.11 misreads crafted values (CVE-2023-27043),
e.g. ``alice@example.org <mallory@evil.example>``, and has no ``strict`` mode here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import getaddresses

MAX_HEADER_BYTES = 1024 * 1024
MAX_VALUE_CHARS = 2000
# A value is cut to this many characters before it is decoded: the result is at most
# MAX_VALUE_CHARS, and a 10 MiB Subject (the full MIME parse is not bounded to the first MiB)
# must not be decoded whole.
MAX_RAW_CHARS = 64 * 1024
ADDRESS_HEADERS = frozenset({"from", "reply-to", "sender", "to", "cc", "x-original-from",
                             "x-original-sender", "resent-from", "return-path"})

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# C0 and C1 controls and Unicode line separators: str.splitlines() breaks at \x85, \u2028...
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WORD = r"=\?[^?\s]{1,200}\?[bBqQ]\?[^?\s]*\?="
_WORD_RUN = re.compile(_WORD + r"(?:[ \t\r\n]+" + _WORD + ")*")
_ADDRESS_SPECIALS = re.compile(r'[<>@,;:"\\()\[\]]')


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


def no_surrogates(text: str) -> str:
    """*text* with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _text(value: object) -> str:
    try:
        return str(value)[:MAX_RAW_CHARS]
    except (MessageError, ValueError, LookupError, UnicodeError):  # a Header Python cannot print
        return ""


def _decode_words(text: str) -> str | None:
    """RFC 2047 encoded-words in *text* decoded, or None when they cannot be."""
    try:
        return no_surrogates(str(make_header(decode_header(text))))
    except (MessageError, ValueError, LookupError, UnicodeError, AssertionError):
        return None


def _finish(text: str) -> str | None:
    text = _CONTROL.sub(" ", no_surrogates(text).replace("\t", " ")).strip()
    return text[:MAX_VALUE_CHARS] or None


def clean_value(value: object) -> str | None:
    """Decode RFC 2047 words; fold whitespace; drop control characters; bound the length."""
    if value is None:
        return None
    text = _FOLD.sub("", _text(value))  # RFC 5322 unfolding: the line break goes, the blank stays
    decoded = _decode_words(text)  # a broken encoded-word: keep the text as it came
    return _finish(text if decoded is None else decoded)


def clean_address(value: object) -> str | None:
    """:func:`clean_value` for an address header: an encoded-word that decodes to address
    syntax is quoted (or escaped, inside a quoted string or a comment), so the decoded value
    names the same addresses as the raw one."""
    if value is None:
        return None
    text = _FOLD.sub("", _text(value))
    if "=?" in text:
        text = _decode_address_words(text)
    return _finish(text)


def _escape(text: str, specials: str) -> str:
    return "".join("\\" + c if c in specials else c for c in text)


def _decode_address_words(text: str) -> str:
    out: list[str] = []
    quoted, comment, i = False, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and (quoted or comment):
            out.append(text[i:i + 2])
            i += 2
            continue
        run = _WORD_RUN.match(text, i) if c == "=" else None
        if run is not None:
            decoded = _decode_words(run.group(0))
            if decoded is None:
                out.append(run.group(0))
            elif quoted:
                out.append(_escape(decoded, '"\\'))
            elif comment:
                out.append(_escape(decoded, "()\\"))
            elif _ADDRESS_SPECIALS.search(decoded):
                out.append('"' + _escape(decoded, '"\\') + '"')
            else:
                out.append(decoded)
            i = run.end()
            continue
        if c == '"' and not comment:
            quoted = not quoted
        elif c == "(" and not quoted:
            comment += 1
        elif c == ")" and not quoted and comment:
            comment -= 1
        out.append(c)
        i += 1
    return "".join(out)


def top_header_fields(raw: bytes) -> Message:
    """The message's own header block (:func:`header_block`) parsed under ``compat32``: the
    values as they came, unfolded by nobody. Read only: the examination's readers of one
    message (its top headers, the sender's authentication) share it."""
    return _parse_block(header_block(raw))


@functools.lru_cache(maxsize=1)  # the last message's block: read by each of its readers in turn
def _parse_block(block: bytes) -> Message:
    try:  # raw UTF-8 in headers (RFC 6532, SMTPUTF8); anything else 8-bit read as Latin-1
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    return HeaderParser(policy=compat32).parsestr(text)


def read_top_headers(raw: bytes) -> TopHeaders:
    msg = top_header_fields(raw)
    return TopHeaders(
        message_id=clean_value(msg.get("Message-ID")),
        from_=clean_address(msg.get("From")),
        subject=clean_value(msg.get("Subject")),
        date=clean_value(msg.get("Date")),
    )


# The shapes nearly every From has, which every reader reads alike: ``a@b``, ``a@b (Name)``,
# ``Name <a@b>``, ``"Name" <a@b>`` (no quotes, backslashes, commas or @ in the name; no
# domain literal). They skip the ``email.policy.default`` parser, which costs 0.4 ms a call.
_ATOM = r'[^\s"<>()\[\],;:\\@.]+'
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_NOT_IN_NAME = r'"<>()\[\],;:\\@'
# A name ends at a non-blank: a lazy name before "\s+<" backtracked quadratically on blanks.
_SIMPLE_MAILBOX = re.compile(
    rf"\s*+(?:(?P<bare>{_ADDR_SPEC})(?:\s*\((?P<comment>[^()\\]*)\))?"  # a@b (Name)
    rf'|(?:"(?P<quoted>[^"\\]*)"'  # "Name" <a@b>
    rf"|(?P<phrase>(?:[^{_NOT_IN_NAME}.\s](?:[^{_NOT_IN_NAME}]*[^{_NOT_IN_NAME}\s])?)?))"
    rf"(?:\s+|(?<!\.))<(?P<angle>{_ADDR_SPEC})>)\s*")  # "Inc.<a@b>" is not simple
MAX_MAILBOXES = 20  # a From with more "@" than this names no one we could trust


def mailboxes(header: str | None) -> list[tuple[str, str]]:
    """(display name, address) of each mailbox in an address header value, only when
    ``getaddresses`` and the ``email.policy.default`` parser agree on the addresses; [] when they
    do not (CVE-2023-27043), or for a value longer than ``2 * MAX_VALUE_CHARS`` (header values
    are cut to MAX_VALUE_CHARS before they get here) or with more than MAX_MAILBOXES "@"."""
    if not header:
        return []
    simple = _SIMPLE_MAILBOX.fullmatch(header)
    if simple is not None:
        name = simple.group("comment") or simple.group("quoted") \
            or " ".join((simple.group("phrase") or "").split())  # as getaddresses gives them
        return [(name, simple.group("bare") or simple.group("angle"))]
    if len(header) > 2 * MAX_VALUE_CHARS or header.count("@") > MAX_MAILBOXES:
        return []
    return list(_agreed_mailboxes(header))


@functools.lru_cache(maxsize=256)
def _agreed_mailboxes(header: str) -> tuple[tuple[str, str], ...]:
    try:
        modern = [a.addr_spec for a in default_policy.header_factory("From", header).addresses]
        legacy = getaddresses([header])
    except Exception:  # a value either parser cannot read names nobody
        return ()
    agreed = list(dict.fromkeys(a.lower() for a in modern if a and a != "<>"))
    if agreed != list(dict.fromkeys(a.lower() for _, a in legacy if a)):
        return ()
    seen: dict[str, tuple[str, str]] = {}
    for name, address in legacy:
        if address:
            seen.setdefault(address.lower(), (name, address))
    return tuple(seen.values())


def _valid(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    return (address.count("@") == 1 and bool(local) and bool(domain)
            and not _ADDRESS_SPECIALS.search(local + domain.strip("[]")) and " " not in address)


def parse_address(header: str | None) -> tuple[str, str]:
    """``email.utils.parseaddr`` that answers ``("", "")`` unless the value names its mailboxes
    unambiguously (see :func:`mailboxes`): the first one with a plain ``local@domain`` address
    (not ``"a@b"@c``, nor an address with an empty part)."""
    for name, address in mailboxes(header):
        if _valid(address):
            return name, address
    return "", ""


def first_address(header: str | None) -> str | None:
    """The first addr-spec of a From header, lower case, or None when there is none or the
    value can be read two ways (CVE-2023-27043)."""
    return parse_address(header)[1].lower() or None
