"""The registry and the shared Mail view: order, refusal of duplicates, failures kept for review,
limits on hostile MIME."""

from __future__ import annotations

import pytest
from abuse_desk.core.config import ParserLimits
from abuse_desk.core.mail import LimitExceeded, Mail
from abuse_desk.parsers.base import Disposition, ParsedReport, ParseResult, Stage
from abuse_desk.parsers.registry import DuplicateParser, Registry, default_registry


class Fixed:
    """A parser that matches when *word* is in the subject and returns one report."""

    def __init__(self, name: str, stage: Stage, word: str = "", fail: Exception | None = None):
        self.name, self.stage, self.word, self.fail = name, stage, word, fail

    def matches(self, mail: Mail) -> bool:
        return self.word in mail.subject

    def parse(self, mail: Mail) -> ParseResult:
        if self.fail is not None:
            raise self.fail
        return ParseResult(Disposition.REPORT, self.name, [ParsedReport(format=self.name)])


def mail(subject: str = "spam report", body: str = "hello\r\n") -> bytes:
    return f"From: r@example.org\r\nSubject: {subject}\r\n\r\n{body}".encode()


def test_two_parsers_with_one_name_are_refused() -> None:
    registry = Registry([Fixed("arf", Stage.STRUCTURAL)])
    with pytest.raises(DuplicateParser, match="arf"):
        registry.register(Fixed("arf", Stage.SENDER))


def test_stage_order_wins_over_registration_order() -> None:
    registry = Registry([Fixed("text", Stage.FALLBACK), Fixed("spamcop", Stage.SENDER),
                         Fixed("arf", Stage.STRUCTURAL), Fixed("xarf", Stage.STRUCTURAL)])
    assert registry.names() == ["arf", "xarf", "spamcop", "text"]
    assert registry.parse(mail()).format == "arf"


def test_first_matching_parser_decides() -> None:
    registry = Registry([Fixed("arf", Stage.STRUCTURAL, word="Feedback"),
                         Fixed("text", Stage.FALLBACK)])
    assert registry.parse(mail("Feedback report")).format == "arf"
    assert registry.parse(mail("something else")).format == "text"


def test_a_parser_bug_goes_to_review_with_reason_and_traceback() -> None:
    registry = Registry([Fixed("acns", Stage.STRUCTURAL, fail=KeyError("Source")),
                         Fixed("text", Stage.FALLBACK)])
    result = registry.parse(mail())
    assert result.disposition is Disposition.REPORT
    assert result.reports == []
    assert result.review_reasons == ["parser acns failed: KeyError: 'Source'"]
    assert result.format == "acns"
    assert "Traceback" in result.errors[0] and "KeyError" in result.errors[0]


def test_a_limit_in_a_parser_goes_to_review() -> None:
    registry = Registry([Fixed("shadowserver", Stage.STRUCTURAL,
                               fail=LimitExceeded("ZIP expands past 100 MiB"))])
    result = registry.parse(mail())
    assert result.review_reasons == ["ZIP expands past 100 MiB"]
    assert result.errors == []


def test_nothing_understood_goes_to_review() -> None:
    result = Registry([Fixed("arf", Stage.STRUCTURAL, word="never")]).parse(mail())
    assert result.review_reasons == ["no parser understood this message"]


def test_reports_past_the_limit_are_cut_with_a_reason() -> None:
    class Many(Fixed):
        def parse(self, mail: Mail) -> ParseResult:
            return ParseResult(Disposition.REPORT, "shadowserver",
                               [ParsedReport(format="shadowserver") for _ in range(30)])

    result = Registry([Many("shadowserver", Stage.STRUCTURAL)]).parse(
        mail(), ParserLimits(max_reports=10))
    assert len(result.reports) == 10
    assert "more than 10 reports" in result.review_reasons[0]


def deep_multipart(depth: int) -> bytes:
    head = (b"From: r@example.org\r\nSubject: deep\r\n"
            b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n")
    body = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
                    for i in range(1, depth))
    body += b"--b%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n" % (depth - 1)
    body += b"".join(b"--b%d--\r\n" % i for i in range(depth - 1, -1, -1))
    return head + body


def many_parts(count: int) -> bytes:
    head = (b"From: r@example.org\r\nSubject: many\r\n"
            b"Content-Type: multipart/mixed; boundary=X\r\n\r\n")
    return head + b"".join(b"--X\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
                           for i in range(count)) + b"--X--\r\n"


@pytest.mark.timeout(10)
def test_thousand_deep_multipart_goes_to_review() -> None:
    result = default_registry().parse(deep_multipart(1000))
    assert result.reports == []
    assert "nesting" in result.review_reasons[0]


def test_nesting_past_the_limit_is_not_descended() -> None:
    with pytest.raises(LimitExceeded, match="max_mime_depth"):
        _ = Mail(deep_multipart(30), ParserLimits(max_mime_depth=20)).parts
    assert len(Mail(deep_multipart(15), ParserLimits(max_mime_depth=20)).parts) == 1


@pytest.mark.timeout(10)
def test_hundred_thousand_parts_refused_before_parsing() -> None:
    with pytest.raises(LimitExceeded, match="too many MIME parts"):
        Mail(many_parts(100_000))
    result = default_registry().parse(many_parts(100_000))
    assert "too many MIME parts" in result.review_reasons[0]
    assert len(Mail(many_parts(500)).parts) == 500


def test_decoded_size_is_bounded() -> None:
    raw = many_parts(20)
    with pytest.raises(LimitExceeded, match="max_decoded_bytes"):
        _ = Mail(raw, ParserLimits(max_decoded_bytes=100)).parts


def test_message_parts_have_their_transfer_encoding_decoded() -> None:
    """Python's email leaves a base64 message/feedback-report undecoded; Mail does not."""
    import base64

    fields = b"Feedback-Type: abuse\r\nSource-IP: 192.0.2.1\r\n"
    raw = (b"From: fbl@example.net\r\nSubject: FBL\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=feedback-report; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
           b"--B\r\nContent-Type: message/feedback-report\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(fields).replace(b"\n", b"\r\n") + b"--B--\r\n")
    parts = Mail(raw).parts
    report = next(p for p in parts if p.content_type == "message/feedback-report")
    assert b"Feedback-Type: abuse" in report.data
    assert b"Source-IP: 192.0.2.1" in report.data


@pytest.mark.parametrize(("charset", "text"), [
    ("iso-2022-jp", "迷惑メール 192.0.2.1"),
    ("windows-1252", "Beschwerde über Spam — 192.0.2.1"),
    ("utf-8", "jälkeen 192.0.2.1"),
])
def test_body_text_in_its_charset(charset: str, text: str) -> None:
    raw = (f"From: r@example.org\r\nSubject: x\r\nContent-Type: text/plain; charset={charset}"
           "\r\n\r\n").encode() + text.encode(charset) + b"\r\n"
    assert Mail(raw).body_text().strip() == text


def test_undeclared_8bit_body_is_read_as_latin1_when_not_utf8() -> None:
    raw = b"From: r@example.org\r\nSubject: x\r\n\r\nR\xe9clamation 192.0.2.1\r\n"
    assert Mail(raw).body_text().strip() == "Réclamation 192.0.2.1"


def test_dash_lines_in_plain_text_are_not_mime_parts() -> None:
    """A pasted log full of "--" lines is not a part bomb; only declared boundaries count."""
    raw = mail("log excerpt", body="-- attempt from 192.0.2.1\r\n" * 5000)
    assert Mail(raw).body_text().count("attempt") == 5000
