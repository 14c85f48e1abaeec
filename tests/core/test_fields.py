"""Shared helpers: times with their zone, IPs, defanged URLs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from abuse_desk.core.fields import (
    clean_ip,
    domains_of,
    find_ips,
    find_urls,
    parse_int,
    parse_time,
    refang,
)


@pytest.mark.parametrize(("raw", "expected", "zone_stated"), [
    ("Mon, 10 Feb 2014 06:05:07 -0800 (PST)", datetime(2014, 2, 10, 14, 5, 7), True),
    ("Thu, 8 Mar 2005 17:40:36 EDT", datetime(2005, 3, 8, 21, 40, 36), True),
    ("Tue, 1 Jan 2019 10:00:00 PST", datetime(2019, 1, 1, 18, 0, 0), True),
    ("Tue, 1 Jan 2019 10:00:00", datetime(2019, 1, 1, 10, 0, 0), False),
    ("2015-05-06T05-00-00UTC", datetime(2015, 5, 6, 5, 0, 0), True),
    ("2015-11-13T20:35:03.000Z", datetime(2015, 11, 13, 20, 35, 3), True),
    ("2015-11-13T20:35:03.00Z", datetime(2015, 11, 13, 20, 35, 3), True),
    ("2015-11-13 20:35:03.0 GMT", datetime(2015, 11, 13, 20, 35, 3), True),
    ("2014-03-31 11:38:05 UTC", datetime(2014, 3, 31, 11, 38, 5), True),
    ("2018-11-05T23:00:47+02:00", datetime(2018, 11, 5, 21, 0, 47), True),
    ("2020-01-01 10:00:00", datetime(2020, 1, 1, 10, 0, 0), False),
    ("27 Feb 2014", datetime(2014, 2, 27), False),
    ("Thu Feb 13 18:28:15 2014 +00:00 GMT", datetime(2014, 2, 13, 18, 28, 15), True),
    ("Thu Feb 13 18:28:15 CET 2014", datetime(2014, 2, 13, 17, 28, 15), True),
])
def test_parse_time(raw: str, expected: datetime, zone_stated: bool) -> None:
    assert parse_time(raw) == (expected.replace(tzinfo=UTC), zone_stated)


@pytest.mark.parametrize("raw", [None, "", "garbage", "2014-13-45 99:99:99", "(comment only)"])
def test_unreadable_times(raw: str | None) -> None:
    assert parse_time(raw) == (None, False)


def test_find_ipv6_with_prefix_and_punctuation() -> None:
    text = "from IPv6:2001:db8::1 and 2001:db8::2. Then 2001:db8::3: done, not v6:2001:db8::4x"
    assert find_ips(text) == ["2001:db8::1", "2001:db8::2", "2001:db8::3"]


def test_find_ips_in_document_order_canonical_and_unique() -> None:
    text = ("from 192.0.2.1 and 10.0.0.300 and 2001:DB8::1 then ::ffff:198.51.100.7, "
            "1.2.3.4:25, 203[.]0[.]113[.]5, again 192.0.2.1 at 12:30:45")
    assert find_ips(text) == ["192.0.2.1", "2001:db8::1", "198.51.100.7", "1.2.3.4",
                              "203.0.113.5"]


@pytest.mark.parametrize(("raw", "ip"), [
    ("[192.0.2.1]", "192.0.2.1"), ("IPv6:2001:db8::1", "2001:db8::1"),
    ("192.0.2.1 port 25", "192.0.2.1"), ("192.0.2.1:8080", "192.0.2.1"),
    ("::ffff:192.0.2.9", "192.0.2.9"), ("mx.example.org", None), ("", None), (None, None),
])
def test_clean_ip(raw: str | None, ip: str | None) -> None:
    assert clean_ip(raw) == ip


def test_defanged_urls_are_restored() -> None:
    text = "visit hxxp://evil[.]example[.]com/login and hxxps[:]//x(.)example/a?b=1."
    assert refang("evil[.]example") == "evil.example"
    assert find_urls(text) == ["http://evil.example.com/login", "https://x.example/a?b=1"]
    assert domains_of([*find_urls(text), "http://192.0.2.1/x"]) == ["evil.example.com",
                                                                    "x.example"]


def test_parse_int() -> None:
    assert [parse_int(v) for v in ["14.1", " 3", "x", None]] == [14, 3, None, None]
