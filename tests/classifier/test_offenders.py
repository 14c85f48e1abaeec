"""The offender decided by our own space: of the addresses a report names (its candidates), the
ones the customer file or ``classifier.own_networks`` say are ours; never a victim, a relay, the
reporter's own or the end of a WHOIS range; one report per offender of ours."""

from __future__ import annotations

from datetime import UTC, datetime

from abuse_desk.classifier.classify import Classifier
from abuse_desk.classifier.customers import CustomerIndex
from abuse_desk.classifier.offenders import choose, in_networks, parse_networks
from abuse_desk.classifier.resources import Resource, ResourceRow
from abuse_desk.classifier.trust import TrustPolicy
from abuse_desk.core.config import ClassifierConfig
from abuse_desk.parsers.base import Candidate, ParsedReport, Role

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ROW_TIME = datetime(2026, 11, 19, 23, 5, 7, tzinfo=UTC)


def row(cid: int, text: str) -> ResourceRow:
    r = Resource.parse(text, None, None)
    return ResourceRow(cid, f"C-{cid}", r.kind, r.value, r.port_low, r.port_high,
                       r.valid_from, r.valid_until)


def classifier(*resources: str, own_networks: list[str] | None = None) -> Classifier:
    index = CustomerIndex.from_rows([row(n, text) for n, text in enumerate(resources, 1)])
    config = ClassifierConfig(own_networks=own_networks or [])
    return Classifier(config, index=lambda: index, model=lambda: None,
                      trust=TrustPolicy([]))


def report(*candidates: Candidate, source_ip: str | None = None) -> ParsedReport:
    return ParsedReport(format="text", source_ip=source_ip, occurred_at=AT,
                        candidates=list(candidates))


def test_the_candidate_that_is_ours_is_the_offender_not_the_first_named() -> None:
    # "our server 198.51.100.7 was attacked from 203.0.113.9": the parser took the first one
    got = classifier("203.0.113.9").offenders([report(
        Candidate("198.51.100.7", Role.MENTIONED, 0.5),
        Candidate("203.0.113.9", Role.MENTIONED, 0.5, port=51234, occurred_at=ROW_TIME),
        source_ip="198.51.100.7")], AT)
    assert [(r.source_ip, r.source_port, r.occurred_at) for r in got] == [
        ("203.0.113.9", 51234, ROW_TIME)]
    assert got[0].extra["offender_from"]["value"] == "203.0.113.9"


def test_victims_relays_reporters_and_range_ends_are_never_the_offender_even_when_ours() -> None:
    ours = classifier("192.0.2.0/24")
    for role in (Role.VICTIM, Role.RELAY, Role.REPORTER, Role.RANGE):
        got = ours.offenders([report(Candidate("192.0.2.10", role, 0.9),
                                     Candidate("203.0.113.5", Role.OFFENDER, 0.8),
                                     source_ip="203.0.113.5")], AT)
        assert [r.source_ip for r in got] == ["203.0.113.5"], role  # none ours: as it was


def test_several_of_our_hosts_give_one_report_each_with_their_own_port_and_time() -> None:
    got = classifier("198.51.100.0/28").offenders([report(
        Candidate("192.0.2.180", Role.VICTIM, 0.1),
        Candidate("198.51.100.3", Role.OFFENDER, 0.8, port=389, occurred_at=ROW_TIME),
        Candidate("198.51.100.4", Role.OFFENDER, 0.8, port=389),
        Candidate("198.51.100.3", Role.MENTIONED, 0.5))], AT)
    assert [(r.source_ip, r.source_port, r.occurred_at) for r in got] == [
        ("198.51.100.3", 389, ROW_TIME), ("198.51.100.4", 389, AT)]


def test_documentation_and_private_ranges_count_when_ours() -> None:
    got = classifier(own_networks=["10.20.0.0/16", "192.0.2.0/24"]).offenders([report(
        Candidate("203.0.113.1", Role.MENTIONED, 0.5),
        Candidate("10.20.3.4", Role.MENTIONED, 0.5),
        Candidate("192.0.2.10", Role.OFFENDER, 0.8))], AT)
    assert [r.source_ip for r in got] == ["192.0.2.10", "10.20.3.4"]  # labelled first


def test_none_ours_keeps_the_parsers_pick_or_else_the_best_labelled() -> None:
    nobody = classifier()
    kept = report(Candidate("203.0.113.1", Role.MENTIONED, 0.5), source_ip="203.0.113.1")
    assert nobody.offenders([kept], AT) == [kept]
    # the parser's pick is a victim: the best-labelled candidate instead, so it says who
    got = nobody.offenders([report(Candidate("192.0.2.1", Role.VICTIM, 0.1),
                                   Candidate("203.0.113.2", Role.MENTIONED, 0.5),
                                   Candidate("203.0.113.3", Role.OFFENDER, 0.8),
                                   source_ip="192.0.2.1")], AT)
    assert [r.source_ip for r in got] == ["203.0.113.3"]


def test_a_host_name_that_is_ours_becomes_the_reports_url_host() -> None:
    got = classifier("shop.example").offenders([report(
        Candidate("203.0.113.1", Role.MENTIONED, 0.5),
        Candidate("shop.example", Role.MENTIONED, 0.4), source_ip="203.0.113.1")], AT)
    assert [(r.source_ip, r.domains) for r in got] == [(None, ["shop.example"])]


def test_a_chosen_candidate_answers_the_parsers_no_offender_reason() -> None:
    r = report(Candidate("anon.example", Role.MENTIONED, 0.4))
    r.review_reasons.append("no offender found in the text")
    got = classifier("anon.example").offenders([r], AT)
    assert got[0].review_reasons == []


def test_reports_without_candidates_pass_unchanged() -> None:
    r = ParsedReport(format="arf", source_ip="203.0.113.1")
    assert choose(r, lambda c, at: True) == [r]


def test_expansion_is_bounded() -> None:
    many = [Candidate(f"198.51.100.{n}", Role.OFFENDER, 0.8) for n in range(1, 101)]
    got = choose(report(*many), lambda c, at: True, limit=5)
    assert len(got) == 5
    assert "100 of our addresses named: the first 5 taken" in got[0].warnings


def test_own_networks() -> None:
    nets = parse_networks(["192.0.2.0/24", "2001:db8::/32"])
    assert in_networks("192.0.2.77", nets)
    assert in_networks("::ffff:192.0.2.77", nets)
    assert in_networks("2001:db8:1::5", nets)
    assert not in_networks("198.51.100.1", nets)
    assert not in_networks("shop.example", nets)


def _text_report(body: str, subject: str = "Abuse") -> ParsedReport:
    from abuse_desk.core.mail import Mail
    from abuse_desk.parsers.formats.text import TextParser

    raw = (f"From: admin@victim.example\r\nTo: abuse@isp.example\r\nSubject: {subject}\r\n"
           "Date: Fri, 20 Nov 2026 10:00:00 +0000\r\n\r\n" + body).encode()
    return TextParser().parse(Mail(raw)).reports[0]


def test_free_text_spam_from_a_documentation_address_that_is_ours() -> None:
    # The README's own example: the customer file says 192.0.2.10 is ours.
    desk = classifier("192.0.2.10")
    got = desk.offenders([_text_report("We received spam from 192.0.2.10, please stop it.")],
                         AT)
    assert [r.source_ip for r in got] == ["192.0.2.10"]
    assert desk.resolve(got[0], AT).external_id == "C-1"


def test_free_text_log_naming_two_of_our_hosts_and_a_victim_gives_two_reports() -> None:
    body = ("Our server 192.0.2.80 was attacked. Firewall log (times UTC):\n"
            "2026-11-19 23:05:07 DROP 198.51.100.3:40000 -> 192.0.2.80:22\n"
            "2026-11-19 23:07:00 DROP 198.51.100.4:40001 -> 192.0.2.80:22\n")
    got = classifier("198.51.100.0/24", "192.0.2.80").offenders([_text_report(body)], AT)
    assert [(r.source_ip, r.source_port, r.occurred_at) for r in got] == [
        ("198.51.100.3", 40000, ROW_TIME),
        ("198.51.100.4", 40001, datetime(2026, 11, 19, 23, 7, tzinfo=UTC))]


def test_own_networks_is_configured_as_cidrs() -> None:
    import pytest
    from abuse_desk.core.config import ConfigError, build_config

    config = build_config({"classifier": {"own_networks": ["192.0.2.0/24", "2001:db8::/32"]}},
                          env={})
    assert config.classifier.own_networks == ["192.0.2.0/24", "2001:db8::/32"]
    with pytest.raises(ConfigError, match="own_networks"):
        build_config({"classifier": {"own_networks": ["not a network"]}}, env={})


def test_an_address_named_as_the_victim_is_not_the_offender_for_being_named_again() -> None:
    # "our honeypot 192.0.2.5 ... hits on 192.0.2.5": both ours here, neither accused
    got = classifier("192.0.2.0/24", "203.0.113.9").offenders([report(
        Candidate("192.0.2.5", Role.VICTIM, 0.1),
        Candidate("192.0.2.5", Role.MENTIONED, 0.5),
        Candidate("203.0.113.9", Role.MENTIONED, 0.5))], AT)
    assert [r.source_ip for r in got] == ["203.0.113.9"]


def test_a_pasted_whois_block_of_our_own_range_accuses_only_the_logged_host() -> None:
    body = ("Port scan from our neighbour, log in UTC:\n"
            "2026-11-19 23:05:07 DENY TCP 198.51.100.143:61000 -> 192.0.2.33:22\n\n"
            "NetRange:       198.51.100.0 - 198.51.100.255\n"
            "CIDR:           198.51.100.0/24\n"
            "RegDate:        2018-04-02\n"
            "Ref:            https://rdap.arin.example/registry/ip/198.51.100.0\n"
            "% Abuse contact for '198.51.100.0 - 198.51.100.255' is 'abuse@isp.example'\n"
            "inetnum:        198.51.100.0 - 198.51.100.255\n"
            "created:        2010-01-04T09:00:00Z\n")
    got = classifier("198.51.100.0/24").offenders([_text_report(body)], AT)
    assert [(r.source_ip, r.occurred_at) for r in got] == [("198.51.100.143", ROW_TIME)]


def test_the_parsers_own_source_ip_counts_when_its_candidates_leave_it_out() -> None:
    got = classifier("203.0.113.1").offenders([report(
        Candidate("198.51.100.2", Role.MENTIONED, 0.5), source_ip="203.0.113.1")], AT)
    assert [r.source_ip for r in got] == ["203.0.113.1"]
