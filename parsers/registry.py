"""The parser registry and :func:`parse_message`, the one entry point the pipeline calls.

Parsers are tried by stage (guards, structural formats, sender-specific layouts, free text) and,
within a stage, in the order they were registered. The first parser that matches and returns a
result decides. Nothing is ever dropped: a parser that raises, input past a limit, or a message no
parser understands comes back as a result that needs review, with the reason (and the
traceback, for a parser bug).
"""

from __future__ import annotations

import importlib
import logging
import re
import traceback
from collections.abc import Iterable
from typing import Any

from ..core.config import ParserLimits
from ..core.headers import no_surrogates
from ..core.mail import LimitExceeded, Mail
from .base import FORMATS, Disposition, ParsedReport, Parser, ParseResult

log = logging.getLogger(__name__)


class DuplicateParser(ValueError):
    pass


class Registry:
    def __init__(self, parsers: Iterable[Parser] = ()) -> None:
        self._parsers: dict[str, Parser] = {}
        for parser in parsers:
            self.register(parser)

    def register(self, parser: Parser) -> None:
        if parser.name in self._parsers:
            raise DuplicateParser(f"two parsers are named {parser.name!r}")
        self._parsers[parser.name] = parser

    def ordered(self) -> list[Parser]:
        order = {name: n for n, name in enumerate(self._parsers)}
        return sorted(self._parsers.values(), key=lambda p: (p.stage, order[p.name]))

    def names(self) -> list[str]:
        return [p.name for p in self.ordered()]

    def parse(self, raw: bytes, limits: ParserLimits | None = None) -> ParseResult:
        """Parse one raw message; never raises (but for MemoryError and the like). The result
        is scrubbed: storable text only (see :func:`scrub_result`)."""
        return scrub_result(self._parse(raw, limits or ParserLimits()))

    def _parse(self, raw: bytes, limits: ParserLimits) -> ParseResult:
        try:
            mail = Mail(raw, limits)
        except LimitExceeded as exc:
            return needs_review("limit", str(exc))
        for parser in self.ordered():
            try:
                if not parser.matches(mail):
                    continue
                result = parser.parse(mail)
            except LimitExceeded as exc:
                return needs_review(parser.name, str(exc))
            except RecursionError:
                return needs_review(parser.name, "structure nested too deep to parse")
            except Exception as exc:
                log.warning("parser %s failed: %s: %s", parser.name, exc.__class__.__name__, exc)
                return needs_review(
                    parser.name, f"parser {parser.name} failed: {exc.__class__.__name__}: {exc}",
                    traceback.format_exc(limit=20))
            if result is None:
                continue
            result.parser = parser.name
            if len(result.reports) > limits.max_reports:
                del result.reports[limits.max_reports:]
                result.review_reasons.append(
                    f"more than {limits.max_reports} reports in one message: the rest were not "
                    "read (parsers.max_reports)")
            return result
        return needs_review("none", "no parser understood this message")


def needs_review(parser: str, reason: str, trace: str | None = None) -> ParseResult:
    """A message for a person: the format of the parser that gave up, or "text"."""
    result = ParseResult(disposition=Disposition.REPORT,
                         format=parser if parser in FORMATS else "text",
                         review_reasons=[reason], parser=parser)
    if trace:
        result.errors.append(trace)
    return result


def default_registry(message_id_domain: str = "abuse-desk.localhost") -> Registry:
    """Every built-in parser; *message_id_domain* is the domain of our notices' Message-IDs."""
    from .builtin import builtin_parsers

    return Registry(builtin_parsers(message_id_domain))


def configured_registry(message_id_domain: str, plugins: Iterable[str] = ()) -> Registry:
    """The built-in parsers and the configured ``parsers.plugins``; :class:`PluginError` for a
    plugin that does not load or does not give a parser."""
    registry = default_registry(message_id_domain)
    for name in plugins:
        registry.register(load_plugin(name))
    return registry


class PluginError(ValueError):
    """A ``parsers.plugins`` entry that does not give a parser."""


def load_plugin(name: str) -> Any:
    """The parser made by the factory *name* (``package.module:factory``)."""
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        parser = factory()
    except Exception as exc:
        raise PluginError(f"parsers.plugins: {name}: {exc.__class__.__name__}: {exc}") from exc
    if not all(hasattr(parser, a) for a in ("name", "stage", "matches", "parse")):
        raise PluginError(f"parsers.plugins: {name} did not give a parser (name, stage, "
                          "matches, parse: parsers/base.py)")
    return parser


# -- what may be stored ---------------------------------------------------------------------

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
MAX_SCRUB_DEPTH = 64  # nesting of ``extra`` kept; deeper containers (hostile JSON) become None


def storable(text: str) -> str:
    """*text* without NUL (U+FFFD instead) or lone surrogates: storable in any text column."""
    return no_surrogates(text.replace("\x00", "\ufffd") if "\x00" in text else text)


def one_line(text: str | None) -> str | None:
    """A one-line field: storable, control characters (CR, LF, tab, NUL, C1, U+2028...) to
    one blank."""
    if text is None:
        return None
    return _CONTROLS.sub(" ", no_surrogates(text)).strip() or None


def _tree(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_SCRUB_DEPTH:
        return None
    if isinstance(value, dict):
        return {storable(k) if isinstance(k, str) else k: _tree(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tree(v, depth + 1) for v in value]
    return value


def _scrub_report(report: ParsedReport) -> None:
    report.type_hint = one_line(report.type_hint)
    report.source_ip = one_line(report.source_ip)
    report.occurred_raw = one_line(report.occurred_raw)
    report.reporter_address = one_line(report.reporter_address)
    report.reporter_org = one_line(report.reporter_org)
    report.urls = [u for u in (one_line(u) for u in report.urls) if u]
    report.domains = [d for d in (one_line(d) for d in report.domains) if d]
    report.evidence = storable(report.evidence) if report.evidence is not None else None
    report.inferred = [storable(x) for x in report.inferred]
    report.warnings = [storable(x) for x in report.warnings]
    report.review_reasons = [storable(x) for x in report.review_reasons]
    report.extra = _tree(report.extra)


def scrub_result(result: ParseResult) -> ParseResult:
    """*result* made storable, in place: no NUL and no lone surrogate in any of its text (a
    CSV cell, a JSON string ``"\\u0000"`` or ``"\\ud800"``, a body in UTF-7 can carry them),
    and no control character in a report's one-line fields."""
    for report in result.reports:
        _scrub_report(report)
    result.review_reasons = [storable(x) for x in result.review_reasons]
    result.errors = [storable(x) for x in result.errors]
    result.extra = _tree(result.extra)
    return result
