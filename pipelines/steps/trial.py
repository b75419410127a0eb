"""Trial step: a model version (approved or not) scores a set of new images, through the same model
code the endpoints run, before anyone decides on it.

On AWS it is a SageMaker Processing job the API starts (`lambda/predict/trials.py`): the version's
`model.tar.gz` under /opt/ml/processing/model, the images under /opt/ml/processing/images, and
`results.json` written to /opt/ml/processing/output. The local stack's worker calls `score_images`
directly.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from pipelines.steps.conventions import PROCESSING, run_step

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
#: what a trial shows of each verdict, of what the version's kind offers (a detector: its boxes)
TRIAL_OUTPUTS = ("heatmap", "regions", "detections")


def score_images(model, class_name: str, images: list[tuple[str, bytes]]) -> list[dict]:
    """Each image's verdict (score, threshold, regions, heatmap) or, for an image the model cannot
    use, the reason; one bad image fails only itself."""
    results = []
    outputs = [output for output in TRIAL_OUTPUTS if output in model.outputs]
    for name, data in images:
        instance = {"class_name": class_name, "outputs": outputs, "image_base64": base64.b64encode(data).decode()}
        try:
            answer = model.predict(instance)
        except Exception as exc:  # noqa: BLE001 - reported per image, as the endpoint would answer it
            results.append({"name": name, "error": str(exc)})
            continue
        results.append({"name": name, "anomaly_score": answer["anomaly_score"], "is_anomaly": answer["is_anomaly"],
                        "threshold": answer["threshold"], "regions": answer.get("regions", []),
                        "heatmap_png_base64": answer.get("heatmap_png_base64"), "detections": answer.get("detections", [])})
    return results


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--class-name", required=True)
    parser.add_argument("--model", default=str(PROCESSING / "model"), help="model.tar.gz or a folder holding it")
    parser.add_argument("--images", default=str(PROCESSING / "images"))
    parser.add_argument("--output", default=str(PROCESSING / "output"))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    from inference.model import load_model

    args = parse(argv)
    model_path = Path(args.model)
    if model_path.is_dir():
        bundles = sorted(model_path.rglob("model.tar.gz"))
        if not bundles:
            raise FileNotFoundError(f"no model.tar.gz under {model_path}")
        model_path = bundles[0]
    model = load_model(model_path)
    files = sorted((p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: _order(p.stem))
    results = score_images(model, args.class_name, [(p.name, p.read_bytes()) for p in files])
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps({"results": results}))
    print(f"trial: {len(results)} image(s), {sum(bool(r.get('is_anomaly')) for r in results)} anomalous")


def _order(stem: str):
    """Images are stored as 0.png, 1.png, ...: numeric order is the trial's order."""
    return (0, int(stem)) if stem.isdigit() else (1, stem)


if __name__ == "__main__":
    sys.exit(run_step(main))
