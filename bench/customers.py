"""Benchmark of the customer index: build time for many prefixes, lookups per second.

    .venv/bin/python bench/customers.py                     # 1,000,000 prefixes, 300,000 lookups
    .venv/bin/python bench/customers.py --prefixes 100000 --lookups 50000 --json out.json

Builds a mix of IPv4 and IPv6 prefixes (nested ones, reassigned ones with validity windows,
CGNAT port ranges), then times:

* the build (``CustomerIndex.from_rows``) and the freeze (the tree flattened into arrays);
* ``lookup_ip`` at random incident times over addresses inside known prefixes (hits) and random
  addresses (mostly misses), thawed and frozen, one call each and as one ``lookup_ips`` batch;
* the index's resident memory: RSS after the build less RSS before it (the rows it was built
  from excluded; memory the build freed but the allocator kept counts too), the process's
  peak, and the resident growth of a fresh process that opens the prebuilt file (the index
  alone);
* the C reference: pytricia's own ``get`` of the same addresses in a tree of the same prefixes
  (a longest-prefix match and nothing else: no times, ports or answers), and the ceiling: a
  plain ``dict.get`` of exact IP strings (what no radix tree can beat), in the same run on the
  same machine; the index's rates are printed as ratios of both;
* ``CustomerIndex.open`` of the file ``CustomerIndex.save`` wrote (the prebuilt index, frozen;
  writing it is not timed);
* with ``--load``: ``CustomerIndex.load`` of the same rows from a SQLite file (writing the file
  is not timed).

Prints a table; ``--json PATH`` also writes the figures. Timing belongs here, not in the tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytricia
from abuse_desk.classifier.customers import CustomerIndex, _prefix_key
from abuse_desk.classifier.resources import ResourceRow

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
SPAN_DAYS = 6 * 365


def _v4(rng: random.Random) -> tuple[str, str]:
    """A random IPv4 prefix (/16 to /32) and an address inside it."""
    length = rng.choice((16, 20, 22, 24, 24, 24, 26, 28, 29, 30, 32))
    address = rng.getrandbits(32)
    network = address >> (32 - length) << (32 - length)
    return (f"{_dotted(network)}/{length}", _dotted(address))


def _dotted(n: int) -> str:
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _v6(rng: random.Random) -> tuple[str, str]:
    """A random prefix under 2001:db8::/32 (/40 to /64) and an address inside it."""
    length = rng.choice((40, 44, 48, 48, 56, 56, 64, 64))
    address = (0x20010DB8 << 96) | rng.getrandbits(96)
    network = address >> (128 - length) << (128 - length)
    groups = [f"{(network >> (112 - 16 * i)) & 0xFFFF:x}" for i in range(8)]
    inside = [f"{(address >> (112 - 16 * i)) & 0xFFFF:x}" for i in range(8)]
    return f"{':'.join(groups)}/{length}", ":".join(inside)


def build_rows(n: int, rng: random.Random) -> tuple[list[ResourceRow], list[str]]:
    """*n* distinct prefixes over n // 4 customers, as resource rows, and an address inside
    each (for hits). Like an ISP's data: nested blocks, a fifth of them reassigned once (A
    until T, B from T), one in a hundred a CGNAT address shared by port ranges; no two
    customers hold the same thing at the same time."""
    rows: list[ResourceRow] = []
    inside: list[str] = []
    seen: set[str] = set()
    customers = max(1, n // 4)

    def customer() -> tuple[int, str]:
        cid = rng.randrange(customers) + 1
        return cid, f"C-{cid}"

    while len(inside) < n:
        value, address = _v4(rng) if rng.random() < 0.7 else _v6(rng)
        if value in seen:
            continue
        seen.add(value)
        inside.append(address)
        roll = rng.random()
        if roll < 0.01 and "." in address:  # CGNAT: one public address, port ranges
            for low in range(1024, 65536, 16384):
                rows.append(ResourceRow(*customer(), "ip-ports", address, low, low + 16383))
        elif roll < 0.21:  # reassigned at T
            t = EPOCH + timedelta(days=rng.randrange(30, SPAN_DAYS - 30))
            since = EPOCH - timedelta(days=rng.randrange(0, 365))
            rows.append(ResourceRow(*customer(), "cidr", value, None, None, since, t))
            rows.append(ResourceRow(*customer(), "cidr", value, None, None, t, None))
        else:
            rows.append(ResourceRow(*customer(), "cidr", value))
    return rows, inside


def _random_address(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return _dotted(rng.getrandbits(32))
    return _v6(rng)[1]


def time_lookups(index: CustomerIndex, queries: list[tuple[str, datetime, int | None]]) -> float:
    lookup = index.lookup_ip
    started = time.perf_counter()
    for ip, at, port in queries:
        lookup(ip, at, port)
    return len(queries) / (time.perf_counter() - started)


BATCH = 256  # queries per lookup_ips call: a pipeline batch's candidates, not the whole run


def time_batch(index: CustomerIndex, queries: list[tuple[str, datetime, int | None]]) -> float:
    batches = [queries[i:i + BATCH] for i in range(0, len(queries), BATCH)]
    lookup_ips = index.lookup_ips
    started = time.perf_counter()
    for batch in batches:
        lookup_ips(batch)
    return len(queries) / (time.perf_counter() - started)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """The resident set now (Linux), in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


_OPEN_RSS = """
import gc, json, sys
from abuse_desk.classifier.customers import CustomerIndex
def rss():
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1])
import resource
gc.collect()
before = rss()
index = CustomerIndex.open(sys.argv[1], signature="bench")
gc.collect()
print(json.dumps((rss() - before) * resource.getpagesize() / 2**20))
"""


def opened_rss_mb(path: Path) -> float:
    """The resident growth of a fresh process that opens the prebuilt file: the index alone,
    as a worker holds it."""
    done = subprocess.run([sys.executable, "-c", _OPEN_RSS, str(path)], capture_output=True,
                          text=True, check=True)
    return float(json.loads(done.stdout))


def time_pytricia(rows: list[ResourceRow],
                  queries: list[tuple[str, datetime, int | None]]) -> float:
    """pytricia's own lookups per second: the same prefixes (as the index keys them), the
    same addresses, a frozen tree, ``get`` and nothing else."""
    tree = pytricia.PyTricia(128)
    for r in rows:
        tree[_prefix_key(r.value)] = 1
    tree.freeze()
    keys = [ip if ":" in ip else "::ffff:" + ip for ip, _at, _port in queries]
    get = tree.get
    started = time.perf_counter()
    for key in keys:
        get(key)
    return len(keys) / (time.perf_counter() - started)


def time_load(rows: list[ResourceRow]) -> float:
    """Seconds ``CustomerIndex.load`` takes to read *rows* back from a SQLite file."""
    from abuse_desk.core.config import DatabaseConfig
    from abuse_desk.core.db import make_engine, upgrade
    from abuse_desk.core.models import Customer, CustomerResource
    from sqlalchemy import insert

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(DatabaseConfig(url=f"sqlite:///{folder}/bench.db"))
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(Customer), [
                {"id": cid, "external_id": ext, "name": ext, "email": None, "created_at": EPOCH}
                for cid, ext in sorted({(r.customer_id, r.external_id) for r in rows})])
            for start in range(0, len(rows), 100_000):
                conn.execute(insert(CustomerResource), [
                    {"customer_id": r.customer_id, "kind": r.kind, "value": r.value,
                     "port_low": r.port_low, "port_high": r.port_high,
                     "valid_from": r.valid_from, "valid_until": r.valid_until}
                    for r in rows[start:start + 100_000]])
        started = time.perf_counter()
        CustomerIndex.load(engine)
        elapsed = time.perf_counter() - started
        engine.dispose()
    return elapsed


def run(prefixes: int, lookups: int, seed: int, load: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    figures: dict[str, Any] = {"prefixes": prefixes, "lookups": lookups, "seed": seed}

    started = time.perf_counter()
    rows, inside = build_rows(prefixes, rng)
    figures["generate_s"] = time.perf_counter() - started
    rss_before = max_rss_mb()

    gc.collect()
    resident_before = rss_mb()
    started = time.perf_counter()
    index = CustomerIndex.from_rows(rows)
    figures["build_s"] = time.perf_counter() - started
    figures["max_rss_mb_before_build"] = rss_before
    figures["max_rss_mb_after_build"] = max_rss_mb()
    gc.collect()
    figures["index_rss_mb"] = rss_mb() - resident_before
    figures["index"] = index.stats()

    half = lookups // 2
    times = [EPOCH + timedelta(seconds=rng.randrange(SPAN_DAYS * 86400)) for _ in range(lookups)]
    ports = [rng.choice((None, 2000, 20000, 40000, 60000)) for _ in range(lookups)]
    hit_ips = [inside[rng.randrange(len(inside))] for _ in range(half)]
    random_ips = [_random_address(rng) for _ in range(lookups - half)]
    queries = list(zip(hit_ips + random_ips, times, ports, strict=True))
    rng.shuffle(queries)

    figures["resolved_share"] = sum(
        1 for ip, at, port in queries if index.lookup_ip(ip, at, port).matches) / lookups
    figures["lookups_per_s"] = time_lookups(index, queries)

    gc.collect()
    resident_thawed = rss_mb()
    started = time.perf_counter()
    index.freeze()
    figures["freeze_s"] = time.perf_counter() - started
    figures["index_rss_mb_frozen"] = figures["index_rss_mb"] + rss_mb() - resident_thawed
    figures["lookups_per_s_frozen"] = time_lookups(index, queries)
    figures["batch_lookups_per_s_frozen"] = time_batch(index, queries)

    started = time.perf_counter()
    index.patch(1, "C-1", [])  # one customer's resources replaced, on the frozen tree
    figures["patch_one_customer_s"] = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.bin"
        index.save(path, signature="bench")
        figures["prebuilt_file_mb"] = path.stat().st_size / 2**20
        started = time.perf_counter()
        opened = CustomerIndex.open(path, signature="bench")
        figures["open_prebuilt_s"] = time.perf_counter() - started
        assert opened is not None and opened.stats() == index.stats()
        del opened
        figures["open_prebuilt_rss_mb"] = opened_rss_mb(path)

    exact = {address: (1, "C-1") for address in inside}
    get = exact.get
    started = time.perf_counter()
    for ip, _at, _port in queries:
        get(ip)
    figures["dict_lookups_per_s"] = lookups / (time.perf_counter() - started)
    del exact
    figures["pytricia_lookups_per_s"] = time_pytricia(rows, queries)
    if load:
        del index
        figures["load_from_sqlite_s"] = time_load(rows)
    return figures


def table(figures: dict[str, Any]) -> str:
    def ratios(rate: float) -> str:
        return (f" ({rate / figures['pytricia_lookups_per_s']:.2f} x pytricia, "
                f"{rate / figures['dict_lookups_per_s']:.2f} x dict)")

    lines = [
        ("prefixes", f"{figures['index']['prefixes']:,} ({figures['index']['resources']:,} "
                     f"resources, {figures['index']['customers']:,} customers)"),
        ("generate rows", f"{figures['generate_s']:.2f} s (not part of the build)"),
        ("build", f"{figures['build_s']:.2f} s"),
        ("freeze", f"{figures['freeze_s']:.2f} s"),
        ("patch one customer (frozen)", f"{figures['patch_one_customer_s']:.3f} s"),
        ("open the prebuilt file (CustomerIndex.open)",
         f"{figures['open_prebuilt_s']:.2f} s ({figures['prebuilt_file_mb']:.0f} MB file)"),
        ("index resident, opened in a fresh process",
         f"{figures['open_prebuilt_rss_mb']:.0f} MB"),
        ("max RSS before / after build", f"{figures['max_rss_mb_before_build']:.0f} / "
                                         f"{figures['max_rss_mb_after_build']:.0f} MB"),
        ("index resident (RSS growth), built / frozen",
         f"{figures['index_rss_mb']:.0f} / {figures['index_rss_mb_frozen']:.0f} MB"),
        ("lookups", f"{figures['lookups']:,} ({figures['resolved_share']:.0%} resolve)"),
        ("lookup_ip", f"{figures['lookups_per_s']:,.0f} /s"),
        ("lookup_ip, frozen", f"{figures['lookups_per_s_frozen']:,.0f} /s"
                              f"{ratios(figures['lookups_per_s_frozen'])}"),
        (f"lookup_ips (batches of {BATCH}), frozen",
         f"{figures['batch_lookups_per_s_frozen']:,.0f} /s"
         f"{ratios(figures['batch_lookups_per_s_frozen'])}"),
        ("C reference: pytricia get, same prefixes",
         f"{figures['pytricia_lookups_per_s']:,.0f} /s"),
        ("ceiling: dict.get of exact IPs", f"{figures['dict_lookups_per_s']:,.0f} /s"),
    ]
    if "load_from_sqlite_s" in figures:
        lines.append(("load from SQLite (read + build + freeze)",
                      f"{figures['load_from_sqlite_s']:.2f} s"))
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefixes", type=int, default=1_000_000, metavar="N",
                        help="resources in the index (default 1,000,000)")
    parser.add_argument("--lookups", type=int, default=300_000, metavar="N",
                        help="lookups timed (default 300,000)")
    parser.add_argument("--seed", type=int, default=4, help="random seed (default 4)")
    parser.add_argument("--load", action="store_true",
                        help="also time CustomerIndex.load from a SQLite file of the same rows")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    figures = run(args.prefixes, args.lookups, args.seed, args.load)
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
