"""classifier/boilerplate.py: footers, signatures, disclaimers, banners, forwarded-block wording and
quoted replies are not evidence; what the complaint says stays."""

from __future__ import annotations

import time

from abuse_desk.classifier.boilerplate import MAX_TEXT_CHARS, strip
from abuse_desk.classifier.categorize import categorize


def test_a_copyright_footer_goes_and_the_complaint_stays() -> None:
    text = ("Your IP sent spam to our trap addresses.\n\n"
            "Copyright © 2026 Example Lists Ltd. All rights reserved.\n")
    assert strip(text) == "Your IP sent spam to our trap addresses."


def test_a_service_banner_in_a_scanner_row_is_not_copyright_nor_intrusion() -> None:
    text = ("An open telnet service was found on your network.\n"
            "ip,port,banner\n"
            "192.0.2.7,23,Banner: Copyright (c) 2003 RouterCo - Unauthorized access prohibited\n")
    c = categorize(None, text)
    assert c.type == "open-service"
    assert "copyright" not in strip(text).lower()


def test_a_spam_listing_with_a_footer_is_no_copyright_case() -> None:
    text = ("The address below is listed on our blocklist after spam trap hits.\n"
            "(c) 2026 TrapList. Alle Rechte vorbehalten.\n"
            "To unsubscribe from these notices, click here.")
    c = categorize(None, text)
    assert (c.category, c.type) == ("spam", "spam")
    assert not any(e.name.endswith("copyright") for e in c.evidence)


def test_a_signature_after_the_delimiter_goes() -> None:
    text = "Port scan from your network.\n-- \nJane Roe\nCopyright enforcement unit\n"
    assert strip(text) == "Port scan from your network."


def test_a_long_text_after_a_dash_line_is_no_signature() -> None:
    body = "\n".join(f"line {n} of a log" for n in range(40))
    assert "line 39" in strip("intro\n--\n" + body)


def test_a_disclaimer_runs_to_the_end_of_its_paragraph() -> None:
    text = ("Brute force on our SSH server from your IP.\n\n"
            "This e-mail and any attachments are confidential. If you are not the intended "
            "recipient, delete it; any copying, distribution or piracy is prohibited.\n\n"
            "Regards")
    assert strip(text) == "Brute force on our SSH server from your IP.\n\nRegards"


def test_a_disclaimer_sentence_on_the_complaints_own_line_takes_only_itself() -> None:
    text = ("Phishing page on your server. This message is confidential and intended solely "
            "for the addressee.")
    assert strip(text) == "Phishing page on your server."


def test_german_french_and_spanish_footers() -> None:
    text = ("DDoS-Angriff aus Ihrem Netz.\n"
            "Geschäftsführer: Max Muster, Amtsgericht Köln HRB 1234\n"
            "Tous droits réservés\nTodos los derechos reservados\nVon meinem iPhone gesendet")
    assert strip(text) == "DDoS-Angriff aus Ihrem Netz."


def test_a_quoted_reply_goes_when_the_writer_says_enough_of_their_own() -> None:
    text = ("The spam continues: three more messages today from the same host, please act "
            "now.\n\nOn Mon, 23 Nov 2026 at 10:00, Abuse Desk <abuse@isp.example> wrote:\n"
            "> Thank you. Your copyright complaint was forwarded.\n> Regards\n")
    assert "copyright" not in strip(text)
    assert categorize(None, text).type == "spam"


def test_a_forwarded_complaint_that_is_all_quote_is_kept_unquoted() -> None:
    text = "FYI\n\n> We see brute force logins from 192.0.2.9 on our SSH server.\n"
    assert "brute force logins" in strip(text)
    assert categorize(None, text).type == "hacking"


def test_the_wording_of_a_forwarded_block_goes_but_its_subject_stays() -> None:
    text = ("---------- Forwarded message ---------\nFrom: Someone <a@example.org>\n"
            "Date: Mon, 23 Nov 2026\nSubject: Phishing site on your network\nTo: abuse@x\n\n"
            "The page steals bank credentials.")
    assert strip(text) == ("Subject: Phishing site on your network\n\n"
                           "The page steals bank credentials.")


def test_scanned_for_viruses_and_the_reporters_own_scanning_are_blanked() -> None:
    assert "virus" not in strip("This mail was scanned for viruses by Gateway")
    assert categorize(None, "According to our scans the host runs an open resolver").type \
        == "open-service"


def test_the_complaint_itself_is_untouched() -> None:
    text = "Spam from 192.0.2.1 advertising pills.\nWe never subscribed."
    assert strip(text) == text


def test_bounded_and_linear_on_hostile_input() -> None:
    hostile = ("> " * 5000 + "\n" + "On " + "x " * 5000 + "wrote:\n" + "©" * 5000 + "\n"
               + "-- \n" * 2000)
    start = time.process_time()
    out = strip(hostile * 3)
    assert time.process_time() - start < 2.0
    assert len(out) <= MAX_TEXT_CHARS


def test_a_forward_quoted_without_attribution_keeps_its_quote_as_evidence() -> None:
    text = ("Please see below, this came to our NOC this morning and concerns a prefix you "
            "announce to us, thanks for looking into it.\n\n"
            "> Our game server was hit by an NTP reflection attack from 192.0.2.90.\n")
    assert "NTP reflection attack" in strip(text)


def test_a_bare_double_dash_before_a_long_second_language_is_no_signature() -> None:
    english = "\n".join(["Dear Sir or Madam,", "open DNS resolvers answer recursive queries",
                         "from anywhere on the Internet.", "", "Attached you find the list.",
                         "All timestamps in UTC.", "Kind regards", "Team CERT", "Example Office",
                         "Street 1, City"])
    text = "Sehr geehrte Damen und Herren,\noffene Resolver in Ihrem Netz.\n--\n" + english
    assert "open DNS resolvers answer recursive queries" in strip(text)
    assert strip("Spam from your network.\n--\nJane Roe\nPostmaster") == \
        "Spam from your network."


def test_an_addressee_only_disclaimer_in_another_wording() -> None:
    text = ("Port scan from your network.\n\nThis e-mail is intended for the addressee only. If "
            "you received it in error, please notify the sender and delete it.")
    assert strip(text) == "Port scan from your network."
