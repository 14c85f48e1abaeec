"""Free text offers every address it names as a candidate, with what its line says it is: the
classifier keeps the ones that are ours (tests/classifier/test_offenders.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Candidate, Role
from abuse_desk.parsers.formats.text import TextParser

PARSER = TextParser()


def candidates(body: str, subject: str = "Abuse report") -> dict[str, Candidate]:
    raw = (f"From: soc@reporter.example\r\nTo: abuse@isp.example\r\nSubject: {subject}\r\n"
           "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
    report = PARSER.parse(Mail(raw)).reports[0]
    found: dict[str, Candidate] = {}
    for c in report.candidates:
        found.setdefault(c.value, c)
    return found


def test_labels_say_source_or_victim() -> None:
    got = candidates("Attacker IP: 198.51.100.7\nTarget: 192.0.2.50 (our web server)\n"
                     "Our honeypot 192.0.2.51 was hit.\n")
    assert got["198.51.100.7"].role is Role.OFFENDER
    assert got["192.0.2.50"].role is Role.VICTIM
    assert got["192.0.2.51"].role is Role.VICTIM


def test_an_arrow_points_from_the_source_to_the_victim() -> None:
    got = candidates("2026-11-23 03:12:09 UTC 203.0.113.9:51234 -> 192.0.2.10:22 SYN\n")
    assert got["203.0.113.9"].role is not Role.VICTIM
    assert got["203.0.113.9"].port == 51234
    assert got["192.0.2.10"].role is Role.VICTIM


def test_time_comes_from_the_addresss_own_line_with_its_zone() -> None:
    got = candidates("Log excerpt:\n"
                     "2026-11-22 23:05:07 +0100 sshd: Failed password from 203.0.113.5\n"
                     "2026-11-23 01:00:00 +0100 sshd: Failed password from 203.0.113.6\n")
    assert got["203.0.113.5"].occurred_at == datetime(2026, 11, 22, 22, 5, 7, tzinfo=UTC)
    assert got["203.0.113.6"].occurred_at == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_a_whois_range_is_not_a_host_and_its_dates_are_not_the_incident() -> None:
    body = ("inetnum:        198.51.100.0 - 198.51.100.255\n"
            "netname:        EXAMPLE-NET\n"
            "created:        2010-01-04T09:00:00Z\n"
            "last-modified:  2019-05-02T10:00:00Z\n\n"
            "NetRange:       203.0.113.0 - 203.0.113.255\n\n"
            "Nov 21 08:30:19 web1 sshd[811]: Invalid user admin from 198.51.100.143\n")
    got = candidates(body)
    for ip in ("198.51.100.0", "198.51.100.255", "203.0.113.0", "203.0.113.255"):
        assert got[ip].role is Role.RANGE, ip
    assert got["198.51.100.143"].role is Role.OFFENDER
    report = PARSER.parse(Mail(
        ("From: a@b.example\r\nSubject: x\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n"
         + body).encode())).reports[0]
    assert report.occurred_at is not None and report.occurred_at.year == 2026


def test_defanged_and_ipv6_forms_and_host_names() -> None:
    got = candidates("Phishing kit at hxxp://203[.]0[.]113[.]44/login and "
                     "https://[2001:db8:77::20]/x, mail relayed by IPv6:2001:db8:1f:7::44, "
                     "the form posts to collector.badsite.example.\n")
    assert {"203.0.113.44", "2001:db8:77::20", "2001:db8:1f:7::44",
            "collector.badsite.example"} <= set(got)


def test_a_control_server_is_not_the_infected_host() -> None:
    got = candidates("Infected host 198.51.100.20 contacted C2 server 192.0.2.99 at 10:00 UTC.\n")
    assert got["198.51.100.20"].role is Role.OFFENDER
    assert got["192.0.2.99"].role is Role.C2


def test_private_and_documentation_addresses_are_offered() -> None:
    got = candidates("Spam from 192.0.2.10 and from 10.1.2.3\n")
    assert got["192.0.2.10"].role is Role.OFFENDER
    assert got["10.1.2.3"].role is Role.OFFENDER


def test_a_defanged_colon_and_a_port() -> None:
    got = candidates("Bot at 2001[:]db8[:]4400[:]:7 and 198[.]51[.]100[.]9[:]8080\n")
    assert "2001:db8:4400::7" in got
    assert got["198.51.100.9"].port == 8080


def test_day_month_year_and_american_times() -> None:
    got = candidates("Login vom 23.11.2026 um 21:44:10 (MEZ) von 198.51.100.3\n"
                     "11/22/2026 01:22:51 PM EST DENY 203.0.113.4 -> 192.0.2.1\n")
    assert got["198.51.100.3"].occurred_at == datetime(2026, 11, 23, 20, 44, 10, tzinfo=UTC)
    assert got["203.0.113.4"].occurred_at == datetime(2026, 11, 22, 18, 22, 51, tzinfo=UTC)


def test_a_zone_declared_once_holds_for_the_lines_below() -> None:
    got = candidates("Server time zone is CET.\n"
                     "2026-11-22 17:02:11 Ban 203.0.113.17\n")
    assert got["203.0.113.17"].occurred_at == datetime(2026, 11, 22, 16, 2, 11, tzinfo=UTC)



def test_a_zone_given_for_pasted_logs_holds_for_their_syslog_lines() -> None:
    got = candidates("Our server was attacked. Logs (CET):\n\n"
                     "Nov 22 07:58:01 web01 sshd[2231]: Failed password for root from "
                     "198.51.100.77 port 51544 ssh2\n")
    assert got["198.51.100.77"].occurred_at == datetime(2026, 11, 22, 6, 58, 1, tzinfo=UTC)




def test_a_zone_in_a_tables_time_column_holds_for_its_rows() -> None:
    got = candidates("Indirizzo IP sorgente | Porta destinazione | Data e ora (CET)\n"
                     "198.51.100.150 | 3389 | 27/11/2026 09:12:44\n")
    assert got["198.51.100.150"].occurred_at == datetime(2026, 11, 27, 8, 12, 44, tzinfo=UTC)
    got = candidates("IP | Porta | Horário (BRT)\n198.51.100.152 | 23 | 27/11/2026 09:12:44\n")
    assert got["198.51.100.152"].occurred_at == datetime(2026, 11, 27, 12, 12, 44, tzinfo=UTC)


def test_a_zone_named_by_a_place_holds_with_its_daylight_saving() -> None:
    winter = candidates("Recibo spam desde 198.51.100.200. El último llegó el 25/11/2026 a "
                        "las 10:41 (hora de Madrid).\n")
    assert winter["198.51.100.200"].occurred_at == datetime(2026, 11, 25, 9, 41, tzinfo=UTC)
    summer = candidates("All times below are Eastern time.\n"
                        "2026-07-14 08:00:00 scan from 203.0.113.44\n")
    assert summer["203.0.113.44"].occurred_at == datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


def test_our_client_is_a_person_not_a_machine() -> None:
    got = candidates("Threats against our client from IP 2001:db8:9a::2.\n"
                     "Unserer Mandantin schrieb IP 198.51.100.8 Drohungen.\n"
                     "Our mail server 192.0.2.25 received it.\n")
    assert got["2001:db8:9a::2"].role is Role.OFFENDER
    assert got["198.51.100.8"].role is not Role.VICTIM
    assert got["192.0.2.25"].role is Role.VICTIM


def test_a_time_with_a_known_zone_wins_over_a_zoneless_one_for_the_same_address() -> None:
    body = ("Sent from 198.51.100.31 on 20/11/2026 at 08:05:44 (local time).\n\n"
            "Received: from mx.sender.example (mx.sender.example [198.51.100.31]) by\n"
            " mx.reporter.example; Fri, 20 Nov 2026 07:05:44 +0000\n")
    got = [c for c in _all(body) if c.value == "198.51.100.31" and c.occurred_at]
    assert {c.occurred_at for c in got} == {datetime(2026, 11, 20, 7, 5, 44, tzinfo=UTC)}


def test_two_digit_years_and_spaced_pm() -> None:
    got = candidates("22.11.26 03:12:41 Portscan: 198.51.100.5 -> TCP 22\n"
                     "el 22/11/2026 a las 10:03:17 p. m. UTC-6 desde 203.0.113.8\n")
    assert got["198.51.100.5"].occurred_at == datetime(2026, 11, 22, 3, 12, 41, tzinfo=UTC)
    assert got["203.0.113.8"].occurred_at == datetime(2026, 11, 23, 4, 3, 17, tzinfo=UTC)


def _all(body: str) -> list[Candidate]:
    raw = ("From: soc@reporter.example\r\nTo: abuse@isp.example\r\nSubject: spam\r\n"
           "Date: Fri, 20 Nov 2026 12:00:00 +0000\r\n\r\n" + body).encode()
    return PARSER.parse(Mail(raw)).reports[0].candidates
