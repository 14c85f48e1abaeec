"""Bounded fuzzing of every regex-bearing reader, with the shapes that make regexes backtrack.

Hypothesis builds text from long runs of blanks, line breaks and separators, nested brackets,
huge single tokens, encoded words and the keywords the patterns look for ("from x by",
"[SpamCop:", "beli", "<script"), and puts it where each parser reads: headers, Received
chains, bodies of every content type. Every format's ``matches`` and ``parse`` run through the
registry; the header readers, the IP/URL/time readers, the Received reader, the DMCA element
check and the classifier's rules run on the text directly. Nothing may raise (the registry
answers review, with its reason, for what it cannot read) and nothing may use more than
``FUZZ_CPU_S`` of CPU time on one example (a hang guard: CPU time, so a loaded machine does not
count). Fixed example counts, derandomized, no example database: the same run in CI every time,
well under a minute.
"""

from __future__ import annotations

from abuse_desk.classifier import rules
from abuse_desk.core import fields as common
from abuse_desk.core import headers
from abuse_desk.parsers.base import Disposition
from abuse_desk.parsers.formats.dmca import dmca_elements
from abuse_desk.parsers.registry import default_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parsers.redos import cpu_guard

REGISTRY = default_registry()
FUZZ_CPU_S = 10.0


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

RUN_CHARS = [" ", "\t", "\r\n", "\n", "\r", "\x0c", "\u00a0", "a", "Z", "0", ".", "-", "_",
             ":", ";", ",", "@", "/", "[", "(", "<", "=", '"', "'", ">", "]", ")", "é"]
KEYWORDS = ["from x by ", "from ", " by ", "Received: ", "[SpamCop: (", " id:1", "beli",
            "in good faith", "<script", "</style", "regards", "\n\n", "a@", "a.b@c.d ",
            "Name <a@b>", "http://", "hxxp[:]//x[.]y", "__https://", "__;", "1.2.3.4",
            "2001:db8::1", "[192.0.2.1]", "port ", "src port: ", "helo=", "(x.example [",
            "Comments from recipient", "Email from 1.2.3.4 / ", " is 1.2.3.4; ",
            "=?utf-8?q?=41?=", "=?utf-8?b?QUFB?= ", "Feedback-Type: abuse\n", "Key: value ",
            "copyright", "torrent", "honeypot_", "01/02/2024 ", "Mon, 1 Jan 2024 ", "T10:00"]


@st.composite
def hostile_text(draw: st.DrawFn, max_run: int = 6000) -> str:
    """Pieces of the dangerous shapes: runs, repeated keywords, nesting, one huge token."""
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:  # a long run of one character
            pieces.append(draw(st.sampled_from(RUN_CHARS)) * draw(st.integers(1, max_run)))
        elif kind == 1:  # a keyword, a separator, repeated
            unit = draw(st.sampled_from(KEYWORDS)) + draw(st.sampled_from(["", *RUN_CHARS]))
            pieces.append(unit * draw(st.integers(1, max_run // len(unit))))
        elif kind == 2:  # nested brackets
            depth = draw(st.integers(1, max_run // 2))
            pieces.append(draw(st.sampled_from(["(", "[", "<", "{"])) * depth
                          + draw(st.sampled_from(KEYWORDS))
                          + draw(st.sampled_from([")", "]", ">", ""])) * depth)
        else:  # a few keywords, or arbitrary text
            pieces.append(draw(st.one_of(
                st.lists(st.sampled_from(KEYWORDS), max_size=8).map("".join),
                st.text(max_size=40))))
    return "".join(pieces)


def _header_safe(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")[:20_000]


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    subject = _header_safe(draw(hostile_text(max_run=3000)))
    sender = _header_safe(draw(hostile_text(max_run=2000)))
    received = _header_safe(draw(hostile_text(max_run=3000)))
    body = draw(hostile_text())
    ctype = draw(st.sampled_from([
        "text/plain", "text/html", "message/feedback-report", "application/json",
        "application/xml", "text/csv"]))
    report = draw(st.booleans())
    top = (f"From: {sender}\r\nSubject: {subject}\r\nReceived: from {received}\r\n"
           "Date: Mon, 04 Mar 2024 12:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    if not report:
        return (top + f"Content-Type: {ctype}\r\n\r\n{body}\r\n").encode("utf-8", "replace")
    return (top + 'Content-Type: multipart/report; report-type=feedback-report; '
            'boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nreport\r\n'
            f"--B\r\nContent-Type: {ctype}\r\n\r\nFeedback-Type: abuse\r\n{body}\r\n"
            f"--B\r\nContent-Type: message/rfc822\r\n\r\nReceived: from {received}\r\n"
            f"Subject: {subject}\r\n\r\n{body[:2000]}\r\n--B--\r\n"
            ).encode("utf-8", "replace")


@fuzz(40)
@given(hostile_mail())
def test_every_parser_answers_hostile_mail_within_its_bounds(raw: bytes) -> None:
    with cpu_guard(FUZZ_CPU_S):
        result = REGISTRY.parse(raw)
    assert result.disposition in set(Disposition)
    if result.disposition is Disposition.REPORT and not result.reports:
        assert result.review_reasons  # what no parser understands goes to review, with why


@fuzz(150)
@given(hostile_text())
def test_the_header_and_field_readers_answer_hostile_text(text: str) -> None:
    value = text[:headers.MAX_RAW_CHARS]
    with cpu_guard(FUZZ_CPU_S):
        headers.clean_value(value)
        headers.clean_address(value)
        headers.mailboxes(value[:headers.MAX_VALUE_CHARS])
        headers.parse_address(value[:headers.MAX_VALUE_CHARS])
        headers.read_top_headers(f"Subject: {_header_safe(text)}\r\nFrom: {_header_safe(text)}"
                                 "\r\n\r\n".encode("utf-8", "replace"))
        common.parse_time(text)
        common.clean_ip(text[:200])
        common.find_ips(text)
        common.find_urls(text)
        common.refang(text)
        common.received_from_by(text)
        common.received_from_by(text, common.BY_HOST_NO_PARENS)
        common.parse_int(text)


@fuzz(100)
@given(hostile_text())
def test_the_dmca_check_and_the_classifier_rules_answer_hostile_text(text: str) -> None:
    with cpu_guard(FUZZ_CPU_S):
        elements = dmca_elements(text, located=True)
        rules.score_text(text)
    assert set(elements) == {"signature", "work", "infringing_material", "contact",
                             "good_faith", "accuracy_perjury"}
