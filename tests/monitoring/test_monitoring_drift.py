"""Drift statistics against independent computations, and verdicts under model.yaml settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from monitoring import drift
from pipelines.core import drift_rules
from pipelines.core.drift_rules import Drift
from pipelines.core.errors import DefinitionError

pytestmark = pytest.mark.monitoring


@pytest.mark.parametrize(
    ("n_ref", "n_cur"), [(300, 200), (4000, 2500), (30000, 12000), (20000, 20000), (12001, 30011)]
)
def test_ks_and_wasserstein_match_scipy(rng: np.random.Generator, n_ref: int, n_cur: int) -> None:
    """KS statistic and p-value (exact and asymptotic regimes) and Wasserstein equal scipy's."""
    ref = rng.normal(10, 2, n_ref)
    cur = rng.normal(10.3, 2.2, n_cur)
    got = drift.numeric_stats(drift.profile("x", "numeric", ref), cur, ks=True)
    ks = stats.ks_2samp(ref, cur)
    assert got["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert got["ks_p_value"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    w = stats.wasserstein_distance(ref, cur)
    assert got["wasserstein"] == pytest.approx(w, rel=1e-9)
    assert got["wasserstein_normed"] == pytest.approx(w / np.std(ref), rel=1e-9)


def test_ks_with_ties_matches_scipy(rng: np.random.Generator) -> None:
    """Integer-valued columns (many ties) above scipy's exact-size limit: same KS and W1."""
    ref = rng.integers(0, 50, 30000).astype(float)
    cur = rng.integers(2, 52, 12000).astype(float)
    got = drift.numeric_stats(drift.profile("x", "numeric", ref), cur, ks=True)
    ks = stats.ks_2samp(ref, cur)
    assert got["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert got["ks_p_value"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)


def test_psi_on_reference_deciles_by_hand() -> None:
    """PSI uses the reference's deciles as bins and floors empty bins at 1e-4."""
    ref = np.arange(100, dtype=float)  # deciles at 9.9 .. 89.1 -> ten bins of ten rows
    cur = np.concatenate([np.full(50, 5.0), np.full(50, 95.0)])  # half in the first, half last
    got = drift.numeric_stats(drift.profile("x", "numeric", ref), cur)["psi"]
    r = np.full(10, 0.1)
    c = np.array([0.5] + [1e-4] * 8 + [0.5])
    assert got == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-9)
    same = drift.numeric_stats(drift.profile("x", "numeric", ref), ref)["psi"]
    assert same == pytest.approx(0.0, abs=1e-12)


def jsd_by_hand(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats: the mean KL divergence to the midpoint."""
    mid = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        return sum(x * math.log(x / y) for x, y in zip(a, mid, strict=True) if x > 0)

    return (kl(p) + kl(q)) / 2


def test_categorical_statistics_match_scipy() -> None:
    """Chi-square p-value, Jensen-Shannon (in nats) and the union of categories are Evidently's."""
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    cur = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 50 + ["d"] * 10)  # d: a new category
    ref_counts, cur_counts = drift.category_counts(drift.profile("c", "categorical", ref), cur)
    assert ref_counts.tolist() == [50, 30, 20, 0]
    assert cur_counts.tolist() == [20, 20, 50, 10]
    got = drift.categorical_stats(ref_counts, cur_counts)
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.2, 0.2, 0.5, 0.1])
    assert got["jensen_shannon"] == pytest.approx(math.sqrt(jsd_by_hand(p, q)))
    with np.errstate(divide="ignore"):
        expected = stats.chisquare(cur_counts, ref_counts * 1.0).pvalue
    assert got["chi2_p_value"] == expected == 0.0  # a category never seen in training
    same = drift.categorical_stats(
        *drift.category_counts(drift.profile("c", "categorical", ref), ref)
    )
    assert same["chi2_p_value"] == pytest.approx(1.0)
    assert same["jensen_shannon"] == pytest.approx(0.0, abs=1e-7)


def test_z_test_by_hand() -> None:
    """Binary columns: two-proportion z-test on the share of the first category."""
    ref_counts, cur_counts = np.array([60.0, 40.0]), np.array([40.0, 60.0])
    p1, p2, pooled = 0.4, 0.6, 0.5
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    assert drift.z_p_value(ref_counts, cur_counts) == pytest.approx(
        2 * (1 - stats.norm.cdf(abs(z)))
    )


@pytest.mark.parametrize(
    ("kind", "rows", "distinct", "method"),
    [
        ("numeric", 5000, 100, "wasserstein"),
        ("numeric", 5000, 5, "jensen_shannon"),
        ("categorical", 5000, 3, "jensen_shannon"),
        ("numeric", 1000, 100, "ks"),
        ("categorical", 1000, 3, "chi2"),
        ("categorical", 800, 2, "z"),
        ("numeric", 800, 4, "chi2"),
    ],
)
def test_auto_chooses_as_evidently(
    kind: drift_rules.Kind, rows: int, distinct: int, method: str
) -> None:
    """Over 1000 reference rows: distances; else p-value tests; few values: frequencies."""
    assert drift.auto_method(kind, rows, distinct) == method


def test_auto_verdicts_and_default_thresholds(rng: np.random.Generator) -> None:
    """Large reference: normalised Wasserstein >= 0.1 drifts; small: KS p < 0.05 drifts."""
    settings = Drift()
    big = drift.profile("x", "numeric", rng.normal(0, 1, 5000))
    shifted = drift.compare(big, rng.normal(0.3, 1, 2000), "auto", None, settings.threshold)
    assert (shifted.method, shifted.threshold, shifted.drifted) == ("wasserstein", 0.1, True)
    calm = drift.compare(big, rng.normal(0, 1, 2000), "auto", None, settings.threshold)
    assert not calm.drifted and calm.score < 0.1
    small = drift.profile("x", "numeric", rng.normal(0, 1, 500))
    verdict = drift.compare(small, rng.normal(0.5, 1, 300), "auto", None, settings.threshold)
    assert (verdict.method, verdict.threshold, verdict.drifted) == ("ks", 0.05, True)
    assert verdict.score < 0.05


def test_per_feature_overrides_from_model_yaml(rng: np.random.Generator) -> None:
    """A feature's method and threshold override the model's; the dataset verdict uses the share."""
    settings = Drift.model_validate(
        {
            "threshold": 0.1,
            "share_of_drifted_features": 0.5,
            "features": {"a": {"method": "psi", "threshold": 5.0}, "b": {"method": "ks"}},
        }
    )
    ref = {n: rng.normal(0, 1, 3000) for n in "abc"}
    cur = {n: rng.normal(1.0, 1, 1000) for n in "abc"}
    profiles = {n: drift.profile(n, "numeric", v) for n, v in ref.items()}
    result = drift.detect(profiles, cur, settings)
    by_name = {f.feature: f for f in result.features}
    assert (by_name["a"].method, by_name["a"].threshold, by_name["a"].drifted) == (
        "psi",
        5.0,
        False,
    )
    # An explicit method takes the model-wide threshold: a KS p-value below 0.1.
    assert (by_name["b"].method, by_name["b"].threshold, by_name["b"].drifted) == ("ks", 0.1, True)
    assert (by_name["c"].method, by_name["c"].drifted) == ("wasserstein", True)
    assert result.share == pytest.approx(2 / 3) and result.detected
    stricter = settings.model_copy(update={"share_of_drifted_features": 0.9})
    assert not drift.detect(profiles, cur, stricter).detected


def test_a_method_that_cannot_apply_names_the_field() -> None:
    """KS on a categorical feature, or an unknown feature, is a definition error."""
    settings = Drift.model_validate({"features": {"island": {"method": "ks"}}})
    with pytest.raises(DefinitionError, match=r"monitoring\.drift\.features\.island\.method"):
        drift_rules.check_methods(settings, {"island": "categorical"}, "model.yaml")
    unknown = Drift.model_validate({"features": {"wingspan": {"method": "psi"}}})
    with pytest.raises(DefinitionError, match="wingspan"):
        drift_rules.check_methods(unknown, {"island": "categorical"}, "model.yaml")


def test_missing_values_are_ignored(rng: np.random.Generator) -> None:
    """NaN and None are dropped before testing, as Evidently drops them."""
    ref = rng.normal(0, 1, 2000)
    cur = ref[:1000].copy()
    cur[::10] = np.nan
    result = drift.compare(drift.profile("x", "numeric", ref), cur)
    assert result.current_rows == 900
    labels = drift.compare(drift.profile("c", "categorical", ["a", "b"] * 600), ["a", None, "b"])
    assert labels.current_rows == 2


def test_numeric_column_with_few_values_is_judged_on_frequencies(rng: np.random.Generator) -> None:
    """Auto on a numeric column with at most 5 values: Jensen-Shannon of value frequencies."""
    ref = rng.integers(0, 4, 5000).astype(float)
    cur = rng.choice(4, 3000, p=[0.1, 0.2, 0.3, 0.4]).astype(float)
    result = drift.compare(drift.profile("x", "numeric", ref), cur)
    p = np.bincount(ref.astype(int), minlength=4) / ref.size
    q = np.bincount(cur.astype(int), minlength=4) / cur.size
    assert result.method == "jensen_shannon"
    assert result.score == pytest.approx(distance.jensenshannon(p, q), rel=1e-12)
    assert result.drifted


def test_pre_counted_categories_give_the_same_verdict(rng: np.random.Generator) -> None:
    """A window handed over as counts (chunked, or counted by Arrow) is judged like raw rows."""
    ref = rng.choice(["x", "y", "z"], 3000)
    cur = rng.choice(["x", "y", "z", "w"], 2000)
    labels, counts = np.unique(cur, return_counts=True)
    counted = drift.Counts.of([*labels.tolist(), None], [*counts.tolist(), 7])
    raw = drift.compare(drift.profile("c", "categorical", ref), cur)
    pre = drift.compare(drift.profile("c", "categorical", ref), counted)
    assert (pre.method, pre.score, pre.current_rows) == (raw.method, raw.score, 2000)
