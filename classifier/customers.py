"""Who was behind a report: customers' resources in an index, and resolution.

A customer holds resources (:mod:`.resources` says what they are and how their text is
normalised), each valid in a window (:mod:`.windows`).

:class:`CustomerIndex` holds them in memory for resolution:

* IPs in one ``pytricia.PyTricia(128)`` while the index is built or changed. IPv4 prefixes
  are stored as IPv4-mapped IPv6 (``::ffff:0:0/96``), because pytricia compares bits only and
  would otherwise let ``10.0.0.0/8`` cover ``a00::1``. ``freeze`` flattens the tree into
  sorted interval arrays searched with ``bisect`` (``_Flat``: IPv4 in 32-bit arrays, each
  interval with its longest prefix, each prefix with the one covering it) and lets the tree
  go; that is also what ``save`` writes and ``open`` reads back. Each prefix maps to its
  entries; an entry is one customer's claim on the prefix for a window (and, for CGNAT, a port
  range). Windows are stored as POSIX floats, so a lookup compares numbers and allocates
  little more than its answer (a match's evidence text is made when it is read). Most
  prefixes have one holder, always and on every port: such a prefix holds just (customer id,
  external id, label), which a lookup answers without reading the time; a prefix with one
  entry holds the entry itself, and only shared or reassigned prefixes hold a tuple of entries
  (``_unpacked`` reads all three the same way).
* Domains and addresses in dicts, keyed by the normalized name.

Resolution rules: the *longest* prefix (or the most specific domain) with an entry whose window
contains the incident time wins; a more specific resource whose windows all exclude the time
falls back to the covering one (pytricia's ``parent()``, or the flat form's parent ids). An
IP with CGNAT entries needs the source port when several customers share it. Two customers
holding the same resource at the same time is a data error: nobody wins and the reason says so.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import socket
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import pytricia

from ..core.policy import Evidence
from .resources import (
    Resource,
    ResourceRow,
    normalize_address,
    normalize_host,
    public_suffixes,
    resource_text,
)
from .windows import NO_END, NO_START, stamp, when, window

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .resolver_hook import HookAnswer

_IP_KINDS = frozenset(("cidr", "ip-ports"))
_FILE_VERSION = 2  # of CustomerIndex.save's file: a change of the layout changes it

# How a customer was found, in the order a report is resolved, and what each weighs as evidence.
VIA_IP, VIA_URL, VIA_DOMAIN, VIA_EMAIL = "source_ip", "url", "domain", "email"
VIA_HOOK, VIA_SPECIALIST = "hook", "specialist"
VIA_WEIGHT: dict[str, float] = {
    VIA_IP: 1.0, VIA_HOOK: 0.9, VIA_URL: 0.8, VIA_DOMAIN: 0.8, VIA_EMAIL: 0.6,
    VIA_SPECIALIST: 1.0,
}

# Review reasons (the review queue shows them as they are).
NO_CUSTOMER = "no customer resolves"
NOBODY_AT_TIME = "the IP belonged to nobody at the incident time"
CGNAT_NEEDS_PORT = "CGNAT address needs the source port"
DISAGREE = "customers disagree"
# Reasons an answer of the resolver hook makes moot.
SUPERSEDED_BY_HOOK = frozenset({NO_CUSTOMER, NOBODY_AT_TIME, CGNAT_NEEDS_PORT})

# Most URLs, domains and addresses of one report looked up (a report can list thousands).
MAX_VALUES = 100

# Keys of ParsedReport.extra that name the offending sender's address (never the reporter's:
# a complaint is not about who complains, nor about the recipients who got the spam).
ADDRESS_KEYS = ("original_mail_from", "original_from", "smtp_mail_from", "mail_from",
                "from_address", "reply_to", "original_reply_to", "sender", "addresses", "emails")


# -- answers ---------------------------------------------------------------------------------


class Match:
    """A customer found for a value, and the resource it was found by.

    ``evidence`` is made when first read: a lookup allocates its match and nothing else."""

    __slots__ = ("_evidence", "_why", "customer_id", "external_id", "resource", "value", "via")

    def __init__(self, customer_id: int, external_id: str, via: str, value: str, resource: str,
                 evidence: Evidence | None = None, *,
                 why: tuple[str, float, float] = ("", NO_START, NO_END)) -> None:
        self.customer_id = customer_id
        self.external_id = external_id
        self.via = via  # source_ip, url, domain, email, hook, specialist
        self.value = value  # what was looked up
        self.resource = resource  # the resource that matched, as written in an import
        self._evidence = evidence
        self._why = why  # (kind, window start, window end) for the evidence

    @property
    def evidence(self) -> Evidence:
        if self._evidence is None:
            kind, start, end = self._why
            self._evidence = Evidence(
                f"resource:{kind}", VIA_WEIGHT.get(self.via, 0.5),
                f"{self.via} {self.value} in {self.resource} of {self.external_id}, "
                f"{window(start, end)}")
        return self._evidence

    def _key(self) -> tuple[int, str, str, str, str]:
        return (self.customer_id, self.external_id, self.via, self.value, self.resource)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Match({self.customer_id}, {self.external_id!r}, via={self.via!r}, "
                f"value={self.value!r}, resource={self.resource!r})")

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.external_id, "via": self.via, "value": self.value,
                "resource": self.resource, "evidence": self.evidence.to_json()}


@dataclass(slots=True)  # not frozen: a frozen dataclass is three times slower to make
class Lookup:
    """What one value resolves to: the customer's match, or why nobody (with the candidates
    when several customers claim it at once)."""

    matches: tuple[Match, ...] = ()
    candidates: tuple[Match, ...] = ()
    reason: str | None = None

    @property
    def customer_id(self) -> int | None:
        return self.matches[0].customer_id if self.matches else None


_NOBODY = Lookup()


@dataclass
class Resolution:
    """The customer behind a report (or None), how it was found, and what a person must see."""

    customer_id: int | None
    external_id: str | None
    matches: list[Match] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    def with_hook(self, answer: HookAnswer, index: CustomerIndex) -> Resolution:
        """This resolution completed by the resolver hook's *answer* about the source IP."""
        if answer.external_id is None:
            reason = [answer.reason] if answer.reason else []
            return replace(self, reasons=_unique([*self.reasons, *reason]),
                           evidence=[*self.evidence, Evidence("hook", 0.0, answer.detail)])
        customer_id = index.customer_id_of(answer.external_id)
        if customer_id is None:
            return replace(self, reasons=_unique([
                *self.reasons, f"the resolver hook names customer {answer.external_id!r}, "
                "whom the desk does not know: import it (abuse-desk customers import)"]))
        evidence = Evidence("hook", VIA_WEIGHT[VIA_HOOK], answer.detail)
        match = Match(customer_id, answer.external_id, VIA_HOOK, answer.ip, answer.source,
                      evidence)
        kept = [r for r in self.reasons if r not in SUPERSEDED_BY_HOOK]
        return Resolution(customer_id, answer.external_id, [match, *self.matches],
                          list(self.disagreements), kept, [evidence, *self.evidence])

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.external_id,
                "matches": [m.to_json() for m in self.matches],
                "disagreements": self.disagreements, "reasons": self.reasons,
                "evidence": [e.to_json() for e in self.evidence]}


class ReportLike(Protocol):
    """What resolution reads of a report (``parsers.base.ParsedReport`` is one)."""

    @property
    def source_ip(self) -> str | None: ...
    @property
    def source_port(self) -> int | None: ...
    @property
    def occurred_at(self) -> datetime | None: ...
    @property
    def urls(self) -> Sequence[str]: ...
    @property
    def domains(self) -> Sequence[str]: ...
    @property
    def extra(self) -> dict[str, Any]: ...


# -- the index -------------------------------------------------------------------------------


class _Owner(NamedTuple):
    customer_id: int
    external_id: str


# One customer's claim on a prefix, domain or address: (start, end, customer id, external id,
# port_low, port_high, label) with the window as POSIX floats (-inf/inf when open), the ports
# None unless CGNAT, and the label: the prefix as people write it ("192.0.2.0/24"; the domain
# or address itself). Plain tuples of numbers and strings: a million of them build and compare
# fastest, cost least memory, and the garbage collector stops tracking them (it would scan
# them all, again and again, while lookups allocate their answers).
_Entry = tuple[float, float, int, str, int | None, int | None, str]
# A prefix's value in the tree: (customer id, external id, label) when one customer holds it
# always and on every port (most prefixes), one entry, or a tuple of entries.
_Packed = tuple[Any, ...]
_ALWAYS = ("cidr", NO_START, NO_END)  # the evidence of a match held always, on every port
# A resource as the index takes it in: customer id, kind, value, ports, window (datetimes, or
# SQLite's text for them).
_Row = tuple[int, str, str, int | None, int | None, Any, Any]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a million tuples are made: it would scan them all,
    again and again, and double the build time (they hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _prefix_key(value: str) -> str:
    """The tree key of a cidr or ip-ports value ("192.0.2.0/24" -> "::ffff:192.0.2.0/120")."""
    address, _, length = value.partition("/")
    if ":" in address:
        return f"{address}/{length or 128}"
    return f"::ffff:{address}/{96 + int(length or 32)}"


def _prefix_label(key: str) -> str:
    """The prefix as people write it (the inverse of _prefix_key)."""
    address, _, length = key.partition("/")
    if address.startswith("::ffff:") and "." in address:
        return f"{address[7:]}/{int(length) - 96}"
    return key


def _ip_label(value: str) -> str:
    """The label of a cidr or ip-ports value: _prefix_label(_prefix_key(value)), without
    making the key when the value is written as a label already (the common case)."""
    address, slash, length = value.partition("/")
    if not slash:
        return value + ("/128" if ":" in value else "/32")
    if length.isdigit() and length[0] != "0" and not address.startswith("::ffff:"):
        return value
    return _prefix_label(_prefix_key(value))


def _packed(entries: tuple[_Entry, ...]) -> _Packed:
    """A prefix's entries as the tree holds them (see _Packed)."""
    if len(entries) != 1:
        return entries
    entry = entries[0]
    if entry[4] is None and entry[0] == NO_START and entry[1] == NO_END:
        return (entry[2], entry[3], entry[6])
    return entry


def _label_of(value: _Packed) -> str:
    """The label a prefix's value was stored under (its first entry's)."""
    first = value[0]
    if type(first) is int:
        return str(value[2])
    return str(value[6] if type(first) is float else first[6])


# The IPv4-mapped range (::ffff:0:0/96), where the tree keeps IPv4: a frozen index keeps it in
# 32-bit arrays, apart from the rest of the IPv6 space.
_MAPPED, _MAPPED_END = 0xFFFF << 32, (0xFFFF << 32) + (1 << 32)


class _Flat:
    """The prefixes of a frozen index, flattened: the address space cut into intervals, each
    with the longest prefix holding it (-1: none); each prefix with its value and the prefix
    covering it. IPv4-mapped addresses in 32-bit arrays, the rest of IPv6 in a list of ints.
    A lookup is a binary search; a million prefixes cost a few arrays and their values."""

    __slots__ = ("parents", "v4_ids", "v4_index", "v4_starts", "v6_ids", "v6_starts", "values")

    def __init__(self, v4_starts: array[int], v4_ids: array[int], v6_starts: list[int],
                 v6_ids: array[int], parents: array[int], values: list[_Packed]) -> None:
        self.v4_starts, self.v4_ids = v4_starts, v4_ids
        self.v6_starts, self.v6_ids = v6_starts, v6_ids
        self.parents, self.values = parents, values
        # Where each /16 of IPv4 starts in v4_starts: a search is then a few steps, not 20.
        self.v4_index = array("I", [bisect_left(v4_starts, top << 16)
                                    for top in range(1 << 16)] + [len(v4_starts)])

    @classmethod
    def of(cls, tree: Any) -> _Flat:
        """The flat form of a pytricia tree's prefixes."""
        pton, from_bytes, v6 = socket.inet_pton, int.from_bytes, socket.AF_INET6
        spans: list[tuple[int, int, int]] = []  # (start, -size, prefix id)
        values: list[_Packed] = []
        for key in tree:
            address, _, length = key.partition("/")
            host_bits = 128 - int(length)
            start = from_bytes(pton(v6, address), "big") >> host_bits << host_bits
            spans.append((start, -(1 << host_bits), len(values)))
            values.append(tree[key])
        spans.sort()
        parents = array("i", bytes(4 * len(values)))
        starts, ids = [0], [-1]  # ids[k] holds from starts[k] to starts[k + 1]
        stack: list[tuple[int, int]] = []  # (end, prefix id) of the prefixes around

        def emit(at: int, pid: int) -> None:
            if starts[-1] == at:
                ids[-1] = pid
                if len(ids) > 1 and ids[-2] == pid:
                    starts.pop()
                    ids.pop()
            elif ids[-1] != pid:
                starts.append(at)
                ids.append(pid)

        for start, minus_size, pid in spans:
            while stack and stack[-1][0] <= start:
                end = stack.pop()[0]
                emit(end, stack[-1][1] if stack else -1)
            parents[pid] = stack[-1][1] if stack else -1
            emit(start, pid)
            stack.append((start - minus_size, pid))
        while stack:
            end = stack.pop()[0]
            emit(end, stack[-1][1] if stack else -1)
        # Cut at the IPv4-mapped range: its intervals go to the 32-bit arrays.
        low = bisect_right(starts, _MAPPED) - 1
        high = bisect_right(starts, _MAPPED_END) - 1
        v4_starts = array("I", [0, *(a - _MAPPED for a in starts[low + 1:high + 1]
                                     if a < _MAPPED_END)])
        v4_ids = array("i", [ids[low], *(i for a, i in zip(starts[low + 1:high + 1],
                                                           ids[low + 1:high + 1], strict=True)
                                         if a < _MAPPED_END)])
        v6_starts = [*starts[:low + 1], _MAPPED_END, *starts[high + 1:]]
        v6_ids = array("i", [*ids[:low + 1], ids[high], *ids[high + 1:]])
        return cls(v4_starts, v4_ids, v6_starts, v6_ids, parents, values)

    def find(self, ip: str) -> int:
        """The id of the longest prefix holding *ip*, or -1 (ValueError: not an address)."""
        if "/" in ip:
            raise ValueError(ip)
        try:
            n = int.from_bytes(socket.inet_pton(socket.AF_INET6,
                                                ip if ":" in ip else "::ffff:" + ip), "big")
        except (OSError, TypeError):
            raise ValueError(ip) from None
        if _MAPPED <= n < _MAPPED_END:
            n -= _MAPPED
            top = n >> 16
            return self.v4_ids[bisect_right(self.v4_starts, n, self.v4_index[top],
                                            self.v4_index[top + 1]) - 1]
        return self.v6_ids[bisect_right(self.v6_starts, n) - 1]

    def tree(self) -> Any:
        """The prefixes in a pytricia tree again (to change them)."""
        tree = pytricia.PyTricia(128)
        for value in self.values:
            key = _prefix_key(_label_of(value))
            tree[key] = (*_unpacked(tree[key]), *_unpacked(value)) if tree.has_key(key) \
                else value
        return tree

    def state(self) -> tuple[Any, ...]:
        return (self.v4_starts.tobytes(), self.v4_ids.tobytes(), self.v6_starts,
                self.v6_ids.tobytes(), self.parents.tobytes(), self.values)

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> _Flat:
        v4_starts, v4_ids, v6_starts, v6_ids, parents, values = state
        return cls(array("I", v4_starts), array("i", v4_ids), v6_starts, array("i", v6_ids),
                   array("i", parents), values)


def _unpacked(value: _Packed) -> tuple[_Entry, ...]:
    """The entries of a prefix's value in the tree."""
    first = value[0]
    if type(first) is int:
        return ((NO_START, NO_END, first, value[1], None, None, value[2]),)
    if type(first) is float:
        return (value,)
    return value


class _Refused(NamedTuple):
    why: str


def _domain_key(value: str) -> str | _Refused:
    name = normalize_host(value)
    if name is None:
        return _Refused("not a domain")
    if public_suffixes().is_public(name):
        return _Refused("a public suffix, which no customer can hold")
    return name


def _email_key(value: str) -> str | _Refused:
    return normalize_address(value) or _Refused("not an address")


# The key of a domain or address row, or why it is not indexed (rows may come from anywhere).
_NAME_CHECKS = {"domain": _domain_key, "email": _email_key}


def _store_of(key: str) -> str:
    """Which store a key lives in: addresses have an @, prefixes a /, domains neither."""
    return "email" if "@" in key else "ip" if "/" in key else "domain"


class CustomerIndex:
    """Every customer's resources in memory: built from rows, patched on change.

    Safe to read from many threads while one thread changes it: every value is replaced whole.
    A lookup made while a customer is being patched may miss that customer's resources (on a
    frozen index, any prefix, for the moment the tree is swapped for its flat form: the
    workers never patch, they load a new index and swap it whole)."""

    def __init__(self) -> None:
        self._tree = pytricia.PyTricia(128)  # empty while frozen
        self._flat: _Flat | None = None  # the prefixes while frozen
        self._domains: dict[str, tuple[_Entry, ...]] = {}
        self._emails: dict[str, tuple[_Entry, ...]] = {}
        self._owners: dict[int, _Owner] = {}
        self._by_external: dict[str, int] = {}
        self._held: dict[int, tuple[str, ...]] = {}  # each customer's keys, to patch one alone
        self.skipped: list[str] = []  # rows that could not be indexed, with why

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_rows(cls, rows: Iterable[ResourceRow],
                  customers: Iterable[tuple[int, str]] = ()) -> CustomerIndex:
        """An index of *rows*; *customers* (id, external id) adds customers without
        resources (so the hook and specialists can name them)."""
        index = cls()
        for customer_id, external_id in customers:
            index._owner(customer_id, external_id)
        index.add(rows)
        return index

    @classmethod
    def load(cls, engine: Engine) -> CustomerIndex:
        """The index of everything in the ``customers`` and ``customer_resources`` tables,
        frozen for lookups."""
        index = cls()
        with engine.connect() as conn:
            for cid, ext in conn.exec_driver_sql("SELECT id, external_id FROM customers"):
                index._owner(cid, ext)
            # The driver's rows as they are (SQLite's times are strings): no per-value type
            # processing, which would cost more than building the index.
            result = conn.exec_driver_sql(
                "SELECT customer_id, kind, value, port_low, port_high, valid_from, valid_until "
                "FROM customer_resources")
            with _gc_paused():
                index._add(row for batch in iter(lambda: result.fetchmany(100_000), [])
                           for row in batch)
        index.freeze()
        return index

    # -- a prebuilt file ----------------------------------------------------------------------

    def save(self, path: str | Path, signature: Any = None) -> None:
        """Write the index to *path* (atomically) for ``open``; *signature* says which data it
        was built from (``open`` refuses a file of other data)."""
        flat = self._flat or _Flat.of(self._tree)
        state = (_FILE_VERSION, signature,
                 [(o.customer_id, o.external_id) for o in self._owners.values()],
                 self._by_external, list(self._held.items()), flat.state(),
                 self._domains, self._emails, self.skipped)
        target = Path(path)
        partial = target.with_name(target.name + f".{os.getpid()}.partial")
        partial.write_bytes(marshal.dumps(state))
        os.replace(partial, target)

    @classmethod
    def open(cls, path: str | Path, signature: Any = None) -> CustomerIndex | None:
        """The index ``save`` wrote to *path*, frozen, or None when there is none, it is of
        another version, or of other data than *signature* says."""
        try:
            state = marshal.loads(Path(path).read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if not isinstance(state, tuple) or len(state) != 9 or state[0] != _FILE_VERSION \
                or state[1] != signature:
            return None
        _version, _signature, owners, by_external, held, flat, domains, emails, skipped = state
        index = cls()
        with _gc_paused():
            index._owners = {cid: _Owner(cid, ext) for cid, ext in owners}
            index._by_external = by_external
            index._held = dict(held)
            index._flat = _Flat.from_state(flat)
            index._domains, index._emails, index.skipped = domains, emails, skipped
        return index

    def _owner(self, customer_id: int, external_id: str) -> _Owner:
        owner = self._owners.get(customer_id)
        if owner is None or owner.external_id != external_id:
            owner = self._owners[customer_id] = _Owner(customer_id, external_id)
            self._by_external[external_id] = customer_id
        return owner

    def add(self, rows: Iterable[ResourceRow]) -> None:
        """Add resources (rows that cannot be indexed are listed in ``skipped``)."""

        def known(rows: Iterable[ResourceRow]) -> Iterator[_Row]:
            owners = self._owners
            for cid, external_id, kind, value, low, high, start, end in rows:
                owner = owners.get(cid)
                if owner is None or owner.external_id != external_id:
                    self._owner(cid, external_id)
                yield cid, kind, value, low, high, start, end

        with _gc_paused():
            self._add(known(rows))

    def _add(self, rows: Iterable[_Row]) -> None:
        """Add (customer id, kind, value, port_low, port_high, valid_from, valid_until) rows
        whose customers are known (else they are known by their id)."""
        grouped: dict[str, dict[str, tuple[_Entry, ...]]] = {"domain": {}, "email": {}}
        prefixes: dict[str, _Packed] = {}  # label -> the prefix's value in the tree
        stores = {"cidr": prefixes, "ip-ports": prefixes,
                  "domain": grouped["domain"], "email": grouped["email"]}
        owners, held, no_start, no_end = self._owners, self._held, NO_START, NO_END
        added: dict[int, list[str]] = {}
        for cid, kind, value, low, high, start, end in rows:
            owner = owners.get(cid) or self._owner(cid, str(cid))
            store = stores.get(kind)
            if store is None:
                self.skipped.append(f"{owner.external_id}: {value}: unknown kind {kind!r}")
                continue
            if kind in _IP_KINDS:
                key = _ip_label(value)
                if start is None and end is None and kind == "cidr":  # most prefixes
                    packed: _Packed = (cid, owner[1], key)
                else:
                    packed = (no_start if start is None else stamp(start),
                              no_end if end is None else stamp(end), cid, owner[1],
                              low if kind == "ip-ports" else None,
                              high if kind == "ip-ports" else None, key)
                held_value = prefixes.get(key)
                prefixes[key] = packed if held_value is None else \
                    (*_unpacked(held_value), *_unpacked(packed))
            else:
                name = _NAME_CHECKS[kind](value)
                if isinstance(name, _Refused):
                    self.skipped.append(f"{owner.external_id}: {value}: {name.why}")
                    continue
                entry = (no_start if start is None else stamp(start),
                         no_end if end is None else stamp(end), cid, owner[1], None, None, name)
                bucket = store.get(name)
                store[name] = (entry,) if bucket is None else (*bucket, entry)
                key = name
            keys = added.get(cid)
            if keys is None:
                added[cid] = [key]
            else:
                keys.append(key)
        for cid, keys in added.items():  # tuples of strings: the collector leaves them alone
            held[cid] = (*held.get(cid, ()), *keys)
        with self._writable():
            self._add_prefixes(prefixes)
        for name, target in (("domain", self._domains), ("email", self._emails)):
            for key, entries in grouped[name].items():
                target[key] = (*target.get(key, ()), *entries)

    def _add_prefixes(self, prefixes: dict[str, _Packed]) -> None:
        """Add each prefix's value (see _Packed), keyed by its label."""
        tree = self._tree
        if len(tree) == 0:  # a build: no prefix to merge with, skip the has_key searches
            bad = []
            for label, value in prefixes.items():
                try:
                    tree[_prefix_key(label)] = value
                except ValueError:
                    bad.append(f"{label}: not a CIDR or IP")
            if len(tree) + len(bad) == len(prefixes):
                self.skipped += bad
                return
            tree = self._tree = pytricia.PyTricia(128)  # two spellings of one prefix: merge
        for label, value in prefixes.items():
            key = _prefix_key(label)
            try:
                tree[key] = (*_unpacked(tree[key]), *_unpacked(value)) if tree.has_key(key) \
                    else value
            except ValueError:
                self.skipped.append(f"{label}: not a CIDR or IP")

    @contextlib.contextmanager
    def _writable(self) -> Iterator[None]:
        """The tree writable for the block, frozen again after it if it was frozen (a
        rebuild of the flat form: a patch of a frozen index costs about a freeze)."""
        flat = self._flat
        if flat is None:
            yield
            return
        self._tree = flat.tree()
        self._flat = None
        try:
            yield
        finally:
            self.freeze()

    def freeze(self) -> None:
        """Flatten the prefixes for lookups (see _Flat) and let the tree go: a fraction of
        its memory; patches still work (they rebuild the tree and flatten it again)."""
        if self._flat is None:
            self._flat = _Flat.of(self._tree)
            self._tree = pytricia.PyTricia(128)

    def remove(self, customer_id: int) -> int:
        """Remove every resource of a customer; returns how many there were."""
        held = self._held.pop(customer_id, ())
        stores = {"domain": self._domains, "email": self._emails}
        with self._writable():
            for key in held:
                where = _store_of(key)
                if where == "ip":
                    self._remove_prefix(key, customer_id)
                else:
                    _remove_name(stores[where], key, customer_id)
        return len(held)

    def _remove_prefix(self, label: str, customer_id: int) -> None:
        tree, key = self._tree, _prefix_key(label)
        if not tree.has_key(key):
            return
        kept = tuple(e for e in _unpacked(tree[key]) if e[2] != customer_id)
        if kept:
            tree[key] = _packed(kept)
        else:
            tree.delete(key)

    def patch(self, customer_id: int, external_id: str, resources: Iterable[Resource]) -> None:
        """Replace one customer's resources (after an import or an edit) without a rebuild."""
        self.remove(customer_id)
        self._owner(customer_id, external_id)
        self.add(ResourceRow(customer_id, external_id, r.kind, r.value, r.port_low,
                             r.port_high, r.valid_from, r.valid_until) for r in resources)

    # -- what it holds -----------------------------------------------------------------------

    def customer_id_of(self, external_id: str) -> int | None:
        return self._by_external.get(external_id)

    def external_id_of(self, customer_id: int) -> str | None:
        owner = self._owners.get(customer_id)
        return owner.external_id if owner else None

    def stats(self) -> dict[str, int]:
        flat = self._flat
        return {"customers": len(self._owners),
                "prefixes": len(flat.values) if flat is not None else len(self._tree),
                "domains": len(self._domains), "emails": len(self._emails),
                "resources": sum(len(keys) for keys in self._held.values())}

    # -- one value ---------------------------------------------------------------------------

    def lookup_ip(self, ip: str, at: datetime, port: int | None = None,
                  *, via: str = VIA_IP) -> Lookup:
        """Who held *ip* (at *port*, for CGNAT) at *at*, or why nobody."""
        flat = self._flat
        where: str | int
        try:
            if flat is not None:
                where = flat.find(ip)
                value: _Packed | None = flat.values[where] if where >= 0 else None
            else:
                if "/" in ip:
                    raise ValueError(ip)
                where = ip if ":" in ip else "::ffff:" + ip
                value = self._tree.get(where)
        except ValueError:  # pytricia's (and _Flat's) word for "not an address"
            return Lookup(reason=f"{ip!r} is not an IP address")
        if value is None:
            return _NOBODY
        if type(value[0]) is int:  # one holder, always, every port: the time does not matter
            return Lookup((Match(value[0], value[1], via, ip, value[2], why=_ALWAYS),))
        return self._lookup_held(ip, where, value,
                                 (at if at.tzinfo is not None else at.replace(tzinfo=UTC))
                                 .timestamp(), port, via, flat)

    def _lookup_held(self, ip: str, where: str | int, value: _Packed, t: float,
                     port: int | None, via: str, flat: _Flat | None) -> Lookup:
        """lookup_ip of an address whose longest prefix holds *value*, at POSIX time *t*;
        *where* is the address's tree key, or the prefix's id in *flat*."""
        tree, node = self._tree, None
        while True:
            first = value[0]
            if type(first) is float:  # one entry
                if first <= t < value[1]:
                    if value[4] is None:
                        return Lookup((Match(value[2], value[3], via, ip, value[6],
                                             why=("cidr", first, value[1])),))
                    return _decide_ip(ip, value[6], [value], port, via)
            elif type(first) is int:  # a covering prefix held always
                return Lookup((Match(first, value[1], via, ip, value[2], why=_ALWAYS),))
            else:
                hits = [e for e in value if e[0] <= t < e[1]]
                if hits:
                    return _decide_ip(ip, hits[0][6], hits, port, via)
            # Valid at another time: the covering prefix.
            if flat is not None:
                where = flat.parents[where]  # type: ignore[index]
                if where < 0:
                    return Lookup(reason=NOBODY_AT_TIME)
                value = flat.values[where]
                continue
            node = tree.parent(tree.get_key(where) if node is None else node)
            if node is None:
                return Lookup(reason=NOBODY_AT_TIME)
            value = tree.get(node)

    def lookup_ips(self, queries: Iterable[tuple[str, datetime, int | None]], *,
                   via: str = VIA_IP) -> list[Lookup]:
        """``lookup_ip`` of each (ip, at, port) of *queries*, in order: the pipeline's batch
        (the same answers; on a frozen index, the common cases without a call each)."""
        flat = self._flat
        if flat is None:
            lookup = self.lookup_ip
            return [lookup(ip, at, port, via=via) for ip, at, port in queries]
        pton, from_bytes, family = socket.inet_pton, int.from_bytes, socket.AF_INET6
        v4_starts, v4_ids, v4_index, v6_starts, v6_ids = (
            flat.v4_starts, flat.v4_ids, flat.v4_index, flat.v6_starts, flat.v6_ids)
        values, held = flat.values, self._lookup_held
        out: list[Lookup] = []
        append = out.append
        last_at: datetime | None = None
        t = 0.0
        with _gc_paused():  # the answers kept would make the collector scan the index again
            for ip, at, port in queries:
                try:
                    if "/" in ip:
                        raise ValueError(ip)
                    n = from_bytes(pton(family, ip if ":" in ip else "::ffff:" + ip), "big")
                except (ValueError, OSError, TypeError):
                    append(Lookup(reason=f"{ip!r} is not an IP address"))
                    continue
                if _MAPPED <= n < _MAPPED_END:
                    n -= _MAPPED
                    top = n >> 16
                    pid = v4_ids[bisect_right(v4_starts, n, v4_index[top],
                                              v4_index[top + 1]) - 1]
                else:
                    pid = v6_ids[bisect_right(v6_starts, n) - 1]
                if pid < 0:
                    append(_NOBODY)
                    continue
                value = values[pid]
                first = value[0]
                if type(first) is int:
                    append(Lookup((Match(first, value[1], via, ip, value[2], why=_ALWAYS),)))
                    continue
                if at is not last_at:
                    last_at = at
                    t = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()
                append(held(ip, pid, value, t, port, via, flat))
        return out

    def lookup_host(self, host: str, at: datetime, *,
                    via: str = VIA_DOMAIN) -> Lookup:
        """Who held *host* (or the closest domain above it) at *at*. An IP literal is looked
        up as an IP. Public suffixes are never resources, so siblings never match."""
        name = normalize_host(host.strip("[]"))
        if name is None:
            return Lookup(reason=f"{host!r} is not a host name")
        if ":" in name or name[-1].isdigit():  # an IP literal (no TLD is numeric)
            return self.lookup_ip(name, at, via=via)
        t, held, store = when(at), False, self._domains
        candidate: str | None = name
        while candidate:
            entries = store.get(candidate)
            if entries:
                held = True
                hits = [e for e in entries if e[0] <= t < e[1]]
                if hits:
                    return _decide(name, candidate, hits, via, "domain")
            dot = candidate.find(".")
            candidate = candidate[dot + 1:] if dot >= 0 else None
        return Lookup(reason=f"{name} belonged to nobody at the incident time") if held \
            else _NOBODY

    def lookup_email(self, address: str, at: datetime, *,
                     via: str = VIA_EMAIL) -> Lookup:
        """Who held the address *address* at *at* (addresses match addresses, not domains)."""
        key = normalize_address(address)
        if key is None:
            return Lookup(reason=f"{address!r} is not an e-mail address")
        entries = self._emails.get(key)
        if not entries:
            return _NOBODY
        t = when(at)
        hits = [e for e in entries if e[0] <= t < e[1]]
        if not hits:
            return Lookup(reason=f"{key} belonged to nobody at the incident time")
        return _decide(key, key, hits, via, "email")

    def resolve_ip(self, ip: str, at: datetime,
                   port: int | None = None) -> list[Match]:
        """The customer's match (a list of one), or [] when nobody or several."""
        return list(self.lookup_ip(ip, at, port).matches)

    def resolve_host(self, host: str, at: datetime) -> list[Match]:
        return list(self.lookup_host(host, at).matches)

    def resolve_email(self, address: str, at: datetime) -> list[Match]:
        return list(self.lookup_email(address, at).matches)

    # -- a report ----------------------------------------------------------------------------

    def lookups(self, report: ReportLike, received_at: datetime) -> Iterator[Lookup]:
        """Each value of *report* looked up, in the order that decides: the source IP, then
        the hosts of its URLs, its domains, then the addresses it names; at the incident's
        time, or when the report does not say, at *received_at* (the message's arrival)."""
        at = report.occurred_at or received_at
        if report.source_ip:
            yield self.lookup_ip(report.source_ip, at, report.source_port)
        for host in _unique(h for h in (_url_host(u) for u in report.urls[:MAX_VALUES]) if h):
            yield self.lookup_host(host, at, via=VIA_URL)
        for domain in _unique(report.domains[:MAX_VALUES]):
            yield self.lookup_host(domain, at, via=VIA_DOMAIN)
        for address in named_addresses(report.extra)[:MAX_VALUES]:
            yield self.lookup_email(address, at)

    def resolve_report(self, report: ReportLike, received_at: datetime) -> Resolution:
        """The customer behind *report* (timed as ``lookups`` says): the first value that
        resolves decides; the others that name someone else are disagreements."""
        return combine(list(self.lookups(report, received_at)))

    def forced(self, customer: tuple[int, str] | str) -> Resolution:
        """A specialist's decision: *customer* as (id, external id) or an external id."""
        if isinstance(customer, str):
            customer_id = self.customer_id_of(customer)
            if customer_id is None:
                return Resolution(None, None, reasons=[f"no customer {customer!r}"])
            customer = (customer_id, customer)
        customer_id, external_id = customer
        evidence = Evidence("specialist", VIA_WEIGHT[VIA_SPECIALIST],
                            f"a specialist decided {external_id}")
        match = Match(customer_id, external_id, VIA_SPECIALIST, external_id, "decision",
                      evidence)
        return Resolution(customer_id, external_id, [match], evidence=[evidence])


def _remove_name(store: dict[str, tuple[_Entry, ...]], key: str, customer_id: int) -> None:
    kept = tuple(e for e in store.get(key, ()) if e[2] != customer_id)
    if kept:
        store[key] = kept
    else:
        store.pop(key, None)


def _match(value: str, label: str, entry: _Entry, via: str, kind: str) -> Match:
    start, end, customer_id, external_id, low, high, _label = entry
    resource = label if low is None else resource_text(
        "ip-ports", label.rsplit("/", 1)[0], low, high)
    return Match(customer_id, external_id, via, value, resource, why=(kind, start, end))


def _owners(entries: Iterable[_Entry]) -> dict[tuple[int, str], _Entry]:
    """Each distinct owner with its first entry, in order."""
    owners: dict[tuple[int, str], _Entry] = {}
    for entry in entries:
        owners.setdefault((entry[2], entry[3]), entry)
    return owners


def _decide_ip(ip: str, label: str, hits: list[_Entry], port: int | None, via: str) -> Lookup:
    """The holder among the entries of the longest prefix valid at the time."""
    if len(hits) == 1 and hits[0][4] is None:  # the common case: one holder, every port
        return Lookup((_match(ip, label, hits[0], via, "cidr"),))
    shared = [e for e in hits if e[4] is not None]
    if shared and port is None and len(_owners(hits)) > 1:
        return Lookup(candidates=tuple(_match(ip, label, e, via, "ip-ports")
                                       for e in _owners(hits).values()),
                      reason=CGNAT_NEEDS_PORT)
    if shared and port is not None:
        hits = [e for e in hits if e[4] is None or e[4] <= port <= (e[5] or 0)]
        if not hits:
            return Lookup(reason=f"port {port} is outside every CGNAT range of {ip} at the "
                                 "incident time")
    return _decide(ip, label, hits, via, "ip-ports" if hits[0][4] is not None else "cidr")


def _decide(value: str, label: str, hits: list[_Entry], via: str, kind: str) -> Lookup:
    owners = _owners(hits)
    if len(owners) == 1:
        return Lookup((_match(value, label, hits[0], via, kind),))
    names = " and ".join(external_id for _cid, external_id in owners)
    return Lookup(candidates=tuple(_match(value, label, e, via, kind) for e in owners.values()),
                  reason=f"resources overlap: {label} is held by {names} at the incident time")


def _url_host(url: str) -> str | None:
    try:
        parts = urlsplit(url if "//" in url else "//" + url)
        return parts.hostname
    except ValueError:
        return None


def named_addresses(extra: dict[str, Any]) -> list[str]:
    """The offending addresses a report's ``extra`` names (``ADDRESS_KEYS``)."""
    found: list[str] = []
    for key in ADDRESS_KEYS:
        value = extra.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            address = normalize_address(item) if isinstance(item, str) else None
            if address:
                found.append(address)
    return _unique(found)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def combine(lookups: list[Lookup]) -> Resolution:
    """One resolution from the lookups of a report, in deciding order."""
    deciding = next((lk for lk in lookups if lk.matches), None)
    matches = [m for lk in lookups for m in lk.matches]
    reasons = _unique(lk.reason for lk in lookups if lk.reason)
    evidence = [c.evidence for lk in lookups for c in lk.candidates]
    evidence = [replace(e, name="candidate:" + e.name, weight=0.0) for e in evidence]
    if deciding is None:
        return Resolution(None, None, matches, [], [*reasons, NO_CUSTOMER], evidence)
    winner = deciding.matches[0]
    disagreements = [f"{m.via} {m.value} is {m.external_id} ({m.resource})"
                     for m in matches if m.customer_id != winner.customer_id]
    if disagreements:
        reasons.append(f"{DISAGREE}: {winner.via} {winner.value} is {winner.external_id}, "
                       + ", ".join(disagreements))
    chosen = [m.evidence for m in matches if m.customer_id == winner.customer_id]
    against = [Evidence("disagreement", 0.0, d) for d in disagreements]
    return Resolution(winner.customer_id, winner.external_id, matches, disagreements, reasons,
                      [*chosen, *against, *evidence])
