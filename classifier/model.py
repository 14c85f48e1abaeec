"""A text model learnt from specialists' corrections: multinomial naive Bayes, in pure Python.

Features are word unigrams and bigrams (letters only, lower case; numbers, IP addresses and
dates carry no topic), each counted once per text (binary multinomial NB, which does better than
raw counts on short texts) and hashed with CRC-32 into ``buckets`` slots, so the model's size is
bounded whatever it reads: at most ``buckets`` counts per label. CRC-32, not ``hash()``: Python
salts string hashes per process and the model must mean the same in every worker.

Each ``learn(text, label)`` adds one example (incremental: no retraining pass). Labels are the
policy's types, and ``NOT_ABUSE`` for texts a specialist found to be no abuse at all.
``predict`` gives the most probable label and its posterior probability, tempered by the square
root of the number of known features the text has (naive Bayes multiplies evidence it treats
as independent and is otherwise sure of everything). Ties go to the label first in sorted order;
features are summed in sorted order: the same model and text give the same answer everywhere.

``to_json()``/``from_json()`` persist the counts (a string: the lead keeps it in the database).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from itertools import pairwise
from typing import Any

from ..core.policy import TYPES
from .taxonomy import NOT_ABUSE

FORMAT = 1
DEFAULT_BUCKETS = 2**18
DEFAULT_ALPHA = 0.5  # additive smoothing
MAX_TEXT_CHARS = 20_000
MAX_TOKENS = 2_000
LABELS = frozenset(TYPES) | {NOT_ABUSE}

_WORD = re.compile(r"[^\W\d_]{2,30}")
# Words that say nothing about the kind of abuse; left out of unigrams and bigrams alike.
_STOPWORDS = frozenset((
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "at", "for", "from", "by", "with",
    "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those",
    "our", "your", "their", "my", "we", "you", "they", "he", "she", "his", "her", "i", "me", "us",
    "them", "as", "has", "have", "had", "do", "does", "did", "not", "no", "any", "all", "can",
    "could", "will", "would", "should", "please", "dear", "sir", "madam", "regards", "hello",
    "hi", "there", "here", "which", "who", "what", "when", "where", "than", "then", "so", "if",
    "but", "also", "about", "into", "over",
))


def features(text: str, buckets: int = DEFAULT_BUCKETS) -> list[int]:
    """The sorted, distinct hashed unigrams and bigrams of *text*."""
    words = [w for w in _WORD.findall(text[:MAX_TEXT_CHARS].lower())[:MAX_TOKENS]
             if w not in _STOPWORDS]
    grams = set(words) | {f"{a} {b}" for a, b in pairwise(words)}
    return sorted({zlib.crc32(g.encode("utf-8")) % buckets for g in grams})


class TextModel:
    """Naive Bayes over hashed unigrams and bigrams; see the module docstring."""

    def __init__(self, buckets: int = DEFAULT_BUCKETS, alpha: float = DEFAULT_ALPHA) -> None:
        if buckets < 2 or alpha <= 0:
            raise ValueError("a model needs at least 2 buckets and a positive alpha")
        self.buckets = buckets
        self.alpha = alpha
        self._docs: dict[str, int] = {}  # label -> examples
        self._counts: dict[str, dict[int, int]] = {}  # label -> bucket -> examples having it
        self._totals: dict[str, int] = {}  # label -> sum of its counts
        self._vocabulary: set[int] = set()

    # -- learning ---------------------------------------------------------------------------

    def learn(self, text: str, label: str) -> None:
        """Add one labelled example: a type of the policy, or NOT_ABUSE."""
        if label not in LABELS:
            raise ValueError(f"cannot learn {label!r}: not a type of the policy nor {NOT_ABUSE}")
        found = features(text, self.buckets)
        self._docs[label] = self._docs.get(label, 0) + 1
        counts = self._counts.setdefault(label, {})
        for f in found:
            counts[f] = counts.get(f, 0) + 1
        self._totals[label] = self._totals.get(label, 0) + len(found)
        self._vocabulary.update(found)

    @property
    def examples_seen(self) -> int:
        return sum(self._docs.values())

    @property
    def labels(self) -> list[str]:
        """The labels learnt so far, sorted."""
        return sorted(self._docs)

    # -- predicting -------------------------------------------------------------------------

    def probabilities(self, text: str) -> dict[str, float]:
        """label -> posterior probability; empty when the text has no feature the model knows."""
        known = [f for f in features(text, self.buckets) if f in self._vocabulary]
        if not known:
            return {}
        total_docs = self.examples_seen
        smoothing = self.alpha * len(self._vocabulary)
        logs: dict[str, float] = {}
        for label in self.labels:
            counts = self._counts[label]
            denominator = math.log(self._totals[label] + smoothing)
            score = math.log(self._docs[label] / total_docs)
            for f in known:
                score += math.log(counts.get(f, 0) + self.alpha) - denominator
            logs[label] = score
        temperature = math.sqrt(len(known))
        top = max(logs.values())
        weights = {label: math.exp((s - top) / temperature) for label, s in logs.items()}
        norm = sum(weights.values())
        return {label: w / norm for label, w in weights.items()}

    def predict(self, text: str) -> tuple[str | None, float]:
        """The most probable label and its probability; (None, 0.0) when the model cannot say."""
        probabilities = self.probabilities(text)
        if not probabilities:
            return None, 0.0
        best = max(sorted(probabilities), key=lambda label: probabilities[label])
        return best, probabilities[best]

    # -- persistence ------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "buckets": self.buckets, "alpha": self.alpha,
            "docs": self._docs,
            "counts": {label: {str(f): n for f, n in sorted(c.items())}
                       for label, c in self._counts.items()},
        }, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> TextModel:
        """The model *to_json* wrote; ValueError for anything else."""
        try:
            doc: Any = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError(f"not a text model of format {FORMAT}")
            return cls._restore(doc)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a text model of format {FORMAT}: {exc!r}") from exc

    @classmethod
    def _restore(cls, doc: dict[str, Any]) -> TextModel:
        model = cls(int(doc["buckets"]), float(doc["alpha"]))
        for label, n in doc["docs"].items():
            if label not in LABELS:
                raise ValueError(f"stored model knows an unknown label {label!r}")
            if int(n) < 1:
                raise ValueError(f"stored model has {n} examples of {label!r}")
            model._docs[label] = int(n)
            counts = {int(f): int(c) for f, c in doc["counts"].get(label, {}).items()}
            if any(not 0 <= f < model.buckets for f in counts):
                raise ValueError(f"stored model has a feature outside its {model.buckets} buckets")
            model._counts[label] = counts
            model._totals[label] = sum(counts.values())
            model._vocabulary.update(counts)
        return model
