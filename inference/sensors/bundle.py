"""The sensor part of a bundle, the same for every sensor kind: what training writes, what serving loads.

Files::

    classes/<asset>/model.onnx    the asset's graph (see `inference.sensors.scorer` for its contract)

Per asset the manifest holds `spec` (columns, sensors, scaler, context, output, aggregate, time
features, smoothing), the calibration and threshold, how its files were read (timestamp and label
columns, sampling interval), the sensors left out and why, and the split. The generic bundle has
already checked every file's hash; loading here checks that each graph takes the input its spec
describes and gives the output it names, before serving a single request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.bundle import bundle_file
from inference.calibration import Calibration
from inference.errors import BundleError
from inference.runtime import open_session
from inference.sensors.scorer import AssetSpec, SeriesScorer
from inference.sensors.sensor_model import SensorModel


def graph_path(asset: str) -> str:
    return f"classes/{asset}/model.onnx"


@dataclass
class TrainedAsset:
    """What training produced for one asset, ready to be written into a bundle."""

    name: str
    spec: AssetSpec
    graph: bytes  # the serialised ONNX model
    calibration: Calibration
    data: dict = field(default_factory=dict)  # timestamp/label columns, sampling, ignored sensors
    score_stats: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)


def contents(kind: str, config: dict, assets: list[TrainedAsset], lineage: dict | None = None) -> tuple[dict, dict]:
    """(manifest fields, files) of a sensor bundle, for `inference.bundle.write_bundle`."""
    files, entries = {}, {}
    for asset in assets:
        files[graph_path(asset.name)] = asset.graph
        entries[asset.name] = {
            "graph": graph_path(asset.name),
            "spec": asset.spec.to_dict(),
            "calibration": asset.calibration.to_dict(),
            "threshold": asset.calibration.threshold,
            "score_stats": asset.score_stats,
            "split": asset.split,
            **asset.data,
        }
    manifest = {"kind": kind, "modality": "sensors", "classes": entries, "config": config,
                "metrics": {}, "lineage": lineage or {}}
    return manifest, files


def load(root: Path, manifest: dict, threads: int | None = None) -> SensorModel:
    scorers = {name: load_asset(Path(root), manifest, name, entry, threads) for name, entry in manifest["classes"].items()}
    return SensorModel(manifest, scorers, root)


def load_asset(root: Path, manifest: dict, name: str, entry: dict, threads: int | None) -> SeriesScorer:
    try:
        spec = AssetSpec.from_dict(entry["spec"])
        calibration = Calibration.from_dict(entry["calibration"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"asset {name!r}: its model description is invalid: {exc}") from None
    session = open_session(bundle_file(root, manifest, entry.get("graph", graph_path(name))), threads, f"graph of asset {name!r}")
    scorer = SeriesScorer(spec, session, calibration)
    _probe(scorer, name)
    return scorer


def _probe(scorer: SeriesScorer, name: str) -> None:
    """The graph takes `[N, context, width]` and gives what the spec says (also warms the session up)."""
    spec = scorer.spec
    probe = np.zeros((2, spec.context, spec.input_width), np.float32)
    try:
        out = scorer.run(probe)
    except Exception as exc:  # onnxruntime's own errors: the graph and the spec disagree
        raise BundleError(f"asset {name!r}: the graph does not take {spec.context} rows × {spec.input_width} inputs: {exc}") from None
    expected = (2, len(spec.sensors)) if spec.output == "errors" else (2,)
    if out.shape != expected:
        raise BundleError(f"asset {name!r}: the graph gives {out.shape}, the spec expects {expected}")
