"""The ``abuse-desk customers`` commands: import, resolve, list.

``app/cli.py`` adds them with :func:`add_customer_commands` and runs them with
:func:`run_customers`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from ...classifier.customer_import import HEADER, CustomerImportError, import_customers
from ...classifier.customers import (
    VIA_DOMAIN,
    VIA_EMAIL,
    VIA_IP,
    VIA_URL,
    CustomerIndex,
    Lookup,
    Resolution,
    combine,
)
from ...classifier.resources import resource_text
from ...classifier.windows import as_utc, iso
from ...core.clock import Clock, instant_arg
from ...core.config import Config
from ...core.models import Customer, CustomerResource

MANY_ROWS = 1000  # imports at least this long show a progress bar (on a terminal)
MAX_LISTED = 10  # resources shown per customer by `customers list`

RESOLVE_HELP = """VALUE is an IP (192.0.2.10, 2001:db8::1), a domain or URL
(shop.example, https://shop.example/login) or an e-mail address. Exit status: 0 when a customer
resolves, 1 when none does (the reasons are printed), 2 on an error."""




def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return int(text)


def add_customer_commands(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add ``import``, ``resolve`` and ``list`` to the ``customers`` command's *subparsers*."""
    imp = subparsers.add_parser(
        "import", parents=[common_parent], help="import customers and resources from a CSV file",
        description=f"Import customers and their resources from a CSV file whose header is "
                    f"exactly {','.join(HEADER)} (optionally ,time_zone: the customer's IANA "
                    "time zone for the deadlines in its notices), one row per resource. A "
                    "resource is a CIDR, "
                    "an IP, IP:LOW-HIGH (a CGNAT port range; [IPv6]:LOW-HIGH), a domain "
                    "(matching its subdomains) or an address; valid_from/valid_until are ISO "
                    "8601 or empty (UTC when no zone is given). Every row is checked first: a "
                    "bad row is reported with its line number and nothing of the file is "
                    "imported. Importing the same file again changes nothing.")
    imp.add_argument("file", type=Path, metavar="FILE.csv")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")

    res = subparsers.add_parser(
        "resolve", parents=[common_parent], help="who is behind an IP, a domain or an address",
        description="Print the customer behind VALUE at a time (and port, for a CGNAT "
                    "address) and how it was found, or 'no customer' with the reasons. "
                    + RESOLVE_HELP)
    res.add_argument("value", metavar="VALUE")
    res.add_argument("--at", type=instant_arg, metavar="ISO",
                     help="the incident time (ISO 8601; default: now)")
    res.add_argument("--port", type=_port, metavar="N",
                     help="the source port (needed for an address shared by CGNAT)")
    res.add_argument("--json", action="store_true", help="one JSON object")

    ls = subparsers.add_parser(
        "list", parents=[common_parent], help="list customers and their resources",
        description="List every customer with its address and resources (with their "
                    "validity windows), by customer id.")
    ls.add_argument("--json", action="store_true", help="a JSON array, one object per customer")


def run_customers(args: argparse.Namespace, config: Config, engine: Engine,
                  clock: Clock) -> int:
    """Run the ``customers`` command in *args* on *engine*; returns the exit status."""
    return _COMMANDS[args.customers_command](args, config, engine, clock)


def _fail(message: str, code: int = 2) -> int:
    print(f"abuse-desk: error: {message}", file=sys.stderr)
    return code


# -- import ----------------------------------------------------------------------------------


class _Bar:
    """The import's progress on stderr, when it is a terminal and the file is long."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def phase(self, name: str, total: int) -> None:
        self.close()
        if self._enabled and total >= MANY_ROWS:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="row", desc=name, file=sys.stderr)

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _import(args: argparse.Namespace, config: Config, engine: Engine,
            clock: Clock) -> int:
    path: Path = args.file
    if not path.is_file():
        return _fail(f"{path}: no such file (give the CSV file to import)")
    bar = _Bar(not args.quiet and sys.stderr.isatty())
    try:
        result = import_customers(engine, path, progress=bar, clock=clock)
    except CustomerImportError as exc:
        bar.close()
        print(f"abuse-desk: error: {exc}", file=sys.stderr)
        print("Nothing of the file was imported: correct the lines above and import it "
              "again.", file=sys.stderr)
        return 1
    finally:
        bar.close()
    print(f"{path}: {result.text()}")
    if result.customers_added or result.resources_added or result.resources_updated:
        print(f"Workers use the change within classifier.index_refresh_s "
              f"({config.classifier.index_refresh_s:g} s).")
    return 0


# -- resolve ---------------------------------------------------------------------------------


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# What VALUE is, tried in order: (test, kind shown, how the index looks it up).
_Resolver = Callable[[CustomerIndex, str, datetime, int | None], Lookup]
_VALUE_KINDS: tuple[tuple[Callable[[str], bool], str, _Resolver], ...] = (
    (_is_ip, "ip", lambda ix, v, at, port: ix.lookup_ip(v, at, port, via=VIA_IP)),
    (lambda v: "://" in v, "url",
     lambda ix, v, at, _p: ix.lookup_host(_host_of(v), at, via=VIA_URL)),
    (lambda v: "@" in v, "email", lambda ix, v, at, _p: ix.lookup_email(v, at, via=VIA_EMAIL)),
    (lambda v: True, "domain", lambda ix, v, at, _p: ix.lookup_host(v, at, via=VIA_DOMAIN)),
)


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def resolve_value(index: CustomerIndex, value: str, at: datetime, port: int | None,
                  config: Config, clock: Clock) -> tuple[str, Resolution]:
    """(what VALUE is, its resolution), asking the resolver hook about an IP nobody holds."""
    kind, resolver = next((k, r) for test, k, r in _VALUE_KINDS if test(value))
    resolution = combine([resolver(index, value, at, port)])
    cfg = config.classifier
    if kind == "ip" and resolution.customer_id is None and \
            (cfg.resolver_hook_url or cfg.resolver_hook_command):
        from ...classifier.resolver_hook import ResolverHook

        resolution = resolution.with_hook(ResolverHook.from_config(cfg, clock).resolve(
            value, port, at), index)
    return kind, resolution


def _resolve(args: argparse.Namespace, config: Config, engine: Engine,
             clock: Clock) -> int:
    value = args.value.strip()
    if not value:
        return _fail("VALUE is empty: give an IP, a domain, a URL or an address")
    at = args.at or clock()
    kind, resolution = resolve_value(CustomerIndex.load(engine), value, at, args.port, config,
                                     clock)
    customer = _customer(engine, resolution.customer_id)
    if args.json:
        print(json.dumps({
            "value": value, "kind": kind, "at": iso(at), "port": args.port,
            **resolution.to_json(),
            "name": customer.get("name"), "email": customer.get("email")}))
        return 0 if resolution.customer_id is not None else 1
    port = f" port {args.port}" if args.port is not None else ""
    if resolution.customer_id is None:
        print(f"{value}{port} at {iso(at)}: no customer")
    else:
        contact = f", {customer['email']}" if customer.get("email") else ""
        print(f"{value}{port} at {iso(at)}: customer {resolution.external_id} "
              f"({customer.get('name')}{contact})")
    for match in resolution.matches:
        print(f"  found by {match.evidence.detail}")
    for reason in resolution.reasons:
        print(f"  reason: {reason}")
    for evidence in resolution.evidence:
        if evidence.name.startswith("candidate:"):
            print(f"  candidate: {evidence.detail}")
    return 0 if resolution.customer_id is not None else 1


def _customer(engine: Engine, customer_id: int | None) -> dict[str, Any]:
    if customer_id is None:
        return {}
    with engine.connect() as conn:
        row = conn.execute(select(Customer.name, Customer.email)
                           .where(Customer.id == customer_id)).first()
    return {"name": row.name, "email": row.email} if row else {}


# -- list ------------------------------------------------------------------------------------


def customers_json(engine: Engine) -> list[dict[str, Any]]:
    """Every customer with its resources, by external id."""
    r = CustomerResource
    with engine.connect() as conn:
        customers = conn.execute(select(Customer.id, Customer.external_id, Customer.name,
                                        Customer.email, Customer.created_at)
                                 .order_by(Customer.external_id)).all()
        held: dict[int, list[dict[str, Any]]] = {}
        for cid, kind, value, low, high, start, end in conn.execute(
                select(r.customer_id, r.kind, r.value, r.port_low, r.port_high, r.valid_from,
                       r.valid_until).order_by(r.customer_id, r.id)):
            held.setdefault(cid, []).append({
                "resource": resource_text(kind, value, low, high), "kind": kind,
                "valid_from": iso(as_utc(start)), "valid_until": iso(as_utc(end))})
    return [{"customer_id": ext, "name": name, "email": email,
             "created_at": iso(as_utc(created)), "resources": held.get(cid, [])}
            for cid, ext, name, email, created in customers]


def _window(resource: dict[str, Any]) -> str:
    parts = [f"from {resource['valid_from']}" if resource["valid_from"] else "",
             f"until {resource['valid_until']}" if resource["valid_until"] else ""]
    shown = " ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def _list(args: argparse.Namespace, config: Config, engine: Engine,
          clock: Clock) -> int:
    customers = customers_json(engine)
    if args.json:
        print(json.dumps(customers))
        return 0
    if not customers:
        print("no customers yet: import them with abuse-desk customers import FILE.csv")
        return 0
    for c in customers:
        email = f" <{c['email']}>" if c["email"] else ""
        resources = c["resources"]
        print(f"{c['customer_id']}  {c['name']}{email}  {len(resources)} resource(s)")
        for resource in resources[:MAX_LISTED]:
            print(f"    {resource['resource']}{_window(resource)}")
        if len(resources) > MAX_LISTED:
            print(f"    ... and {len(resources) - MAX_LISTED} more (--json lists them all)")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, Config, Engine, Clock], int]] = {
    "import": _import, "resolve": _resolve, "list": _list}
