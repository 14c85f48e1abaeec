"""The server-side SVG chart: well-formed XML, bars as tall as their values, every text escaped,
accessible, no inline style, and sane with no data or one day."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from abuse_desk.web import svg

NS = "{http://www.w3.org/2000/svg}"
DAYS = ["2026-11-22", "2026-11-23", "2026-11-24"]


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def rects(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    """The bars' segments by (day, series)."""
    found = {}
    for bar in root.iter(f"{NS}g"):
        if bar.get("class") != "bar":
            continue
        for rect in bar.findall(f"{NS}rect"):
            found[(bar.get("data-label") or "", rect.get("data-series") or "")] = rect
    return found


def height(rect: ET.Element) -> float:
    return float(rect.get("height") or "nan")


def test_bar_heights_are_proportional_to_the_values_and_stack() -> None:
    root = parse(svg.stacked_bars({"spam": [2, 0, 8], "network": [1, 4, 0]}, DAYS))
    segments = rects(root)
    assert set(segments) == {(DAYS[0], "spam"), (DAYS[0], "network"), (DAYS[1], "network"),
                             (DAYS[2], "spam")}  # no rectangle for a zero
    unit = height(segments[(DAYS[0], "network")])
    assert unit > 0
    assert height(segments[(DAYS[0], "spam")]) == pytest.approx(2 * unit, rel=1e-3)
    assert height(segments[(DAYS[1], "network")]) == pytest.approx(4 * unit, rel=1e-3)
    assert height(segments[(DAYS[2], "spam")]) == pytest.approx(8 * unit, rel=1e-3)
    # Stacked: the second series sits on top of the first.
    first, second = segments[(DAYS[0], "spam")], segments[(DAYS[0], "network")]
    assert float(second.get("y") or 0) + height(second) == pytest.approx(
        float(first.get("y") or 0), abs=0.02)
    # A category keeps its colour.
    assert first.get("fill") == svg.COLORS["spam"] == segments[(DAYS[2], "spam")].get("fill")
    assert second.get("fill") == svg.COLORS["network"]


def test_y_ticks_are_round_numbers_reaching_the_tallest_bar() -> None:
    root = parse(svg.stacked_bars({"spam": [3, 17, 0], "other": [0, 6, 1]}, DAYS))
    axis = next(g for g in root.iter(f"{NS}g") if g.get("class") == "y-axis")
    ticks = [int(t.text or "") for t in axis.findall(f"{NS}text")]
    assert ticks == [0, 5, 10, 15, 20, 25]
    assert svg.nice_ceiling(7) == (8, 2)
    assert svg.nice_ceiling(1234) == (1500, 500)
    assert svg.nice_ceiling(0) == (1, 1)


def test_accessible_with_a_title_per_bar_and_a_legend() -> None:
    root = parse(svg.stacked_bars({"spam": [2, 0, 8], "other": [1, 1, 1]}, DAYS,
                                  title="Reports per day", tick_labels=["22", "23", "24"]))
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Reports per day"
    desc = root.find(f"{NS}desc")
    assert desc is not None and "13 in all" in (desc.text or "")
    assert "spam 10" in (desc.text or "") and "other 3" in (desc.text or "")
    titles = [b.findtext(f"{NS}title") for b in root.iter(f"{NS}g") if b.get("class") == "bar"]
    assert titles == ["2026-11-22: 3 (spam 2, other 1)", "2026-11-23: 1 (spam 0, other 1)",
                      "2026-11-24: 9 (spam 8, other 1)"]
    legend = next(g for g in root.iter(f"{NS}g") if g.get("class") == "legend")
    assert [t.text for t in legend.findall(f"{NS}text")] == ["spam", "other"]
    x_axis = next(g for g in root.iter(f"{NS}g") if g.get("class") == "x-axis")
    assert [t.text for t in x_axis.findall(f"{NS}text")] == ["22", "23", "24"]


def test_no_style_anywhere() -> None:
    markup = svg.stacked_bars({"spam": [2, 0, 8]}, DAYS)
    assert "style" not in markup
    for element in parse(markup).iter():
        assert "style" not in element.attrib


def test_every_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    markup = svg.stacked_bars({evil: [1, 2, 3]}, [f"{evil}{d}" for d in DAYS], title=evil,
                              colors={evil: '"/><script>'}, id_prefix='a"b')
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    root = parse(markup)  # still well-formed
    assert root.get("aria-label") == evil
    assert root.findtext(f"{NS}title") == evil
    legend = next(g for g in root.iter(f"{NS}g") if g.get("class") == "legend")
    assert legend.findtext(f"{NS}text") == evil
    assert {r.get("fill") for r in legend.findall(f"{NS}rect")} == {'"/><script>'}


def test_all_zero_data_renders_an_empty_chart() -> None:
    root = parse(svg.stacked_bars({"spam": [0, 0, 0], "network": [0, 0, 0]}, DAYS))
    assert rects(root) == {}
    axis = next(g for g in root.iter(f"{NS}g") if g.get("class") == "y-axis")
    assert [t.text for t in axis.findall(f"{NS}text")] == ["0", "1"]
    assert len([b for b in root.iter(f"{NS}g") if b.get("class") == "bar"]) == 3


def test_one_day_and_no_series() -> None:
    root = parse(svg.stacked_bars({"spam": [4]}, ["2026-11-24"]))
    (segment,) = rects(root).values()
    assert height(segment) > 0
    empty = parse(svg.stacked_bars({}, []))
    assert empty.get("role") == "img"


def test_x_labels_every_few_days_ending_today() -> None:
    days = [f"d{i}" for i in range(30)]
    root = parse(svg.stacked_bars({"spam": list(range(30))}, days))
    x_axis = next(g for g in root.iter(f"{NS}g") if g.get("class") == "x-axis")
    shown = [t.text for t in x_axis.findall(f"{NS}text")]
    assert shown[-1] == "d29"
    assert 5 <= len(shown) <= 12
    assert len(rects(root)) == 29  # the first day is zero


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        svg.stacked_bars({"spam": [1, 2]}, DAYS)
