"""core/mail.py Mail: the message is fed to the parser in chunks, and that changes nothing."""

from __future__ import annotations

import email
from email.policy import Policy, compat32

import pytest
from abuse_desk.core import mail as mail_module
from abuse_desk.core.mail import Deadline, LimitExceeded, Mail
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import corpus_or_skip


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_chunked_feed_parses_every_corpus_mail_as_the_whole_bytes_would(
        monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    # Small chunks split CRLF pairs, boundaries and encoded words across feeds.
    corpus = corpus_or_skip()
    monkeypatch.setattr(mail_module, "FEED_CHUNK", chunk)
    paths = sorted(p for p in corpus.rglob("*.eml") if p.stat().st_size < 200_000)
    assert len(paths) > 50
    for path in paths[:: 1 if chunk > 1 else 10]:
        raw = path.read_bytes()
        # Mail renames report content types before parsing (see parsers.mail): so does this.
        renamed = mail_module._REPORT_TYPES.sub(rb"\1" + mail_module._PRIVATE.encode(), raw)
        whole = email.message_from_bytes(renamed, policy=compat32)
        fed = Mail(raw).msg
        assert [p.get_content_type() for p in fed.walk()] == \
            [p.get_content_type() for p in whole.walk()], path
        assert [p.get_payload(decode=True) for p in fed.walk() if not p.is_multipart()] == \
            [p.get_payload(decode=True) for p in whole.walk() if not p.is_multipart()], path
        assert fed.items() == whole.items(), path


def test_the_time_budget_applies_while_the_message_is_fed() -> None:
    raw = b"Subject: x\r\n\r\n" + b"line\r\n" * 100_000
    with pytest.raises(LimitExceeded, match="time budget"):
        Mail(raw, deadline=Deadline(-1.0))


# Header values as an embedded message carries them: continuation lines, long lines, blanks
# at either end, non-ASCII and bytes Python kept as surrogates, a line that looks like a header.
_VALUE_PIECES = ["a", "Received: from", "x" * 70, " ", "\t", "\r\n ", "\r\n\t", "\n", "\r\n",
                 "\r\nX-Embedded: y", ";", ",", "é", "\udce9", "=?utf-8?q?a?=", "\x0c", ""]


@given(name=st.sampled_from(["Subject", "X-Very-Long-Header-Name-Of-A-Feedback-Loop", "To"]),
       pieces=st.lists(st.sampled_from(_VALUE_PIECES), max_size=12))
@settings(max_examples=500, deadline=None)
def test_an_embedded_message_is_written_back_as_compat32_writes_it(
        name: str, pieces: list[str]) -> None:
    """Writing a header directly when folding would not change it gives compat32's bytes."""
    value = "".join(pieces)

    def written(policy: Policy) -> bytes | str:
        try:
            return policy.fold_binary(name, value)
        except Exception as exc:  # the same failure either way
            return repr(exc)

    assert written(mail_module._RESERIALISE) == written(compat32)


def test_every_corpus_header_is_written_back_as_compat32_writes_it() -> None:
    corpus = corpus_or_skip()
    paths = sorted(p for p in corpus.rglob("*.eml") if p.stat().st_size < 200_000)
    for path in paths:
        try:
            parsed = Mail(path.read_bytes()).msg
        except LimitExceeded:
            continue
        for part in parsed.walk():
            for name, value in part.raw_items():
                assert mail_module._RESERIALISE.fold_binary(name, value) == \
                    compat32.fold_binary(name, value), (path, name)
