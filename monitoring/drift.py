"""Per-feature drift tests, vectorised: the reference is profiled once, each window is compared.

The statistics are the ones practitioners use and Evidently computes, with the same formulas so
that scores agree: KS (two-sample, scipy's p-value), Wasserstein distance divided by the
reference standard deviation, Jensen-Shannon distance (natural log, as Evidently 0.7 computes
it) on value frequencies, chi-square p-value of current counts against reference proportions,
the two-proportion z-test for binary columns, and PSI on ten reference-quantile bins.

Speed comes from sorting each column once (the reference once per ``Profile``) and answering
everything from sorted arrays without a Python loop over rows: decile-bin counts and KS's
empirical CDFs with ``np.searchsorted``, Wasserstein as the area between the two quantile
functions (their breakpoints merged by integer arithmetic, not by sorting the pooled sample).
Only the statistic that decides is computed beyond the cheap ones, categorical columns are
counted by hashing (or handed over already counted, ``Counts``), and ``detect_columns`` loads
one column at a time and runs columns on threads (numpy releases the GIL while sorting).

``method: auto`` chooses as Evidently does: on a reference of more than 1000 rows, normalised
Wasserstein (drift at >= 0.1) for a numeric column with more than 5 distinct values and
Jensen-Shannon (>= 0.1) otherwise; on 1000 rows or fewer, the KS p-value (< 0.05) for such a
numeric column, chi-square (< 0.05) for a categorical one, and the z-test (< 0.05) when there are
two values or fewer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.core.drift_rules import (
    ALLOWED,
    DEFAULT_THRESHOLDS,
    P_VALUE_METHODS,
    Drift,
    Kind,
    resolve,
)

# Evidently's switch from p-value tests to distances, and its "few values" cut-off.
SMALL_REFERENCE_ROWS = 1000
FEW_VALUES = 5
# Above this many distinct values a numeric column is binned for Jensen-Shannon (Evidently).
JS_VALUE_BINS = 20
PSI_BINS = 10
# PSI is undefined for an empty bin; this floor is the usual practice (and Evidently's).
PSI_EPSILON = 1e-4
STD_FLOOR = 0.001
# scipy's ks_2samp computes exact p-values up to this size and the asymptotic one above.
KS_EXACT_MAX = 10000


@dataclass
class Profile:
    """What the tests need of one reference column, computed once."""

    name: str
    kind: Kind
    rows: int
    sorted_values: np.ndarray | None = None  # numeric: NaN dropped, ascending
    std: float = 0.0
    psi_edges: np.ndarray | None = None
    categories: np.ndarray | None = None  # categorical: distinct values, as strings
    counts: np.ndarray | None = None

    @property
    def distinct(self) -> int:
        if self.kind == "numeric":
            assert self.sorted_values is not None
            return _distinct_sorted(self.sorted_values)
        assert self.categories is not None
        return len(self.categories)


@dataclass
class FeatureDriftResult:
    """One column's verdict, with every applicable statistic for the report."""

    feature: str
    kind: Kind
    method: str
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    stats: dict[str, float] = field(default_factory=dict)
    summary: str = "exact"  # what the current column was judged on (exact, or a sketch)

    @property
    def p_value(self) -> bool:
        """Whether the score is a p-value (drift below the threshold) or a distance (above)."""
        return self.method in P_VALUE_METHODS

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "method": self.method,
            "score": _finite(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "score_is_p_value": self.p_value,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "stats": {k: _finite(v) for k, v in self.stats.items()},
            "summary": self.summary,
        }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _distinct_sorted(values: np.ndarray) -> int:
    if values.size == 0:
        return 0
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1


def as_float(values: Any) -> np.ndarray:
    """A numeric column as float64 with NaN dropped (the tests ignore missing values)."""
    array = np.asarray(values, dtype=np.float64)
    return array[~np.isnan(array)]


def as_labels(values: Any) -> np.ndarray:
    """A categorical column as strings with missing values dropped."""
    import pandas as pd

    series = pd.Series(values)
    return series.dropna().astype(str).to_numpy()


@dataclass(frozen=True)
class Counts:
    """A categorical column already counted: labels (strings, sorted, unique) and counts.

    A window can be counted chunk by chunk, or by the engine that stores it (a database, Arrow),
    and handed over as counts: the tests need nothing else of a categorical column.
    """

    labels: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, labels: Any, counts: Any) -> Counts:
        by_label: dict[str, int] = {}
        for key, count in zip(labels, counts, strict=True):
            if key is None or (isinstance(key, float) and math.isnan(key)) or not count:
                continue  # missing values are dropped; unused categories carry no rows
            by_label[str(key)] = by_label.get(str(key), 0) + int(count)
        keys = np.array(sorted(by_label), dtype=object)
        return cls(keys, np.array([by_label[k] for k in keys], dtype=np.int64))


@dataclass(frozen=True)
class Sketched:
    """A numeric current column too long to keep exactly: what the tests need of it, and its error.

    ``quantiles`` is the column's quantile function read from a rank-error sketch at evenly
    spaced probabilities (an equal-weight sample of it); ``rank_error`` bounds
    ``sup |F_quantiles - F_current|`` (the sketch's rank error plus the spacing). Then:
    - KS: the statistic is within ``rank_error`` of the exact one (the sup of CDF gaps moves by
      at most the sup of one CDF's error); the p-value is taken at that statistic.
    - Wasserstein: W1(ref, cur) and W1(ref, quantiles) differ by at most W1(cur, quantiles) =
      integral |F_cur - F_quantiles| <= rank_error * (high - low): divided by the reference
      standard deviation, that bound is reported as ``wasserstein_normed_error_bound``.
    - PSI, the mean and the few-values counts are exact (``bins``, ``mean``, ``value_counts``).
    """

    rows: int
    mean: float
    bins: np.ndarray  # current counts in the reference's PSI bins
    quantiles: np.ndarray  # ascending
    rank_error: float
    low: float
    high: float
    value_counts: tuple[np.ndarray, np.ndarray] | None  # distinct values and counts, if few
    summary: str


def label_counts(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labels (as strings, sorted) and their counts, missing values dropped.

    Counted by hashing (pandas' value_counts) before turning the few keys into strings, so a
    million rows cost one pass, not a sort of a million strings.
    """
    if not isinstance(values, Counts):
        import pandas as pd

        counted = pd.Series(values).value_counts(dropna=True)
        values = Counts.of(counted.index, counted.to_numpy())
    return values.labels, values.counts


def profile(name: str, kind: Kind, values: Any) -> Profile:
    """Sort (numeric) or count (categorical) a reference column once."""
    if kind == "numeric":
        ordered = np.sort(as_float(values))
        n = ordered.size
        if n == 0:
            raise ValueError(f"reference column {name!r} has no values")
        # Deciles of the reference, taken from the sorted column: no second pass.
        positions = np.linspace(0, n - 1, PSI_BINS + 1)[1:-1]
        edges = np.unique(ordered[np.floor(positions).astype(int)])
        return Profile(
            name, kind, n, sorted_values=ordered, std=float(ordered.std()), psi_edges=edges
        )
    categories, counts = label_counts(values)
    if categories.size == 0:
        raise ValueError(f"reference column {name!r} has no values")
    return Profile(name, kind, int(counts.sum()), categories=categories, counts=counts)


# -- numeric ------------------------------------------------------------------------------------


def wasserstein_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """First Wasserstein distance of two sorted samples, without merging them.

    W1 is the area between the quantile functions. They are step functions with steps at
    i/n and j/m; counting those breakpoints in units of 1/(n*m) gives their merged order by
    integer arithmetic, so no sort of the n+m values is needed (scipy sorts them).
    """
    n, m = ref.size, cur.size
    if n == m:
        return float(np.mean(np.abs(ref - cur)))
    i = np.arange(1, n + 1, dtype=np.int64)
    j = np.arange(1, m + 1, dtype=np.int64)
    steps = np.empty(n + m, dtype=np.int64)
    # Ties put the reference's step first; either order gives a zero-width segment.
    steps[i - 1 + (i * m + n - 1) // n - 1] = i * m
    steps[j - 1 + (j * n) // m] = j * n
    width = np.diff(steps, prepend=0).astype(np.float64)
    gap = np.abs(ref[(steps + m - 1) // m - 1] - cur[(steps + n - 1) // n - 1])
    return float(np.dot(width, gap) / (float(n) * float(m)))


def ks_statistic_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """Two-sample KS statistic: the largest gap between the CDFs, at each distinct value."""
    gaps = []
    for own, other in ((ref, cur), (cur, ref)):
        last = np.flatnonzero(np.append(own[1:] != own[:-1], True))
        own_cdf = (last + 1) / own.size
        other_cdf = np.searchsorted(other, own[last], side="right") / other.size
        gaps.append(float(np.max(np.abs(own_cdf - other_cdf))))
    return max(gaps)


def ks_p_value(d: float, n_ref: int, n_cur: int) -> float:
    """Two-sided KS p-value as scipy's ks_2samp(method='auto') computes it for statistic d."""
    from scipy import stats

    m, n = sorted((float(n_ref), float(n_cur)), reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))


def ks_test(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """KS statistic and p-value of sorted samples, equal to scipy's ks_2samp (two-sided, auto)."""
    if max(ref.size, cur.size) <= KS_EXACT_MAX:
        from scipy import stats

        result = stats.ks_2samp(ref, cur)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic_sorted(ref, cur)
    return d, ks_p_value(d, ref.size, cur.size)


def _distinct_union(ref: np.ndarray, cur: np.ndarray) -> int:
    """Distinct values of both samples together, exactly up to FEW_VALUES (all auto needs)."""
    a, b = _distinct_sorted(ref), _distinct_sorted(cur)
    if a > FEW_VALUES or b > FEW_VALUES:
        return max(a, b)
    return int(np.unique(np.concatenate([np.unique(ref), np.unique(cur)])).size)


def numeric_stats(reference: Profile, current: Any, ks: bool = False) -> dict[str, float]:
    """Normalised Wasserstein and PSI of a current column (and KS when asked: it costs more)."""
    return _numeric(reference, np.sort(as_float(current)), ks)


def _numeric(reference: Profile, cur: np.ndarray, ks: bool) -> dict[str, float]:
    ref = reference.sorted_values
    assert ref is not None and reference.psi_edges is not None
    wasserstein = wasserstein_sorted(ref, cur)
    stats = {
        "wasserstein": wasserstein,
        "wasserstein_normed": wasserstein / max(reference.std, STD_FLOOR),
        "psi": psi_from_sorted(ref, cur, reference.psi_edges),
        "reference_mean": float(ref.mean()),
        "current_mean": float(cur.mean()),
        "distinct_values": float(_distinct_union(ref, cur)),
    }
    if ks:
        stats["ks_statistic"], stats["ks_p_value"] = ks_test(ref, cur)
    return stats


def psi_from_sorted(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> float:
    """PSI over bins (-inf, e1], (e1, e2], ..., (ek, inf) of sorted columns."""
    ref_share = np.diff(np.searchsorted(ref, edges, side="right"), prepend=0, append=ref.size)
    cur_share = np.diff(np.searchsorted(cur, edges, side="right"), prepend=0, append=cur.size)
    return psi(ref_share / ref.size, cur_share / cur.size)


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index of two share vectors; empty bins count as PSI_EPSILON."""
    r = np.maximum(ref_share, PSI_EPSILON)
    c = np.maximum(cur_share, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) of two frequency vectors, as scipy computes it.

    Written out instead of calling ``scipy.spatial.distance.jensenshannon`` only to spare the
    import of scipy where no other test needs it.
    """
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(np.sqrt(max((np.sum(left) + np.sum(right)) / 2, 0.0)))


def js_numeric(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance of a numeric column, binned as Evidently bins it."""
    merged = np.concatenate([ref, cur])
    if _distinct_sorted(ref) > JS_VALUE_BINS:
        edges = np.histogram_bin_edges(merged, bins="sturges")
        p = np.histogram(ref, edges)[0] / ref.size
        q = np.histogram(cur, edges)[0] / cur.size
    else:
        keys, inverse = np.unique(merged, return_inverse=True)
        p = np.bincount(inverse[: ref.size], minlength=keys.size) / ref.size
        q = np.bincount(inverse[ref.size :], minlength=keys.size) / cur.size
    return jensen_shannon(p, q)


# -- categorical --------------------------------------------------------------------------------


def category_counts(reference: Profile, current: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts over the union of categories (new ones count 0 in ref)."""
    return _align(reference, *label_counts(current))


def _align(
    reference: Profile, values: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    assert reference.categories is not None and reference.counts is not None
    keys = np.union1d(reference.categories, values)
    ref_counts = np.zeros(keys.size)
    cur_counts = np.zeros(keys.size)
    ref_counts[np.searchsorted(keys, reference.categories)] = reference.counts
    cur_counts[np.searchsorted(keys, values)] = counts
    return ref_counts, cur_counts


def categorical_stats(
    ref_counts: np.ndarray, cur_counts: np.ndarray, chi2: bool = True
) -> dict[str, float]:
    """Jensen-Shannon, PSI and z-test of aligned counts (and chi-square unless told not to)."""
    n_ref, n_cur = ref_counts.sum(), cur_counts.sum()
    stats = {
        "jensen_shannon": jensen_shannon(ref_counts / n_ref, cur_counts / n_cur),
        "psi": psi(ref_counts / n_ref, cur_counts / n_cur),
        "z_p_value": z_p_value(ref_counts, cur_counts),
        "distinct_values": float(np.count_nonzero(ref_counts + cur_counts)),
    }
    if chi2:
        stats["chi2_statistic"], stats["chi2_p_value"] = chi_square(ref_counts, cur_counts)
    return stats


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square of current counts against the reference proportions scaled to the window."""
    from scipy import stats

    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.chisquare(cur_counts, expected)
    return float(result.statistic), float(result.pvalue)


def z_p_value(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-proportion z-test on the share of the first category (binary columns)."""
    present = (ref_counts + cur_counts) > 0
    ref_counts, cur_counts = ref_counts[present], cur_counts[present]
    n1, n2 = ref_counts.sum(), cur_counts.sum()
    if ref_counts.size < 2:
        return 1.0
    # Evidently codes the first category (in sorted order) as 0, everything else as 1.
    p1, p2 = 1 - ref_counts[0] / n1, 1 - cur_counts[0] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    # 2 * (1 - Phi(|z|)), Evidently's formula, written with erfc.
    return float(math.erfc(abs((p1 - p2) / spread) / math.sqrt(2)))


# -- verdicts -----------------------------------------------------------------------------------


def auto_method(kind: Kind, reference_rows: int, distinct: int) -> str:
    """The test Evidently's data drift preset picks for a column (see the module docstring)."""
    small = reference_rows <= SMALL_REFERENCE_ROWS
    if kind == "numeric" and distinct > FEW_VALUES:
        return "ks" if small else "wasserstein"
    if small:
        return "chi2" if distinct > 2 else "z"
    return "jensen_shannon"


SCORE_KEY = {
    "ks": "ks_p_value",
    "wasserstein": "wasserstein_normed",
    "psi": "psi",
    "jensen_shannon": "jensen_shannon",
    "chi2": "chi2_p_value",
    "z": "z_p_value",
}


def compare(
    reference: Profile,
    current: Any,
    method: str = "auto",
    threshold: float | None = None,
    model_threshold: float | None = None,
) -> FeatureDriftResult:
    """Test one current column against its reference profile.

    ``threshold`` is the feature's own; ``model_threshold`` the model-wide one, which applies
    as ``resolve`` describes. Without either, the chosen test's conventional default applies.
    """
    if method != "auto" and method not in ALLOWED[reference.kind]:
        raise ValueError(f"method {method!r} does not apply to {reference.kind} columns")
    if isinstance(current, Sketched):
        return _compare_sketched(reference, current, method, threshold, model_threshold)
    if reference.kind == "numeric":
        cur = np.sort(as_float(current))
        rows = int(cur.size)
        stats = _numeric(reference, cur, ks=False) if rows else {}
    else:
        aligned = _align(reference, *label_counts(current))
        rows = int(aligned[1].sum())
        stats = categorical_stats(*aligned, chi2=False) if rows else {}
    if not rows:
        return FeatureDriftResult(
            reference.name, reference.kind, method, math.nan, threshold or 0.0, False,
            reference.rows, 0, {},
        )  # fmt: skip
    chosen = method
    if method == "auto":
        chosen = auto_method(reference.kind, reference.rows, int(stats["distinct_values"]))
    # The expensive statistics are computed only for the test that decides.
    if reference.kind == "numeric":
        ref = reference.sorted_values
        assert ref is not None
        if chosen == "ks":
            stats["ks_statistic"], stats["ks_p_value"] = ks_test(ref, cur)
        elif chosen == "jensen_shannon":
            stats["jensen_shannon"] = js_numeric(ref, cur)
        elif chosen in ("chi2", "z"):  # auto, on a numeric column with few values
            stats.update(categorical_stats(*_value_counts(ref, cur)))
    elif chosen == "chi2":
        stats["chi2_statistic"], stats["chi2_p_value"] = chi_square(*aligned)
    return _verdict(reference, method, chosen, stats, threshold, model_threshold, rows)


def _verdict(
    reference: Profile,
    method: str,
    chosen: str,
    stats: dict[str, float],
    threshold: float | None,
    model_threshold: float | None,
    rows: int,
    summary: str = "exact",
) -> FeatureDriftResult:
    if threshold is None:
        if model_threshold is not None and (method != "auto" or chosen not in P_VALUE_METHODS):
            threshold = model_threshold
        else:
            threshold = DEFAULT_THRESHOLDS[chosen]
    score = stats[SCORE_KEY[chosen]]
    drifted = score < threshold if chosen in P_VALUE_METHODS else score >= threshold
    return FeatureDriftResult(
        reference.name, reference.kind, chosen, score, threshold, bool(drifted),
        reference.rows, rows, stats, summary,
    )  # fmt: skip


def _compare_sketched(
    reference: Profile,
    current: Sketched,
    method: str,
    threshold: float | None,
    model_threshold: float | None,
) -> FeatureDriftResult:
    """``compare`` on a sketched numeric column: the bounds are in ``Sketched``'s docstring."""
    ref = reference.sorted_values
    if reference.kind != "numeric" or ref is None or reference.psi_edges is None:
        raise ValueError(f"a sketched column needs a numeric reference ({reference.name})")
    cur = current.quantiles
    wasserstein = wasserstein_sorted(ref, cur)
    spread = max(reference.std, STD_FLOOR)
    ref_bins = np.diff(
        np.searchsorted(ref, reference.psi_edges, side="right"), prepend=0, append=ref.size
    )
    if current.value_counts is not None:
        keys = current.value_counts[0]
        distinct = float(_distinct_union(ref, keys))
    else:  # more distinct values than counted: far more than the few-values cut-off
        distinct = float(max(_distinct_sorted(ref), FEW_VALUES + 1))
    stats = {
        "wasserstein": wasserstein,
        "wasserstein_normed": wasserstein / spread,
        "wasserstein_normed_error_bound": current.rank_error
        * (current.high - current.low)
        / spread,
        "psi": psi(ref_bins / ref.size, current.bins / current.rows),
        "reference_mean": float(ref.mean()),
        "current_mean": current.mean,
        "distinct_values": distinct,
        "rank_error": current.rank_error,
    }
    chosen = method
    if method == "auto":
        chosen = auto_method(reference.kind, reference.rows, int(distinct))
    if chosen == "ks":
        d = ks_statistic_sorted(ref, cur)
        stats["ks_statistic"], stats["ks_p_value"] = d, ks_p_value(d, ref.size, current.rows)
        stats["ks_statistic_error_bound"] = current.rank_error
    elif chosen == "jensen_shannon":
        stats["jensen_shannon"] = _js_sketched(ref, current)
    elif chosen in ("chi2", "z"):  # few values: counted exactly
        assert current.value_counts is not None
        stats.update(categorical_stats(*_value_counts_of(ref, *current.value_counts)))
    return _verdict(
        reference, method, chosen, stats, threshold, model_threshold, current.rows,
        current.summary,
    )  # fmt: skip


def _value_counts_of(
    ref: np.ndarray, keys: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``_value_counts`` with the current column given as distinct values and counts."""
    union, inverse = np.unique(np.concatenate([ref, keys]), return_inverse=True)
    ref_counts = np.bincount(inverse[: ref.size], minlength=union.size).astype(float)
    cur_counts = np.zeros(union.size)
    cur_counts[inverse[ref.size :]] = counts
    return ref_counts, cur_counts


def _js_sketched(ref: np.ndarray, current: Sketched) -> float:
    """``js_numeric`` on a sketched column: exact counts when few values, else sketched bins."""
    if _distinct_sorted(ref) <= JS_VALUE_BINS and current.value_counts is not None:
        return jensen_shannon(*_value_counts_of(ref, *current.value_counts))
    low, high = min(float(ref[0]), current.low), max(float(ref[-1]), current.high)
    # numpy's Sturges rule on the merged sample, whose size and range are known exactly.
    bins = max(int(np.ceil(np.log2(ref.size + current.rows) + 1)), 1)
    edges = np.linspace(low, high, bins + 1) if high > low else np.array([low - 0.5, low + 0.5])
    p = np.histogram(ref, edges)[0] / ref.size
    q = np.histogram(current.quantiles, edges)[0] / current.quantiles.size
    return jensen_shannon(p, q)


def _value_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    return (
        np.bincount(inverse[: ref.size], minlength=keys.size).astype(float),
        np.bincount(inverse[ref.size :], minlength=keys.size).astype(float),
    )


@dataclass
class DriftResult:
    features: list[FeatureDriftResult]
    share_threshold: float
    prediction: FeatureDriftResult | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def share(self) -> float:
        judged = [f for f in self.features if f.current_rows]
        return len([f for f in judged if f.drifted]) / len(judged) if judged else 0.0

    @property
    def detected(self) -> bool:
        """Dataset drift: the share of drifted features reaches the model's threshold."""
        return self.share >= self.share_threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "drift_detected": self.detected,
            "drifted_feature_share": self.share,
            "share_of_drifted_features_threshold": self.share_threshold,
            "drifted_features": self.drifted_features,
            "features": [f.as_dict() for f in self.features],
            "prediction": self.prediction.as_dict() if self.prediction else None,
        }


def detect(
    profiles: dict[str, Profile],
    current: dict[str, Any],
    settings: Drift,
) -> DriftResult:
    """Every feature's verdict under the model's drift settings, and the dataset verdict."""
    return detect_columns(
        {n: p.kind for n, p in profiles.items()},
        lambda name: profiles[name],
        lambda name: current[name],
        settings,
    )


def detect_columns(
    kinds: dict[str, Kind],
    reference: Callable[[str], Any],
    current: Callable[[str], Any],
    settings: Drift,
) -> DriftResult:
    """Like ``detect``, loading one column at a time: ``reference(name)`` gives a ``Profile`` or
    the raw column, ``current(name)`` the current column.

    Only the columns in flight are in memory, so a wide window never needs to be loaded whole;
    numpy's sort and searchsorted release the GIL, so columns run in parallel on threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> FeatureDriftResult:
        method, threshold = resolve(settings, name)
        ref = reference(name)
        ref = ref if isinstance(ref, Profile) else profile(name, kinds[name], ref)
        return compare(ref, current(name), method, threshold, settings.threshold)

    workers = max(1, min(len(kinds), os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, kinds))
    return DriftResult(results, settings.share_of_drifted_features)
