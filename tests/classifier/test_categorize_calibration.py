"""The text's confidence is calibrated: refitting on the held-out complaints gives the shipped
coefficients, and on them a confidence means what it says."""

from __future__ import annotations

import json
from pathlib import Path

from abuse_desk.classifier.categorize import (
    CALIBRATION,
    ISOTONIC,
    calibrated,
    fit_calibration,
    fit_isotonic,
    platt,
    raw_scores,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = [ROOT / "classifier" / "data" / "calibration.jsonl",
        ROOT / "tests" / "classifier" / "data" / "complaints.jsonl"]


def points() -> list[tuple[float, float, bool]]:
    """(best support, runner-up support, winner right) of every labelled text with evidence."""
    found = []
    for path in DATA:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            ranked, _ = raw_scores(row["text"])
            if ranked:
                runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
                found.append((ranked[0][0], runner_up, ranked[0][1] == row["type"]))
    return found


def test_the_shipped_coefficients_are_the_fit_of_the_data() -> None:
    data = points()
    fitted = fit_calibration(data)
    assert all(abs(a - b) < 0.05 for a, b in zip(fitted, CALIBRATION, strict=True)), fitted
    steps = fit_isotonic([(platt(b, r), ok) for b, r, ok in data])
    assert len(steps) == len(ISOTONIC)
    assert all(abs(x - y) < 0.02 for step, shipped in zip(steps, ISOTONIC, strict=True)
               for x, y in zip(step, shipped, strict=True)), steps


def test_a_confidence_means_what_it_says_on_the_held_out_data() -> None:
    data = points()
    assert len(data) >= 200
    # reliability: in each band the share right is close to the mean confidence
    for low, high in ((0.0, 0.8), (0.8, 0.95), (0.95, 1.01)):
        band = [(calibrated(b, r), ok) for b, r, ok in data if low <= calibrated(b, r) < high]
        if len(band) < 10:
            continue
        mean = sum(c for c, _ in band) / len(band)
        right = sum(ok for _, ok in band) / len(band)
        assert abs(mean - right) < 0.12, (low, high, mean, right, len(band))
    # the threshold's reading: above 0.6, wrong less than 40 % of the time (far less here)
    above = [ok for b, r, ok in data if calibrated(b, r) >= 0.6]
    assert sum(above) / len(above) >= 0.9


def test_more_doubt_from_a_strong_runner_up_and_more_trust_from_more_evidence() -> None:
    assert calibrated(0.6, 0.0) >= calibrated(0.6, 0.5) >= calibrated(0.6, 0.6)
    assert calibrated(0.6, 0.0) > calibrated(0.6, 0.6)
    assert calibrated(0.936, 0.0) >= calibrated(0.6, 0.0)
    assert calibrated(0.6, 0.6) < 0.6  # a tie is a coin toss a person decides
    # one weak word ("ssh") alone is right less often than the logistic curve alone says
    assert calibrated(0.3, 0.0) < 0.6 < platt(0.3, 0.0) + 0.2


def test_the_fit_is_a_logistic_regression() -> None:
    # a separable toy set: right when best is high, wrong when the runner-up is as high
    toy = [(0.9, 0.0, True)] * 20 + [(0.6, 0.6, False)] * 20 + [(0.6, 0.0, True)] * 15 \
        + [(0.6, 0.0, False)] * 5
    a, b, c = fit_calibration(toy)
    assert abs(platt(0.6, 0.0, (a, b, c)) - 0.75) < 0.05
    assert platt(0.9, 0.0, (a, b, c)) > 0.95
    assert platt(0.6, 0.6, (a, b, c)) < 0.1


def test_the_isotonic_step_is_monotone_smoothed_and_pools_violators() -> None:
    points = [(0.1, False)] * 10 + [(0.2, True)] * 3 + [(0.3, False)] * 7 + [(0.9, True)] * 10
    steps = fit_isotonic(points, min_block=5)
    probabilities = [p for _, p in steps]
    assert probabilities == sorted(probabilities)
    assert steps[-1] == (0.9, round(11 / 12, 4))  # Laplace: never 1.0 from 10 of 10
    assert steps[0][1] < 0.3
    # a score takes the share right of the block it falls in
    assert calibrated(-10.0, 0.0, (0.0, 1.0, 0.0), steps) == steps[0][1]
    assert calibrated(10.0, 0.0, (0.0, 1.0, 0.0), steps) == steps[-1][1]
    assert calibrated(0.0, 0.0, (0.0, 1.0, 0.0), steps) == steps[-2][1]  # Platt score 0.5
