"""The monitor's reports: ``drift.json`` for machines, ``drift.html`` for people.

The HTML file is self-contained (one inline SVG per feature, reference against current, no
scripts and no external assets: ``monitoring.charts``) so that CI can attach it and anyone can
open it offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

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


def _row(f: FeatureDriftResult, svg: str) -> str:
    verdict = "DRIFT" if f.drifted else "ok"
    rule = "<" if f.p_value else ">="
    score = "n/a" if f.score != f.score else f"{f.score:.4g}"
    stats = ", ".join(f"{k}={v:.4g}" for k, v in f.stats.items())
    return (
        f'<tr class="{"drift" if f.drifted else "ok"}"><td>{html.escape(f.feature)}</td>'
        f"<td>{f.kind}</td><td>{f.method}</td><td>{score}</td><td>{rule} {f.threshold:g}</td>"
        f"<td><b>{verdict}</b></td><td>{f.current_rows}</td>"
        f"<td>{svg}<br/><small>{html.escape(stats)}</small></td></tr>"
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
    from monitoring.charts import chart

    window = result.current
    rows = [
        _row(
            f,
            chart(
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
                chart("prediction", prediction.kind, result.prediction_reference,
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
