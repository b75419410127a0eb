"""Trainings, reports, approval, trial detections and feedback through the API, with the local
training worker running the real local pipeline (tiny: resnet18 with random weights, 64 px images)."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from tests.serving.test_datasets_api import LocalApi

#: random weights on 64 px images separate the synthetic defects, but not as well as real weights do
GATE = 0.6
SETTINGS = {"backbone": "resnet18", "weights": "random", "image_size": "64", "coreset_ratio": "0.1"}
ENVIRONMENT = {"LOCAL_UPLOAD_SECRET": "test-secret", "ACCESS_CONTROL": "open", "INSPECTION_LOG": "sqlite",
               "STORE_ANOMALOUS_IMAGES": "true"}


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, str(path.relative_to(folder.parent)))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    """A store with the class `tiles` uploaded as a zip, the API over it and the training worker."""
    import routes_datasets
    import routes_predict
    from infra.local.training_worker import TrainingWorker
    from pipelines.vision.synthetic import generate

    root = tmp_path_factory.mktemp("lifecycle")
    data = generate(root / "data", ["tiles"], size=64, train_count=12, test_good_count=6, test_defect_count=2, seed=3)
    store = root / "store"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**ENVIRONMENT, "DATASET_STORE": str(store), "MODEL_REGISTRY": f"local:{store}",
                           "INSPECTION_DB": str(root / "inspections.sqlite"), "INSPECTION_IMAGE_DIR": str(root / "kept")}.items():
            patch.setenv(key, value)
        patch.setattr(routes_datasets, "_datasets", None)
        patch.setattr(routes_predict, "_log", None)
        api = LocalApi(store)
        status, body = api.upload(zip_folder(data / "tiles"), {"type": "zip", "filename": "tiles.zip"})
        assert status == 201, body
        api.data = data
        api.worker = TrainingWorker(store, echo=lambda line: None)
        yield api


@pytest.fixture(scope="module")
def trained(lifecycle):
    """One training of `tiles`, started through the API and run by the worker."""
    status, started = lifecycle.call("POST", "/trainings", {"classes": ["tiles"], "kind": "patchcore", "settings": SETTINGS,
                                                           "gate": GATE})
    assert status == 201, started
    lifecycle.queued = started
    # while it waits, a second training of the same class is refused, not queued
    status, second = lifecycle.call("POST", "/trainings", {"classes": ["tiles"], "settings": SETTINGS})
    assert (status, second["error"]["code"]) == (409, "training_running") and started["id"] in second["error"]["message"]
    assert lifecycle.worker.run_once() is True
    return started


def test_a_training_reports_its_steps_and_registers_a_version_naming_its_snapshot(lifecycle, trained):
    queued = lifecycle.queued
    assert queued["status"] == "Queued" and queued["progress"] == 0
    assert [s["name"] for s in queued["steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate", "Register"]
    assert all(s["status"] == "NotStarted" and s["what"] for s in queued["steps"])
    status, done = lifecycle.call("GET", f"/trainings/{trained['id']}")
    assert status == 200 and done["status"] == "Succeeded", done
    assert done["progress"] == 1 and all(s["status"] == "Succeeded" for s in done["steps"])
    assert done["registered_version"] == "ivadas-training-patchcore/1"
    # lineage: the version was trained on the snapshot, and the snapshot lists content hashes
    from pipelines.registry import LocalRegistry

    version = LocalRegistry(lifecycle.root).get("ivadas-training-patchcore", 1)
    assert version.metadata["data_uri"].endswith(f"datasets/snapshots/{trained['snapshot']}")
    manifest = json.loads((Path(version.metadata["data_uri"]) / "manifest.json").read_text())
    assert len(manifest["classes"]["tiles"]["files"]) == 12 + 6 + 8 + 8 and all(
        len(f.get("sha256") or f["mask_of"]) == 64 for f in manifest["classes"]["tiles"]["files"])
    status, listing = lifecycle.call("GET", "/trainings")
    assert status == 200 and listing["trainings"][0]["id"] == trained["id"]


def test_the_report_has_metrics_plots_and_the_wrong_images(lifecycle, trained):
    status, report = lifecycle.call("GET", f"/trainings/{trained['id']}/report")
    assert status == 200, report
    tiles = report["classes"]["tiles"]
    assert tiles["metrics"]["image_auroc"] is not None and tiles["metrics"]["images"] > 0
    for plot in ("roc", "histogram", "examples"):
        assert base64.b64decode(tiles["plots_png_base64"][plot])[:8] == b"\x89PNG\r\n\x1a\n"
    threshold = tiles["metrics"]["threshold"]
    for wrong in tiles["wrong"]:  # each wrong image is on the wrong side of the threshold, and can be previewed
        assert (wrong["raw_score"] >= threshold) == (wrong["error"] == "false alarm")
        assert lifecycle.call("GET", f"/datasets/tiles/images/{wrong['image_id']}")[0] == 200
    assert report["mean"]["image_auroc"] == tiles["metrics"]["image_auroc"]


def test_approve_and_reject_with_a_reason(lifecycle, trained):
    path = f"/trainings/{trained['id']}/approval"
    assert lifecycle.call("POST", path, {"decision": "approve"})[0] == 400  # a reason is required
    assert lifecycle.call("POST", path, {"decision": "maybe", "reason": "looks fine"})[0] == 400
    status, body = lifecycle.call("POST", path, {"decision": "approve", "reason": "report reviewed: no missed holes", "by": "qe"})
    assert status == 200 and body["version"]["status"] == "Approved"
    assert body["version"]["history"][-1] | {"at": None} == {"status": "Approved", "at": None, "by": "qe",
                                                              "reason": "report reviewed: no missed holes"}
    from pipelines.registry import LocalRegistry

    assert LocalRegistry(lifecycle.root).served("ivadas-training-patchcore").version == 1  # serving follows
    status, body = lifecycle.call("POST", path, {"decision": "approve", "reason": "again"})
    assert (status, body["error"]["code"]) == (409, "unchanged")
    status, body = lifecycle.call("GET", "/versions", query={"kind": "patchcore"})
    assert status == 200 and body["versions"][0]["status"] == "Approved" and body["versions"][0]["metrics"]["image_auroc"]
    assert lifecycle.call("POST", "/versions/patchcore/9/approval", {"decision": "approve", "reason": "who?"})[0] == 404
    assert lifecycle.call("POST", "/versions/yolo/1/approval", {"decision": "approve", "reason": "who?"})[0] == 404
    assert lifecycle.call("POST", "/trainings/nope/approval", {"decision": "approve", "reason": "who?"})[0] == 404


def test_a_failed_training_says_why_and_its_version_cannot_be_approved(lifecycle, trained):
    status, started = lifecycle.call("POST", "/trainings", {"classes": ["tiles"], "settings": {**SETTINGS, "backbone": "no_such_net"}})
    assert status == 201, started
    lifecycle.worker.run_once()
    status, failed = lifecycle.call("GET", f"/trainings/{started['id']}")
    assert failed["status"] == "Failed" and "no_such_net" in failed["failure_reason"], failed
    assert any(s["status"] == "Failed" and s.get("failure_reason") for s in failed["steps"])
    status, body = lifecycle.call("POST", f"/trainings/{started['id']}/approval", {"decision": "approve", "reason": "ship it"})
    assert (status, body["error"]["code"]) == (409, "training_failed") and "no_such_net" in body["error"]["message"]
    assert lifecycle.call("GET", f"/trainings/{started['id']}/report")[0] == 409


def test_training_requests_that_are_refused(lifecycle):
    cases = [
        ({"classes": ["nothing"]}, 404, "unknown_class"),
        ({"classes": ["a/b"]}, 400, "bad_name"),
        ({"classes": ["..x"]}, 400, "bad_name"),
        ({"classes": []}, 400, "bad_request"),
        ({"classes": ["tiles", "tiles"]}, 400, "bad_request"),
        ({"classes": ["tiles"], "kind": "yolo"}, 404, "unknown_model"),
        ({"classes": ["tiles"], "settings": {"../x": "1"}}, 400, "bad_name"),
        ({"classes": ["tiles"], "gate": 1.5}, 400, "bad_request"),
        ({"classes": ["tiles"], "epochs": 3}, 400, "bad_request"),
    ]
    for request, status, code in cases:
        answer, body = lifecycle.call("POST", "/trainings", request)
        assert (answer, body["error"]["code"]) == (status, code), (request, body)
    few = zip_folder_of({f"few/train/good/{i}.png": i for i in range(3)})
    assert lifecycle.upload(few, {"type": "zip", "filename": "few.zip"})[0] == 201
    status, body = lifecycle.call("POST", "/trainings", {"classes": ["few"]})
    assert (status, body["error"]["code"]) == (400, "too_few_images") and "3 good training images" in body["error"]["message"]
    assert lifecycle.call("GET", "/trainings/does-not-exist")[0] == 404
    assert lifecycle.call("GET", "/trainings/bad%2F..id")[0] in (400, 404)


def test_settings_the_kind_does_not_know_or_cannot_read_are_refused_before_anything_starts(lifecycle, monkeypatch):
    """The command line refuses them at once; so does the API: a 400 naming the setting, not a 201
    and a training that fails at its Train step."""
    monkeypatch.setenv("ENDPOINT_NAMES", json.dumps({kind: f"ivadas-{kind}" for kind in ("patchcore", "softpatch", "autoencoder",
                                                                                         "detector", "pca")}))
    monkeypatch.setenv("MODEL_MODALITIES", json.dumps({"pca": "sensors"}))
    before = len(lifecycle.call("GET", "/trainings")[1]["trainings"])
    cases = [
        ({"kind": "patchcore", "settings": {**SETTINGS, "epochs": "3"}}, "unknown_setting",
         "the patchcore model has no setting(s) epochs; its settings are backbone, coreset_ratio, image_size, int8, "),
        ({"kind": "softpatch", "settings": {"imagesize": 64}}, "unknown_setting", "softpatch model has no setting(s) imagesize"),
        ({"kind": "autoencoder", "settings": {"backbone": "resnet18"}}, "unknown_setting",
         "the autoencoder model has no setting(s) backbone; its settings are base_channels, batch_size, epochs, "),
        ({"settings": {**SETTINGS, "image_size": "big"}}, "bad_setting", "setting image_size='big' is not a whole number"),
        ({"settings": {**SETTINGS, "image_size": 64.5}}, "bad_setting", "setting image_size=64.5 is not a whole number"),
        ({"settings": {**SETTINGS, "coreset_ratio": None}}, "bad_setting", "setting coreset_ratio=null is not a number"),
        ({"settings": {**SETTINGS, "int8": "yes"}}, "bad_setting", "setting int8='yes' is not true or false"),
        ({"kind": "detector", "settings": {}}, "bad_request", "the detector model cannot be trained here"),
        ({"kind": "pca", "settings": {"window": 30}}, "bad_request", "pca is a sensor model"),
    ]
    for request, code, words in cases:
        # with a class that does not exist too: the settings are judged first, before anything is looked up
        for classes in (["tiles"], ["nothing"]):
            status, body = lifecycle.call("POST", "/trainings", {"classes": classes, **request})
            assert (status, body["error"]["code"]) == (400, code), (request, body)
            assert words in body["error"]["message"], (request, body)
    assert len(lifecycle.call("GET", "/trainings")[1]["trainings"]) == before, "a refused training must not be started"


def zip_folder_of(files: dict[str, int]) -> bytes:
    from tests.serving.conftest import png_bytes

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, shade in files.items():
            archive.writestr(name, png_bytes((16, 16), (shade, shade, shade)))
    return buffer.getvalue()


def test_a_trial_runs_a_version_and_its_results_can_be_marked(lifecycle, trained):
    images = [{"name": path.name, "image_base64": base64.b64encode(path.read_bytes()).decode()}
              for path in (lifecycle.data / "tiles/test/hole/000.png", lifecycle.data / "tiles/test/good/000.png")]
    status, trial = lifecycle.call("POST", "/trials", {"kind": "patchcore", "version": 1, "class_name": "tiles", "images": images})
    assert status == 201 and trial["status"] == "Queued", trial
    assert lifecycle.worker.run_once() is True
    status, trial = lifecycle.call("GET", f"/trials/{trial['id']}")
    assert status == 200 and trial["status"] == "Succeeded" and len(trial["results"]) == 2
    assert all(isinstance(r["is_anomaly"], bool) and r["heatmap_png_base64"] for r in trial["results"])
    status, listing = lifecycle.call("GET", "/trials")
    assert status == 200 and listing["trials"][0]["id"] == trial["id"] and listing["trials"][0]["results"] == 2
    assert lifecycle.call("GET", "/trials/" + "0" * 32)[0] == 404 and lifecycle.call("GET", "/trials/x..y")[0] == 400
    before = lifecycle.call("GET", "/datasets/tiles")[1]["verified_pending"]
    status, marked = lifecycle.call("POST", "/feedback", {"trial_id": trial["id"], "index": 0, "correct": True})
    assert status == 201, marked
    if trial["results"][0]["is_anomaly"]:
        assert (marked["label"], marked["split"]) == ("anomalous", "test")
    assert marked["verified_pending"] == before + (0 if marked["duplicate"] else 1)
    status, again = lifecycle.call("POST", "/feedback", {"trial_id": trial["id"], "index": 0, "correct": False})
    assert (status, again["error"]["code"]) == (409, "already_verified")
    assert lifecycle.call("POST", "/feedback", {"trial_id": trial["id"], "index": 7, "correct": True})[0] == 400
    bad = [({"kind": "patchcore", "version": 99, "class_name": "tiles", "images": images}, 404),
           ({"kind": "patchcore", "version": 1, "class_name": "wood", "images": images}, 404),
           ({"kind": "patchcore", "version": 1, "class_name": "tiles", "images": [{"name": "x", "image_base64": "!!"}]}, 400),
           ({"kind": "patchcore", "version": 1, "class_name": "tiles",
             "images": [{"name": "x", "image_base64": base64.b64encode(b"text").decode()}]}, 415),
           ({"kind": "patchcore", "version": 1, "class_name": "tiles", "images": images * 11}, 413)]
    for request, expected in bad:
        assert lifecycle.call("POST", "/trials", request)[0] == expected, request


def test_a_wrong_verdict_in_the_history_joins_the_dataset_and_waits_for_the_next_training(lifecycle, trained, monkeypatch):
    import inspection_log

    log = inspection_log.from_environment()
    false_alarm = (lifecycle.data / "tiles/train/good/011.png").read_bytes()
    result = {"class_name": "tiles", "model": {"kind": "patchcore", "version": "ivadas-training-patchcore/1"},
              "anomaly_score": 0.8, "raw_score": 3.0, "threshold": 0.5, "is_anomaly": True}
    record = log.record(inspection_log.inspection_record(result, "req-false-alarm"), false_alarm + b"\x00")
    assert record["image_key"]
    before = lifecycle.call("GET", "/datasets/tiles")[1]
    status, marked = lifecycle.call("POST", "/feedback", {"request_id": "req-false-alarm", "correct": False})
    assert status == 201, marked
    assert (marked["marked"], marked["label"], marked["split"]) == ("a false alarm", "good", "train")
    after = lifecycle.call("GET", "/datasets/tiles")[1]
    assert after["train_good"] == before["train_good"] + 1 and after["verified_pending"] == before["verified_pending"] + 1
    # a normal verdict's image is not kept: the feedback must bring it
    missed = dict(result, is_anomaly=False)
    log.record(inspection_log.inspection_record(missed, "req-missed"), None)
    status, body = lifecycle.call("POST", "/feedback", {"request_id": "req-missed", "correct": False})
    assert (status, body["error"]["code"]) == (409, "image_not_kept")
    hole = base64.b64encode((lifecycle.data / "tiles/test/hole/001.png").read_bytes() + b"\x00").decode()
    status, marked = lifecycle.call("POST", "/feedback", {"request_id": "req-missed", "correct": False, "image_base64": hole})
    assert status == 201 and (marked["marked"], marked["label"], marked["split"]) == ("a missed defect", "anomalous", "test")
    for request, expected in [({"request_id": "nobody", "correct": False}, 404),
                              ({"request_id": "req-missed", "trial_id": "x" * 32, "correct": False}, 400),
                              ({"correct": False}, 400),
                              ({"request_id": "req-missed", "correct": "maybe"}, 400)]:
        assert lifecycle.call("POST", "/feedback", request)[0] == expected, request
    # the next training reads them: nothing waits any more
    pending = lifecycle.call("GET", "/datasets/tiles")[1]["verified_pending"]
    assert pending >= 2
    status, started = lifecycle.call("POST", "/trainings", {"classes": ["tiles"], "settings": SETTINGS})
    assert status == 201 and lifecycle.call("GET", "/datasets/tiles")[1]["verified_pending"] == 0
    db = sqlite3.connect(lifecycle.root.parent / "inspections.sqlite")
    assert db.execute("SELECT count(*) FROM inspections").fetchone()[0] == 2
