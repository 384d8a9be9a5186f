"""The drift report's charts: one inline SVG per column, reference against current.

Drawn directly from the histogram counts (numpy does the binning) rather than through
matplotlib: a monitor run on a calm hour is otherwise dominated by importing matplotlib and
laying out six figures (1.8 s of a 2.5 s run), and the scheduled job pays that every hour. An
SVG of two bar series needs no layout engine; it stays self-contained, scales, and any browser
opens it offline. Every label is escaped: column values come from captured traffic.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

WIDTH, HEIGHT = 400, 210
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 28, 46
COLOURS = {"reference": "#1f77b4", "current": "#ff7f0e"}
BINS = 30
MAX_CATEGORIES = 40  # more are summed into "other" so that the labels stay readable


def _numbers(values: Any) -> np.ndarray:
    import pandas as pd

    from monitoring.drift import Sketched

    if isinstance(values, Sketched):  # the sketch's quantile function, evenly weighted
        values = values.quantiles
    return pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(float)


def _shares(values: Any) -> dict[str, float]:
    import pandas as pd

    from monitoring.drift import Counts

    if isinstance(values, Counts):
        counts = {str(k): float(n) for k, n in zip(values.labels, values.counts, strict=True)}
    else:
        counted = pd.Series(values).dropna().astype(str).value_counts()
        counts = {str(k): float(n) for k, n in counted.items()}
    total = sum(counts.values()) or 1.0
    return {k: n / total for k, n in counts.items()}


def _frame(title: str, bars: str, axis: str, top: float) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    legend = "".join(
        f'<rect x="{WIDTH - RIGHT - 150 + i * 78}" y="8" width="10" height="10" '
        f'fill="{colour}" fill-opacity="0.6"/>'
        f'<text x="{WIDTH - RIGHT - 136 + i * 78}" y="17" font-size="10">{label}</text>'
        for i, (label, colour) in enumerate(COLOURS.items())
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="17" font-size="12">{escape(title)}</text>{legend}'
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#444"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="9" text-anchor="end">{top:.3g}</text>'
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="9" text-anchor="end">0</text>'
        f"{bars}{axis}</svg>"
    )


def _bar(x: float, width: float, share: float, top: float, colour: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    height = plot_h * share / top if top > 0 else 0.0
    return (
        f'<rect x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{max(width, 0.5):.1f}" '
        f'height="{height:.1f}" fill="{colour}" fill-opacity="0.6"/>'
    )


def numeric_chart(title: str, reference: Any, current: Any) -> str:
    """Two overlaid histograms (share of rows per bin) on the bins of both columns together."""
    ref, cur = _numbers(reference), _numbers(current)
    both = np.concatenate([ref, cur])
    if not both.size:
        return _frame(title, "", "", 1.0)
    edges = np.histogram_bin_edges(both, bins=BINS)
    shares = {
        label: np.histogram(values, bins=edges)[0] / max(values.size, 1)
        for label, values in (("reference", ref), ("current", cur))
    }
    top = float(max(s.max() for s in shares.values())) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / BINS
    bars = "".join(
        _bar(LEFT + i * step, step - 1, float(share), top, COLOURS[label])
        for label, series in shares.items()
        for i, share in enumerate(series)
    )
    base = TOP + HEIGHT - TOP - BOTTOM + 12
    axis = (
        f'<text x="{LEFT}" y="{base}" font-size="9">{edges[0]:.4g}</text>'
        f'<text x="{LEFT + plot_w}" y="{base}" font-size="9" text-anchor="end">'
        f"{edges[-1]:.4g}</text>"
    )
    return _frame(title, bars, axis, top)


def categorical_chart(title: str, reference: Any, current: Any) -> str:
    """Side-by-side bars of each category's share of rows, reference then current."""
    ref, cur = _shares(reference), _shares(current)
    keys = sorted(set(ref) | set(cur))
    if len(keys) > MAX_CATEGORIES:
        kept = sorted(keys, key=lambda k: -(ref.get(k, 0) + cur.get(k, 0)))[: MAX_CATEGORIES - 1]
        rest = [k for k in keys if k not in kept]
        for shares in (ref, cur):
            shares["other"] = sum(shares.pop(k, 0.0) for k in rest) + shares.get("other", 0.0)
        keys = [*sorted(kept), "other"]
    if not keys:
        return _frame(title, "", "", 1.0)
    top = max(max(ref.values(), default=0.0), max(cur.values(), default=0.0)) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / len(keys)
    bars, labels = [], []
    for i, key in enumerate(keys):
        x = LEFT + i * slot
        bars.append(_bar(x + slot * 0.1, slot * 0.4, ref.get(key, 0.0), top, COLOURS["reference"]))
        bars.append(_bar(x + slot * 0.5, slot * 0.4, cur.get(key, 0.0), top, COLOURS["current"]))
        cx, cy = x + slot / 2, HEIGHT - BOTTOM + 10
        labels.append(
            f'<text x="{cx:.1f}" y="{cy}" font-size="8" text-anchor="end" '
            f'transform="rotate(-30 {cx:.1f} {cy})">{escape(key[:24])}</text>'
        )
    return _frame(title, "".join(bars), "".join(labels), top)


def chart(title: str, kind: str, reference: Any, current: Any) -> str:
    """The SVG of one column: a histogram when it is numeric, bars per category otherwise."""
    if kind == "numeric":
        return numeric_chart(title, reference, current)
    return categorical_chart(title, reference, current)
