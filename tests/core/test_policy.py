"""core/policy.py: what a decision's evidence is stored as."""

from __future__ import annotations

import dataclasses

from abuse_desk.core.policy import Evidence


def test_evidence_is_stored_with_every_field_it_has() -> None:
    evidence = Evidence("rule:phishing-words", 0.84, "matched: phishing, credentials")
    assert evidence.to_json() == dataclasses.asdict(evidence)
    assert Evidence("model", 0.5).to_json() == {"name": "model", "weight": 0.5, "detail": ""}
