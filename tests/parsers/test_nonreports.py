"""Mail that is no complaint, recognised by what it says (parsers/nonreports.py): each kind is
ignored and named; a message that carries a complaint's evidence, or asks us to act on
something of ours, stays a complaint whatever its headers say."""

from __future__ import annotations

import pytest
from abuse_desk.parsers.registry import default_registry

REGISTRY = default_registry("desk.isp.example")


def mail(subject: str, body: str, headers: str = "", sender: str = "someone@other.example",
         ctype: str = "text/plain; charset=utf-8") -> bytes:
    return (f"From: {sender}\r\nTo: abuse@isp.example\r\nSubject: {subject}\r\n{headers}"
            f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n\r\n{body}").encode()


def kind(raw: bytes) -> tuple[str, str | None]:
    result = REGISTRY.parse(raw)
    return result.disposition.value, result.extra.get("non_report")


NON_REPORTS = {
    "ticket-ack": mail(
        "[Ticket#48211] Your report has been received",
        "Hello,\r\n\r\nthis is an automated response: we have received your report and it has "
        "been registered under ticket 48211. Please do not reply to this message.\r\n",
        "Auto-Submitted: auto-replied\r\n", "no-reply@hoster.example"),
    "ticket-ack-status": mail(
        "Ticket #50387 status updated: Pending",
        "The status of your ticket #50387 has been changed to Pending.\r\n",
        "Auto-Submitted: auto-generated\r\n", "support@hoster.example"),
    "reply-to-reporter": mail(
        "Re: [ISP-1234] Port scan from 192.0.2.50",
        "Hello,\r\n\r\nthank you for your report. We have notified the customer responsible "
        "for 192.0.2.50 and consider the case resolved.\r\n\r\nRegards, Abuse Team\r\n\r\n"
        "On Mon, 23 Nov 2026 10:00, ISP Abuse <abuse@isp.example> wrote:\r\n"
        "> 192.0.2.50 in your network scanned us on 2026-11-23 09:14:02 UTC.\r\n"
        "> Please investigate.\r\n",
        "In-Reply-To: <isp-1234@isp.example>\r\n", "abuse@hoster.example"),
    "reply-to-reporter-de": mail(
        "AW: Phishing-Seite auf 192.0.2.60",
        "Hallo,\r\n\r\ndanke für den Hinweis. Die Seite wurde entfernt, der Kunde wurde "
        "informiert.\r\n\r\nGrüße\r\n", "", "abuse@rz.example"),
    "survey": mail(
        "How did we do?",
        "You recently contacted our abuse team. How satisfied were you? Rate us from 1 to 5: "
        "https://survey.hoster.example/r/1\r\n", "", "surveys@hoster.example"),
    "newsletter": mail(
        "Threat brief for November",
        "This month: botnets on DVRs, our webinar on abuse automation.\r\n"
        "View in browser: https://news.vendor.example/v/1\r\n"
        "Unsubscribe: https://news.vendor.example/u/1\r\n",
        "List-Unsubscribe: <https://news.vendor.example/u/1>\r\nPrecedence: bulk\r\n",
        "newsletter@vendor.example"),
    "challenge": mail(
        "Please confirm your message to jim@home.example",
        "I use a spam filter. To get your message delivered, please confirm that you are human "
        "by clicking https://verify.example/c/1\r\n", "Auto-Submitted: auto-replied\r\n",
        "verify@verify.example"),
    "bounce": mail(
        "Mensaje no entregado: [ISP-1] Botnet 192.0.2.15",
        "Su mensaje no pudo ser entregado a los siguientes destinatarios:\r\n"
        "  abuse@isp-andino.example\r\n  Motivo: 552 5.2.2 mailbox full\r\n",
        "Return-Path: <>\r\n", "postmaster@isp-andino.example"),
    "out-of-office": mail(
        "Re: [ISP-2] Compromised host 192.0.2.19",
        "I'm travelling this week with limited connectivity. Replies will be delayed.\r\n",
        "X-Autoreply: yes\r\n", "ops@smallhost.example"),
    "out-of-office-subject": mail(
        "Abwesenheitsnotiz: Infizierter Host 192.0.2.19",
        "Ich bin bis 27.11. nicht im Büro.\r\n", "", "m.schulz@stadtwerke.example"),
    # An absence notice thanks for the message too; it names no ticket.
    "out-of-office-status": mail(
        "Abwesenheitsnotiz: Ihre Nachricht",
        "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 4. Dezember nicht im Büro "
        "und habe keinen Zugriff auf meine E-Mails.\r\n",
        "Auto-Submitted: auto-replied\r\n", "k.huber@firma.example"),
}


@pytest.mark.parametrize("name", sorted(NON_REPORTS))
def test_each_kind_is_ignored_and_named(name: str) -> None:
    expected = name.removesuffix("-de").removesuffix("-status").removesuffix("-subject")
    assert kind(NON_REPORTS[name]) == ("ignored", expected)


def test_a_delisting_notice_and_a_customer_question_are_other() -> None:
    delisted = mail("IP 192.0.2.58 removed from the list",
                    "Good news: the IP 192.0.2.58 has been removed from the blocklist.\r\n",
                    sender="noreply@blocklist.example")
    assert kind(delisted) == ("ignored", "other")
    question = mail("Is this mail from you?",
                    "I got a mail asking for my bank details. Is this mail really from you?\r\n",
                    sender="customer@mail.example")
    assert kind(question) == ("ignored", "other")


def test_a_cert_notice_sent_as_an_auto_reply_is_still_a_complaint() -> None:
    raw = mail("[CERT#4411] Infected host in your network",
               "Dear colleagues,\r\n\r\nthe following host in your network is infected:\r\n\r\n"
               "ip            | timestamp (UTC)      | malware\r\n"
               "192.0.2.77    | 2026-11-22 04:12:09  | mirai\r\n\r\n"
               "This is an automatically generated message.\r\n",
               "Auto-Submitted: auto-replied\r\n", "reports@cert.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_a_forwarded_complaint_with_acknowledgement_words_stays_a_complaint() -> None:
    raw = mail("Fwd: spam from 192.0.2.33",
               "Hi, we have received your report and forward it here since 192.0.2.33 is yours."
               "\r\n\r\n---------- Forwarded message ---------\r\nFrom: victim@mail.example\r\n"
               "spam from 192.0.2.33 on 2026-11-22 10:00:00 UTC\r\n",
               sender="abuse@upstream.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_a_complaint_with_a_list_footer_stays_a_complaint() -> None:
    raw = mail("Phishing site hosted by you",
               "The phishing page hxxps://login-bank[.]example/ is hosted by you. "
               "Please remove it.\r\n--\r\nTo unsubscribe from this group, write to "
               "abuse+unsubscribe@group.example\r\n",
               "List-Id: <abuse.group.example>\r\nPrecedence: list\r\n", "it@city.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_a_reporter_answering_with_more_abuse_is_a_complaint_again() -> None:
    raw = mail("Re: [Ticket 77] SSH attacks from 192.0.2.90",
               "Thank you for your message, but the attacks from 192.0.2.90 are still ongoing. "
               "Please take action.\r\n", "In-Reply-To: <t77@hoster.example>\r\n",
               "admin@victim.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_an_attached_feedback_report_is_evidence_whatever_the_subject() -> None:
    raw = (b"From: fbl@mailbox.example\r\nTo: abuse@isp.example\r\n"
           b"Subject: Automatic reply: complaint\r\nAuto-Submitted: auto-replied\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
           b"report-type=feedback-report; boundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
           b"--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
           b"User-Agent: fbl/1\r\nVersion: 1\r\nSource-IP: 192.0.2.5\r\n\r\n"
           b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: spam@x.example\r\n--b--\r\n")
    result = REGISTRY.parse(raw)
    assert (result.disposition.value, result.format) == ("report", "arf")


def test_sales_mail_is_a_newsletter_but_not_when_it_names_an_address() -> None:
    pitch = ("Hi, our tool parses your abuse mail. Would you have 15 minutes next week for a "
             "quick demo? If you don't want to hear from me, reply unsubscribe.\r\n")
    assert kind(mail("Faster abuse handling?", pitch)) == ("ignored", "newsletter")
    assert kind(mail("Faster abuse handling?", pitch + "Spam from 192.0.2.7 too.\r\n"))[0] \
        == "report"


def test_a_key_value_cert_notice_sent_as_an_auto_reply_is_still_a_complaint() -> None:
    raw = mail("[CERT #9911] Compromised host",
               "This is an automatically generated message, please do not reply.\r\n\r\n"
               "IP: 192.0.2.78\r\nPort: 445\r\nTimestamp: 2026-11-22T04:12:09Z\r\n"
               "Type: infected\r\n",
               "Auto-Submitted: auto-replied\r\n", "noreply@cert.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_an_auto_reply_naming_nothing_is_an_auto_reply() -> None:
    raw = mail("Re: your mail", "Thanks, I will answer when I am back.\r\n",
               "Auto-Submitted: auto-replied\r\n")
    assert kind(raw) == ("ignored", "out-of-office")


def test_content_removed_once_and_back_is_a_complaint() -> None:
    raw = mail("Phishing page back online",
               "The phishing page has been removed from the old host but is back at "
               "hxxp://192.0.2.81/login/ since this morning.\r\n", sender="soc@bank.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_an_upstream_ticket_that_carries_a_complaint_is_a_complaint() -> None:
    raw = mail("Ticket #5521 has been created: abuse from 192.0.2.91",
               "Dear customer,\r\n\r\nwe received a complaint about 192.0.2.91 in your network "
               "sending spam. Please investigate and reply within 24 hours.\r\n",
               "Auto-Submitted: auto-generated\r\n", "noreply@upstream.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_a_reporter_thanking_for_an_answer_while_the_spam_continues_is_a_complaint() -> None:
    raw = mail("Re: spam from 192.0.2.92",
               "Thank you for your message. The spam from 192.0.2.92 continues, three more "
               "today.\r\n", "In-Reply-To: <a1@isp.example>\r\n", "jane@mail.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


@pytest.mark.parametrize(("sender", "subject", "body"), [
    ("postmaster@bigmail.example", "Dictionary attack from 192.0.2.93",
     "Your customer at 192.0.2.93 keeps trying addresses: thousands of 'user unknown' "
     "rejections per hour.\r\n"),
    ("jo@mail.example", "router hacked",
     "I am away from home and someone from 192.0.2.94 logged into my router.\r\n"),
])
def test_complaints_using_bounce_or_absence_words_stay_complaints(sender: str, subject: str,
                                                                  body: str) -> None:
    assert REGISTRY.parse(mail(subject, body, sender=sender)).disposition.value == "report"


OUR_COMPLAINT_ECHOED = mail(
    "[Hoster #7781] Abuse report for 192.0.2.95",
    "Hello,\r\n\r\nwe have received a report of abuse originating from an IP you are using. "
    "The report follows; please reply within 24 hours.\r\n\r\n"
    "From: ISP Abuse <abuse@isp.example>\r\nSubject: SSH brute force from 192.0.2.95\r\n\r\n"
    "192.0.2.95 attacked our customers' SSH servers:\r\n"
    "2026-11-23 09:14:02 UTC Failed password for root from 192.0.2.95 port 52144\r\n",
    "Auto-Submitted: auto-generated\r\n", "abuse-notify@hoster.example")


def test_our_own_complaint_quoted_back_by_another_desk_is_a_reply_to_reporter() -> None:
    result = REGISTRY.parse(OUR_COMPLAINT_ECHOED)
    assert (result.disposition.value, result.extra["non_report"]) == (
        "ignored", "reply-to-reporter")


def test_a_complaint_quoting_a_customers_mail_at_our_domain_is_a_complaint() -> None:
    raw = mail("Spam from your customer",
               "This spam came from your mail system:\r\n\r\n"
               "From: Cheap Pills <sales.shop@isp.example>\r\n"
               "Received: from [192.0.2.96] by mx.isp.example; 23 Nov 2026 09:14:02 +0000\r\n",
               sender="jane@mail.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_without_a_domain_of_our_own_nothing_is_taken_for_our_complaint() -> None:
    result = default_registry().parse(OUR_COMPLAINT_ECHOED)
    assert result.disposition.value == "report"


def test_a_customer_answering_a_notice_with_our_case_tag_is_left_to_the_workflow() -> None:
    raw = mail("Re: [Abuse Case C-2026-000123] Spam from 192.0.2.97",
               "Thank you for your report. We have taken action and the issue has been "
               "resolved.\r\n\r\nFrom: ISP Abuse <abuse@isp.example>\r\nSpam from 192.0.2.97\r\n",
               sender="noc@customer.example")
    result = REGISTRY.parse(raw)
    assert result.disposition.value != "ignored"


def test_evidence_below_a_separator_line_still_counts() -> None:
    raw = mail("Pranešimas / notice 2026-1177",
               "Sveiki,\r\n\r\nžemiau pateikiami įrenginiai.\r\n"
               "----------------------------------------\r\n"
               "192.0.2.79 | 2026-11-22 04:12:09 | botnet\r\n",
               "Auto-Submitted: auto-replied\r\n", "cert@cert.example")
    assert REGISTRY.parse(raw).disposition.value == "report"


def test_a_ticket_acknowledgement_quoting_our_complaint_below_a_separator_is_an_ack() -> None:
    raw = mail("[hoster.example #4606] AutoReply: Port scan from 192.0.2.80",
               "This message has been automatically generated in response to the creation of "
               "a trouble ticket. Your ticket has been assigned an ID of [hoster.example #4606]."
               "\r\n---------------------------------------------------------------\r\n"
               "192.0.2.80 scanned us at 2026-11-22 04:12:09 UTC, please investigate.\r\n",
               "Auto-Submitted: auto-replied\r\n", "abuse@hoster.example")
    assert kind(raw) == ("ignored", "ticket-ack")


def test_a_desk_thanking_for_the_heads_up_and_acting_answers_a_complaint() -> None:
    raw = mail("Re: Your abuse report 4471",
               "Hello,\r\n\r\nthank you for letting us know. We have identified the laptop and "
               "it has been disconnected from our network until it is cleaned.\r\n\r\n"
               "Best regards,\r\nIT Helpdesk\r\n",
               "In-Reply-To: <r4471@isp.example>\r\n", "help@university.example")
    assert kind(raw) == ("ignored", "reply-to-reporter")
    # The same words with the evidence of a new complaint stay a complaint.
    raw = mail("Re: Your abuse report 4471",
               "Thank you for letting us know. The laptop has been disconnected from our "
               "network, but 192.0.2.90 scanned us again at 2026-11-26 16:02 UTC.\r\n",
               "In-Reply-To: <r4471@isp.example>\r\n", "help@university.example")
    assert kind(raw)[0] == "report"
