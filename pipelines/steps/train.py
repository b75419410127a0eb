"""Training step (SageMaker training-job conventions): channels `data` and `manifest`,
string hyperparameters, the bundle's files written to the model directory (SageMaker packs them
into `model.tar.gz`)."""

from __future__ import annotations

import json
import sys

from inference.kinds.patchcore.config import DEFAULT_CONFIG, ModelConfig

from pipelines.vision.backbones import BackboneSource
from pipelines.kinds.patchcore.training import train_bundle
from .conventions import StepFailed, channel, hyperparameters, model_dir, output_data_dir, run_step
from .preprocess import MANIFEST_FILE

FLOAT_SETTINGS = ("coreset_ratio", "noise_fraction", "normal_quantile")
INT_SETTINGS = ("image_size", "seed")


def model_config(hp: dict[str, str]) -> ModelConfig:
    values = DEFAULT_CONFIG.to_dict()
    values["kind"] = hp.get("model", values["kind"])
    for key in FLOAT_SETTINGS + INT_SETTINGS:
        if key in hp:
            try:
                values[key] = (float if key in FLOAT_SETTINGS else int)(hp[key])
            except ValueError:
                raise StepFailed(f"hyperparameter {key}={hp[key]!r} is not a number") from None
    if "noise_method" in hp:
        values["noise_method"] = hp["noise_method"]
    return ModelConfig.from_dict(values)


def main(argv=None) -> None:
    hp = hyperparameters()
    config = model_config(hp)
    manifest_path = channel("manifest") / MANIFEST_FILE
    split_manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"classes": {}}
    classes = [c for c in hp.get("classes", "").split(",") if c] or sorted(split_manifest["classes"])
    if not classes:
        raise StepFailed("no classes to train: set the 'classes' hyperparameter")
    source = BackboneSource(hp.get("backbone", "wide_resnet50_2"), hp.get("weights", "auto"))
    lineage = {key: hp[key] for key in ("data_uri", "source_revision", "execution_id") if key in hp}
    report = train_bundle(channel("data"), classes, config, source, model_dir(), lineage=lineage,
                          quantize=hp.get("int8", "false").lower() == "true", quiet=True,
                          split_keys=split_manifest["classes"])
    output = output_data_dir()
    output.mkdir(parents=True, exist_ok=True)
    (output / "training_report.json").write_text(json.dumps({"timings": report.timings, "problems": report.problems}, indent=2))
    print(f"train: {config.kind} bundle for {classes} written to {model_dir()}")


if __name__ == "__main__":
    sys.exit(run_step(main))
