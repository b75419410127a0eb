"""Preprocess step: validate the dataset, write the split manifest and a data-quality report.

The model kind's modality reads the data (MVTec-layout images, or sensor series). Fails (exit 1,
with the reason) when a class is missing, has too little usable data, or too many unreadable files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.modalities import of_kind
from pipelines.steps.conventions import PROCESSING, StepFailed, run_step

MANIFEST_FILE = "split_manifest.json"
QUALITY_FILE = "data_quality.json"
DEFAULT_SEED = 0


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", default=str(PROCESSING / "input" / "data"))
    parser.add_argument("--output", default=str(PROCESSING / "output" / "manifest"))
    parser.add_argument("--classes", default="", help="comma-separated; empty = every class found")
    parser.add_argument("--kind", default="patchcore", help="the model kind to be trained (chooses how data is read)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="a data-quality limit of the modality, e.g. min_train_images=10 (repeatable)")
    parser.add_argument("--settings", default="{}",
                        help="the kind's settings as a JSON object; those that decide the split (the modality's "
                             "SPLIT_SETTINGS) judge the data as training will use it")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    return parser.parse_args(argv)


def parse_limits(pairs: list[str]) -> dict:
    limits = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise StepFailed(f"--limit {pair!r} is not NAME=VALUE")
        try:
            limits[name] = float(value) if "." in value else int(value)
        except ValueError:
            raise StepFailed(f"--limit {pair!r}: {value!r} is not a number") from None
    return limits


def split_settings(text: str, modality) -> dict:
    """The kind settings that decide how the modality splits data (e.g. a sensor's `train_rows`)."""
    try:
        settings = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise StepFailed(f"--settings is not a JSON object: {exc}") from None
    if not isinstance(settings, dict):
        raise StepFailed("--settings must be a JSON object")
    return {k: float(v) if "." in str(v) else int(v) for k, v in settings.items() if k in getattr(modality, "SPLIT_SETTINGS", ())}


def main(argv=None) -> None:
    args = parse(argv)
    modality = of_kind(args.kind)
    classes = [c for c in args.classes.split(",") if c] or modality.list_classes(args.input)
    if not classes:
        raise StepFailed(f"no classes found in {args.input}")
    limits = {**split_settings(args.settings, modality), **parse_limits(args.limit)}
    try:
        manifest, quality, failures = modality.preprocess(args.input, classes, args.seed, **limits)
    except TypeError as exc:  # an unknown limit name
        raise StepFailed(f"unknown data-quality limit: {exc}") from None
    quality.update(passed=not failures, failures=failures, kind=args.kind)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / QUALITY_FILE).write_text(json.dumps(quality, indent=2, sort_keys=True))
    if failures:
        raise StepFailed("; ".join(failures))
    (output / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    print(f"preprocess: {len(classes)} class(es) valid; manifest in {output}")


if __name__ == "__main__":
    sys.exit(run_step(main))
