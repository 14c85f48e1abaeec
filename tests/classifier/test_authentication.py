"""Sender authentication: our boundary MTA's Authentication-Results (only its own, only the topmost
run), DKIM aligned with the From (keys made here, a dict-backed DNS), SPF for an aligned MAIL
FROM from a public peer (pyspf over an injected DNS); DNS failures never pass; bounded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import dkim
import pytest
from abuse_desk.classifier.authentication import (
    MAX_SPF_QUERIES,
    SenderAuthenticator,
    check_spf,
    parse_authentication_results,
)

from tests.classifier.test_trust import Key, make_key

MTA = "mx.integra-isp.example"


def mail(sender: str = "jane@people.example", headers: str = "",
         top: str = "") -> bytes:
    return (f"{top}From: Jane <{sender}>\r\nTo: abuse@integra-isp.example\r\n"
            f"Subject: phishing at 192.0.2.7\r\nMessage-ID: <p1@people.example>\r\n{headers}"
            "\r\nA phishing page at http://192.0.2.7/login\r\n").encode()


def ar(text: str, server: str = MTA) -> str:
    return f"Authentication-Results: {server}; {text}\r\n"


def check(raw: bytes, **envelope: Any) -> dict[str, Any]:
    return SenderAuthenticator(MTA).check(raw, **envelope).to_json()


# ---- Authentication-Results ------------------------------------------------------------------

@pytest.mark.parametrize("results, how", [
    ("dmarc=pass (p=reject) header.from=people.example", "dmarc"),
    ("dmarc=pass", "dmarc"),
    ("dkim=pass header.d=mail.people.example header.s=s1", "dkim"),  # relaxed alignment
    ('spf=pass smtp.mailfrom="bounces@people.example"', "spf"),
    ("spf=pass smtp.mailfrom=people.example; dkim=fail header.d=people.example", "spf"),
])
def test_our_boundary_mtas_pass_authenticates(results: str, how: str) -> None:
    got = check(mail(top=ar(results) + "Received: from x by mx\r\n"))
    assert (got["authenticated"], got["how"], got["source"], got["domain"], got["address"]) == (
        True, how, "authentication-results", "people.example", "jane@people.example")


@pytest.mark.parametrize("results", [
    "dmarc=fail header.from=people.example",
    "dmarc=pass header.from=other.example",  # DMARC for another From
    "dkim=pass header.d=other.example",  # a signature, but not the From's organisation
    "dkim=pass header.d=example",  # a public suffix aligns with nothing
    "spf=pass smtp.mailfrom=bounce@other.example",
    "spf=softfail smtp.mailfrom=people.example",
    "none",
    "dmarc=pass header.from=people.example; dmarc=fail header.from=people.example",
])
def test_what_does_not_pass_aligned_does_not_authenticate(results: str) -> None:
    got = check(mail(top=ar(results)))
    assert got["authenticated"] is False
    assert got["address"] == "jane@people.example"


def test_an_authentication_results_of_another_server_counts_for_nothing() -> None:
    assert check(mail(top=ar("dmarc=pass", server="mx.attacker.example")))[
        "authenticated"] is False


def test_with_no_authserv_id_configured_no_authentication_results_counts() -> None:
    raw = mail(top=ar("dmarc=pass"))
    assert SenderAuthenticator("").check(raw).authenticated is False


def test_a_forged_pass_below_our_mtas_header_counts_for_nothing() -> None:
    # Our MTA prepends its verdict (fail) and its Received; the sender's own header, claiming
    # our authserv-id, is below them.
    raw = mail(top=ar("dmarc=fail header.from=people.example")
               + "Received: from attacker by mx.integra-isp.example\r\n"
               + ar("dmarc=pass header.from=people.example"))
    got = check(raw)
    assert got["authenticated"] is False
    assert "dmarc=fail" in got["reason"]


def test_authentication_results_syntax_comments_quotes_and_versions() -> None:
    server, results = parse_authentication_results(
        ' MX.Integra-ISP.example 1 (our mx); dkim/1=pass (good sig) header.d="people.example" '
        'header.s=s1 ; spf = pass smtp.mailfrom=a@b.example (comment; with ; semicolon); none')
    assert server == "mx.integra-isp.example"
    assert [(r.method, r.result, r.properties) for r in results] == [
        ("dkim", "pass", {"header.d": "people.example", "header.s": "s1"}),
        ("spf", "pass", {"smtp.mailfrom": "a@b.example"})]


def test_a_huge_authentication_results_is_read_in_bounded_time() -> None:
    hostile = "dkim=pass header.d=x.example " * 50_000 + "(" * 10_000 + ";" * 50_000
    started = time.monotonic()
    got = check(mail(top=ar(hostile) * 30))
    assert time.monotonic() - started < 5  # a hang guard, not a speed target
    assert got["authenticated"] is False


@pytest.mark.parametrize("from_headers", [
    "",  # no From
    "From: a@people.example\r\nFrom: b@people.example\r\n",
    "From: alice@people.example <mallory@evil.example>\r\n",  # CVE-2023-27043
])
def test_a_from_that_names_nobody_unambiguously_is_not_authenticated(
        from_headers: str) -> None:
    raw = (ar("dmarc=pass") + from_headers + "Subject: x\r\n\r\nbody\r\n").encode()
    got = SenderAuthenticator(MTA).check(raw).to_json()
    assert (got["authenticated"], got["address"]) == (False, None)


# ---- DKIM ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def key() -> Key:
    return make_key(8601)


def test_an_aligned_dkim_signature_that_verifies_authenticates(key: Key) -> None:
    raw = mail()
    signed = dkim.sign(raw, b"s1", b"people.example", key.private_pem) + raw
    asked: list[bytes] = []

    def dns(name: bytes) -> bytes | None:
        asked.append(name)
        return key.dns_record if name == b"s1._domainkey.people.example." else None

    got = SenderAuthenticator("", dkim_dns=dns).check(signed)
    assert (got.authenticated, got.how, got.source) == (True, "dkim", "verified")
    assert asked == [b"s1._domainkey.people.example."]
    # Altered after signing: no.
    tampered = signed.replace(b"192.0.2.7/login", b"192.0.2.8/login")
    assert SenderAuthenticator("", dkim_dns=dns).check(tampered).authenticated is False


def test_a_signature_of_another_domain_is_not_even_verified(key: Key) -> None:
    raw = mail()
    signed = dkim.sign(raw, b"s1", b"bulk-sender.example", key.private_pem) + raw

    def dns(name: bytes) -> bytes | None:
        raise AssertionError("nothing to verify: the signature could not align")

    got = SenderAuthenticator("", dkim_dns=dns).check(signed)
    assert got.authenticated is False
    assert "no DKIM signature aligned with the From" in got.reason


def test_a_dkim_dns_failure_is_not_a_pass(key: Key) -> None:
    raw = mail()
    signed = dkim.sign(raw, b"s1", b"people.example", key.private_pem) + raw

    def dns(name: bytes) -> bytes | None:
        raise TimeoutError("resolver timed out")

    got = SenderAuthenticator("", dkim_dns=dns).check(signed)
    assert got.authenticated is False
    assert "resolver timed out" in got.reason


# ---- SPF -------------------------------------------------------------------------------------

class Zone:
    """A dict-backed DNS for pyspf: {(name, qtype): [records]}; counts the queries."""

    def __init__(self, records: dict[tuple[str, str], Sequence[Any]]) -> None:
        self.records = records
        self.queries = 0

    def __call__(self, name: str, qtype: str) -> Sequence[Any]:
        self.queries += 1
        return self.records.get((name, qtype), [])


PEOPLE = Zone({("people.example", "TXT"): ["v=spf1 ip4:85.10.200.0/24 -all"]})


def spf_check(raw: bytes, zone: Any, peer: str = "85.10.200.25",
              mail_from: str = "bounces@people.example") -> Any:
    return SenderAuthenticator("", spf_dns=zone).check(raw, mail_from=mail_from, peer_ip=peer,
                                                      helo="mail.people.example")


def test_spf_pass_for_an_aligned_mail_from_authenticates() -> None:
    got = spf_check(mail(), PEOPLE)
    assert (got.authenticated, got.how, got.source) == (True, "spf", "verified")


# The peers are public addresses (the DNS is the test's: nothing is asked of the world);
# documentation and private ranges are not checked at all.
@pytest.mark.parametrize("peer, mail_from, why", [
    ("85.10.201.9", "bounces@people.example", "SPF fail"),  # not a listed host
    ("85.10.200.25", "bounces@other.example", "not aligned"),
    ("85.10.200.25", "", "null or no MAIL FROM"),
    ("10.0.0.5", "bounces@people.example", "not a public address"),
    ("127.0.0.1", "bounces@people.example", "not a public address"),
    ("198.51.100.25", "bounces@people.example", "not a public address"),
])
def test_spf_that_does_not_pass_aligned_does_not_authenticate(peer: str, mail_from: str,
                                                             why: str) -> None:
    got = spf_check(mail(), PEOPLE, peer=peer, mail_from=mail_from)
    assert got.authenticated is False
    assert why in got.reason


def test_an_spf_dns_failure_is_could_not_check_never_a_pass() -> None:
    def broken(name: str, qtype: str) -> Sequence[Any]:
        raise OSError("no route to the resolver")

    got = spf_check(mail(), broken)
    assert got.authenticated is False
    assert "could not check" in got.reason and "no route to the resolver" in got.reason


def test_an_spf_record_that_asks_for_the_world_is_bounded() -> None:
    # Includes that fan out, each into more: pyspf stops at RFC 7208's ten lookups, and
    # whatever it counts, MAX_SPF_QUERIES stops the DNS.
    records: dict[tuple[str, str], Sequence[Any]] = {
        ("people.example", "TXT"): ["v=spf1 " + " ".join(
            f"include:i{n}.people.example" for n in range(40)) + " -all"]}
    for n in range(40):
        records[(f"i{n}.people.example", "TXT")] = ["v=spf1 " + " ".join(
            f"a:h{m}.i{n}.people.example" for m in range(40)) + " -all"]
    zone = Zone(records)
    got = spf_check(mail(), zone)
    assert got.authenticated is False
    assert zone.queries <= MAX_SPF_QUERIES
    result, _ = check_spf("85.10.200.25", "a@people.example", "h", dns=zone)
    assert result in ("permerror", "temperror")


def test_spf_off_with_a_zero_timeout() -> None:
    got = SenderAuthenticator("", spf_timeout_s=0, spf_dns=PEOPLE).check(
        mail(), mail_from="bounces@people.example", peer_ip="85.10.200.25")
    assert got.authenticated is False and "not checked" in got.reason
