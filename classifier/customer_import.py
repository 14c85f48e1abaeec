"""``abuse-desk customers import FILE.csv``: customers and their resources from a CSV file.

The header is exactly ``customer_id,name,email,resource,valid_from,valid_until``; one row per
resource (a row with an empty resource names a customer only). ``resource`` is a CIDR, an IP,
``IP:LOW-HIGH`` (``[IPv6]:LOW-HIGH``), a domain or an address; ``valid_from``/``valid_until``
are ISO 8601 or empty (a naive time is UTC).

All or nothing: every row is checked first, and a bad one is reported with its line number
("line 7: resource '300.1.2.3': not an IP, CIDR, IP:LOW-HIGH, domain or address"); then
everything is written in one transaction, which checks the result once more (no two customers
may hold the same resource at the same time) before it commits.

Idempotent: a resource is identified by its customer, kind, value, ports and ``valid_from``;
one already stored is left alone, or gets its ``valid_until`` updated (closing a window at a
reassignment). Customers' names and addresses are updated when the file states other ones.
The import adds and updates; it never deletes what the file does not mention.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from ..core.clock import Clock
from ..core.models import Customer, CustomerResource
from .resources import Resource
from .windows import as_utc

HEADER = ("customer_id", "name", "email", "resource", "valid_from", "valid_until")
# An optional last column: the customer's IANA time zone, for the deadlines in its notices.
HEADER_TZ = (*HEADER, "time_zone")
MAX_ERRORS = 50  # reported at most; the rest are counted
MAX_EXTERNAL_ID = 128

# The first statement of the import's transaction, by dialect: SQLite takes the write lock at
# once (so its busy timeout applies, instead of failing to upgrade a read lock later);
# PostgreSQL runs one import at a time.
_LOCK_FIRST = {
    "sqlite": "UPDATE customers SET id = id WHERE 1 = 0",
    "postgresql": "SELECT pg_advisory_xact_lock(4242001)",
}


class CustomerImportError(ValueError):
    """A file that cannot be imported; ``errors`` says why, line by line. Nothing of it was
    imported."""

    def __init__(self, path: str | Path, errors: list[str]) -> None:
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = f"\n... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        super().__init__(f"{path}: " + "\n".join(shown) + more)


class Progress(Protocol):
    """Told how far an import is (the command shows a progress bar with it)."""

    def phase(self, name: str, total: int) -> None: ...
    def advance(self, count: int) -> None: ...


@dataclass(frozen=True)
class ImportResult:
    customers_added: int = 0
    customers_updated: int = 0  # name or address changed
    resources_added: int = 0
    unchanged: int = 0  # rows already stored as they are
    resources_updated: int = 0  # valid_until changed (a window closed or moved)

    def text(self) -> str:
        return (f"{self.customers_added} customer(s) added, {self.customers_updated} updated; "
                f"{self.resources_added} resource(s) added, {self.resources_updated} updated; "
                f"{self.unchanged} row(s) unchanged")


@dataclass(frozen=True)
class ImportRow:
    line: int
    customer_id: str  # the external id
    name: str  # "" when not stated
    email: str  # "" when not stated
    resource: Resource | None
    time_zone: str = ""  # "" when not stated


# -- reading and checking --------------------------------------------------------------------


def _time(value: str, column: str) -> datetime | None:
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(f"{column} {value!r} is not ISO 8601 (e.g. 2026-03-01 or "
                         "2026-03-01T12:00:00Z)") from None


def _email(value: str) -> str:
    if not value:
        return ""
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"email {value!r}: {exc}") from None
    return value


def _customer_id(value: str) -> str:
    if not value:
        raise ValueError("customer_id is empty")
    if len(value) > MAX_EXTERNAL_ID:
        raise ValueError(f"customer_id is longer than {MAX_EXTERNAL_ID} characters")
    return value


def _time_zone(value: str) -> str:
    if not value:
        return ""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time_zone {value!r} is not an IANA time zone (e.g. "
                         "Europe/Berlin)") from None
    return value


def parse_row(line: int, fields: list[str], header: tuple[str, ...] = HEADER) -> ImportRow:
    """One data row, checked; ValueError saying what is wrong (without the line number)."""
    if len(fields) != len(header):
        raise ValueError(f"expected {len(header)} fields ({','.join(header)}), "
                         f"found {len(fields)}")
    time_zone = _time_zone(fields[6].strip()) if len(header) == len(HEADER_TZ) else ""
    external_id, name, email, resource, valid_from, valid_until = (
        f.strip() for f in fields[:6])
    start, end = _time(valid_from, "valid_from"), _time(valid_until, "valid_until")
    if not resource and (start or end):
        raise ValueError("valid_from/valid_until without a resource")
    return ImportRow(line, _customer_id(external_id), name, _email(email),
                     Resource.parse(resource, start, end) if resource else None, time_zone)


def read_rows(path: str | Path, progress: Progress | None = None) -> list[ImportRow]:
    """Every row of the file, checked; CustomerImportError listing every bad line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            records = list(_records(csv.reader(handle)))
    except UnicodeDecodeError as exc:
        raise CustomerImportError(path, [f"not UTF-8 text ({exc.reason} at byte "
                                         f"{exc.start})"]) from None
    except csv.Error as exc:
        raise CustomerImportError(path, [f"not CSV: {exc}"]) from None
    header = tuple(f.strip() for f in records[0][1]) if records else ()
    if header not in (HEADER, HEADER_TZ):
        found = ",".join(records[0][1]) if records else "an empty file"
        raise CustomerImportError(path, [f"line 1: the header must be exactly "
                                         f"{','.join(HEADER)}[,time_zone] (found: {found})"])
    if progress:
        progress.phase("checking", len(records) - 1)
    rows, errors = [], []
    for number, (line, fields) in enumerate(records[1:], 1):
        try:
            rows.append(parse_row(line, fields, header))
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
        if progress and number % 1000 == 0:
            progress.advance(1000)
    if progress:
        progress.advance((len(records) - 1) % 1000)
    errors += consistency_errors(rows)
    if errors:
        raise CustomerImportError(path, errors)
    return rows


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank record (a quoted field may span lines)."""
    line = 1
    for fields in reader:
        if any(f.strip() for f in fields):
            yield line, fields
        line = reader.line_num + 1


def consistency_errors(rows: list[ImportRow]) -> list[str]:
    """A customer named or addressed two ways, a resource stated twice with two ends."""
    errors: list[str] = []
    stated: dict[tuple[str, str], tuple[str, int]] = {}
    windows: dict[tuple[Any, ...], ImportRow] = {}
    for row in rows:
        for column, value in (("name", row.name), ("email", row.email),
                              ("time_zone", row.time_zone)):
            if not value:
                continue
            first = stated.setdefault((row.customer_id, column), (value, row.line))
            if first[0] != value:
                errors.append(f"line {row.line}: customer {row.customer_id!r} has {column} "
                              f"{value!r} here but {first[0]!r} on line {first[1]}")
        if row.resource is not None:
            other = windows.setdefault(_identity(row.customer_id, row.resource), row)
            if other.resource and other.resource.valid_until != row.resource.valid_until:
                errors.append(f"line {row.line}: {row.resource.text} of {row.customer_id!r} "
                              f"is on line {other.line} with another valid_until")
    return errors


def _identity(customer: Any, r: Resource) -> tuple[Any, ...]:
    """What makes a resource the same one: all but its end (which a reassignment sets)."""
    return (customer, r.kind, r.value, r.port_low, r.port_high, as_utc(r.valid_from))


# -- overlaps --------------------------------------------------------------------------------


@dataclass
class _Claim:
    customer: str
    resource: Resource
    line: int | None  # None: already stored


_EARLIEST, _LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


def _overlap(a: Resource, b: Resource) -> bool:
    """Do two resources of one kind and value claim the same ports at the same time?"""
    if a.kind == "ip-ports" and ((a.port_high or 0) < (b.port_low or 0)
                                 or (b.port_high or 0) < (a.port_low or 0)):
        return False
    return (a.valid_from or _EARLIEST) < (b.valid_until or _LATEST) and \
        (b.valid_from or _EARLIEST) < (a.valid_until or _LATEST)


def overlap_errors(claims: Iterable[_Claim]) -> list[str]:
    """Two customers holding the same resource (or overlapping ports of one CGNAT address) at
    the same time: resolution could not choose between them."""
    by_value: dict[tuple[str, str], list[_Claim]] = {}
    for claim in claims:
        by_value.setdefault((claim.resource.kind, claim.resource.value), []).append(claim)
    errors = []
    for group in by_value.values():
        if len({c.customer for c in group}) < 2:
            continue
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if a.customer != b.customer and (a.line or b.line) and \
                        _overlap(a.resource, b.resource):
                    errors.append(_overlap_message(a, b))
    return errors


def _overlap_message(a: _Claim, b: _Claim) -> str:
    new, old = (a, b) if a.line and (not b.line or a.line > b.line) else (b, a)
    where = f"line {old.line}" if old.line else "already stored"
    return (f"line {new.line}: {new.resource.text} would be held by {new.customer!r} and "
            f"{old.customer!r} ({where}) at the same time: give one a valid_until no later "
            "than the other's valid_from")


# -- writing ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    new_customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    customer_updates: list[dict[str, Any]] = field(default_factory=list)
    new_resources: list[tuple[str, Resource]] = field(default_factory=list)
    resource_updates: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0


def _stated(rows: list[ImportRow]) -> dict[str, dict[str, str]]:
    """Each customer's name and address as the file states them (first non-empty)."""
    stated: dict[str, dict[str, str]] = {}
    for row in rows:
        mine = stated.setdefault(row.customer_id,
                                 {"name": "", "email": "", "time_zone": "", "line": ""})
        mine["line"] = mine["line"] or str(row.line)
        mine["name"] = mine["name"] or row.name
        mine["email"] = mine["email"] or row.email
        mine["time_zone"] = mine["time_zone"] or row.time_zone
    return stated


def plan(conn: Connection, rows: list[ImportRow], now: datetime) -> tuple[_Plan, list[str]]:
    """What the file changes in the database, and what would be wrong after it."""
    result, errors = _Plan(), []
    customers = {ext: (cid, name, email, tz) for cid, ext, name, email, tz in conn.execute(
        select(Customer.id, Customer.external_id, Customer.name, Customer.email,
               Customer.time_zone))}
    external = {cid: ext for ext, (cid, _n, _e, _t) in customers.items()}
    for ext, mine in _stated(rows).items():
        if ext not in customers:
            if not mine["name"]:
                errors.append(f"line {mine['line']}: customer {ext!r} is new: give its name")
            result.new_customers[ext] = {"external_id": ext, "name": mine["name"],
                                         "email": mine["email"] or None,
                                         "time_zone": mine["time_zone"] or None,
                                         "created_at": now}
            continue
        cid, name, email, tz = customers[ext]
        wanted = {"name": mine["name"] or name, "email": mine["email"] or email,
                  "time_zone": mine["time_zone"] or tz}
        if wanted != {"name": name, "email": email, "time_zone": tz}:
            result.customer_updates.append({"cid": cid, **wanted})

    stored: dict[tuple[Any, ...], tuple[int, datetime | None]] = {}
    claims: dict[int, _Claim] = {}
    r = CustomerResource
    for rid, cid, kind, value, low, high, start, end in conn.execute(select(
            r.id, r.customer_id, r.kind, r.value, r.port_low, r.port_high, r.valid_from,
            r.valid_until)):
        resource = Resource(kind, value, low, high, as_utc(start), as_utc(end))
        stored.setdefault(_identity(external.get(cid, str(cid)), resource), (rid, as_utc(end)))
        claims[rid] = _Claim(external.get(cid, str(cid)), resource, None)

    seen: set[tuple[Any, ...]] = set()
    new_claims: list[_Claim] = []
    for row in rows:
        if row.resource is None:
            result.unchanged += 1
            continue
        identity = _identity(row.customer_id, row.resource)
        if identity in seen:
            result.unchanged += 1
            continue
        seen.add(identity)
        if identity not in stored:
            result.new_resources.append((row.customer_id, row.resource))
            new_claims.append(_Claim(row.customer_id, row.resource, row.line))
        elif stored[identity][1] != row.resource.valid_until:
            rid = stored[identity][0]
            result.resource_updates.append({"rid": rid, "until": row.resource.valid_until})
            claims[rid] = _Claim(row.customer_id, row.resource, row.line)
        else:
            result.unchanged += 1
    errors += overlap_errors([*claims.values(), *new_claims])
    return result, errors


def _write(conn: Connection, work: _Plan, progress: Progress | None) -> None:
    if work.new_customers:
        conn.execute(insert(Customer), list(work.new_customers.values()))
    ids = {ext: cid for cid, ext in conn.execute(select(Customer.id, Customer.external_id))}
    if work.customer_updates:
        conn.execute(update(Customer).where(Customer.id == bindparam("cid")).values(
            name=bindparam("name"), email=bindparam("email"),
            time_zone=bindparam("time_zone")), work.customer_updates)
    if work.resource_updates:
        conn.execute(update(CustomerResource).where(CustomerResource.id == bindparam("rid"))
                     .values(valid_until=bindparam("until")), work.resource_updates)
    if progress:
        progress.phase("writing", len(work.new_resources))
    for start in range(0, len(work.new_resources), 10_000):
        chunk = work.new_resources[start:start + 10_000]
        conn.execute(insert(CustomerResource), [
            {"customer_id": ids[ext], "kind": r.kind, "value": r.value, "port_low": r.port_low,
             "port_high": r.port_high, "valid_from": r.valid_from, "valid_until": r.valid_until}
            for ext, r in chunk])
        if progress:
            progress.advance(len(chunk))


def import_customers(engine: Engine, path: str | Path, *, clock: Clock,
                     progress: Progress | None = None) -> ImportResult:
    """Import *path* (see the module docstring); CustomerImportError if any row is bad, and
    then nothing of the file is imported."""
    rows = read_rows(path, progress)
    now = clock()
    with engine.begin() as conn:
        first = _LOCK_FIRST.get(conn.dialect.name)
        if first:
            conn.execute(text(first))
        work, errors = plan(conn, rows, now)
        if errors:
            raise CustomerImportError(path, errors)
        _write(conn, work, progress)
    return ImportResult(customers_added=len(work.new_customers),
                        customers_updated=len(work.customer_updates),
                        resources_added=len(work.new_resources), unchanged=work.unchanged,
                        resources_updated=len(work.resource_updates))
