"""One reader of a Received chain: which hop is whose.

A complaint about a message (a mailbox provider's forwarded complaint, a person's pasted
headers, an attached spam) names the message's path in its Received lines, newest first. The
offender is the *first hop outside the receiving side*: walking from the top, the hops added
inside the receiving provider (its front ends, its filters, its internal IPv6 relays such as
``2603:10b6:...`` in Microsoft's ``Received: from X.prod.outlook.com (2603:10b6:...)``), its
private relays and the reporter's own MTAs are skipped; the first hop left is the server that
handed the message to the provider. Hops below it are the sender's own path (mentioned, not
accused). ``X-Received`` lines are never read: they are a provider's internal bookkeeping (the
``X-Received: by 2002:a05:...`` of Google), not hops.

A hop is internal when its sending address is not public (private, loopback, link-local,
shared), when the sending and receiving names share a registrable domain (one organisation),
when both names belong to one mailbox provider's family of domains (Microsoft's outlook.com,
office365.com, hotmail.com ...; the family is matched by the name's organisation label, so the
same rule reads a test's ``outlook.example``), when its address is one of the providers'
internal networks, or when its name is the reporter's.

A ``Received-SPF: ... client-ip=`` or an ``Authentication-Results: ... (sender IP is X)``
inside the forwarded message is the receiving provider's own word for the address that handed
it the message: it confirms that hop.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from .fields import clean_ip, parse_time, received_from_by

MAX_HOPS = 30

# Mailbox providers whose many domains are one organisation, by organisation label.
PROVIDER_FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"outlook", "office365", "hotmail", "live", "msn", "microsoft",
               "exchangelabs"}),
    frozenset({"google", "gmail", "googlemail", "1e100"}),
    frozenset({"yahoo", "yahoodns", "aol", "yahoomail"}),
    frozenset({"icloud", "apple"}),
    frozenset({"gmx", "1und1", "ionos", "kundenserver"}),
    frozenset({"yandex", "yandex-team"}),
    frozenset({"zoho", "zohomail"}),
)
# The providers' own internal relay networks (their hops between front end and mailbox).
PROVIDER_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "2603:1000::/24",  # Microsoft (Exchange Online, EOP)
    "2a01:111::/32",  # Microsoft
    "2002:a00::/24",  # Google's internal 6to4-looking relays
))


@dataclass
class Hop:
    ip: str
    port: int | None
    helo: str | None
    rdns: str | None
    by: str | None
    time: datetime | None
    time_raw: str | None
    zone_stated: bool


_PORT_SUFFIX = re.compile(r":(\d{1,5})")


def _first_parenthesized(text: str) -> str:
    """What ``re.search(r"\\(([^)]*)\\)", text)`` captures ("" for none), in linear time."""
    start = text.find("(")
    end = text.find(")", start + 1) if start >= 0 else -1
    return text[start + 1:end] if end >= 0 else ""


def _bracketed(text: str) -> list[tuple[str, str]]:
    """What ``re.findall(r"\\[([^\\]]+)\\](?::(\\d{1,5}))?", text)`` returns, in linear
    time."""
    found: list[tuple[str, str]] = []
    pos = 0
    while (start := text.find("[", pos)) >= 0:
        end = text.find("]", start + 1)
        if end < 0:
            break  # no "]" after this "[", nor after any later one
        if end == start + 1:  # "[]": the pattern wants a character inside
            pos = start + 1
            continue
        port = _PORT_SUFFIX.match(text, end + 1)
        found.append((text[start + 1:end], port.group(1) if port else ""))
        pos = port.end() if port else end + 1
    return found


def _ip_text(text: str) -> str:
    text = re.sub(r"(?i)ipv6:", "IPv6 ", text)
    return re.sub(r"[.:](?=\s|$)", " ", text)


def parse_received(value: str) -> Hop | None:
    """One Received line's sending address, names, receiving host and time; None when it names
    no address."""
    value = " ".join(value.split())[:2000]
    parts = received_from_by(value)
    if parts is None:
        return None
    clause, by_host = parts
    words = clause.split()
    first = words[0].strip("[]()") if words else None
    inner = _first_parenthesized(clause)
    bracketed = _bracketed(clause)
    ip, port = None, None
    for literal, literal_port in bracketed:
        ip = clean_ip(literal)
        if ip:
            port = int(literal_port) if literal_port else None
            break
    if ip is None:
        found = [clean_ip(x) for x in re.findall(r"[0-9A-Fa-f:.]{7,}", _ip_text(clause))]
        ip = next((c for c in reversed(found) if c), None)
    if ip is None:
        return None
    said = re.search(r"\b(?:helo|ehlo|lhlo)[=\s]+([^\s)\]]+)", clause, re.I)
    if said:  # exim "from RDNS ([IP] helo=HELO)", qmail "from RDNS (HELO name) (IP)"
        helo_name = said.group(1)
        rdns = first if first and first.lower() != "unknown" else None
    else:  # postfix, sendmail "from HELO (RDNS [IP])"; exchange "from HELO ([IP])"
        helo_name = first
        token = inner.split()[0] if inner.split() else ""
        rdns = token if "." in token and clean_ip(token.strip("[]")) is None else None
    time_raw = value.rsplit(";", 1)[1].strip() if ";" in value else None
    at, stated = parse_time(time_raw)
    return Hop(ip=ip, port=port, helo=helo_name, rdns=rdns, by=by_host.lower(), time=at,
               time_raw=time_raw, zone_stated=stated)


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go",
                           "gv", "gob", "nic", "ltd", "plc"})


def base_domain(host: str | None) -> str | None:
    """The registrable domain, roughly: two labels, three under co.uk-like suffixes."""
    if not host or clean_ip(host):
        return None
    labels = [x for x in host.lower().strip(".[]").split(".") if x]
    if len(labels) < 2:
        return None
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _family(host: str | None) -> int | None:
    base = base_domain(host)
    if base is None:
        return None
    label = base.split(".")[0]
    return next((n for n, family in enumerate(PROVIDER_FAMILIES) if label in family), None)


def same_provider(name: str | None, by: str | None) -> bool:
    """Whether the sending name and the receiving host belong to one mailbox provider's family
    of domains (``x.prod.outlook.com`` handing to ``y.office365.com``)."""
    family = _family(name)
    return family is not None and family == _family(by)


_NOT_ROUTABLE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3", "fc00::/7", "fe80::/10", "ff00::/8"))


def is_routable(ip: str) -> bool:
    """Not loopback, private (RFC 1918, ULA), CGNAT, link-local or multicast. Documentation
    ranges count as routable: examples and test data use them."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return False
    return not any(addr.version == net.version and addr in net for net in _NOT_ROUTABLE)


def is_documentation(ip: str) -> bool:
    """The ranges set aside for examples (RFC 5737, RFC 3849): a sample's stand-in for a public
    address, never a provider's internal relay."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in n for n in _DOCUMENTATION if n.version == addr.version)


_DOCUMENTATION = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


def provider_network(ip: str) -> bool:
    """One of the mailbox providers' internal relay networks (``PROVIDER_NETWORKS``)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in PROVIDER_NETWORKS)


def internal_network(ip: str) -> bool:
    """A provider's internal relay address, or one that is not public (and not an example)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if any(addr.version == n.version and addr in n for n in PROVIDER_NETWORKS):
        return True
    return not addr.is_global and not is_documentation(ip)


def is_internal(hop: Hop, reporter_base: str | None = None) -> bool:
    """Whether *hop* was added inside the receiving side (see the module's docstring)."""
    if internal_network(hop.ip):
        return True
    name = hop.rdns or hop.helo
    name_base = base_domain(name)
    if name_base and (name_base == reporter_base or name_base == base_domain(hop.by)):
        return True
    family = _family(name)
    if family is not None and family == _family(hop.by):
        return True
    names = [n for n in (hop.rdns, hop.helo) if n]
    return bool(reporter_base) and any(base_domain(n) == reporter_base for n in names)


@dataclass
class Chain:
    """The hops of one Received chain, newest first, each with whether it is internal."""

    hops: list[tuple[Hop, bool]]

    @property
    def first_external(self) -> Hop | None:
        return next((h for h, internal in self.hops if not internal), None)

    @property
    def first_timed(self) -> Hop | None:
        return next((h for h, _ in self.hops if h.time is not None), None)


def read_chain(block: Message, reporter_base: str | None = None) -> Chain:
    """The Received chain of one header block (``Received`` only, never ``X-Received``). When
    the block's Received-SPF or Authentication-Results name the client address and a hop has
    it, the hops above that one are the provider's and that one is the first external."""
    parsed = [h for h in (parse_received(str(v))
                          for v in (block.get_all("Received") or [])[:MAX_HOPS]) if h]
    confirmed = _spf_client_ips(block)
    at = next((n for n, h in enumerate(parsed) if h.ip in confirmed), None)
    hops: list[tuple[Hop, bool]] = []
    for n, hop in enumerate(parsed):
        if at is not None and n <= at:
            hops.append((hop, n < at))
        else:
            hops.append((hop, is_internal(hop, reporter_base)))
    return Chain(hops)


_CLIENT_IP = re.compile(r"\bclient-ip=([0-9A-Fa-f:.]{3,45})", re.I)
_SENDER_IP = re.compile(r"\bsender IP is ([0-9A-Fa-f:.]{3,45})", re.I)


def _spf_client_ips(block: Message) -> set[str]:
    found: set[str] = set()
    for header, pattern in (("Received-SPF", _CLIENT_IP),
                            ("Authentication-Results", _SENDER_IP)):
        for value in (block.get_all(header) or [])[:10]:
            for m in pattern.finditer(str(value)[:4000]):
                ip = clean_ip(m.group(1).rstrip(".;:"))
                if ip:
                    found.add(ip)
    return found


def external_hop(blocks: list[Message], reporter_base: str | None) -> tuple[Hop | None,
                                                                           Hop | None]:
    """The first external hop of the first block that has one, and the first hop with a time
    at all (for when there is no external one)."""
    first_timed = None
    for block in blocks:
        chain = read_chain(block, reporter_base)
        if first_timed is None:
            first_timed = chain.first_timed
        hop = chain.first_external
        if hop is not None:
            return hop, first_timed
    return None, first_timed


def reporter_hop(values: Iterable[str], reporter_domains: set[str],
                 check: Callable[[], None] | None = None, limit: int = MAX_HOPS) -> Hop | None:
    """The hop of a reporter's copy of a message (a feedback report's part 3, a forwarded
    complaint) that handed it to the reporter: the first, from the top, that did not come from
    the reporter's own servers.

    A hop is the reporter's own when its sending name (reverse DNS, else HELO) is in a domain
    of a receiving host at or above it or of the reporter (*reporter_domains*), when both names
    belong to one mailbox provider's family, or when its address is one of the providers'
    relay networks. If every hop with a routable address (:func:`is_routable`) looks internal,
    the first routable one is taken; failing that, the first external hop with a private
    address (tell them apart with :func:`is_routable`). At most *limit* lines are read;
    *check* is called before each (a deadline)."""
    domains = {d for d in reporter_domains if d}
    first_routable: Hop | None = None
    first_private: Hop | None = None
    for value in itertools.islice(values, limit):
        if check is not None:
            check()
        hop = parse_received(value[:4000])
        if hop is None:
            continue
        by_domain = base_domain(hop.by)
        if by_domain:
            domains.add(by_domain)
        name = hop.rdns or hop.helo
        internal = (base_domain(name) in domains or same_provider(name, hop.by)
                    or provider_network(hop.ip))
        if is_routable(hop.ip):
            if not internal:
                return hop
            first_routable = first_routable or hop
            continue
        addr = ipaddress.ip_address(hop.ip)
        if not (addr.is_loopback or addr.is_unspecified or internal) and first_private is None:
            first_private = hop
    return first_routable or first_private
