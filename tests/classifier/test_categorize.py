"""categorize(): a format that states its type decides with confidence 1.0; free text combines
rules, model and weak hints, its confidence calibrated; review reasons; the spamvertising
override."""

from __future__ import annotations

import pytest
from abuse_desk.classifier.categorize import (
    NOT_ABUSE,
    absorb,
    calibrated,
    categorize,
    is_not_abuse,
    needs_review,
    spamvertising_override,
    support,
)
from abuse_desk.classifier.model import TextModel
from abuse_desk.core.policy import Classification, Evidence


def ev(c: Classification) -> list[tuple[str, float]]:
    """The evidence without the calibration note (its weight is the confidence)."""
    return [(e.name, e.weight) for e in c.evidence if e.name != "calibration"]


# -- structured hints ---------------------------------------------------------------------------


@pytest.mark.parametrize(("hint", "category", "type_", "table"), [
    ("arf:abuse", "spam", "spam", 0.95),
    ("arf:virus", "spam", "virus-spam", 0.9),
    ("xarf:LoginAttack", "network", "hacking", 0.95),
    ("xarf4:connection/port_scan", "network", "port-scan", 0.95),
    ("xarf4:content/csam", "other", "illegal", 0.95),
    ("acns:p2p", "other", "copyright", 0.95),
    ("dmca:notice", "other", "copyright", 0.95),
    ("shadowserver:scan_ssh", "network", "open-service", 0.9),
    ("shadowserver:event4_honeypot_brute_force", "network", "hacking", 0.9),
    ("spamcop:spamvertised", "spam", "spamvertising", 0.95),
])
def test_a_known_structured_hint_decides(hint: str, category: str, type_: str,
                                         table: float) -> None:
    # the text says something else entirely: the format states the type, and that is it
    c = categorize(hint, "phishing page stealing credentials", None, 0.6)
    assert (c.category, c.type, c.confidence) == (category, type_, 1.0)
    assert [e.name for e in c.evidence][1:] == ["stated-by-format"]
    assert c.evidence[0].name.startswith("table:")
    assert c.evidence[0].weight == table


def test_table_evidence_is_named() -> None:
    c = categorize("xarf4:connection/port_scan", "")
    assert c.to_json() == {
        "category": "network", "type": "port-scan", "confidence": 1.0,
        "evidence": [{"name": "table:xarf4:connection/port_scan", "weight": 0.95,
                      "detail": "xarf4:connection/port_scan -> port-scan"},
                     {"name": "stated-by-format", "weight": 1.0,
                      "detail": "xarf4:connection/port_scan: the report's format states its "
                                "type"}]}


def test_not_spam_is_not_abuse() -> None:
    c = categorize("arf:not-spam", "I clicked the wrong button, this is not spam")
    assert (c.category, c.type, c.confidence) == (None, None, 0.95)
    assert ev(c) == [("table:arf:not-spam", 0.95), ("not-abuse", 0.95)]
    assert is_not_abuse(c)
    assert needs_review(c, 0.6) is None
    assert NOT_ABUSE == "not-abuse"


def test_a_vague_hint_below_the_threshold_lets_the_text_decide() -> None:
    c = categorize("arf:other", "fake bank login page asking for credentials")
    assert (c.type, c.confidence) == ("phishing", round(calibrated(0.936, 0.5), 3))
    assert ev(c) == [("rule:phishing-words", 0.936), ("competing:spam", 0.5)]


def test_a_vague_hint_alone_keeps_its_type_and_low_confidence() -> None:
    c = categorize("arf:other", "")
    assert (c.category, c.type, c.confidence) == ("spam", "spam", 0.5)
    assert ev(c) == [("table:arf:other", 0.5)]
    assert needs_review(c, 0.6) == "category confidence 0.50 below threshold 0.60"


def test_the_threshold_says_when_a_vague_hint_decides() -> None:
    text = "fake bank login page asking for credentials"
    assert categorize("arf:other", text, threshold=0.4).type == "spam"
    assert categorize("arf:other", text, threshold=0.6).type == "phishing"


def test_a_text_hint_never_decides_on_its_own() -> None:
    text = "SSH brute force, failed password for root"
    c = categorize("text:spam", text, threshold=0.3)
    assert c.type == "hacking"
    # the parser's keyword guess comes from the words the rules read: it adds nothing to them
    assert ev(c) == [("rule:brute-force", 0.84), ("rule:login-service", 0.3)]
    assert c == categorize(None, text, threshold=0.3)


def test_a_text_hint_is_weak_evidence_when_no_rule_fired() -> None:
    c = categorize("text:phishing", "")
    assert (c.type, c.confidence) == ("phishing", 0.45)
    assert ev(c) == [("table:text:phishing", 0.45)]
    assert ev(categorize("text:phishing", "Phishing site")) == [("rule:phishing-words", 0.6)]


def test_an_unknown_hint_falls_back_to_the_text() -> None:
    c = categorize("arf:xarf", "Phishing site asking for credentials")
    assert (c.category, c.type) == ("other", "phishing")
    assert c.confidence == round(calibrated(0.84, 0.0), 3)
    assert ev(c) == [("rule:phishing-words", 0.84)]


# -- free text ----------------------------------------------------------------------------------


def test_nothing_to_go_on() -> None:
    c = categorize(None, "")
    assert (c.category, c.type, c.confidence, c.evidence) == (None, None, 0.0, [])
    assert not is_not_abuse(c)
    assert needs_review(c, 0.6) == "category confidence 0.00 below threshold 0.60"


def test_one_type_with_rule_evidence() -> None:
    c = categorize(None, "SSH brute force, failed password for root")
    assert (c.category, c.type) == ("network", "hacking")
    assert c.confidence == round(calibrated(0.888, 0.0), 3)  # 1 - 0.16 * 0.7
    assert ev(c) == [("rule:brute-force", 0.84), ("rule:login-service", 0.3)]
    assert c.evidence[-1] == Evidence("calibration", c.confidence,
                                      "support 0.888, runner-up 0.000")
    assert needs_review(c, 0.6) is None


def test_a_runner_up_lowers_the_confidence() -> None:
    c = categorize(None, "Spam with a phishing link")
    alone = categorize(None, "a phishing link")
    assert (c.type, alone.type) == ("phishing", "phishing")
    assert c.confidence == round(calibrated(0.6, 0.5), 3) < alone.confidence
    assert c.evidence[:2] == [
        Evidence("rule:phishing-words", 0.6, "matched: phishing"),
        Evidence("competing:spam", 0.5, "rule:spam"),
    ]
    # two types with as much evidence each: a coin toss, which a person decides
    tied = categorize(None, "phishing and malware")
    assert tied.confidence < 0.6
    assert needs_review(tied, 0.6) == f"category confidence {tied.confidence:.2f} below " \
        "threshold 0.60"


def test_virus_spam_absorbs_malware_and_spam_words() -> None:
    c = categorize(None, "We received emails with an infected attachment containing a trojan")
    assert (c.category, c.type) == ("spam", "virus-spam")
    assert ev(c) == [("rule:malware", 0.84), ("rule:virus-spam", 0.65)]
    assert c.confidence == round(calibrated(0.944, 0.0), 3)


def test_without_its_own_rule_a_narrow_type_absorbs_nothing() -> None:
    assert categorize(None, "infected with a trojan").type == "malware"
    spam = Evidence("rule:spam", 0.5)
    assert absorb({"spam": [spam]}) == {"spam": [spam]}
    sv = Evidence("rule:spamvertising", 0.7)
    assert absorb({"spam": [spam], "spamvertising": [sv]}) == {"spamvertising": [sv, spam]}


def test_multilingual_text() -> None:
    assert categorize(None, "Unerwünschte Werbemails von Ihrem Server").type == "spam"
    assert categorize(None, "Gefälschte Bankseite stiehlt Zugangsdaten").type == "phishing"
    assert categorize(None, "tentatives de connexion par force brute").type == "hacking"
    assert categorize(None, "ongevraagde e-mail, ik wil me afmelden").type == "spam"


def test_support_is_a_noisy_or() -> None:
    assert support([]) == 0.0
    assert support([Evidence("a", 0.5), Evidence("b", 0.5)]) == 0.75
    assert support([Evidence("a", 1.7)]) == 1.0


# -- the model ----------------------------------------------------------------------------------


def trained(n: int) -> TextModel:
    model = TextModel()
    for _ in range(n):
        model.learn("seedbox sharing films of our studio", "copyright")
        model.learn("beaconing to a controller domain", "malware")
    return model


def test_the_model_gives_named_evidence_scaled_by_what_it_has_learnt() -> None:
    text = "seedbox with our films"  # no rule knows these words
    assert categorize(None, text).type is None
    few = categorize(None, text, trained(1))
    many = categorize(None, text, trained(15))
    assert (few.type, many.type) == ("copyright", "copyright")
    assert [e.name for e in few.evidence] == ["model", "calibration"]
    assert few.confidence < 0.6  # two examples of thirty: hardly trusted
    assert few.evidence[0].weight < 0.1
    assert many.evidence[0].weight == 0.9  # capped
    assert many.confidence == round(calibrated(0.9, 0.0), 3)
    assert many.evidence[0].detail == "copyright p=0.99 after 30 examples"


def test_an_empty_model_changes_nothing() -> None:
    text = "Spam with a phishing link"
    assert categorize(None, text, TextModel()) == categorize(None, text)


def test_model_and_rules_disagreeing_leave_a_doubt() -> None:
    c = categorize(None, "phishing page on a seedbox with our films", trained(30))
    assert (c.type, c.confidence) == ("copyright", round(calibrated(0.9, 0.6), 3))
    assert c.confidence < categorize(None, "seedbox with our films", trained(30)).confidence
    assert ev(c) == [("model", 0.9), ("competing:phishing", 0.6)]


def test_a_learnt_not_abuse_never_drops_a_report() -> None:
    model = TextModel()
    for _ in range(30):
        model.learn("newsletter I subscribed to myself", NOT_ABUSE)
    alone = categorize(None, "I subscribed to this myself", model)
    assert (alone.type, alone.confidence) == (None, 0.0)
    assert not is_not_abuse(alone)
    assert needs_review(alone, 0.6) == "category confidence 0.00 below threshold 0.60"
    spam = categorize(None, "newsletter I subscribed to", model)
    assert (spam.type, spam.confidence) == ("spam", round(calibrated(0.5, 0.9), 3))
    assert spam.confidence < 0.6
    assert ev(spam) == [("rule:spam", 0.5), ("competing:not-abuse", 0.9)]


def test_categorize_is_deterministic() -> None:
    model = trained(5)
    texts = ["seedbox", "phishing spam", "ssh", "beaconing spam", ""]
    first = [categorize(None, t, model).to_json() for t in texts]
    again = [categorize(None, t, TextModel.from_json(model.to_json())).to_json() for t in texts]
    assert first == again


# -- needs_review -------------------------------------------------------------------------------


@pytest.mark.parametrize(("confidence", "threshold", "reason"), [
    (0.42, 0.6, "category confidence 0.42 below threshold 0.60"),
    (0.59, 0.6, "category confidence 0.59 below threshold 0.60"),
    (0.6, 0.6, None),
    (0.95, 0.6, None),
    (0.95, 0.97, "category confidence 0.95 below threshold 0.97"),
])
def test_needs_review(confidence: float, threshold: float, reason: str | None) -> None:
    c = Classification("spam", "spam", confidence, [Evidence("rule:spam", confidence)])
    assert needs_review(c, threshold) == reason


# -- spamvertising ------------------------------------------------------------------------------


def spam() -> Classification:
    return Classification("spam", "spam", 0.95, [Evidence("table:arf:abuse", 0.95)])


def test_spam_from_elsewhere_advertising_a_site_here_is_spamvertising() -> None:
    original = spam()
    c = spamvertising_override(original, ip_is_ours=False, url_is_ours=True)
    assert (c.category, c.type, c.confidence) == ("spam", "spamvertising", 0.95)
    assert ev(c) == [("table:arf:abuse", 0.95), ("rule:spamvertising-site-hosted-here", 1.0)]
    assert original.type == "spam"  # not changed in place
    assert len(original.evidence) == 1


@pytest.mark.parametrize(("ip_is_ours", "url_is_ours"), [(True, True), (True, False),
                                                         (False, False)])
def test_spam_from_our_ip_or_advertising_nothing_of_ours_stays_spam(
        ip_is_ours: bool, url_is_ours: bool) -> None:
    c = spamvertising_override(spam(), ip_is_ours=ip_is_ours, url_is_ours=url_is_ours)
    assert c == spam()


@pytest.mark.parametrize("type_", ["virus-spam", "phishing", "spamvertising", None])
def test_only_spam_is_overridden(type_: str | None) -> None:
    c = Classification("spam" if type_ else None, type_, 0.9, [])
    assert spamvertising_override(c, ip_is_ours=False, url_is_ours=True) is c
