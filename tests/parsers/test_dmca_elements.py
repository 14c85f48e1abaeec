"""The six 512(c)(3)(A) elements as agents write them: numbered lists, quoted titles, works
described or listed, locations as URLs, IPs and torrent hashes, good faith and perjury in other
words and languages, typed and "/s/" signatures; and an incomplete notice flagged, not parked."""

from __future__ import annotations

import pytest
from abuse_desk.parsers.base import Disposition
from abuse_desk.parsers.formats.dmca import DmcaParser, dmca_elements, good_faith_statement
from abuse_desk.parsers.registry import Registry

REGISTRY = Registry([DmcaParser()])


def mail(body: str, subject: str = "Notice of copyright infringement",
         sender: str = "Rights Desk <rights@owner.example>", extra: str = "") -> bytes:
    return (f"From: {sender}\nTo: abuse@isp.example\nSubject: {subject}\n{extra}"
            f"Date: Fri, 01 Mar 2024 10:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n"
            f"\n{body}\n").encode()


def elements(text: str, **kw: bool) -> dict[str, bool]:
    return dmca_elements(text, located=kw.pop("located", True), **kw)


@pytest.mark.parametrize("text", [
    "1. Identification of the copyrighted work: Example Exam Review 2026 (video course)",
    "(ii) Copyrighted work(s): the album Northern Lights",
    "Werk: Der lange Winter (Spielfilm, 2025)",
    "Obra: Amor en la sierra, temporada 1",
    "Event: Grand Prix of Example, live broadcast",
    'Her photograph "Lake at dawn" is used without a licence on the page below.',
    "our client's telenovela «Amor en Cusco» is offered in full",
    "We own the copyrights in the course and the accompanying workbooks.",
    "A former contractor uploaded our proprietary firmware source code.",
    "The works listed in the attached spreadsheet are infringed.",
    "titular de los derechos audiovisuales de las competiciones",
])
def test_a_work_is_identified_in_many_ways(text: str) -> None:
    assert elements(text)["work"]


@pytest.mark.parametrize("text", [
    "Please remove the material at the URL below.",
    'Subject line "Important" in the header',
])
def test_no_work_without_one(text: str) -> None:
    assert not elements(text)["work"]


def test_a_reported_url_locates_the_material() -> None:
    text = "Please disable access to the page below."
    assert elements(text, url_located=True)["infringing_material"]
    assert not elements(text, located=True)["infringing_material"]  # an IP alone says less
    assert elements("the file was shared, info hash below", located=True)["infringing_material"]
    assert not elements("infringing copies", located=False)["infringing_material"]


@pytest.mark.parametrize("text", [
    "We have a good faith belief that the use is not authorized.",
    "We state in good faith that the publication is not authorised.",
    "Declaramos de buena fe que el uso del material no está autorizado.",
    "Nous déclarons de bonne foi que cette utilisation n'est pas autorisée.",
    "Wir erklären in gutem Glauben, dass die Nutzung nicht erlaubt ist.",
])
def test_good_faith_in_other_words_and_languages(text: str) -> None:
    assert good_faith_statement(text)


def test_asking_in_good_faith_is_no_good_faith_statement() -> None:
    assert not good_faith_statement("in good faith we ask you to look at this")


@pytest.mark.parametrize("text", [
    "The information in this notification is accurate, and under penalty of perjury, I am "
    "authorized to act on behalf of the owner.",
    "Declaramos, bajo pena de perjurio, que la información es exacta y que estamos "
    "autorizados para actuar en nombre del titular.",
    "Nous certifions sous peine de parjure que ces informations sont exactes et que nous "
    "sommes autorisés à agir au nom du titulaire.",
])
def test_accuracy_and_perjury_in_other_languages(text: str) -> None:
    assert elements(text)["accuracy_perjury"]


def test_accuracy_without_perjury_is_not_enough() -> None:
    assert not elements("the information above is accurate and I am authorised to act for "
                        "the owner")["accuracy_perjury"]


@pytest.mark.parametrize("text", [
    "Respectfully,\n\n/s/ Jane Q. Roe\nJane Q. Roe, Partner",
    "Firma electrónica: /s/ Rodrigo Paredes",
    "Atentamente,\nRodrigo Paredes Quispe\nAbogado",
    "Mit freundlichen Grüßen\nAnna Schmidt\nRechtsabteilung",
    "We ask you to disable access.\n\nJana Kühn\nGeneral Counsel, Example Robotics GmbH",
])
def test_signatures_as_agents_type_them(text: str) -> None:
    assert elements(text)["signature"]


def test_a_team_name_under_no_closing_is_no_signature() -> None:
    assert not elements("Please act.\n\nContent Protection Team\nExample Media")["signature"]


def test_the_address_the_notice_came_from_is_contact_information() -> None:
    assert not elements("no address in the text")["contact"]
    assert elements("no address in the text", reply_address=True)["contact"]


def test_a_complete_notice_in_spanish_has_all_six() -> None:
    body = ("En nombre de Contenidos Ejemplo S.A., titular de los derechos de la serie "
            "«Amor en la sierra», les notificamos que el sitio en la IP 192.0.2.60 ofrece los "
            "episodios sin autorización:\n  http://192.0.2.60/series/amor/t1/\n\n"
            "Declaramos de buena fe que el uso no está autorizado por el titular. Declaramos, "
            "bajo pena de perjurio, que la información es exacta y que estamos autorizados "
            "para actuar en nombre del titular.\n\nFirma electrónica: /s/ Ana Ruiz\n")
    result = REGISTRY.parse(mail(body, subject="Aviso DMCA"))
    [report] = result.reports
    assert all(report.extra["dmca_elements"].values())
    assert "dmca_incomplete" not in report.extra
    assert not report.needs_review


def test_a_torrent_info_hash_is_kept_and_locates_the_material() -> None:
    body = ("DMCA notice. The file Example.Film.2025.1080p was shared by IP address 192.0.2.61 "
            "port 51413.\nInfohash: 0123456789abcdef0123456789abcdef01234567\n"
            "magnet:?xt=urn:btih:89ABCDEF0123456789ABCDEF0123456789ABCDEF&dn=x\n")
    [report] = REGISTRY.parse(mail(body)).reports
    assert report.extra["infohashes"] == ["0123456789abcdef0123456789abcdef01234567",
                                          "89abcdef0123456789abcdef0123456789abcdef"]
    assert report.extra["dmca_elements"]["infringing_material"]


def test_an_incomplete_notice_is_a_report_flagged_for_the_specialist_not_parked() -> None:
    body = ("Our photographs are used without a licence on the page below. Please remove them."
            "\n  http://www.example-shop.example/gallery/\n\nPhoto Agency Example\n")
    result = REGISTRY.parse(mail(body, subject="Unlicensed use of photographs"))
    assert result.disposition is Disposition.REPORT
    [report] = result.reports
    assert report.type_hint == "dmca:notice"
    assert report.review_reasons == []
    assert report.extra["dmca_incomplete"] == ["signature", "good_faith", "accuracy_perjury"]
    assert report.warnings[-1] == (
        "DMCA notice incomplete, missing: signature, good-faith statement, accuracy statement "
        "and authority under penalty of perjury (work, material and contact are there: "
        "512(c)(3)(B)(ii) asks us to try to reach the complainant)")


def test_a_notice_with_no_location_and_a_counter_notice_still_go_to_review() -> None:
    [report] = REGISTRY.parse(mail("DMCA notice: our film is infringed somewhere.")).reports
    assert report.review_reasons == ["the notice names no IP address or URL"]
    [counter] = REGISTRY.parse(mail("DMCA counter-notice for http://x.example/a",
                                    subject="DMCA counter notice")).reports
    assert any("counter-notice" in r for r in counter.review_reasons)


def test_no_reply_senders_are_no_contact() -> None:
    body = "DMCA notice. Infringing copies at http://files.example/x.zip"
    [report] = REGISTRY.parse(mail(body, sender="no-reply@owner.example")).reports
    assert not report.extra["dmca_elements"]["contact"]


# -- a table of peers or servers ----------------------------------------------------------------

PEERS = """DMCA notice: the film "Example Orchard" (2026) is shared by these peers via BitTorrent.

  IP address      Port   Time observed             Info hash
  192.0.2.77      49001  2026-11-22 20:01:13 UTC   95ed48de54c40db4c3ef48b6c82ac43042735dc4
  192.0.2.180     6889   2026-11-22 20:17:40 UTC   95ed48de54c40db4c3ef48b6c82ac43042735dc4

We have a good faith belief that the use is not authorized; the information is accurate and,
under penalty of perjury, we are authorized to act on behalf of the copyright owner.

Electronic signature: /Jane Roe/
"""


def test_a_table_of_peers_gives_one_report_per_peer_with_its_port_and_time() -> None:
    result = REGISTRY.parse(mail(PEERS))
    assert [(r.source_ip, r.source_port, r.occurred_raw) for r in result.reports] == [
        ("192.0.2.77", 49001, "2026-11-22 20:01:13 UTC"),
        ("192.0.2.180", 6889, "2026-11-22 20:17:40 UTC")]
    for report in result.reports:
        assert report.type_hint == "dmca:notice"
        assert all(report.extra["dmca_elements"].values())
        assert not any("several IP" in w for w in report.warnings)


def test_a_table_of_stream_servers_keeps_each_rows_url_and_eastern_time() -> None:
    body = ("URGENT DMCA: the live telecast is restreamed without authorization from:\n"
            "1 | hxxp://192.0.2.111/hls/ppv1/master.m3u8 | 192.0.2.111:80 | "
            "11/22/2026 11:41 PM ET\n"
            "2 | rtmp://192.0.2.112:1935/live/boxing | 192.0.2.112:1935 | 11/22/2026 11:41 PM ET\n")
    first, second = REGISTRY.parse(mail(body)).reports
    assert (first.source_ip, first.source_port, second.source_ip, second.source_port) == (
        "192.0.2.111", 80, "192.0.2.112", 1935)
    assert first.urls == ["http://192.0.2.111/hls/ppv1/master.m3u8"]
    assert first.occurred_at is not None and first.occurred_at.isoformat() == \
        "2026-11-23T04:41:00+00:00"  # 23:41 EST is 04:41 UTC


@pytest.mark.parametrize(("label", "expected"), [
    ("Fecha y hora de detección: 22/11/2026 21:03 CET", "2026-11-22T20:03:00+00:00"),
    ("Festgestellt: 22.11.2026 14:05:11 MEZ", "2026-11-22T13:05:11+00:00"),
    ("Observed: 11/23/2026 9:20 PM EST", "2026-11-24T02:20:00+00:00"),
])
def test_numeric_dates_with_their_zones_in_a_labelled_line(label: str, expected: str) -> None:
    body = f"DMCA notice. Infringing stream at http://streams.example/live.m3u8\n{label}\n"
    [report] = REGISTRY.parse(mail(body)).reports
    assert report.occurred_at is not None and report.occurred_at.isoformat() == expected


def attached(body: str, name: str, ctype: str, content: str, subject: str) -> bytes:
    return (f"From: Rights Desk <rights@owner.example>\nTo: abuse@isp.example\n"
            f"Subject: {subject}\nDate: Fri, 01 Mar 2024 10:00:00 +0000\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
            f"Content-Type: text/plain; charset=utf-8\n\n{body}\n--b\n"
            f'Content-Type: {ctype}; charset=utf-8\nContent-Disposition: attachment; '
            f'filename="{name}"\n\n{content}\n--b--\n').encode()


def test_a_letter_attached_as_text_is_the_notice() -> None:
    letter = ("Urheberrechtsverletzung auf der Webseite www.shop.example\n\nUnser Mandant ist "
              "Urheber der Fotografie „Berg im Morgenlicht“. Sie wird ohne Lizenz auf\n"
              "  https://www.shop.example/galerie/\nöffentlich zugänglich gemacht.\n\n"
              "Mit freundlichen Grüßen\n\nDr. Erika Muster\nRechtsanwältin\n")
    raw = attached("Anbei unser Schreiben.", "Schreiben.txt", "text/plain", letter,
                   "Urheberrechtsverletzung - www.shop.example")
    [report] = REGISTRY.parse(raw).reports
    assert report.urls == ["https://www.shop.example/galerie/"]
    assert report.extra["dmca_elements"]["work"]
    assert report.extra["dmca_elements"]["signature"]


def test_a_csv_of_detections_gives_a_report_per_server_and_notice_by_its_statements() -> None:
    body = ("The live event is illegally redistributed through the servers in the attached CSV."
            "\nWe have a good faith belief that this use is not authorized, and state under "
            "penalty of perjury that the information is accurate and that we are authorized "
            "to act on behalf of the owner.\n")
    csv = ("id,detected_utc,stream_url,ip,port\n"
           "1,2026-11-23 03:02:10,http://192.0.2.21:8000/live/a.m3u8,192.0.2.21,8000\n"
           "2,2026-11-23 03:02:44,http://192.0.2.22:8000/live/b.m3u8,192.0.2.22,8000\n")
    raw = attached(body, "detections.csv", "text/csv", csv, "Live event restreams")
    result = REGISTRY.parse(raw)
    assert result.format == "dmca"  # no "DMCA" anywhere: the two statements say it
    assert [(r.source_ip, r.source_port, r.urls) for r in result.reports] == [
        ("192.0.2.21", 8000, ["http://192.0.2.21:8000/live/a.m3u8"]),
        ("192.0.2.22", 8000, ["http://192.0.2.22:8000/live/b.m3u8"])]
