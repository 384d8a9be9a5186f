"""The report's charts: well-formed SVG whatever the captured values, every label escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from monitoring.charts import MAX_CATEGORIES, chart
from monitoring.drift import Counts, Sketched

pytestmark = pytest.mark.monitoring
SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def test_numeric_chart_draws_both_histograms() -> None:
    rng = np.random.default_rng(3)
    root = _parse(chart("length", "numeric", rng.normal(0, 1, 500), rng.normal(1, 1, 300)))
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 2 + 2 * 30  # the legend's two swatches, then 30 bins per series
    assert root.find(f"{SVG}title").text == "length"


def test_a_sketched_column_and_counts_are_drawn() -> None:
    sketched = Sketched(rows=10, mean=0.5, bins=np.zeros(3, dtype=np.int64),
                        quantiles=np.linspace(0, 1, 50), rank_error=0.01, low=0.0, high=1.0,
                        value_counts=None, summary="kll")  # fmt: skip
    _parse(chart("x", "numeric", [0.1, 0.2, None, "n/a"], sketched))
    _parse(chart("c", "categorical", ["a", "b", None], Counts.of(["a", "z"], [3, 1])))


def test_hostile_labels_are_escaped_and_many_categories_are_summed() -> None:
    hostile = ["<script>alert(1)</script>", "a&b", '"quoted"', "]]>"]
    many = [f"v{k}" for k in range(MAX_CATEGORIES * 3)]
    svg = chart("<b>name</b>", "categorical", hostile + many, many)
    root = _parse(svg)
    assert "<script>" not in svg
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "<b>name</b>" in labels and "other" in labels
    assert len([t for t in labels if t and t.startswith("v")]) <= MAX_CATEGORIES


def test_empty_columns_give_an_empty_chart() -> None:
    _parse(chart("x", "numeric", [], []))
    _parse(chart("x", "categorical", [None], []))
