"""The customer index answers as a straightforward reference does (classifier/customers.py).

The reference scans every resource with :mod:`ipaddress`: the longest prefix holding the
address with an entry valid at the time wins, else the covering one; CGNAT entries need the
port when several customers share them. Random prefixes (IPv4 and IPv6, nested, reassigned,
shared by port ranges) in a small space so that they nest and collide; random times and ports.
"""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from abuse_desk.classifier.customers import CGNAT_NEEDS_PORT, NOBODY_AT_TIME, CustomerIndex
from abuse_desk.classifier.resources import ResourceRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMES = [T0 + timedelta(days=d) for d in range(0, 50, 7)]
V4 = ipaddress.ip_network("10.0.0.0/20")
V6 = ipaddress.ip_network("2001:db8::/116")

Answer = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], str | None]


def _network(rng: random.Random, v6: bool) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    base = V6 if v6 else V4
    length = rng.randrange(base.prefixlen, base.max_prefixlen + 1)
    address = int(base.network_address) + rng.getrandbits(base.max_prefixlen - base.prefixlen)
    return ipaddress.ip_network((address, length), strict=False)


def _window(rng: random.Random) -> tuple[datetime | None, datetime | None]:
    start = rng.choice([None, None, *TIMES])
    end = rng.choice([None, None, *[t for t in TIMES if start is None or t > start]])
    return start, end


def random_rows(rng: random.Random, n: int) -> list[ResourceRow]:
    rows: list[ResourceRow] = []
    for _ in range(n):
        cid = rng.randrange(1, 12)
        v6 = rng.random() < 0.4
        start, end = _window(rng)
        if rng.random() < 0.15:  # CGNAT: a port range on one address
            address = _network(rng, v6).network_address
            low = rng.randrange(1, 60000)
            high = rng.randrange(low, 65536)
            rows.append(ResourceRow(cid, f"C-{cid}", "ip-ports", str(address), low, high,
                                    start, end))
        else:
            rows.append(ResourceRow(cid, f"C-{cid}", "cidr", str(_network(rng, v6)), None,
                                    None, start, end))
    return rows


def _label(row: ResourceRow) -> str:
    if row.kind == "cidr":
        return row.value
    address = row.value if ":" not in row.value else f"[{row.value}]"
    return f"{address}:{row.port_low}-{row.port_high}"


def reference(rows: list[ResourceRow], ip: str, at: datetime, port: int | None) -> Answer:
    """Who held *ip* at *at*: (matches, candidates) as (external id, resource), and why."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (), (), f"{ip!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    claims: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, list[ResourceRow]] = {}
    for row in rows:
        net = ipaddress.ip_network(row.value, strict=False)
        if net.version == address.version and address in net:
            claims.setdefault(net, []).append(row)
    if not claims:
        return (), (), None
    for net in sorted(claims, key=lambda n: -n.prefixlen):
        hits = [r for r in claims[net]
                if (r.valid_from is None or r.valid_from <= at)
                and (r.valid_until is None or at < r.valid_until)]
        if not hits:
            continue
        label = hits[0].value if hits[0].kind == "cidr" else \
            f"{net.network_address}/{net.prefixlen}"

        def first_per_owner(found: list[ResourceRow]) -> list[ResourceRow]:
            seen: dict[str, ResourceRow] = {}
            for r in found:
                seen.setdefault(r.external_id, r)
            return list(seen.values())

        shared = [r for r in hits if r.kind == "ip-ports"]
        if shared and port is None and len(first_per_owner(hits)) > 1:
            return (), tuple((r.external_id, _label(r)) for r in first_per_owner(hits)), \
                CGNAT_NEEDS_PORT
        if shared and port is not None:
            hits = [r for r in hits if r.kind == "cidr"
                    or (r.port_low or 0) <= port <= (r.port_high or 0)]
            if not hits:
                return (), (), (f"port {port} is outside every CGNAT range of {ip} at the "
                                "incident time")
        owners = first_per_owner(hits)
        if len(owners) == 1:
            return ((hits[0].external_id, _label(hits[0])),), (), None
        names = " and ".join(r.external_id for r in owners)
        return (), tuple((r.external_id, _label(r)) for r in owners), \
            f"resources overlap: {label} is held by {names} at the incident time"
    return (), (), NOBODY_AT_TIME


def _query(rng: random.Random) -> tuple[str, datetime, int | None]:
    v6 = rng.random() < 0.4
    address = _network(rng, v6).network_address + rng.getrandbits(4)
    text = str(address)
    if not v6 and rng.random() < 0.1:
        text = f"::ffff:{text}"  # IPv4-mapped is the IPv4 address
    if rng.random() < 0.02:
        text = rng.choice(["300.1.2.3", "10.0.0.0/24", "example.com", ""])
    at = rng.choice(TIMES) + timedelta(seconds=rng.choice([-1, 0, 1, 86400]))
    return text, at, rng.choice([None, None, 1, 1024, 30000, 65535])


def _answer(lookup: object) -> Answer:
    matches = tuple((m.external_id, m.resource) for m in lookup.matches)  # type: ignore[attr-defined]
    candidates = tuple((m.external_id, m.resource)
                       for m in lookup.candidates)  # type: ignore[attr-defined]
    return matches, candidates, lookup.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(12))
def test_lookups_answer_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    rows = random_rows(rng, rng.choice([5, 40, 200]))
    ix = CustomerIndex.from_rows(rows)
    if seed % 2:
        ix.freeze()
    queries = [_query(rng) for _ in range(300)]
    expected = [reference(rows, ip, at, port) for ip, at, port in queries]
    for (ip, at, port), answer in zip(queries, expected, strict=True):
        assert _answer(ix.lookup_ip(ip, at, port)) == answer, (ip, at, port)
    assert [_answer(lk) for lk in ix.lookup_ips(queries)] == expected


@pytest.mark.parametrize("seed", range(4))
def test_patched_and_merged_indexes_answer_as_the_reference(seed: int) -> None:
    """Rows added to a built index, and a customer's rows replaced, answer as if built so."""
    rng = random.Random(100 + seed)
    rows = random_rows(rng, 120)
    ix = CustomerIndex.from_rows(rows[:60])
    if seed % 2:
        ix.freeze()
    ix.add(rows[60:])
    gone = rows[0].customer_id
    ix.remove(gone)
    kept = [r for r in rows if r.customer_id != gone]
    queries = [_query(rng) for _ in range(300)]
    for ip, at, port in queries:
        assert _answer(ix.lookup_ip(ip, at, port)) == reference(kept, ip, at, port), (ip, at,
                                                                                     port)


@pytest.mark.parametrize("seed", range(3))
def test_a_saved_index_opens_with_the_same_answers(seed: int, tmp_path: Path) -> None:
    rng = random.Random(200 + seed)
    rows = [*random_rows(rng, 150),
            ResourceRow(3, "C-3", "domain", "shop.example", valid_from=TIMES[1]),
            ResourceRow(4, "C-4", "email", "noc@shop.example")]
    built = CustomerIndex.from_rows(rows, customers=[(99, "C-99")])
    path = tmp_path / "index.bin"
    built.save(path, signature=(len(rows), seed))
    assert CustomerIndex.open(path, signature=(len(rows), seed + 1)) is None  # other data
    assert CustomerIndex.open(tmp_path / "missing.bin") is None
    opened = CustomerIndex.open(path, signature=(len(rows), seed))
    assert opened is not None
    assert opened.stats() == built.stats()
    assert opened.customer_id_of("C-99") == 99
    queries = [_query(rng) for _ in range(300)]
    assert [_answer(lk) for lk in opened.lookup_ips(queries)] == \
        [_answer(lk) for lk in built.lookup_ips(queries)]
    at = TIMES[2]
    assert _answer(opened.lookup_host("www.shop.example", at)) == \
        _answer(built.lookup_host("www.shop.example", at))
    assert _answer(opened.lookup_email("NOC@shop.example", at)) == \
        _answer(built.lookup_email("NOC@shop.example", at))
    gone = rows[0].customer_id
    assert opened.remove(gone) == built.remove(gone)
    assert [_answer(lk) for lk in opened.lookup_ips(queries)] == \
        [_answer(lk) for lk in built.lookup_ips(queries)]


def test_frozen_answers_as_thawed_at_the_edges_of_the_space() -> None:
    """Prefixes at the ends of the IPv6 space and around the IPv4-mapped range, where the
    frozen index cuts its arrays."""
    values = ["::/0", "::/80", "::ffff:0:0/96", "0.0.0.0/0", "0.0.0.0/1", "255.255.255.255/32",
              "0.0.0.0/32", "::ffff:0:0/95", "::1:0:0:0/80", "2001:db8::/32",
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "::/128"]
    for count in range(1, len(values) + 1):
        rows = [ResourceRow(i, f"C-{i}", "cidr", v) for i, v in enumerate(values[:count])]
        thawed = CustomerIndex.from_rows(rows)
        frozen = CustomerIndex.from_rows(rows)
        frozen.freeze()
        for ip in ["0.0.0.0", "255.255.255.255", "128.0.0.1", "::", "::1", "::fffe:ffff:ffff",
                   "::ffff:0.0.0.0", "::ffff:255.255.255.255", "::1:0:0:0", "::1:0:0:1",
                   "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1", "::2"]:
            assert _answer(frozen.lookup_ip(ip, T0)) == _answer(thawed.lookup_ip(ip, T0)), \
                (count, ip)
            assert [_answer(lk) for lk in frozen.lookup_ips([(ip, T0, None)])] == \
                [_answer(thawed.lookup_ip(ip, T0))]


def test_frozen_lookups_across_the_ipv4_slices() -> None:
    """The frozen index searches IPv4 one /16 at a time: prefixes that span, end at and start
    at the edges of those slices."""
    values = ["10.0.0.0/15", "10.1.255.0/24", "10.2.0.0/16", "10.0.255.255/32", "10.3.0.0/32",
              "9.255.255.255/32", "10.4.0.0/14", "10.6.128.0/17"]
    rows = [ResourceRow(i, f"C-{i}", "cidr", v) for i, v in enumerate(values)]
    ix = CustomerIndex.from_rows(rows)
    ix.freeze()
    for a in range(9, 11):
        for b in [0, 1, 2, 3, 4, 5, 6, 7, 8, 255]:
            for c, d in [(0, 0), (0, 1), (127, 255), (128, 0), (255, 254), (255, 255)]:
                ip = f"{a}.{b}.{c}.{d}"
                assert _answer(ix.lookup_ip(ip, T0)) == reference(rows, ip, T0, None), ip
