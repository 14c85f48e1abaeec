"""What every parser takes and gives: the normalized report, the result, the parser interface.

A parser is one small class in its own module (``parsers/arf.py``, ...) with a ``name``, a
``stage`` and two methods::

    class ArfParser:
        name = "arf"
        stage = Stage.STRUCTURAL

        def matches(self, mail: Mail) -> bool: ...      # cheap: headers, content types
        def parse(self, mail: Mail) -> ParseResult: ...  # may raise: the message goes to review

The registry (``parsers/registry.py``) tries structural formats first, then sender-specific ones,
then free text, and takes the first result with a disposition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from ..core.fields import iso_z
from ..core.mail import Mail


class Disposition(enum.StrEnum):
    REPORT = "report"  # a complaint: one or more reports
    IGNORED = "ignored"  # bounces, read receipts, auto-replies, other desks' acknowledgements
    REPLY = "reply"  # a reply to one of our own notices


class Stage(enum.IntEnum):
    """The order in which the registry tries parsers."""

    GUARD = 0  # replies to us, bounces, auto-replies: decided before anything else
    STRUCTURAL = 1  # formats recognisable by structure: ARF, X-ARF, XARF JSON, ACNS, CSV
    SENDER = 2  # sender-specific layouts: SpamCop text, Shadowserver, ...
    FALLBACK = 3  # free text: always matches


class Role(enum.StrEnum):
    """What the words around an address say it is, from the complaint's point of view."""

    OFFENDER = "offender"  # labelled as the accused: source, attacker, infected, bot, spamming
    MENTIONED = "mentioned"  # named with no label: perhaps the offender
    C2 = "c2"  # a control server or sinkhole the offender talked to
    VICTIM = "victim"  # attacked: destination, target, honeypot, the reporter's own server
    REPORTER = "reporter"  # the reporter's own infrastructure: its relays, its mail servers
    RELAY = "relay"  # a mailbox provider's internal hop, a forwarder
    RANGE = "range"  # the start or end of a range (a WHOIS inetnum, a CIDR), not a host


# Roles that never make a report of their own, even when the address is the provider's.
NOT_OFFENDERS = frozenset({Role.VICTIM, Role.REPORTER, Role.RELAY, Role.RANGE})


@dataclass
class Candidate:
    """An address a message offers as perhaps the offender, with what surrounds it: the
    classifier keeps the candidates that are the provider's own (``classifier/offenders.py``)."""

    value: str  # an IP address (normalized) or a host name (lower case)
    role: Role = Role.MENTIONED
    weight: float = 0.5  # how strongly its context says "the accused" (0..1)
    port: int | None = None  # its own port (a source port, the open service's port)
    occurred_at: datetime | None = None  # UTC, from the same row or line
    occurred_raw: str | None = None
    context: str = ""  # the label, column or line it was found in (bounded)
    type_hint: str | None = None  # a type stated for this row (a CERT's table)

    @property
    def is_ip(self) -> bool:
        return ":" in self.value or self.value.replace(".", "").isdigit()


@dataclass
class ParsedReport:
    """One complaint, in the source's terms; the classifier maps it to our categories."""

    format: str
    type_hint: str | None = None  # source vocabulary: "arf:abuse", "xarf4:connection/port_scan"
    source_ip: str | None = None
    source_port: int | None = None
    occurred_at: datetime | None = None  # UTC
    occurred_raw: str | None = None  # the string it came from
    urls: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    reporter_address: str | None = None
    reporter_org: str | None = None
    evidence: str | None = None  # an excerpt, bounded
    incidents: int = 1
    inferred: list[str] = field(default_factory=list)  # fields we deduced rather than read
    warnings: list[str] = field(default_factory=list)
    review_reasons: list[str] = field(default_factory=list)  # why a person must look at it
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific fields
    # Other addresses the report offers, with their roles (free text, tables): the classifier
    # may make a report of each that is the provider's own. Empty: the fields above decide.
    candidates: list[Candidate] = field(default_factory=list)

    MAX_EVIDENCE: ClassVar[int] = 4096

    @property
    def needs_review(self) -> bool:
        return bool(self.review_reasons)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["occurred_at"] = iso_z(self.occurred_at)
        for candidate in doc["candidates"]:
            candidate["occurred_at"] = iso_z(candidate["occurred_at"])
            candidate["role"] = str(candidate["role"])
        doc["needs_review"] = self.needs_review
        return doc


@dataclass
class ParseResult:
    """What one message is: its disposition, its format, its reports, and what went wrong."""

    disposition: Disposition
    format: str
    reports: list[ParsedReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the message could not be fully read
    review_reasons: list[str] = field(default_factory=list)  # message-level: a person decides
    parser: str | None = None  # the parser that produced it
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a reply's case reference

    @property
    def needs_review(self) -> bool:
        return bool(self.review_reasons) or any(r.needs_review for r in self.reports)


@dataclass(frozen=True)
class Format:
    """What one report format is, declared in the file of the parser that reads it
    (``parsers/formats/NAME.py``); the registry collects them (README, "Adding a format").

    *name* is what its reports and results carry (``format``) and the vocabulary of its type
    hints (``<name>:<key>``). *machine*: machines send it (feedback loops, scanners,
    blocklists, copyright robots): its senders get no acknowledgement, and notices name the
    sender by domain. *vocabulary*: its type keys, as the source writes them, to the policy's
    type and how much the key alone tells (0..1); *patterns*: ``(regex, type, confidence)``
    tried in order after the exact keys (``classifier/taxonomy.py``). *hint_only*: its hints
    are evidence, never a decision (free text's keyword guesses). *trusted_senders*: the
    reporters known to send it, ``(name, (address or domain patterns))``, trusted when DKIM
    proves them (``classifier.use_default_trusted_reporters``)."""

    name: str
    machine: bool = False
    vocabulary: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    patterns: tuple[tuple[str, str, float], ...] = ()
    hint_only: bool = False
    trusted_senders: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Parser(Protocol):
    name: str
    stage: Stage

    @property
    def formats(self) -> tuple[Format, ...]: ...  # the formats its results carry

    @property
    def order(self) -> int: ...  # where it stands in its stage (lower first)

    def matches(self, mail: Mail) -> bool: ...

    def parse(self, mail: Mail) -> ParseResult | None: ...  # None: not this parser's after all
