"""DKIM verification, bounded, and DMARC's relaxed alignment of domains.

Verification is bounded (:class:`DkimLimits`, from ``[parsers]`` ``dkim_*``): a header block
larger than ``max_header_bytes`` is not given to dkimpy at all ("not verified: header block too
large"), and the header block it is given is split in linear time (dkimpy's own reader appends
each folded line to the value so far, which is quadratic: an 11 MB Subject folded into 700,000
lines took minutes). At most ``max_signatures`` signatures are checked (a message can carry a
hundred, each naming a DNS name the sender chose), with one TXT lookup each, each within
``dns_timeout_s`` and all of them within ``dns_budget_s``. A lookup that times out or finds no
server, or one the budget no longer allows, is "could not check" (``temperror``), not "does not
verify" (``fail``): a timeout, SERVFAIL from every server, no resolver configured, a socket
error. Nothing the message or the DNS does raises out of :func:`verify_dkim`. The DNS lookup is
injectable, so tests run offline with their own keys.

Alignment is DMARC's relaxed alignment: the signing domain ``d=`` and the From domain have the
same organisational domain under the public suffix list. Who is trusted, and what a boundary
MTA's Authentication-Results prove, is :mod:`classifier.trust`.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import InvalidTagValueList, parse_tag_value
from publicsuffixlist import PublicSuffixList

if TYPE_CHECKING:
    from ..core.config import ParserLimits

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


def short_reason(text: str) -> str:
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
        return SignatureCheck(domain, selector, False, short_reason(reason), temperror)

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
    log = logging.Logger("classifier.signatures.dkim", logging.ERROR)  # private: not in the tree
    log.addHandler(errors)
    try:
        verifier = _Verifier(raw, logger=log, timeout=limits.dns_timeout_s)
    except Exception as exc:  # an unreadable header block: nothing can verify
        return DkimResult(False, [], short_reason(
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
