"""Trial detections: a model version (approved or not) run on a set of new images before anyone
approves it, the way Lookout for Vision's trial detections worked.

A trial is a record (`trials/<id>.json`) and its images (`trials/<id>/<n><ext>`) in the store.
Locally the local stack's worker scores them with the version's bundle, through the same model code
the endpoints run, and writes each verdict (score, threshold, heatmap) into the record. Results can
then be marked right or wrong (POST /feedback with trial_id and index).
"""

from __future__ import annotations

import json
import uuid

from api_core import ApiError
from class_datasets import now
from image_header import EXTENSIONS

TRIALS = "datasets/trials"
MAX_TRIAL_IMAGES = 20


class Trials:
    def __init__(self, store):
        self.store = store

    def key(self, trial_id: str) -> str:
        return f"{TRIALS}/{trial_id}.json"

    def create(self, version: dict, kind: str, class_name: str, images: list[tuple[str, bytes, str]]) -> dict:
        trial_id = uuid.uuid4().hex
        entries = []
        for index, (name, data, image_format) in enumerate(images):
            key = f"{TRIALS}/{trial_id}/{index}{EXTENSIONS[image_format]}"
            self.store.put(key, data)
            entries.append({"name": name, "key": key})
        record = {"id": trial_id, "version": version["id"], "version_status": version["status"], "kind": kind,
                  "class_name": class_name, "model_url": version["model_url"], "images": entries, "status": "Queued",
                  "created_at": now(), "results": []}
        return self.save(record)

    def save(self, record: dict) -> dict:
        record["updated_at"] = now()
        self.store.put(self.key(record["id"]), json.dumps(record).encode())
        return record

    def get(self, trial_id: str) -> dict:
        if not (trial_id or "").isalnum() or len(trial_id) != 32:
            raise ApiError(400, "bad_request", "trial_id is not a trial's id")
        if not self.store.exists(self.key(trial_id)):
            raise ApiError(404, "unknown_trial", f"no trial {trial_id}")
        return json.loads(self.store.get(self.key(trial_id)))

    def all(self) -> list[dict]:
        records = [json.loads(self.store.get(k)) for k in self.store.list(f"{TRIALS}/") if k.count("/") == TRIALS.count("/") + 1 and k.endswith(".json")]
        return sorted(records, key=lambda r: r["created_at"], reverse=True)

    def image(self, trial_id: str, index: int) -> bytes:
        return self.store.get(self.get(trial_id)["images"][index]["key"])


def run_trial(trials: Trials, record: dict, load_model) -> dict:
    """Score every image of the trial with `load_model(model_url)`; a bad image fails only itself."""
    record.update(status="Executing", started_at=now())
    trials.save(record)
    try:
        model = load_model(record["model_url"])
    except Exception as exc:  # the version's bundle cannot be loaded: the whole trial fails, in words
        record.update(status="Failed", failure_reason=f"the model version could not be loaded: {exc}", ended_at=now())
        return trials.save(record)
    import base64

    results = []
    for entry in record["images"]:
        instance = {"class_name": record["class_name"], "outputs": ["heatmap", "regions"],
                    "image_base64": base64.b64encode(trials.store.get(entry["key"])).decode()}
        try:
            answer = model.predict(instance)
        except Exception as exc:  # noqa: BLE001 - reported per image, as the endpoint would answer it
            results.append({"name": entry["name"], "error": str(exc)})
            continue
        results.append({"name": entry["name"], "anomaly_score": answer["anomaly_score"], "is_anomaly": answer["is_anomaly"],
                        "threshold": answer["threshold"], "regions": answer.get("regions", []),
                        "heatmap_png_base64": answer.get("heatmap_png_base64")})
    record.update(status="Succeeded", results=results, ended_at=now())
    return trials.save(record)
