"""One reader of a Received chain: the first hop outside the receiving provider is the sender;
the provider's internal hops (its relay networks, its family of domains, private relays), the
reporter's own MTAs and X-Received lines never are."""

from __future__ import annotations

from email.parser import HeaderParser
from email.policy import compat32

import pytest
from abuse_desk.core.received import (
    base_domain,
    external_hop,
    is_internal,
    is_routable,
    parse_received,
    read_chain,
    reporter_hop,
    same_provider,
)


def block(text: str):  # type: ignore[no-untyped-def]
    return HeaderParser(policy=compat32).parsestr(text.strip() + "\n\n")


# A mailbox provider's complaint: the spam's headers, newest first, with the provider's own hops
# on top (an internal IPv6 relay between two of its families of names, a private front end).
PROVIDER = """
X-Received: by 2002:a05:6402:1d4c:b0:5e0:1:1 with SMTP id x; Mon, 23 Nov 2026 09:41:13 +0000
Received: from AM0PR01CA0001.eurprd01.prod.exchangelabs.com (2603:10a6:208:1::11)
 by DB9PR01MB0001.eurprd01.prod.outlook.com (2603:10a6:10:2::9) with Microsoft SMTP Server;
 Mon, 23 Nov 2026 09:41:12 +0000
Received: from AM1EUR01FT001.eop-EUR01.prod.protection.outlook.com (10.13.178.1)
 by AM0PR01CA0001.outlook.office365.com (2603:10a6:208:1::11) with Microsoft SMTP Server;
 Mon, 23 Nov 2026 09:41:12 +0000
Received: from out7.bulk-sender.example (198.51.100.77) by
 AM1EUR01FT001.mail.protection.outlook.com (10.13.178.1) with Microsoft SMTP Server;
 Mon, 23 Nov 2026 09:41:11 +0000
Received: from webapp01 (unknown [10.1.2.3]) by out7.bulk-sender.example (Postfix);
 Mon, 23 Nov 2026 09:41:10 +0000
"""


def test_the_first_hop_outside_the_provider_is_the_sender() -> None:
    hop, first_timed = external_hop([block(PROVIDER)], None)
    assert hop is not None and hop.ip == "198.51.100.77"
    assert hop.time is not None and hop.time.isoformat() == "2026-11-23T09:41:11+00:00"
    assert first_timed is not None and first_timed.ip == "2603:10a6:208:1::11"


def test_every_hop_is_named_internal_or_not() -> None:
    chain = read_chain(block(PROVIDER))
    assert [(h.ip, internal) for h, internal in chain.hops] == [
        ("2603:10a6:208:1::11", True), ("10.13.178.1", True), ("198.51.100.77", False),
        ("10.1.2.3", True)]


def test_the_providers_spf_verdict_names_the_client() -> None:
    # No names to go by: the provider's Received-SPF says which address handed it the message.
    chain = read_chain(block("""
Received: from relay-a (203.0.113.200) by mx-b.example (203.0.113.201);
 Mon, 23 Nov 2026 09:00:02 +0000
Received: from sender (192.0.2.45) by relay-a (203.0.113.200); Mon, 23 Nov 2026 09:00:01 +0000
Received-SPF: Pass (mx-b.example: domain of x.example designates 192.0.2.45) client-ip=192.0.2.45;
"""))
    assert chain.first_external is not None and chain.first_external.ip == "192.0.2.45"


def test_the_reporters_own_relay_is_internal() -> None:
    hop = parse_received("from mx3.reporter.example (mx3.reporter.example [198.51.100.3]) "
                         "by inbox.isp.example; Mon, 23 Nov 2026 09:00:00 +0000")
    assert hop is not None
    assert is_internal(hop, "reporter.example")
    assert not is_internal(hop, "other.example")


def test_provider_families() -> None:
    assert same_provider("x.prod.outlook.com", "y.outlook.office365.com")
    assert same_provider("mail-qk1-f170.google.com", "mx.gmail.com")
    assert not same_provider("out.bulk-sender.example", "mx.gmail.com")
    assert not same_provider(None, "mx.gmail.com")


# A reporter's copy of the message (a feedback report's part 3): the hop that handed it over.

def test_reporter_hop_skips_internal_and_private_hops() -> None:
    chain = [
        "from mx1.big.example (mx1.big.example [192.0.2.33]) by store.big.example; "
        "Mon, 4 Mar 2024 10:00:03 +0000",
        "from filter (filter.big.example [10.0.0.5]) by mx1.big.example; "
        "Mon, 4 Mar 2024 10:00:02 +0000",
        "from helo.name (dyn-5.isp.example [198.51.100.5]) by mx1.big.example; "
        "Mon, 4 Mar 2024 10:00:01 +0000",
    ]
    hop = reporter_hop(chain, set())
    assert hop is not None
    assert (hop.ip, is_routable(hop.ip), hop.time_raw) == ("198.51.100.5", True,
                                                          "Mon, 4 Mar 2024 10:00:01 +0000")


def test_reporter_hop_fallbacks() -> None:
    same_domain = ["from smtp.example.com ([203.0.113.245]) by R7.example.com; "
                   "Thu, 29 Apr 2016 23:34:45 +0000"]
    hop = reporter_hop(same_domain, {"example.com"})
    assert hop is not None and hop.ip == "203.0.113.245"  # all internal: the first routable
    private_only = ["from host.customer.example (host.customer.example [10.17.18.2]) by "
                    "mx.aol.example; Tue, 19 Jan 2016 19:04:09 -0500"]
    hop = reporter_hop(private_only, set())
    assert hop is not None and (hop.ip, is_routable(hop.ip)) == ("10.17.18.2", False)
    assert reporter_hop(["by localhost with LMTP", "from localhost ([127.0.0.1]) by x.example"],
                        set()) is None


@pytest.mark.parametrize(("host", "expected"), [
    ("mx1.mail.example.co.uk", "example.co.uk"), ("mta34.mail.g9.yahoo.com", "yahoo.com"),
    ("192.0.2.1", None), ("localhost", None), (None, None)])
def test_base_domain(host: str | None, expected: str | None) -> None:
    assert base_domain(host) == expected
