"""The monitoring report: `summary.json` (what the API, the UI and alarms read) and `report.html`
with its plots (anomaly rate over time, scores against training, the inputs that moved most), the
plots embedded so the page is one self-contained file (they are also left beside it as PNGs)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from pipelines.monitoring import drift
from pipelines.plots import pyplot

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


def slug(*parts: str) -> str:
    return "-".join("".join(c if c.isalnum() else "_" for c in str(p)) for p in parts)


def write_report(summary: dict, records: list[dict], references, output_dir) -> Path:
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    sections = []
    for group in summary["groups"]:
        mine = [r for r in records if (r["class_name"], r["model_kind"], r["model_version"]) ==
                (group["class_name"], group["model_kind"], group["model_version"])]
        reference = (references(group["model_kind"], group["model_version"]) or {}).get("classes", {}).get(group["class_name"])
        sections.append(_section(group, mine, reference, output))
    path = output / REPORT_FILE
    # the summary goes last: whoever sees a new summary finds its report already there, and neither half-written
    _replace(path, _page(summary, sections))
    _replace(output / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True))
    return path


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def _section(group: dict, records: list[dict], reference: dict | None, output: Path) -> str:
    name = slug(group["class_name"], group["model_kind"], group["model_version"])
    plots = [_rate_plot(group, output / f"rate_{name}.png")]
    if reference:
        plots.append(_score_plot(group, records, reference, output / f"scores_{name}.png"))
        plots.append(_input_plot(group, records, reference, output / f"inputs_{name}.png"))
    alarms = "".join(f'<li class="alarm">{html.escape(a["message"])}</li>' for a in group["alarms"]) or '<li class="ok">no alarm</li>'
    quality = group["quality"]
    rows = [
        ("verdicts", group["verdicts"]), ("anomaly rate", _pct(group["anomaly_rate"])),
        ("score drift", _drift_text(group["score_drift"])), ("input drift", _input_text(group["input_drift"])),
        ("reviewed verdicts", quality["reviewed"]), ("precision (reviewed)", _pct(quality["precision"])),
        ("recall (reviewed)", _pct(quality["recall"])), ("reference", group["reference"]),
    ]
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    # embedded, so that the page is one file: served by the API, mailed or opened from S3 as it is
    images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{html.escape(p.stem)}">'
                     for p in plots if p)
    title = f'{group["class_name"]} · {group["model_kind"]} {group["model_version"]}'
    return (f'<section id="{name}"><h2>{html.escape(title)}</h2><ul class="alarms">{alarms}</ul>'
            f"<table>{table}</table><div class=\"plots\">{images}</div></section>")


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _drift_text(result) -> str:
    if not result:
        return "not measured (no reference)"
    if result["psi"] is None:
        return "no scores in the period"
    text = (f"PSI {result['psi']:.3f}, KS {result['ks_statistic']:.3f} (p {result['ks_p_value']:.2g}), "
            f"median {result['reference_median']:.4g} → {result['current_median']:.4g}")
    if result.get("method") == "ks_exact":
        text += f"; judged by the exact KS test alone ({result['reference_samples']} reference scores)"
    if result["drifted"]:
        return text + " — DRIFT"
    if not result.get("judged", True):
        return text + (f" — not judged: {result['samples']} verdicts against {result['reference_samples']} held-out "
                       "normal samples, too few (min_samples, min_reference_scores)")
    return text


def _input_text(result) -> str:
    if not result:
        return "not measured (no reference)"
    if not result["samples"]:
        return "no input statistics in the period"
    moved = ", ".join(result["drifted"]) or "none"
    return f"drifted: {moved}; largest change: {result['worst']}"


def rate_series(group: dict) -> list[tuple[str, str, list[str], list[float]]]:
    """The lines of the over-time plot: (label, marker, bucket starts, values); precision and recall
    only over the buckets where people reviewed verdicts that make them defined."""
    series = group["anomaly_rate_over_time"]
    lines = [("anomaly rate", "o", [s["start"][5:16] for s in series], [s["rate"] for s in series])]
    for key, marker in (("precision", "s"), ("recall", "^")):
        found = [q for q in group["quality"]["over_time"] if q[key] is not None]
        if found:
            lines.append((f"{key} (reviewed)", marker, [q["start"][5:16] for q in found], [q[key] for q in found]))
    return lines


def _rate_plot(group: dict, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for label, marker, times, values in rate_series(group):
        ax.plot(times, values, marker=marker, label=label)
    ax.axhline(group["thresholds"]["anomaly_rate"], color="grey", linestyle="--", linewidth=0.8, label="rate alarm")
    ax.set(ylim=(0, 1.02), ylabel="share", title=f"{group['class_name']}: anomaly rate over time")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _score_plot(group: dict, records: list[dict], reference: dict, path: Path) -> Path:
    plt = pyplot()
    expected = np.asarray(reference.get("scores", []), dtype=float)
    if group["modality"] == "sensors":
        rows = [r["detail"].get("scored_rows") or r["detail"].get("rows") for r in records]
        rows = [int(v) for v in rows if v]
        expected = drift.window_peaks(expected, int(np.median(rows)) if rows else 1)
    current = np.array([r["raw_score"] for r in records], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    both = np.concatenate([expected, current, [reference.get("threshold", 0.0)]])
    bins = np.linspace(both.min(), both.max(), 31) if both.size and both.min() < both.max() else 10
    ax.hist(expected, bins=bins, density=True, alpha=0.55, label="training (held-out normal)")
    ax.hist(current, bins=bins, density=True, alpha=0.55, label="this period")
    if "threshold" in reference:
        ax.axvline(reference["threshold"], color="black", linestyle="--", linewidth=0.8, label="threshold")
    ax.set(xlabel="raw anomaly score", ylabel="density", title=f"{group['class_name']}: scores against training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _input_plot(group: dict, records: list[dict], reference: dict, path: Path) -> Path | None:
    inputs = group["input_drift"]
    if not inputs or not inputs["worst"]:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    worst = inputs["worst"]
    if inputs["kind"] == "images":
        expected = np.asarray(reference["inputs"]["images"][worst], dtype=float)
        current = np.array([r["detail"].get("input_statistics", {}).get(worst) for r in records
                            if r["detail"].get("input_statistics", {}).get(worst) is not None], dtype=float)
        ax.hist(expected, bins=20, density=True, alpha=0.55, label="training")
        ax.hist(current, bins=20, density=True, alpha=0.55, label="this period")
        ax.set(xlabel=worst, title=f"{group['class_name']}: {worst} of the images")
        ax.legend(fontsize=7)
    else:
        from matplotlib.patches import Patch

        names = list(inputs["sensors"])
        positions = np.arange(len(names))
        legend = []
        for offset, colour, (label, values, alarmed) in zip((-0.2, 0.2), ("tab:blue", "tab:cyan"),
                                                            sensor_bars(inputs, group["thresholds"])):
            ax.bar(positions + offset, values, width=0.4, color=["tab:red" if hit else colour for hit in alarmed])
            legend.append(Patch(color=colour, label=label))
        line = ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8, label="alarm limit")
        ax.legend(handles=[*legend, Patch(color="tab:red", label="alarmed"), line], fontsize=7)
        ax.set_xticks(positions, names)
        ax.set(ylabel="share of its alarm limit", title=f"{group['class_name']}: each sensor against training (red: alarm)")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def sensor_bars(inputs: dict, limits: dict) -> list[tuple[str, list[float], list[bool]]]:
    """Each sensor's level shift and spread, each over its own alarm limit (so 1 is the alarm for both),
    with whether it alarmed: (label, values, alarmed) per measure, sensors in the summary's order."""
    sensors = list(inputs["sensors"].values())
    measures = (("level shift", "shift_sigma", "sensor_shift_sigma", "shifted"),
                ("spread", "spread_ratio", "sensor_spread_ratio", "spread_out"))
    return [(f"{label} / {limits.get(limit, 0):g}", [(s.get(key) or 0.0) / limits[limit] if limits.get(limit) else 0.0 for s in sensors],
             [bool(s.get(hit)) for s in sensors]) for label, key, limit, hit in measures]


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2430}h1{margin-bottom:.2rem}
section{border-top:1px solid #ccd;padding:1rem 0}table{border-collapse:collapse;margin:.5rem 0}
th{text-align:left;padding:.2rem 1rem .2rem 0;font-weight:600}td{padding:.2rem 0}
.alarm{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.plots img{max-width:32%;min-width:300px;margin:.3rem}
.status-alarm{color:#b00020}.status-ok{color:#1b7f3b}"""


def _page(summary: dict, sections: list[str]) -> str:
    period = summary["period"]
    status = summary["status"]
    head = (f"<h1>IVADAS monitoring report</h1><p>{html.escape(period['since'])} to {html.escape(period['until'])} · "
            f"{summary['verdicts']} verdicts · generated {html.escape(summary['generated_at'])} · "
            f'<strong class="status-{status}" id="status">{"ALARM" if status == "alarm" else "OK"}</strong> '
            f"({len(summary['alarms'])} alarm(s))</p>")
    body = "".join(sections) or "<p>No verdicts in this period.</p>"
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>IVADAS monitoring</title>"
            f"<style>{STYLE}</style></head><body>{head}{body}</body></html>")
