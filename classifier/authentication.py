"""Is the sender of a message the owner of its From address? Sender authentication, as DMARC
understands it: a check that passed for a domain *aligned* with the From domain.

Anyone can write any From. The desk answers a message (an acknowledgement) or takes it as a
customer's word (a reply threaded into a case) only when the From is authenticated, by one of:

1. **Authentication-Results** (RFC 8601) written by our own boundary MTA, named by
   ``classifier.authserv_id``: ``dmarc=pass``, or ``dkim=pass`` with ``header.d`` aligned with
   the From domain, or ``spf=pass`` with ``smtp.mailfrom`` aligned. Only the topmost run of
   Authentication-Results headers with that authserv-id counts: a sender can put its own
   ``Authentication-Results: our-mx; dmarc=pass`` into a message, but below the headers our
   MTA prepends. RFC 8601 section 5 asks the MTA to remove such headers with its own
   authserv-id; configure it to (Postfix + OpenDMARC, rspamd and Exim all can). A run that
   holds a ``dmarc`` (or ``spf``) result other than pass never passes by that method.
2. **DKIM** verified here (:func:`classifier.signatures.verify_dkim`) for a ``d=`` aligned with the
   From domain (relaxed: the same organisational domain).
3. **SPF** checked here (pyspf) for the envelope MAIL FROM from the connecting peer's IP, when
   the MAIL FROM domain is aligned with the From domain. Only for a peer with a public address
   (behind a front MTA on a private address every check would name the front MTA; use 1.).
   The check is bounded: RFC 7208's lookup limits (pyspf), ``classifier.spf_timeout_s`` in all,
   and at most ``MAX_SPF_QUERIES`` queries.

A DNS failure, a timeout, a permerror is "could not check": never a pass. Nothing in a message
or the DNS raises out of :meth:`SenderAuthenticator.check`. The DNS is injectable (tests run
offline): ``dkim_dns`` as :func:`classifier.signatures.verify_dkim` takes it, ``spf_dns`` as
:data:`SpfDns` describes.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import spf

from ..core.headers import clean_address, mailboxes, top_header_fields
from .signatures import DkimResult, DnsLookup, aligned, normalize_domain, verify_dkim

log = logging.getLogger(__name__)

MAX_AR_HEADERS = 20  # Authentication-Results headers read from the top
MAX_AR_CHARS = 8_192  # of one Authentication-Results value
MAX_RESULTS = 50  # results read from one Authentication-Results value
MAX_SPF_QUERIES = 30  # DNS queries one SPF check may make, whatever pyspf counts
MAX_REASON_CHARS = 300

# An SPF DNS lookup: (name, qtype) -> records. qtype is "TXT", "A", "AAAA", "MX" or "PTR";
# TXT records as str or bytes (or tuples of them, the strings of one record), A/AAAA as
# address strings, MX as (preference, host), PTR as host names. [] for no record or NXDOMAIN;
# raise (any exception) for a failure: the check is then "could not check".
SpfDns = Callable[[str, str], Sequence[Any]]


@dataclass(frozen=True)
class SenderAuthentication:
    """The verdict on a message's From: ``authenticated`` with ``how`` (dmarc, dkim, spf) and
    ``source`` (authentication-results: our boundary MTA said so; verified: checked here), the
    authenticated From ``address`` and its ``domain``, and the ``reason`` in words."""

    authenticated: bool
    how: str | None
    source: str | None
    address: str | None
    domain: str | None
    reason: str
    checks: list[str] = field(default_factory=list)  # what was tried, in order

    def to_json(self) -> dict[str, Any]:
        return {"authenticated": self.authenticated, "how": self.how, "source": self.source,
                "address": self.address, "domain": self.domain, "reason": self.reason,
                "checks": list(self.checks)}

    @classmethod
    def none(cls, reason: str) -> SenderAuthentication:
        return cls(False, None, None, None, None, _short(reason))


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."


# ---- the From ------------------------------------------------------------------------------

def header_fields(raw: bytes) -> list[tuple[str, str]]:
    return [(str(name), str(value)) for name, value in top_header_fields(raw).items()]


def from_address(fields: Sequence[tuple[str, str]]) -> tuple[str | None, str]:
    """The one address of the one From header (lower case), or (None, why not)."""
    values = [value for name, value in fields if name.lower() == "from"]
    if len(values) != 1:
        return None, f"{len(values)} From headers" if values else "no From header"
    boxes = mailboxes(clean_address(values[0]))
    if len(boxes) != 1:
        return None, "the From does not name exactly one address unambiguously"
    address = boxes[0][1].lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local or domain.startswith("["):
        return None, f"the From address {address!r} has no domain to authenticate"
    return address, ""


# ---- Authentication-Results (RFC 8601) -------------------------------------------------------

@dataclass(frozen=True)
class AuthResult:
    method: str  # dmarc, dkim, spf, ... (lower case)
    result: str  # pass, fail, none, ...
    properties: dict[str, str]  # "header.d" -> "example.org"


def _uncomment(text: str) -> str:
    """*text* without RFC 5322 comments (nested parentheses), quoted strings kept."""
    out: list[str] = []
    depth, quoted, i = 0, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and (quoted or depth):
            if not depth:
                out.append(text[i:i + 2])
            i += 2
            continue
        if c == '"' and not depth:
            quoted = not quoted
        elif c == "(" and not quoted:
            depth += 1
            i += 1
            continue
        elif c == ")" and not quoted and depth:
            depth -= 1
            i += 1
            continue
        if not depth:
            out.append(c)
        i += 1
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    """*text* split at *separator* outside quoted strings."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and quoted:
            current.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


_METHOD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)(?:\s*/\s*\d+)?\s*=\s*([A-Za-z0-9_-]+)")
# From the start of a property name only, names and blanks taken whole: linear on long runs.
_PROPERTY = re.compile(r'(?<![A-Za-z0-9_.-])([A-Za-z0-9_-]++\.[A-Za-z0-9_.-]++)\s*+=\s*+'
                       r'("(?:[^"\\]|\\.)*+"|[^\s;]++)')


def parse_authentication_results(value: str) -> tuple[str, list[AuthResult]]:
    """(authserv-id in lower case, its results) of one Authentication-Results value; ("", [])
    for a value that cannot be read."""
    text = _uncomment(" ".join(value[:MAX_AR_CHARS].split()))
    parts = _split(text, ";")
    head = parts[0].split()
    if not head:
        return "", []
    authserv_id = head[0].strip().rstrip(".").lower()
    results: list[AuthResult] = []
    for part in parts[1:MAX_RESULTS + 1]:
        found = _METHOD.match(part.strip())
        if found is None:
            continue  # "none", or a result we cannot read: it proves nothing
        props: dict[str, str] = {}
        for name, raw_value in _PROPERTY.findall(part[found.end():]):
            if raw_value.startswith('"'):
                raw_value = re.sub(r"\\(.)", r"\1", raw_value[1:-1])
            props.setdefault(name.lower(), raw_value.strip())
        results.append(AuthResult(found.group(1).lower(), found.group(2).lower(), props))
    return authserv_id, results


def trusted_results(fields: Sequence[tuple[str, str]], authserv_id: str) -> list[AuthResult]:
    """The results of the topmost run of Authentication-Results headers with *authserv_id*
    (consecutive header fields; the first other field ends the run)."""
    wanted = authserv_id.strip().rstrip(".").lower()
    if not wanted:
        return []
    found: list[AuthResult] = []
    started, seen = False, 0
    for name, value in fields:
        if name.lower() != "authentication-results":
            if started:
                break
            continue
        seen += 1
        if seen > MAX_AR_HEADERS:
            break
        server, results = parse_authentication_results(value)
        if server == wanted:
            started = True
            found.extend(results)
        elif started:
            break
    return found


def _domain_of(value: str) -> str:
    return normalize_domain(value.rpartition("@")[2])


def judge_results(results: Sequence[AuthResult], from_domain: str) -> tuple[str | None, str]:
    """(the method that authenticates *from_domain*, or None; why) by trusted results."""
    by_method: dict[str, list[AuthResult]] = {}
    for result in results:
        by_method.setdefault(result.method, []).append(result)
    dmarc = by_method.get("dmarc", [])
    if dmarc and all(r.result == "pass" for r in dmarc):
        stated = [r.properties.get("header.from") for r in dmarc]
        if all(s is None or _domain_of(s) == from_domain for s in stated):
            return "dmarc", f"dmarc=pass for {from_domain}"
    for result in by_method.get("dkim", []):
        signer = result.properties.get("header.d") or result.properties.get("header.i")
        if result.result == "pass" and signer and aligned(_domain_of(signer), from_domain):
            return "dkim", f"dkim=pass for {_domain_of(signer)}, aligned with {from_domain}"
    spf_results = by_method.get("spf", [])
    if spf_results and all(r.result == "pass" for r in spf_results):
        for result in spf_results:
            sender = result.properties.get("smtp.mailfrom")
            if sender and aligned(_domain_of(sender), from_domain):
                return "spf", f"spf=pass for {_domain_of(sender)}, aligned with {from_domain}"
    said = ", ".join(f"{r.method}={r.result}" for r in results[:8]) or "no results"
    return None, f"our boundary MTA says {said}: nothing aligned with {from_domain} passed"


# ---- SPF (pyspf, with the DNS of the current check) -------------------------------------------

class _SpfBudget:
    """The DNS of one SPF check: the injected lookup (or the system's), at most
    MAX_SPF_QUERIES queries."""

    def __init__(self, dns: SpfDns | None) -> None:
        self.dns = dns
        self.queries = 0
        self.error: str | None = None

    def __call__(self, name: str, qtype: str, timeout: float) -> list[Any]:
        self.queries += 1
        if self.queries > MAX_SPF_QUERIES:
            self.error = f"more than {MAX_SPF_QUERIES} DNS queries"
            raise spf.TempError(self.error)
        try:
            if self.dns is None:
                return _system_spf_dns(name, qtype, timeout)
            return [((name, qtype), _pyspf_value(qtype, v)) for v in self.dns(name, qtype)]
        except spf.TempError as exc:
            self.error = str(exc)
            raise
        except Exception as exc:  # any resolver failure: could not check
            self.error = f"DNS {qtype} {name}: {exc.__class__.__name__}: {exc}"
            raise spf.TempError(self.error) from None


def _pyspf_value(qtype: str, value: Any) -> Any:
    if qtype in ("TXT", "SPF"):
        strings = value if isinstance(value, tuple | list) else (value,)
        return tuple(s.encode() if isinstance(s, str) else bytes(s) for s in strings)
    if qtype == "MX" and isinstance(value, tuple | list):
        return (int(value[0]), str(value[1]))
    return str(value)


def _system_spf_dns(name: str, qtype: str, timeout: float) -> list[Any]:
    """The system resolver (dnspython), as pyspf's own lookup but with ``resolve()`` (pyspf
    2.0.14 calls the deprecated ``query()``) and a lifetime of *timeout* seconds."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, qtype, lifetime=max(timeout, 0.1),
                                      raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise spf.TempError(f"DNS {exc}") from None
    out: list[Any] = []
    for rdata in answer.rrset or []:
        if qtype in ("A", "AAAA"):
            value: Any = rdata.address
        elif qtype == "MX":
            value = (rdata.preference, rdata.exchange.to_text(True))
        elif qtype == "PTR":
            value = rdata.target.to_text(True)
        else:
            value = tuple(rdata.strings)
        out.append(((name, qtype), value))
    return out


_CURRENT_SPF_DNS: contextvars.ContextVar[_SpfBudget | None] = contextvars.ContextVar(
    "abuse_desk_spf_dns", default=None)


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: float = 20.0) -> list[Any]:
    budget = _CURRENT_SPF_DNS.get()
    if budget is None:  # pyspf called from elsewhere in the process: the system resolver
        return _system_spf_dns(name, qtype, timeout)
    return budget(name, qtype, timeout)


# pyspf looks its module-level DNSLookup up at every query: route it through the check that is
# running in this thread (a context variable), so each check has its own DNS and budget.
spf.DNSLookup = _dispatch


def check_spf(ip: str, mail_from: str, helo: str, *, dns: SpfDns | None = None,
              timeout_s: float = 5.0) -> tuple[str, str]:
    """(result, explanation) of RFC 7208 ``check_host`` for *mail_from* from *ip*: pass, fail,
    softfail, neutral, none, permerror or temperror. Never raises."""
    budget = _SpfBudget(dns)
    token = _CURRENT_SPF_DNS.set(budget)
    try:
        query = spf.query(i=ip, s=mail_from, h=helo or "unknown", strict=True,
                          timeout=timeout_s, querytime=timeout_s)
        result, _code, explanation = query.check()
    except Exception as exc:  # pyspf on hostile input: could not check
        return "temperror", _short(f"{exc.__class__.__name__}: {exc}")
    finally:
        _CURRENT_SPF_DNS.reset(token)
    if budget.error and result not in ("pass", "fail", "softfail", "neutral"):
        explanation = budget.error
    return str(result), _short(str(explanation))


def _public(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_global
    except ValueError:
        return False


# ---- the authenticator -------------------------------------------------------------------------

_SIGNING_DOMAIN = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.I)


def _signing_domains(fields: Sequence[tuple[str, str]]) -> list[str]:
    """The d= of each DKIM-Signature header, unverified: to skip verifying a message none of
    whose signatures could align anyway."""
    found = []
    for name, value in fields:
        if name.lower() == "dkim-signature":
            match = _SIGNING_DOMAIN.search(" ".join(value.split()).encode("utf-8", "replace"))
            if match:
                found.append(normalize_domain(match.group(1).decode("ascii", "replace")))
    return found


class SenderAuthenticator:
    """Built once per process from the configuration; :meth:`check` per message."""

    def __init__(self, authserv_id: str = "", *, spf_timeout_s: float = 5.0,
                 dkim_dns: DnsLookup | None = None, spf_dns: SpfDns | None = None) -> None:
        self.authserv_id = authserv_id.strip().rstrip(".").lower()
        self.spf_timeout_s = spf_timeout_s
        self.dkim_dns = dkim_dns
        self.spf_dns = spf_dns

    def check(self, raw: bytes, *, mail_from: str | None = None, peer_ip: str | None = None,
              helo: str | None = None, dkim: DkimResult | None = None) -> SenderAuthentication:
        """Whether *raw*'s From is authenticated. *mail_from*, *peer_ip*, *helo* are the
        envelope as our listener saw it; *dkim* a :func:`verify_dkim` result already made for
        *raw* (verified here when needed and not given). Never raises."""
        try:
            return self._check(raw, mail_from, peer_ip, helo, dkim)
        except Exception as exc:  # a bug on hostile input: not authenticated, with the reason
            log.warning("sender authentication failed: %s: %s", exc.__class__.__name__, exc,
                        exc_info=True)
            return SenderAuthentication.none(
                f"could not check: {exc.__class__.__name__}: {exc}")

    def _check(self, raw: bytes, mail_from: str | None, peer_ip: str | None,
               helo: str | None, dkim: DkimResult | None) -> SenderAuthentication:
        fields = header_fields(raw)
        address, why = from_address(fields)
        if address is None:
            return SenderAuthentication.none(why)
        domain = normalize_domain(address.rpartition("@")[2])
        checks: list[str] = []

        def passed(how: str, source: str, reason: str) -> SenderAuthentication:
            checks.append(reason)
            return SenderAuthentication(True, how, source, address, domain, _short(reason),
                                        checks)

        if self.authserv_id:
            results = trusted_results(fields, self.authserv_id)
            if results:
                how, reason = judge_results(results, domain)
                if how is not None:
                    return passed(how, "authentication-results", reason)
                checks.append(_short(reason))
            else:
                checks.append(f"no Authentication-Results from {self.authserv_id}")

        signers = _signing_domains(fields)
        if dkim is None and any(aligned(d, domain) for d in signers):
            dkim = verify_dkim(raw, dns=self.dkim_dns)
        if dkim is not None:
            signer = next((d for d in dkim.domains if aligned(d, domain)), None)
            if signer is not None:
                return passed("dkim", "verified", f"DKIM d={signer} verified, aligned with "
                                                  f"{domain}")
            checks.append(_short(f"no aligned DKIM signature verified: {dkim.reason}"))
        else:
            checks.append("no DKIM signature aligned with the From" if signers
                          else "no DKIM signature")

        envelope = (mail_from or "").strip().strip("<>")
        if not envelope or "@" not in envelope:
            checks.append("SPF: null or no MAIL FROM")
        elif not aligned(_domain_of(envelope), domain):
            checks.append(f"SPF: MAIL FROM domain {_domain_of(envelope)} not aligned with "
                          f"{domain}")
        elif self.spf_timeout_s <= 0:
            checks.append("SPF: not checked (classifier.spf_timeout_s = 0)")
        elif not _public(peer_ip):
            checks.append(f"SPF: peer {peer_ip or 'unknown'} is not a public address")
        else:
            result, explanation = check_spf(str(peer_ip), envelope, helo or "",
                                            dns=self.spf_dns, timeout_s=self.spf_timeout_s)
            if result == "pass":
                return passed("spf", "verified", f"SPF pass for {_domain_of(envelope)} from "
                                                 f"{peer_ip}, aligned with {domain}")
            what = "could not check" if result in ("temperror", "permerror") else result
            checks.append(_short(f"SPF {what} for {_domain_of(envelope)} from {peer_ip}: "
                                 f"{explanation}"))
        return SenderAuthentication(False, None, None, address, domain,
                                    _short("; ".join(checks)), checks)
