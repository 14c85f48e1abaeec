"""Category and type of one report: the tables decide what they can, free text the rest.

1. A structured type hint the tables know (``classifier.taxonomy``) decides, with the table's
   confidence and evidence, when that confidence reaches the threshold. ``not-spam`` says the
   report is no abuse at all: category and type None, evidence ``not-abuse``.
2. Otherwise the free text decides. Every piece of evidence supports one type with a weight in
   0..1: the rules that fired (``classifier.rules``), the text model's prediction (``model``,
   its probability scaled by how many corrections it has learnt, up to
   ``MODEL_FULL_TRUST_EXAMPLES``), and the type hint itself when it was too vague to decide or
   is a ``text:*`` keyword guess. A type's support is the noisy-OR of its evidence,
   ``1 - prod(1 - w)``; the best-supported type wins, and its confidence is its support
   discounted by the runner-up's: ``support * (1 - RUNNER_UP_DISCOUNT * runner_up)``, so two
   types with strong evidence leave a doubt a person resolves.

   A narrower type absorbs the rule evidence of the broader types it is made of (``ABSORBS``):
   a mail with an infected attachment says "virus" and "spam", and that is virus-spam, not a
   contest between malware and spam.

Where the confidence is too low to act on is the caller's decision; ``needs_review`` words it.
The model may learn ``NOT_ABUSE`` from specialists; from free text it is only ever a competitor
that lowers confidence, never a decision to drop a report.
"""

from __future__ import annotations

import math
from dataclasses import replace

from classifier.model import TextModel
from classifier.rules import score_text
from classifier.taxonomy import NOT_ABUSE, TableHit, lookup
from classifier.types import TYPES, Classification, Evidence, category_of

__all__ = ["NOT_ABUSE", "absorb", "categorize", "is_not_abuse", "needs_review",
           "spamvertising_override", "support"]

NOT_ABUSE_EVIDENCE = "not-abuse"
MODEL_EVIDENCE = "model"
SPAMVERTISING_EVIDENCE = "rule:spamvertising-site-hosted-here"
MODEL_FULL_TRUST_EXAMPLES = 30  # corrections before the model's word counts in full
MODEL_MAX_WEIGHT = 0.9
RUNNER_UP_DISCOUNT = 0.5
# narrower type -> the broader types whose rule evidence counts for it once one of its own
# rules fired
ABSORBS: dict[str, tuple[str, ...]] = {
    "virus-spam": ("malware", "spam"),
    "spamvertising": ("spam",),
}
_ORDER = {t: i for i, t in enumerate([*TYPES, NOT_ABUSE])}  # ties: the policy's order


def categorize(type_hint: str | None, text: str, model: TextModel | None = None,
               threshold: float = 0.6) -> Classification:
    """The category, type, confidence and evidence of one report (see the module docstring)."""
    hit = lookup(type_hint) if type_hint else None
    if hit is not None and hit.type == NOT_ABUSE:
        return Classification(None, None, hit.confidence, [hit.evidence, Evidence(
            NOT_ABUSE_EVIDENCE, hit.confidence, f"{type_hint}: the reporter says it is no abuse")])
    if hit is not None and hit.decisive and hit.confidence >= threshold:
        return Classification(category_of(hit.type), hit.type, hit.confidence, [hit.evidence])
    return _from_text(text, model, hit)


def support(evidence: list[Evidence]) -> float:
    """Noisy-OR of the weights: how strongly independent evidence backs one type."""
    return 1.0 - math.prod(1.0 - min(1.0, max(0.0, e.weight)) for e in evidence)


def _model_evidence(model: TextModel, text: str) -> tuple[str, Evidence] | None:
    label, probability = model.predict(text)
    if label is None:
        return None
    trust = min(1.0, model.examples_seen / MODEL_FULL_TRUST_EXAMPLES)
    weight = round(min(MODEL_MAX_WEIGHT, probability * trust), 3)
    return label, Evidence(MODEL_EVIDENCE, weight,
                           f"{label} p={probability:.2f} after {model.examples_seen} examples")


def absorb(found: dict[str, list[Evidence]]) -> dict[str, list[Evidence]]:
    """*found* with the evidence of broader types credited to a narrower type that fired."""
    result = {t: list(ev) for t, ev in found.items()}
    for narrow, broader in ABSORBS.items():
        if narrow in found:
            for broad in broader:
                result[narrow] += result.pop(broad, [])
    return result


def _from_text(text: str, model: TextModel | None, hint: TableHit | None) -> Classification:
    found = absorb(score_text(text))
    if hint is not None:
        found.setdefault(hint.type, []).append(hint.evidence)
    predicted = _model_evidence(model, text) if model is not None else None
    if predicted is not None:
        found.setdefault(predicted[0], []).append(predicted[1])
    ranked = sorted(((support(ev), t) for t, ev in found.items()),
                    key=lambda st: (-st[0], _ORDER[st[1]]))
    candidates = [(s, t) for s, t in ranked if t != NOT_ABUSE]
    if not candidates:
        return Classification(None, None, 0.0, [e for ev in found.values() for e in ev])
    best_support, best = candidates[0]
    others = [(s, t) for s, t in ranked if t != best]
    runner_up = others[0][0] if others else 0.0
    confidence = round(best_support * (1.0 - RUNNER_UP_DISCOUNT * runner_up), 3)
    evidence = sorted(found[best], key=lambda e: (-e.weight, e.name))
    evidence += [Evidence(f"competing:{t}", round(s, 3),
                          ", ".join(e.name for e in found[t])) for s, t in others]
    return Classification(category_of(best), best, confidence, evidence)


def is_not_abuse(classification: Classification) -> bool:
    """The report complains about nothing (e.g. an ARF not-spam report)."""
    return classification.type is None and any(
        e.name == NOT_ABUSE_EVIDENCE for e in classification.evidence)


def needs_review(classification: Classification, threshold: float) -> str | None:
    """Why a person must decide the category, or None when the classification may stand."""
    if is_not_abuse(classification):
        return None
    if classification.type is None or classification.confidence < threshold:
        return (f"category confidence {classification.confidence:.2f} "
                f"below threshold {threshold:.2f}")
    return None


def spamvertising_override(classification: Classification, ip_is_ours: bool,
                           url_is_ours: bool) -> Classification:
    """Spam sent from someone else's IP that advertises a site we host is spamvertising
    against the site's customer. Anything else is returned as it was."""
    if classification.type != "spam" or ip_is_ours or not url_is_ours:
        return classification
    return replace(classification, category=category_of("spamvertising"), type="spamvertising",
                   evidence=[*classification.evidence, Evidence(
                       SPAMVERTISING_EVIDENCE, 1.0,
                       "spam from a source IP that is not ours advertising a URL hosted here")])
