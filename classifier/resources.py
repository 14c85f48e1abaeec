"""What a customer's resource is, as written in an import, and how its text is normalised.

A customer holds resources, each with an optional validity window ``[valid_from, valid_until)``
(``None`` is open): CIDR blocks and single IPs (``cidr``, IPv4 and IPv6), a port range on one
public IP shared by CGNAT (``ip-ports``), domains (``domain``, matching their subdomains) and
e-mail addresses (``email``, matching exactly, case-insensitively).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

from .windows import NO_END, NO_START, as_utc, iso, ts

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

KINDS = ("cidr", "ip-ports", "domain", "email")


@dataclass(frozen=True)
class Resource:
    """One resource of a customer, as stored in ``customer_resources``."""

    kind: str
    value: str
    port_low: int | None = None
    port_high: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @classmethod
    def parse(cls, text: str, valid_from: datetime | None = None,
              valid_until: datetime | None = None) -> Resource:
        kind, value, low, high = parse_resource(text)
        start, end = as_utc(valid_from), as_utc(valid_until)
        if start is not None and end is not None and end <= start:
            raise ValueError(f"valid_until {iso(end)} is not after valid_from {iso(start)}")
        return cls(kind, value, low, high, start, end)

    @property
    def text(self) -> str:
        return resource_text(self.kind, self.value, self.port_low, self.port_high)

    def valid_at(self, at: datetime) -> bool:
        return ts(self.valid_from, NO_START) <= ts(at, 0.0) < ts(self.valid_until, NO_END)


class ResourceRow(NamedTuple):
    """A resource with its customer: what :meth:`.customers.CustomerIndex.from_rows` takes."""

    customer_id: int
    external_id: str
    kind: str
    value: str
    port_low: int | None = None
    port_high: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None


_IPV4_PORTS = re.compile(r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):(?P<low>\d{1,5})-(?P<high>\d{1,5})$")
_IPV6_PORTS = re.compile(r"^\[(?P<ip>[0-9a-fA-F:.]+)\]:(?P<low>\d{1,5})-(?P<high>\d{1,5})$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


@cache
def public_suffixes() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def _as_email(text: str) -> tuple[str, str, None, None] | None:
    if "@" not in text:
        return None
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"resource {text!r}: not a usable address: {exc}") from None
    return "email", text.lower(), None, None


def _as_ip_ports(text: str) -> tuple[str, str, int, int] | None:
    found = _IPV4_PORTS.match(text) or _IPV6_PORTS.match(text)
    if found is None:
        return None
    try:
        ip = ipaddress.ip_address(found["ip"])
    except ValueError:
        return None
    low, high = int(found["low"]), int(found["high"])
    if high > 65535:
        raise ValueError(f"resource {text!r}: ports are 0-65535")
    if low > high:
        raise ValueError(f"resource {text!r}: the port range {low}-{high} is empty "
                         "(write LOW-HIGH)")
    return "ip-ports", ip.compressed, low, high


def _as_network(text: str) -> tuple[str, str, None, None] | None:
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    try:
        ipaddress.ip_network(text)
    except ValueError:
        raise ValueError(f"resource {text!r}: host bits set; the network is {loose}") from None
    return "cidr", loose.with_prefixlen, None, None


def _as_domain(text: str) -> tuple[str, str, None, None] | None:
    name = normalize_host(text)
    if name is None:
        return None
    if name.startswith("*."):
        raise ValueError(f"resource {text!r}: write {name[2:]}: a domain matches its "
                         "subdomains")
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():
        return None
    if public_suffixes().is_public(name) or public_suffixes().privatesuffix(name) is None:
        raise ValueError(f"resource {text!r}: a public suffix, which no customer can hold; "
                         "name a domain under it")
    return "domain", name, None, None


# Tried in order; each says "not mine" (None) or "mine but wrong" (ValueError with why).
_RESOURCE_PARSERS = (_as_email, _as_ip_ports, _as_network, _as_domain)


def parse_resource(text: str) -> tuple[str, str, int | None, int | None]:
    """``(kind, value, port_low, port_high)`` of a resource as written in an import:
    a CIDR, an IP (stored as /32 or /128), ``IP:LOW-HIGH`` (``[IPv6]:LOW-HIGH``), a domain
    or an address. Raises ValueError saying what is wrong."""
    text = text.strip()
    for parse in _RESOURCE_PARSERS:
        parsed = parse(text)
        if parsed is not None:
            return parsed
    raise ValueError(f"resource {text!r}: not an IP, CIDR, IP:LOW-HIGH, domain or address")


def resource_text(kind: str, value: str, low: int | None, high: int | None) -> str:
    """A resource as written in an import file."""
    if kind != "ip-ports":
        return value
    host = f"[{value}]" if ":" in value else value
    return f"{host}:{low}-{high}"


def normalize_host(text: str) -> str | None:
    """A host name lowercased, without the root dot, IDNA-encoded; None if it cannot be."""
    name = text.strip().rstrip(".").lower()
    if not name or name.isascii():
        return name or None
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def normalize_address(text: str) -> str | None:
    address = parseaddr(text)[1].strip().lower()
    local, at, domain = address.rpartition("@")
    return address if at and local and domain else None
