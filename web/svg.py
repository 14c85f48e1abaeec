"""Charts drawn on the server as inline SVG: no script, no inline style (the desk's CSP forbids
both), only presentation attributes (``fill``, ``stroke``, ``font-size``...).

Every piece of text that goes into the markup (labels, series names, titles) is XML-escaped
here, so the string :func:`stacked_bars` returns may be marked safe by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

# Fixed colours per category (Okabe-Ito, distinguishable by colour-blind readers).
COLORS: dict[str, str] = {
    "spam": "#0072b2",
    "network": "#e69f00",
    "other": "#009e73",
    "unclassified": "#999999",
    "not-abuse": "#cc79a7",
}
FALLBACK = ("#56b4e9", "#d55e00", "#f0e442", "#000000")

_ATTR = {'"': "&quot;", "'": "&apos;"}


def text(value: object) -> str:
    """*value* as XML character data."""
    return escape(str(value))


def attr(value: object) -> str:
    """*value* as the inside of a double-quoted XML attribute."""
    return escape(str(value), _ATTR)


def nice_ceiling(value: int, ticks: int = 5) -> tuple[int, int]:
    """(top, step): a round step (1, 2 or 5 times a power of ten, at least 1) and the smallest
    multiple of it that is >= *value*, with at most *ticks* steps. All-zero data gets 0..1."""
    if value <= 0:
        return 1, 1
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        step = max(1, int(factor * power))
        if step * ticks >= value:
            break
    return step * math.ceil(value / step), step


def _num(value: float) -> str:
    """A coordinate, short: 12, 12.5, 12.34."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def stacked_bars(series: dict[str, Sequence[int]], labels: Sequence[str], *,
                 title: str = "Chart", tick_labels: Sequence[str] | None = None,
                 colors: dict[str, str] | None = None, width: int = 760, height: int = 260,
                 id_prefix: str = "chart", label_every: int | None = None) -> str:
    """A stacked bar chart, one bar per label, the series stacked in the given order.

    *labels* name the bars in their hover titles (e.g. ISO days); *tick_labels* (default the
    labels) are what the x axis shows, every *label_every* bars (default: about ten labels, the
    last bar always labelled). Returns an ``<svg>`` element as a string, all text escaped."""
    n = len(labels)
    names = list(series)
    for name in names:
        if len(series[name]) != n:
            raise ValueError(f"series {name!r} has {len(series[name])} values for {n} labels")
    ticks_text = list(tick_labels) if tick_labels is not None else list(labels)
    if len(ticks_text) != n:
        raise ValueError("tick_labels and labels differ in length")
    palette = {**COLORS, **(colors or {})}
    fallback = iter(FALLBACK * (len(names) // len(FALLBACK) + 1))
    fills = {name: palette.get(name) or next(fallback) for name in names}

    totals = [sum(int(series[name][i]) for name in names) for i in range(n)]
    top, step = nice_ceiling(max(totals, default=0))
    left, right, upper, lower = 44.0, 12.0, 30.0, 28.0
    plot_w = max(1.0, width - left - right)
    plot_h = max(1.0, height - upper - lower)
    base = upper + plot_h
    slot = plot_w / max(n, 1)
    bar_w = max(1.0, slot * 0.75)
    every = label_every or max(1, math.ceil(n / 10))

    total = sum(totals)
    per_series = ", ".join(f"{name} {sum(int(v) for v in series[name])}" for name in names)
    span = f"{labels[0]} to {labels[-1]}" if n > 1 else (labels[0] if n else "no days")
    description = (f"{total} in all, {span}" + (f": {per_series}" if names else "") + ".")
    title_id, desc_id = f"{id_prefix}-title", f"{id_prefix}-desc"

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="100%" viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" '
        f'aria-label="{attr(title)}" aria-describedby="{attr(desc_id)}">',
        f'<title id="{attr(title_id)}">{text(title)}</title>',
        f'<desc id="{attr(desc_id)}">{text(description)}</desc>',
    ]
    # y axis: grid lines and round ticks
    out.append('<g class="y-axis" font-size="11" text-anchor="end">')
    for value in range(0, top + 1, step):
        y = base - value / top * plot_h
        out.append(f'<line x1="{_num(left)}" x2="{_num(left + plot_w)}" y1="{_num(y)}" '
                   f'y2="{_num(y)}" stroke="#e0e0e0" stroke-width="1"/>')
        out.append(f'<text x="{_num(left - 6)}" y="{_num(y + 4)}" fill="#444">{value}</text>')
    out.append("</g>")
    # bars
    out.append('<g class="bars">')
    for i in range(n):
        x = left + i * slot + (slot - bar_w) / 2
        parts = ", ".join(f"{name} {int(series[name][i])}" for name in names)
        hover = f"{labels[i]}: {totals[i]}" + (f" ({parts})" if names else "")
        out.append(f'<g class="bar" data-label="{attr(labels[i])}" data-total="{totals[i]}">'
                   f"<title>{text(hover)}</title>")
        y = base
        for name in names:
            value = int(series[name][i])
            if value <= 0:
                continue
            h = value / top * plot_h
            y -= h
            out.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(bar_w)}" '
                       f'height="{_num(h)}" fill="{attr(fills[name])}" '
                       f'data-series="{attr(name)}" data-value="{value}"/>')
        out.append("</g>")
    out.append("</g>")
    # axes and x labels
    out.append(f'<line x1="{_num(left)}" x2="{_num(left)}" y1="{_num(upper)}" '
               f'y2="{_num(base)}" stroke="#5f6368" stroke-width="1"/>')
    out.append(f'<line x1="{_num(left)}" x2="{_num(left + plot_w)}" y1="{_num(base)}" '
               f'y2="{_num(base)}" stroke="#5f6368" stroke-width="1"/>')
    out.append('<g class="x-axis" font-size="11" text-anchor="middle">')
    for i in range(n):
        if (n - 1 - i) % every:
            continue
        cx = left + (i + 0.5) * slot
        out.append(f'<text x="{_num(cx)}" y="{_num(base + 16)}" fill="#444">'
                   f"{text(ticks_text[i])}</text>")
    out.append("</g>")
    # legend, across the top
    out.append('<g class="legend" font-size="11">')
    x = left
    for name in names:
        out.append(f'<rect x="{_num(x)}" y="8" width="12" height="12" '
                   f'fill="{attr(fills[name])}"/>')
        out.append(f'<text x="{_num(x + 16)}" y="18" fill="#444">{text(name)}</text>')
        x += 16 + 7 * len(name) + 18
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
