"""workflow/redaction.py on its own: a person's complaint loses its writer's personal data and
keeps its evidence; hostile text is answered within a bound."""

from __future__ import annotations

import re
import time

import pytest
from abuse_desk.workflow.redaction import MAX_TEXT, redact_person

KEY = b"test redaction key"
HASHED = re.compile(r"\b[0-9a-f]{64}@")


def redact(text: str, **kwargs: object) -> str:
    return redact_person(text, secret=KEY, **kwargs)  # type: ignore[arg-type]


def test_signature_greeting_phone_and_postal_address_go() -> None:
    text = ("Hello,\n\nI'm Jane Doe. Your customer at 45.137.21.7 spams us.\n"
            "Call +44 20 7946 0958 or (555) 010-4477.\n\n"
            "Kind regards,\nJane Doe\nDoe Flowers Ltd\n221B Baker Street\nLondon NW1 6XE\n"
            "Phone: 020 7946 0958\n")
    out = redact(text, names=["Jane Doe"])
    for personal in ("Jane", "Doe", "7946", "010-4477", "Baker", "NW1", "Flowers"):
        assert personal not in out, (personal, out)
    assert "Your customer at 45.137.21.7 spams us." in out
    assert "[signature removed]" in out and "[phone removed]" in out


def test_a_closing_after_a_blank_line_takes_the_next_paragraph_but_not_evidence() -> None:
    out = redact("Spam from 45.137.21.7.\n\nThanks,\n\nJane\nHauptstraße 5\nD-10115 Berlin\n"
                 "Tel. 030 1234567\n", names=["Jane Doe"])
    assert out.strip().endswith("[signature removed]")
    assert "Haupt" not in out and "10115" not in out and "1234567" not in out
    kept = redact("The logs:\n\nRegards,\n\n2026-11-24 13:50:01 45.137.21.7 sshd: failed\n")
    assert "2026-11-24 13:50:01 45.137.21.7 sshd: failed" in kept


def test_a_sig_delimiter_ends_the_text() -> None:
    out = redact("45.137.21.7 scanned us.\n-- \nJane | +1 555 010 4477 | jane@people.example\n")
    assert out == "45.137.21.7 scanned us.\n[signature removed]"


def test_labelled_lines_and_recipient_display_names_go() -> None:
    out = redact("Name: Jane Doe\nMobile: 0171 5550199\nAddress: 12 Oak Road, Leeds\n"
                 "IP address: 45.137.21.7\nTo: \"Jane Doe\" <jane@people.example>, "
                 "Bob <bob@people.example>\nTo: undisclosed-recipients:;\n")
    assert "Jane" not in out and "5550199" not in out and "Oak" not in out and "Bob" not in out
    assert "IP address: 45.137.21.7" in out
    assert "To: undisclosed-recipients:;" in out
    assert len(HASHED.findall(out)) == 2  # the two addresses, hashed (RFC 6590), domains kept
    assert out.count("@people.example") == 2


def test_structured_evidence_stays() -> None:
    evidence = ("Nov 24 13:50:01 mx sshd[12345]: Failed password for root from 45.137.21.7 "
                "port 40000 ssh2\n"
                "2026-11-24T13:50:01Z GET http://shop.alpha.example/login?id=1234567 200\n"
                "24.11.2026 14:00 UTC 2001:db8::7 -> 198.51.100.7:25 (450 messages)\n"
                "Version 1.2.3, ASN 64496, port 3389")
    assert redact(evidence, names=["Abuse Team"]) == evidence


def test_every_address_is_hashed_with_its_domain_kept() -> None:
    out = redact("Spam from offers@bulk.example to me, jane.doe@people.example.",
                 addresses=["jane.doe@people.example"])
    assert "offers@" not in out and "jane.doe" not in out
    assert "@bulk.example" in out and "@people.example" in out
    # Stable: the same address gives the same code.
    assert redact("offers@bulk.example") == redact("x offers@bulk.example").split(" ")[1]


@pytest.mark.parametrize("hostile", [
    " " * MAX_TEXT, "1." * (MAX_TEXT // 2), "1 " * (MAX_TEXT // 2), "a:" * (MAX_TEXT // 2),
    "name" + " " * MAX_TEXT, ">" * MAX_TEXT, "Regards,\n" * (MAX_TEXT // 9),
    "a@b." * (MAX_TEXT // 4), "A" + "a" * MAX_TEXT, "To: " + "a" * MAX_TEXT,
    "+1 (" * (MAX_TEXT // 4), "12 Main " * (MAX_TEXT // 8)])
def test_hostile_text_is_answered_within_a_bound(hostile: str) -> None:
    started = time.monotonic()
    redact(hostile * 4, names=["Jane Doe"], addresses=["x@y.example"])  # cut to MAX_TEXT
    assert time.monotonic() - started < 5.0  # a hang guard: 16x the evidence a notice shows
