"""Training step (SageMaker training-job conventions): channels `data` and `manifest`,
string hyperparameters, the bundle's files written to the model directory (SageMaker packs them
into `model.tar.gz`). The kind named by the `model` hyperparameter does the training."""

from __future__ import annotations

import json
import sys

from pipelines import tracking
from pipelines.kinds import TrainingJob, train
from pipelines.steps.conventions import StepFailed, channel, hyperparameters, model_dir, output_data_dir, run_step
from pipelines.steps.preprocess import MANIFEST_FILE

#: Hyperparameters the pipeline itself sets; every other one is the kind's own setting.
PIPELINE_KEYS = ("model", "classes", "kind_settings")
LINEAGE_KEYS = ("data_uri", "source_revision", "execution_id", "data_snapshot")


def kind_settings(hp: dict[str, str]) -> dict[str, str]:
    """The kind's settings: the SageMaker pipeline passes them as one JSON object (`kind_settings`),
    a training job started by hand may set them one by one; one by one wins."""
    text = hp.get("kind_settings") or "{}"
    try:
        packed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepFailed(f"kind_settings is not a JSON object: {exc}") from None
    if not isinstance(packed, dict):
        raise StepFailed("kind_settings must be a JSON object of setting names and values")
    own = {k: v for k, v in hp.items() if k not in PIPELINE_KEYS + LINEAGE_KEYS}
    return {**{str(k): str(v) for k, v in packed.items()}, **own}


def training_job(hp: dict[str, str], split_manifest: dict) -> TrainingJob:
    kind = hp.get("model")
    if not kind:
        raise StepFailed("no model kind: set the 'model' hyperparameter")
    classes = [c for c in hp.get("classes", "").split(",") if c] or sorted(split_manifest.get("classes", {}))
    if not classes:
        raise StepFailed("no classes to train: set the 'classes' hyperparameter")
    settings = kind_settings(hp)
    lineage = {k: hp[k] for k in LINEAGE_KEYS if k in hp}
    return TrainingJob(kind, channel("data"), classes, settings, model_dir(), lineage,
                       split_manifest.get("classes"), quiet=True)


def main(argv=None) -> None:
    manifest_path = channel("manifest") / MANIFEST_FILE
    split_manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"classes": {}}
    job = training_job(hyperparameters(), split_manifest)
    run = start_tracking(job)
    with run.failed_on_error():
        report = train(job)
    track_training(run, report)
    output = output_data_dir()
    output.mkdir(parents=True, exist_ok=True)
    (output / "training_report.json").write_text(json.dumps({"timings": report.timings, "problems": report.problems}, indent=2))
    print(f"train: {job.kind} bundle for {job.classes} written to {model_dir()}")


def start_tracking(job: TrainingJob) -> tracking.TrackedRun:
    """The training's MLflow run (inactive without a tracking URI); its id goes into the bundle's lineage."""
    name = "-".join(p for p in (job.kind, job.lineage.get("execution_id", "")) if p)
    run = tracking.start_run(job.kind, name, tracking.lineage_tags({**job.lineage, "classes": job.classes}, job.kind))
    run.log_params({**job.hyperparameters, "model_kind": job.kind, "classes": ",".join(job.classes),
                    **{k: v for k, v in job.lineage.items() if k in LINEAGE_KEYS}})
    if run.run_id:
        job.lineage[tracking.RUN_ID_KEY] = run.run_id
    return run


def track_training(run: tracking.TrackedRun, report) -> None:
    """Training timings (seconds and sizes per class) and how many files each class could not read."""
    values = {}
    for name, entry in (report.timings or {}).items():
        if isinstance(entry, dict):
            values.update({f"{name}.train.{key}": value for key, value in entry.items()})
        else:
            values[f"train.{name}"] = entry
    values.update({f"{name}.train.problems": len(found or ()) for name, found in (report.problems or {}).items()})
    run.log_metrics(values)
    run.finish()


if __name__ == "__main__":
    sys.exit(run_step(main))
