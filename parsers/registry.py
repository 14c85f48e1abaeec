"""The parser registry and :func:`parse_message`, the one entry point the pipeline calls.

The built-in parsers are every file in ``parsers/formats/``: each declares its formats (their
:class:`~abuse_desk.parsers.base.Format` facts) and gives its parsers with
``parsers(message_id_domain)``. The registry collects the formats into one catalog
(:func:`known_formats`) that the classifier's tables, the acknowledgement rules and the
benchmarks read; a plugin parser (``parsers.plugins``) adds its own formats when registered.

Parsers are tried by stage (guards, structural formats, sender-specific layouts, free text) and,
within a stage, by their ``order`` (then in the order they were registered). The first parser
that matches and returns a result decides. Nothing is ever dropped: a parser that raises, input
past a limit, or a message no parser understands comes back as a result that needs review, with
the reason (and the traceback, for a parser bug).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import traceback
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..core.config import ParserLimits
from ..core.headers import no_surrogates
from ..core.mail import LimitExceeded, Mail
from .base import Disposition, Format, ParsedReport, Parser, ParseResult

log = logging.getLogger(__name__)

LAST = 1_000_000  # the order of a parser that declares none: after the built-in ones


class DuplicateParser(ValueError):
    pass


class FormatClash(ValueError):
    """Two parsers declare different facts under one format name."""


# -- the catalog of formats -------------------------------------------------------------------

_CATALOG: dict[str, Format] = {}
_version = 0


def declare_formats(formats: Iterable[Format]) -> None:
    """Add *formats* to the catalog; the same declaration again is no change, another one
    under a known name is a :class:`FormatClash`."""
    global _version
    for fmt in formats:
        known = _CATALOG.get(fmt.name)
        if known is None:
            _CATALOG[fmt.name] = fmt
            _version += 1
        elif known != fmt:
            raise FormatClash(f"two declarations of the format {fmt.name!r}")


def known_formats() -> Mapping[str, Format]:
    """Every format the built-in parsers and the registered plugins declare, by name."""
    return MappingProxyType(_CATALOG)


def catalog_version() -> int:
    """Changes whenever a format is added (tables built from the catalog rebuild then)."""
    return _version


def machine_sent(format_name: str | None) -> bool:
    """Whether machines send reports of this format (no acknowledgement; notices name the
    sender's domain)."""
    fmt = _CATALOG.get(format_name or "")
    return fmt is not None and fmt.machine


def format_modules() -> list[Any]:
    """The modules of ``parsers/formats/``, by name."""
    from . import formats

    return [importlib.import_module(f"{formats.__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(formats.__path__), key=lambda i: i.name)]


def builtin_parsers(message_id_domain: str = "abuse-desk.localhost") -> list[Parser]:
    """A parser of each kind each format file gives, in the order the registry tries them."""
    found: list[Parser] = []
    for module in format_modules():
        found.extend(module.parsers(message_id_domain))
    return sorted(found, key=lambda p: (p.stage, p.order, p.name))


class Registry:
    def __init__(self, parsers: Iterable[Parser] = ()) -> None:
        self._parsers: dict[str, Parser] = {}
        for parser in parsers:
            self.register(parser)

    def register(self, parser: Parser) -> None:
        if parser.name in self._parsers:
            raise DuplicateParser(f"two parsers are named {parser.name!r}")
        declare_formats(getattr(parser, "formats", ()))
        self._parsers[parser.name] = parser

    def ordered(self) -> list[Parser]:
        """By stage, then by each parser's ``order`` (a parser without one comes after those
        with one), then as registered."""
        seq = {name: n for n, name in enumerate(self._parsers)}
        return sorted(self._parsers.values(),
                      key=lambda p: (p.stage, getattr(p, "order", LAST), seq[p.name]))

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
                         format=parser if parser in _CATALOG else "text",
                         review_reasons=[reason], parser=parser)
    if trace:
        result.errors.append(trace)
    return result


def default_registry(message_id_domain: str = "abuse-desk.localhost") -> Registry:
    """Every built-in parser; *message_id_domain* is the domain of our notices' Message-IDs."""
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


declare_formats(f for parser in builtin_parsers() for f in parser.formats)
