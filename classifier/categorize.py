"""Category and type of one report: a machine format decides its own, free text is scored.

1. A structured type hint the tables know (``classifier.taxonomy``) whose table confidence
   reaches the threshold *is* the report's type: the format or a labelled field states it (an
   ARF Feedback-Type, an X-ARF Report-Type, a Shadowserver report name, a CERT's type column).
   It takes that category and type with confidence 1.0 and its table evidence; no rule or
   model second-guesses it. ``not-spam`` says the report is no abuse at all: category and type
   None, evidence ``not-abuse``.
2. Otherwise the free text decides, after what is not evidence is taken out of it
   (``classifier.boilerplate``: footers, signatures, disclaimers, banners, quoted replies).
   Every piece of evidence supports one type with a weight in 0..1: the rules that fired
   (``classifier.rules``), the text model's prediction (``model``, its probability scaled by
   how many corrections it has learnt, up to ``MODEL_FULL_TRUST_EXAMPLES``), and a type hint
   too vague to decide. A ``text:*`` hint (the free-text parser's keyword guess) counts only
   when no rule fired: it comes from the same words the rules read. A type's support is the
   noisy-OR of its evidence, ``1 - prod(1 - w)``; the best-supported type wins.

   Its confidence is *calibrated* (a vague hint with no text evidence at all keeps its
   table's confidence): the probability that the winner is the right type, in two steps
   fitted on held-out labelled complaints (``classifier/data/calibration.jsonl``, written for
   this, and the model's own ``tests/classifier/data/complaints.jsonl``):

   * Platt scaling: ``platt = 1 / (1 + exp(-(a + b * best + c * runner_up)))`` over the
     winner's support and the runner-up's, ``CALIBRATION = (a, b, c)`` fitted by logistic
     regression (``fit_calibration``);
   * isotonic regression of "right" on that score (pool adjacent violators, blocks of at least
     ``MIN_BLOCK`` texts, Laplace-smoothed: ``fit_isotonic``); a score takes its block's share
     right (``ISOTONIC``): it corrects what a logistic curve cannot, such as one weak word
     ("ssh") being right far less often than the curve says.

   So a confidence of 0.8 is right about 8 times in 10, and ``confidence_threshold`` reads
   "below this, the text's type is wrong more often than 1 - threshold".

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
from functools import lru_cache

from ..core.policy import TYPES, Classification, Evidence, category_of
from . import boilerplate
from .model import TextModel
from .rules import score_text
from .taxonomy import NOT_ABUSE, TableHit, lookup

__all__ = ["CALIBRATION", "ISOTONIC", "NOT_ABUSE", "absorb", "calibrated", "categorize",
           "fit_calibration", "fit_isotonic", "is_not_abuse", "needs_review", "platt",
           "raw_scores", "spamvertising_override", "support"]

NOT_ABUSE_EVIDENCE = "not-abuse"
MODEL_EVIDENCE = "model"
SPAMVERTISING_EVIDENCE = "rule:spamvertising-site-hosted-here"
MODEL_FULL_TRUST_EXAMPLES = 30  # corrections before the model's word counts in full
MODEL_MAX_WEIGHT = 0.9
STATED_EVIDENCE = "stated-by-format"
# Platt scaling of (best support, runner-up support) to P(right): fitted by fit_calibration on
# classifier/data/calibration.jsonl (tests/classifier/test_categorize_calibration.py refits it).
CALIBRATION = (-2.147, 9.248, -5.16)
# ... and the isotonic map of that score: (lowest score of a block, P(right)), fit_isotonic.
ISOTONIC: tuple[tuple[float, float], ...] = (
    (0.5759, 0.5), (0.6831, 0.6923), (0.8944, 0.9375), (0.9678, 0.9862))
MIN_BLOCK = 10
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
        return Classification(category_of(hit.type), hit.type, 1.0, [hit.evidence, Evidence(
            STATED_EVIDENCE, 1.0, f"{type_hint}: the report's format states its type")])
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


def platt(best: float, runner_up: float,
          coefficients: tuple[float, float, float] = CALIBRATION) -> float:
    """The logistic curve of the two supports (the first step of the calibration)."""
    a, b, c = coefficients
    z = a + b * best + c * runner_up
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def calibrated(best: float, runner_up: float,
               coefficients: tuple[float, float, float] = CALIBRATION,
               steps: tuple[tuple[float, float], ...] = ISOTONIC) -> float:
    """P(the best-supported type is right): the isotonic map of the Platt score (module
    docstring): the share right of the fitted block the score falls in."""
    score = platt(best, runner_up, coefficients)
    if not steps:
        return score
    probability = steps[0][1]
    for start, p in steps:
        if score < start:
            break
        probability = p
    return probability


def fit_isotonic(points: list[tuple[float, bool]], min_block: int | None = None,
                 ) -> tuple[tuple[float, float], ...]:
    """Isotonic regression of "right" on a score: (lowest score of the block, P(right))
    ascending, by pool adjacent violators over blocks of at least *min_block* points,
    Laplace-smoothed. A score maps to the block it falls in (the first below the lowest)."""
    least = MIN_BLOCK if min_block is None else min_block
    blocks: list[list[float]] = []  # [lowest score, right, n]
    tied: dict[float, list[float]] = {}  # one score, one block: ties never straddle a step
    for score, ok in points:
        counts = tied.setdefault(round(score, 6), [0.0, 0.0])
        counts[0] += float(ok)
        counts[1] += 1.0
    for score, (right, n) in sorted(tied.items()):
        blocks.append([score, right, n])
        while len(blocks) > 1 and (
                blocks[-2][2] < least
                or (blocks[-2][1] + 1) / (blocks[-2][2] + 2)
                >= (blocks[-1][1] + 1) / (blocks[-1][2] + 2)):
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    if len(blocks) > 1 and blocks[-1][2] < least:
        last = blocks.pop()
        blocks[-1] = [blocks[-1][0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    return tuple((round(low, 4), round((right + 1) / (n + 2), 4)) for low, right, n in blocks)


@lru_cache(maxsize=1)
def _rule_scores(text: str) -> tuple[str, tuple[tuple[str, tuple[Evidence, ...]], ...]]:
    """*text* without its boilerplate, and the rules' evidence in it by type. The reports of one
    message are classified one after another with the same text: it is read once (the last
    text only is kept, so no other message is ever answered from here)."""
    cleaned = boilerplate.strip(text)
    return cleaned, tuple((t, tuple(ev)) for t, ev in score_text(cleaned, cleaned=True).items())


def raw_scores(text: str, model: TextModel | None = None, hint: TableHit | None = None,
               ) -> tuple[list[tuple[float, str]], dict[str, list[Evidence]]]:
    """The free text's ranked ``(support, type)`` (NOT_ABUSE included) and each type's
    evidence, before calibration; the boilerplate is taken out first."""
    cleaned, scored = _rule_scores(text)
    found = absorb({t: list(ev) for t, ev in scored})
    if hint is not None and (hint.decisive or not found):
        found.setdefault(hint.type, []).append(hint.evidence)
    predicted = _model_evidence(model, cleaned) if model is not None else None
    if predicted is not None:
        found.setdefault(predicted[0], []).append(predicted[1])
    ranked = sorted(((support(ev), t) for t, ev in found.items()),
                    key=lambda st: (-st[0], _ORDER[st[1]]))
    return ranked, found


def _from_text(text: str, model: TextModel | None, hint: TableHit | None) -> Classification:
    ranked, found = raw_scores(text, model, hint)
    candidates = [(s, t) for s, t in ranked if t != NOT_ABUSE]
    if not candidates:
        return Classification(None, None, 0.0, [e for ev in found.values() for e in ev])
    best_support, best = candidates[0]
    others = [(s, t) for s, t in ranked if t != best]
    runner_up = others[0][0] if others else 0.0
    evidence = sorted(found[best], key=lambda e: (-e.weight, e.name))
    evidence += [Evidence(f"competing:{t}", round(s, 3),
                          ", ".join(e.name for e in found[t])) for s, t in others]
    if hint is not None and all(e is hint.evidence for ev in found.values() for e in ev):
        # a vague hint and nothing else: the table's own confidence is all there is
        return Classification(category_of(best), best, hint.confidence, evidence)
    confidence = round(calibrated(best_support, runner_up), 3)
    evidence.append(Evidence("calibration", confidence,
                             f"support {best_support:.3f}, runner-up {runner_up:.3f}"))
    return Classification(category_of(best), best, confidence, evidence)


def fit_calibration(points: list[tuple[float, float, bool]], iterations: int = 200,
                    ) -> tuple[float, float, float]:
    """Platt scaling: the logistic regression of "the winner was right" on (best support,
    runner-up support), by Newton's method (deterministic; a tiny ridge keeps it finite when
    the data separate)."""
    w = [0.0, 0.0, 0.0]
    ridge = 1e-3
    for _ in range(iterations):
        grad = [0.0, 0.0, 0.0]
        hess = [[ridge if i == j else 0.0 for j in range(3)] for i in range(3)]
        for best, runner_up, right in points:
            x = (1.0, best, runner_up)
            p = platt(best, runner_up, (w[0], w[1], w[2]))
            for i in range(3):
                grad[i] += (p - float(right)) * x[i]
                for j in range(3):
                    hess[i][j] += p * (1 - p) * x[i] * x[j]
        for i in range(3):
            grad[i] += ridge * w[i]
        step = _solve3(hess, grad)
        w = [w[i] - step[i] for i in range(3)]
        if max(abs(d) for d in step) < 1e-9:
            break
    return (round(w[0], 3), round(w[1], 3), round(w[2], 3))


def _solve3(m: list[list[float]], v: list[float]) -> list[float]:
    """m^-1 v for a 3x3 system, by Gaussian elimination with partial pivoting."""
    a = [[*row, v[i]] for i, row in enumerate(m)]
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            return [0.0, 0.0, 0.0]
        for r in range(3):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][3] / a[i][i] for i in range(3)]


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
