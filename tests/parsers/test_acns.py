"""ACNS XML copyright notices: fixtures with their expected reports, hostile XML (entity bombs,
external entities, broken, truncated, huge, deep, many), and the ACNS mails of the shared
corpus."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import pytest
from abuse_desk.core.fields import iso_z
from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, ParsedReport, ParseResult
from abuse_desk.parsers.formats.acns import MAX_DOCUMENTS, MAX_ITEMS, AcnsParser
from abuse_desk.parsers.formats.dmca import DmcaParser
from abuse_desk.parsers.registry import Registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parsers.parser_support import summary
from tests.support import HANG_GUARD_S, corpus_or_skip

DATA = Path(__file__).parent / "data" / "acns"
REGISTRY = Registry([AcnsParser(), DmcaParser()])


def parse(raw: bytes) -> ParseResult:
    result = REGISTRY.parse(raw)
    assert result.disposition is Disposition.REPORT
    assert (result.format, result.parser) == ("acns", "acns")
    return result


def parse_file(name: str) -> list[ParsedReport]:
    result = parse((DATA / name).read_bytes())
    assert result.review_reasons == []
    return result.reports


def text_mail(body: str, subject: str = "Notice of Claimed Infringement",
              ctype: str = "text/plain; charset=utf-8") -> bytes:
    return (f"From: notices@rights.example\nTo: abuse@isp.example\nSubject: {subject}\n"
            f"Date: Mon, 01 Feb 2016 12:00:00 +0000\nMIME-Version: 1.0\n"
            f"Content-Type: {ctype}\n\n{body}\n").encode()


def acns(ip: str = "192.0.2.1", case: str = "C-1", extra: str = "") -> str:
    return (f'<?xml version="1.0"?>\n<Infringement xmlns="http://www.acns.net/ACNS">'
            f"<Case><ID>{case}</ID></Case><Source><TimeStamp>2016-02-01T10:00:00Z</TimeStamp>"
            f"<IP_Address>{ip}</IP_Address><Port>6881</Port><Type>BitTorrent</Type></Source>"
            f"{extra}</Infringement>")


# --- fixtures ---------------------------------------------------------------------------------


def test_pgp_signed_with_dash_escaped_markers() -> None:
    [report] = parse_file("pgp_dash_escaped.eml")
    assert summary(report) == {
        "format": "acns", "type_hint": "acns:p2p", "source_ip": "192.0.2.44",
        "source_port": 51413, "occurred_at": "2015-05-06T05:00:00Z",
        "occurred_raw": "2015-05-06T05-00-00UTC", "urls": [], "domains": [],
        "reporter_address": "notices@antipiracy.example", "reporter_org": "Example Films Ltd",
        "inferred": [], "warnings": [], "review_reasons": [],
    }
    extra = report.extra
    assert (extra["case_id"], extra["case_status"], extra["severity"]) == (
        "8800123", "Open", "Normal")
    assert (extra["source_type"], extra["base_type"], extra["protocol"]) == (
        "BitTorrent", "P2P", "BITTORRENT")
    assert extra["acns_version"] == "1.2"
    assert extra["complainant"] == {
        "entity": "Example Films Ltd", "contact": "Antipiracy Example - Compliance",
        "address": "1 Harbour Street Example City", "phone": "+1 555 0100",
        "email": "notices@antipiracy.example"}
    assert extra["service_provider"] == {"entity": "ISP Example", "email": "abuse@isp.example"}
    assert extra["items"] == [{
        "timestamp": "2015-05-06T05-00-00UTC", "title": "The Quiet Harbour", "artist": None,
        "filename": "The.Quiet.Harbour.2015.720p.mkv", "filesize": "1048576000", "url": None,
        "hash": "0123456789abcdef0123456789abcdef01234567", "type": None, "hash_type": "SHA1"}]
    # A line of the XML that began with "-" was dash-escaped by PGP: undone.
    assert extra["notes"] == "--seen on two trackers"
    assert extra["found_in"] == ["body"]
    assert extra["dmca_elements"] == {
        "signature": True, "work": True, "infringing_material": True, "contact": True,
        "good_faith": True, "accuracy_perjury": True}
    assert report.evidence is not None and report.evidence.startswith("<Infringement xmlns=")


def test_attached_base64_latin1_http_notice_with_defanged_url_base() -> None:
    [report] = parse_file("attached_http.eml")
    assert summary(report) == {
        "format": "acns", "type_hint": "acns:http", "source_ip": "198.51.100.23",
        "source_port": 80, "occurred_at": "2016-03-14T09:26:53Z",
        "occurred_raw": "2016-03-14T09:26:53.00Z",
        "urls": ["http://files.example.net/share/", "http://files.example.net/share/chanson.mp3",
                 "http://files.example.net/share/hiver.mp3"],
        "domains": ["files.example.net"],
        "reporter_address": "takedown@musique.example", "reporter_org": "Musique Exemple S.A.",
        "inferred": [], "warnings": [], "review_reasons": [],
    }
    assert report.extra["found_in"] == ["attachment WEB-2016-00042.xml"]
    assert [i["title"] for i in report.extra["items"]] == ["Chanson d'été", "Hiver"]
    assert report.extra["items"][0]["artist"] == "Les Exemples"
    assert report.extra["dns_name"] == "files.example.net"
    assert report.extra["acns_version"] is None


def test_the_same_notice_inline_and_attached_is_one_report() -> None:
    [report] = parse_file("inline_and_attached.eml")
    assert summary(report) == {
        "format": "acns", "type_hint": "acns:p2p", "source_ip": "2001:db8:77::15",
        "source_port": 6881, "occurred_at": "2014-12-01T06:51:33Z",
        "occurred_raw": "2014-12-01 06:51:33.0 GMT", "urls": [], "domains": [],
        "reporter_address": "p2p@studio.example", "reporter_org": "Studio Example Inc.",
        "inferred": [], "warnings": [], "review_reasons": [],
    }
    assert report.extra["found_in"] == ["body", "attachment 77-5551234.xml"]
    assert report.extra["source_type"] == "eDonkey"
    assert report.extra["acns_version"] == "1.0"  # namespace http://www.acns.net
    assert report.extra["items"][0]["hash_type"] == "ED2K"


def test_two_documents_prefixed_namespace_and_none_give_two_reports() -> None:
    first, second = parse_file("two_documents.eml")
    assert summary(first) == {
        "format": "acns", "type_hint": "acns:p2p", "source_ip": "203.0.113.7",
        "source_port": 40001, "occurred_at": "2016-02-01T10:00:00Z",
        "occurred_raw": "2016-02-01T10:00:00", "urls": [], "domains": [],
        "reporter_address": "batch@rights.example", "reporter_org": "Rights Example",
        "inferred": ["occurred_at"], "warnings": ["time without zone, taken as UTC"],
        "review_reasons": [],
    }
    assert summary(second) == {
        "format": "acns", "type_hint": "acns:usenet", "source_ip": "203.0.113.8",
        "source_port": 40002, "occurred_at": "2016-02-01T10:30:00Z",
        "occurred_raw": "2016-02-01T11:30:00+01:00", "urls": [], "domains": [],
        "reporter_address": "batch@rights.example", "reporter_org": "Rights Example",
        "inferred": [], "warnings": [], "review_reasons": [],
    }
    assert (first.extra["case_id"], second.extra["case_id"]) == ("A-1", "A-2")


def test_escaped_xml_in_an_html_body() -> None:
    [report] = parse_file("html_escaped.eml")
    assert (report.source_ip, report.type_hint, iso_z(report.occurred_at)) == (
        "203.0.113.99", "acns:p2p", "2017-02-14T22:00:00Z")
    assert report.reporter_org == "Web Rights & Co"
    assert (report.reporter_address, report.inferred) == (
        "notices@web-rights.example", ["reporter_address"])


def test_markmonitor_investigation_info_one_report_per_case() -> None:
    first, second = parse_file("markmonitor.eml")
    assert summary(first) == {
        "format": "acns", "type_hint": "acns:p2p", "source_ip": "198.51.100.31",
        "source_port": 52100, "occurred_at": "2012-02-13T14:05:09Z",
        "occurred_raw": "13/02/2012 14:05:09", "urls": [], "domains": [],
        "reporter_address": "antipiracy@markmonitor.example",
        "reporter_org": "MarkMonitor Antipiracy",
        "inferred": ["occurred_at", "reporter_address", "reporter_org"],
        "warnings": ["time without zone, taken as UTC"], "review_reasons": [],
    }
    assert first.extra["items"] == [{"title": "Example.Album.2012.zip", "filesize": "104857600",
                                     "hash": "89abcdef0123456789abcdef0123456789abcdef",
                                     "hash_type": "SHA1"}]
    assert (first.extra["variant"], first.extra["case_id"]) == ("markmonitor", "MM-0001")
    # 05/03/2012: day and month both possible; read DD/MM, as its senders write it, and flagged.
    assert (second.source_ip, second.source_port, iso_z(second.occurred_at)) == (
        "198.51.100.32", 6346, "2012-03-05T09:10:00Z")
    assert second.warnings == ["date '05/03/2012 09:10:00' is ambiguous: read as DD/MM/YYYY",
                               "time without zone, taken as UTC"]


# --- broken and hostile XML -------------------------------------------------------------------


def test_not_well_formed_xml_is_read_with_a_regex_and_sent_to_review() -> None:
    result = parse((DATA / "not_well_formed.eml").read_bytes())
    [report] = result.reports
    assert summary(report) == {
        "format": "acns", "type_hint": "acns:p2p", "source_ip": "192.0.2.99",
        "source_port": 6999, "occurred_at": "2016-02-02T09:15:00Z",
        "occurred_raw": "2016-02-02T09:15:00Z", "urls": [], "domains": [],
        "reporter_address": "notices@films.example", "reporter_org": "Films & Friends",
        "inferred": [], "warnings": [],
        "review_reasons": ["ACNS XML not well-formed (not well-formed (invalid token): line 3, "
                           "column 29): fields read with a regex"],
    }
    assert report.extra["case_id"] == "900-1"
    assert report.extra["items"][0]["title"] == "Fast & Loud"
    assert result.needs_review


def test_billion_laughs_is_refused_fast_and_nothing_is_expanded() -> None:
    started = time.monotonic()
    result = parse((DATA / "billion_laughs.eml").read_bytes())
    assert time.monotonic() - started < HANG_GUARD_S
    [report] = result.reports
    assert report.review_reasons == [
        "ACNS XML declares entities (lol): refused, nothing expanded; fields read with a regex"]
    assert report.source_ip == "192.0.2.66"  # a literal, still read
    dump = json.dumps(report.to_json())
    assert "lollol" not in dump
    assert report.extra["case_id"] is None and report.extra["source_type"] is None
    assert report.type_hint == "acns:unknown"
    assert len(report.evidence or "") <= ParsedReport.MAX_EVIDENCE


def test_external_entities_are_neither_read_nor_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser tried to connect")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    result = parse((DATA / "external_entity.eml").read_bytes())
    [report] = result.reports
    assert report.review_reasons == [
        "ACNS XML declares entities (passwd): refused, nothing expanded; fields read with a "
        "regex"]
    assert (report.source_ip, report.type_hint, report.extra["case_id"]) == (
        "192.0.2.67", "acns:p2p", "x-1")
    assert report.extra["notes"] is None
    assert "root:" not in json.dumps(report.to_json())
    assert report.extra["found_in"] == ["attachment notice.xml"]


def test_a_truncated_document_is_kept_with_what_a_regex_finds() -> None:
    body = acns("192.0.2.8").replace("</Infringement>", "")[:-30]
    [report] = parse(text_mail(body)).reports
    assert report.source_ip == "192.0.2.8"
    assert report.review_reasons[0].startswith("ACNS XML not well-formed (")
    assert report.review_reasons[1] == "ACNS XML in the body has no </Infringement>: truncated?"


def test_only_markers_and_no_document() -> None:
    body = "- ----Start ACNS XML\nIP 192.0.2.77 shared a film\n- ----End ACNS XML\n"
    [report] = parse(text_mail(body)).reports
    assert report.review_reasons == ["ACNS XML markers but no <Infringement> document between "
                                     "them"]
    assert (report.source_ip, report.inferred) == ("192.0.2.77", ["source_ip"])


def test_a_broken_inline_copy_beside_a_good_attachment_needs_no_review() -> None:
    good = acns("192.0.2.9", "C-9")
    broken = good.replace("<Port>", "<Port", 1)
    raw = (f"From: n@rights.example\nSubject: notice\nMIME-Version: 1.0\n"
           f'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
           f"{broken}\n--b\nContent-Type: application/xml\n"
           f"Content-Disposition: attachment; filename=C-9.xml\n\n{good}\n--b--\n").encode()
    result = parse(raw)
    assert result.review_reasons == []
    [report] = result.reports
    assert (report.source_ip, report.review_reasons) == ("192.0.2.9", [])
    assert report.extra["found_in"] == ["body", "attachment C-9.xml"]
    assert report.warnings[0].startswith("another copy of this notice could not be read: ACNS "
                                         "XML not well-formed")


def test_utf16_attachment_with_bom() -> None:
    doc = acns("2001:db8::9", extra="<Content><Item><Title>Ünïcode</Title></Item></Content>")
    data = base64.b64encode(doc.encode("utf-16")).decode()
    raw = (f"From: n@rights.example\nSubject: notice\nMIME-Version: 1.0\n"
           f'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
           f"see attachment\n--b\nContent-Type: application/octet-stream; name=n.xml\n"
           f"Content-Transfer-Encoding: base64\n\n{data}\n--b--\n").encode()
    [report] = parse(raw).reports
    assert (report.source_ip, report.extra["items"][0]["title"]) == ("2001:db8::9", "Ünïcode")


def test_more_documents_than_the_limit() -> None:
    body = "\n".join(acns(f"192.0.2.{n % 250 + 1}", f"C-{n}") for n in range(MAX_DOCUMENTS + 50))
    started = time.monotonic()
    result = parse(text_mail(body))
    assert time.monotonic() - started < HANG_GUARD_S
    assert len(result.reports) == MAX_DOCUMENTS
    assert result.review_reasons == [
        f"more than {MAX_DOCUMENTS} ACNS documents in one message: the rest were not read"]


def test_a_huge_document_is_not_parsed() -> None:
    notes = "<Notes>" + "x" * 600_000 + "</Notes>"
    started = time.monotonic()
    [report] = parse(text_mail(acns("192.0.2.10", extra=notes))).reports
    assert time.monotonic() - started < HANG_GUARD_S
    assert report.source_ip == "192.0.2.10"
    assert report.review_reasons == ["ACNS XML document larger than 524288 characters: not "
                                     "parsed, fields read with a regex"]
    assert len(report.evidence or "") <= ParsedReport.MAX_EVIDENCE
    assert len(report.extra["notes"]) <= 1000


def test_deep_nesting_and_many_items() -> None:
    deep = "<Notes>" + "<a>" * 50_000 + "deep" + "</a>" * 50_000 + "</Notes>"
    items = "<Content>" + "<Item><Title>t</Title></Item>" * (MAX_ITEMS + 10) + "</Content>"
    started = time.monotonic()
    [report] = parse(text_mail(acns("192.0.2.11", extra=items + deep))).reports
    assert time.monotonic() - started < HANG_GUARD_S
    assert (report.source_ip, report.review_reasons) == ("192.0.2.11", [])
    assert report.extra["notes"] == "deep"
    assert len(report.extra["items"]) == MAX_ITEMS
    assert report.warnings == [f"{MAX_ITEMS + 10} content items: the first {MAX_ITEMS} kept"]


def test_many_unclosed_roots_stay_linear() -> None:
    body = "<Infringement>" * 20_000 + "<IP_Address>192.0.2.12</IP_Address>"
    started = time.monotonic()
    result = parse(text_mail(body))
    assert time.monotonic() - started < HANG_GUARD_S
    assert len(result.reports) <= MAX_DOCUMENTS
    assert result.needs_review


def test_no_source_address_and_no_url_is_for_review() -> None:
    doc = ('<Infringement><Case><ID>N-1</ID></Case><Source><Type>BitTorrent</Type></Source>'
           "</Infringement>")
    [report] = parse(text_mail(doc)).reports
    assert report.source_ip is None
    assert report.review_reasons == ["ACNS notice names no source IP address, URL or host"]


def test_values_that_are_not_addresses_ports_or_times() -> None:
    doc = ("<Infringement><Source><TimeStamp>yesterday</TimeStamp>"
           "<IP_Address>peer.example.net</IP_Address><Port>99999</Port><Type>HTTP</Type>"
           "</Source></Infringement>")
    [report] = parse(text_mail(doc)).reports
    assert (report.source_ip, report.source_port, report.occurred_at) == (None, None, None)
    assert report.domains == ["peer.example.net"]
    assert report.warnings == [
        "Source IP_Address 'peer.example.net' is a host name, not an address",
        "Port '99999' is not a port number",
        "unreadable TimeStamp 'yesterday'",
        "no source IP address: URLs and hosts only"]
    assert report.review_reasons == []


def test_a_mail_without_acns_is_not_matched() -> None:
    mail = Mail(text_mail("Your customer at 192.0.2.1 infringes. <b>Infringement</b> notice"))
    assert not AcnsParser().matches(mail)


ACNS_SNIPPETS = [
    acns(), "- ----Start ACNS XML\n", "- ----End ACNS XML\n", "<Infringement>", "</Infringement>",
    "<!DOCTYPE Infringement [<!ENTITY a 'aaaa'>]>", "&a;", "<![CDATA[", "]]>", "<Source>",
    "<IP_Address>", "</IP_Address>", "&lt;Infringement&gt;", "<acns:Infringement xmlns:acns='x'>",
    "<InvestigationInfo><CaseList><Case><PeerIP>", "\x00", "é",
    "-----BEGIN PGP SIGNED MESSAGE-----\n",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(ACNS_SNIPPETS), st.text(max_size=30)), max_size=30),
       st.sampled_from(["text/plain", "text/html", "application/xml", "text/xml"]))
def test_random_acns_like_bodies_never_raise(pieces: list[str], ctype: str) -> None:
    result = REGISTRY.parse(text_mail("".join(pieces), ctype=ctype))
    assert not any(reason.startswith("parser ") for reason in result.review_reasons)
    assert result.errors == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_fixtures_never_raise(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(p.name for p in DATA.glob("*.eml"))))
    raw = bytearray((DATA / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 20))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    result = REGISTRY.parse(bytes(raw))
    assert not any(reason.startswith("parser ") for reason in result.review_reasons)
    assert result.errors == []


# --- the shared corpus ------------------------------------------------------------------------

# Per file, read by hand: (source IP, port, occurred_at, case ID, where the notice was found).
# IP-Echelon sends each notice inline (bare XML in a PGP-signed body) and attached: one report.
ECHELON = "abuseio/ip-echelon/ip-echelon_sample{}.eml"
BOTH = ["body", "attachment {}.xml"]
CORPUS_TABLE: dict[str, tuple[str, int, str, str]] = {
    ECHELON.format(1): ("192.168.2.200", 35657, "2015-11-13T20:35:03Z", "314620451"),
    ECHELON.format(2): ("192.168.2.212", 58688, "2015-11-16T05:45:49Z", "315134863"),
    ECHELON.format(3): ("192.168.2.100", 3326, "2015-11-18T05:02:09Z", "316896986"),
    ECHELON.format(4): ("192.168.2.100", 18525, "2015-11-17T11:05:41Z", "316273247"),
    ECHELON.format(5): ("192.168.2.200", 1037, "2015-11-18T11:05:53Z", "317063305"),
    ECHELON.format(6): ("192.168.3.2", 51413, "2015-11-18T08:25:43Z", "316967065"),
    ECHELON.format(7): ("192.168.3.2", 51413, "2015-11-18T17:46:51Z", "317258954"),
    ECHELON.format(8): ("192.168.3.2", 50321, "2015-11-27T11:58:43Z", "324415991"),
    ECHELON.format(9): ("192.168.3.2", 51413, "2015-11-13T03:39:39Z", "313124544"),
    ECHELON.format(10): ("192.168.3.3", 20849, "2015-11-12T23:12:02Z", "313627719"),
    ECHELON.format(11): ("192.168.3.3", 6112, "2015-11-01T23:04:46Z", "310121334"),
    ECHELON.format(12): ("192.168.3.3", 7396, "2015-11-09T14:11:51Z", "310783464"),
    ECHELON.format(13): ("192.168.3.3", 65267, "2015-11-10T01:04:55Z", "311208287"),
    ECHELON.format(14): ("192.168.3.6", 52988, "2015-11-11T12:00:50Z", "312028345"),
    ECHELON.format(15): ("192.168.3.6", 51413, "2015-11-13T03:39:39Z", "313124544"),
    ECHELON.format(16): ("192.168.3.3", 20849, "2015-11-12T23:12:02Z", "313627719"),
    # Irdeto / copyright-compliance.com: "- - ---Start ACNS XML" markers in a PGP-signed body,
    # Source/Type BitTorrent without SubType, TimeStamp with ".000Z".
    "abuseio/copyrightcompliance/Copyrightcompliance_Example_1.eml":
        ("10.0.2.100", 34890, "2015-09-04T13:19:53Z", "312-200234534"),
    "abuseio/copyrightcompliance/Copyrightcompliance_Example_2.eml":
        ("fdf1:cb9d:f59e:19b0:2:3:ff33:345", 34890, "2015-09-04T13:19:53Z", "312-200234534"),
}



@pytest.mark.parametrize("name", sorted(CORPUS_TABLE))
def test_corpus_acns_mails(name: str) -> None:
    path = corpus_or_skip() / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the corpus")
    ip, port, occurred, case_id = CORPUS_TABLE[name]
    result = parse(path.read_bytes())
    assert result.review_reasons == []
    [report] = result.reports
    assert (report.source_ip, report.source_port, iso_z(report.occurred_at),
            report.extra["case_id"], report.type_hint) == (ip, port, occurred, case_id,
                                                           "acns:p2p")
    assert (report.review_reasons, report.warnings, report.inferred) == ([], [], [])
    if "ip-echelon" in name:
        assert report.extra["found_in"] == ["body", f"attachment {case_id}.xml"]
        assert report.reporter_address == "copyright@ip-echelon.com"
        assert report.extra["acns_version"] == "1.2"
    else:
        assert report.extra["found_in"] == ["body"]
        assert (report.reporter_org, report.reporter_address) == (
            "Irdeto USA, Inc", "starz_media@copyright-compliance.com")
        assert report.extra["items"][0]["filename"] == "Power 2014 S01E02 HDTV x264-KILLERS [eztv]"


def test_no_other_corpus_mail_is_taken_for_acns() -> None:
    root = corpus_or_skip()
    taken = [str(p.relative_to(root)) for p in sorted(root.rglob("*.eml"))
             if str(p.relative_to(root)) not in CORPUS_TABLE
             and AcnsParser().matches(Mail(p.read_bytes()))]
    assert taken == []
