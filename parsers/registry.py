"""The parser registry and :func:`parse_message`, the one entry point the pipeline calls.

Parsers are tried by stage (guards, structural formats, sender-specific layouts, free text) and,
within a stage, in the order they were registered. The first parser that matches and returns a
result decides. Nothing is ever dropped: a parser that raises, input past a limit, or a message no
parser understands comes back as a result that needs review, with the reason (and the
traceback, for a parser bug).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable

from abuse_desk.config import ParserLimits
from parsers.base import FORMATS, Disposition, LimitExceeded, Parser, ParseResult
from parsers.mail import Mail

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
        """Parse one raw message; never raises (but for MemoryError and the like)."""
        limits = limits or ParserLimits()
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
    from parsers.builtin import builtin_parsers

    return Registry(builtin_parsers(message_id_domain))
