"""Reporter trust: DKIM verified offline with keys made here at run time, served by a dict-backed
DNS; the trusted-reporter list, its patterns and relaxed alignment; bounded, non-raising
verification on hostile input and on every sample of the corpus."""

from __future__ import annotations

import base64
import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
import pytest
from abuse_desk.classifier.signatures import (
    DNS_BUDGET_S,
    DkimLimits,
    DkimResult,
    DkimStatus,
    SignatureCheck,
    aligned,
    organisational_domain,
    verify_dkim,
)
from abuse_desk.classifier.signatures import _rfc822_parse as linear_parse
from abuse_desk.classifier.trust import (
    DEFAULT_TRUSTED_REPORTERS,
    Trust,
    TrustedReporter,
    TrustPolicy,
    sender_matches,
)
from abuse_desk.core.policy import Evidence

# The shared corpus, as tests/support.py finds it (not imported: it loads the whole desk).
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

# -- test keys: RSA made at run time (no key is committed), DER written by hand ------------------


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _sequence(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _probable_prime(bits: int, rng: random.Random) -> int:
    small = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p**0.5) + 1, 2))]
    while True:
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if any(n % p == 0 for p in small) or (n - 1) % 65537 == 0:
            continue
        d, s = n - 1, 0
        while d % 2 == 0:
            d, s = d // 2, s + 1
        for _ in range(24):  # Miller-Rabin
            x = pow(rng.randrange(2, n - 1), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


@dataclass(frozen=True)
class Key:
    private_pem: bytes  # PKCS#1, what dkim.sign takes
    dns_record: bytes  # the TXT record: v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo>


def make_key(seed: int, bits: int = 1024) -> Key:
    """An RSA test key from a seeded (not cryptographic) generator: the same key every run,
    1024 bits, the smallest dkimpy accepts. For tests only."""
    rng = random.Random(seed)
    p, q = _probable_prime(bits // 2, rng), _probable_prime(bits // 2, rng)
    n, e = p * q, 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    private = _sequence(*(_integer(v) for v in
                          (0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))))
    rsa_encryption = _sequence(_der(0x06, bytes.fromhex("2a864886f70d010101")), _der(0x05, b""))
    spki = _sequence(rsa_encryption, _der(0x03, b"\x00" + _sequence(_integer(n), _integer(e))))
    b64 = base64.encodebytes(private).replace(b"\n", b"")
    lines = b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return Key(b"-----BEGIN RSA PRIVATE KEY-----\n" + lines + b"\n-----END RSA PRIVATE KEY-----\n",
                   b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki))


@pytest.fixture(scope="module")
def keys() -> tuple[Key, Key]:
    return make_key(2026), make_key(4711)


class Dns:
    """A dict-backed TXT lookup that remembers what it was asked."""

    def __init__(self, records: dict[bytes, bytes]) -> None:
        self.records = records
        self.asked: list[bytes] = []

    def __call__(self, name: bytes) -> bytes | None:
        self.asked.append(name)
        return self.records.get(name)


def txt(selector: str, domain: str) -> bytes:
    return f"{selector}._domainkey.{domain}.".encode()


YAHOO = "arf.mail.yahoo.com"


def message(sender: str = f"feedback@{YAHOO}", body: str = "A complaint about 192.0.2.10.\r\n"
            ) -> bytes:
    return (f"From: Yahoo! Mail AntiSpam Feedback <{sender}>\r\n"
            "To: abuse@integra-isp.example\r\nSubject: Email Feedback Report for IP 192.0.2.10\r\n"
            "Date: Sun, 01 Mar 2026 06:00:00 +0000\r\nMessage-ID: <fbl-1@arf.mail.yahoo.com>\r\n"
            f"\r\n{body}").encode()


def signed(raw: bytes, key: Key, domain: str, selector: str = "s2026",
           length: bool = False) -> bytes:
    return dkim.sign(raw, selector.encode(), domain.encode(), key.private_pem,
                     length=length) + raw


@pytest.fixture
def dns(keys: tuple[Key, Key]) -> Dns:
    yahoo, other = keys
    return Dns({txt("s2026", YAHOO): yahoo.dns_record,
                txt("s2026", "spamcop.net"): yahoo.dns_record,
                txt("s2026", "attacker.example"): other.dns_record})


# -- verify_dkim ------------------------------------------------------------------------------


def test_a_signed_message_verifies_with_its_key(keys: tuple[Key, Key], dns: Dns) -> None:
    result = verify_dkim(signed(message(), keys[0], YAHOO), dns=dns)

    assert result == DkimResult(True, [YAHOO], f"DKIM pass for {YAHOO}",
                                [SignatureCheck(YAHOO, "s2026", True, "pass")])
    assert dns.asked == [txt("s2026", YAHOO)]


def test_a_tampered_body_fails(keys: tuple[Key, Key], dns: Dns) -> None:
    raw = signed(message(), keys[0], YAHOO).replace(b"192.0.2.10.", b"192.0.2.99.")

    result = verify_dkim(raw, dns=dns)

    assert (result.passed, result.domains) == (False, [])
    assert result.reason.startswith(
        f"d={YAHOO} s=s2026: ValidationError: body hash mismatch (got b'")


def test_a_tampered_signed_header_fails(keys: tuple[Key, Key], dns: Dns) -> None:
    raw = signed(message(), keys[0], YAHOO).replace(b"Report for IP 192.0.2.10",
                                                    b"Report for IP 192.0.2.11")

    result = verify_dkim(raw, dns=dns)

    assert result.reason == f"d={YAHOO} s=s2026: signature does not verify"
    assert result.passed is False


def test_the_wrong_key_fails(keys: tuple[Key, Key]) -> None:
    raw = signed(message(), keys[0], YAHOO)

    result = verify_dkim(raw, dns=Dns({txt("s2026", YAHOO): keys[1].dns_record}))

    assert result.reason == f"d={YAHOO} s=s2026: signature does not verify"


def test_an_unknown_selector_fails(keys: tuple[Key, Key], dns: Dns) -> None:
    result = verify_dkim(signed(message(), keys[0], YAHOO, selector="gone"), dns=dns)

    assert result.passed is False
    assert result.reason == (f"d={YAHOO} s=gone: missing public key: "
                             f"b'gone._domainkey.{YAHOO}.'")


def test_a_dns_timeout_is_could_not_check_not_a_failure(keys: tuple[Key, Key]) -> None:
    def broken(name: bytes) -> bytes | None:
        raise TimeoutError("resolver did not answer")

    result = verify_dkim(signed(message(), keys[0], YAHOO), dns=broken)

    assert result == DkimResult(False, [], (
        f"d={YAHOO} s=s2026: DNS lookup of s2026._domainkey.{YAHOO}. failed: "
        "TimeoutError: resolver did not answer"), [SignatureCheck(
            YAHOO, "s2026", False, f"DNS lookup of s2026._domainkey.{YAHOO}. failed: "
            "TimeoutError: resolver did not answer", temperror=True)])
    assert result.status == DkimStatus.TEMPERROR
    assert result.could_not_check


def test_a_dns_function_that_raises_otherwise_is_a_failure_with_its_reason(
        keys: tuple[Key, Key]) -> None:
    def broken(name: bytes) -> bytes | None:
        raise ValueError("malformed answer")

    result = verify_dkim(signed(message(), keys[0], YAHOO), dns=broken)

    assert result.status == DkimStatus.FAIL
    assert not result.could_not_check
    assert result.reason == (f"d={YAHOO} s=s2026: DNS lookup of s2026._domainkey.{YAHOO}. "
                             "failed: ValueError: malformed answer")


def test_a_hundred_signatures_cost_three_lookups(keys: tuple[Key, Key], dns: Dns) -> None:
    good = signed(message(), keys[0], YAHOO)
    header, rest = good.split(b"\r\n\r\n", 1)[0].split(b"From:", 1)
    junk = b"".join(header.replace(b"s=s2026", f"s=junk{n}".encode()) for n in range(99))
    raw = junk + header + b"From:" + rest + b"\r\n\r\n" + good.split(b"\r\n\r\n", 1)[1]

    result = verify_dkim(raw, dns=dns)

    assert dns.asked == [txt(f"junk{n}", YAHOO) for n in range(3)]
    assert len(result.checks) == 3
    assert result.passed is False  # the good one is the 100th: never looked at
    assert result.reason.endswith("; only the first 3 of 100 signatures were checked")


def test_a_signature_that_leaves_the_body_open_does_not_vouch(
        keys: tuple[Key, Key], dns: Dns) -> None:
    raw = signed(message(), keys[0], YAHOO, length=True) + b"Trust me, I am Yahoo.\r\n"
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns(name))  # dkimpy alone: pass

    result = verify_dkim(raw, dns=dns)

    assert result.reason == f"d={YAHOO} s=s2026: l= signs only 31 of 54 body bytes"
    assert result.passed is False


def test_a_signature_that_does_not_cover_from_does_not_vouch(
        keys: tuple[Key, Key], dns: Dns) -> None:
    signs_from = b"h=from : to : subject : date : message-id : from;"
    raw = signed(message(), keys[0], YAHOO).replace(signs_from, b"h=to : subject : date;")
    assert signs_from not in raw

    assert verify_dkim(raw, dns=dns).reason == (
        f"d={YAHOO} s=s2026: the signature does not cover From")


@pytest.mark.parametrize(("raw", "reason"), [
    (b"From: a@b.example\r\n\r\nno signature\r\n", "no DKIM signature"),
    (b"\x00\x01 not a header\r\n\r\n",
     "message cannot be read for DKIM: MessageFormatError: "
     "Unexpected characters in RFC822 header: b'\\x00\\x01 not a header'"),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example\r\nFrom: a@x.example\r\n\r\nhi\r\n",
     "d=x.example s=?: the signature does not cover From"),
    (b"DKIM-Signature: garbage without tags\r\nFrom: a@x.example\r\n\r\nhi\r\n",
     "d=? s=?: MessageFormatError: b'garbage without tags'"),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n"
     b"From: a@x.example\r\n\r\nhi\r\n",
     "d=x.example s=s: could not parse RSA public key (b'AAAA'): Unparsable public key; "
     "SubjectPublicKeyInfo: Unexpected tag (got 00, expecting 30); "
     "RSAPublicKey: Unexpected tag (got 00, expecting 30)"),
    (b"DKIM-Signature: v=1; a=rsa-sha512; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n"
     b"From: a@x.example\r\n\r\nhi\r\n",
     "d=x.example s=s: ValidationError: unknown signature algorithm: b'rsa-sha512'"),
])
def test_hostile_input_is_a_failure_with_a_reason(raw: bytes, reason: str) -> None:
    result = verify_dkim(raw, dns=Dns({txt("s", "x.example"): b"v=DKIM1; p=AAAA"}))

    assert (result.passed, result.reason) == (False, reason)


def test_no_corpus_sample_raises_or_passes_without_dns() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    signed_samples = 0
    for path in sorted(CORPUS.rglob("*.eml")):
        raw = path.read_bytes()
        result = verify_dkim(raw, dns=Dns({}))
        assert result.passed is False, path
        signed_samples += bool(result.checks)
    assert signed_samples >= 10  # Yahoo, Comcast, cyscon, clean-mx, sisimai ... are signed


# -- bounded: the header block, the signatures, the DNS ---------------------------------------


def run_guarded(fn: Callable[[], DkimResult], guard_s: float) -> tuple[DkimResult, float]:
    """*fn*'s result and how long it took; fails after *guard_s* (a hang guard: the thread is
    left behind) rather than waiting for a quadratic parse or a row of DNS timeouts."""
    box: list[DkimResult] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    worker.start()
    worker.join(guard_s)
    if not box:
        pytest.fail(f"still running after {guard_s} s")
    return box[0], time.monotonic() - started


def folded(lines: int) -> bytes:
    """A report with a Subject folded into *lines* lines (700,000 make 11 MB)."""
    fold = b"".join(b"\r\n " + b"x" * 14 for _ in range(lines))
    return (f"From: feedback@{YAHOO}\r\nTo: abuse@integra-isp.example\r\n".encode()
            + b"Subject: spam" + fold + b"\r\n\r\nA complaint about 192.0.2.10.\r\n")


def test_dkim_on_an_11_mb_folded_subject_answers_at_once() -> None:
    """dkimpy read the header block in quadratic time: 700,000 folded lines took minutes
    (outside the parsers' time budget), one message stopped all processing."""
    result, _ = run_guarded(lambda: verify_dkim(folded(700_000), dns=Dns({})), 30.0)

    assert result.status == DkimStatus.POLICY
    assert result.could_not_check
    assert result.reason == ("not verified: header block too large (over 262144 bytes, "
                             "parsers.dkim_max_header_bytes)")


def test_a_long_folded_header_within_the_limit_is_read_in_linear_time(
        keys: tuple[Key, Key], dns: Dns) -> None:
    raw = signed(folded(15_000), keys[0], YAHOO)  # 255 KB of header block, signed
    result, _ = run_guarded(lambda: verify_dkim(raw, dns=dns), 30.0)
    assert result.passed, result.reason
    assert result.status == DkimStatus.PASS


@pytest.mark.parametrize("raw", [
    b"From: a@b\r\nSubject: x\r\n y\r\n\tz\r\n\r\nbody\r\n",
    b"From: a@b\nSubject: x\n y\n\nbody\nmore\r\n",
    b"From a@b Mon Jan  1 00:00:00 2026\r\nX: 1\r\n\r\n",
    b"X: 1\r\n\r\n\r\nbody after an empty line\r\n",
    b"no blank line at all",
    b"X: only headers\r\nY: 2",
    b"",
])
def test_the_linear_header_reader_reads_as_dkimpy_does(raw: bytes) -> None:
    assert read_headers(linear_parse, raw) == read_headers(dkim.rfc822_parse, raw)


def read_headers(parse: Callable[[bytes], Any], raw: bytes) -> object:
    """What *parse* makes of *raw*: headers and body, or its error and message."""
    try:
        return tuple(parse(raw))
    except Exception as exc:
        return exc.__class__, str(exc)


def test_the_linear_header_reader_agrees_on_the_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    for path in sorted(CORPUS.rglob("*.eml")):
        raw = path.read_bytes()
        assert read_headers(linear_parse, raw) == read_headers(dkim.rfc822_parse, raw), path


class BlackHole:
    """A DNS server on 127.0.0.1 that never answers, and the names it was asked for."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.names: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import dns.message

        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            with contextlib.suppress(Exception):
                name = dns.message.from_wire(data).question[0].name.to_text()
                if name not in self.names:
                    self.names.append(name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def black_hole(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlackHole]:
    """The system resolver pointed at a :class:`BlackHole`, as at a domain whose name servers
    the sender made silent."""
    import dns.resolver

    server = BlackHole()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port
    monkeypatch.setattr(dns.resolver, "default_resolver", resolver)
    yield server
    server.close()


def test_dkim_dns_lookups_to_attacker_chosen_names_are_bounded(
        keys: tuple[Key, Key], black_hole: BlackHole) -> None:
    """Ten signatures naming the sender's own silent domains: at most three lookups, all
    within the DNS budget (it was five lookups of five seconds each), and the result says
    "could not check", not "does not verify"."""
    raw = message()
    for n in range(10):
        raw = signed(raw, keys[1], f"silent{n}.attacker.example")

    result, took = run_guarded(lambda: verify_dkim(raw), 60.0)

    assert len(black_hole.names) <= 3
    assert took < DNS_BUDGET_S + 3.0  # the budget, plus the verification around it
    assert result.status == DkimStatus.TEMPERROR
    assert result.could_not_check
    assert "only the first 3 of 10 signatures were checked" in result.reason
    assert all(c.temperror for c in result.checks)


def test_the_dns_budget_is_shared_by_the_signatures_of_a_message(keys: tuple[Key, Key]) -> None:
    raw = message()
    for n in range(3):
        raw = signed(raw, keys[1], f"slow{n}.attacker.example")
    asked: list[bytes] = []

    def slow(name: bytes) -> bytes | None:
        asked.append(name)
        time.sleep(0.3)
        raise TimeoutError("no answer")

    result = verify_dkim(raw, dns=slow, limits=DkimLimits(dns_budget_s=0.5))

    assert len(asked) == 2  # the third had no budget left
    assert result.checks[2].reason.startswith("DNS lookup of s2026._domainkey.slow0.")
    assert "the DNS budget of 0.5 s per message is spent" in result.checks[2].reason
    assert result.status == DkimStatus.TEMPERROR


def test_a_trusted_reporter_whose_dkim_cannot_be_checked_is_told_apart(
        keys: tuple[Key, Key]) -> None:
    def silent(name: bytes) -> bytes | None:
        raise TimeoutError("no answer")

    trust = assess(signed(message(), keys[0], YAHOO), silent)  # type: ignore[arg-type]

    assert trust.trusted is False
    assert trust.reason == (f"claims to be Yahoo CFL but DKIM could not be checked (DNS lookup "
                            f"of s2026._domainkey.{YAHOO}. failed: TimeoutError: no answer) "
                            f"for {YAHOO}")
    assert trust.evidence[1].name == "dkim:temperror"
    assert trust.could_not_check is True


def test_the_limits_come_from_the_configuration() -> None:
    from abuse_desk.core.config import ParserLimits

    assert DkimLimits.from_config(ParserLimits(
        dkim_max_header_bytes=1000, dkim_max_signatures=1, dkim_dns_timeout_s=0.5,
        dkim_dns_budget_s=1.5)) == DkimLimits(1000, 1, 0.5, 1.5)
    assert DkimLimits.from_config(ParserLimits()) == DkimLimits()


# -- alignment and patterns -------------------------------------------------------------------


@pytest.mark.parametrize(("signer", "from_domain", "expected"), [
    ("arf.mail.yahoo.com", "arf.mail.yahoo.com", True),
    ("yahoo.com", "arf.mail.yahoo.com", True),  # the organisation signs for its subdomain
    ("mail.example.co.uk", "fbl.example.co.uk", True),  # siblings, one organisation
    ("other.co.uk", "example.co.uk", False),
    ("co.uk", "example.co.uk", False),  # a public suffix aligns with nothing
    ("com", "yahoo.com", False),
    ("co.uk", "co.uk", False),  # not even with itself
    ("evil.blogspot.com", "victim.blogspot.com", False),  # private suffixes count too
    ("YAHOO.com.", "arf.mail.yahoo.com", True),
])
def test_relaxed_alignment_by_organisational_domain(signer: str, from_domain: str,
                                                    expected: bool) -> None:
    assert aligned(signer, from_domain) is expected


def test_organisational_domains() -> None:
    assert [organisational_domain(d) for d in ("fbl.comcast.net", "reports.spamcop.net",
                                               "a.b.example.co.uk", "net")] == [
        "comcast.net", "spamcop.net", "example.co.uk", None]


@pytest.mark.parametrize(("pattern", "address", "expected"), [
    ("*.spamcop.net", "1234567@reports.spamcop.net", True),
    ("*.spamcop.net", "summaries@admin.spamcop.net", True),
    ("*.spamcop.net", "x@spamcop.net", False),  # *. means a subdomain
    ("*.spamcop.net", "x@evilspamcop.net", False),
    ("*.spamcop.net", "x@spamcop.net.evil.example", False),
    ("netcraft.com", "takedown-response+0317484@netcraft.com", True),
    ("netcraft.com", "x@takedown.netcraft.com", False),
    ("takedown-response+*@netcraft.com", "takedown-response+0536145@netcraft.com", True),
    ("takedown-response+*@netcraft.com", "takedown@netcraft.com", False),
    ("feedbackloop@*.senderscore.net", "feedbackloop@comcastfbl.senderscore.net", True),
    ("feedbackloop@*.senderscore.net", "someone@comcastfbl.senderscore.net", False),
    ("feedback@arf.mail.yahoo.com", "feedback@arf.mail.yahoo.com", True),
    ("feedback@arf.mail.yahoo.com", "feedback@mail.yahoo.com", False),
])
def test_sender_patterns(pattern: str, address: str, expected: bool) -> None:
    checked = TrustedReporter("r", (pattern,)).senders[0]
    assert sender_matches(checked, address) is expected


@pytest.mark.parametrize("pattern", ["", "@netcraft.com", "a b@x.example", "x*.example",
                                     "localhost", "*.com", "spam cop.net"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="is not an address, a domain or"):
        TrustedReporter("r", (pattern,))


def test_the_most_specific_pattern_wins_whatever_the_order() -> None:
    broad = TrustedReporter("Broad", ("*.example.net",))
    narrow = TrustedReporter("Narrow", ("fbl@mail.example.net",))
    for order in ([broad, narrow], [narrow, broad]):
        claim = TrustPolicy(order).claimed("fbl@mail.example.net")
        assert claim == (narrow, "fbl@mail.example.net")
    assert TrustPolicy([broad, narrow]).claimed("x@mail.example.net") == (broad, "*.example.net")


# -- TrustPolicy.assess -----------------------------------------------------------------------

DEFAULTS = TrustPolicy(list(DEFAULT_TRUSTED_REPORTERS))


def assess(raw: bytes, dns: Dns, policy: TrustPolicy = DEFAULTS,
           from_address: str | None = None) -> Trust:
    return policy.assess(raw, from_address, verify_dkim(raw, dns=dns))


def test_a_trusted_reporter_with_aligned_dkim_is_trusted(keys: tuple[Key, Key],
                                                         dns: Dns) -> None:
    trust = assess(signed(message(), keys[0], YAHOO), dns, from_address=f"feedback@{YAHOO}")

    assert trust == Trust(True, "Yahoo CFL", [
        Evidence("trust:claims", 0.0,
                 f"From feedback@{YAHOO} matches Yahoo CFL (feedback@{YAHOO})"),
        Evidence("dkim:pass", 1.0, f"DKIM pass for {YAHOO}"),
        Evidence("dkim:aligned", 1.0,
                 f"d={YAHOO} aligns with From domain {YAHOO} (organisation yahoo.com)"),
    ], "")


def test_the_same_from_without_dkim_is_not_trusted(dns: Dns) -> None:
    trust = assess(message(), dns)  # From read from the message itself

    assert (trust.trusted, trust.reporter) == (False, "Yahoo CFL")
    assert trust.reason == f"claims to be Yahoo CFL but DKIM does not verify for {YAHOO}"
    assert [e.name for e in trust.evidence] == ["trust:claims", "dkim:none", "dkim:not-aligned"]


def test_a_broken_signature_is_not_trusted(keys: tuple[Key, Key], dns: Dns) -> None:
    raw = signed(message(), keys[0], YAHOO).replace(b"192.0.2.10.", b"192.0.2.99.")

    trust = assess(raw, dns)

    assert trust.trusted is False
    assert trust.reason == f"claims to be Yahoo CFL but DKIM does not verify for {YAHOO}"
    assert trust.evidence[1].name == "dkim:fail"


def test_a_valid_signature_from_another_organisation_is_not_trusted(
        keys: tuple[Key, Key], dns: Dns) -> None:
    trust = assess(signed(message(), keys[1], "attacker.example"), dns)

    assert trust.trusted is False
    assert trust.reason == f"claims to be Yahoo CFL but DKIM does not verify for {YAHOO}"
    assert trust.evidence[1:] == [
        Evidence("dkim:pass", 1.0, "DKIM pass for attacker.example"),
        Evidence("dkim:not-aligned", 0.0,
                 f"signed by attacker.example, not by {YAHOO}'s organisation")]


def test_a_subdomain_from_aligns_with_the_organisations_signature(
        keys: tuple[Key, Key], dns: Dns) -> None:
    sender = "1234567@reports.spamcop.net"
    trust = assess(signed(message(sender), keys[0], "spamcop.net"), dns)

    assert (trust.trusted, trust.reporter, trust.reason) == (True, "SpamCop", "")
    assert trust.evidence[-1] == Evidence(
        "dkim:aligned", 1.0,
        "d=spamcop.net aligns with From domain reports.spamcop.net (organisation spamcop.net)")


def test_an_unknown_reporter_is_not_trusted_and_not_a_review_reason(
        keys: tuple[Key, Key], dns: Dns) -> None:
    signed_by_itself = signed(message("abuse@attacker.example"), keys[1], "attacker.example")

    for raw in (message("someone@example.org"), signed_by_itself):
        trust = assess(raw, dns)
        assert (trust.trusted, trust.reporter, trust.reason) == (False, None, "")
        assert trust.evidence[0].name == "trust:unknown-reporter"


def test_no_from_at_all_is_not_trusted_and_not_a_review_reason(dns: Dns) -> None:
    trust = assess(b"Subject: nobody\r\n\r\nhi\r\n", dns)

    assert trust == Trust(False, None, [Evidence("trust:no-from", 0.0, "no From address"),
                                        Evidence("dkim:none", 0.0, "no DKIM signature")], "")


def test_a_reporter_that_does_not_need_dkim_is_trusted_by_from(dns: Dns) -> None:
    policy = TrustPolicy([TrustedReporter("Old FBL", ("fbl.example.net",), require_dkim=False)])

    trust = assess(message("reports@fbl.example.net"), dns, policy)

    assert (trust.trusted, trust.reporter, trust.reason) == (True, "Old FBL", "")
    assert trust.evidence[-1] == Evidence(
        "trust:from-only", 0.5, "Old FBL is trusted by its From alone (require_dkim is off)")


# -- configuration ----------------------------------------------------------------------------


def test_from_config_reads_the_tables_of_config_toml() -> None:
    policy = TrustPolicy.from_config([
        {"name": "Example FBL", "senders": ["fbl.example.net", "Feedback@Example.org"]},
        {"name": "Legacy", "from": "*.legacy.example", "require_dkim": False},
    ])

    assert policy.reporters == [
        TrustedReporter("Example FBL", ("fbl.example.net", "feedback@example.org")),
        TrustedReporter("Legacy", ("*.legacy.example",), require_dkim=False)]


def test_configuration_overrides_a_default_by_name(dns: Dns) -> None:
    configured = TrustPolicy.from_config(
        [{"name": "Yahoo CFL", "senders": [f"feedback@{YAHOO}"], "require_dkim": False}])
    policy = TrustPolicy([*DEFAULT_TRUSTED_REPORTERS, *configured.reporters])

    assert len(policy.reporters) == len(DEFAULT_TRUSTED_REPORTERS)
    assert assess(message(), dns, policy).trusted is True  # unsigned, but the desk said so
    assert assess(message(), dns).trusted is False  # the defaults alone require DKIM


@pytest.mark.parametrize(("entry", "error"), [
    ({"name": "X", "senders": ["x.example"], "dkim": True},
     "trusted reporter 1: unknown key 'dkim'; known: from, name, require_dkim, senders"),
    ({"senders": ["x.example"]}, "trusted reporter 1: name must be a non-empty string"),
    ({"name": "X", "senders": []}, "trusted reporter 1 (X): senders must be a non-empty list"),
    ({"name": "X", "senders": ["x.example"], "require_dkim": "no"},
     "trusted reporter 1 (X): require_dkim must be true or false"),
    ({"name": "X", "senders": ["not a domain"]},
     "trusted reporter 1 (X): 'not a domain' is not an address, a domain or"),
])
def test_bad_configuration_names_the_entry(entry: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError) as raised:
        TrustPolicy.from_config([entry])
    assert str(raised.value).startswith(error)


def test_the_defaults_cover_the_known_senders_of_the_corpus() -> None:
    def claims(address: str) -> str | None:
        claim = DEFAULTS.claimed(address)
        return claim[0].name if claim else None

    assert {a: claims(a) for a in (
        "feedback@arf.mail.yahoo.com", "feedbackloop@comcastfbl.senderscore.net",
        "feedbackloop@rackspacefbl.senderscore.net", "feedbackloop@fbl.cox.net",
        "autoreports@shadowserver.org", "notices.p2p@ip-echelon.com",
        "takedown-response+0317484@netcraft.com", "summaries@admin.spamcop.net",
        "someone@example.org")} == {
        "feedback@arf.mail.yahoo.com": "Yahoo CFL",
        "feedbackloop@comcastfbl.senderscore.net": "Validity FBL",
        "feedbackloop@rackspacefbl.senderscore.net": "Validity FBL",
        "feedbackloop@fbl.cox.net": "Cox FBL",
        "autoreports@shadowserver.org": "Shadowserver",
        "notices.p2p@ip-echelon.com": "IP-Echelon",
        "takedown-response+0317484@netcraft.com": "Netcraft",
        "summaries@admin.spamcop.net": "SpamCop",
        "someone@example.org": None}
