"""SpamCop reports: ARF style and plain-text style, the spamvertised variant, and summaries.

SpamCop mail comes from ``<id>@reports.spamcop.net`` with a subject ``[SpamCop (<ip-or-url>)
id:<id>]<original subject>`` (older: ``[SpamCop:<ip>,id:<id>]``). Its body names the offender in
one of two ways::

    Email from 198.51.100.23 / Tue, 03 Mar 2020 14:07:02 -0500        the spam's source

    Spamvertised web site: http://pills.example/buy                     a site the spam advertised
    http://pills.example/buy is 203.0.113.80; Tue, 03 Mar 2020 19:12:44 GMT

either as plain text followed by ``[ Offending message ]`` and the spam, or as part 1 of an ARF
report whose field block has SpamCop's quirks (``Feedback-Type: abuse `` with a trailing blank, a
folded User-Agent, an empty Source-IP for spamvertised sites, a bare tracking URL among the
fields). Each spamvertised site is a report of its own (type ``spamcop:spamvertised``, source = the
site's address); a spam source is ``spamcop:spam``.

Summaries (``summaries@admin.spamcop.net``, ``[SpamCop] summary report``) are a fixed-width table,
one row per address, with the start of the incident but no year: one report per row
(``spamcop:summary``), the year taken from the summary's Date. Alerts go to a person.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ...core.fields import clean_ip, domains_of, excerpt, host_of, parse_time, refang, unique
from ...core.mail import Mail, decode_text
from ...core.received import is_routable
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage
from .arf import (
    FeedbackFields,
    Original,
    address_of,
    choose_time,
    feedback_text,
    find_arf_documents,
    header,
    parse_feedback_fields,
    read_original,
    uris_of,
)

MAX_TEXT = 256 * 1024  # of the report text searched for the SpamCop lines
MAX_SITES = 100  # spamvertised sites in one report

_SUBJECT = re.compile(r"\[SpamCop\s*[:(]", re.I)
_SUBJECT_PARTS = re.compile(
    r"\[SpamCop\s*+[:(]\s*+\(?(?P<what>\S*?)\)?\s*+(?:,\s*+)?id:\s*+(?P<id>\d+)\s*+\]", re.I)
_VERSION = re.compile(r"SpamCop V(\d+(?:\.\d+)*)", re.I)
_EMAIL_FROM = re.compile(
    r"^[ \t]*Email from[ \t]+(?P<ip>[0-9A-Fa-f.:\[\]]{3,47})[ \t]*+/[ \t]*+"
    r"(?P<date>(?:[^\r\n]*[^\r\n \t])?)[ \t]*$", re.M | re.I)
_SITE = re.compile(r"^[ \t]*Spamvertised web ?site:[ \t]*(?P<url>\S+)", re.M | re.I)
_RESOLVED = re.compile(
    r"^[ \t]*(?P<url>\S+)[ \t]+is[ \t]+(?P<ip>[0-9A-Fa-f.:]{3,45})[ \t]*+;[ \t]*+"
    r"(?P<date>(?:[^\r\n]*[^\r\n \t])?)[ \t]*$", re.M)
_TRACKING = re.compile(r"https?://(?:www\.)?spamcop\.net/[^\s<>\"']+", re.I)
_OFFENDING = re.compile(r"^[ \t]*(?:\[\s*Offending message\s*\]|Offending message:)[^\r\n]*\r?\n?",
                        re.M | re.I)
_COMMENTS = re.compile(
    r"^(?=[^\r\n]*Comments from recipient)[^\r\n]*+\r?\n(?P<text>.*?)"
    r"(?=^[^\r\n]*End of comments|^[ \t]*\[\s*[A-Z][^\]\r\n]*\]|\Z)", re.M | re.S | re.I)
_SUMMARY_ROW = re.compile(
    r"^[ \t]*(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{2,40})[ \t]+"
    r"(?P<mon>[A-Z][a-z]{2})[ \t]+(?P<day>\d{1,2})[ \t]+(?P<hour>\d{1,2})h[ \t]*/[ \t]*"
    r"(?P<length>\d{1,6})[ \t]+(?P<trap>\d{1,9})[ \t]+(?P<user>\d{1,9})[ \t]+(?P<mole>\d{1,9})"
    r"[ \t]+(?P<simp>\d{1,9})[ \t]*(?P<comments>[^\r\n]*)$", re.M)
_RDNS_LINE = re.compile(
    r"\r?\n[ \t]+(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,})[ \t]*(?=\r?\n|\Z)")
NewReport = Callable[[str], ParsedReport]  # a report of a type, with the mail's common fields
_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def _sender(mail: Mail) -> str | None:
    return address_of(header(mail, "From"))


def _subject(mail: Mail) -> str:
    return header(mail, "Subject") or ""


def _is_admin(mail: Mail) -> bool:
    sender = _sender(mail) or ""
    return sender.endswith("@admin.spamcop.net") and _subject(mail).lower().startswith("[spamcop]")


# -- the format, as the registry and the classifier know it ------------------------------

SPAMCOP_VOCABULARY: dict[str, tuple[str, float]] = {
    "spam": ("spam", 0.95),
    "spamvertised": ("spamvertising", 0.95),
    "summary": ("spam", 0.85),
    "alert": ("spam", 0.6),
}
SPAMCOP = Format("spamcop", machine=True, vocabulary=SPAMCOP_VOCABULARY, trusted_senders=(
    ("SpamCop", ("*.spamcop.net",)),
))


class SpamcopParser:
    """SpamCop's individual reports (ARF and text style) and its summary reports."""

    name = "spamcop"
    stage = Stage.STRUCTURAL
    formats = (SPAMCOP,)
    order = 20

    def matches(self, mail: Mail) -> bool:
        sender = _sender(mail) or ""
        if sender.endswith("@reports.spamcop.net"):
            return True
        return _is_admin(mail) or bool(_SUBJECT.search(_subject(mail)))

    def parse(self, mail: Mail) -> ParseResult:
        if _is_admin(mail):
            if "summary" in _subject(mail).lower():
                return _summary(mail)
            return ParseResult(disposition=Disposition.REPORT, format="spamcop", review_reasons=[
                f"SpamCop notice {excerpt(_subject(mail), 80)!r} is not a report this parser "
                "reads: a person must read it"])
        return _individual(mail)


# -- individual reports ---------------------------------------------------------------------


def _individual(mail: Mail) -> ParseResult:
    docs = [d for d in find_arf_documents(mail) if d.feedback is not None]
    fields: FeedbackFields | None = None
    original: Original | None = None
    warnings: list[str] = []
    part2 = docs[0].feedback if docs else None
    if part2 is not None:
        doc = docs[0]
        fields = parse_feedback_fields(feedback_text(part2), mail)
        warnings.extend(fields.warnings)
        if doc.original is not None:
            original = read_original(doc.original)
        text = (decode_text(doc.human.data[:MAX_TEXT], doc.human.charset)
                if doc.human is not None else "")
        offending = original.text if original is not None else ""
        if len(docs) > 1:
            warnings.append(f"{len(docs)} feedback-report parts: only the first was read")
    else:
        body = _first_text(mail)
        split = _OFFENDING.search(body)
        text, offending = (body[:split.start()], body[split.end():]) if split else (body, "")
        attached = next((p for p in mail.parts if p.content_type == "message/rfc822"), None)
        if not offending.strip() and attached is not None:  # the spam as an attachment
            offending = read_original(attached).text

    text, offending = _lf(text), _lf(offending)
    subject = _SUBJECT_PARTS.search(_subject(mail))
    extra: dict[str, Any] = {"style": "arf" if fields is not None else "text"}
    if subject:
        extra["spamcop_id"] = subject.group("id")
    version = _VERSION.search(text)
    if version:
        extra["spamcop_version"] = version.group(1)
    bare = " ".join(fields.bare) if fields is not None else ""
    tracking = _TRACKING.search(text) or _TRACKING.search(bare)
    if tracking:
        extra["tracking_url"] = tracking.group(0)
    comments = _COMMENTS.search(text)
    if comments and comments.group("text").strip():
        extra["comments"] = excerpt(comments.group("text"), 2000)
    if fields is not None:
        for name in ("feedback-type", "user-agent", "version"):
            if fields.get(name):
                extra[name.replace("-", "_")] = fields.get(name)

    evidence = excerpt(offending or text, ParsedReport.MAX_EVIDENCE) or None
    reporter = _sender(mail)

    def new(type_hint: str) -> ParsedReport:
        return ParsedReport(format="spamcop", type_hint=type_hint, reporter_address=reporter,
                            reporter_org="SpamCop", evidence=evidence, extra=dict(extra),
                            warnings=list(warnings))

    reports = []
    email_report = _email_source(text, fields, new)
    if email_report is not None:
        reports.append(email_report)
    reports.extend(_spamvertised(mail, text, fields, new))
    if not reports and subject:
        reports.extend(_from_subject(mail, subject.group("what"), new))
    result = ParseResult(disposition=Disposition.REPORT, format="spamcop", reports=reports)
    if not reports:
        result.review_reasons.append("SpamCop report naming neither a source IP nor a "
                                     "spamvertised site")
    elif subject:
        _check_subject(subject.group("what"), reports)
    return result


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_text(mail: Mail) -> str:
    for part in mail.parts:
        if part.content_type == "text/plain" and not part.filename:
            return decode_text(part.data[:MAX_TEXT], part.charset)
    return mail.body_text(MAX_TEXT)


def _email_source(text: str, fields: FeedbackFields | None, new: NewReport) -> ParsedReport | None:
    """The spam's source: Source-IP (ARF) or "Email from <ip> / <date>" (text)."""
    line = _EMAIL_FROM.search(text)
    line_ip = clean_ip(line.group("ip")) if line else None
    stated = (fields.get("source-ip") or "").strip() if fields is not None else ""
    field_ip = clean_ip(stated) if stated else None
    if not (field_ip or line_ip):
        return None
    report: ParsedReport = new("spamcop:spam")
    if stated and field_ip is None:
        report.warnings.append(f"unreadable Source-IP {excerpt(stated, 60)!r}")
    report.source_ip = field_ip or line_ip
    if field_ip and line_ip and field_ip != line_ip:
        report.warnings.append(f"Source-IP {field_ip} differs from the text's {line_ip}: "
                               "Source-IP was used")
    if report.source_ip and not is_routable(report.source_ip):
        report.warnings.append(f"source {report.source_ip} is not a public address")
    choose_time([
        ("Arrival-Date", fields.get("arrival-date") if fields is not None else None, True),
        ("Received-Date", fields.get("received-date") if fields is not None else None, True),
        ("\"Email from\" date", line.group("date") if line else None, True),
    ], report)
    if fields is not None:
        report.urls = uris_of(fields.all("reported-uri"))
        report.domains = domains_of([u for u in report.urls if "://" in u])
    return report


def _spamvertised(mail: Mail, text: str, fields: FeedbackFields | None,
                  new: NewReport) -> list[ParsedReport]:
    """One report per "<url> is <ip>; <date>" line; a site without one goes to a person."""
    reports: list[ParsedReport] = []
    sites = unique(refang(m.group("url")) for m in _SITE.finditer(text))
    reported = uris_of(fields.all("reported-uri")) if fields is not None else []
    no_source = fields is not None and not (fields.get("source-ip") or "").strip()
    resolved_urls: list[str] = []
    for n, m in enumerate(_RESOLVED.finditer(text)):
        if n >= MAX_SITES:
            break
        if n % 20 == 0:
            mail.deadline.check()
        url = refang(m.group("url")).rstrip(".,;:")
        ip = clean_ip(m.group("ip"))
        if ip is None or not (url.lower().startswith(("http://", "https://", "ftp://"))
                              or url in sites):
            continue
        report: ParsedReport = new("spamcop:spamvertised")
        report.source_ip = ip
        host = host_of(url)
        report.urls = unique([url] + [u for u in reported if host and host_of(u) == host])
        report.domains = domains_of(report.urls)
        choose_time([("spamvertised site's date", m.group("date"), True)], report)
        reports.append(report)
        resolved_urls.append(url)
    # A site named (or Reported-URI with an empty Source-IP) without its address.
    unresolved = [u for u in sites if u not in resolved_urls]
    if not unresolved and no_source and not resolved_urls:
        unresolved = reported
    if unresolved:
        report = new("spamcop:spamvertised")
        report.urls = unresolved[:MAX_SITES]
        report.domains = domains_of(report.urls)
        literal = [ip for ip in (clean_ip(host_of(u) or "") for u in report.urls) if ip]
        if literal:
            report.source_ip = literal[0]
        else:
            report.review_reasons.append("spamvertised site named without its address")
        choose_time([("report's own Date", header(mail, "Date"), False)], report)
        reports.append(report)
    return reports


def _from_subject(mail: Mail, what: str, new: NewReport) -> list[ParsedReport]:
    ip = clean_ip(what)
    if ip is not None:
        report: ParsedReport = new("spamcop:spam")
        report.source_ip = ip
        report.warnings.append("source taken from the subject")
    elif re.match(r"^(?:https?|ftp)://", refang(what), re.I):
        report = new("spamcop:spamvertised")
        report.urls = [refang(what)]
        report.domains = domains_of(report.urls)
        report.review_reasons.append("spamvertised site named only in the subject, without "
                                     "its address")
    else:
        return []
    choose_time([("report's own Date", header(mail, "Date"), False)], report)
    return [report]


def _check_subject(what: str, reports: list[ParsedReport]) -> None:
    ip = clean_ip(what)
    if ip is None:
        return
    for report in reports:
        if report.type_hint == "spamcop:spam" and report.source_ip != ip:
            report.warnings.append(f"the subject names {ip}, the report {report.source_ip}")


# -- summaries ------------------------------------------------------------------------------


def _summary(mail: Mail) -> ParseResult:
    text = _lf(mail.body_text(1024 * 1024))
    sent, _ = parse_time(header(mail, "Date"))
    result = ParseResult(disposition=Disposition.REPORT, format="spamcop")
    for n, m in enumerate(_SUMMARY_ROW.finditer(text)):
        if n % 100 == 0:
            mail.deadline.check()
        if n >= mail.limits.max_reports:
            result.review_reasons.append(f"more than {mail.limits.max_reports} rows in the "
                                         "summary: the rest were not read")
            break
        ip = clean_ip(m.group("ip"))
        if ip is None:
            continue
        counts = {k: int(m.group(k)) for k in ("trap", "user", "mole", "simp")}
        report = ParsedReport(format="spamcop", type_hint="spamcop:summary", source_ip=ip,
                              reporter_address=_sender(mail), reporter_org="SpamCop",
                              incidents=max(1, sum(counts.values())),
                              evidence=excerpt(m.group(0), 500))
        report.extra = {**counts, "length_days": int(m.group("length"))}
        if m.group("comments").strip():
            report.extra["comments"] = m.group("comments").strip()
        rdns = _RDNS_LINE.match(text, m.end())
        if rdns and not _SUMMARY_ROW.match(rdns.group(0).strip()):
            report.extra["rdns"] = rdns.group("host").lower()
        _summary_time(m, sent, report)
        result.reports.append(report)
    if not result.reports:
        result.review_reasons.append("SpamCop summary without a row this parser can read")
    return result


def _summary_time(m: re.Match[str], sent: datetime | None, report: ParsedReport) -> None:
    raw = f"{m.group('mon')} {m.group('day')} {m.group('hour')}h"
    report.occurred_raw = raw
    month = _MONTHS.get(m.group("mon"))
    if sent is None or month is None:
        report.warnings.append("summary start time without a year, and no Date to take it from")
        return
    for year in (sent.year, sent.year - 1):
        try:
            when = datetime(year, month, int(m.group("day")), int(m.group("hour")), tzinfo=UTC)
        except ValueError:
            continue
        if when <= sent + timedelta(days=1):
            report.occurred_at = when
            report.inferred.append("occurred_at")
            report.warnings.append("summary start time (GMT) has no year: taken from the "
                                   "summary's Date")
            return
    report.warnings.append(f"unreadable summary start time {raw!r}")


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [SpamcopParser()]
