"""The monitor's reports: ``drift.json`` for machines, ``drift.html`` for people.

The HTML file is self-contained (one inline PNG per feature, reference against current, no
scripts and no external assets) so that CI can attach it and anyone can open it offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitoring.drift import FeatureDriftResult
    from monitoring.monitor import MonitorResult

JSON_FILE = "drift.json"
HTML_FILE = "drift.html"


def write_reports(result: MonitorResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / JSON_FILE
    json_path.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
    html_path = out_dir / HTML_FILE
    html_path.write_text(render_html(result), encoding="utf-8")
    return json_path, html_path


def _plot(name: str, kind: str, reference: Any, current: Any) -> str:
    """A base64 PNG of the two distributions of one column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from monitoring.drift import Counts, Sketched

    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=80)
    if kind == "numeric":
        ref = pd.to_numeric(pd.Series(reference), errors="coerce").dropna().to_numpy(float)
        if isinstance(current, Sketched):  # the sketch's quantile function, evenly weighted
            current = current.quantiles
        cur = pd.to_numeric(pd.Series(current), errors="coerce").dropna().to_numpy(float)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30).tolist()
        ax.hist(ref, bins=edges, density=True, alpha=0.5, label="reference")
        ax.hist(cur, bins=edges, density=True, alpha=0.5, label="current")
    else:
        ref_s = pd.Series(reference).dropna().astype(str).value_counts(normalize=True)
        if isinstance(current, Counts):
            cur_s = pd.Series(current.counts, index=current.labels, dtype=float)
            cur_s = cur_s / cur_s.sum()
        else:
            cur_s = pd.Series(current).dropna().astype(str).value_counts(normalize=True)
        keys = sorted(set(ref_s.index) | set(cur_s.index))
        x = np.arange(len(keys))
        ax.bar(x - 0.2, [ref_s.get(k, 0) for k in keys], 0.4, label="reference")
        ax.bar(x + 0.2, [cur_s.get(k, 0) for k in keys], 0.4, label="current")
        ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=8)
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _row(f: FeatureDriftResult, image: str) -> str:
    verdict = "DRIFT" if f.drifted else "ok"
    rule = "<" if f.p_value else ">="
    score = "n/a" if f.score != f.score else f"{f.score:.4g}"
    stats = ", ".join(f"{k}={v:.4g}" for k, v in f.stats.items())
    return (
        f'<tr class="{"drift" if f.drifted else "ok"}"><td>{html.escape(f.feature)}</td>'
        f"<td>{f.kind}</td><td>{f.method}</td><td>{score}</td><td>{rule} {f.threshold:g}</td>"
        f"<td><b>{verdict}</b></td><td>{f.current_rows}</td>"
        f'<td><img alt="{html.escape(f.feature)}" src="data:image/png;base64,{image}"/>'
        f"<br/><small>{html.escape(stats)}</small></td></tr>"
    )


def _summaries(result: MonitorResult) -> str:
    """Which columns were judged on a sketch rather than exactly (all exact: nothing to say)."""
    sketched = {n: s for n, s in result.current.summaries().items() if "sketch" in s}
    if not sketched:
        return ""
    return "; judged on quantile sketches: " + html.escape(
        ", ".join(f"{n} ({s})" for n, s in sketched.items())
    )


def render_html(result: MonitorResult) -> str:
    window = result.current
    rows = [
        _row(
            f,
            _plot(
                f.feature,
                f.kind,
                result.reference.frame[f.feature],
                window.features[f.feature].current(),
            ),
        )
        for f in result.drift.features
    ]
    prediction = result.drift.prediction
    if prediction is not None:
        rows.append(
            _row(
                prediction,
                _plot("prediction", prediction.kind, result.prediction_reference,
                      window.prediction.current()),
            )
        )  # fmt: skip
    concept = ""
    if result.concept is not None:
        c = result.concept
        over_time = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in c.over_time.items()
        )
        concept = (
            f"<h2>Concept drift</h2><p>{c.metric} on {c.rows} labelled rows: {c.current:.4g} "
            f"(test: {c.reference if c.reference is None else f'{c.reference:.4g}'}, "
            f"tolerance {c.tolerance:g}) &mdash; <b>{'DEGRADED' if c.degraded else 'ok'}</b></p>"
            + (f"<p>{html.escape(c.note)}</p>" if c.note else "")
            + f"<table><tr><th>hour</th><th>{c.metric}</th></tr>{over_time}</table>"
        )
    skipped = (
        f" ({result.current.skipped} malformed records skipped)" if result.current.skipped else ""
    )
    d = result.drift
    verdict = "DRIFT DETECTED" if result.detected else "no drift"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"/>
<title>Drift report: {html.escape(result.model)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.drift {{ background: #fde2e2; }} tr.ok {{ background: #e6f4ea; }}
</style></head><body>
<h1>Drift report: {html.escape(result.model)} &mdash; {verdict}</h1>
<p>{len(d.drifted_features)} of {len(d.features)} features drifted
(share {d.share:.2f}; drift when &ge; {d.share_threshold:g}).
Reference: {html.escape(result.reference.source)} ({len(result.reference.frame)} rows).
Current: {result.current.rows} rows in {result.current.records} captured requests from
{html.escape(result.current.location)}{skipped}{_summaries(result)}.
Computed {result.at:%Y-%m-%d %H:%M:%S} UTC.</p>
<table><tr><th>column</th><th>kind</th><th>test</th><th>score</th><th>drift when</th>
<th>verdict</th><th>current rows</th><th>reference vs current</th></tr>
{"".join(rows)}
</table>
{concept}
</body></html>
"""
