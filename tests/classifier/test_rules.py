"""Free-text rules: what fires them, what must not, and how their evidence is weighed."""

from __future__ import annotations

import re

import pytest
from abuse_desk.classifier import rules
from abuse_desk.classifier.rules import MAX_TEXT_CHARS, RULES, score_text
from abuse_desk.core.policy import Evidence
from hypothesis import given, settings
from hypothesis import strategies as st

# (text, rule expected to fire, its type)
POSITIVE = [
    ("This is a phishing site imitating our bank", "rule:phishing-words", "phishing"),
    ("a fake bank login page asking for credentials", "rule:phishing-words", "phishing"),
    ("Gefälschte Webseite stiehlt Zugangsdaten", "rule:phishing-words", "phishing"),
    ("une fausse page vole les identifiants", "rule:phishing-words", "phishing"),
    ("sitio falso que pide credenciales", "rule:phishing-words", "phishing"),
    ("een nep-website die inloggegevens vraagt", "rule:phishing-words", "phishing"),
    ("sshd: Failed password for root from 192.0.2.1", "rule:brute-force", "hacking"),
    ("SSH brute force from your network", "rule:brute-force", "hacking"),
    ("pam_unix: authentication failure; Invalid user admin", "rule:brute-force", "hacking"),
    ("tausende Anmeldeversuche auf unserem Server", "rule:brute-force", "hacking"),
    ("des tentatives de connexion par force brute", "rule:brute-force", "hacking"),
    ("ataque de fuerza bruta contra nuestro servidor", "rule:brute-force", "hacking"),
    ("duizenden inlogpogingen op onze mailserver", "rule:brute-force", "hacking"),
    ("connections to our sshd", "rule:login-service", "hacking"),
    ("SQL injection attempts against our shop", "rule:intrusion", "hacking"),
    ("our site was defaced", "rule:intrusion", "hacking"),
    ("Port scan from 192.0.2.7 against our network", "rule:port-scan", "port-scan"),
    ("nmap probes across our DMZ", "rule:port-scan", "port-scan"),
    ("escaneo de puertos desde su red", "rule:port-scan", "port-scan"),
    ("DDoS attack on our web servers", "rule:ddos", "ddos"),
    ("a SYN flood from your customer", "rule:ddos", "ddos"),
    ("une attaque par déni de service", "rule:ddos", "ddos"),
    ("the host is part of a botnet and talks to its C&C", "rule:malware", "malware"),
    ("infected with a banking trojan", "rule:malware", "malware"),
    ("der Rechner ist mit Schadsoftware infiziert", "rule:malware", "malware"),
    ("emails with an infected attachment", "rule:virus-spam", "virus-spam"),
    ("virus-laden emails to our users", "rule:virus-spam", "virus-spam"),
    ("DMCA notice: the film is shared via BitTorrent", "rule:copyright", "copyright"),
    ("copyrighted material infringing our rights", "rule:copyright", "copyright"),
    ("shared with uTorrent", "rule:copyright", "copyright"),
    ("Urheberrechtsverletzung in einer Tauschbörse", "rule:copyright", "copyright"),
    ("he keeps harassing my daughter", "rule:harassment", "harassment"),
    ("threatening emails every day", "rule:harassment", "harassment"),
    ("she is stalking me online", "rule:harassment", "harassment"),
    ("a scam website promising to double bitcoin", "rule:fraud", "fraud"),
    ("an advance fee fraud email", "rule:fraud", "fraud"),
    ("Fakeshop: Betrug mit Vorkasse", "rule:fraud", "fraud"),
    ("The URL hosts CSAM", "rule:illegal", "illegal"),
    ("the IWF confirmed child sexual abuse material", "rule:illegal", "illegal"),
    ("unsolicited commercial email", "rule:spam", "spam"),
    ("I never signed up for this newsletter and cannot unsubscribe", "rule:spam", "spam"),
    ("Seit Tagen unerwünschte Werbemails", "rule:spam", "spam"),
    ("nous recevons des pourriels", "rule:spam", "spam"),
    ("recibimos correo no deseado", "rule:spam", "spam"),
    ("ongevraagde e-mail van uw klant", "rule:spam", "spam"),
    ("The spamvertised site pills.example", "rule:spamvertising", "spamvertising"),
    ("the site was advertised in spam we received", "rule:spamvertising", "spamvertising"),
    ("an open resolver answering recursive queries", "rule:open-service", "open-service"),
    ("MongoDB publicly accessible without authentication", "rule:open-service", "open-service"),
    ("servidores DNS recursivos abertos na sua rede", "rule:open-service", "open-service"),
    ("ein Telnet-Dienst ist aus dem Internet erreichbar", "rule:open-service", "open-service"),
    ("devices vulnerable to CVE-2024-21762", "rule:vulnerable", "open-service"),
    ("Systeme mit bekannten Schwachstellen", "rule:vulnerable", "open-service"),
    ("systemen die kwetsbaar zijn", "rule:vulnerable", "open-service"),
    ("servers running an end-of-life version", "rule:vulnerable", "open-service"),
    ("a web shop selling counterfeit jackets", "rule:counterfeit", "fraud"),
    ("the unauthorised use of our client's trademarks", "rule:counterfeit", "fraud"),
    ("owner of the registered trademark EXAMPLE", "rule:trademark", "fraud"),
    ("un site qui vend des contrefaçons", "rule:counterfeit", "fraud"),
    ("a tech support scam with a fake support hotline", "rule:fraud", "fraud"),
    ("a crypto giveaway promising to double your coins", "rule:fraud", "fraud"),
    ("a cloned login page asking victims to confirm their card details",
     "rule:phishing-words", "phishing"),
    ("página falsa do banco rouba credenciais", "rule:phishing-words", "phishing"),
    ("sukčiavimo svetainė", "rule:phishing-words", "phishing"),
    ("Ваша карта заблокирована, подтвердите данные карты", "rule:phishing-words", "phishing"),
    ("a fake invoice mail from your server", "rule:spam", "spam"),
    ("SMTP AUTH password-guessing, SASL LOGIN failed", "rule:brute-force", "hacking"),
    ("systems in your network participated in a DDoS attack (HTTP GET-flood)", "rule:ddos",
     "ddos"),
    ("Offene SNMP-Dienste werden für DDoS-Angriffe missbraucht", "rule:open-service",
     "open-service"),
    ("open resolvers were used as reflectors against our customer", "rule:ddos", "ddos"),
    ("we were the target of a DNS amplification attack", "rule:ddos", "ddos"),
    ("the Redis server has been compromised and runs a coin miner", "rule:malware", "malware"),
    ("un message malveillant avec une pièce jointe malveillante", "rule:virus-spam",
     "virus-spam"),
    ("Prievadų skenavimas iš Jūsų tinklo", "rule:port-scan", "port-scan"),
    ("FAIL LOGIN: Client 192.0.2.1", "rule:brute-force", "hacking"),
    ("the message says I will be killed", "rule:harassment", "harassment"),
    ("relays an illegal stream of our broadcast", "rule:copyright", "copyright"),
    ("your IP is listed on our blocklist", "rule:spam", "spam"),
    ("the site impersonates our bank", "rule:impersonation", "phishing"),
    ("IPs engaged in harvesting on your network", "rule:spam", "spam"),
    ("a fraudulent web shop", "rule:fraudulent", "fraud"),
]

# (text, a rule that must not fire on it)
NEGATIVE = [
    ("This message was scanned for viruses by our gateway", "rule:malware"),
    ("This message was scanned for viruses by our gateway", "rule:port-scan"),
    ("anti-virus: clean", "rule:malware"),
    ("Your mail landed in our spam folder, this is not spam", "rule:spam"),
    ("threat intelligence feed entry", "rule:harassment"),
    ("we have problems with our printer", "rule:port-scan"),
    ("a scandal in the newspaper", "rule:fraud"),
    ("the ambassador's speech", "rule:login-service"),
    ("Please look at 192.0.2.419 port 25", "rule:fraud"),
    ("credential", "rule:brute-force"),
    ("a copy of the contract", "rule:copyright"),
    ("our spamassassin score", "rule:spamvertising"),
    ("child care services", "rule:illegal"),
    ("the uncompromised server", "rule:intrusion"),
    # footers, banners and the reporter's own scanning are not evidence (classifier.boilerplate)
    ("Spam from your network.\nCopyright © 2026 Example Mail GmbH", "rule:copyright"),
    ("open telnet on port 23\nBanner: Copyright (c) 2009 RouterCo, all rights reserved",
     "rule:copyright"),
    ("telnet open. WARNING: Unauthorized access to this system is prohibited.",
     "rule:intrusion"),
    ("During our daily scan we found an open resolver on your network", "rule:port-scan"),
    ("vulnerable to a flaw known to be exploited", "rule:intrusion"),
    ("the site impersonates our bank", "rule:phishing-words"),  # weak evidence only
]


@pytest.mark.parametrize(("text", "name", "type_"), POSITIVE)
def test_rule_fires(text: str, name: str, type_: str) -> None:
    found = score_text(text)
    assert name in [e.name for e in found.get(type_, [])]


@pytest.mark.parametrize(("text", "name"), NEGATIVE)
def test_rule_does_not_fire(text: str, name: str) -> None:
    found = score_text(text)
    assert name not in [e.name for ev in found.values() for e in ev]


@pytest.mark.parametrize("text", [
    "Open NTP servers can be abused for DDoS amplification attacks.",
    "These servers are being actively abused in DDoS amplification attacks.",
    "Esses servidores estão sendo ativamente abusados em ataques de negação de serviço (DDoS).",
    "Estos servidores pueden ser usados en ataques de denegación de servicio.",
])
def test_what_an_open_service_may_be_abused_for_is_no_ddos(text: str) -> None:
    found = score_text(text)
    assert "ddos" not in found
    assert [e.name for e in found["open-service"]] == ["rule:open-service"]


def test_a_host_being_used_for_something_else_is_no_abuse_potential() -> None:
    found = score_text("The website has been compromised and is being used to host a web shell.")
    assert "open-service" not in found
    assert found["malware"][0].detail == "matched: been compromised, web shell"


def test_a_ddos_seen_stays_a_ddos_beside_the_open_resolvers_it_used() -> None:
    found = score_text("Our customer was the target of a DNS amplification attack; open resolvers "
                       "in your network were used as reflectors.")
    assert found["ddos"][0].weight > found["open-service"][0].weight


def test_every_rule_has_a_positive_example() -> None:
    assert {r.name for r in RULES} - {name for _, name, _ in POSITIVE} == set()


def test_nothing_fires_on_text_without_abuse_words() -> None:
    assert score_text("Hello, could you tell me your opening hours? Thanks, Anna") == {}
    assert score_text("") == {}


def test_one_phrase_gives_the_rule_weight() -> None:
    assert score_text("We got spam from you") == {
        "spam": [Evidence("rule:spam", 0.5, "matched: spam")]}


def test_distinct_phrases_add_up_and_a_repeated_phrase_does_not() -> None:
    assert score_text("spam " * 50) == {"spam": [Evidence("rule:spam", 0.5, "matched: spam")]}
    assert score_text("Spam, unsolicited bulk email, newsletter, unsubscribe") == {
        "spam": [Evidence("rule:spam", 0.875, "matched: spam, unsolicited, bulk email")]}


def test_two_rules_of_one_type_each_give_evidence() -> None:
    found = score_text("SSH brute force: failed password for root")
    assert found == {"hacking": [
        Evidence("rule:brute-force", 0.84, "matched: brute force, failed password"),
        Evidence("rule:login-service", 0.3, "matched: ssh"),
    ]}


def test_several_types_in_one_text() -> None:
    found = score_text("Phishing spam from your server")
    assert found == {"phishing": [Evidence("rule:phishing-words", 0.6, "matched: phishing")],
                     "spam": [Evidence("rule:spam", 0.5, "matched: spam")]}


def test_text_beyond_the_cap_is_not_read() -> None:
    assert score_text("x" * MAX_TEXT_CHARS + " phishing") == {}
    assert "phishing" in score_text("x" * (MAX_TEXT_CHARS - 20) + " phishing")


def test_a_large_hostile_text_is_read_in_one_pass() -> None:
    # a million characters of near-misses: bounded by the cap, no catastrophic backtracking
    found = score_text("failed passwor " * 70_000)
    assert found == {}


def test_a_rule_with_a_type_not_ours_is_refused() -> None:
    with pytest.raises(ValueError, match="emits 'spamming'"):
        rules._build([("rule:x", "spamming", 0.5, ("x",))])


def test_a_duplicate_rule_name_is_refused() -> None:
    with pytest.raises(ValueError, match="rule:x"):
        rules._build([("rule:x", "spam", 0.5, ("x",)), ("rule:x", "spam", 0.5, ("y",))])


# Letters whose case folds to another's (the Kelvin sign is a "k", the long s an "s", the dotted
# capital I, the dotless i), words the rules begin with, and the blanks between them.
_FOLDING = "KkſSsİıIiΣσςßẞ"
_WORDS = ["phish", "PHISHING", "credential", "login page", "Scan", "port scan", "DDoS",
          "malware", "Botnet", "spam", "SPAM", "unsolicited", "open resolver", "CVE-2024-1234",
          "Zugangsdaten", "ФИШИНГ", "данные карты", "Übertragung", "4", "419 mails", "harass",
          "fraud", "Counterfeit", "trade mark", "vulnerable", "sshd", "rdp", "csam"]


@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(alphabet=_FOLDING, max_size=3),
                          st.sampled_from([" ", "-", ".", "\n", "_", "é"])), max_size=30))
@settings(max_examples=300, deadline=None)
def test_a_rule_finds_what_its_phrases_alone_find(pieces: list[str]) -> None:
    """The lookahead on a rule's first characters turns no match away: each rule finds the
    same matches as the bare alternation of its phrases."""
    text = "".join(pieces)
    for rule, (_, _, _, phrases) in zip(RULES, rules._RULES, strict=True):
        joined = "|".join(f"(?:{p})" for p in phrases)
        bare = re.compile(rf"(?<!\w)(?:{joined})(?!\w)", re.IGNORECASE)
        assert [m.span() for m in rule.pattern.finditer(text)] == \
            [m.span() for m in bare.finditer(text)], (rule.name, text)

