"""The policy's vocabulary and the shape of a decision, shared by every part of the classifier.

Every decision carries its named evidence, so a specialist can always see why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The acceptable-use policy's three categories and their types (names fixed by the issue).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "spam": ("spam", "virus-spam", "spamvertising"),
    "network": ("malware", "hacking", "port-scan", "ddos", "open-service"),
    "other": ("copyright", "harassment", "phishing", "fraud", "illegal"),
}
TYPES: dict[str, str] = {t: c for c, types in CATEGORIES.items() for t in types}
# A result, not a type: the report complains about nothing (RFC 6430 not-spam).
NOT_ABUSE = "not-abuse"


def category_of(type_: str) -> str:
    """The category of a type; KeyError for a type that is not ours."""
    return TYPES[type_]


@dataclass(frozen=True)
class Evidence:
    """One named reason behind a decision, with how much it weighs (0..1)."""

    name: str  # e.g. "table:arf:abuse", "rule:phishing-words", "model", "resource:cidr"
    weight: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        # what dataclasses.asdict gives, without its deep copy of three immutable values (a
        # decision writes several pieces of evidence per report)
        return {"name": self.name, "weight": self.weight, "detail": self.detail}


@dataclass
class Classification:
    category: str | None
    type: str | None
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "type": self.type, "confidence": self.confidence,
                "evidence": [e.to_json() for e in self.evidence]}
