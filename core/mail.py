"""A bounded, parsed view of one raw message that every parser shares.

The MIME tree is parsed once, with the stdlib ``email`` package under ``compat32``: it keeps the
raw header values (we decode them ourselves, leniently, in :func:`core.headers.clean_value`)
and it is ten times faster than ``policy.default`` on many-part messages (100,000 parts: 1.4 s
against 12.8 s here), which matters for hostile input. Before parsing, a cheap scan refuses
messages with more MIME delimiters than ``max_parts``; Python's parser recursing past its limit
on deep nesting is caught; nesting past ``max_mime_depth`` is not descended into.

Leaf parts come out as :class:`Part` with their transfer encoding decoded by us (also for
``message/*`` parts, whose base64 Python's email leaves alone), within ``max_decoded_bytes``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.errors import MessageError
from email.feedparser import BytesFeedParser
from email.message import Message
from email.policy import Compat32, compat32

from .config import ParserLimits
from .headers import ADDRESS_HEADERS, clean_address, clean_value, no_surrogates


class LimitExceeded(Exception):
    """Input past a configured bound (depth, parts, size, rows, time): a review reason."""


# The parser is fed this many bytes at a time: ``email.message_from_bytes`` decodes the whole
# message into one str first, which for a 25 MiB message cost ten times its size at the peak.
FEED_CHUNK = 64 * 1024
_DELIMITER = re.compile(rb"^--", re.M)
_BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.I)


def _count_delimiters(raw: bytes) -> int:
    """Lines that open or close a MIME part: ``--`` followed by a declared boundary (every
    ``--`` line where there are too many boundaries to tell, which only overcounts)."""
    boundaries = {a or b for a, b in _BOUNDARY.findall(raw)}
    if not boundaries:
        return 0
    if len(boundaries) > 200:
        return len(_DELIMITER.findall(raw))
    alternatives = b"|".join(re.escape(b) for b in sorted(boundaries, key=len, reverse=True))
    return len(re.findall(rb"^--(?:" + alternatives + rb")", raw, re.M))
# Python's email parses every message/* part but delivery-status as an embedded message: a
# feedback report's fields become "headers" until the first line that is not one, and its
# base64 is never decoded. Parsed under a private name instead, such parts stay leaves with
# their body as it came; Part.content_type gives the real name back. (Only the copy that is
# parsed is changed; the stored bytes never are.)
_REPORT_TYPES = re.compile(
    rb"(?im)^(content-type:[ \t]*)message/(?=(?:feedback-report|disposition-notification|"
    rb"global-delivery-status|global-disposition-notification)\b)")
_PRIVATE = "x-abuse-desk-message/"
# Python codecs that are not charsets: escapes would be read as characters (and can make NUL
# and lone surrogates), or they decode nothing of use.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "undefined", "idna",
                           "punycode"})
_CHARSET_ALIASES = {"unknown-8bit": "latin-1", "x-unknown": "latin-1", "8bit": "latin-1",
                    "ansi_x3.4-1968": "ascii", "us-ascii": "ascii", "x-sjis": "shift_jis"}


class Deadline:
    """The time budget of one message; parsers call :meth:`check` inside their loops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._end:
            raise LimitExceeded(f"time budget of {self.seconds:g} s per message exceeded")


def _clean(name: str, value: object) -> str | None:
    return clean_address(value) if name.lower() in ADDRESS_HEADERS else clean_value(value)


def decode_text(data: bytes, charset: str | None) -> str:
    """*data* as text: its declared charset, else UTF-8, else Latin-1 (never fails). Python's
    own codecs that are no charset (``unicode_escape``: backslashes would be read as escapes)
    are not used, and a lone surrogate (UTF-7 can decode to one) becomes U+FFFD."""
    name = (charset or "").strip().strip('"').lower()[:100]
    name = _CHARSET_ALIASES.get(name, name)
    for candidate in (name, "utf-8"):
        if not candidate:
            continue
        try:
            if codecs.lookup(candidate).name in _NOT_CHARSETS:
                continue
            return no_surrogates(data.decode(candidate))
        except (LookupError, UnicodeDecodeError, ValueError):  # ValueError: NUL in the name
            continue
    return data.decode("latin-1")


def decode_transfer(payload: bytes, cte: str) -> bytes:
    """Undo a Content-Transfer-Encoding, leniently (bad base64 padding, stray characters)."""
    cte = cte.strip().lower()
    if cte == "base64":
        compact = re.sub(rb"[^A-Za-z0-9+/=]", b"", payload)
        compact = compact.rstrip(b"=")
        compact += b"=" * (-len(compact) % 4)
        try:
            return base64.b64decode(compact)
        except (binascii.Error, ValueError):
            return payload
    if cte == "quoted-printable":
        return quopri.decodestring(payload)
    return payload


@dataclass
class Part:
    """A leaf of the MIME tree (or a whole ``message/*`` part), transfer encoding undone."""

    content_type: str  # lower case, e.g. "message/feedback-report"
    filename: str | None
    charset: str | None
    depth: int
    data: bytes
    message: Message = field(repr=False)

    def text(self) -> str:
        return decode_text(self.data, self.charset)

    @property
    def name(self) -> str:
        return (self.filename or "").lower()


class _Reserialise(Compat32):
    """``compat32`` that writes a header back at once when folding would leave it as it is.

    Python's ``BytesGenerator`` writes each header of an embedded message
    (:meth:`Mail._payload_bytes`) through ``email.header.Header``'s folding, about 100 µs a
    header, most of the time to give back the lines it was given. A value that needs nothing
    of it is written directly: ASCII (nothing to encode), every line within the line length
    (the first after "Name: "), every line but the first beginning with a blank (no embedded
    header), none empty, none ending in a blank (folding drops a trailing space). Anything else
    is folded by ``compat32`` itself: the bytes are the same either way."""

    def fold_binary(self, name: str, value: str) -> bytes:
        limit = self.max_line_length
        if isinstance(value, str) and value.isascii() and limit:
            lines = value.splitlines()
            if (lines and len(name) + 2 + len(lines[0]) <= limit
                    and all(line and not line[-1].isspace() for line in lines)
                    and all(len(line) <= limit and line[0] in " \t" for line in lines[1:])):
                return f"{name}: {self.linesep.join(lines)}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_RESERIALISE = _Reserialise()


def _parse(raw: bytes, deadline: Deadline) -> Message:
    """``email.message_from_bytes(raw, policy=compat32)``, fed in chunks (and within the time
    budget)."""
    parser = BytesFeedParser(policy=compat32)
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(view[start:start + FEED_CHUNK].tobytes())
        deadline.check()
    message = parser.close()
    assert isinstance(message, Message)
    return message


class Mail:
    """One message, parsed once within the limits, for all parsers."""

    def __init__(self, raw: bytes, limits: ParserLimits | None = None,
                 deadline: Deadline | None = None) -> None:
        self.raw = raw
        self.limits = limits or ParserLimits()
        self.deadline = deadline or Deadline(self.limits.time_budget_s)
        self.warnings: list[str] = []
        delimiters = _count_delimiters(raw)
        if delimiters > 2 * self.limits.max_parts + 2:
            raise LimitExceeded(
                f"too many MIME parts: {delimiters} delimiter lines, limit {self.limits.max_parts}"
                " parts (parsers.max_parts)")
        try:
            renamed = _REPORT_TYPES.sub(rb"\1" + _PRIVATE.encode(), raw)
            self.msg: Message = _parse(renamed, self.deadline)
        except RecursionError:
            limit = self.limits.max_mime_depth
            raise LimitExceeded(f"MIME nesting too deep to parse (limit {limit}, "
                                "parsers.max_mime_depth)") from None
        self._parts: list[Part] | None = None

    # -- headers ---------------------------------------------------------------------------

    def header(self, name: str, msg: Message | None = None) -> str | None:
        """The first *name* header of the message (or of *msg*), decoded and cleaned."""
        value = (msg or self.msg).get(name)
        return _clean(name, value) if value is not None else None

    def headers(self, name: str, msg: Message | None = None) -> list[str]:
        return [v for v in (_clean(name, x) for x in (msg or self.msg).get_all(name) or []) if v]

    @property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @property
    def from_(self) -> str:
        return self.header("From") or ""

    @property
    def content_type(self) -> str:
        return _real_type(self.msg)

    # -- parts -----------------------------------------------------------------------------

    @property
    def parts(self) -> list[Part]:
        """Every leaf part, and every ``message/*`` part as a whole, in document order."""
        if self._parts is None:
            self._parts = list(self._walk(self.msg, 0, [0]))
        return self._parts

    def _walk(self, msg: Message, depth: int, budget: list[int]) -> Iterator[Part]:
        self.deadline.check()
        if depth > self.limits.max_mime_depth:
            raise LimitExceeded(f"MIME nesting deeper than {self.limits.max_mime_depth} "
                                "(parsers.max_mime_depth)")
        ctype = _real_type(msg)
        if msg.is_multipart() and not ctype.startswith("message/"):
            for sub in msg.get_payload() or []:
                if isinstance(sub, Message):
                    yield from self._walk(sub, depth + 1, budget)
            return
        data = self._payload_bytes(msg)
        budget[0] += len(data)
        if budget[0] > self.limits.max_decoded_bytes:
            raise LimitExceeded(f"decoded parts larger than {self.limits.max_decoded_bytes} bytes "
                                "(parsers.max_decoded_bytes)")
        yield Part(content_type=ctype, filename=_filename(msg), charset=msg.get_content_charset(),
                   depth=depth, data=data, message=msg)
        if ctype in ("message/rfc822", "message/global") and msg.is_multipart():
            for sub in msg.get_payload() or []:
                if isinstance(sub, Message):
                    yield from self._walk(sub, depth + 1, budget)

    @staticmethod
    def _payload_bytes(msg: Message) -> bytes:
        """The part's body as bytes, transfer encoding undone, also for message/* parts."""
        cte = str(msg.get("Content-Transfer-Encoding", "")).lower()
        if msg.is_multipart():
            # A message/* part that Python parsed as an embedded message (for feedback-report
            # too, even when base64): serialise it back, then undo the transfer encoding.
            # message/delivery-status is a list of header blocks (RFC 3464): keep them all.
            payload = msg.get_payload()
            if not isinstance(payload, list):
                return b""
            blocks: list[Message] = [
                inner for inner in (payload[:100] if _real_type(msg) in (
                    "message/delivery-status", "message/global-delivery-status")
                    else payload[:1]) if isinstance(inner, Message)]
            if not blocks:
                return b""
            try:
                raw = b"\n".join(inner.as_bytes(policy=_RESERIALISE) for inner in blocks)
            except (ValueError, LookupError, UnicodeError, TypeError, MessageError):
                return b""  # a header Python cannot serialise again: nothing to read here
            return decode_transfer(raw, cte) if cte in ("base64", "quoted-printable") else raw
        if cte in ("base64", "quoted-printable"):
            payload = msg.get_payload(decode=False)
            if not isinstance(payload, str):
                return b""
            return decode_transfer(payload.encode("ascii", "replace"), cte)
        data = msg.get_payload(decode=True)  # 8bit bytes come back exactly as received
        return data if isinstance(data, bytes) else b""

    def body_text(self, limit: int = 1024 * 1024) -> str:
        """The human-readable text: text/plain parts (else text/html stripped), bounded."""
        texts = [p.text() for p in self.parts
                 if p.content_type == "text/plain" and not p.filename]
        if not texts:
            texts = [_strip_html(p.text()) for p in self.parts if p.content_type == "text/html"]
        if not texts and not self.msg.is_multipart():
            texts = [Part(self.content_type, None, self.msg.get_content_charset(), 0,
                          self._payload_bytes(self.msg), self.msg).text()]
        return "\n".join(texts)[:limit]


def _real_type(msg: Message) -> str:
    ctype = msg.get_content_type().lower()
    return "message/" + ctype.removeprefix(_PRIVATE) if ctype.startswith(_PRIVATE) else ctype


def _filename(msg: Message) -> str | None:
    try:
        name = msg.get_filename()
    except (TypeError, ValueError, LookupError):
        return None
    return clean_value(name) if name else None


_TAG = re.compile(r"<[^<>]{0,2000}>")
_SCRIPT_OPEN = re.compile(r"<(script|style)\b", re.I)
_SCRIPT_CLOSE = {5: re.compile(r"</style\s*+>", re.I), 6: re.compile(r"</script\s*+>", re.I)}


def drop_scripts(html: str) -> str:
    """``<script>...</script>`` and ``<style>...</style>`` elements replaced by a blank: what
    ``re.sub(r"<(script|style)\\b.*?</\\1\\s*>", " ", html, flags=re.I | re.S)`` gives, in
    linear time. That pattern rescanned to the end from every unclosed ``<script``."""
    out: list[str] = []
    last = pos = 0
    unclosed: set[int] = set()  # tag names (by length) with no closing tag further on
    while (opened := _SCRIPT_OPEN.search(html, pos)) is not None:
        name = len(opened.group(1))
        closed = None if name in unclosed else _SCRIPT_CLOSE[name].search(html, opened.end())
        if closed is None:
            unclosed.add(name)
            pos = opened.end()
            continue
        out += (html[last:opened.start()], " ")
        last = pos = closed.end()
    out.append(html[last:])
    return "".join(out)


def _strip_html(html: str) -> str:
    import html as html_module

    return html_module.unescape(_TAG.sub(" ", drop_scripts(html)))
