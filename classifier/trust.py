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

import enum
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import InvalidTagValueList, parse_tag_value
from publicsuffixlist import PublicSuffixList

from classifier.types import Evidence
from parsers.headers import first_address, read_top_headers

if TYPE_CHECKING:
    from abuse_desk.config import ParserLimits

MAX_SIGNATURES = 3
DNS_TIMEOUT_S = 2.0
DNS_BUDGET_S = 5.0
MAX_HEADER_BYTES = 256 * 1024
MAX_REASON_CHARS = 300

# dkimpy asks for a TXT record by name (b"sel._domainkey.example.com.") and wants its text.
DnsLookup = Callable[[bytes], bytes | None]


# -- DKIM -------------------------------------------------------------------------------------


class DkimStatus(enum.StrEnum):
    """The result of DKIM for a message, in RFC 8601's words."""

    PASS = "pass"  # a signature verified
    FAIL = "fail"  # signatures were checked and none verified
    NONE = "none"  # no signature
    TEMPERROR = "temperror"  # could not check: DNS timed out, no server, or the budget was spent
    POLICY = "policy"  # not checked: the message is past what we verify (header block too large)


@dataclass(frozen=True)
class DkimLimits:
    """What verifying one message may cost (``[parsers]`` ``dkim_*`` in the configuration)."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_signatures: int = MAX_SIGNATURES
    dns_timeout_s: float = DNS_TIMEOUT_S
    dns_budget_s: float = DNS_BUDGET_S

    @classmethod
    def from_config(cls, limits: ParserLimits) -> DkimLimits:
        return cls(max_header_bytes=limits.dkim_max_header_bytes,
                   max_signatures=limits.dkim_max_signatures,
                   dns_timeout_s=limits.dkim_dns_timeout_s,
                   dns_budget_s=limits.dkim_dns_budget_s)


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on one DKIM-Signature header."""

    domain: str  # d=, lower case; "" when the header is unreadable
    selector: str  # s=
    passed: bool
    reason: str
    temperror: bool = False  # not checked: its key could not be looked up (not a failure)


@dataclass(frozen=True)
class DkimResult:
    passed: bool  # at least one signature verified
    domains: list[str]  # the d= of the signatures that verified
    reason: str
    checks: list[SignatureCheck] = field(default_factory=list)
    status: DkimStatus | None = None  # None: derived from the fields above

    def __post_init__(self) -> None:
        if self.status is None:
            status = DkimStatus.PASS if self.passed else DkimStatus.NONE if not self.checks \
                else DkimStatus.TEMPERROR if any(c.temperror for c in self.checks) \
                else DkimStatus.FAIL
            object.__setattr__(self, "status", status)

    @property
    def could_not_check(self) -> bool:
        """Not verified because we could not (or would not) check, not because a signature
        failed: a DNS timeout, the DNS budget, a header block too large."""
        return self.status in (DkimStatus.TEMPERROR, DkimStatus.POLICY)


class _ErrorLog(logging.Handler):
    """Keeps what dkimpy logs at ERROR: the only place it says why a key was refused."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class DnsTemporaryError(Exception):
    """The DNS did not answer (timeout, no server): the key is unknown, not absent."""


class _DnsBudget:
    """The lookups one message may still make, and the time they may still take."""

    def __init__(self, limits: DkimLimits) -> None:
        self.limits = limits
        self.lookups = 0
        self._end = time.monotonic() + limits.dns_budget_s

    def refusal(self, name: str) -> str | None:
        """Why *name* may not be looked up any more; None when it may."""
        if self.lookups >= self.limits.max_signatures:
            return (f"DNS lookup of {name} not made: {self.limits.max_signatures} lookups per "
                    "message (parsers.dkim_max_signatures)")
        if self.remaining() <= 0:
            return (f"DNS lookup of {name} not made: the DNS budget of "
                    f"{self.limits.dns_budget_s:g} s per message is spent "
                    "(parsers.dkim_dns_budget_s)")
        return None

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def timeout(self) -> float:
        """The timeout of the next lookup: its own limit, or what is left of the budget."""
        return max(0.01, min(self.limits.dns_timeout_s, self.remaining()))


# Could not check: the DNS did not answer (a timeout, SERVFAIL from every server, no resolver
# configured, a socket error). Anything else a lookup raises is a failed signature.
_TEMPORARY = (DnsTemporaryError, OSError, dkim.DnsTimeoutError)


class _Lookup:
    """Wraps the DNS function: within the message's DNS budget; a lookup that raises becomes
    "no record" with the error kept, and a timeout is marked temporary (could not check)."""

    def __init__(self, dns: DnsLookup, budget: _DnsBudget) -> None:
        self._dns = dns
        self._budget = budget
        self.error: str | None = None
        self.temporary = False

    def __call__(self, name: bytes, timeout: float = DNS_TIMEOUT_S) -> bytes | None:
        shown = name.decode("ascii", "replace")
        refusal = self._budget.refusal(shown)
        if refusal is not None:
            self.error, self.temporary = refusal, True
            return None
        self._budget.lookups += 1
        try:
            return self._dns(name)
        except Exception as exc:  # any resolver failure is a failed signature, never a crash
            self.error = f"DNS lookup of {shown} failed: {exc.__class__.__name__}: {exc}"
            self.temporary = isinstance(exc, _TEMPORARY)
            return None


def _system_dns(name: bytes, timeout: float) -> bytes | None:
    """The TXT record *name* (its strings joined, as dkimpy does), or None when the name or
    the record does not exist; DnsTemporaryError when no answer came within *timeout*."""
    import dns.exception
    import dns.name
    import dns.rdatatype
    import dns.resolver

    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        return None  # d= and s= are ASCII (A-labels): such a name does not exist
    try:
        answer = dns.resolver.resolve(text, dns.rdatatype.TXT, raise_on_no_answer=False,
                                      lifetime=timeout, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN,
            dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong):
        return None
    except (dns.exception.Timeout, dns.resolver.NoNameservers,
            dns.resolver.NoResolverConfiguration) as exc:
        raise DnsTemporaryError(f"{exc.__class__.__name__}: {exc}") from None
    for rrset in answer.response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return b"".join(next(iter(rrset.items)).strings)
    return None


def _rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse`` (the same result, the same errors) in linear time: it adds
    each folded line to the header's value so far, copying the value each time."""
    headers: list[list[Any]] = []
    lines = re.split(b"\r?\n", message)
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1  # end of the headers; the blank line is not part of the body
            break
        if line[0] in (0x09, 0x20):
            headers[-1][1].append(line + b"\r\n")  # IndexError first, as dkimpy's
        else:
            m = re.match(rb"([\x21-\x7e]+?):", line)
            if m is not None:
                headers.append([m.group(1), [line[m.end(0):] + b"\r\n"]])
            elif not line.startswith(b"From "):
                raise dkim.MessageFormatError(
                    f"Unexpected characters in RFC822 header: {line!r}")
        i += 1
    return [[name, b"".join(parts)] for name, parts in headers], b"\r\n".join(lines[i:])


class _Verifier(dkim.DKIM):
    """dkimpy's verifier reading the message with :func:`_rfc822_parse`."""

    def set_message(self, message: bytes | None) -> None:
        super().set_message(None)
        if message:
            self.headers, self.body = _rfc822_parse(message)


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def header_block_size(raw: bytes, limit: int) -> int | None:
    """The size of *raw*'s header block, or None when it is larger than *limit* bytes (only
    the first *limit* bytes are looked at)."""
    if raw.startswith((b"\n", b"\r\n")):
        return 0
    match = _BLANK_LINE.search(raw, 0, limit + 4)
    if match is not None and match.start() <= limit:
        return match.start()
    return len(raw) if len(raw) <= limit else None


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."


def _tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dict(parse_tag_value(value))
    except (InvalidTagValueList, ValueError):
        return {}


def _tag_text(tags: Mapping[bytes, bytes], tag: bytes) -> str:
    return tags.get(tag, b"").decode("ascii", "replace").strip().rstrip(".").lower()


def _signed_headers(tags: Mapping[bytes, bytes]) -> set[bytes]:
    # A linear split (a regex with blanks around the colon is quadratic on long blank runs).
    return {h.strip().lower() for h in tags.get(b"h", b"").strip().split(b":")}


def _unsigned_tail(verifier: Any, tags: Mapping[bytes, bytes]) -> str | None:
    """With ``l=`` a signature covers only the start of the body: anything could follow."""
    if b"l" not in tags:
        return None
    policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    body = len(policy.canonicalize_body(verifier.body))
    signed = int(tags[b"l"])
    return None if signed >= body else f"l= signs only {signed} of {body} body bytes"


def _check_signature(verifier: Any, index: int, header: bytes, dns: DnsLookup,
                     budget: _DnsBudget, errors: _ErrorLog) -> SignatureCheck:
    tags = _tags(header)
    domain, selector = _tag_text(tags, b"d"), _tag_text(tags, b"s")

    def failed(reason: str, temperror: bool = False) -> SignatureCheck:
        return SignatureCheck(domain, selector, False, _short(reason), temperror)

    if tags and b"from" not in _signed_headers(tags):
        return failed("the signature does not cover From")  # RFC 6376 5.4: From MUST be signed
    lookup = _Lookup(dns, budget)
    errors.messages.clear()
    try:
        ok = verifier.verify(idx=index, dnsfunc=lookup)
        tail = _unsigned_tail(verifier, tags) if ok else None
    except Exception as exc:  # dkimpy's own errors, and hostile input: never a crash
        if lookup.error:
            return failed(lookup.error, lookup.temporary)
        return failed(f"{exc.__class__.__name__}: {exc}")
    if lookup.error:
        return failed(lookup.error, lookup.temporary)
    if not ok:
        return failed(errors.messages[-1] if errors.messages else "signature does not verify")
    if tail:
        return failed(tail)
    return SignatureCheck(domain, selector, True, "pass")


def _summary(checks: list[SignatureCheck], total: int) -> str:
    if not total:
        return "no DKIM signature"
    passed = [c for c in checks if c.passed]
    parts = ([f"DKIM pass for {', '.join(dict.fromkeys(c.domain for c in passed))}"]
             if passed else [])
    parts += [f"d={c.domain or '?'} s={c.selector or '?'}: {c.reason}"
              for c in checks if not c.passed]
    if total > len(checks):
        parts.append(f"only the first {len(checks)} of {total} signatures were checked")
    return "; ".join(parts)


def verify_dkim(raw: bytes, dns: DnsLookup | None = None, *,
                max_signatures: int | None = None,
                limits: DkimLimits | None = None) -> DkimResult:
    """Verify the first ``limits.max_signatures`` DKIM signatures of *raw* (topmost first).

    *dns* takes a TXT name (bytes) and returns the record or None; default: the system
    resolver, each lookup within ``limits.dns_timeout_s`` and all within
    ``limits.dns_budget_s``. Never raises: every failure is in the result's reason, and the
    result's ``status`` tells "does not verify" from "could not check".
    """
    limits = limits or DkimLimits()
    if max_signatures is not None:
        limits = DkimLimits(limits.max_header_bytes, max_signatures, limits.dns_timeout_s,
                            limits.dns_budget_s)
    if header_block_size(raw, limits.max_header_bytes) is None:
        return DkimResult(False, [], (
            f"not verified: header block too large (over {limits.max_header_bytes} bytes, "
            "parsers.dkim_max_header_bytes)"), status=DkimStatus.POLICY)
    errors = _ErrorLog()
    log = logging.Logger("classifier.trust.dkim", logging.ERROR)  # private: not in the tree
    log.addHandler(errors)
    try:
        verifier = _Verifier(raw, logger=log, timeout=limits.dns_timeout_s)
    except Exception as exc:  # an unreadable header block: nothing can verify
        return DkimResult(False, [], _short(
            f"message cannot be read for DKIM: {exc.__class__.__name__}: {exc}"))
    headers = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    budget = _DnsBudget(limits)

    def system_dns(name: bytes) -> bytes | None:
        return _system_dns(name, budget.timeout())

    lookup = dns or system_dns
    checks = [_check_signature(verifier, i, header, lookup, budget, errors)
              for i, header in enumerate(headers[:limits.max_signatures])]
    domains = list(dict.fromkeys(c.domain for c in checks if c.passed and c.domain))
    return DkimResult(bool(domains), domains, _summary(checks, len(headers)), checks)


# -- alignment --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def normalize_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA A-labels (so ``d=`` and a Unicode From compare)."""
    domain = domain.strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


@lru_cache(maxsize=4096)
def organisational_domain(domain: str) -> str | None:
    """The registrable domain (``fbl.comcast.net`` -> ``comcast.net``); None for a public
    suffix itself (``com``, ``co.uk``): nothing can align with those."""
    result: str | None = _psl().privatesuffix(normalize_domain(domain))
    return result


def aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment: the same organisational domain."""
    org = organisational_domain(signing_domain)
    return org is not None and org == organisational_domain(from_domain)


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
    from classifier.authentication import header_fields, trusted_results

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
        return BoundaryVerdict(DkimStatus.TEMPERROR, None, _short(f"{where}: {said}"))
    return BoundaryVerdict(DkimStatus.FAIL, None, _short(
        f"{where}: {said}, nothing aligned with {from_domain} passed"))


def _temporary_detail(dkim: DkimResult) -> str:
    """Why a DKIM check could not be made, in a few words: the first signature whose key
    lookup did not answer ("DNS lookup of ... failed: Timeout ...")."""
    for check in dkim.checks:
        if check.temperror:
            return _short(check.reason)
    return _short(dkim.reason)


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


# Well-known feedback loops and notice senders, by the From addresses seen on their reports
# (../shared/FORMATS.md and the sample corpus). All require DKIM; override one by listing a
# reporter of the same name in [[classifier.trusted_reporters]], or turn them all off with
# classifier.use_default_trusted_reporters = false.
DEFAULT_TRUSTED_REPORTERS: tuple[TrustedReporter, ...] = (
    TrustedReporter("Yahoo CFL", ("feedback@arf.mail.yahoo.com",)),
    # Validity (formerly Return Path) runs these FBLs for mailbox providers.
    TrustedReporter("Validity FBL", ("feedbackloop@*.senderscore.net",)),
    TrustedReporter("Cox FBL", ("feedbackloop@fbl.cox.net",)),
    TrustedReporter("Fastmail FBL", ("feedbackloop@fbl.fastmail.com",)),
    TrustedReporter("Rackspace FBL", ("feedbackloop@fbl.apps.rackspace.com",)),
    TrustedReporter("Spectrum FBL", ("feedbackloop@feedback.postmaster.rr.com",)),
    TrustedReporter("Synacor FBL", ("feedbackloop@fbl.synacor.com",)),
    TrustedReporter("OpenSRS FBL", ("feedbackloop@fbl.hostedemail.com",)),
    TrustedReporter("USA.net FBL", ("feedbackloop@fbl.usa.net",)),
    TrustedReporter("Zoho FBL", ("feedbackloop@fbl.zoho.com",)),
    TrustedReporter("SpamCop", ("*.spamcop.net",)),  # <id>@reports., summaries@admin.
    TrustedReporter("Shadowserver", ("autoreports@shadowserver.org",)),
    TrustedReporter("IP-Echelon", ("ip-echelon.com",)),  # notices.<client>@
    TrustedReporter("Netcraft", ("netcraft.com", "*.netcraft.com")),  # takedown-response+<n>@
    TrustedReporter("abusix", ("abusix.com", "*.abusix.com")),
)
