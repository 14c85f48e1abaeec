"""Shadowserver reports: CSV or CSV-in-ZIP attachments, one report per row.

A mail is Shadowserver's when an attachment is a CSV (plain or in a ZIP) whose header row is a
Shadowserver one (``timestamp`` and ``ip``/``src_ip`` and one of the usual companions), or when it
comes from ``*@shadowserver.org`` with a CSV or ZIP attachment, or with only a download link
(``dl.shadowserver.org``, also behind urldefense/safelinks rewriting).

The report type comes from the file name ``YYYY-MM-DD-<report_type>[-<n>]-<org>-<suffix>.csv``
(the ZIP member's, else the attachment's), else from the subject. All Shadowserver times are UTC,
so a zone-less ``timestamp`` is not flagged.

ZIPs are read from memory and never written anywhere, so member paths do not matter (a traversal
name only earns a warning). A ZIP is refused, with a review reason and without extracting
anything, when a member declares more than ``max_zip_uncompressed_bytes``, a compression ratio
above ``max_zip_ratio``, or the members together more than the limit. Declared sizes can lie, so
members are streamed through a counter that stops at the same limits. Rows stop at
``max_csv_rows`` (and reports at ``max_reports``) with a review reason saying the rest was not
read. ``csv.field_size_limit`` is process-global and left alone: an over-long field is a
``csv.Error`` for that row, a warning, and the reader goes on.

AbuseHub (abusehub.nl) mails carry two CSVs, their own "AbuseHubCsv" and the Shadowserver rows it
was made from: the Shadowserver one is read here, the other is skipped (listed in
``extra["skipped_attachments"]``), so one incident gives one report.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ...core.fields import (
    clean_ip,
    excerpt,
    find_urls,
    host_of,
    is_public_ip,
    parse_int,
    parse_time,
    unique,
)
from ...core.headers import parse_address
from ...core.mail import Mail, Part
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage

PREFIX = "shadowserver:"
NOT_ATTACHED = "Shadowserver report not attached: download link only"

MAX_ZIP_MEMBERS = 1000  # a central directory of a million entries costs seconds and memory
MAX_LINE_CHARS = 1024 * 1024  # a CSV line longer than this is skipped, not read into memory
MAX_CSV_ERRORS = 100  # then the file is given up on
MAX_ROW_FIELDS = 120  # of the row kept in extra["row"]
MAX_FIELD_CHARS = 512
MAX_WARNINGS = 50
_CHUNK = 64 * 1024

_IP_COLUMNS = ("ip", "src_ip", "source_ip")
_PORT_COLUMNS = ("src_port", "port", "source_port")
_COMPANIONS = {"asn", "src_asn", "geo", "src_geo", "hostname", "src_hostname", "port", "src_port",
               "protocol", "tag", "infection", "family", "region", "city"}
_EXTRA_COLUMNS = ("protocol", "tag", "infection", "family", "hostname", "asn", "src_asn", "geo",
                  "src_geo", "dst_ip", "dst_port", "http_host", "url", "application", "type")

_CSV_TYPES = {"text/csv", "application/csv", "text/comma-separated-values", "text/x-csv",
              "application/x-csv"}
_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}

_FILE_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}-(?P<type>[a-z][a-z0-9_]*)(?=[-.])", re.I)
_SUBJECT_TYPE = re.compile(  # scan_ssh, event4_sinkhole_http, scan6_ssh, botnet_drone, ...
    r"(?<![\w-])((?:scan6?|event[46]|population6?|device|botnet|sinkhole6?|cc|compromised|ddos"
    r"|dns|ssl|honeypot|darknet|sandbox|spam|drone|vulnerable|microsoft|ntp|amplification|ics"
    r"|iot)(?:_[a-z0-9]+)+|blocklist|blacklist|special)(?![\w])")
_SUBJECT_NAME = re.compile(r"Shadowserver\s+(?P<name>[^\]\[:]{3,120}?)\s*(?:\]|\bReport\b|$)",
                           re.I)
# Report names as Shadowserver writes them in subjects, for mails whose files carry no type.
_HUMAN_NAMES = {
    "botnet drone": "botnet_drone",
    "sinkhole http drone": "sinkhole_http_drone",
    "compromised website": "compromised_website",
    "accessible apple filing protocol": "scan_afp",
    "blocklist": "blocklist",
}
_TRAVERSAL = re.compile(r"(^|[\\/])\.\.([\\/]|$)|^[\\/]|^[a-z]:", re.I)


class _TooLarge(Exception):
    """A ZIP member inflated past its declared size or the configured limits."""


@dataclass
class _Context:
    """What one message's parse has gathered so far, and its budgets."""

    mail: Mail
    reporter_address: str | None
    reporter_org: str | None
    subject_type: str | None
    subject_name: str | None
    rows: int = 0
    reports: list[ParsedReport] = field(default_factory=list)
    review_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    stopped: bool = False  # a row or report limit was reached: read nothing more
    # the type another sender's notice states (a CERT's CSV in Shadowserver's columns), used
    # when neither the file name nor the subject names a Shadowserver report type
    fallback_hint: str | None = None

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)

    def review(self, text: str) -> None:
        if text not in self.review_reasons:
            self.review_reasons.append(text)


# -- the format, as the registry and the classifier know it ------------------------------

# Shadowserver legacy report names (before the scan_/event4_ families); see _PATTERNS.
SHADOWSERVER_VOCABULARY: dict[str, tuple[str, float]] = {
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
}
SHADOWSERVER_PATTERNS: tuple[tuple[str, str, float], ...] = (
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
)
SHADOWSERVER = Format("shadowserver", machine=True, vocabulary=SHADOWSERVER_VOCABULARY,
                      patterns=SHADOWSERVER_PATTERNS,
                      trusted_senders=(("Shadowserver", ("autoreports@shadowserver.org",)),))


class ShadowserverParser:
    name = "shadowserver"
    stage = Stage.STRUCTURAL
    formats = (SHADOWSERVER,)
    order = 60

    def matches(self, mail: Mail) -> bool:
        from_shadowserver = _from_shadowserver(mail)
        for part in mail.parts:
            kind = _kind(part)
            if kind is None:
                continue
            if from_shadowserver or (_FILE_NAME.match(_basename(part.name))
                                     and part.name.endswith((".csv", ".zip"))):
                return True
            if kind == "csv" and _is_shadowserver_header(_first_row(part.data[:8192])):
                return True
            if kind == "zip" and _zip_has_shadowserver_csv(part.data, mail):
                return True
        if from_shadowserver or "shadowserver" in mail.subject.lower():
            return bool(_download_links(mail))
        return False

    def parse(self, mail: Mail) -> ParseResult:
        address, org = _reporter(mail)
        ctx = _Context(mail=mail, reporter_address=address, reporter_org=org,
                       subject_type=_type_from_subject(mail.subject),
                       subject_name=_name_from_subject(mail.subject))
        from_shadowserver = _from_shadowserver(mail)
        if not from_shadowserver:
            from .cert import PREFIX as CERT_PREFIX
            from .cert import type_from, type_of_text

            stated = type_from(mail.subject) or type_of_text(mail.body_text(64 * 1024))
            ctx.fallback_hint = CERT_PREFIX + stated if stated else None
        found_attachment = False
        for part in mail.parts:
            if ctx.stopped:
                break
            kind = _kind(part)
            if kind == "csv":
                found_attachment = True
                _read_csv_part(part, ctx, trust_sender=from_shadowserver)
            elif kind == "zip":
                found_attachment = True
                _read_zip_part(part, ctx, trust_sender=from_shadowserver)
        result = ParseResult(disposition=Disposition.REPORT, format="shadowserver",
                             reports=ctx.reports, review_reasons=ctx.review_reasons)
        if not found_attachment:
            result.reports.append(_link_only_report(mail, ctx))
        elif not ctx.reports and not ctx.review_reasons:
            ctx.review("no Shadowserver rows with an IP address in the attachments")
        result.extra = {"files": ctx.files, "rows": ctx.rows, "warnings": ctx.warnings,
                        "skipped_attachments": ctx.skipped}
        return result


# -- detection ------------------------------------------------------------------------------


def _from_shadowserver(mail: Mail) -> bool:
    address = parse_address(mail.from_)[1].lower()
    return address.endswith("@shadowserver.org") or address.endswith(".shadowserver.org")


def _basename(name: str) -> str:
    return re.split(r"[\\/]", name)[-1]


def _kind(part: Part) -> str | None:
    """"csv", "zip" or None for a part."""
    name = part.name
    if part.content_type in _ZIP_TYPES or name.endswith(".zip") or (
            part.data[:4] == b"PK\x03\x04" and part.content_type == "application/octet-stream"):
        return "zip"
    if part.content_type in _CSV_TYPES or name.endswith(".csv"):
        return "csv"
    return None


def _first_row(data: bytes) -> list[str]:
    line = data.split(b"\n", 1)[0][:8192].decode("utf-8", "replace").lstrip("\ufeff")
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return []


def _is_shadowserver_header(columns: list[str]) -> bool:
    names = {c.strip().strip('"').lower() for c in columns}
    return ("timestamp" in names and bool(names.intersection(_IP_COLUMNS))
            and bool(names & _COMPANIONS))


def _zip_has_shadowserver_csv(data: bytes, mail: Mail) -> bool:
    """A cheap look into a ZIP: the first CSV member's first line, at most 8 KiB inflated."""
    if _zip_entry_count(data) > MAX_ZIP_MEMBERS:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist()[:20]:
                if info.is_dir() or not info.filename.lower().endswith(".csv"):
                    continue
                with archive.open(info) as member:
                    head = member.read(8192)
                return _is_shadowserver_header(_first_row(head))
    except _ZIP_ERRORS:
        return False
    return False


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
               EOFError, OSError, ValueError, zlib.error, struct.error, KeyError, IndexError)


def _zip_entry_count(data: bytes) -> int:
    """The entry count of the end-of-central-directory record (0 if there is none)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return 0
    (count,) = struct.unpack("<H", data[end + 10: end + 12])
    return 10**9 if count == 0xFFFF else count  # ZIP64: more than 65,534 entries, or hiding


# -- report type and reporter ---------------------------------------------------------------


def _type_from_name(name: str | None) -> str | None:
    m = _FILE_NAME.match(_basename(name or ""))
    return m.group("type").lower() if m else None


def _type_from_subject(subject: str) -> str | None:
    m = _SUBJECT_TYPE.search(subject)
    if m:
        return m.group(1)
    name = _name_from_subject(subject)
    if name:
        lowered = re.sub(r"\s+", " ", name.lower())
        for human, report_type in _HUMAN_NAMES.items():
            if lowered.endswith(human):
                return report_type
    return None


def _name_from_subject(subject: str) -> str | None:
    m = _SUBJECT_NAME.search(subject)
    return m.group("name").strip() if m else None


def _reporter(mail: Mail) -> tuple[str | None, str | None]:
    display, parsed = parse_address(mail.from_)
    address = parsed.lower() or None
    if _from_shadowserver(mail):
        return address, "Shadowserver"
    return address, mail.header("Organization") or display.strip() or None


# -- reading --------------------------------------------------------------------------------


def _read_csv_part(part: Part, ctx: _Context, trust_sender: bool) -> None:
    name = _basename(part.filename or "attachment.csv")
    charset = part.charset or "utf-8-sig"
    _read_csv(io.BytesIO(part.data), name, part.filename, charset, ctx, trust_sender)


def _read_zip_part(part: Part, ctx: _Context, trust_sender: bool) -> None:
    limits = ctx.mail.limits
    label = part.filename or "ZIP attachment"
    entries = _zip_entry_count(part.data)
    if entries > MAX_ZIP_MEMBERS:
        ctx.review(f"ZIP attachment {label} refused: more than {MAX_ZIP_MEMBERS} members")
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(part.data))
    except _ZIP_ERRORS as exc:
        ctx.review(f"ZIP attachment {label} unreadable: {exc.__class__.__name__}: {exc}")
        return
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        refusal = _zip_refusal(members, limits.max_zip_uncompressed_bytes, limits.max_zip_ratio)
        if refusal:
            ctx.review(f"ZIP attachment {label} refused, nothing extracted: {refusal}")
            return
        budget = [limits.max_zip_uncompressed_bytes]  # actual bytes, shared by all members
        for info in members:
            if ctx.stopped:
                return
            ctx.mail.deadline.check()
            if _TRAVERSAL.search(info.filename):
                ctx.warn(f"ZIP member name {info.filename[:200]!r} has a path; only its base "
                         "name is used (nothing is written to disk)")
            base = _basename(info.filename)
            if info.flag_bits & 0x1:
                ctx.review(f"ZIP member {base} in {label} is encrypted: not read")
                continue
            try:
                stream = _Bounded(archive.open(info), info.compress_size, budget, limits)
            except _ZIP_ERRORS as exc:
                ctx.review(f"ZIP member {base} in {label} unreadable: "
                           f"{exc.__class__.__name__}: {exc}")
                continue
            with stream:
                if not base.lower().endswith(".csv"):
                    head = _read_head(stream, ctx, label, base)
                    if head is None or not _is_shadowserver_header(_first_row(head)):
                        ctx.skipped.append(f"{label}:{base}")
                        continue
                    source: IO[bytes] = io.BufferedReader(_Prefixed(head, stream))
                else:
                    source = io.BufferedReader(stream)
                _read_csv(source, base, label, "utf-8-sig", ctx, trust_sender, zip_name=label)


def _read_head(stream: _Bounded, ctx: _Context, label: str, base: str) -> bytes | None:
    try:
        return stream.read(8192)
    except (_TooLarge, *_ZIP_ERRORS) as exc:
        ctx.review(f"ZIP member {base} in {label}: {exc}")
        return None


def _zip_refusal(members: list[zipfile.ZipInfo], max_bytes: int, max_ratio: int) -> str | None:
    """Why a ZIP must not be opened at all, judged by what its members declare."""
    total = 0
    for info in members:
        if info.file_size > max_bytes:
            return (f"member {_basename(info.filename)} declares {info.file_size} bytes "
                    f"uncompressed, limit {max_bytes} (parsers.max_zip_uncompressed_bytes)")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > max_ratio:
            return (f"member {_basename(info.filename)} declares a compression ratio of "
                    f"{ratio:.0f}:1, limit {max_ratio}:1 (parsers.max_zip_ratio)")
        total += info.file_size
        if total > max_bytes:
            return (f"members declare {total} bytes or more uncompressed in all, limit "
                    f"{max_bytes} (parsers.max_zip_uncompressed_bytes)")
    return None


class _Bounded(io.RawIOBase):
    """A ZIP member's stream that stops past the size and ratio limits, whatever it declared."""

    def __init__(self, inner: IO[bytes], compressed: int, budget: list[int], limits: Any) -> None:
        self._inner = inner
        self._budget = budget
        self._max_ratio = limits.max_zip_ratio
        self._max_bytes = limits.max_zip_uncompressed_bytes
        self._allowed = max(compressed, 1) * limits.max_zip_ratio
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(min(len(view), _CHUNK))
        self._read += len(data)
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise _TooLarge(f"inflates past {self._max_bytes} bytes in all "
                            "(parsers.max_zip_uncompressed_bytes), whatever it declared; "
                            "reading stopped")
        if self._read > self._allowed:
            raise _TooLarge(f"inflates past a compression ratio of {self._max_ratio}:1 "
                            "(parsers.max_zip_ratio), whatever it declared; reading stopped")
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _Prefixed(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, head: bytes, rest: IO[bytes] | io.RawIOBase) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view)) or b""
        view[: len(data)] = data
        return len(data)


def _lines(text: IO[str], ctx: _Context, where: str) -> Iterator[str]:
    """Lines of at most MAX_LINE_CHARS; a longer one is skipped (and said so)."""
    while True:
        line = text.readline(MAX_LINE_CHARS)
        if not line:
            return
        if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
            ctx.warn(f"{where}: a line longer than {MAX_LINE_CHARS} characters was skipped")
            while True:
                ctx.mail.deadline.check()
                rest = text.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith("\n"):
                    break
            continue
        yield line


def _read_csv(stream: IO[bytes], name: str, container: str | None, charset: str,
              ctx: _Context, trust_sender: bool, zip_name: str | None = None) -> None:
    where = f"{zip_name}:{name}" if zip_name else name
    try:
        text = io.TextIOWrapper(stream, encoding=_codec(charset), errors="replace", newline="")
    except LookupError:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(_lines(text, ctx, where))
    report_type = (_type_from_name(name) or _type_from_name(container) or ctx.subject_type)
    header: list[str] | None = None
    errors = 0
    limits = ctx.mail.limits
    try:
        while True:
            if ctx.rows % 256 == 0:
                ctx.mail.deadline.check()
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                errors += 1
                ctx.warn(f"{where} line {reader.line_num}: unreadable CSV row skipped ({exc})")
                if errors >= MAX_CSV_ERRORS:
                    ctx.review(f"{where}: {errors} unreadable CSV rows; the rest was not read")
                    return
                continue
            if header is None:
                if not row:
                    continue
                header = [c.strip().lstrip("\ufeff").lower() for c in row]
                if not _is_shadowserver_header(header):
                    if not (trust_sender and set(header).intersection(_IP_COLUMNS)):
                        ctx.skipped.append(where)
                        return
                    ctx.warn(f"{where}: header row not a known Shadowserver one")
                ctx.files.append(where)
                if report_type is None:
                    ctx.warn(f"{where}: report type not found in the file name or subject")
                continue
            if not any(cell.strip() for cell in row):
                continue
            if ctx.rows >= limits.max_csv_rows:
                ctx.review(f"more than {limits.max_csv_rows} CSV rows: the rest was not read "
                           "(parsers.max_csv_rows)")
                ctx.stopped = True
                return
            if len(ctx.reports) >= limits.max_reports:
                ctx.review(f"more than {limits.max_reports} reports in one message: the rest "
                           "was not read (parsers.max_reports)")
                ctx.stopped = True
                return
            ctx.rows += 1
            report = _row_report(header, row, report_type, where, reader.line_num, ctx)
            if report is not None:
                ctx.reports.append(report)
    except _TooLarge as exc:
        ctx.review(f"ZIP member {where} {exc}")
    except _ZIP_ERRORS as exc:
        ctx.review(f"{where} unreadable after {ctx.rows} rows: {exc.__class__.__name__}: {exc}")
    finally:
        text.detach()


def _codec(charset: str) -> str:
    name = charset.strip().strip('"').lower()
    return "utf-8-sig" if name in ("utf-8", "utf8", "us-ascii", "ascii", "") else name


def _row_report(header: list[str], row: list[str], report_type: str | None, where: str,
                line: int, ctx: _Context) -> ParsedReport | None:
    values = {k: v.strip() for k, v in zip(header, row, strict=False)
              if k and v.strip() not in ("", "-")}
    warnings: list[str] = []
    if len(row) != len(header):
        warnings.append(f"row has {len(row)} fields, the header {len(header)}")
    raw_ip = next((values[c] for c in _IP_COLUMNS if values.get(c)), None)
    ip = clean_ip(raw_ip)
    if ip is None:
        ctx.warn(f"{where} line {line}: no IP address in the row; skipped")
        return None
    if not is_public_ip(ip):
        warnings.append(f"source IP {ip} is not a public address")
    port = None
    for column in _PORT_COLUMNS:
        port = parse_int(values.get(column))
        if port is not None:
            break
    if port is not None and not 0 <= port <= 65535:
        warnings.append(f"port {port} out of range; dropped")
        port = None
    occurred_raw = values.get("timestamp") or None
    occurred_at, _zone_stated = parse_time(occurred_raw)  # Shadowserver times are all UTC
    if occurred_raw and occurred_at is None:
        warnings.append(f"timestamp {occurred_raw[:60]!r} unreadable")
    elif not occurred_raw:
        warnings.append("row without a timestamp")
    extra: dict[str, Any] = {"report_type": report_type, "file": where, "line": line}
    for column in _EXTRA_COLUMNS:
        if values.get(column):
            extra[column] = values[column][:MAX_FIELD_CHARS]
    extra["row"] = {k: v[:MAX_FIELD_CHARS] for k, v in list(values.items())[:MAX_ROW_FIELDS]
                    if v}
    count = parse_int(values.get("count"))
    url_value = values.get("url", "")
    urls = find_urls(url_value, limit=5) if url_value.lower().startswith(("http:", "https:")) \
        else []
    return ParsedReport(
        format="shadowserver",
        type_hint=PREFIX + report_type if report_type else (
            ctx.fallback_hint or PREFIX + "unknown"),
        source_ip=ip,
        source_port=port,
        occurred_at=occurred_at,
        occurred_raw=occurred_raw,
        urls=urls,
        reporter_address=ctx.reporter_address,
        reporter_org=ctx.reporter_org,
        evidence=excerpt(", ".join(f"{k}={v}" for k, v in extra["row"].items()), 1024),
        incidents=count if count and count > 0 else 1,
        warnings=warnings,
        extra=extra,
    )


# -- download link only ---------------------------------------------------------------------


def _download_links(mail: Mail) -> list[str]:
    links = []
    for url in find_urls(mail.body_text(256 * 1024), limit=200):
        if host_of(url) == "dl.shadowserver.org":
            links.append(url)
        elif "dl.shadowserver.org" in unquote(url).lower():
            links.append(_unwrap(url) or url)
    return unique(links)


def _unwrap(url: str) -> str | None:
    """The target of a safelinks / urldefense rewritten URL, where it can be read back."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    target = parse_qs(parts.query).get("url") or parse_qs(parts.query).get("u")
    if target and target[0].lower().startswith("http"):
        return target[0]
    return _urldefense_v3(url)


_URLDEFENSE_V3 = re.compile(r"__(https?://)")


def _urldefense_v3(url: str) -> str | None:
    """What ``re.search(r"__(https?://.+?)__;", url)`` captures, in linear time: that pattern
    rescanned to the end of the line from every ``__http`` when no ``__;`` follows."""
    pos = 0
    while (start := _URLDEFENSE_V3.search(url, pos)) is not None:
        line_end = url.find("\n", start.end())
        line_end = len(url) if line_end < 0 else line_end
        end = url.find("__;", start.end() + 1, line_end)
        if end >= 0:
            return url[start.start(1):end]
        pos = line_end  # no later start on this line has a "__;" after it either
    return None


def _link_only_report(mail: Mail, ctx: _Context) -> ParsedReport:
    report_type = ctx.subject_type
    occurred_at, _ = parse_time(mail.header("Date"))
    extra: dict[str, Any] = {"report_type": report_type, "report_name": ctx.subject_name}
    report = ParsedReport(
        format="shadowserver",
        type_hint=PREFIX + (report_type or "unknown"),
        occurred_at=occurred_at,
        occurred_raw=mail.header("Date"),
        urls=_download_links(mail),
        reporter_address=ctx.reporter_address,
        reporter_org=ctx.reporter_org,
        evidence=excerpt(mail.body_text(64 * 1024), 2048),
        review_reasons=[NOT_ATTACHED],
        extra=extra,
    )
    if occurred_at is not None:
        report.inferred.append("occurred_at")
        report.warnings.append("no rows: the time is the message's Date")
    return report


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [ShadowserverParser()]
