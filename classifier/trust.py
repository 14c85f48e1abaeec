"""Is the reporter who its From says? DKIM verification and the list of trusted reporters.

Anyone can write ``From: feedback@arf.mail.yahoo.com``. A report is trusted only when its From
names a listed reporter *and* a DKIM signature that verifies was made by the same organisation
(relaxed alignment, as in DMARC: the signing domain ``d=`` and the From domain have the same
organisational domain under the public suffix list). A report that claims a trusted reporter
but cannot prove it is not trusted and goes to a person with the reason; a report from someone
who is not on the list is simply not trusted (most reporters are not, and that is no reason to
look at it).

Verification is bounded (:class:`DkimLimits`, from ``[parsers]`` ``dkim_*``): a header block
larger than ``max_header_bytes`` is not given to dkimpy at all ("not verified: header block too
large"), and the header block it is given is split in linear time (dkimpy's own reader appends
each folded line to the value so far, which is quadratic: an 11 MB Subject folded into 700,000
lines took minutes). At most ``max_signatures`` signatures are checked (a message can carry a
hundred, each naming a DNS name the sender chose), with one TXT lookup each, each within
``dns_timeout_s`` and all of them within ``dns_budget_s``. A lookup that times out or finds no
server, or one the budget no longer allows, is "could not check" (``temperror``), not "does not
verify" (``fail``): a timeout, SERVFAIL from every server, no resolver configured, a socket
error. A claimed trusted reporter whose DKIM could not be checked is ``Trust.could_not_check``
(evidence :data:`COULD_NOT_CHECK`): the pipeline examines the message again later, with backoff,
before it goes to a person with "DKIM could not be checked (DNS ...)"
(``pipeline.dkim_retries``). Nothing the message or the DNS does raises out of
:func:`verify_dkim`. The DNS lookup is injectable, so tests run offline with their own keys.

Behind a boundary MTA that already checked DKIM and DMARC (``classifier.authserv_id``, its
RFC 8601 authserv-id), its Authentication-Results are used when present
(:func:`boundary_verdict`): only the topmost run of headers with that authserv-id counts (any
other can be written by the sender); ``dmarc=pass`` or ``dkim=pass`` with a ``header.d`` aligned
with the From prove the reporter like a signature verified here, with no DNS asked;
``temperror`` is "could not check"; any other result is "does not verify" (unless a signature
verifies here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..core.headers import first_address, read_top_headers
from ..core.policy import Evidence
from ..parsers.registry import known_formats
from .authentication import header_fields, trusted_results
from .signatures import (
    DkimResult,
    DkimStatus,
    aligned,
    normalize_domain,
    organisational_domain,
    short_reason,
)

# -- trusted reporters ------------------------------------------------------------------------

_DOMAIN_PATTERN = re.compile(r"(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)+")


def _check_pattern(pattern: str) -> str:
    """``feedback@arf.mail.yahoo.com`` (an address), ``takedown-response+*@netcraft.com``
    (a glob in the local part), ``netcraft.com`` (any address at exactly that domain),
    ``*.spamcop.net`` (any address at a subdomain of it, not at spamcop.net itself)."""
    text = pattern.strip().lower()
    local, at, domain = text.rpartition("@")
    if (at and not local) or not _DOMAIN_PATTERN.fullmatch(normalize_domain(domain)) \
            or any(c.isspace() for c in local):
        raise ValueError(f"{pattern!r} is not an address, a domain or *.domain")
    return f"{local}@{normalize_domain(domain)}" if at else normalize_domain(domain)


@dataclass(frozen=True)
class TrustedReporter:
    """A reporter whose reports we trust, and the From addresses it writes from."""

    name: str
    senders: tuple[str, ...]
    require_dkim: bool = True  # False: the From alone is believed (only for senders that
    #                            cannot sign; anyone can forge it)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a trusted reporter needs a name")
        if not self.senders:
            raise ValueError(f"trusted reporter {self.name!r} has no senders")
        object.__setattr__(self, "senders", tuple(_check_pattern(s) for s in self.senders))


def _domain_matches(pattern: str, domain: str) -> bool:
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:])
    return domain == pattern


def sender_matches(pattern: str, address: str) -> bool:
    """Whether a From *address* (lower case) is one a checked *pattern* describes."""
    local, _, domain = address.rpartition("@")
    p_local, at, p_domain = pattern.rpartition("@")
    if at and not fnmatchcase(local, p_local):
        return False
    return _domain_matches(p_domain, normalize_domain(domain))


def _specificity(pattern: str) -> tuple[int, int]:
    """A full address beats a local-part glob beats a domain beats *.domain; then longer."""
    local, at, domain = pattern.rpartition("@")
    if at:
        rank = 2 if any(c in local for c in "*?[") else 3
    else:
        rank = 0 if domain.startswith("*.") else 1
    return rank, len(domain)


@dataclass(frozen=True)
class Trust:
    trusted: bool
    reporter: str | None  # the trusted reporter the From claims, trusted or not
    evidence: list[Evidence]
    reason: str  # a review reason; empty when there is nothing for a person to look at
    # A claimed trusted reporter whose DKIM could not be checked (the DNS did not answer, or
    # our boundary MTA said temperror): worth trying again later, unlike "does not verify".
    could_not_check: bool = False


# The evidence name that marks "could not check" in a decision's trust evidence (the pipeline
# retries such a message: workflow/pipeline.py).
COULD_NOT_CHECK = "trust:could-not-check"


@dataclass(frozen=True)
class BoundaryVerdict:
    """What our boundary MTA's Authentication-Results say of a From domain's DKIM/DMARC."""

    status: DkimStatus  # PASS, TEMPERROR, FAIL (checked, nothing aligned passed)
    signer: str | None  # the aligned d= (or the From domain for dmarc=pass)
    reason: str


def boundary_verdict(raw: bytes, from_domain: str, authserv_id: str) -> BoundaryVerdict | None:
    """The verdict of the topmost Authentication-Results headers (RFC 8601) whose authserv-id
    is *authserv_id* (our boundary MTA; any other is forgeable, and so is one below a header
    of another server), on *from_domain*: ``dmarc=pass`` or ``dkim=pass`` with an aligned
    ``header.d`` pass; ``dkim``/``dmarc`` ``temperror`` (and nothing passed) is "could not
    check"; any other result is "checked, does not verify". None: no such header, or none
    with a DKIM or DMARC result (SPF alone says nothing of a reporter's signature)."""

    if not authserv_id.strip():
        return None
    try:
        results = [r for r in trusted_results(header_fields(raw), authserv_id)
                   if r.method in ("dkim", "dmarc")]
    except Exception:  # an unreadable header block: our MTA's word cannot be read
        return None
    if not results:
        return None
    where = f"Authentication-Results of {authserv_id}"
    dmarc = [r for r in results if r.method == "dmarc"]
    if dmarc and all(r.result == "pass" for r in dmarc):
        stated = [r.properties.get("header.from") for r in dmarc]
        if all(s is None or normalize_domain(s.rpartition("@")[2]) == from_domain
               for s in stated):
            return BoundaryVerdict(DkimStatus.PASS, from_domain,
                                   f"{where}: dmarc=pass for {from_domain}")
    for result in results:
        signer = result.properties.get("header.d") or result.properties.get("header.i")
        if result.method == "dkim" and result.result == "pass" and signer:
            domain = normalize_domain(signer.rpartition("@")[2])
            if aligned(domain, from_domain):
                return BoundaryVerdict(DkimStatus.PASS, domain,
                                       f"{where}: dkim=pass header.d={domain}")
    said = ", ".join(f"{r.method}={r.result}" for r in results[:8])
    if any(r.result == "temperror" for r in results):
        return BoundaryVerdict(DkimStatus.TEMPERROR, None, short_reason(f"{where}: {said}"))
    return BoundaryVerdict(DkimStatus.FAIL, None, short_reason(
        f"{where}: {said}, nothing aligned with {from_domain} passed"))


def _temporary_detail(dkim: DkimResult) -> str:
    """Why a DKIM check could not be made, in a few words: the first signature whose key
    lookup did not answer ("DNS lookup of ... failed: Timeout ...")."""
    for check in dkim.checks:
        if check.temperror:
            return short_reason(check.reason)
    return short_reason(dkim.reason)


# Weights: how far each fact supports believing the reporter is who it says.
_CLAIM_WEIGHT = 0.0  # a From line proves nothing
_FROM_ONLY_WEIGHT = 0.5
_ALIGNED_WEIGHT = 1.0


def _dkim_evidence(result: DkimResult) -> Evidence:
    return Evidence(f"dkim:{result.status}", 1.0 if result.passed else 0.0, result.reason)


@dataclass
class TrustPolicy:
    """The trusted reporters. A later reporter with the name of an earlier one replaces it (so
    configuration listed after the defaults overrides them); when several match a From, the
    most specific sender pattern wins."""

    reporters: list[TrustedReporter]
    # The authserv-id of our boundary MTA (classifier.authserv_id): its Authentication-Results,
    # when present, decide like a signature verified here. "": none is believed.
    authserv_id: str = ""

    def __post_init__(self) -> None:
        by_name: dict[str, TrustedReporter] = {}
        for reporter in self.reporters:
            by_name.pop(reporter.name.strip().lower(), None)
            by_name[reporter.name.strip().lower()] = reporter
        self.reporters = list(by_name.values())

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]]) -> TrustPolicy:
        """From ``[[classifier.trusted_reporters]]`` tables: ``name``, ``senders`` (or ``from``),
        ``require_dkim`` (default true). ValueError names the entry and the key."""
        return cls([_reporter_from_config(n, entry) for n, entry in enumerate(entries, 1)])

    def claimed(self, address: str) -> tuple[TrustedReporter, str] | None:
        """The reporter (and its pattern) that a From *address* claims to be, if any."""
        best: tuple[tuple[int, int], int, TrustedReporter, str] | None = None
        for position, reporter in enumerate(self.reporters):
            for pattern in reporter.senders:
                if sender_matches(pattern, address):
                    candidate = (_specificity(pattern), -position, reporter, pattern)
                    if best is None or candidate[:2] > best[:2]:
                        best = candidate
        return None if best is None else (best[2], best[3])

    def assess(self, raw: bytes, from_address: str | None, dkim: DkimResult) -> Trust:
        """Whether the report in *raw* comes from a trusted reporter. *from_address* is the
        From the pipeline read (read from *raw* when None); *dkim* is :func:`verify_dkim`'s
        result for *raw*."""
        address = (from_address or first_address(read_top_headers(raw).from_) or "").lower()
        dkim_fact = _dkim_evidence(dkim)
        if "@" not in address:
            return Trust(False, None, [Evidence("trust:no-from", 0.0, "no From address"),
                                       dkim_fact], "")
        claim = self.claimed(address)
        if claim is None:
            return Trust(False, None, [Evidence(
                "trust:unknown-reporter", 0.0,
                f"{address} is not a trusted reporter"), dkim_fact], "")
        reporter, pattern = claim
        domain = normalize_domain(address.rpartition("@")[2])
        claims = Evidence("trust:claims", _CLAIM_WEIGHT,
                          f"From {address} matches {reporter.name} ({pattern})")
        boundary = boundary_verdict(raw, domain, self.authserv_id)
        if boundary is not None and boundary.status is DkimStatus.PASS:
            return Trust(True, reporter.name, [claims, Evidence(
                "auth-results:pass", _ALIGNED_WEIGHT, boundary.reason), Evidence(
                "dkim:aligned", _ALIGNED_WEIGHT,
                f"{boundary.signer} aligns with From domain {domain} (our boundary MTA)")], "")
        signer = next((d for d in dkim.domains if aligned(d, domain)), None)
        if signer is not None:
            org = organisational_domain(domain)
            return Trust(True, reporter.name, [claims, dkim_fact, Evidence(
                "dkim:aligned", _ALIGNED_WEIGHT,
                f"d={signer} aligns with From domain {domain} (organisation {org})")], "")
        if not reporter.require_dkim:
            return Trust(True, reporter.name, [claims, dkim_fact, Evidence(
                "trust:from-only", _FROM_ONLY_WEIGHT,
                f"{reporter.name} is trusted by its From alone (require_dkim is off)")], "")
        unaligned = (f"signed by {', '.join(dkim.domains)}, not by {domain}'s organisation"
                     if dkim.domains else dkim.reason)
        facts = [claims, dkim_fact]
        if boundary is not None:
            facts.append(Evidence(f"auth-results:{boundary.status}", 0.0, boundary.reason))
        # Our MTA's word that it checked and nothing passed is final; its temperror, or none
        # of its word, leaves our own check: "could not check" when the DNS did not answer.
        temporary = (boundary.status is DkimStatus.TEMPERROR if boundary is not None
                     else dkim.status is DkimStatus.TEMPERROR and not dkim.domains)
        if boundary is not None and boundary.status is DkimStatus.TEMPERROR \
                and dkim.status is DkimStatus.FAIL:
            temporary = False  # our own check reached the key: the signature does not verify
        if temporary:
            detail = (boundary.reason if boundary is not None
                      and dkim.status is not DkimStatus.TEMPERROR else _temporary_detail(dkim))
            facts += [Evidence("dkim:not-aligned", 0.0, unaligned),
                      Evidence(COULD_NOT_CHECK, 0.0, detail)]
            return Trust(False, reporter.name, facts,
                         f"claims to be {reporter.name} but DKIM could not be checked "
                         f"({detail}) for {domain}", could_not_check=True)
        if dkim.status is DkimStatus.POLICY and not dkim.domains:
            why = f"DKIM was not checked ({dkim.reason})"
        else:
            why = "DKIM does not verify"
        facts.append(Evidence("dkim:not-aligned", 0.0, unaligned))
        return Trust(False, reporter.name, facts, f"claims to be {reporter.name} but {why} "
                                                  f"for {domain}")


_CONFIG_KEYS = ("from", "name", "require_dkim", "senders")


def _reporter_from_config(number: int, entry: Mapping[str, Any]) -> TrustedReporter:
    where = f"trusted reporter {number}"
    unknown = sorted(set(entry) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(_CONFIG_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: name must be a non-empty string")
    senders = entry.get("senders", entry.get("from", []))
    if isinstance(senders, str):
        senders = [senders]
    if not isinstance(senders, list | tuple) or not senders \
            or not all(isinstance(s, str) for s in senders):
        raise ValueError(f"{where} ({name}): senders must be a non-empty list of strings")
    require_dkim = entry.get("require_dkim", True)
    if not isinstance(require_dkim, bool):
        raise ValueError(f"{where} ({name}): require_dkim must be true or false")
    try:
        return TrustedReporter(name.strip(), tuple(senders), require_dkim)
    except ValueError as exc:
        raise ValueError(f"{where} ({name}): {exc}") from None


# Well-known feedback loops and notice senders, by the From addresses seen on their reports:
# each format names the reporters known to send it (parsers/formats/*.py, trusted_senders).
# All require DKIM; override one by listing a reporter of the same name in
# [[classifier.trusted_reporters]], or turn them all off with
# classifier.use_default_trusted_reporters = false.
DEFAULT_TRUSTED_REPORTERS: tuple[TrustedReporter, ...] = tuple(
    TrustedReporter(name, senders)
    for fmt in known_formats().values() for name, senders in fmt.trusted_senders)
