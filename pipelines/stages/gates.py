"""Gates: every check a candidate must pass before it may be registered.

Each gate reports what it measured, the threshold it held it to and why it passed or failed, so
the PR report explains the verdict instead of just giving it. A gate that cannot be evaluated
(no champion yet, too few rows per group) passes and says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.definitions import higher_is_better
from pipelines.core.errors import Rejected
from pipelines.core.scoring import format_value
from pipelines.stages.stats import paired_bootstrap

if TYPE_CHECKING:
    from pipelines.core.definitions import (
        ChampionGate,
        FairnessGate,
        LatencyGate,
        ModelDefinition,
        SizeGate,
    )
    from pipelines.core.scoring import Evaluation, Predictions


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    measured: float | None
    threshold: str
    detail: str
    skipped: bool = False

    @property
    def verdict(self) -> str:
        return "skipped" if self.skipped else "pass" if self.passed else "FAIL"


@dataclass
class GateReport:
    results: list[GateResult] = field(default_factory=list)
    champion_version: str | None = None

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [result for result in self.results if not result.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "champion_version": self.champion_version,
            "results": [
                {
                    **asdict(r),
                    "measured": r.measured
                    if r.measured is None or math.isfinite(r.measured)
                    else None,
                }
                for r in self.results
            ],
        }

    def raise_if_failed(self, model: str) -> None:
        if self.passed:
            return
        reasons = "\n".join(f"  - {r.gate}: {r.detail}" for r in self.failures)
        raise Rejected(
            f"candidate for {model!r} rejected by {len(self.failures)} gate(s):\n{reasons}"
        )


def threshold_gates(definition: ModelDefinition, metrics: dict[str, float]) -> list[GateResult]:
    results = []
    for metric, bound in definition.gates.thresholds.items():
        value = metrics.get(metric, math.nan)
        sides = []
        if bound.min is not None:
            sides.append(f">= {bound.min:g}")
        if bound.max is not None:
            sides.append(f"<= {bound.max:g}")
        ok = (
            math.isfinite(value)
            and (bound.min is None or value >= bound.min)
            and (bound.max is None or value <= bound.max)
        )
        detail = f"{metric} = {format_value(value)}, required {' and '.join(sides)}"
        if not math.isfinite(value):
            detail += " (undefined on the held-out rows)"
        results.append(GateResult(f"threshold:{metric}", ok, value, " and ".join(sides), detail))
    return results


def champion_gate(
    spec: ChampionGate,
    metric: str,
    y_true: Any,
    challenger: Predictions,
    champion: Predictions | None,
    champion_label: str | None,
    why_no_champion: str = "no champion yet: this candidate would be the first",
) -> GateResult:
    threshold = (
        f"improvement > {spec.margin:g} at {spec.confidence:.0%}"
        if spec.require == "better"
        else f"not worse by > {spec.margin:g} at {spec.confidence:.0%}"
    )
    if not spec.enabled:
        return GateResult("champion", True, None, threshold, "disabled in model.yaml", skipped=True)
    if champion is None:
        return GateResult("champion", True, None, threshold, why_no_champion, skipped=True)
    interval = paired_bootstrap(
        metric, y_true, challenger, champion, resamples=spec.resamples, confidence=spec.confidence
    )
    direction = "higher" if higher_is_better(metric) else "lower"
    ci = f"[{format_value(interval.low)}, {format_value(interval.high)}]"
    described = (
        f"{metric} improvement over champion {champion_label} = {format_value(interval.estimate)} "
        f"({spec.confidence:.0%} paired bootstrap CI {ci}, {interval.resamples} resamples, "
        f"{direction} is better)"
    )
    if not math.isfinite(interval.low):
        return GateResult(
            "champion", False, interval.estimate, threshold, described + ": undefined"
        )
    ok = interval.low > spec.margin if spec.require == "better" else interval.high >= -spec.margin
    why = champion_verdict(interval.low, interval.high, spec.margin, spec.require, ok)
    return GateResult("champion", ok, interval.estimate, threshold, f"{described}: {why}")


def champion_verdict(low: float, high: float, margin: float, require: str, passed: bool) -> str:
    """What the interval shows, in words a reviewer approves a promotion on.

    Significance is the interval's position against zero; the margin only decides the verdict.
    A challenger whose whole interval is below zero is significantly worse, even when the
    margin lets it pass, and the words must say so.
    """
    allowed = f"{format_value(margin)}"
    if high < 0:
        shows = f"significantly worse (by {format_value(-high)} to {format_value(-low)})"
    elif low > 0:
        shows = f"significantly better (by {format_value(low)} to {format_value(high)})"
    else:
        shows = "no significant difference (the interval includes 0)"
    if require == "better":
        if passed:
            return f"{shows}, by more than the required margin {allowed}"
        if low > 0:
            return f"{shows}, but not surely by more than the required margin {allowed}"
        return f"{shows}: not shown to be better, and noise is not promoted"
    if passed:
        if high < 0:
            return f"{shows}, within the allowed margin {allowed}"
        if low > 0:
            return shows
        return f"{shows}, so not worse by more than the allowed margin {allowed}"
    return f"{shows}, by more than the allowed margin {allowed}"


def fairness_gate(spec: FairnessGate, evaluation: Evaluation) -> GateResult:
    threshold = f"gap <= {spec.max_gap:g}"
    groups = evaluation.groups.get(spec.group_column, {})
    eligible = {
        group: scores[spec.metric]
        for group, scores in groups.items()
        if scores["rows"] >= spec.min_group_size and math.isfinite(scores[spec.metric])
    }
    small = sorted(set(groups) - set(eligible))
    note = (
        f"; left out (< {spec.min_group_size} rows or undefined): {', '.join(small)}"
        if small
        else ""
    )
    if len(eligible) < 2:
        return GateResult(
            "fairness",
            True,
            None,
            threshold,
            f"fewer than two groups of {spec.group_column!r} with enough rows{note}",
            skipped=True,
        )
    worst, best = min(eligible, key=eligible.__getitem__), max(eligible, key=eligible.__getitem__)
    gap = eligible[best] - eligible[worst]
    per_group = ", ".join(f"{g}={format_value(v)}" for g, v in sorted(eligible.items()))
    detail = (
        f"largest {spec.metric} gap across {spec.group_column!r} = {format_value(gap)} "
        f"({per_group}){note}"
    )
    return GateResult("fairness", gap <= spec.max_gap, gap, threshold, detail)


def latency_gate(spec: LatencyGate, estimator: Any, x: Any) -> GateResult:
    import numpy as np
    from threadpoolctl import threadpool_limits

    batch = x.iloc[np.arange(spec.batch_size) % len(x)]
    timings = np.empty(spec.repeats)
    # One thread, as a serving worker predicts: OpenMP models otherwise spin up every core for
    # one row, and their latency then measures how busy the machine is, not the model.
    with threadpool_limits(limits=1):
        for _ in range(5):  # warm caches and lazy initialisation before measuring
            estimator.predict(batch)
        for i in range(spec.repeats):
            start = time.perf_counter()
            estimator.predict(batch)
            timings[i] = (time.perf_counter() - start) * 1000
    p50, p99 = np.percentile(timings, [50, 99])
    detail = (
        f"p99 = {p99:.2f} ms, p50 = {p50:.2f} ms for batches of {spec.batch_size} row(s) over "
        f"{spec.repeats} calls in-process, one thread"
    )
    return GateResult(
        "latency", bool(p99 <= spec.p99_ms), float(p99), f"p99 <= {spec.p99_ms:g} ms", detail
    )


def size_gate(spec: SizeGate, model_dir: Path) -> GateResult:
    size_mb = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()) / 1_000_000
    detail = f"model artifact = {size_mb:.2f} MB"
    return GateResult("size", size_mb <= spec.max_mb, size_mb, f"<= {spec.max_mb:g} MB", detail)
