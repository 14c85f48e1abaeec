"""Customer resources, the in-memory index and resolution (classifier/customers.py,
classifier/resources.py, classifier/windows.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from abuse_desk.classifier.customers import (
    CGNAT_NEEDS_PORT,
    NO_CUSTOMER,
    NOBODY_AT_TIME,
    CustomerIndex,
    named_addresses,
)
from abuse_desk.classifier.resolver_hook import HookAnswer
from abuse_desk.classifier.resources import Resource, ResourceRow, parse_resource
from abuse_desk.core.config import DatabaseConfig
from abuse_desk.core.db import make_engine, upgrade
from abuse_desk.core.models import Customer, CustomerResource
from abuse_desk.core.policy import Evidence
from abuse_desk.parsers.base import ParsedReport
from sqlalchemy import insert

T = datetime(2026, 1, 1, tzinfo=UTC)  # the reassignment in these tests
BEFORE, AFTER = T - timedelta(seconds=1), T + timedelta(days=30)


def row(cid: int, text: str, start: datetime | None = None,
        end: datetime | None = None) -> ResourceRow:
    r = Resource.parse(text, start, end)
    return ResourceRow(cid, f"C-{cid}", r.kind, r.value, r.port_low, r.port_high,
                       r.valid_from, r.valid_until)


def index(*rows: ResourceRow) -> CustomerIndex:
    return CustomerIndex.from_rows(rows)


def who(ix: CustomerIndex, ip: str, at: datetime = AFTER,
        port: int | None = None) -> list[str]:
    return [m.external_id for m in ix.resolve_ip(ip, at, port)]


# -- parsing resources -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.0/24", ("cidr", "192.0.2.0/24", None, None)),
    ("192.0.2.7", ("cidr", "192.0.2.7/32", None, None)),
    ("2001:DB8::/32", ("cidr", "2001:db8::/32", None, None)),
    ("2001:db8::1", ("cidr", "2001:db8::1/128", None, None)),
    ("192.0.2.200:1024-32767", ("ip-ports", "192.0.2.200", 1024, 32767)),
    ("[2001:db8::9]:2000-2999", ("ip-ports", "2001:db8::9", 2000, 2999)),
    ("Shop.Example.CO.UK.", ("domain", "shop.example.co.uk", None, None)),
    ("bücher.example", ("domain", "xn--bcher-kva.example", None, None)),
    ("Abuse@Shop.Example", ("email", "abuse@shop.example", None, None)),
])
def test_parse_resource(text: str, expected: tuple[str, str, int | None, int | None]) -> None:
    assert parse_resource(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("300.1.2.3", "resource '300.1.2.3': not an IP, CIDR, IP:LOW-HIGH, domain or address"),
    ("192.0.2.5/24", "resource '192.0.2.5/24': host bits set; the network is 192.0.2.0/24"),
    ("192.0.2.1:2000-1000",
     "resource '192.0.2.1:2000-1000': the port range 2000-1000 is empty (write LOW-HIGH)"),
    ("192.0.2.1:1-70000", "resource '192.0.2.1:1-70000': ports are 0-65535"),
    ("co.uk", "resource 'co.uk': a public suffix, which no customer can hold; name a domain "
              "under it"),
    ("github.io", "resource 'github.io': a public suffix, which no customer can hold; name a "
                  "domain under it"),
    ("*.example.com", "resource '*.example.com': write example.com: a domain matches its "
                      "subdomains"),
    ("http://shop.example/", "resource 'http://shop.example/': not an IP, CIDR, IP:LOW-HIGH, "
                             "domain or address"),
])
def test_parse_resource_refuses_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_resource(text)
    assert str(caught.value) == message


def test_resource_text_and_window() -> None:
    r = Resource.parse("[2001:db8::9]:2000-2999", T, AFTER)
    assert r.text == "[2001:db8::9]:2000-2999"
    assert (r.valid_at(BEFORE), r.valid_at(T), r.valid_at(AFTER)) == (False, True, False)
    with pytest.raises(ValueError, match="valid_until 2026-01-01T00:00:00Z is not after "
                                         "valid_from 2026-01-31T00:00:00Z"):
        Resource.parse("192.0.2.0/24", AFTER, T)


# -- IPs -------------------------------------------------------------------------------------


def test_nested_prefixes_the_longest_wins() -> None:
    ix = index(row(1, "10.0.0.0/8"), row(2, "10.1.0.0/16"), row(3, "10.1.2.0/24"),
               row(4, "10.1.2.3"))
    assert who(ix, "10.1.2.3") == ["C-4"]
    assert who(ix, "10.1.2.4") == ["C-3"]
    assert who(ix, "10.1.3.4") == ["C-2"]
    assert who(ix, "10.200.0.1") == ["C-1"]
    assert who(ix, "11.0.0.1") == []


def test_a_more_specific_prefix_outside_its_window_falls_back_to_the_covering_one() -> None:
    ix = index(row(1, "10.1.0.0/16"), row(2, "10.1.2.0/24", None, T))
    assert who(ix, "10.1.2.3", BEFORE) == ["C-2"]
    assert who(ix, "10.1.2.3", T) == ["C-1"]  # valid_until is exclusive


def test_reassignment_the_same_prefix_before_and_after() -> None:
    start = T - timedelta(days=365)
    ix = index(row(1, "192.0.2.0/24", start, T), row(2, "192.0.2.0/24", T))
    assert who(ix, "192.0.2.9", BEFORE) == ["C-1"]
    assert who(ix, "192.0.2.9", T) == ["C-2"]
    assert who(ix, "192.0.2.9", AFTER) == ["C-2"]
    early = ix.lookup_ip("192.0.2.9", start - timedelta(days=1))
    assert (early.matches, early.reason) == ((), NOBODY_AT_TIME)


def test_naive_times_are_utc() -> None:
    ix = index(row(1, "192.0.2.0/24", None, T))
    assert who(ix, "192.0.2.1", datetime(2025, 12, 31, 23, 59, 59)) == ["C-1"]
    assert who(ix, "192.0.2.1", datetime(2026, 1, 1, 0, 0, 0)) == []


def test_a_report_without_a_time_is_resolved_at_its_arrival() -> None:
    ix = index(row(1, "192.0.2.0/24", None, T), row(2, "192.0.2.0/24", T))
    untimed = ParsedReport(format="text", source_ip="192.0.2.1")
    assert ix.resolve_report(untimed, BEFORE).external_id == "C-1"
    assert ix.resolve_report(untimed, AFTER).external_id == "C-2"
    timed = ParsedReport(format="text", source_ip="192.0.2.1", occurred_at=BEFORE)
    assert ix.resolve_report(timed, AFTER).external_id == "C-1"  # the incident's time wins


def test_ipv6_nested_and_separate_from_ipv4() -> None:
    ix = index(row(1, "2001:db8::/32"), row(2, "2001:db8:1::/48"), row(3, "10.0.0.0/8"))
    assert who(ix, "2001:db8:1::5") == ["C-2"]
    assert who(ix, "2001:db8:2::1") == ["C-1"]
    assert who(ix, "2001:db9::1") == []
    # 10.0.0.0/8 and a00::/8 have the same leading bits: they must not be confused.
    assert who(ix, "a00::1") == []
    assert who(ix, "::ffff:10.1.2.3") == ["C-3"]  # IPv4-mapped is the IPv4 address


def test_cgnat_needs_the_port_when_shared() -> None:
    ix = index(row(1, "192.0.2.200:1024-32767"), row(2, "192.0.2.200:32768-65535"),
               row(3, "192.0.2.0/24"))
    assert who(ix, "192.0.2.200", port=1024) == ["C-1"]
    assert who(ix, "192.0.2.200", port=32767) == ["C-1"]
    assert who(ix, "192.0.2.200", port=32768) == ["C-2"]
    outside = ix.lookup_ip("192.0.2.200", AFTER, 80)
    assert (outside.matches, outside.reason) == (
        (), "port 80 is outside every CGNAT range of 192.0.2.200 at the incident time")
    no_port = ix.lookup_ip("192.0.2.200", AFTER)
    assert (no_port.matches, no_port.reason) == ((), CGNAT_NEEDS_PORT)
    assert [(c.external_id, c.resource) for c in no_port.candidates] == [
        ("C-1", "192.0.2.200:1024-32767"), ("C-2", "192.0.2.200:32768-65535")]
    assert who(ix, "192.0.2.201") == ["C-3"]  # the neighbours are not shared


def test_cgnat_with_one_owner_needs_no_port() -> None:
    ix = index(row(1, "192.0.2.200:1024-32767"), row(1, "192.0.2.200:32768-65535"))
    assert [(m.external_id, m.resource) for m in ix.resolve_ip("192.0.2.200", AFTER)] == [
        ("C-1", "192.0.2.200:1024-32767")]


def test_cgnat_ranges_change_owner_over_time() -> None:
    ix = index(row(1, "[2001:db8::9]:1-1000", None, T), row(2, "[2001:db8::9]:1-1000", T))
    assert who(ix, "2001:db8::9", BEFORE, 500) == ["C-1"]
    assert who(ix, "2001:db8::9", AFTER, 500) == ["C-2"]


def test_overlapping_claims_decide_nobody_and_say_so() -> None:
    ix = index(row(1, "192.0.2.0/24"), row(2, "192.0.2.0/24", T - timedelta(days=1)))
    before = ix.lookup_ip("192.0.2.1", T - timedelta(days=2))
    assert before.reason is None and [m.external_id for m in before.matches] == ["C-1"]
    during = ix.lookup_ip("192.0.2.1", AFTER)
    assert during.matches == ()
    assert during.reason == ("resources overlap: 192.0.2.0/24 is held by C-1 and C-2 at the "
                             "incident time")
    assert [c.external_id for c in during.candidates] == ["C-1", "C-2"]


def test_unknown_and_invalid_ips() -> None:
    ix = index(row(1, "192.0.2.0/24"))
    unknown = ix.lookup_ip("198.51.100.1", AFTER)
    assert (unknown.matches, unknown.reason) == ((), None)
    for bad in ("300.1.2.3", "192.0.2.0/24", "example.com", ""):
        assert ix.lookup_ip(bad, AFTER).reason == f"{bad!r} is not an IP address"


def test_a_match_names_its_evidence() -> None:
    ix = index(row(7, "192.0.2.0/24", T))
    (match,) = ix.resolve_ip("192.0.2.1", AFTER)
    assert (match.customer_id, match.external_id, match.via, match.value, match.resource) == (
        7, "C-7", "source_ip", "192.0.2.1", "192.0.2.0/24")
    assert match.evidence == Evidence(
        "resource:cidr", 1.0, "source_ip 192.0.2.1 in 192.0.2.0/24 of C-7, from "
                              "2026-01-01T00:00:00Z")


# -- domains and addresses -------------------------------------------------------------------


def test_domains_match_their_subdomains_and_never_their_siblings() -> None:
    ix = index(row(1, "example.co.uk"), row(2, "shop.example.co.uk"))
    assert [m.external_id for m in ix.resolve_host("example.co.uk", AFTER)] == ["C-1"]
    assert [m.external_id for m in ix.resolve_host("WWW.Example.co.uk.", AFTER)] == ["C-1"]
    assert [m.external_id for m in ix.resolve_host("a.b.shop.example.co.uk", AFTER)] == ["C-2"]
    for other in ("other.co.uk", "co.uk", "uk", "notexample.co.uk", "example.com"):
        assert ix.resolve_host(other, AFTER) == []


def test_a_public_suffix_row_is_never_indexed() -> None:
    ix = index(ResourceRow(1, "C-1", "domain", "co.uk"), ResourceRow(2, "C-2", "domain",
                                                                     "github.io"))
    assert ix.resolve_host("anything.co.uk", AFTER) == []
    assert ix.resolve_host("someone.github.io", AFTER) == []
    assert ix.skipped == ["C-1: co.uk: a public suffix, which no customer can hold",
                          "C-2: github.io: a public suffix, which no customer can hold"]


def test_domain_windows_fall_back_to_the_parent_domain() -> None:
    ix = index(row(1, "example.com"), row(2, "shop.example.com", None, T))
    assert [m.external_id for m in ix.resolve_host("www.shop.example.com", BEFORE)] == ["C-2"]
    assert [m.external_id for m in ix.resolve_host("www.shop.example.com", AFTER)] == ["C-1"]
    alone = index(row(2, "shop.example.com", None, T))
    assert alone.lookup_host("shop.example.com", AFTER).reason == (
        "shop.example.com belonged to nobody at the incident time")


def test_an_ip_literal_host_is_looked_up_as_an_ip() -> None:
    ix = index(row(1, "192.0.2.0/24"), row(2, "2001:db8::/32"))
    assert [m.external_id for m in ix.resolve_host("192.0.2.5", AFTER)] == ["C-1"]
    assert [m.external_id for m in ix.resolve_host("[2001:db8::5]", AFTER)] == ["C-2"]


def test_addresses_match_addresses_only() -> None:
    ix = index(row(1, "Sales@Shop.Example"), row(2, "shop.example"))
    assert [m.external_id for m in ix.resolve_email("sales@shop.example", AFTER)] == ["C-1"]
    assert [m.external_id for m in ix.resolve_email("Shop <SALES@shop.example>", AFTER)] == [
        "C-1"]
    assert ix.resolve_email("other@shop.example", AFTER) == []
    assert ix.resolve_host("sales.shop.example", AFTER)[0].external_id == "C-2"
    assert ix.lookup_email("not an address", AFTER).reason == (
        "'not an address' is not an e-mail address")


def test_named_addresses_come_from_the_offenders_fields_only() -> None:
    extra = {"original_mail_from": "<bounce@shop.example>",
             "original_from": "Shop <News@Shop.Example>", "original_rcpt_to": ["me@isp.example"],
             "reporter_contact": "abuse@reporter.example", "addresses": ["x@y.example", 3]}
    assert named_addresses(extra) == ["bounce@shop.example", "news@shop.example",
                                      "x@y.example"]


# -- a report --------------------------------------------------------------------------------


def report(**fields: object) -> ParsedReport:
    return ParsedReport(format="text", occurred_at=AFTER, **fields)  # type: ignore[arg-type]


@pytest.fixture
def desk_index() -> CustomerIndex:
    return index(row(1, "192.0.2.0/24"), row(2, "shop.example"), row(3, "198.51.100.0/24", None,
                                                                      T),
                 row(4, "spammer@mail.example"), row(5, "abuse@reporter.example"))


def test_the_source_ip_decides_first(desk_index: CustomerIndex) -> None:
    res = desk_index.resolve_report(report(source_ip="192.0.2.10"), AFTER)
    assert (res.customer_id, res.external_id, res.reasons, res.disagreements) == (1, "C-1", [],
                                                                                  [])
    assert [(m.via, m.value) for m in res.matches] == [("source_ip", "192.0.2.10")]


def test_a_url_decides_when_the_ip_is_not_ours(desk_index: CustomerIndex) -> None:
    # spam from someone else's IP advertising a site a customer hosts: the site's customer
    res = desk_index.resolve_report(report(source_ip="203.0.113.5",
                                           urls=["http://www.shop.example/buy?x=1"]), AFTER)
    assert (res.external_id, res.reasons) == ("C-2", [])
    assert [(m.via, m.value, m.resource) for m in res.matches] == [
        ("url", "www.shop.example", "shop.example")]


def test_then_domains_then_addresses(desk_index: CustomerIndex) -> None:
    res = desk_index.resolve_report(report(domains=["Shop.Example"]), AFTER)
    assert [(m.via, m.external_id) for m in res.matches] == [("domain", "C-2")]
    res = desk_index.resolve_report(
        report(extra={"original_mail_from": "spammer@mail.example"}), AFTER)
    assert [(m.via, m.external_id) for m in res.matches] == [("email", "C-4")]


def test_the_reporter_is_never_the_customer(desk_index: CustomerIndex) -> None:
    res = desk_index.resolve_report(report(reporter_address="abuse@reporter.example"), AFTER)
    assert (res.customer_id, res.reasons) == (None, [NO_CUSTOMER])


def test_disagreements_are_recorded(desk_index: CustomerIndex) -> None:
    res = desk_index.resolve_report(report(
        source_ip="192.0.2.10", urls=["https://shop.example/", "https://shop.example/2"],
        domains=["192.0.2.11"], extra={"original_from": "spammer@mail.example"}), AFTER)
    assert res.external_id == "C-1"
    assert res.disagreements == ["url shop.example is C-2 (shop.example)",
                                 "email spammer@mail.example is C-4 (spammer@mail.example)"]
    assert res.reasons == [
        "customers disagree: source_ip 192.0.2.10 is C-1, url shop.example is C-2 "
        "(shop.example), email spammer@mail.example is C-4 (spammer@mail.example)"]
    assert [(m.via, m.external_id) for m in res.matches] == [
        ("source_ip", "C-1"), ("url", "C-2"), ("domain", "C-1"), ("email", "C-4")]
    assert [e.name for e in res.evidence] == ["resource:cidr", "resource:cidr", "disagreement",
                                              "disagreement"]


def test_no_customer_and_nobody_at_the_time(desk_index: CustomerIndex) -> None:
    assert desk_index.resolve_report(report(), AFTER).reasons == [NO_CUSTOMER]
    assert desk_index.resolve_report(report(source_ip="203.0.113.1"),
                                     AFTER).reasons == [NO_CUSTOMER]
    res = desk_index.resolve_report(report(source_ip="198.51.100.7"), AFTER)
    assert (res.customer_id, res.reasons) == (None, [NOBODY_AT_TIME, NO_CUSTOMER])


def test_an_ambiguous_ip_leaves_the_decision_to_the_next_value() -> None:
    ix = index(row(1, "192.0.2.200:1024-32767"), row(2, "192.0.2.200:32768-65535"),
               row(2, "shop.example"))
    res = ix.resolve_report(report(source_ip="192.0.2.200", urls=["http://shop.example/"]), AFTER)
    assert (res.external_id, res.reasons) == ("C-2", [CGNAT_NEEDS_PORT])
    assert [e.name for e in res.evidence] == ["resource:domain", "candidate:resource:ip-ports",
                                              "candidate:resource:ip-ports"]
    res = ix.resolve_report(report(source_ip="192.0.2.200", source_port=2000), AFTER)
    assert res.external_id == "C-1"


# -- the resolver hook's answer, a specialist's decision -------------------------------------


def test_with_hook_completes_a_resolution() -> None:
    ix = CustomerIndex.from_rows([row(1, "192.0.2.0/24")], customers=[(9, "C-9")])
    none = ix.resolve_report(report(source_ip="203.0.113.9"), AFTER)
    answer = HookAnswer("203.0.113.9", None, AFTER, "C-9", T, None, source="http GET http://h/")
    res = none.with_hook(answer, ix)
    assert (res.customer_id, res.external_id, res.reasons) == (9, "C-9", [])
    assert [(m.via, m.value, m.resource) for m in res.matches] == [
        ("hook", "203.0.113.9", "http GET http://h/")]
    assert res.evidence[0] == Evidence("hook", 0.9, "http GET http://h/: 203.0.113.9 at "
                                                    "2026-01-31T00:00:00Z is C-9 from "
                                                    "2026-01-01T00:00:00Z")
    unknown = none.with_hook(HookAnswer("203.0.113.9", None, AFTER, "C-404"), ix)
    assert (unknown.customer_id, unknown.reasons) == (None, [
        NO_CUSTOMER, "the resolver hook names customer 'C-404', whom the desk does not know: "
                     "import it (abuse-desk customers import)"])
    failed = none.with_hook(HookAnswer("203.0.113.9", None, AFTER, None,
                                       reason="resolver hook failed: HTTP 500 oops"), ix)
    assert failed.reasons == [NO_CUSTOMER, "resolver hook failed: HTTP 500 oops"]


def test_forced_customer() -> None:
    ix = CustomerIndex.from_rows([], customers=[(9, "C-9")])
    assert (ix.forced("C-9").customer_id, ix.forced((3, "C-3")).external_id) == (9, "C-3")
    assert ix.forced("C-0").reasons == ["no customer 'C-0'"]


# -- change ----------------------------------------------------------------------------------


@pytest.mark.parametrize("frozen", [False, True])
def test_patch_replaces_one_customers_resources(frozen: bool) -> None:
    ix = index(row(1, "10.0.0.0/8"), row(2, "10.1.0.0/16"), row(2, "shop.example"),
               row(2, "a@shop.example"), row(3, "10.1.0.0/16", None, T))
    if frozen:
        ix.freeze()
    ix.patch(2, "C-2", [Resource.parse("10.2.0.0/16"), Resource.parse("new.example")])
    assert who(ix, "10.1.2.3") == ["C-1"]  # C-2's /16 is gone, C-3's is out of its window
    assert who(ix, "10.1.2.3", BEFORE) == ["C-3"]  # and C-3's is still there
    assert who(ix, "10.2.0.1") == ["C-2"]
    assert ix.resolve_host("shop.example", AFTER) == []
    assert ix.resolve_email("a@shop.example", AFTER) == []
    assert ix.resolve_host("www.new.example", AFTER)[0].external_id == "C-2"
    assert ix.remove(2) == 2
    assert (who(ix, "10.2.0.1"), ix.remove(2)) == (["C-1"], 0)
    assert ix.stats() == {"customers": 3, "prefixes": 2, "domains": 0, "emails": 0,
                          "resources": 2}


def test_add_merges_with_a_prefix_already_held() -> None:
    ix = index(row(1, "192.0.2.0/24", None, T))
    ix.add([row(2, "192.0.2.0/24", T)])
    assert (who(ix, "192.0.2.1", BEFORE), who(ix, "192.0.2.1", AFTER)) == (["C-1"], ["C-2"])
    assert ix.stats()["prefixes"] == 1


def test_two_spellings_of_one_prefix_are_merged() -> None:
    ix = index(ResourceRow(1, "C-1", "cidr", "192.0.2.0/24", valid_until=T),
               ResourceRow(2, "C-2", "cidr", "192.0.2.9/24", valid_from=T))
    assert (who(ix, "192.0.2.1", BEFORE), who(ix, "192.0.2.1", AFTER)) == (["C-1"], ["C-2"])


def test_load_reads_the_tables(tmp_path: Path) -> None:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'desk.db'}"))
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(Customer), [
            {"id": 1, "external_id": "A-1", "name": "A", "created_at": T},
            {"id": 2, "external_id": "B-2", "name": "B", "created_at": T},
            {"id": 3, "external_id": "C-3", "name": "no resources", "created_at": T}])
        conn.execute(insert(CustomerResource), [
            {"customer_id": cid, "kind": kind, "value": value, "port_low": low,
             "port_high": high, "valid_from": start, "valid_until": end}
            for cid, kind, value, low, high, start, end in [
                (1, "cidr", "192.0.2.0/24", None, None, None, T),
                (2, "cidr", "192.0.2.0/24", None, None, T, None),
                (2, "ip-ports", "198.51.100.1", 1, 999, None, None),
                (1, "domain", "a.example", None, None, None, None),
                (2, "email", "b@b.example", None, None, None, None)]])
    ix = CustomerIndex.load(engine)
    assert who(ix, "192.0.2.1", BEFORE) == ["A-1"]
    assert who(ix, "192.0.2.1", AFTER) == ["B-2"]
    assert who(ix, "198.51.100.1", AFTER, 80) == ["B-2"]
    assert ix.resolve_host("www.a.example", AFTER)[0].external_id == "A-1"
    assert ix.resolve_email("B@b.example", AFTER)[0].external_id == "B-2"
    assert ix.customer_id_of("C-3") == 3
    engine.dispose()
