"""Preprocess step: validate the dataset, write the split manifest and a data-quality report.

Fails (exit 1, with the reason) when a class is missing, has too few readable `train/good` images,
or too large a share of unreadable files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference.kinds.patchcore.config import DEFAULT_CONFIG

from pipelines.vision.datasets import list_classes, read_class
from pipelines.vision.splits import split_class
from .conventions import PROCESSING, StepFailed, run_step

MANIFEST_FILE = "split_manifest.json"
QUALITY_FILE = "data_quality.json"


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", default=str(PROCESSING / "input" / "data"))
    parser.add_argument("--output", default=str(PROCESSING / "output" / "manifest"))
    parser.add_argument("--classes", default="", help="comma-separated; empty = every class found")
    parser.add_argument("--min-train-images", type=int, default=10)
    parser.add_argument("--max-unreadable-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=DEFAULT_CONFIG.seed)
    return parser.parse_args(argv)


def class_quality(data, split, unreadable: int) -> dict:
    total = len(data.train) + len(data.test) + unreadable
    return {
        "train_good": len(data.train),
        "test_good": sum(not s.is_anomaly for s in data.test),
        "test_anomalous": sum(s.is_anomaly for s in data.test),
        "defect_types": sorted({s.defect for s in data.test if s.is_anomaly}),
        "masks": sum(s.mask is not None for s in data.test),
        "unreadable": unreadable,
        "unreadable_fraction": unreadable / total if total else 0.0,
        "split_sizes": {part: len(keys) for part, keys in split.to_dict().items()},
        "problems": data.problems,
    }


def main(argv=None) -> None:
    args = parse(argv)
    classes = [c for c in args.classes.split(",") if c] or list_classes(args.input)
    if not classes:
        raise StepFailed(f"no classes found in {args.input}")
    manifest, quality, failures = {"seed": args.seed, "classes": {}}, {"classes": {}}, []
    for name in classes:
        data = read_class(args.input, name)
        split = split_class(data, args.seed)
        unreadable = sum("unreadable" in p["reason"] for p in data.problems)
        report = class_quality(data, split, unreadable)
        quality["classes"][name] = report
        manifest["classes"][name] = split.to_dict()
        if report["train_good"] < args.min_train_images:
            failures.append(f"class {name!r} has {report['train_good']} readable train/good images; at least {args.min_train_images} are needed")
        if report["unreadable_fraction"] > args.max_unreadable_fraction:
            failures.append(f"class {name!r}: {report['unreadable_fraction']:.0%} of its files are unreadable (limit {args.max_unreadable_fraction:.0%})")
    quality["passed"] = not failures
    quality["failures"] = failures
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / QUALITY_FILE).write_text(json.dumps(quality, indent=2, sort_keys=True))
    if failures:
        raise StepFailed("; ".join(failures))
    (output / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    print(f"preprocess: {len(classes)} class(es) valid; manifest in {output}")


if __name__ == "__main__":
    sys.exit(run_step(main))
