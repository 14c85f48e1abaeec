"""The classifier's one entry point: a parsed report in, a decision out, with its evidence.

For each report: its category and type (tables for structured formats, rules and the learnt
text model for free text), the customer behind it (source IP at the incident's time and port,
then the hosts of its URLs and domains, then addresses; the resolver hook when the index knows
nobody), whether the reporter is who it claims to be (DKIM), the keys a later copy of it will be
found by, and every reason a specialist must look at it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ..core.config import ClassifierConfig
from ..core.policy import Classification, Evidence
from ..parsers.base import Candidate, ParsedReport
from .categorize import NOT_ABUSE, categorize, is_not_abuse, needs_review, spamvertising_override
from .customers import CustomerIndex, Lookup, Resolution
from .duplicates import duplicate_keys, report_fingerprint
from .model import TextModel
from .offenders import choose, in_networks, parse_networks
from .resolver_hook import ResolverHook
from .signatures import DkimLimits, DkimResult, aligned, normalize_domain, verify_dkim
from .trust import Trust, TrustPolicy


@dataclass(frozen=True)
class MessageFacts:
    """What the classifier needs of the message a report came in."""

    raw: bytes
    from_address: str | None
    message_id: str | None
    # When the desk received it: the time customers are looked up at when a report does not
    # say when its incident happened.
    received_at: datetime
    subject: str = ""


@dataclass
class Decision:
    category: str | None
    type: str | None
    confidence: float
    customer_id: int | None
    external_id: str | None
    not_abuse: bool
    trusted: bool
    review_reasons: list[str]
    fingerprint: str
    duplicate_keys: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)  # stored as reports.decision
    # The reporter proved who it is (see :func:`authentication`); stored in reports.decision
    # as "authenticated": only such claims count toward repeats, escalation, fees and
    # restrictions (workflow/cases.py).
    authenticated: bool = False

    @property
    def needs_review(self) -> bool:
        return bool(self.review_reasons)


def _evidence(items: list[Evidence]) -> list[dict[str, Any]]:
    return [e.to_json() for e in items]


@dataclass(frozen=True)
class ReporterTrust(Trust):
    """:class:`Trust` with whether the reporter is authenticated (what
    :meth:`Classifier.assess_reporter` returns)."""

    authenticated: bool = False
    authentication: Evidence | None = None


def authentication(trust: Trust, dkim: DkimResult, from_address: str | None) -> Evidence | None:
    """Why the reporter of a message is authenticated, or None when it is not: trusted by
    configuration (a listed reporter, DKIM-verified or ``require_dkim = false``), or a DKIM
    signature that verified and aligns with the From domain (DMARC relaxed alignment). Anyone
    can write any From line; only these count toward escalation. (SPF and
    Authentication-Results belong here too.)"""
    if trust.trusted:
        return Evidence("auth:trusted-reporter", 1.0, f"trusted reporter {trust.reporter}")
    domain = normalize_domain((from_address or "").rpartition("@")[2])
    if not domain:
        return None
    signer = next((d for d in dkim.domains if aligned(d, domain)), None)
    if signer is None:
        return None
    return Evidence("auth:dkim-aligned", 1.0, f"DKIM d={signer} aligns with From {domain}")


class Classifier:
    """Built once per worker; *index* and *model* are asked for on each report, so a refreshed
    customer index or a retrained model is used as soon as it exists."""

    def __init__(self, config: ClassifierConfig, index: Callable[[], CustomerIndex],
                 model: Callable[[], TextModel | None], trust: TrustPolicy,
                 hook: ResolverHook | None = None,
                 dns: Callable[..., bytes | None] | None = None,
                 dkim: DkimLimits | None = None) -> None:
        self.config = config
        self._index = index
        self._model = model
        self._trust = trust
        self._hook = hook
        self._dns = dns
        self._dkim = dkim or DkimLimits()
        self._own_networks = parse_networks(config.own_networks)

    def is_ours(self, candidate: Candidate, at: datetime,
                known: Mapping[tuple[str, datetime, int | None], Lookup] | None = None) -> bool:
        """Whether *candidate* is in the provider's own space at *at*: held by a customer (one
        or several: an overlap is still ours) or inside ``own_networks``. *known*: IP lookups
        already made, by (ip, at, port)."""
        if candidate.is_ip and in_networks(candidate.value, self._own_networks):
            return True
        if candidate.is_ip:
            lookup = known.get((candidate.value, at, candidate.port)) if known else None
            if lookup is None:
                lookup = self._index().lookup_ip(candidate.value, at, candidate.port)
        else:
            lookup = self._index().lookup_host(candidate.value, at)
        return bool(lookup.matches or lookup.candidates)

    def offenders(self, reports: list[ParsedReport], received_at: datetime
                  ) -> list[ParsedReport]:
        """The reports *reports* stand for once their candidates are decided by our own space
        (``classifier/offenders.py``): one per offender of ours, else the best-labelled. The
        IP candidates of all the reports are looked up in one batch first."""
        queries = list(dict.fromkeys(
            (c.value, c.occurred_at or report.occurred_at or received_at, c.port)
            for report in reports for c in report.candidates if c.is_ip))
        known = dict(zip(queries, self._index().lookup_ips(queries), strict=True)) \
            if queries else None
        out: list[ParsedReport] = []
        for report in reports:
            out += choose(report, lambda c, at: self.is_ours(c, at or received_at, known))
        return out

    def assess_reporter(self, message: MessageFacts) -> ReporterTrust:
        """Once per message: does the reporter's DKIM back its claimed identity (within the
        DKIM limits: header size, signatures, DNS time), and is the reporter authenticated
        at all?"""
        dkim = verify_dkim(message.raw, dns=self._dns, limits=self._dkim)
        trust = self._trust.assess(message.raw, message.from_address, dkim)
        why = authentication(trust, dkim, message.from_address)
        return ReporterTrust(**{f.name: getattr(trust, f.name) for f in fields(trust)},
                             authenticated=why is not None, authentication=why)

    def resolve(self, report: ParsedReport, received_at: datetime) -> Resolution:
        """The customer behind *report*, at its incident time or else at *received_at*."""
        resolution = self._index().resolve_report(report, received_at)
        if resolution.customer_id is None and self._hook is not None and report.source_ip:
            hooked = self._hook.resolve(report.source_ip, report.source_port,
                                        report.occurred_at or received_at)
            resolution = resolution.with_hook(hooked, self._index())
        return resolution

    def classify(self, report: ParsedReport, message: MessageFacts, trust: Trust,
                 *, forced_type: str | None = None,
                 forced_customer: tuple[int, str] | None = None) -> Decision:
        """Decide one report. *forced_type* / *forced_customer* are a specialist's decision."""
        text = "\n".join(part for part in (message.subject, report.evidence or "") if part)
        if forced_type is not None:
            classification = Classification(
                category=None if forced_type == NOT_ABUSE else _category(forced_type),
                type=None if forced_type == NOT_ABUSE else forced_type, confidence=1.0,
                evidence=[Evidence("specialist", 1.0, f"decided {forced_type}")])
        else:
            classification = categorize(report.type_hint, text, self._model(),
                                        self.config.confidence_threshold)
        not_abuse = forced_type == NOT_ABUSE or is_not_abuse(classification)
        resolution = self.resolve(report, message.received_at)
        if forced_customer is not None:
            resolution = self._index().forced(forced_customer)
        via = {m.via for m in resolution.matches if m.customer_id == resolution.customer_id}
        if forced_type is None and classification.type == "spam":
            classification = spamvertising_override(
                classification, ip_is_ours="source_ip" in via,
                url_is_ours=bool(via & {"url", "domain"}))

        reasons: list[str] = []
        if not not_abuse:
            reasons += report.review_reasons
            reasons += resolution.reasons
            if forced_type is None:
                low = needs_review(classification, self.config.confidence_threshold)
                if low:
                    reasons.append(low)
        if not trust.trusted and trust.reason:
            reasons.append(trust.reason)
        keys = duplicate_keys(report, message.message_id, message.from_address)
        authenticated = trust.trusted or (isinstance(trust, ReporterTrust)
                                          and trust.authenticated)
        auth = trust.authentication if isinstance(trust, ReporterTrust) else None
        return Decision(
            category=classification.category, type=classification.type,
            confidence=classification.confidence, customer_id=resolution.customer_id,
            external_id=resolution.external_id, not_abuse=not_abuse, trusted=trust.trusted,
            review_reasons=_unique(reasons), fingerprint=report_fingerprint(report),
            duplicate_keys=keys, authenticated=authenticated,
            evidence={
                "classification": _evidence(classification.evidence),
                "customer": _evidence(resolution.evidence),
                "matches": [{"customer": m.external_id, "via": m.via, "value": m.value,
                             "resource": m.resource} for m in resolution.matches],
                "disagreements": resolution.disagreements,
                "trust": _evidence(trust.evidence),
                "not_abuse": not_abuse,
                "authenticated": authenticated,
                "authentication": auth.to_json() if auth is not None else None,
            })


def _category(type_: str) -> str:
    from ..core.policy import category_of

    return category_of(type_)



def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))

