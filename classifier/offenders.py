"""The offender of a report, decided by the provider's own address space.

A parser that reads free text or a table does not know which of the addresses it found is the
accused: it lists them all as :class:`~parsers.base.Candidate` with what the words around them
say (a role: offender, mentioned, victim, reporter, relay, range ...; a weight; the port and
time of the same row). The provider knows which addresses are its own: the customer index and
the configured ``classifier.own_networks``. So:

* the offenders are the candidates that are ours, strongest role and weight first; a report
  whose candidates name several of our hosts becomes one report per host (each with its own
  port and time, when its row gave them);
* the reporter's own addresses, victims, destinations, relays and the ends of a WHOIS range are
  never the offender, even when they are ours (a complaint about an attack *on* our customer is
  not a complaint about our customer);
* documentation and private ranges count like any other address when they are ours;
* when none is ours, the report keeps the best-labelled candidate, so that it still says whom
  it accuses, and resolves to nobody: the classifier's "no customer" reason sends it to review.

Reports without candidates (the structured formats) pass through unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlsplit

from ..parsers.base import NOT_OFFENDERS, Candidate, ParsedReport, Role

# At most this many reports from one report's candidates: a message naming a thousand of our
# hosts is a table for a person (or a table parser), not a thousand cases.
MAX_EXPANDED = 50

# Review reasons a parser gives for want of an offender: answered once a candidate is ours.
ANSWERED = frozenset({"no offender found in the text"})

# Roles in the order that ranks candidates (before their weight).
_RANK = {Role.OFFENDER: 0, Role.MENTIONED: 1, Role.C2: 2}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> list[Network]:
    """The configured ``own_networks`` as networks (invalid entries are refused by the config)."""
    return [ipaddress.ip_network(v, strict=False) for v in values]


def in_networks(value: str, networks: Sequence[Network]) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def rank(candidate: Candidate) -> tuple[int, float]:
    """Sort key: offender-labelled first, then by weight (higher first)."""
    return _RANK.get(candidate.role, 9), -candidate.weight


def choose(report: ParsedReport, is_ours: Callable[[Candidate, datetime | None], bool],
           *, limit: int = MAX_EXPANDED) -> list[ParsedReport]:
    """The reports *report* stands for: one per candidate that is ours (see the module's
    docstring), or *report* itself with its best-labelled candidate as the offender."""
    if not report.candidates:
        return [report]
    # An address named somewhere as a victim, relay, reporter or range end is not the offender
    # unless it is also labelled the offender somewhere.
    labelled = {c.value for c in report.candidates if c.role is Role.OFFENDER}
    excluded = {c.value for c in report.candidates if c.role in NOT_OFFENDERS} - labelled
    eligible = [c for c in report.candidates
                if c.role not in NOT_OFFENDERS and c.value not in excluded]
    if report.source_ip and report.source_ip not in excluded and \
            all(c.value != report.source_ip for c in eligible):
        # The parser's own pick counts too, when its candidates left it out.
        eligible.append(Candidate(report.source_ip, Role.MENTIONED, 0.5, report.source_port,
                                  report.occurred_at, report.occurred_raw, "source_ip"))
    ranked = sorted(_unique(eligible), key=rank)
    ours: list[Candidate] = []
    for candidate in ranked:
        if is_ours(candidate, candidate.occurred_at or report.occurred_at):
            ours.append(candidate)
    if not ours:
        current = _current(report)
        if current is not None and current not in excluded:
            return [report]  # the parser's own pick stands: it says whom it accuses
        if not ranked:
            return [_without(report, excluded)]
        return [_as(report, ranked[0], single=True)]
    chosen = ours[:limit]
    if len(ours) > limit:
        report.warnings.append(f"{len(ours)} of our addresses named: the first {limit} taken")
    return [_as(report, c, single=len(chosen) == 1) for c in chosen]


def _unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    """The first (best-placed) candidate of each value, with the strongest role seen for it."""
    seen: dict[str, Candidate] = {}
    for c in candidates:
        kept = seen.get(c.value)
        if kept is None:
            seen[c.value] = c
        elif rank(c) < rank(kept):
            seen[c.value] = replace(c, port=c.port or kept.port,
                                    occurred_at=c.occurred_at or kept.occurred_at,
                                    occurred_raw=c.occurred_raw or kept.occurred_raw)
        elif (kept.port is None and c.port is not None) or \
                (kept.occurred_at is None and c.occurred_at is not None):
            seen[c.value] = replace(kept, port=kept.port or c.port,
                                    occurred_at=kept.occurred_at or c.occurred_at,
                                    occurred_raw=kept.occurred_raw or c.occurred_raw)
    return list(seen.values())


def _host(url: str) -> str | None:
    try:
        return urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None


def _current(report: ParsedReport) -> str | None:
    if report.source_ip:
        return report.source_ip
    for url in report.urls:
        host = _host(url)
        if host:
            return host
    return report.domains[0] if report.domains else None


def _without(report: ParsedReport, excluded: set[str]) -> ParsedReport:
    """*report* with an offender that is a victim, relay or range end taken away."""
    if report.source_ip in excluded:
        report.source_ip, report.source_port = None, None
    return report


def _as(report: ParsedReport, c: Candidate, *, single: bool) -> ParsedReport:
    """A copy of *report* accusing *c*: its address, port and time (the report's own time when
    its row gave none). Other URLs and domains stay only when the report has one offender."""
    urls = list(report.urls)
    domains = list(report.domains)
    if c.is_ip:
        source_ip: str | None = c.value
        if not single:
            urls = [u for u in urls if _host(u) == c.value]
            domains = []
    else:
        source_ip = None
        mine = [u for u in urls if (_host(u) or "").lower() == c.value]
        urls = mine + [u for u in urls if u not in mine] if mine and single else mine
        domains = [c.value] + ([d for d in domains if d != c.value] if single else [])
    inferred = list(report.inferred)
    extra = dict(report.extra)
    extra["offender_from"] = {"value": c.value, "role": str(c.role), "weight": c.weight,
                              "context": c.context[:200]}
    occurred_at, occurred_raw = report.occurred_at, report.occurred_raw
    if c.occurred_at is not None:
        occurred_at, occurred_raw = c.occurred_at, c.occurred_raw or occurred_raw
    port = c.port if c.port is not None else (
        report.source_port if source_ip == report.source_ip else None)
    return replace(report, source_ip=source_ip, source_port=port, urls=urls, domains=domains,
                   occurred_at=occurred_at, occurred_raw=occurred_raw, inferred=inferred,
                   extra=extra, warnings=list(report.warnings),
                   review_reasons=[r for r in report.review_reasons if r not in ANSWERED],
                   type_hint=c.type_hint or report.type_hint)
