"""`ivadas bench --suite monitoring`: what tracking and monitoring cost.

- input statistics per request (what every verdict now pays on the endpoint), by image size and for
  a sensor window;
- one monitoring pass (read nothing, compute and write summary and report) over synthetic verdicts
  of one class, by number of verdicts;
- MLflow tracking on the embedded SQLite store: creating the store, and one training's logging
  (parameters, metrics, plots and a bundle-sized artifact).

Medians over repeats; the machine's load average is written with the table, since these are
wall-clock times.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

IMAGE_SIDES = (256, 1024, 2048)
VERDICT_COUNTS = (1_000, 10_000)
BUNDLE_MB = 50


def _median_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def input_statistics_rows(repeats: int = 30) -> list[tuple[str, float]]:
    from PIL import Image

    from inference.input_statistics import image_statistics, window_statistics

    rng = np.random.default_rng(0)
    rows = []
    for side in IMAGE_SIDES:
        image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        rows.append((f"image {side}×{side} RGB", _median_ms(lambda: image_statistics(image), repeats)))
    window = rng.normal(size=(600, 6))
    rows.append(("sensor window 600 rows × 6 sensors", _median_ms(lambda: window_statistics(window, list("abcdef")), repeats)))
    return rows


def _verdicts(count: int, since: datetime) -> list[dict]:
    rng = np.random.default_rng(1)
    return [{"request_id": f"r{i}", "timestamp": (since + timedelta(seconds=3600 * i / count)).isoformat(timespec="milliseconds"),
             "class_name": "tiles", "model_kind": "patchcore", "model_version": "ivadas-training-patchcore/1",
             "anomaly_score": 0.2, "raw_score": float(rng.normal(1, 0.1)), "threshold": 0.5, "is_anomaly": bool(i % 20 == 0),
             "verified_label": None,
             "detail": {"input_statistics": {key: float(rng.normal(100, 5)) for key in
                                             ("brightness", "contrast", "sharpness", "red", "green", "blue", "saturation")}
                        | {"width": 256.0, "height": 256.0}}} for i in range(count)]


def monitor_rows(workdir: Path, repeats: int = 3) -> list[tuple[str, float]]:
    from pipelines.monitoring.job import run

    rng = np.random.default_rng(2)
    images = {key: rng.normal(100, 5, 300).tolist() for key in ("brightness", "contrast", "sharpness", "red", "green", "blue",
                                                                "saturation")} | {"width": [256.0] * 300, "height": [256.0] * 300}
    reference = {"modality": "image", "classes": {"tiles": {"scores": rng.normal(1, 0.1, 200).tolist(),
                                                            "inputs": {"images": images}, "threshold": 1.4}}}
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    for count in VERDICT_COUNTS:
        records = _verdicts(count, since)
        rows.append((f"{count:,} verdicts of one class", _median_ms(
            lambda: run(records, lambda kind, version: reference, since, since + timedelta(hours=1), workdir / f"pass-{count}"),
            repeats)))
    return rows


def tracking_rows(workdir: Path) -> list[tuple[str, float]]:
    from pipelines import tracking

    rows = []
    store = workdir / "tracking-store"
    uri = tracking.local_tracking_uri(store)
    started = time.perf_counter()
    run = tracking.start_run("patchcore", "bench-first", uri=uri)
    rows.append(("first run on a new store (creates the SQLite schema)", (time.perf_counter() - started) * 1000))
    run.finish()
    bundle = workdir / "model.tar.gz"
    bundle.write_bytes(os.urandom(BUNDLE_MB * 2**20))
    plots = workdir / "plots"
    plots.mkdir(exist_ok=True)
    for index in range(6):
        (plots / f"plot_{index}.png").write_bytes(os.urandom(60_000))
    started = time.perf_counter()
    run = tracking.start_run("patchcore", "bench", uri=uri)
    run.log_params({f"setting_{i}": i for i in range(20)})
    run.log_metrics({f"class_{c}.metric_{m}": 0.5 for c in range(3) for m in range(12)})
    run.log_artifact(plots, "evaluation")
    run.log_artifact(bundle, "bundle")
    run.finish()
    rows.append((f"one training's run: 20 parameters, 36 metrics, 6 plots, a {BUNDLE_MB} MB bundle",
                 (time.perf_counter() - started) * 1000))
    return rows


def _table(title: str, rows: list[tuple[str, float]]) -> str:
    lines = [f"### {title}", "", "| what | median ms |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in rows]
    return "\n".join(lines)


def run_monitoring_bench(args) -> str:
    workdir = Path(args.workdir) / "monitoring"
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        scratch = Path(scratch)
        sections = [
            "## Tracking and monitoring",
            f"Load average when measured: {', '.join(f'{v:.1f}' for v in os.getloadavg())} "
            f"on {os.cpu_count()} CPUs (wall-clock medians; a busy machine inflates them).",
            _table("Input statistics per request (endpoint)", input_statistics_rows()),
            _table("One monitoring pass (summary, report and plots)", monitor_rows(scratch)),
            _table("MLflow tracking on the embedded store", tracking_rows(scratch)),
        ]
    return "\n\n".join(sections)
