"""ACNS XML copyright notices (the ACNS 2.0 schema): one report per ``<Infringement>``.

Where the XML is::

    text/plain body, PGP clear-signed   "- ----Start ACNS XML" ... "- ----End ACNS XML" (the
                                        markers dash-escaped once or twice), or bare
                                        <?xml ...</Infringement>
    attachment                          application/xml, text/xml or *.xml (IP-Echelon sends the
                                        same document inline and attached: one report, not two)
    text/html                           escaped (&lt;Infringement ...) or raw

A document is parsed with defusedxml, entities forbidden (a billion-laughs or external-entity
document is refused at its first declaration: nothing is expanded, nothing fetched); a DOCTYPE
that declares no entity is let through, as it is harmless (expat fetches nothing). Namespaces
(``http://www.acns.net/ACNS``, ``http://www.acns.net``, none, prefixed) and the case of element
names are ignored. A document that is not well-formed, too large or refused still gives a
report: its fields are read with a regex over the text, and a person is asked to look.

The human text beside the XML is checked for the 512(c)(3)(A) elements (``dmca_elements`` in
extra, as in ``parsers/dmca.py``) but never flagged: P2P notices to an access provider are
512(a) matters, where those elements are not what decides.

MarkMonitor's ``<InvestigationInfo>`` (one report per ``Case``) is read as its senders' notes
describe it (no sample was at hand to check): its dates are DD/MM/YYYY, ambiguous when both
numbers are 12 or less, so read that way and flagged.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parseaddr
from typing import Protocol
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden

from ...core.fields import (
    clean_ip,
    domains_of,
    excerpt,
    find_ips,
    parse_int,
    parse_time,
    refang,
    unique,
)
from ...core.headers import parse_address
from ...core.mail import Mail, Part, decode_text
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage
from .dmca import dmca_elements, notice_text, undo_dash_escaping

MAX_PART_BYTES = 4 * 1024 * 1024  # of one part, scanned for XML (real notices: under 10 KiB)
MAX_DOC_CHARS = 512 * 1024  # of one XML document (real: 2-3 KiB)
MAX_DOCUMENTS = 100  # per message (real: 1-2)
MAX_NODES = 200  # elements read under one path (Content/Item, CaseList/Case)
MAX_ITEMS = 50  # content items kept in extra
MAX_VALUE_CHARS = 1000

_ROOTS = ("infringement", "investigationinfo")
_DETECT = re.compile(rb"<(?:[\w.-]{1,40}:)?(?:infringement|investigationinfo)\b|"
                     rb"&lt;(?:[\w.-]{1,40}:)?infringement\b|start\s+acns\s+xml", re.I)
_ROOT_START = re.compile(r"<(?:[\w.-]{1,40}:)?(?P<name>infringement|investigationinfo)(?=[\s/>])",
                         re.I)
_XML_START = re.compile(r"<\?xml\b|<!DOCTYPE\b|^-{2,}\s*start\s+acns\s+xml|"
                        r"<(?:[\w.-]{1,40}:)?(?:infringement|investigationinfo)(?=[\s/>])",
                        re.I | re.M)
_MARKER = re.compile(r"^-{2,}\s*start\s+acns\s+xml", re.I | re.M)
_XML_DECL = re.compile(r"<\?xml\b[^>]{0,400}\?>", re.I)
_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]{0,300}?encoding\s*=\s*[\"']([\w.:-]{1,40})[\"']")
_SCHEMA_VERSION = re.compile(r"/v(\d+(?:\.\d+)*)/", re.I)
_HTML_TAG = re.compile(r"<[^<>]{0,2000}>")
_URL_LIKE = re.compile(r"^(?:https?|ftp)://\S+$", re.I)
_HOST_LIKE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+"
                        r"[a-z][a-z0-9-]{0,62}$", re.I)
_DMY = re.compile(r"^\s*(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})(?:[ T]+(?P<h>\d{1,2}):"
                  r"(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*+(?P<ampm>[AP]M)?)?\s*+"
                  r"(?P<zone>Z|UTC|GMT|[+-]\d{2}:?\d{2})?\s*$", re.I)
_P2P = {"p2p", "bittorrent", "torrent", "gnutella", "gnutella2", "edonkey", "edonkey2000",
        "ed2k", "emule", "kad", "ares", "fasttrack", "kazaa", "directconnect", "dc++",
        "soulseek", "winmx", "limewire", "frostwire", "bearshare", "utorrent", "vuze", "azureus"}
_WEB = {"http", "https", "web", "www", "website", "streaming", "cyberlocker", "hosting"}
_USENET = {"usenet", "nntp", "newsgroup", "newsgroups", "news"}


# -- a namespace-free view of a document: the parsed tree, or a regex over broken text ------


class Node(Protocol):
    def text(self, path: str) -> str | None: ...

    def attr(self, path: str, name: str) -> str | None: ...

    def nodes(self, path: str) -> list[Node]: ...


def _local(name: object) -> str:
    return str(name).rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower() if isinstance(name, str) \
        else ""


def _value(text: str | None) -> str | None:
    if text is None:
        return None
    value = " ".join(text.split())[:MAX_VALUE_CHARS]
    return value or None


class TreeNode:
    """An element of a parsed document, looked up by lower-case local names.

    The nodes of one document share *children*: each element's children by local name, in
    document order, made the first time one is looked in (a notice reads about 30 fields,
    most of them under the same few elements)."""

    def __init__(self, element: Element,
                 children: dict[int, dict[str, list[Element]]] | None = None) -> None:
        self.element = element
        self._children = {} if children is None else children

    def _named(self, element: Element) -> dict[str, list[Element]]:
        named = self._children.get(id(element))
        if named is None:
            named = {}
            for child in element:
                named.setdefault(_local(child.tag), []).append(child)
            self._children[id(element)] = named
        return named

    def _find(self, path: str) -> list[Element]:
        current = [self.element]
        for name in path.lower().split("/"):
            found: list[Element] = []
            for element in current:
                found.extend(self._named(element).get(name, ()))
                if len(found) >= MAX_NODES:
                    break
            current = found[:MAX_NODES]
        return current

    def text(self, path: str) -> str | None:
        found = self._find(path)
        return _value("".join(found[0].itertext())) if found else None

    def attr(self, path: str, name: str) -> str | None:
        found = self._find(path) if path else [self.element]
        if not found:
            return None
        for key, value in found[0].attrib.items():
            if _local(key) == name.lower():
                return _value(value)
        return None

    def nodes(self, path: str) -> list[Node]:
        return [TreeNode(e, self._children) for e in self._find(path)]


@functools.lru_cache(maxsize=128)
def _tag_patterns(name: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    start = re.compile(rf"<(?:[\w.-]{{1,40}}:)?{re.escape(name)}(?=[\s/>])"
                       r"(?P<attrs>[^<>]{0,2000}?)(?P<empty>/?)>", re.I)
    end = re.compile(rf"</(?:[\w.-]{{1,40}}:)?{re.escape(name)}\s*>", re.I)
    return start, end


_ATTR = re.compile(r"(?P<key>[\w:.-]{1,80})\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')")
_ENTITY_REF = re.compile(r"&[\w.:-]{1,100};")


class TextNode:
    """The same lookups over text that is not well-formed XML: best effort, never raises."""

    def __init__(self, body: str, attrs: str = "") -> None:
        self.body = body
        self.attrs = attrs

    def _segments(self, name: str, limit: int) -> list[TextNode]:
        start, end = _tag_patterns(name)
        found: list[TextNode] = []
        pos = 0
        while len(found) < limit:
            m = start.search(self.body, pos)
            if not m:
                break
            if m.group("empty"):
                found.append(TextNode("", m.group("attrs")))
                pos = m.end()
                continue
            close = end.search(self.body, m.end())
            stop = close.start() if close else len(self.body)
            found.append(TextNode(self.body[m.end():stop], m.group("attrs")))
            pos = close.end() if close else len(self.body)
        return found

    def _find(self, path: str) -> list[TextNode]:
        names = path.lower().split("/")
        current: list[TextNode] = [self]
        for n, name in enumerate(names):
            last = n == len(names) - 1
            found: list[TextNode] = []
            for node in current:
                found.extend(node._segments(name, MAX_NODES if last else 1))
            current = found[:MAX_NODES]
        return current

    def text(self, path: str) -> str | None:
        found = self._find(path)
        if not found:
            return None
        body = found[0].body.replace("<![CDATA[", "").replace("]]>", "")
        # Entity references left unexpanded (a refused document's) are not values.
        return _value(_ENTITY_REF.sub(" ", html.unescape(_HTML_TAG.sub(" ", body))))

    def attr(self, path: str, name: str) -> str | None:
        found = self._find(path) if path else [self]
        if not found:
            return None
        for m in _ATTR.finditer(found[0].attrs):
            if _local(m.group("key")) == name.lower():
                value = html.unescape(m.group("dq") or m.group("sq") or "")
                return _value(_ENTITY_REF.sub(" ", value))
        return None

    def nodes(self, path: str) -> list[Node]:
        return list(self._find(path))


# -- finding the documents ------------------------------------------------------------------


@dataclass
class Document:
    text: str  # from the DOCTYPE (if any) to the root's end tag, declaration dropped
    root: str  # "infringement" or "investigationinfo"
    where: str  # "body", "attachment 123.xml"
    complete: bool  # the root's end tag was found
    too_large: bool = False


def _is_xml_part(part: Part) -> bool:
    ctype = part.content_type
    return ctype.endswith("/xml") or ctype.endswith("+xml") or part.name.endswith(".xml")


def _candidate(part: Part) -> bool:
    ctype = part.content_type
    if ctype.startswith("message/") or ctype in ("application/pgp-signature",
                                                 "application/pkcs7-signature"):
        return False
    return (ctype.startswith("text/") or _is_xml_part(part)
            or (ctype == "application/octet-stream" and part.name.endswith((".txt", ".xml"))))


def _part_text(part: Part) -> str:
    data = part.data[:MAX_PART_BYTES]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    declared = _DECL_ENCODING.match(data)
    charset = declared.group(1).decode("ascii") if declared and _is_xml_part(part) \
        else part.charset
    text = decode_text(data, charset)
    if part.content_type == "text/html" and not _ROOT_START.search(text):
        text = html.unescape(_HTML_TAG.sub("\n", text))
    return text


def _where(part: Part) -> str:
    if part.filename:
        return f"attachment {excerpt(part.filename, 80)}"
    return "body" if part.content_type.startswith("text/") else f"part {part.content_type}"


def find_documents(text: str, where: str, mail: Mail) -> Iterator[Document]:
    """The ACNS (and MarkMonitor) documents in *text*, in order: each from its DOCTYPE (when it
    has one: defusedxml must see it to refuse its entities) to its root's end tag."""
    text = undo_dash_escaping(text)
    pos = 0
    unclosed: set[str] = set()  # roots with no end tag after some point: none later either
    while True:
        mail.deadline.check()
        m = _ROOT_START.search(text, pos)
        if not m:
            return
        root = m.group("name").lower()
        prolog_start = pos
        for decl in _XML_DECL.finditer(text, pos, m.start()):
            prolog_start = decl.end()
        doctype = text.rfind("<!DOCTYPE", prolog_start, m.start())
        start = doctype if doctype >= 0 else m.start()
        _, end_tag = _tag_patterns(root)
        close = None if root in unclosed else end_tag.search(text, m.end())
        if close is None:
            unclosed.add(root)
        if close:
            stop = close.end()
        else:
            following = _ROOT_START.search(text, m.end())
            stop = following.start() if following else len(text)
        pos = stop
        yield Document(text=text[start:min(stop, start + MAX_DOC_CHARS)], root=root, where=where,
                       complete=close is not None, too_large=stop - start > MAX_DOC_CHARS)


def _documents(mail: Mail, result: ParseResult) -> tuple[list[Document], list[str]]:
    """Every document in the message, and review reasons for a message that has none."""
    documents: list[Document] = []
    markers = False
    for part in mail.parts:
        mail.deadline.check()
        if not _candidate(part) or not part.data:
            continue
        head = part.data[:MAX_PART_BYTES]
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = _part_text(part).encode("utf-8", "replace")
        if not _DETECT.search(head):
            continue
        if len(part.data) > MAX_PART_BYTES:
            result.review_reasons.append(
                f"a part of {len(part.data)} bytes: only the first {MAX_PART_BYTES} were "
                "searched for ACNS XML")
        text = _part_text(part)
        markers = markers or bool(_MARKER.search(undo_dash_escaping(text[:MAX_PART_BYTES])))
        for document in find_documents(text, _where(part), mail):
            documents.append(document)
            if len(documents) > MAX_DOCUMENTS:
                break
        if len(documents) > MAX_DOCUMENTS:
            result.review_reasons.append(
                f"more than {MAX_DOCUMENTS} ACNS documents in one message: the rest were not read")
            del documents[MAX_DOCUMENTS:]
            break
    notes = ["ACNS XML markers but no <Infringement> document between them"] \
        if markers and not documents else []
    return documents, notes


# -- reading one document -------------------------------------------------------------------


def _parse(document: Document) -> tuple[Node, list[str]]:
    """(the document's root, review reasons): a tree when it parses, else a regex view."""
    text, root_name = document.text, document.root
    if document.too_large:
        return _text_root(text, root_name), [
            f"ACNS XML document larger than {MAX_DOC_CHARS} characters: not parsed, fields "
            "read with a regex"]
    try:
        root = SafeET.fromstring(text, forbid_dtd=False, forbid_entities=True,
                                 forbid_external=True)
    except EntitiesForbidden as exc:
        return _text_root(_without_dtd(text), root_name), [
            f"ACNS XML declares entities ({excerpt(str(exc.name), 40)}): refused, nothing "
            "expanded; fields read with a regex"]
    except ExternalReferenceForbidden:
        return _text_root(_without_dtd(text), root_name), [
            "ACNS XML refers to an external resource: refused, nothing fetched; fields read "
            "with a regex"]
    except DefusedXmlException as exc:
        return _text_root(_without_dtd(text), root_name), [
            f"ACNS XML refused ({exc.__class__.__name__}); fields read with a regex"]
    except (ParseError, ValueError, RecursionError) as exc:
        return _text_root(text, root_name), [
            f"ACNS XML not well-formed ({excerpt(str(exc), 120)}): fields read with a regex"]
    if _local(root.tag) not in _ROOTS:
        return _text_root(text, root_name), [
            f"ACNS XML root is <{excerpt(_local(root.tag), 40)}>, not <Infringement>"]
    return TreeNode(root), []


def _without_dtd(text: str) -> str:
    """*text* after its DTD: entity values are not fields."""
    m = _ROOT_START.search(text)
    if m and m.start() > 0:
        subset = text.rfind("]>", 0, m.start())
        return text[subset + 2:] if subset >= 0 else text[m.start():]
    return text


def _text_root(text: str, root: str) -> TextNode:
    """A regex view of the document's root element (or of all of *text* if there is none)."""
    found = TextNode(text)._segments(root, 1)
    return found[0] if found else TextNode(text)


def _type_hint(source_type: str | None, base_type: str | None,
               protocol: str | None) -> str | None:
    for value in (base_type, source_type, protocol):
        if not value:
            continue
        key = value.strip().lower()
        if key in _P2P:
            return "acns:p2p"
        if key in _WEB:
            return "acns:http"
        if key in _USENET:
            return "acns:usenet"
        slug = re.sub(r"[^a-z0-9+]+", "-", key).strip("-")[:40]
        if slug:
            return f"acns:{slug}"
    return None


def _url_or_host(value: str | None, urls: list[str], domains: list[str]) -> None:
    if not value:
        return
    value = refang(value.strip())
    if _URL_LIKE.match(value):
        urls.append(value)
    elif _HOST_LIKE.match(value.rstrip(".")) and clean_ip(value) is None:
        domains.append(value.rstrip(".").lower())


def _set_time(report: ParsedReport, raw: str | None, inferred: bool) -> bool:
    when, stated = parse_time(raw)
    if when is None:
        if raw:
            report.warnings.append(f"unreadable TimeStamp {excerpt(raw, 60)!r}")
        return False
    report.occurred_at, report.occurred_raw = when, raw
    if inferred:
        report.inferred.append("occurred_at")
    if not stated:
        if "occurred_at" not in report.inferred:
            report.inferred.append("occurred_at")
        report.warnings.append("time without zone, taken as UTC")
    return True


def _set_ip(report: ParsedReport, value: str | None, label: str) -> None:
    if not value:
        return
    ip = clean_ip(refang(value))
    if ip:
        report.source_ip = ip
    elif _HOST_LIKE.match(value.strip().rstrip(".")):
        report.domains.append(value.strip().rstrip(".").lower())
        report.warnings.append(f"{label} {excerpt(value, 60)!r} is a host name, not an address")
    else:
        report.warnings.append(f"{label} {excerpt(value, 60)!r} is not an IP address")


def _set_port(report: ParsedReport, value: str | None) -> None:
    port = parse_int(value)
    if port is not None and port <= 65535:
        report.source_port = port
    elif value:
        report.warnings.append(f"Port {excerpt(value, 20)!r} is not a port number")


def _infringement(root: Node, report: ParsedReport) -> None:
    case = {"case_id": root.text("Case/ID"), "case_status": root.text("Case/Status"),
            "severity": root.text("Case/Severity")}
    report.extra.update(case)
    complainant = {key.lower(): root.text(f"Complainant/{key}")
                   for key in ("Entity", "Contact", "Address", "Phone", "Email")}
    report.extra["complainant"] = complainant
    report.extra["service_provider"] = {key.lower(): root.text(f"Service_Provider/{key}")
                                        for key in ("Entity", "Email")}
    report.reporter_org = complainant["entity"]
    email = parseaddr(complainant["email"] or "")[1]
    if "@" in email:
        report.reporter_address = email

    source_type = root.text("Source/Type")
    base_type = root.attr("Source/SubType", "BaseType")
    protocol = root.attr("Source/SubType", "Protocol") or root.text("Source/SubType")
    report.type_hint = _type_hint(source_type, base_type, protocol)
    if report.type_hint is None:
        report.type_hint = "acns:unknown"
        report.warnings.append("no Source Type in the ACNS notice")
    source = {"source_type": source_type, "base_type": base_type, "protocol": protocol}
    for key in ("UserName", "Login", "DNS_Name", "URL_Base", "Number_Files", "Deja_Vu"):
        source[key.lower()] = root.text(f"Source/{key}")
    report.extra.update(source)

    _set_ip(report, root.text("Source/IP_Address"), "Source IP_Address")
    _set_port(report, root.text("Source/Port"))

    urls: list[str] = []
    domains: list[str] = list(report.domains)
    _url_or_host(source["url_base"], urls, domains)
    _url_or_host(source["dns_name"], urls, domains)
    items: list[dict[str, str | None]] = []
    nodes = root.nodes("Content/Item")
    for item in nodes[:MAX_ITEMS]:
        fields: dict[str, str | None] = {
            key.lower(): item.text(key)
            for key in ("TimeStamp", "Title", "Artist", "FileName", "FileSize", "URL", "Hash",
                        "Type")}
        fields["hash_type"] = item.attr("Hash", "Type")
        items.append(fields)
        _url_or_host(fields["url"], urls, domains)
    if len(nodes) > MAX_ITEMS:
        report.warnings.append(f"{len(nodes)} content items: the first {MAX_ITEMS} kept")
    report.extra["items"] = items
    report.extra["notes"] = root.text("Notes")
    report.urls = unique(urls)
    report.domains = unique([*domains, *domains_of(report.urls)])

    if not _set_time(report, root.text("Source/TimeStamp"), inferred=False):
        item_time = next((i["timestamp"] for i in items if i["timestamp"]), None)
        if item_time:
            _set_time(report, item_time, inferred=True)
            report.warnings.append("no Source TimeStamp: the first item's taken")


def _dmy(value: str | None) -> tuple[datetime | None, list[str]]:
    """MarkMonitor's DD/MM/YYYY [h:mm[:ss] [AM|PM]] [zone]; (UTC time, warnings)."""
    m = _DMY.match(value or "")
    if not m:
        when, stated = parse_time(value)
        return when, ([] if stated or when is None else ["time without zone, taken as UTC"])
    a, b = int(m.group("a")), int(m.group("b"))
    warnings: list[str] = []
    if a <= 12 and b <= 12 and a != b:
        warnings.append(f"date {value!r} is ambiguous: read as DD/MM/YYYY")
    day, month = (b, a) if a <= 12 < b else (a, b)
    hour = int(m.group("h") or 0)
    if m.group("ampm"):
        hour = hour % 12 + (12 if m.group("ampm").upper() == "PM" else 0)
    try:
        when = datetime(int(m.group("y")), month, day, hour, int(m.group("mi") or 0),
                        int(m.group("s") or 0))
    except ValueError:
        return None, [f"unreadable date {excerpt(value or '', 60)!r}"]
    zone = (m.group("zone") or "").upper()
    if zone in ("Z", "UTC", "GMT"):
        return when.replace(tzinfo=UTC), warnings
    if zone:
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return when.replace(tzinfo=timezone(sign * offset)).astimezone(UTC), warnings
    return when.replace(tzinfo=UTC), [*warnings, "time without zone, taken as UTC"]


def _markmonitor_case(case: Node, report: ParsedReport, mail: Mail) -> None:
    report.type_hint = "acns:p2p"
    report.extra["variant"] = "markmonitor"
    report.extra["case_id"] = case.text("CaseId") or case.text("CaseID") or case.text("ID")
    for key in ("Initiated", "Completed", "Protocol", "Network"):
        report.extra[key.lower()] = case.text(key)
    _set_ip(report, case.text("PeerIP"), "PeerIP")
    _set_port(report, case.text("PeerPort"))
    raw = case.text("Initiated") or case.text("Completed")
    when, warnings = _dmy(raw)
    if when is not None:
        report.occurred_at, report.occurred_raw = when, raw
        if warnings:
            report.inferred.append("occurred_at")
    report.warnings.extend(warnings)
    items = []
    for content in case.nodes("ContentList/Content")[:MAX_ITEMS]:
        items.append({"title": content.attr("", "name"), "filesize": content.attr("", "size"),
                      "hash": content.text("Hash"), "hash_type": content.attr("Hash", "algorithm")})
    report.extra["items"] = items
    name, address = parse_address(mail.from_)
    if "@" in address:
        report.reporter_address = address
        report.reporter_org = name.strip() or address.rsplit("@", 1)[1].lower()
        report.inferred.extend(["reporter_address", "reporter_org"])


def _reports(document: Document, mail: Mail) -> list[ParsedReport]:
    root, reasons = _parse(document)
    schema = root.attr("", "schemaLocation") or ""
    version = _SCHEMA_VERSION.search(schema)
    evidence = excerpt(document.text, ParsedReport.MAX_EVIDENCE)
    if not document.complete:
        name = "Infringement" if document.root == "infringement" else "InvestigationInfo"
        reasons = [*reasons, f"ACNS XML in the {document.where} has no </{name}>: truncated?"]
    reports: list[ParsedReport] = []
    if document.root == "investigationinfo":
        cases = root.nodes("CaseList/Case") or root.nodes("Case")
        for case in cases[:MAX_NODES]:
            mail.deadline.check()
            report = ParsedReport(format="acns", evidence=evidence)
            _markmonitor_case(case, report, mail)
            reports.append(report)
        if not reports:
            reports.append(ParsedReport(format="acns", type_hint="acns:p2p", evidence=evidence,
                                        extra={"variant": "markmonitor"}))
    else:
        report = ParsedReport(format="acns", evidence=evidence)
        _infringement(root, report)
        report.extra["acns_version"] = version.group(1) if version else None
        reports.append(report)
    for report in reports:
        report.review_reasons.extend(reasons)
        report.extra["found_in"] = [document.where]
        if report.source_ip is None and reasons:
            found = find_ips(document.text[:MAX_DOC_CHARS], limit=5)
            if found:
                report.source_ip = found[0]
                report.inferred.append("source_ip")
        if report.source_ip is None and not report.urls and not report.domains:
            report.review_reasons.append("ACNS notice names no source IP address, URL or host")
        elif report.source_ip is None:
            report.warnings.append("no source IP address: URLs and hosts only")
        if not report.reporter_address:
            _, address = parse_address(mail.from_)
            if "@" in address:
                report.reporter_address = address
                report.inferred.append("reporter_address")
    return reports


def _key(report: ParsedReport) -> tuple[object, ...]:
    items = report.extra.get("items") or []
    return (report.extra.get("case_id"), report.source_ip, report.source_port,
            report.occurred_raw, report.type_hint,
            tuple((i.get("filename"), i.get("title"), i.get("hash")) for i in items))


def _merge(reports: list[ParsedReport]) -> list[ParsedReport]:
    """One report per distinct notice: the same document inline and attached is one. A copy
    that could only be read with a regex is dropped beside a readable copy of the same case
    (same case ID and source IP): the readable one says more."""
    kept: dict[tuple[object, ...], ParsedReport] = {}
    for report in reports:
        key = _key(report)
        kept[key] = _better(kept[key], report) if key in kept else report
    readable = {(r.extra.get("case_id"), r.source_ip): key for key, r in kept.items()
                if not r.review_reasons and r.extra.get("case_id")}
    for key, report in list(kept.items()):
        twin = readable.get((report.extra.get("case_id"), report.source_ip))
        if report.review_reasons and twin is not None:
            kept[twin] = _better(kept[twin], report)
            del kept[key]
    return list(kept.values())


def _better(one: ParsedReport, other: ParsedReport) -> ParsedReport:
    """Of two copies of one notice, the better read, knowing where both were found."""
    better, worse = (other, one) if len(other.review_reasons) < len(one.review_reasons) \
        else (one, other)
    better.extra["found_in"] = unique([*one.extra["found_in"], *other.extra["found_in"]])
    if worse.review_reasons and not better.review_reasons:
        better.warnings.append("another copy of this notice could not be read: "
                               + worse.review_reasons[0])
    return better


# -- the format, as the registry and the classifier know it ------------------------------

# ACNS source types as the ACNS parser names them; any other ACNS notice: see _PATTERNS.
ACNS_VOCABULARY: dict[str, tuple[str, float]] = {
    "p2p": ("copyright", 0.95),
    "http": ("copyright", 0.95),
    "usenet": ("copyright", 0.95),
}
# any other ACNS notice is a copyright notice
ACNS_PATTERNS: tuple[tuple[str, str, float], ...] = ((r".", "copyright", 0.9),)
ACNS = Format("acns", machine=True, vocabulary=ACNS_VOCABULARY, patterns=ACNS_PATTERNS,
              trusted_senders=(("IP-Echelon", ("ip-echelon.com",)),))


class AcnsParser:
    """ACNS XML notices, inline (PGP-signed or not), attached or both: one report per notice."""

    name = "acns"
    stage = Stage.STRUCTURAL
    formats = (ACNS,)
    order = 50

    def matches(self, mail: Mail) -> bool:
        for part in mail.parts:
            mail.deadline.check()
            if not _candidate(part):
                continue
            head = part.data[:MAX_PART_BYTES]
            if head.startswith((b"\xff\xfe", b"\xfe\xff")):
                head = _part_text(part).encode("utf-8", "replace")
            if _DETECT.search(head):
                return True
        return False

    def parse(self, mail: Mail) -> ParseResult:
        result = ParseResult(Disposition.REPORT, "acns")
        documents, notes = _documents(mail, result)
        reports: list[ParsedReport] = []
        for document in documents:
            mail.deadline.check()
            reports.extend(_reports(document, mail))
        reports = _merge(reports)
        order = unique(d.where for d in documents)
        for report in reports:
            report.extra["found_in"].sort(key=order.index)
        if not reports:
            text, _ = notice_text(mail)
            report = ParsedReport(format="acns", type_hint="acns:unknown",
                                  evidence=excerpt(text, ParsedReport.MAX_EVIDENCE) or None,
                                  review_reasons=notes or ["no ACNS document found"])
            found = find_ips(text, limit=5)
            if found:
                report.source_ip = found[0]
                report.inferred.append("source_ip")
            reports.append(report)
        else:
            text, signed = notice_text(mail)
            human = _XML_START.split(text, maxsplit=1)[0]
            elements = dmca_elements(human, located=True, pgp_signed=signed)
            for report in reports:
                report.extra["dmca_elements"] = elements
        result.reports = reports
        return result


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [AcnsParser()]
