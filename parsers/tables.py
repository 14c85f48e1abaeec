"""One bounded reader of tabular evidence, wherever a notice puts it.

CERTs, scanners and blocklists send the affected hosts as a table: pipe-, semicolon-, comma- or
tab-separated lines with a header row (``Format: ASN | IP | Timestamp (UTC) | Port``), columns
aligned with blanks, one ``Label: value`` block per host (German, English, Dutch, Portuguese,
French, Lithuanian ... labels), one line per host without a header (``192.0.2.1:11211/udp
2026-11-19 22:01:04 UTC``), or a CSV/TSV, JSON or XML file attached under any declared type
(``text/csv``, ``application/octet-stream``, ``text/plain``), zipped or gzipped.

:func:`read_tables` returns every :class:`Table` a message holds, each a list of rows of
(column label -> value). Labels are kept as written (stripped); the caller decides what a
column means. Everything is bounded: lines and cells are cut, rows stop at
``max_csv_rows``, ZIP and gzip members are refused past the configured uncompressed size and
ratio (the same limits as ``parsers/shadowserver.py``), JSON and XML nesting is bounded, and
XML is read with ``defusedxml`` when it is installed (no entities, no DTDs otherwise).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.config import ParserLimits
from ..core.fields import IPV4_RE, IPV6_RE, find_ips, refang
from ..core.mail import Mail, Part, _strip_html

MAX_LINE_CHARS = 4096  # a longer line is cut
MAX_CELL_CHARS = 512
MAX_COLUMNS = 64
MAX_LABEL_CHARS = 48
MAX_TEXT_CHARS = 2 * 1024 * 1024  # of one text part or file read for tables
MAX_FILES = 50  # attachments and archive members read per message
MAX_JSON_DEPTH = 12
MAX_XML_ELEMENTS = 100_000
_CHUNK = 64 * 1024

_DELIMITERS = ("|", ";", "\t", ",")
_BLANKS = re.compile(r"\s{2,}")
_FORMAT_PREFIX = re.compile(r"^\s*(?:format|formato|formaat|columns?|spalten|felder|fields)\s*:\s*",
                            re.I)
# "Label: value", "Label : value", "- Label: value"; the label holds no digit-colon (a time)
_KEY_VALUE = re.compile(r"^\s{0,12}(?:[-*\u2022>]\s{1,4})?(?P<key>[^\s:|;,=][^:|;=]{0,46}?)"
                        r"\s{0,20}:(?!//)\s{0,40}(?P<value>\S.{0,1000})$")
_NOT_A_LABEL = re.compile(r"^\d{1,2}$|https?$|hxxps?$|ftp$|mailto$", re.I)
_URL = re.compile(r"\bh(?:tt|xx)ps?\[?:", re.I)
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_DATEISH = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{4}")
_TIMEISH = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{4}|\d{1,2}:\d{2}")
_IP_PORT = re.compile(r"\[?(?P<ip>[0-9A-Fa-f:.]{7,45})\]?:(?P<port>\d{1,5})"
                      r"(?:/(?P<proto>tcp|udp))?\b", re.I)
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]{2,45})\]|(?P<v4>\d{1,3}(?:\.\d{1,3}){3})):"
                        r"(?P<port>\d{1,5})\b")


@dataclass
class Table:
    """Rows of (column label -> value) read from one place in a message."""

    source: str  # "text", "aligned", "keyvalue", "lines", "csv:<file>", "json:<file>", ...
    rows: list[dict[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)


@dataclass
class _Budget:
    limits: ParserLimits
    rows: int = 0
    files: int = 0
    warnings: list[str] = field(default_factory=list)

    def take(self, n: int = 1) -> bool:
        self.rows += n
        return self.rows <= self.limits.max_csv_rows


def _cell(value: Any) -> str:
    return str(value).strip().strip('"').strip()[:MAX_CELL_CHARS]


def has_ip(value: str) -> bool:
    return bool(IPV4_RE.search(value) or IPV6_RE.search(value))


# -- text ------------------------------------------------------------------------------------


def text_lines(text: str) -> list[str]:
    """The lines of *text*, each cut; quoted lines (``> ...``, an earlier message) blank."""
    return ["" if line.lstrip().startswith(">") else line[:MAX_LINE_CHARS].rstrip("\r")
            for line in text[:MAX_TEXT_CHARS].splitlines()]


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter in ",;":
        try:
            cells = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            cells = line.split(delimiter)
    else:
        cells = line.split(delimiter)
    if delimiter == "|":  # "| a | b |"
        if cells and not cells[0].strip():
            cells = cells[1:]
        if cells and not cells[-1].strip():
            cells = cells[:-1]
    return [_cell(c) for c in cells[:MAX_COLUMNS]]


def _is_label(cell: str) -> bool:
    return (0 < len(cell) <= MAX_LABEL_CHARS and not has_ip(cell) and not _TIMEISH.search(cell)
            and any(ch.isalpha() for ch in cell))


def _header_cells(line: str, delimiter: str) -> list[str] | None:
    if delimiter != "\t" and line.count(delimiter) < 1:
        return None
    if delimiter == "\t" and "\t" not in line:
        return None
    cells = _split(_FORMAT_PREFIX.sub("", line), delimiter)
    labels = [c for c in cells if c]
    if len(cells) < 2 or len(labels) < 2 or not all(_is_label(c) for c in labels):
        return None
    return cells


def delimited_tables(text: str) -> list[Table]:
    """Tables of lines split by ``|``, ``;``, tab or ``,`` under a header row of labels, and
    lines of such cells without a header when one of their cells is an IP."""
    lines = text_lines(text)
    tables: list[Table] = []
    used: set[int] = set()
    for delimiter in _DELIMITERS:
        n = 0
        while n < len(lines):
            if n in used:
                n += 1
                continue
            header = _header_cells(lines[n], delimiter)
            if header is None:
                n += 1
                continue
            rows: list[dict[str, str]] = []
            m = n + 1
            while m < len(lines) and m not in used:
                line = lines[m]
                if not line.strip():
                    if rows:
                        break
                    m += 1
                    continue
                cells = _split(line, delimiter)
                if abs(len(cells) - len(header)) > 1 or len(cells) < 2:
                    break
                rows.append({(header[i] or f"column {i + 1}"): cells[i]
                             for i in range(min(len(header), len(cells)))})
                m += 1
            if rows and any(has_ip(v) for r in rows for v in r.values()):
                tables.append(Table("text", rows, header))
                used.update(range(n, m))
                n = m
            else:  # a block without an address: none of its lines starts a table either
                n = max(m, n + 1)
    # header-less lines: three or more cells, one of them an IP, same shape as their neighbours
    for delimiter in ("|", ";", "\t"):
        rows = []
        for n, line in enumerate(lines):
            if n in used or line.count(delimiter) < 2:
                continue
            cells = _split(line, delimiter)
            if any(has_ip(c) and clean_cell_ip(c) for c in cells):
                rows.append({f"column {i + 1}": c for i, c in enumerate(cells)})
                used.add(n)
        if rows:
            tables.append(Table("text", rows))
    return tables


def clean_cell_ip(cell: str) -> str | None:
    """The IP a cell is (an IP, ``[v6]``, ``ip:port``, defanged), else None."""
    from ..core.fields import clean_ip

    text = refang(cell.strip())
    if not text or " " in text.strip():
        return None
    text = re.sub(r"/(?:32|128)$", "", text)  # a listing of one address: 192.0.2.1/32
    m = _IP_PORT.fullmatch(text)
    if m:
        return clean_ip(m.group("ip"))
    return clean_ip(text)


def host_port(cell: str) -> int | None:
    """The port of a cell written ``192.0.2.1:443`` or ``[2001:db8::1]:443``, else None."""
    m = _HOST_PORT.match(refang(cell.strip()))
    if not m:
        return None
    port = int(m.group("port"))
    return port if 0 < port < 65536 else None


def aligned_tables(text: str) -> list[Table]:
    """Columns separated by two or more blanks (plain text or HTML tables made text): a header
    row of labels, then rows of as many cells."""
    lines = text_lines(text)
    tables: list[Table] = []
    n = 0
    while n < len(lines):
        header = [c.strip() for c in _BLANKS.split(lines[n].strip())]
        if len(header) < 3 or not all(_is_label(c) for c in header):
            n += 1
            continue
        rows = []
        m = n + 1
        while m < len(lines):
            cells = [c.strip() for c in _BLANKS.split(lines[m].strip())]
            if len(cells) != len(header):
                break
            rows.append(dict(zip(header, (_cell(c) for c in cells), strict=True)))
            m += 1
        if rows and any(has_ip(v) for r in rows for v in r.values()):
            tables.append(Table("aligned", rows, header))
            n = m
        else:
            n = max(m, n + 1)
    return tables


def keyvalue_blocks(text: str) -> list[Table]:
    """``Label: value`` lines, one block per host: a block ends where a label comes again, or
    at a line that is neither a label line nor blank after the block had an IP."""
    rows: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text_lines(text):
        m = _KEY_VALUE.match(line)
        key = m.group("key").strip() if m else ""
        value = m.group("value") if m else ""
        if not key or _NOT_A_LABEL.search(key) or not _is_label(key) or "  " in key \
                or _YEAR.search(key):
            # "  Endpoint   192.0.2.1:27017" (an HTML table made text): label, value
            key = ""
            pair = _BLANKS.split(line.strip(), maxsplit=1)
            if line.startswith((" ", "\t")) and len(pair) == 2 and _is_label(pair[0]) \
                    and len(pair[0]) <= 30 and "  " not in pair[1].strip():
                key, value = pair[0].strip(), pair[1]
        if key and not _NOT_A_LABEL.search(key) and _is_label(key):
            if key in current:
                rows.append(current)
                current = {}
            current[key] = _cell(value)
            continue
        if not line.strip():
            continue
        if current:
            rows.append(current)
            current = {}
    if current:
        rows.append(current)
    rows = [r for r in rows if any(has_ip(v) or _URL.search(v) for v in r.values())]
    return [Table("keyvalue", rows)] if rows else []


def host_lines(text: str) -> list[Table]:
    """Lines naming one host (``ip``, ``ip:port``, ``[v6]:port``) and a time, no header:
    ``192.0.2.1:123 (udp) - 2026-11-20 23:30:41 -0300 - monlist``."""
    rows = []
    for line in text_lines(text):
        if not _DATEISH.search(line):
            continue
        ips = find_ips(line, limit=3)
        if len(ips) != 1:
            continue
        row = {"line": _cell(line)}
        m = _IP_PORT.search(refang(line))
        if m:
            row["port"] = m.group("port")
        rows.append(row)
    return [Table("lines", rows)] if rows else []


def text_tables(text: str) -> list[Table]:
    """Every table in a text: delimited, aligned, key/value blocks, host lines."""
    return [*delimited_tables(text), *aligned_tables(text), *keyvalue_blocks(text)]


# -- files -----------------------------------------------------------------------------------


def _sniff_csv(text: str) -> str | None:
    first = next((line for line in text_lines(text[:8192])
                  if line.strip() and not line.startswith("#")), "")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter, count = max(counts.items(), key=lambda kv: kv[1])
    return delimiter if count >= 1 else None


def csv_table(text: str, source: str, budget: _Budget) -> Table | None:
    """A CSV/TSV file with a header row: one row per line, bounded."""
    delimiter = _sniff_csv(text)
    if delimiter is None:
        return None
    lines = (line[:MAX_LINE_CHARS] for line in text[:MAX_TEXT_CHARS].splitlines()
             if line.strip() and not line.startswith("#"))  # "# generated ...": a comment
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [_cell(c) for c in next(reader)][:MAX_COLUMNS]
    except (StopIteration, csv.Error):
        return None
    if len(header) < 2 or not all(_is_label(c) for c in header if c):
        return None
    table = Table(source, header=header)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            continue
        if not budget.take():
            budget.warnings.append(f"{source}: rows past parsers.max_csv_rows not read")
            break
        table.rows.append({header[i] or f"column {i + 1}": _cell(cells[i])
                           for i in range(min(len(header), len(cells)))})
    return table if table.rows else None


def _flatten(value: Any, prefix: str, out: dict[str, str], depth: int) -> None:
    if depth > MAX_JSON_DEPTH or len(out) >= MAX_COLUMNS:
        return
    if isinstance(value, dict):
        for k, v in list(value.items())[:MAX_COLUMNS]:
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            out[prefix] = _cell(", ".join(str(v) for v in value[:20]))
        else:  # a list of objects ("address": [{"ip": ...}]): the first as the prefix itself
            for n, item in enumerate(value[:5]):
                _flatten(item, prefix if n == 0 else f"{prefix}.{n}", out, depth + 1)
    elif value is not None:
        out[prefix] = _cell(value)


def _records(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """The objects of a JSON document that look like records: a list of objects, or the
    lists of objects under a key (``{"events": [...]}``), else the document itself."""
    if depth > MAX_JSON_DEPTH:
        return
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item
            elif isinstance(item, list):
                yield from _records(item, depth + 1)
    elif isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v
                 and all(isinstance(x, dict) for x in v)]
        if lists:
            for item in lists:
                yield from _records(item, depth + 1)
        else:
            yield value


def json_table(text: str, source: str, budget: _Budget) -> Table | None:
    stripped = text.strip()[:MAX_TEXT_CHARS]
    if not stripped.startswith(("[", "{")):
        return None
    try:
        doc = json.loads(stripped)
    except (ValueError, RecursionError):
        # JSON Lines: one object per line
        doc = []
        for line in stripped.splitlines()[: budget.limits.max_csv_rows]:
            try:
                doc.append(json.loads(line))
            except (ValueError, RecursionError):
                return None
    if isinstance(doc, dict) and "policies" in doc and "organization-name" in doc:
        return None  # an SMTP TLS report (RFC 8460): no evidence of abuse
    table = Table(source)
    for record in _records(doc):
        if not budget.take():
            budget.warnings.append(f"{source}: rows past parsers.max_csv_rows not read")
            break
        row: dict[str, str] = {}
        _flatten(record, "", row, 0)
        if row:
            table.rows.append(row)
    return table if table.rows else None


def xml_table(data: bytes, source: str, budget: _Budget) -> Table | None:
    """Elements whose children are all leaves become rows (``<event><ip>..</ip>...</event>``)."""
    try:
        from defusedxml import ElementTree as SafeET

        root = SafeET.fromstring(data[:MAX_TEXT_CHARS])
    except ImportError:
        if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data[:MAX_TEXT_CHARS].upper():
            return None
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(data[:MAX_TEXT_CHARS])
        except ET.ParseError:
            return None
    except Exception:  # defusedxml refuses entities and DTDs; a parse error: nothing to read
        return None
    if _local(root.tag).lower() == "feedback":  # a DMARC aggregate report: no evidence of abuse
        return None
    table = Table(source)
    seen = 0
    for element in root.iter():
        seen += 1
        if seen > MAX_XML_ELEMENTS:
            break
        children = list(element)
        if len(children) < 2 or any(len(list(c)) for c in children):
            continue
        row = {_local(c.tag): _cell(c.text or "") for c in children[:MAX_COLUMNS]}
        row.update({_local(k): _cell(v) for k, v in list(element.attrib.items())[:8]})
        if not budget.take():
            break
        table.rows.append(row)
    return table if table.rows else None


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1][:MAX_LABEL_CHARS]


def _unzip(data: bytes, name: str, budget: _Budget) -> Iterator[tuple[str, bytes]]:
    limits = budget.limits
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()[:MAX_FILES]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        budget.warnings.append(f"{name}: not a readable ZIP")
        return
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        ratio = info.file_size / max(1, info.compress_size)
        total += info.file_size
        if (info.file_size > limits.max_zip_uncompressed_bytes or ratio > limits.max_zip_ratio
                or total > limits.max_zip_uncompressed_bytes):
            budget.warnings.append(f"{name}: member {info.filename[:100]!r} refused: past "
                                   "parsers.max_zip_uncompressed_bytes or max_zip_ratio")
            continue
        try:
            with archive.open(info) as member:
                out = _read_bounded(member, info.file_size, info.compress_size, limits)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError, zlib.error):
            budget.warnings.append(f"{name}: member {info.filename[:100]!r} unreadable")
            continue
        if out is None:
            budget.warnings.append(f"{name}: member {info.filename[:100]!r} inflated past its "
                                   "declared size or the limits")
            continue
        yield info.filename[:200], out


def _read_bounded(stream: Any, declared: int | None, compressed: int,
                  limits: ParserLimits) -> bytes | None:
    cap = min(limits.max_zip_uncompressed_bytes, max(1, compressed) * limits.max_zip_ratio)
    if declared is not None:
        cap = min(cap, declared)
    chunks, size = [], 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(data: bytes, name: str, budget: _Budget) -> bytes | None:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = _read_bounded(stream, None, len(data), budget.limits)
    except (OSError, EOFError, zlib.error, ValueError):
        budget.warnings.append(f"{name}: not a readable gzip file")
        return None
    if out is None:
        budget.warnings.append(f"{name}: gzip inflated past parsers.max_zip_uncompressed_bytes "
                               "or max_zip_ratio")
    return out


def _decode(data: bytes, charset: str | None = None) -> str:
    for encoding in (charset, "utf-8-sig", "cp1252"):
        if not encoding:
            continue
        try:
            return data[:MAX_TEXT_CHARS].decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data[:MAX_TEXT_CHARS].decode("latin-1")


def file_tables(data: bytes, name: str, budget: _Budget, charset: str | None = None,
                depth: int = 0) -> list[Table]:
    """The tables of one file, by its content (never its declared type): ZIP, gzip, JSON, XML,
    CSV/TSV."""
    budget.files += 1
    if budget.files > MAX_FILES or depth > 2:
        return []
    if data[:4] == b"PK\x03\x04":
        return [t for member, content in _unzip(data, name, budget)
                for t in file_tables(content, member, budget, None, depth + 1)]
    if data[:2] == b"\x1f\x8b":
        content = _gunzip(data, name, budget)
        inner = name[:-3] if name.endswith(".gz") else name
        return file_tables(content, inner, budget, None, depth + 1) if content else []
    head = data[:512].lstrip()
    if head.startswith((b"<?xml", b"<")):
        table = xml_table(data, f"xml:{name}", budget)
        return [table] if table else []
    text = _decode(data, charset)
    if text.lstrip().startswith(("[", "{")):
        table = json_table(text, f"json:{name}", budget)
        return [table] if table else []
    table = csv_table(text, f"csv:{name}", budget)
    return [table] if table else []


# -- a message -------------------------------------------------------------------------------


def body_texts(mail: Mail) -> list[str]:
    """The readable text of a message: its inline text/plain parts, else its HTML made text."""
    texts = [p.text()[:MAX_TEXT_CHARS] for p in mail.parts
             if p.content_type == "text/plain" and not p.filename]
    if not texts:
        texts = [_strip_html(p.text()[:MAX_TEXT_CHARS]) for p in mail.parts
                 if p.content_type == "text/html" and not p.filename]
    return texts


def is_attachment(part: Part) -> bool:
    if part.filename:
        return True
    return part.content_type not in ("text/plain", "text/html") and \
        not part.content_type.startswith(("multipart/", "message/", "image/"))


def read_tables(mail: Mail, limits: ParserLimits | None = None,
                warnings: list[str] | None = None) -> list[Table]:
    """Every table in *mail*: its attachments' (any declared type) first, then the text's."""
    budget = _Budget(limits or mail.limits)
    tables: list[Table] = []
    for part in mail.parts:
        if not is_attachment(part) or part.content_type.startswith("image/"):
            continue
        if part.content_type in ("application/pdf",):
            continue
        tables += file_tables(part.data, part.filename or part.content_type, budget, part.charset)
    for text in body_texts(mail):
        tables += text_tables(text)
    if warnings is not None:
        warnings.extend(budget.warnings)
    return tables
