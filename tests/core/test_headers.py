"""Reading the top-level headers: RFC 2047, header injection, 8-bit bytes, bounds, folding."""

from __future__ import annotations

import base64

import pytest
from abuse_desk.core.headers import (
    MAX_HEADER_BYTES,
    MAX_VALUE_CHARS,
    TopHeaders,
    clean_value,
    header_block,
    read_top_headers,
)

PAD_LINE = b"X-Pad: " + b"a" * 990 + b"\r\n"  # 999 bytes


def padding(n_bytes: int) -> bytes:
    """Header lines adding up to at least *n_bytes*."""
    return PAD_LINE * (n_bytes // len(PAD_LINE) + 1)


def no_line_breaks(value: str | None) -> None:
    assert value is not None
    assert "\r" not in value
    assert "\n" not in value


# --- plain headers ----------------------------------------------------------------------------


def test_reads_the_four_headers() -> None:
    raw = (b"From: Reporter <reporter@example.org>\r\n"
           b"To: abuse@integra-isp.example\r\n"
           b"Subject: Spam from 192.0.2.7\r\n"
           b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
           b"Message-ID: <123@example.org>\r\n"
           b"\r\n"
           b"body\r\n")
    assert read_top_headers(raw) == TopHeaders(
        message_id="<123@example.org>", from_="Reporter <reporter@example.org>",
        subject="Spam from 192.0.2.7", date="Mon, 01 Jan 2024 10:00:00 +0000")


def test_header_names_are_case_insensitive() -> None:
    headers = read_top_headers(b"SUBJECT: loud\r\nmessage-id: <a@b>\r\n\r\n")
    assert headers.subject == "loud"
    assert headers.message_id == "<a@b>"


def test_missing_headers_are_none() -> None:
    headers = read_top_headers(b"To: abuse@localhost\r\nX-Other: 1\r\n\r\nSubject: in body\r\n")
    assert headers == TopHeaders(message_id=None, from_=None, subject=None, date=None)


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"just a body, no headers at all"])
def test_no_headers_at_all_gives_nones(raw: bytes) -> None:
    assert read_top_headers(raw) == TopHeaders(None, None, None, None)


def test_empty_value_is_none() -> None:
    assert read_top_headers(b"Subject:    \r\nFrom: a@b\r\n\r\n").subject is None


def test_first_of_repeated_headers_wins() -> None:
    assert read_top_headers(b"Subject: one\r\nSubject: two\r\n\r\n").subject == "one"


def test_lf_only_line_endings() -> None:
    raw = b"From: a@example.org\nSubject: bare\n  newlines\nDate: today\n\nSubject: body\n"
    headers = read_top_headers(raw)
    assert headers.from_ == "a@example.org"
    assert headers.date == "today"
    assert headers.subject is not None
    assert headers.subject.split() == ["bare", "newlines"]
    no_line_breaks(headers.subject)


def test_headers_in_the_body_are_not_read() -> None:
    raw = b"From: top@example.org\r\n\r\nSubject: from the body\r\nMessage-ID: <body@x>\r\n"
    headers = read_top_headers(raw)
    assert headers.from_ == "top@example.org"
    assert headers.subject is None
    assert headers.message_id is None


# --- folding ----------------------------------------------------------------------------------


def test_folded_header_is_unfolded() -> None:
    headers = read_top_headers(b"Subject: a very\r\n long\r\n\tsubject\r\nFrom: x@y\r\n\r\n")
    no_line_breaks(headers.subject)
    assert headers.subject is not None
    assert headers.subject.split() == ["a", "very", "long", "subject"]
    assert "\t" not in headers.subject
    assert headers.from_ == "x@y"  # the continuation lines did not swallow the next header


def test_folding_adds_no_whitespace() -> None:
    assert read_top_headers(b"Subject: a very\r\n long subject\r\n\r\n").subject == \
        "a very long subject"


def test_folded_encoded_words_are_joined() -> None:
    raw = b"Subject: =?utf-8?q?Spam?= report\r\n for =?iso-8859-1?q?caf=E9?=\r\n\r\n"
    assert read_top_headers(raw).subject == "Spam report for café"


# --- RFC 2047 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoded", "decoded"), [
    (b"=?utf-8?q?caf=C3=A9_cr=C3=A8me?=", "café crème"),
    (b"=?UTF-8?B?" + base64.b64encode("Злоупотребление".encode()) + b"?=", "Злоупотребление"),
    (b"=?iso-8859-1?q?Gr=FC=DFe?=", "Grüße"),
    (b"Re: =?utf-8?q?r=C3=A9ponse?= [ticket 7]", "Re: réponse [ticket 7]"),
    (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between encoded words is dropped
])
def test_rfc2047_decoding(encoded: bytes, decoded: str) -> None:
    assert read_top_headers(b"Subject: " + encoded + b"\r\n\r\n").subject == decoded


@pytest.mark.parametrize("raw_value", [
    b"=?bogus-charset?q?abc?=",  # unknown charset: kept as it came
    b"=?utf-8?b?/w==?=",  # decodes to invalid UTF-8
    b"=?utf-8?q?unterminated",
])
def test_undecodable_encoded_words_are_kept_raw(raw_value: bytes) -> None:
    subject = read_top_headers(b"Subject: " + raw_value + b"\r\n\r\n").subject
    assert subject == raw_value.decode()


def test_bad_base64_encoded_word_does_not_raise() -> None:
    raw = b"Subject: =?utf-8?b?!!!notbase64?=\r\nFrom: a@b\r\n\r\n"
    headers = read_top_headers(raw)
    assert headers.from_ == "a@b"
    assert headers.subject == "=?utf-8?b?!!!notbase64?="


# --- header injection -------------------------------------------------------------------------


@pytest.mark.parametrize("encoded", [
    b"=?utf-8?q?Hello=0D=0AX-Injected:_yes?=",
    b"=?utf-8?q?Hello=0AX-Injected:_yes?=",
    b"=?utf-8?q?Hello=0DX-Injected:_yes?=",
    b"=?utf-8?b?" + base64.b64encode(b"Hello\r\n\r\nX-Injected: yes") + b"?=",
    b"=?utf-8?q?Hello?= =?utf-8?b?" + base64.b64encode(b"\r\nX-Injected: yes") + b"?=",
    b"=?iso-8859-1?q?Hello=0D=0A=0D=0A<html>?=",
])
def test_encoded_crlf_cannot_reach_the_value(encoded: bytes) -> None:
    headers = read_top_headers(b"Subject: " + encoded + b"\r\nFrom: a@b\r\n\r\n")
    no_line_breaks(headers.subject)
    assert headers.subject is not None
    assert headers.subject.startswith("Hello")
    assert headers.from_ == "a@b"


def test_control_characters_are_dropped() -> None:
    subject = read_top_headers(b"Subject: a\x00b\x07c =?utf-8?q?=00=1Bd?=\x7f e\r\n\r\n").subject
    assert subject is not None
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in subject)
    assert subject.split() == ["a", "b", "c", "d", "e"]


def test_clean_value_directly() -> None:
    assert clean_value(None) is None
    assert clean_value("") is None
    assert clean_value(" \t ") is None
    assert clean_value("=?utf-8?q?x=0D=0Ay?=") == "x y"
    assert clean_value("x" * (MAX_VALUE_CHARS + 50)) == "x" * MAX_VALUE_CHARS


# --- 8-bit and invalid bytes ------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"Subject: caf\xc3\xa9 \xff\xfe bad\r\nFrom: \x80\x81 <a@b>\r\n\r\n",
    b"Subject: \xed\xa0\x80 surrogate in UTF-8\r\n\r\n",
    b"\xff\xfe\x00garbage line\r\nSubject: s\r\n\r\n",
    b"Subject: =?utf-8?q?a?= \xff\r\n\r\n",
    bytes(range(256)) + b"\r\n\r\n",
])
def test_eight_bit_and_invalid_utf8_do_not_raise(raw: bytes) -> None:
    headers = read_top_headers(raw)
    for value in (headers.message_id, headers.from_, headers.subject, headers.date):
        if value is not None:
            value.encode("utf-8")  # storable: no lone surrogates
            assert "\r" not in value
            assert "\n" not in value


def test_eight_bit_header_keeps_the_ascii_around_it() -> None:
    headers = read_top_headers(b"Subject: hello \xff world\r\nFrom: a@b\r\n\r\n")
    assert headers.from_ == "a@b"
    assert headers.subject is not None
    assert headers.subject.startswith("hello ")
    assert headers.subject.endswith(" world")


def test_raw_utf8_header_is_decoded() -> None:
    raw = "Subject: café rapport\r\nFrom: Jörg <jörg@exämple.de>\r\n\r\n".encode()
    headers = read_top_headers(raw)
    assert headers.subject == "café rapport"
    assert headers.from_ == "Jörg <jörg@exämple.de>"


# --- bounds -----------------------------------------------------------------------------------


def test_long_value_is_truncated() -> None:
    subject = read_top_headers(b"Subject: " + b"x" * 50_000 + b"\r\n\r\n").subject
    assert subject == "x" * MAX_VALUE_CHARS


def test_long_encoded_value_is_truncated_after_decoding() -> None:
    encoded = base64.b64encode(("é" * 3000).encode())
    subject = read_top_headers(b"Subject: =?utf-8?b?" + encoded + b"?=\r\n\r\n").subject
    assert subject == "é" * MAX_VALUE_CHARS


def test_header_block_stops_at_the_blank_line() -> None:
    assert header_block(b"A: b\r\n\r\nbody\r\n\r\nmore") == b"A: b\r\n\r\n"
    assert header_block(b"A: b\n\nbody\n\nmore") == b"A: b\n\n"


def test_ten_megabyte_header_block_is_cut_at_the_bound() -> None:
    raw = padding(10 * 1024 * 1024) + b"Subject: late\r\n\r\nbody"
    block = header_block(raw)
    assert len(block) == MAX_HEADER_BYTES
    assert raw.startswith(block)
    assert read_top_headers(raw).subject is None


def test_subject_after_two_megabytes_of_headers_is_not_found() -> None:
    raw = (b"From: first@example.org\r\n" + padding(2 * 1024 * 1024)
           + b"Subject: too late\r\n\r\n" + b"x" * (8 * 1024 * 1024))
    headers = read_top_headers(raw)
    assert headers.from_ == "first@example.org"
    assert headers.subject is None


def test_subject_just_inside_the_bound_is_found() -> None:
    raw = padding(MAX_HEADER_BYTES - 10_000) + b"Subject: still inside\r\n\r\nbody"
    assert len(raw) < MAX_HEADER_BYTES
    assert read_top_headers(raw).subject == "still inside"


def test_blank_line_past_the_bound_is_not_searched_for() -> None:
    """A blank line after MAX_HEADER_BYTES does not make the block longer than the bound."""
    raw = padding(MAX_HEADER_BYTES + 5000) + b"\r\n" + b"body " * 100_000
    assert len(header_block(raw)) == MAX_HEADER_BYTES
