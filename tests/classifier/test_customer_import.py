"""`customers import`: CSV checking, all-or-nothing, idempotency (classifier/customer_import.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.classifier.customer_import import (
    CustomerImportError,
    ImportResult,
    import_customers,
)
from abuse_desk.classifier.customers import CustomerIndex
from abuse_desk.core.config import DatabaseConfig
from abuse_desk.core.db import as_utc, make_engine, upgrade
from abuse_desk.core.models import Customer, CustomerResource
from sqlalchemy import Engine, select

HEADER = "customer_id,name,email,resource,valid_from,valid_until\n"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

FIRST = HEADER + """\
C-1,Example Hosting Ltd,noc@hosting.example,192.0.2.0/24,,
C-1,,,2001:db8:1::/48,2025-01-01,
C-1,,,shop.example,,
C-2,Jane Doe,jd@doe.example,198.51.100.200:1024-32767,2025-06-01T00:00:00Z,2026-06-01T00:00+02:00
C-2,,,198.51.100.7,,
C-2,,,Sales@Doe.Example,,
"""


def engine_at(url: str) -> Engine:
    engine = make_engine(DatabaseConfig(url=url))
    upgrade(engine)
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = engine_at(f"sqlite:///{tmp_path / 'desk.db'}")
    yield made
    made.dispose()


def csv_file(tmp_path: Path, text: str, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(engine: Engine, path: Path) -> ImportResult:
    return import_customers(engine, path, clock=lambda: NOW)


def customers(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(Customer.external_id, Customer.name, Customer.email)
            .order_by(Customer.external_id))]


def resources(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [(ext, kind, value, low, high, as_utc(start), as_utc(end))
                for ext, kind, value, low, high, start, end in conn.execute(
                    select(Customer.external_id, CustomerResource.kind, CustomerResource.value,
                           CustomerResource.port_low, CustomerResource.port_high,
                           CustomerResource.valid_from, CustomerResource.valid_until)
                    .join(Customer, Customer.id == CustomerResource.customer_id)
                    .order_by(CustomerResource.id))]


def everything(engine: Engine) -> tuple[list[tuple[Any, ...]], ...]:
    with engine.connect() as conn:
        return (list(map(tuple, conn.execute(select(Customer.__table__)))),
                list(map(tuple, conn.execute(select(CustomerResource.__table__)))))


def d(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


EXPECTED_RESOURCES = [
    ("C-1", "cidr", "192.0.2.0/24", None, None, None, None),
    ("C-1", "cidr", "2001:db8:1::/48", None, None, d(2025, 1, 1), None),
    ("C-1", "domain", "shop.example", None, None, None, None),
    ("C-2", "ip-ports", "198.51.100.200", 1024, 32767, d(2025, 6, 1), d(2026, 5, 31, 22)),
    ("C-2", "cidr", "198.51.100.7/32", None, None, None, None),
    ("C-2", "email", "sales@doe.example", None, None, None, None),
]


def test_import_stores_customers_and_resources(engine: Engine, tmp_path: Path) -> None:
    result = run(engine, csv_file(tmp_path, FIRST))
    assert result == ImportResult(customers_added=2, customers_updated=0, resources_added=6,
                                  unchanged=0, resources_updated=0)
    assert customers(engine) == [("C-1", "Example Hosting Ltd", "noc@hosting.example"),
                                 ("C-2", "Jane Doe", "jd@doe.example")]
    assert resources(engine) == EXPECTED_RESOURCES


def test_importing_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(tmp_path, FIRST)
    run(engine, path)
    before = everything(engine)
    assert run(engine, path) == ImportResult(customers_added=0, customers_updated=0,
                                             resources_added=0, unchanged=6,
                                             resources_updated=0)
    assert everything(engine) == before


def test_a_wrong_header_names_the_expected_one(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "id,name,email,resource,from,until\nC-1,A,,192.0.2.0/24,,\n")
    with pytest.raises(CustomerImportError) as caught:
        run(engine, path)
    assert caught.value.errors == [
        "line 1: the header must be exactly customer_id,name,email,resource,valid_from,"
        "valid_until[,time_zone] (found: id,name,email,resource,from,until)"]
    assert str(caught.value).startswith(f"{path}: line 1: the header must be exactly")


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(engine: Engine,
                                                                tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER + """\
C-1,"Example
Hosting",,192.0.2.0/24,,

C-1,,,198.51.100.0/24,,
C-2,B,,300.1.2.3,,
C-2,B,not-an-address,198.51.100.9,,
C-3,C,,co.uk,,
C-3,C,,203.0.113.0/24,yesterday,
C-3,C,,203.0.113.0/25,2026-02-01,2026-01-01
,D,,203.0.113.200,,
C-4,D,,203.0.113.201
""")
    with pytest.raises(CustomerImportError) as caught:
        run(engine, path)
    assert caught.value.errors == [
        "line 6: resource '300.1.2.3': not an IP, CIDR, IP:LOW-HIGH, domain or address",
        "line 7: email 'not-an-address': An email address must have an @-sign.",
        "line 8: resource 'co.uk': a public suffix, which no customer can hold; name a domain "
        "under it",
        "line 9: valid_from 'yesterday' is not ISO 8601 (e.g. 2026-03-01 or "
        "2026-03-01T12:00:00Z)",
        "line 10: valid_until 2026-01-01T00:00:00Z is not after valid_from "
        "2026-02-01T00:00:00Z",
        "line 11: customer_id is empty",
        "line 12: expected 6 fields (customer_id,name,email,resource,valid_from,valid_until), "
        "found 4",
    ]
    assert everything(engine) == ([], [])


def test_names_and_addresses_are_updated_when_they_change(engine: Engine,
                                                          tmp_path: Path) -> None:
    run(engine, csv_file(tmp_path, FIRST))
    second = HEADER + """\
C-1,Example Hosting GmbH,,192.0.2.0/24,,
C-2,Jane Doe,jd@doe.example,,,
"""
    assert run(engine, csv_file(tmp_path, second, "second.csv")) == ImportResult(
        customers_added=0, customers_updated=1, resources_added=0, unchanged=2,
        resources_updated=0)
    assert customers(engine) == [("C-1", "Example Hosting GmbH", "noc@hosting.example"),
                                 ("C-2", "Jane Doe", "jd@doe.example")]


def test_a_reassignment_closes_one_window_and_opens_another(engine: Engine,
                                                            tmp_path: Path) -> None:
    run(engine, csv_file(tmp_path, FIRST))
    second = HEADER + """\
C-1,,,192.0.2.0/24,,2026-02-01T00:00:00Z
C-3,New Customer,,192.0.2.0/24,2026-02-01T00:00:00Z,
"""
    assert run(engine, csv_file(tmp_path, second, "second.csv")) == ImportResult(
        customers_added=1, customers_updated=0, resources_added=1, unchanged=0,
        resources_updated=1)
    assert resources(engine)[0] == ("C-1", "cidr", "192.0.2.0/24", None, None, None,
                                    d(2026, 2, 1))
    assert resources(engine)[-1] == ("C-3", "cidr", "192.0.2.0/24", None, None, d(2026, 2, 1),
                                     None)
    index = CustomerIndex.load(engine)
    assert [m.external_id for m in index.resolve_ip("192.0.2.9", d(2026, 1, 31))] == ["C-1"]
    assert [m.external_id for m in index.resolve_ip("192.0.2.9", d(2026, 2, 1))] == ["C-3"]


def test_two_customers_holding_the_same_thing_at_once_are_refused(engine: Engine,
                                                                  tmp_path: Path) -> None:
    run(engine, csv_file(tmp_path, FIRST))
    before = everything(engine)
    clash = HEADER + """\
C-3,New Customer,,192.0.2.0/24,2026-02-01,
C-3,,,198.51.100.200:30000-40000,,
C-4,Other,,203.0.113.0/24,,
C-5,Another,,203.0.113.0/24,,2026-01-01
C-3,,,198.51.100.200:40000-50000,,
C-3,,,10.0.0.0/8,,
C-4,,,10.1.0.0/16,,
"""
    with pytest.raises(CustomerImportError) as caught:
        run(engine, csv_file(tmp_path, clash, "clash.csv"))
    advice = "give one a valid_until no later than the other's valid_from"
    assert caught.value.errors == [
        f"line 2: 192.0.2.0/24 would be held by 'C-3' and 'C-1' (already stored) at the same "
        f"time: {advice}",
        f"line 3: 198.51.100.200:30000-40000 would be held by 'C-3' and 'C-2' (already stored) "
        f"at the same time: {advice}",
        f"line 5: 203.0.113.0/24 would be held by 'C-5' and 'C-4' (line 4) at the same time: "
        f"{advice}",
    ]  # ports 40000-50000 are free; a /16 inside another customer's /8 is no clash
    assert everything(engine) == before


def test_within_a_file_a_customer_is_stated_one_way(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER + """\
C-1,Example,a@a.example,192.0.2.0/24,,
C-1,Exampel,a@a.example,192.0.3.0/24,,
C-1,,,192.0.2.0/24,,2026-01-01
C-9,,,198.51.100.0/24,,
""")
    with pytest.raises(CustomerImportError) as caught:
        run(engine, path)
    assert caught.value.errors == [
        "line 3: customer 'C-1' has name 'Exampel' here but 'Example' on line 2",
        "line 4: 192.0.2.0/24 of 'C-1' is on line 2 with another valid_until",
    ]
    fine = csv_file(tmp_path, HEADER + "C-9,,,198.51.100.0/24,,\n", "fine.csv")
    with pytest.raises(CustomerImportError) as caught:
        run(engine, fine)
    assert caught.value.errors == ["line 2: customer 'C-9' is new: give its name"]


def test_the_same_row_twice_is_one_resource(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "\ufeff" + HEADER + "C-1,A,,192.0.2.0/24,,\nC-1,A,,192.0.2.0/24,,\n")
    assert run(engine, path) == ImportResult(customers_added=1, resources_added=1, unchanged=1)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def phase(self, name: str, total: int) -> None:
        self.events.append((name, total))

    def advance(self, count: int) -> None:
        self.events.append(("+", count))


def test_progress_is_reported(engine: Engine, tmp_path: Path) -> None:
    recorder = Recorder()
    import_customers(engine, csv_file(tmp_path, FIRST), progress=recorder, clock=lambda: NOW)
    assert recorder.events == [("checking", 6), ("+", 6), ("writing", 6), ("+", 6)]


@pytest.mark.service
def test_importing_twice_changes_nothing_on_postgresql(postgres_url: str,
                                                       tmp_path: Path) -> None:
    engine = engine_at(postgres_url)
    try:
        path = csv_file(tmp_path, FIRST)
        assert run(engine, path).resources_added == 6
        before = everything(engine)
        assert run(engine, path) == ImportResult(unchanged=6)
        assert everything(engine) == before
        assert resources(engine) == EXPECTED_RESOURCES
        index = CustomerIndex.load(engine)  # PostgreSQL's times are datetimes, not text
        at = d(2026, 1, 1)
        assert [m.external_id for m in index.resolve_ip("198.51.100.200", at, 2000)] == ["C-2"]
        assert index.resolve_ip("198.51.100.200", d(2026, 6, 1), 2000) == []
    finally:
        engine.dispose()


def test_an_optional_time_zone_column_sets_the_customers_zone(engine: Engine,
                                                               tmp_path: Path) -> None:
    header = "customer_id,name,email,resource,valid_from,valid_until,time_zone\n"
    run(engine, csv_file(tmp_path, header + "C-1,A,a@a.example,192.0.2.0/24,,,Europe/Berlin\n"))
    with engine.connect() as conn:
        assert conn.execute(select(Customer.time_zone)).scalar_one() == "Europe/Berlin"
    run(engine, csv_file(tmp_path, header + "C-1,A,a@a.example,192.0.2.0/24,,,Asia/Tokyo\n"))
    with engine.connect() as conn:
        assert conn.execute(select(Customer.time_zone)).scalar_one() == "Asia/Tokyo"
    with pytest.raises(CustomerImportError) as caught:
        run(engine, csv_file(tmp_path, header + "C-1,A,,192.0.2.0/24,,,Mars/Olympus\n"))
    assert caught.value.errors == [
        "line 2: time_zone 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin)"]
