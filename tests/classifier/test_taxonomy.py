"""The mapping tables: every key of every vocabulary, its type, and how hints are compared."""

from __future__ import annotations

import pytest
from abuse_desk.classifier import taxonomy
from abuse_desk.classifier.taxonomy import NOT_ABUSE, PATTERNS, TABLES, TableHit, compact, lookup
from abuse_desk.core.policy import Evidence


def hit_of(hint: str) -> TableHit:
    hit = lookup(hint)
    assert hit is not None, hint
    return hit


# Each vocabulary: every key of its table as a parser writes the hint, and the type expected.
ARF = [
    ("arf:abuse", "spam"),
    ("arf:spam", "spam"),
    ("arf:virus", "virus-spam"),
    ("arf:fraud", "fraud"),
    ("arf:other", "spam"),
    ("arf:missing", "spam"),
    ("arf:opt-out", "spam"),
    ("arf:auth-failure", "spam"),
    ("arf:not-spam", NOT_ABUSE),
]
XARF = [  # X-ARF 0.x Report-Type / Category, lower case as the YAML parser writes them
    ("xarf:login-attack", "hacking"),
    ("xarf:malware-attack", "malware"),
    ("xarf:bot-infection", "malware"),
    ("xarf:phishing", "phishing"),
    ("xarf:scam", "fraud"),
    ("xarf:spam", "spam"),
    ("xarf:defacement", "hacking"),
    ("xarf:infected", "malware"),
    ("xarf:harvesting", "spam"),
    ("xarf:regbot", "spam"),
    ("xarf:dnsbl-listing", "spam"),
    ("xarf:info", "spam"),
    ("xarf:abuse", "hacking"),
    ("xarf:fraud", "fraud"),
]
ABUSIX = [  # abusix v1-v3 ReportType, CamelCase as the JSON parser keeps it
    ("xarf:Spam", "spam"),
    ("xarf:LoginAttack", "hacking"),
    ("xarf:PortScan", "port-scan"),
    ("xarf:DDoS", "ddos"),
    ("xarf:Phishing", "phishing"),
    ("xarf:Malware", "malware"),
    ("xarf:Copyright", "copyright"),
    ("xarf:Botnet", "malware"),
    ("xarf:OpenService", "open-service"),
    ("xarf:Exploit", "hacking"),
    ("xarf:Harassment", "harassment"),
    ("xarf:ChildAbuse", "illegal"),
    ("xarf:Trademark", "copyright"),
    ("xarf:PotentiallyCompromised", "malware"),
    ("xarf:WebCrawler", "hacking"),
    ("xarf:RPZ", "malware"),
]
XARF4 = [
    ("xarf4:messaging/spam", "spam"),
    ("xarf4:messaging/bulk_messaging", "spam"),
    ("xarf4:connection/login_attack", "hacking"),
    ("xarf4:connection/port_scan", "port-scan"),
    ("xarf4:connection/ddos", "ddos"),
    ("xarf4:connection/infected_host", "malware"),
    ("xarf4:connection/reconnaissance", "port-scan"),
    ("xarf4:connection/scraping", "hacking"),
    ("xarf4:connection/sql_injection", "hacking"),
    ("xarf4:connection/vulnerability_scan", "port-scan"),
    ("xarf4:content/phishing", "phishing"),
    ("xarf4:content/malware", "malware"),
    ("xarf4:content/csam", "illegal"),
    ("xarf4:content/csem", "illegal"),
    ("xarf4:content/exposed_data", "open-service"),
    ("xarf4:content/brand_infringement", "copyright"),
    ("xarf4:content/fraud", "fraud"),
    ("xarf4:content/remote_compromise", "hacking"),
    ("xarf4:content/suspicious_registration", "fraud"),
    ("xarf4:copyright/copyright", "copyright"),
    ("xarf4:copyright/cyberlocker", "copyright"),
    ("xarf4:copyright/ugc_platform", "copyright"),
    ("xarf4:copyright/link_site", "copyright"),
    ("xarf4:copyright/usenet", "copyright"),
    ("xarf4:copyright/p2p", "copyright"),
    ("xarf4:infrastructure/botnet", "malware"),
    ("xarf4:infrastructure/compromised_server", "malware"),
    ("xarf4:reputation/blocklist", "spam"),
    ("xarf4:reputation/threat_intelligence", "malware"),
    ("xarf4:vulnerability/cve", "open-service"),
    ("xarf4:vulnerability/open_service", "open-service"),
    ("xarf4:vulnerability/misconfiguration", "open-service"),
    ("xarf4:messaging", "spam"),
    ("xarf4:connection", "hacking"),
    ("xarf4:content", "phishing"),
    ("xarf4:copyright", "copyright"),
    ("xarf4:infrastructure", "malware"),
    ("xarf4:reputation", "spam"),
    ("xarf4:vulnerability", "open-service"),
]
ACNS = [
    ("acns:p2p", "copyright"),
    ("acns:http", "copyright"),
    ("acns:usenet", "copyright"),
    ("acns:unknown", "copyright"),  # by the vocabulary's catch-all pattern
    ("acns:ftp", "copyright"),
]
DMCA = [
    ("dmca:notice", "copyright"),
    ("dmca:counter-notice", "copyright"),  # by the catch-all pattern
]
SPAMCOP = [
    ("spamcop:spam", "spam"),
    ("spamcop:spamvertised", "spamvertising"),
    ("spamcop:summary", "spam"),
    ("spamcop:alert", "spam"),
]
SHADOWSERVER = [
    # legacy names, exact
    ("shadowserver:botnet_drone", "malware"),
    ("shadowserver:sinkhole_http_drone", "malware"),
    ("shadowserver:microsoft_sinkhole", "malware"),
    ("shadowserver:cc_ip", "malware"),
    ("shadowserver:botnet_cc", "malware"),
    ("shadowserver:dns_openresolver", "open-service"),
    ("shadowserver:ntp_monitor", "open-service"),
    ("shadowserver:ntp_version", "open-service"),
    ("shadowserver:open_proxy", "open-service"),
    ("shadowserver:ssl_scan", "open-service"),
    ("shadowserver:drone_brute_force", "hacking"),
    ("shadowserver:spam_url", "spamvertising"),
    ("shadowserver:phish_url", "phishing"),
    ("shadowserver:compromised_website", "malware"),
    ("shadowserver:scan_synfulknock", "malware"),
    # the families, by pattern
    ("shadowserver:scan_ssh", "open-service"),
    ("shadowserver:scan_telnet", "open-service"),
    ("shadowserver:scan_rdp", "open-service"),
    ("shadowserver:scan_afp", "open-service"),
    ("shadowserver:scan_dns", "open-service"),
    ("shadowserver:scan_ftp", "open-service"),
    ("shadowserver:scan_http", "open-service"),
    ("shadowserver:scan_ipmi", "open-service"),
    ("shadowserver:scan_ldap_tcp", "open-service"),
    ("shadowserver:scan_memcached", "open-service"),
    ("shadowserver:scan_mssql", "open-service"),
    ("shadowserver:scan_nat_pmp", "open-service"),
    ("shadowserver:scan_netbios", "open-service"),
    ("shadowserver:scan_ntp", "open-service"),
    ("shadowserver:scan_ntpmonitor", "open-service"),
    ("shadowserver:scan_redis", "open-service"),
    ("shadowserver:scan_rsync", "open-service"),
    ("shadowserver:scan_snmp", "open-service"),
    ("shadowserver:scan_ssdp", "open-service"),
    ("shadowserver:scan_http_vulnerable", "open-service"),
    ("shadowserver:scan6_ssh", "open-service"),
    ("shadowserver:scan6_snmp", "open-service"),
    ("shadowserver:event4_sinkhole", "malware"),
    ("shadowserver:event4_sinkhole_http", "malware"),
    ("shadowserver:event6_sinkhole_dns", "malware"),
    ("shadowserver:event4_microsoft_sinkhole_http", "malware"),
    ("shadowserver:event4_honeypot_brute_force", "hacking"),
    ("shadowserver:event6_honeypot_brute_force", "hacking"),
    ("shadowserver:event4_honeypot_ddos_amp", "ddos"),
    ("shadowserver:event4_ddos_participant", "ddos"),
    ("shadowserver:event4_honeypot_darknet", "port-scan"),
    ("shadowserver:event4_honeypot_http_scan", "hacking"),
    ("shadowserver:event4_honeypot_ics_scan", "port-scan"),
    ("shadowserver:event4_phish", "phishing"),
    ("shadowserver:event4_spam", "spam"),
    ("shadowserver:sandbox_url", "malware"),
    ("shadowserver:ssl_poodle_vulnerable_servers", "open-service"),
    ("shadowserver:blocklist", "spam"),
    ("shadowserver:blacklist", "spam"),
    ("shadowserver:event4_ip_spoofer", "open-service"),
    ("shadowserver:population_http_proxy", "open-service"),
    ("shadowserver:device_id", "open-service"),
]
TEXT = [  # the free-text parser's keyword guesses (parsers/text.py)
    ("text:phishing", "phishing"),
    ("text:copyright", "copyright"),
    ("text:ddos", "ddos"),
    ("text:brute_force", "hacking"),
    ("text:botnet", "malware"),
    ("text:malware", "malware"),
    ("text:scan", "port-scan"),
    ("text:spam", "spam"),
]
CERT = [  # parsers/cert.py: the type a CERT, scanner or blocklist notice (or its row) states
    ("cert:bot", "malware"),
    ("cert:malware", "malware"),
    ("cert:infected", "malware"),
    ("cert:compromised", "malware"),
    ("cert:open-service", "open-service"),
    ("cert:vulnerable", "open-service"),
    ("cert:ddos-amplifier", "open-service"),
    ("cert:ddos", "ddos"),
    ("cert:brute-force", "hacking"),
    ("cert:hacking", "hacking"),
    ("cert:exploit", "hacking"),
    ("cert:scan", "port-scan"),
    ("cert:phishing", "phishing"),
    ("cert:spam", "spam"),
]
ALL = ARF + XARF + ABUSIX + XARF4 + ACNS + DMCA + SPAMCOP + SHADOWSERVER + TEXT + CERT


@pytest.mark.parametrize(("hint", "expected"), CERT)
def test_a_cert_notice_states_its_type_with_full_confidence(hint: str, expected: str) -> None:
    """A machine format states its type: the hint decides, at any threshold."""
    from abuse_desk.classifier.categorize import categorize

    hit = hit_of(hint)
    assert hit.confidence == 1.0 and hit.decisive
    decided = categorize(hint, "Copyright (c) 2026 Example Corp. All rights reserved.",
                         threshold=0.99)
    assert decided.type == expected and decided.confidence == 1.0


@pytest.mark.parametrize(("hint", "expected"), ALL)
def test_every_key_maps_to_its_type(hint: str, expected: str) -> None:
    hit = lookup(hint)
    assert hit is not None
    assert hit.type == expected


def test_every_table_key_is_listed_above() -> None:
    """A key added to a table without a line in these lists fails here."""
    listed = {(h.split(":", 1)[0], compact(h.split(":", 1)[1])) for h, _ in ALL}
    keys = {(v, compact(k)) for v, table in TABLES.items() for k in table}
    assert keys - listed == set()


@pytest.mark.parametrize("hint", [
    # every type hint the parsers give the samples of ../shared/corpus
    "acns:p2p", "arf:abuse", "arf:auth-failure", "arf:opt-out", "shadowserver:botnet_drone",
    "shadowserver:dns_openresolver", "shadowserver:scan_afp", "shadowserver:scan_dns",
    "shadowserver:scan_ftp", "shadowserver:scan_http", "shadowserver:scan_ipmi",
    "shadowserver:scan_ldap_tcp", "shadowserver:scan_memcached", "shadowserver:scan_mssql",
    "shadowserver:scan_nat_pmp", "shadowserver:scan_netbios", "shadowserver:scan_ntp",
    "shadowserver:scan_ntpmonitor", "shadowserver:scan_redis", "shadowserver:scan_rsync",
    "shadowserver:scan_snmp", "shadowserver:scan_ssdp", "shadowserver:sinkhole_http_drone",
    "text:botnet", "text:malware", "text:spam", "xarf:harvesting", "xarf:malware-attack",
    "xarf:phishing", "xarf:regbot",
])
def test_hints_seen_in_the_corpus_are_known(hint: str) -> None:
    assert lookup(hint) is not None


@pytest.mark.parametrize(("hint", "name", "confidence"), [
    ("arf:abuse", "table:arf:abuse", 0.95),
    ("arf:other", "table:arf:other", 0.5),
    ("xarf:info", "table:xarf:info", 0.3),
    ("xarf:LoginAttack", "table:xarf:login-attack", 0.95),
    ("xarf4:connection/port_scan", "table:xarf4:connection/port_scan", 0.95),
    ("shadowserver:scan_ssh", "table:shadowserver:scan_ssh", 0.9),
    ("shadowserver:botnet_drone", "table:shadowserver:botnet_drone", 0.9),
    ("shadowserver:blocklist", "table:shadowserver:blocklist", 0.5),
    ("acns:p2p", "table:acns:p2p", 0.95),
    ("acns:unknown", "table:acns:unknown", 0.9),
    ("text:phishing", "table:text:phishing", 0.45),
])
def test_evidence_is_named_after_vocabulary_and_key(hint: str, name: str,
                                                    confidence: float) -> None:
    hit = lookup(hint)
    assert hit is not None
    assert hit.evidence.name == name
    assert hit.evidence.weight == confidence
    assert hit.confidence == confidence


def test_pattern_evidence_says_which_pattern_matched() -> None:
    hit = lookup("shadowserver:scan6_ssh")
    assert hit is not None
    assert hit.evidence == Evidence("table:shadowserver:scan6_ssh", 0.9,
                                    "shadowserver:scan6_ssh matches /^scan6?_/ -> open-service")


@pytest.mark.parametrize("hint", [
    "XARF:Login-Attack", "xarf:login_attack", "xarf:LOGIN ATTACK", "xarf: loginattack ",
])
def test_case_hyphens_underscores_and_blanks_do_not_matter(hint: str) -> None:
    hit = lookup(hint)
    assert hit is not None
    assert (hit.type, hit.evidence.name) == ("hacking", "table:xarf:login-attack")


@pytest.mark.parametrize(("hint", "expected"), [
    ("xarf4:connection/port-scan", "port-scan"),
    ("xarf4:Connection/Port_Scan", "port-scan"),
    ("arf:Not_Spam", NOT_ABUSE),
    ("ARF:ABUSE", "spam"),
    ("shadowserver:Scan-SSH", "open-service"),
    ("text:brute-force", "hacking"),
])
def test_normalisation_across_vocabularies(hint: str, expected: str) -> None:
    hit = lookup(hint)
    assert hit is not None
    assert hit.type == expected


@pytest.mark.parametrize("hint", [
    "", "arf:", "arf", "arf:xarf", "nonsense:abuse", "xarf:Activity", "xarf4:connection/flying",
    "xarf4:unheard_of", "shadowserver:special", "shadowserver:unknown", "text:unknown",
    "spamcop:ham", "acns:", "x" * 5000,
])
def test_unknown_hints_give_nothing(hint: str) -> None:
    assert lookup(hint) is None


def test_not_spam_is_not_abuse_with_high_confidence() -> None:
    hit = lookup("arf:not-spam")
    assert hit is not None
    assert (hit.type, hit.confidence, hit.evidence.name) == (NOT_ABUSE, 0.95, "table:arf:not-spam")


def test_only_text_hints_are_not_decisive() -> None:
    assert [hit_of(h).decisive for h, _ in TEXT] == [False] * len(TEXT)
    assert {hit_of(h).decisive for h, _ in ALL if not h.startswith("text:")} == {True}


def test_vague_entries_are_below_explicit_ones() -> None:
    explicit = [hit_of(h).confidence for h in ("arf:abuse", "xarf:spam", "spamcop:spam")]
    vague = [hit_of(h).confidence for h in ("arf:other", "xarf:info", "xarf4:content")]
    assert min(explicit) >= 0.95
    assert max(vague) <= 0.5


def test_a_clash_between_two_keys_of_one_table_is_refused() -> None:
    with pytest.raises(ValueError, match="xarf:LoginAttack clashes with xarf:login-attack"):
        taxonomy._index({"xarf": {"login-attack": ("hacking", 0.9),
                                  "LoginAttack": ("hacking", 0.9)}})


@pytest.mark.parametrize(("table", "message"), [
    ({"arf": {"abuse": ("spamming", 0.9)}}, "arf:abuse maps to 'spamming'"),
    ({"arf": {"abuse": ("spam", 1.5)}}, "arf:abuse has confidence 1.5"),
])
def test_a_bad_entry_is_refused(table: dict[str, dict[str, tuple[str, float]]],
                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        taxonomy._index(table)


def test_a_pattern_with_a_type_not_ours_is_refused() -> None:
    with pytest.raises(ValueError, match="maps to 'botnets'"):
        taxonomy._compile({"shadowserver": [(r"^x", "botnets", 0.9)]})


def test_pattern_lists_are_data() -> None:
    assert PATTERNS["acns"] == ((r".", "copyright", 0.9),)
    assert PATTERNS["shadowserver"][0] == (r"brute_?force", "hacking", 0.9)
