"""Every source vocabulary the parsers emit, mapped onto the policy's types: tables, not code.
Each format declares its own table in its file (``parsers/formats/NAME.py``, its
:class:`~abuse_desk.parsers.base.Format`); this module reads them all from the registry.

A parser's ``type_hint`` is ``<vocabulary>:<key>`` in the source's own words (``arf:abuse``,
``xarf:LoginAttack``, ``xarf4:connection/port_scan``, ``shadowserver:scan_ssh``). Each vocabulary
has a table of exact keys and, where a vocabulary names things by pattern (Shadowserver's
``scan_*``/``event4_*`` families, ACNS's open-ended source types), an ordered list of
``(pattern, type, confidence)`` rules tried after the exact keys; the first that matches wins.

Keys are compared without case, hyphens, underscores or blanks, so ``login-attack`` (X-ARF 0.x),
``LoginAttack`` (abusix) and ``login_attack`` are one key. Two keys of one table that compare
equal are an error at import time.

The confidence says how much the key alone tells: 0.95 for an explicit structured type, less
for vague ones (``arf:other``, X-ARF ``info``). A table hit decides a report's type only when its
vocabulary is decisive and its confidence reaches the caller's threshold; otherwise it is one
piece of evidence among the free-text rules and the model (see ``classifier.categorize``). The
free-text parser's ``text:*`` guesses are never decisive: they come from a few keywords.

``not-spam`` (RFC 6430) is not abuse at all: it maps to ``NOT_ABUSE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..core.policy import NOT_ABUSE, TYPES, Evidence
from ..parsers.base import Format
from ..parsers.registry import catalog_version, known_formats

# -- the tables: each format's own (parsers/formats/*.py), collected by the registry ---------

# -- lookup ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableHit:
    """What a table says about one type hint."""

    type: str  # one of core.policy.TYPES, or NOT_ABUSE
    confidence: float
    evidence: Evidence  # "table:<vocabulary>:<key>"
    vocabulary: str
    decisive: bool  # may decide the type on its own (not a text:* keyword guess)


_SEPARATORS = re.compile(r"[\s_-]+")
MAX_HINT_CHARS = 200


def compact(key: str) -> str:
    """The comparison form of a key: lower case without hyphens, underscores or blanks."""
    return _SEPARATORS.sub("", key.strip().lower())


def _snake(key: str) -> str:
    return _SEPARATORS.sub("_", key.strip().lower()).strip("_")


def _index(tables: dict[str, dict[str, tuple[str, float]]]
           ) -> dict[str, dict[str, tuple[str, str, float]]]:
    """vocabulary -> compact key -> (key as written, type, confidence); refuses clashes."""
    index: dict[str, dict[str, tuple[str, str, float]]] = {}
    for vocabulary, table in tables.items():
        entries: dict[str, tuple[str, str, float]] = {}
        for key, (type_, confidence) in table.items():
            _check(f"{vocabulary}:{key}", type_, confidence)
            if compact(key) in entries:
                raise ValueError(f"taxonomy: {vocabulary}:{key} clashes with "
                                 f"{vocabulary}:{entries[compact(key)][0]}")
            entries[compact(key)] = (key, type_, confidence)
        index[vocabulary] = entries
    return index


def _check(where: str, type_: str, confidence: float) -> None:
    if type_ not in TYPES and type_ != NOT_ABUSE:
        raise ValueError(f"taxonomy: {where} maps to {type_!r}, not one of the policy's types")
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"taxonomy: {where} has confidence {confidence} outside (0, 1]")


def _compile(patterns: dict[str, list[tuple[str, str, float]]]
             ) -> dict[str, list[tuple[re.Pattern[str], str, float]]]:
    for vocabulary, rules in patterns.items():
        for pattern, type_, confidence in rules:
            _check(f"{vocabulary}:/{pattern}/", type_, confidence)
    return {v: [(re.compile(p), t, c) for p, t, c in rules] for v, rules in patterns.items()}


@dataclass(frozen=True)
class _Tables:
    index: dict[str, dict[str, tuple[str, str, float]]]
    compiled: dict[str, list[tuple[re.Pattern[str], str, float]]]
    hint_only: frozenset[str]


def _patterns_of(formats: Mapping[str, Format]
                 ) -> dict[str, list[tuple[re.Pattern[str], str, float]]]:
    return _compile({name: list(f.patterns) for name, f in formats.items() if f.patterns})


def _tables_of(formats: Mapping[str, Format],
               compiled: dict[str, list[tuple[re.Pattern[str], str, float]]] | None = None
               ) -> _Tables:
    return _Tables(
        _index({name: dict(f.vocabulary) for name, f in formats.items() if f.vocabulary}),
        _patterns_of(formats) if compiled is None else compiled,
        frozenset(name for name, f in formats.items() if f.hint_only))


_COMPILED = _patterns_of(known_formats())  # the built-in formats' patterns
_BUILTIN = _tables_of(known_formats(), _COMPILED)
_live: tuple[int, _Tables] = (catalog_version(), _BUILTIN)


def _tables() -> _Tables:
    """The tables of every known format, the plugins' too (rebuilt when one is added)."""
    global _live
    version = catalog_version()
    if _live[0] != version:
        _live = (version, _tables_of(known_formats()))
    return _live[1]


# Read-only views of the built-in formats' tables, for tests and documentation.
TABLES = MappingProxyType({name: MappingProxyType(dict(f.vocabulary))
                           for name, f in known_formats().items() if f.vocabulary})
PATTERNS = MappingProxyType({name: tuple(f.patterns)
                             for name, f in known_formats().items() if f.patterns})
HINT_ONLY_VOCABULARIES = _BUILTIN.hint_only


def split_hint(type_hint: str) -> tuple[str, str]:
    """``"xarf4:connection/port_scan"`` -> ``("xarf4", "connection/port_scan")``."""
    vocabulary, _, key = type_hint[:MAX_HINT_CHARS].partition(":")
    return vocabulary.strip().lower(), key.strip()


def lookup(type_hint: str) -> TableHit | None:
    """The table's answer for a parser's type hint; None for a hint no table knows."""
    vocabulary, key = split_hint(type_hint)
    if not key:
        return None
    tables = _tables()
    decisive = vocabulary not in tables.hint_only
    found = tables.index.get(vocabulary, {}).get(compact(key))
    if found is not None:
        written, type_, confidence = found
        evidence = Evidence(f"table:{vocabulary}:{written}", confidence, f"{type_hint} -> {type_}")
        return TableHit(type_, confidence, evidence, vocabulary, decisive)
    snake = _snake(key)
    for pattern, type_, confidence in tables.compiled.get(vocabulary, ()):
        if pattern.search(snake):
            evidence = Evidence(f"table:{vocabulary}:{snake}", confidence,
                                f"{type_hint} matches /{pattern.pattern}/ -> {type_}")
            return TableHit(type_, confidence, evidence, vocabulary, decisive)
    return None
