"""Trust that survives the network: a DNS failure while checking a claimed reporter's DKIM is
"could not check" (retried later), not "does not verify"; our boundary MTA's
Authentication-Results (RFC 8601, by its configured authserv-id) decide like a signature
verified here, and only the topmost ones with that authserv-id count."""

from __future__ import annotations

import dns.exception as dns_exception
import dns.resolver as dns_resolver
import pytest
from abuse_desk.classifier.signatures import DkimLimits, DkimStatus, verify_dkim
from abuse_desk.classifier.trust import (
    COULD_NOT_CHECK,
    DEFAULT_TRUSTED_REPORTERS,
    TrustPolicy,
    boundary_verdict,
)

from tests.classifier.test_trust import YAHOO, Dns, Key, make_key, message, signed, txt

MX = "mx.integra-isp.example"
POLICY = TrustPolicy([*DEFAULT_TRUSTED_REPORTERS], authserv_id=MX)


@pytest.fixture(scope="module")
def keys() -> tuple[Key, Key]:
    return make_key(2026), make_key(4711)


@pytest.fixture
def dns(keys: tuple[Key, Key]) -> Dns:
    return Dns({txt("s2026", YAHOO): keys[0].dns_record})


def with_headers(raw: bytes, *headers: str) -> bytes:
    return "".join(f"{h}\r\n" for h in headers).encode() + raw


def no_answer(name: bytes) -> bytes | None:
    raise TimeoutError("no answer")


# -- the system resolver's failures ------------------------------------------------------------


@pytest.mark.parametrize("failure", [
    dns_exception.Timeout(), dns_resolver.NoNameservers(), dns_resolver.NoResolverConfiguration(),
    OSError("Network is unreachable"),
], ids=["timeout", "servfail", "no-resolver", "socket-error"])
def test_a_resolver_that_does_not_answer_is_could_not_check(
        keys: tuple[Key, Key], monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    def resolve(*args: object, **kwargs: object) -> object:
        raise failure

    monkeypatch.setattr(dns_resolver, "resolve", resolve)

    result = verify_dkim(signed(message(), keys[0], YAHOO),
                         limits=DkimLimits(dns_timeout_s=0.2, dns_budget_s=1.0))

    assert result.status == DkimStatus.TEMPERROR
    assert result.could_not_check
    assert all(c.temperror for c in result.checks)


def test_a_name_that_does_not_exist_is_a_failure_not_could_not_check(
        keys: tuple[Key, Key], monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(*args: object, **kwargs: object) -> object:
        raise dns_resolver.NXDOMAIN()

    monkeypatch.setattr(dns_resolver, "resolve", resolve)

    result = verify_dkim(signed(message(), keys[0], YAHOO))

    assert result.status == DkimStatus.FAIL
    assert not result.could_not_check


def test_could_not_check_is_marked_for_a_retry_and_says_why(keys: tuple[Key, Key]) -> None:
    raw = signed(message(), keys[0], YAHOO)

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=no_answer))

    assert trust.trusted is False
    assert trust.could_not_check is True
    assert "DKIM could not be checked (DNS lookup of s2026._domainkey." in trust.reason
    assert COULD_NOT_CHECK in [e.name for e in trust.evidence]


def test_a_bad_signature_is_does_not_verify_never_a_retry(keys: tuple[Key, Key],
                                                         dns: Dns) -> None:
    raw = signed(message(), keys[1], YAHOO)  # the wrong key for Yahoo's selector

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=dns))

    assert trust.trusted is False
    assert trust.could_not_check is False
    assert trust.reason == f"claims to be Yahoo CFL but DKIM does not verify for {YAHOO}"
    assert COULD_NOT_CHECK not in [e.name for e in trust.evidence]


def test_a_header_block_too_large_is_not_retried(keys: tuple[Key, Key], dns: Dns) -> None:
    raw = signed(message(), keys[0], YAHOO)

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=dns,
                                                 limits=DkimLimits(max_header_bytes=64)))

    assert trust.could_not_check is False
    assert "DKIM was not checked (not verified: header block too large" in trust.reason


# -- Authentication-Results of our boundary MTA ---------------------------------------------------


@pytest.mark.parametrize("result", [
    f"{MX}; dkim=pass header.d={YAHOO} header.s=s2026",
    f"{MX}; dkim=pass header.i=@yahoo.com",  # relaxed alignment: the same organisation
    f"{MX}; spf=none; dmarc=pass (p=reject) header.from={YAHOO}",
    f"{MX} 1; dkim=fail header.d=other.example; dmarc=pass header.from={YAHOO}",
])
def test_our_mtas_pass_decides_like_a_verified_signature(result: str) -> None:
    raw = with_headers(message(), f"Authentication-Results: {result}")

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=no_answer))  # no DNS at all

    assert trust.trusted is True
    assert trust.reporter == "Yahoo CFL"
    assert trust.reason == ""
    assert "auth-results:pass" in [e.name for e in trust.evidence]


def test_our_mtas_temperror_is_could_not_check() -> None:
    raw = with_headers(message(),
                       f"Authentication-Results: {MX}; dkim=temperror header.d={YAHOO}")

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=no_answer))

    assert trust.trusted is False
    assert trust.could_not_check is True
    assert f"DKIM could not be checked (Authentication-Results of {MX}: dkim=temperror)" \
        in trust.reason


def test_our_mtas_fail_is_final_even_when_our_dns_is_down(keys: tuple[Key, Key]) -> None:
    raw = with_headers(signed(message(), keys[0], YAHOO),
                       f"Authentication-Results: {MX}; dkim=fail header.d={YAHOO}")

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=no_answer))

    assert trust.trusted is False
    assert trust.could_not_check is False
    assert "DKIM does not verify" in trust.reason


def test_our_mtas_temperror_but_our_own_check_verifies(keys: tuple[Key, Key], dns: Dns) -> None:
    raw = with_headers(signed(message(), keys[0], YAHOO),
                       f"Authentication-Results: {MX}; dkim=temperror header.d={YAHOO}")

    assert POLICY.assess(raw, None, verify_dkim(raw, dns=dns)).trusted is True


def test_an_unaligned_pass_does_not_count() -> None:
    raw = with_headers(message(),
                       f"Authentication-Results: {MX}; dkim=pass header.d=attacker.example")

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=no_answer))

    assert trust.trusted is False


@pytest.mark.parametrize("headers", [
    # another server's word: anyone can write it
    ("Authentication-Results: mx.elsewhere.example; dkim=pass header.d=yahoo.com",),
    # ours, then, below another header field, one with our name that the sender wrote before
    # the message reached us: only the topmost run counts
    (f"Authentication-Results: {MX}; dkim=none",
     "Received: from relay.example by mx.integra-isp.example",
     f"Authentication-Results: {MX}; dkim=pass header.d=yahoo.com"),
])
def test_only_the_topmost_results_with_our_authserv_id_count(headers: tuple[str, ...]) -> None:
    raw = with_headers(message(), *headers)

    trust = POLICY.assess(raw, None, verify_dkim(raw, dns=no_answer))

    assert trust.trusted is False
    assert "auth-results:pass" not in [e.name for e in trust.evidence]


def test_without_a_configured_authserv_id_no_header_is_believed() -> None:
    raw = with_headers(message(), f"Authentication-Results: {MX}; dkim=pass header.d={YAHOO}")
    policy = TrustPolicy([*DEFAULT_TRUSTED_REPORTERS])

    assert policy.assess(raw, None, verify_dkim(raw, dns=no_answer)).trusted is False
    assert boundary_verdict(raw, YAHOO, "") is None


def test_a_dmarc_pass_for_another_from_domain_does_not_count() -> None:
    raw = with_headers(message(),
                       f"Authentication-Results: {MX}; dmarc=pass header.from=attacker.example")

    verdict = boundary_verdict(raw, YAHOO, MX)

    assert verdict is not None and verdict.status is DkimStatus.FAIL


def test_spf_alone_says_nothing_of_a_signature() -> None:
    raw = with_headers(message(), f"Authentication-Results: {MX}; spf=pass "
                                  f"smtp.mailfrom=bounce@{YAHOO}")

    assert boundary_verdict(raw, YAHOO, MX) is None
