"""Adversarial inputs for regular expressions, and a CPU-time guard that stops a runaway match.

Python's ``re`` backtracks: a pattern with nested or overlapping quantifiers (``\\s+.*?\\s+``,
``(a|a)*``, ``\\w+\\s*\\w+``) takes quadratic, cubic or exponential time on the right input, and
holds the GIL meanwhile. ``attacks(pattern)`` builds those inputs from the pattern itself, the
way a ReDoS finder does: for every repeat in the parsed pattern, the text that leads up to it
(an example of everything before it), then a long run ("pump") of a character the repeat takes,
preferring characters that other repeats of the same pattern also take (the overlap that makes
backtracking blow up), then a tail that makes the match fail and backtrack. Plus a long run of
every such character alone and the pattern's own example repeated.

``cpu_guard(seconds)`` raises ``Runaway`` once the process has spent that much CPU time in the
block (ITIMER_VIRTUAL, SIGVTALRM): ``re`` checks for signals while it matches, so a
catastrophic match is interrupted instead of hanging the test run, and a loaded machine does
not count against the bound (other processes' CPU is not ours). pytest-timeout uses SIGALRM;
this one does not touch it.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from re import _compiler as sre_compile  # type: ignore[attr-defined]
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# Characters tried as pumps and as examples: whitespace of every kind, letters, digits and the
# punctuation of mail, URLs, XML and JSON, and the Unicode that case-folds or counts as space.
UNIVERSE = (" \t\r\n\x0b\x0caAbByYzZ09.,;:-_@/\\[](){}<>=\"'`#*+?!&|%$^~"
            "é\u00a0\u2028\x85\u017f\u212a\x01")
TAILS = ("", "\x01", "\n!")


class Runaway(Exception):
    """The guarded block used up its CPU time."""


@contextmanager
def cpu_guard(seconds: float) -> Iterator[None]:
    """Raise Runaway in the block once it has used ``seconds`` of this process's CPU time."""

    def expired(signum: int, frame: Any) -> None:
        raise Runaway(f"more than {seconds} s of CPU")

    previous = signal.signal(signal.SIGVTALRM, expired)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


Item = tuple[Any, Any]
REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT)


class _Shape:
    """A parsed pattern, with a matcher for any one of its nodes."""

    def __init__(self, pattern: re.Pattern[Any]) -> None:
        source = pattern.pattern
        if isinstance(source, bytes):
            source = source.decode("latin-1")
        # Bytes patterns are parsed as str: every byte is one latin-1 character.
        flags = pattern.flags & ~(re.UNICODE if isinstance(pattern.pattern, bytes) else 0)
        self.flags = flags
        self.tree = sre_parse.parse(source, flags)
        self.state = self.tree.state
        self.literals = "".join(sorted(set(_literals(self.tree.data))))
        self.universe = "".join(dict.fromkeys(UNIVERSE + self.literals))
        self._matchers: dict[int, re.Pattern[str]] = {}
        self.repeats = [av for op, av in _nodes(self.tree.data) if op in REPEATS
                        and av[1] > 1]

    def takes(self, items: Sequence[Item], char: str) -> bool:
        """Whether ``items`` (a sequence of nodes) fully match the one character."""
        key = id(items)
        matcher = self._matchers.get(key)
        if matcher is None:
            sub = sre_parse.SubPattern(self.state, list(items))
            try:
                matcher = sre_compile.compile(sub, self.flags | self.state.flags)
            except Exception:  # a group reference out of context: take nothing
                matcher = re.compile(r"(?!)")
            self._matchers[key] = matcher
        return matcher.fullmatch(char) is not None

    def first(self, items: Sequence[Item], avoid: str = "") -> str:
        return next((c for c in self.universe if c not in avoid and self.takes(items, c)), "a")

    def example(self, data: Sequence[Item]) -> str:
        """Some text that ``data`` matches, or close to it."""
        out: list[str] = []
        for op, av in data:
            if op is C.LITERAL:
                out.append(chr(av))
            elif op in (C.NOT_LITERAL, C.IN, C.ANY):
                out.append(self.first([(op, av)]))
            elif op in REPEATS:
                low, _high, sub = av
                out.append(self.example(sub) * low)
            elif op is C.SUBPATTERN:
                out.append(self.example(av[3]))
            elif op is C.ATOMIC_GROUP:
                out.append(self.example(av))
            elif op is C.BRANCH:
                out.append(self.example(av[1][0]))
            elif op is C.GROUPREF_EXISTS or (op is C.ASSERT and av[0] < 0):
                out.append(self.example(av[1]))
        return "".join(out)

    def overlap(self, char: str) -> int:
        """How many repeats of the pattern take ``char``: the more, the worse a run of it."""
        return sum(1 for _low, _high, sub in self.repeats if self.takes(sub, char))

    def pumps(self, sub: Sequence[Item]) -> list[str]:
        """The characters (and one longer unit) a repeat's body takes, most overlapping first."""
        chars = [c for c in self.universe if self.takes(sub, c)]
        chars.sort(key=lambda c: -self.overlap(c))
        units = chars[:4]
        unit = self.example(sub)
        if len(unit) > 1:
            units.append(unit)
        return units

    def walk(self, data: Sequence[Item], prefix: str) -> Iterator[tuple[str, str]]:
        """(prefix, pump unit) for every repeat, its prefix the text that leads up to it."""
        for i, (op, av) in enumerate(data):
            before = prefix + self.example(data[:i])
            if op in REPEATS:
                _low, high, sub = av
                if high > 1:
                    for unit in self.pumps(sub):
                        yield before, unit
                yield from self.walk(sub, before)
            elif op is C.SUBPATTERN:
                yield from self.walk(av[3], before)
            elif op is C.ATOMIC_GROUP:
                yield from self.walk(av, before)
            elif op is C.BRANCH:
                for alternative in av[1]:
                    yield from self.walk(alternative, before)
            elif op is C.GROUPREF_EXISTS:
                yield from self.walk(av[1], before)
                if av[2] is not None:
                    yield from self.walk(av[2], before)
            elif op in (C.ASSERT, C.ASSERT_NOT):
                yield from self.walk(av[1], before)


def _nodes(data: Sequence[Item]) -> Iterator[Item]:
    for op, av in data:
        yield op, av
        if op in REPEATS:
            yield from _nodes(av[2])
        elif op is C.SUBPATTERN:
            yield from _nodes(av[3])
        elif op is C.ATOMIC_GROUP:
            yield from _nodes(av)
        elif op is C.BRANCH:
            for alternative in av[1]:
                yield from _nodes(alternative)
        elif op is C.GROUPREF_EXISTS:
            yield from _nodes(av[1])
            if av[2] is not None:
                yield from _nodes(av[2])
        elif op in (C.ASSERT, C.ASSERT_NOT):
            yield from _nodes(av[1])


def _literals(data: Sequence[Item]) -> Iterator[str]:
    for op, av in _nodes(data):
        if op is C.LITERAL and av < 0x110000:
            yield chr(av)


Shape = tuple[str, str, str]  # (lead-in, unit pumped, tail)


@cache
def shapes(source: str | bytes, flags: int) -> tuple[Shape, ...]:
    """The attacks on a pattern, as (lead-in, unit, tail): ``lead-in + unit * n + tail``."""
    shape = _Shape(re.compile(source, flags))
    found: dict[Shape, None] = {}

    def add(prefix: str, unit: str) -> None:
        for tail in TAILS:
            found[(prefix, unit, tail)] = None

    for prefix, unit in shape.walk(shape.tree.data, ""):
        add(prefix, unit)
        add("", unit)
        if prefix:
            add("", prefix + unit)  # the lead-in itself repeated: "from x by" over and over
    whole = shape.example(shape.tree.data)
    if whole:
        add("", whole)
        if len(whole) > 1:
            add("", whole[:-1])
    return tuple(found)


def build(pattern: re.Pattern[Any], attack: Shape, size: int) -> str | bytes:
    """The attack ``attack`` on ``pattern`` at about ``size`` characters (bytes for bytes)."""
    prefix, unit, tail = attack
    text = prefix + unit * max(1, (size - len(prefix)) // len(unit)) + tail
    return text.encode("latin-1", "replace") if isinstance(pattern.pattern, bytes) else text


def attacks(pattern: re.Pattern[Any], size: int) -> list[str | bytes]:
    """Hostile inputs of about ``size`` characters for ``pattern``."""
    return [build(pattern, a, size) for a in shapes(pattern.pattern, pattern.flags)]


def run(pattern: re.Pattern[Any], text: str | bytes, uses: Iterable[str]) -> None:
    """Apply ``pattern`` the ways the product does: "search" runs ``finditer`` over the whole
    text (what findall, sub and split do), "match" and "fullmatch" try the start."""
    for use in uses:
        if use == "search":
            for _ in pattern.finditer(text):
                pass
        else:
            getattr(pattern, use)(text)


def cpu_seconds(pattern: re.Pattern[Any], text: str | bytes, uses: Iterable[str],
                limit: float, tries: int = 1) -> float:
    """CPU time ``run`` takes (the least of ``tries``); Runaway past ``limit``."""
    best = limit
    for _ in range(tries):
        with cpu_guard(limit):
            started = time.process_time()
            run(pattern, text, uses)
            best = min(best, time.process_time() - started)
    return best


def growth(pattern: re.Pattern[Any], uses: Iterable[str], size: int, factor: int,
           limit: float) -> Iterator[tuple[str | bytes, float, float]]:
    """(input, CPU time at ``size``, at ``factor`` times ``size``) for each attack input that
    takes long enough at ``size`` to be measured. A linear pattern takes ``factor`` times as
    long on the longer input, a quadratic one ``factor ** 2`` times. Runaway past ``limit``
    (``limit * factor`` for the longer one)."""
    uses = list(uses)
    for attack in shapes(pattern.pattern, pattern.flags):
        small = build(pattern, attack, size)
        if cpu_seconds(pattern, small, uses, limit) >= MEASURABLE_S:  # then measured again
            took = cpu_seconds(pattern, small, uses, limit, tries=2)
            if took < MEASURABLE_S:
                continue  # the first run was slowed by something else
            big = build(pattern, attack, size * factor)
            yield small, took, cpu_seconds(pattern, big, uses, limit * factor, tries=2)


MEASURABLE_S = 0.005
