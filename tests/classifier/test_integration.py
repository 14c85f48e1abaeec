"""The classifier inside the pipeline: customers resolved, duplicates merged, the review queue
and a specialist's decision teaching the model, and `abuse-desk parse --json` filled in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from abuse_desk.app import cli
from abuse_desk.app.wiring import Desk
from abuse_desk.casework import review
from abuse_desk.classifier.customer_import import import_customers
from abuse_desk.core.models import Event, ModelState, Report, TrainingExample
from abuse_desk.ingest.store import Envelope, insert_messages, message_row
from sqlalchemy import select

CUSTOMERS = """customer_id,name,email,resource,valid_from,valid_until
C-1,Alpha Hosting,noc@alpha.example,45.137.21.0/24,,
C-2,Beta Shop,ops@beta.example,shop.beta.example,,
"""


def complaint(subject: str, body: str, message_id: str) -> bytes:
    return (f"From: Someone <someone@example.org>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}@example.org>\r\nDate: Sun, 1 Mar 2026 10:00:00 +0000"
            f"\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def desk(fixed_desk: Desk, tmp_path: Path) -> Desk:
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS)
    import_customers(fixed_desk.engine, path, clock=fixed_desk.clock)
    return fixed_desk


def run(desk: Desk, raw: bytes) -> list[Report]:
    with desk.engine.begin() as conn:
        (message_id,) = insert_messages(conn, [message_row(raw, Envelope(
            None, ["abuse@x"], received_at=desk.clock()))])
    desk.pipeline.process(message_id)
    with desk.sessions() as session:
        return list(session.scalars(select(Report).where(Report.message_id == message_id)))


def test_report_gets_category_type_and_customer(desk: Desk) -> None:
    (report,) = run(desk, complaint(
        "Phishing site at 45.137.21.7",
        "Your server 45.137.21.7 hosts a phishing page imitating a bank login page that "
        "steals credentials: http://45.137.21.7/bank/login", "p1"))
    assert (report.category, report.type) == ("other", "phishing")
    assert report.customer_id is not None
    assert report.decision["matches"][0]["customer"] == "C-1"
    assert report.decision["matches"][0]["via"] == "source_ip"
    assert report.decision["classification"]


def test_duplicate_is_merged_and_counted(desk: Desk) -> None:
    raw = complaint("Phishing site at 45.137.21.8",
                    "Phishing page stealing bank credentials at 45.137.21.8", "dup")
    (first,) = run(desk, raw)
    (second,) = run(desk, raw)  # the same mail delivered again as a new message
    assert second.duplicate_of == first.id
    with desk.sessions() as session:
        assert session.get(Report, first.id).duplicates == 1  # type: ignore[union-attr]


def test_review_decision_teaches_the_model(desk: Desk) -> None:
    (report,) = run(desk, complaint("hello", "something odd about 203.0.113.99", "odd"))
    waiting = desk.review.queue()
    assert [item["report_id"] for item in waiting] == [report.id]
    assert "no customer resolves" in waiting[0]["review_reasons"]

    outcome = desk.review.decide(review.ReviewDecision(
        report_id=report.id, decided_by="alice", type="harassment", customer="C-2"))
    assert (outcome.category, outcome.type, outcome.external_id) == (
        "other", "harassment", "C-2")
    assert desk.review.queue() == []
    with desk.sessions() as session:
        (example,) = session.scalars(select(TrainingExample))
        assert (example.type, example.decided_by, example.report_id) == (
            "harassment", "alice", report.id)
        state = session.get(ModelState, "text-model")
        assert state is not None and state.examples == 1
        (event,) = session.scalars(select(Event).where(Event.subject_type == "report"))
        assert (event.actor_kind, event.actor, event.action) == (
            "specialist", "alice", "review-decision")


def test_review_decision_errors_say_what_to_do(desk: Desk) -> None:
    (report,) = run(desk, complaint("hello", "odd 203.0.113.98", "odd2"))
    with pytest.raises(review.ReviewError, match="unknown type 'spamm'"):
        desk.review.decide(review.ReviewDecision(report.id, "alice", type="spamm"))
    with pytest.raises(review.ReviewError, match="import it first"):
        desk.review.decide(review.ReviewDecision(report.id, "alice", customer="C-404"))


def test_cli_review_and_parse_use_the_database(env_db_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text(CUSTOMERS)
    assert cli.main(["customers", "import", str(csv)]) == 0
    mail = tmp_path / "m.eml"
    mail.write_bytes(complaint("Phishing site at 45.137.21.9",
                               "A phishing page stealing bank credentials at 45.137.21.9",
                               "cli"))
    capsys.readouterr()
    assert cli.main(["parse", "--json", str(mail)]) == 0
    (report,) = json.loads(capsys.readouterr().out)["reports"]
    assert (report["category"], report["type"], report["customer_id"]) == (
        "other", "phishing", "C-1")
    assert cli.main(["review", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_message_no_parser_could_read_is_in_the_queue(desk: Desk) -> None:
    many = (b"From: r@example.org\r\nSubject: bomb\r\nContent-Type: multipart/mixed; boundary=X"
            b"\r\n\r\n" + b"--X\r\n\r\npart\r\n" * 5000 + b"--X--\r\n")
    assert run(desk, many) == []
    (item,) = desk.review.queue()
    assert item["report_id"] is None
    assert item["review_reasons"][0].startswith("too many MIME parts")


def test_arf_not_spam_is_recorded_as_not_abuse_and_not_queued(desk: Desk) -> None:
    raw = (Path(__file__).parent.parent / "parsers" / "data" / "arf" / "not_spam.eml").read_bytes()
    (report,) = run(desk, raw)
    assert (report.category, report.type) == (None, None)
    assert report.decision["not_abuse"] is True
    assert report.review_reason is None
    assert desk.review.queue() == []
