"""The accuracy harness (bench/accuracy.py): labels are checked, and scoring says what a
specialist would say of a message, on small corpora built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import accuracy

SPAM = ("From: Pat <pat@mailbox.example>\nTo: abuse@integra-isp.example\n"
        "Subject: spam\nDate: Mon, 23 Nov 2026 09:14:02 +0000\nMessage-ID: <1@mailbox.example>\n\n"
        "Your customer at 45.67.89.10 sent me spam on 2026-11-23 08:00:00 UTC.\n")
BOUNCE = ("From: MAILER-DAEMON@mx.example\nTo: abuse@integra-isp.example\n"
          "Subject: Undelivered Mail Returned to Sender\nDate: Mon, 23 Nov 2026 09:14:02 +0000\n"
          "Message-ID: <2@mx.example>\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
          "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
          "--b\nContent-Type: text/plain\n\nNot delivered.\n--b\n"
          "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
          "Final-Recipient: rfc822; x@y.example\nAction: failed\nStatus: 5.1.1\n--b--\n")


def kind(root: Path, name: str, files: dict[str, str], labels: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    (folder / "labels.toml").write_text(labels)
    return folder


def test_labels_are_checked(tmp_path: Path) -> None:
    kind(tmp_path, "k", {"1.eml": SPAM}, '[[message]]\nfile = "1.eml"\n')
    with pytest.raises(accuracy.LabelError, match="a report must list the reports it gives"):
        accuracy.load_corpus(tmp_path)
    (tmp_path / "k" / "labels.toml").write_text(
        '[[message]]\nfile = "1.eml"\n[[message.report]]\noffender = "45.67.89.10"\n'
        'category = "unwanted"\n')
    with pytest.raises(accuracy.LabelError, match="category 'unwanted' is not one of"):
        accuracy.load_corpus(tmp_path)
    (tmp_path / "k" / "2.eml").write_text(SPAM)
    (tmp_path / "k" / "labels.toml").write_text(
        '[[message]]\nfile = "1.eml"\n[[message.report]]\noffender = "45.67.89.10"\n'
        'category = "spam"\n')
    with pytest.raises(accuracy.LabelError, match=r"no label for 2\.eml"):
        accuracy.load_corpus(tmp_path)


def test_a_right_answer_and_a_wrong_one_are_scored_as_such(tmp_path: Path) -> None:
    kind(tmp_path, "people", {"1.eml": SPAM, "2.eml": SPAM, "3.eml": BOUNCE}, """
[[message]]
file = "1.eml"
[[message.report]]
offender = "45.67.89.10"
time = "2026-11-23T08:00:00Z"
category = "spam"
type = "spam"

[[message]]
file = "2.eml"
[[message.report]]
offender = "45.67.89.11"
category = "spam"
type = "spam"

[[message]]
file = "3.eml"
expect = "bounce"
""")
    scores = accuracy.run(accuracy.load_corpus(tmp_path))
    right, wrong, bounce = scores
    assert (right.offender_right, right.time_right, right.category_right,
            right.customer_right) == (True, True, True, True)
    assert right.decided or right.in_review  # decided unless the text's category is unsure
    assert not wrong.offender_right and not wrong.decided
    assert wrong.why[0] == "offender: missed 45.67.89.11; took 45.67.89.10"
    assert bounce.ignored_right
    figures = accuracy.figures(scores)
    assert (figures["complaints"], figures["non_reports"]) == (2, 1)
    assert figures["offender_right"] == 50.0
    assert figures["non_reports_ignored"] == 100.0


def test_offenders_are_compared_in_one_form() -> None:
    assert accuracy.normalize_offender("2001:DB8:0:0::1") == "2001:db8::1"
    assert accuracy.normalize_offender(" Shop.Example. ") == "shop.example"
    assert accuracy.normalize_offender("[192.0.2.1]") == "192.0.2.1"


def test_the_corpus_is_large_and_varied_enough() -> None:
    samples = accuracy.load_corpus(accuracy.DEFAULT_CORPUS)
    kinds = {s.kind for s in samples}
    assert len(samples) >= 300 and len(kinds) >= 40
    assert sum(not s.is_report for s in samples) >= 60  # non-reports of several kinds


def test_an_ignored_non_report_must_be_named_as_what_it_is(tmp_path: Path) -> None:
    kind(tmp_path, "desks", {"1.eml": BOUNCE, "2.eml": BOUNCE}, """
[[message]]
file = "1.eml"
expect = "ticket-ack"

[[message]]
file = "2.eml"
expect = "other"
""")
    misnamed, other = accuracy.run(accuracy.load_corpus(tmp_path))
    assert not misnamed.ignored_right
    assert misnamed.why == ["a ticket-ack ignored as bounce"]
    assert other.ignored_right  # "other" names no kind


def test_the_desk_meets_the_targets_on_its_labelled_corpus() -> None:
    """Issue 17's targets on tests/accuracy, so a change that loses ground on a kind of
    report fails here (`make accuracy ACCURACY_ARGS=--misses` says which messages and why)."""
    figures = accuracy.figures(accuracy.run(accuracy.load_corpus(accuracy.DEFAULT_CORPUS)))
    short = {name: (figures[name], target) for name, target in accuracy.TARGETS.items()
             if figures[name] is None or figures[name] < target}
    assert not short, f"below target (figure, target): {short}"
