"""Evaluate step: score the evaluation split through the serving code path; `evaluation.json`
(per class, mean, the quality gate's value and SageMaker's model-quality block) and plots in the
output folder. The bundle's modality decides how its data is read and scored."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference.bundle import MANIFEST, read_manifest
from inference.errors import BundleError
from pipelines import tracking
from pipelines.definition import EVALUATION_FILE, gate_and_registration
from pipelines.modalities import modality
from pipelines.steps.conventions import PROCESSING, run_step


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(PROCESSING / "model"), help="model.tar.gz or a folder holding it")
    parser.add_argument("--input", default=str(PROCESSING / "input" / "data"))
    parser.add_argument("--output", default=str(PROCESSING / "evaluation"))
    parser.add_argument("--classes", default="")
    parser.add_argument("--split", choices=("heldout", "all"), default="heldout",
                        help="heldout: the evaluation split recorded at training; all: every test image")
    return parser.parse_args(argv)


def bundle_path(location: str) -> Path:
    path = Path(location)
    if path.is_dir() and (path / "model.tar.gz").is_file():
        return path / "model.tar.gz"
    if path.is_file() or (path.is_dir() and (path / MANIFEST).is_file()):
        return path
    raise BundleError(f"no model.tar.gz in {location}")


def bundle_modality(path: Path) -> str:
    from inference.bundle import manifest_of

    return (manifest_of(path) if path.is_file() else read_manifest(path))["modality"]


def main(argv=None) -> None:
    args = parse(argv)
    classes = [c for c in args.classes.split(",") if c] or None
    bundle = bundle_path(args.model)
    chosen = modality(bundle_modality(bundle))
    report = chosen.evaluate(bundle, args.input, args.output, classes, split=args.split, quiet=True)
    add_gate_and_registration(Path(args.output) / EVALUATION_FILE, report, chosen.GATE_METRIC, bundle_kind(bundle))
    write_monitoring_reference(bundle, args.input, Path(args.output), classes)
    track_evaluation(bundle, report, Path(args.output))
    print(f"evaluate ({args.split} split): mean {chosen.GATE_METRIC} {report['mean'].get(chosen.GATE_METRIC)}")


def bundle_kind(path: Path) -> str:
    from inference.bundle import manifest_of

    return (manifest_of(path) if path.is_file() else read_manifest(path))["kind"]


def add_gate_and_registration(path: Path, report: dict, metric: str, kind: str) -> None:
    """The quality gate's value (or why it has none) and the package group, for the pipeline's later steps."""
    written = json.loads(path.read_text())
    written.update(gate_and_registration(report, metric, kind))
    path.write_text(json.dumps(written, indent=2, sort_keys=True))


def write_monitoring_reference(bundle: Path, data: str, output: Path, classes) -> None:
    """Scores and input statistics of held-out normal data, for drift monitoring of this version.
    A model without one is still a model: its monitoring reports anomaly rates and quality, not drift."""
    from pipelines.monitoring.reference import build_reference, write_reference

    try:
        path = write_reference(build_reference(bundle, data, classes), output)
    except Exception as exc:
        print(f"monitoring reference not written ({type(exc).__name__}: {exc}); drift cannot be measured for "
              "this version", file=sys.stderr)
        return
    print(f"monitoring reference: {path}")


def bundle_lineage(path: Path) -> dict:
    from inference.bundle import manifest_of

    return (manifest_of(path) if path.is_file() else read_manifest(path)).get("lineage", {})


def track_evaluation(bundle: Path, report: dict, output: Path) -> None:
    """Add the evaluation to the training's MLflow run (metrics per class, plots, the packed bundle)
    and write the run's id into `evaluation.json` for registration (`untracked` when there is none)."""
    lineage, kind = bundle_lineage(bundle), bundle_kind(bundle)
    run = tracking.resume_run(lineage.get(tracking.RUN_ID_KEY, ""), kind,
                              "-".join(p for p in (kind, lineage.get("execution_id", ""), "evaluation") if p))
    run.log_metrics(tracking.evaluation_metrics(report))
    run.set_tags({"ivadas.evaluation_split": report.get("split", {}).get("name", "")})
    run.log_artifact(output, "evaluation")
    run.log_artifact(bundle, "bundle")
    run.finish()
    path = output / EVALUATION_FILE
    written = json.loads(path.read_text())
    written[tracking.TRACKING_KEY] = run.summary()
    path.write_text(json.dumps(written, indent=2, sort_keys=True))


if __name__ == "__main__":
    sys.exit(run_step(main))
