"""Bring-your-own detectors through the API, in process: the files go through the upload forms (the
local gateway's stand-in for S3 presigned POSTs), POST /models/import queues the job, the local
worker runs the command line's importer on it; each bad input is refused in the importer's words or
with a 4xx, and nothing is registered. On AWS the job is a SageMaker Processing job (Stubber with the
documented requests and answers) that runs `pipelines.detector.job` against the Model Registry."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pipelines.registry import APPROVED, PENDING, LocalRegistry
from tests.kinds.graphs import NAMES, constant_graph, ultralytics_metadata
from tests.kinds.test_detector_decoding import KNOWN
from tests.serving.test_datasets_api import LocalApi, make_zip

GROUP = "ivadas-training-detector"
ENVIRONMENT = {"LOCAL_UPLOAD_SECRET": "test-secret", "ACCESS_CONTROL": "open",
               "ENDPOINT_NAMES": json.dumps({"patchcore": "ivadas-patchcore", "detector": "ivadas-detector"})}


def names_yaml(names=NAMES) -> bytes:
    return ("names:\n" + "".join(f"  {i}: {name}\n" for i, name in enumerate(names))).encode()


def box_line(cls, x0, y0, x1, y1) -> str:
    return f"{cls} {(x0 + x1) / 1280} {(y0 + y1) / 1280} {(x1 - x0) / 640} {(y1 - y0) / 640}\n"


#: the hand-worked set of tests/kinds/test_detector_import.py: two cracks, a hot spot, a normal part
TRUTH = box_line(0, 80, 80, 120, 120) + box_line(0, 470, 470, 530, 530) + box_line(2, 610, 0, 640, 30) + box_line(1, 350, 275, 450, 325)
CRACK_AP = (51 + 50 * 2 / 3) / 101


def labelled_zip(labels: dict[str, str]) -> bytes:
    """A YOLO set as people zip it: a folder with images/val and labels/val, and a data.yaml."""
    files = {"line3/data.yaml": names_yaml()}
    for name, lines in labels.items():
        buffer = io.BytesIO()
        Image.new("RGB", (640, 640), (70, 70, 70)).save(buffer, format="PNG")
        files[f"line3/images/val/{name}.png"] = buffer.getvalue()
        files[f"line3/labels/val/{name}.txt"] = lines.encode()
    return make_zip(files)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    return {
        "known": constant_graph(root / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes(),
        "bare": constant_graph(root / "bare.onnx", KNOWN).read_bytes(),
        "flat": constant_graph(root / "flat.onnx", KNOWN, output_rank=2).read_bytes(),
    }


@pytest.fixture
def imports(tmp_path, monkeypatch):
    import routes_datasets
    from infra.local.training_worker import TrainingWorker

    store = tmp_path / "store"
    for key, value in {**ENVIRONMENT, "DATASET_STORE": str(store), "MODEL_REGISTRY": f"local:{store}"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(routes_datasets, "_datasets", None)
    api = LocalApi(store)
    api.worker = TrainingWorker(store, echo=lambda line: None)
    return api


def send(api, files: dict[str, tuple[str, bytes]], skip: tuple[str, ...] = ()) -> str:
    """Ask for the upload forms and send each file as the browser does; the import's id."""
    status, started = api.call("POST", "/models/import/uploads",
                               {role: {"filename": name, "size": len(data)} for role, (name, data) in files.items()})
    assert status == 201, started
    assert set(started["targets"]) == set(files)
    for role, (name, data) in files.items():
        if role not in skip:
            sent, reply = api.post_form(started["targets"][role], data, name)
            assert sent == 204, reply
    return started["import_id"]


def run_import(api, files, anomalous=("crack", "hot spot"), class_name="thermal") -> dict:
    import_id = send(api, files)
    status, queued = api.call("POST", "/models/import", {"import_id": import_id, "class_name": class_name,
                                                         "anomalous_classes": list(anomalous)})
    assert status == 201, queued
    assert queued["status"] == "Queued" and queued["backend"] == "local"
    assert api.worker.run_once() is True
    status, done = api.call("GET", f"/models/imports/{import_id}")
    assert status == 200
    return done


def nothing_left(api) -> bool:
    """No version, no bundle, no uploaded file: a refused import leaves only its record."""
    store = api.root
    bundles = list((store / "pipelines").rglob("model.tar.gz")) if (store / "pipelines").is_dir() else []
    uploads = [p for p in (store / "datasets" / "imports").rglob("*") if p.is_file() and p.parent.name != "imports"]
    return LocalRegistry(store).list() == [] and bundles == [] and uploads == []


def test_an_uploaded_detector_is_evaluated_registered_and_approved(imports, graphs):
    done = run_import(imports, {"graph": ("thermal.onnx", graphs["known"]), "names": ("data.yaml", names_yaml()),
                                "labelled": ("line3.zip", labelled_zip({"panel": TRUTH}))})
    assert done["status"] == "Succeeded", done
    assert done["registered_version"] == f"{GROUP}/1" and done["version_status"] == PENDING
    assert done["detector"] == {"names": NAMES, "anomalous_classes": ["crack", "hot spot"], "input_size": "640x640",
                                "classes": ["thermal"]}
    evaluation = done["evaluation"]
    assert evaluation["images"] == 1 and evaluation["anomalous_images"] == 1
    assert evaluation["labels"]["crack"]["ap50"] == pytest.approx(CRACK_AP, abs=1e-12)
    assert (evaluation["labels"]["hot spot"]["precision"], evaluation["labels"]["hot spot"]["recall"]) == (0.5, 1.0)
    assert evaluation["mean"]["map50"] == pytest.approx((CRACK_AP + 0.5 + 1.0) / 3, abs=1e-12)
    version = LocalRegistry(imports.root).get(GROUP, 1)
    assert version.metadata["source"] == "thermal.onnx" and version.metadata["classes"] == "thermal"
    assert version.metrics["labels"]["crack"]["ap50"] == evaluation["labels"]["crack"]["ap50"]
    # the uploads are gone (the bundle holds the graph); the record stays
    assert not list((imports.root / "datasets" / "imports" / done["id"]).rglob("*.*"))
    status, listing = imports.call("GET", "/models/imports")
    assert status == 200 and listing["imports"][0]["id"] == done["id"]
    # then approved like any other version, and listed with its metrics
    status, versions = imports.call("GET", "/versions", query={"kind": "detector"})
    assert status == 200 and versions["versions"][0]["metrics"]["map50"] == evaluation["mean"]["map50"]
    status, decided = imports.call("POST", "/versions/detector/1/approval", {"decision": "approve", "reason": "mAP read on line 3"})
    assert status == 200 and decided["version"]["status"] == APPROVED
    assert LocalRegistry(imports.root).served(GROUP).version == 1


def test_names_from_the_graph_and_anomalous_classes_by_id(imports, graphs):
    done = run_import(imports, {"graph": ("thermal.onnx", graphs["known"])}, anomalous=("2",), class_name="switchboard")
    assert done["status"] == "Succeeded", done
    assert done["detector"]["anomalous_classes"] == ["hot spot"] and done["evaluation"] is None
    assert LocalRegistry(imports.root).get(GROUP, 1).metadata["classes"] == "switchboard"


@pytest.mark.parametrize("case, files, anomalous, words", [
    ("not a detector", {"graph": ("flat.onnx", "flat"), "names": ("data.yaml", NAMES)}, ["crack"], "rank 2"),
    ("names that disagree", {"graph": ("bare.onnx", "bare"), "names": ("data.yaml", NAMES[:2])}, ["crack"],
     "names give 2 classes but the detector predicts 3"),
    ("no names anywhere", {"graph": ("bare.onnx", "bare")}, ["crack"], "carries no class names"),
    ("an unknown anomalous class", {"graph": ("thermal.onnx", "known")}, ["rust"], "'rust' is not one of the detector's classes"),
    ("a box outside the image", {"graph": ("thermal.onnx", "known"), "labelled": ("set.zip", {"a": "0 0.5 0.5 0.2 0.2\n",
                                                                                            "b": "2 0.95 0.5 0.2 0.2\n"})},
     ["crack"], "b.txt:1: the box"),
    ("an unknown class id", {"graph": ("thermal.onnx", "known"), "labelled": ("set.zip", {"a": "7 0.5 0.5 0.1 0.1\n"})},
     ["crack"], "a.txt:1: unknown class id 7"),
])
def test_what_the_importer_refuses_is_said_in_its_words_and_nothing_is_registered(imports, graphs, case, files, anomalous, words):
    contents = {}
    for role, (name, what) in files.items():
        contents[role] = (name, graphs[what] if role == "graph" else names_yaml(what) if role == "names" else labelled_zip(what))
    done = run_import(imports, contents, anomalous)
    assert done["status"] == "Failed", done
    assert words in done["failure_reason"] and "Traceback" not in done["failure_reason"]
    assert "registered_version" not in done
    assert nothing_left(imports)


def test_a_missing_upload_is_refused_until_it_arrives(imports, graphs):
    import_id = send(imports, {"graph": ("thermal.onnx", graphs["known"]), "names": ("data.yaml", names_yaml())}, skip=("graph",))
    request = {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]}
    status, body = imports.call("POST", "/models/import", request)
    assert (status, body["error"]["code"]) == (409, "upload_missing") and "thermal.onnx has not arrived" in body["error"]["message"]
    assert imports.worker.run_once() is False and LocalRegistry(imports.root).list() == []
    assert imports.call("GET", f"/models/imports/{import_id}")[1]["status"] == "Uploading"


def test_bad_requests_are_refused_before_any_job(imports, graphs):
    import_id = send(imports, {"graph": ("thermal.onnx", graphs["known"])})
    start = {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]}
    cases = [
        ({**start, "class_name": "line 3"}, 400, "bad_name"),
        ({**start, "class_name": "../etc"}, 400, "bad_name"),
        ({**start, "anomalous_classes": []}, 400, "bad_request"),
        ({**start, "anomalous_classes": ["  "]}, 400, "bad_request"),
        ({**start, "iou": 0}, 400, "bad_request"),
        ({**start, "import_id": "20260101T000000-00000000"}, 404, "unknown_import"),
        ({**start, "import_id": "../../x"}, 400, "bad_request"),
        ({**start, "approval": "Approved"}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        got, answer = imports.call("POST", "/models/import", body)
        assert (got, answer["error"]["code"]) == (status, code), (body, answer)
    assert imports.worker.run_once() is False and LocalRegistry(imports.root).list() == []
    # the good request then starts it, once
    assert imports.call("POST", "/models/import", start)[0] == 201
    status, body = imports.call("POST", "/models/import", start)
    assert (status, body["error"]["code"]) == (409, "import_started")


def test_upload_forms_are_refused_for_the_wrong_files(imports):
    import imports as records

    for files, status, code in [
        ({"graph": {"filename": "best.pt", "size": 10}}, 415, "unsupported_media_type"),
        ({"graph": {"filename": "a.onnx", "size": 10}, "names": {"filename": "names.json", "size": 10}}, 415, "unsupported_media_type"),
        ({"graph": {"filename": "a.onnx", "size": 10}, "labelled": {"filename": "set.tar", "size": 10}}, 415, "unsupported_media_type"),
        ({"graph": {"filename": "a.onnx", "size": records.MAX_GRAPH_BYTES + 1}}, 413, "payload_too_large"),
        ({"names": {"filename": "data.yaml", "size": 10}}, 400, "bad_request"),
        ({"graph": {"filename": "a.onnx", "size": 0}}, 400, "bad_request"),
    ]:
        got, answer = imports.call("POST", "/models/import/uploads", files)
        assert (got, answer["error"]["code"]) == (status, code), (files, answer)
    assert not (imports.root / "datasets" / "imports").exists()  # no record for a refused request


@pytest.mark.parametrize("archive, code", [
    (make_zip({"../evil/a.png": b"x"}), "unsafe_zip"),
    (make_zip({"images/a.png": b"not a png at all"}), "not_an_image"),
    (make_zip({"images/a.exe": b"MZ"}), "not_an_image"),
    (make_zip({"labels/a.txt": b"0 0.5 0.5 0.1 0.1\n"}), "no_images"),
    (b"PK\x03\x04 not really a zip", "bad_zip"),
])
def test_a_labelled_zip_gets_the_dataset_zip_checks_and_leaves_nothing(imports, graphs, archive, code):
    import_id = send(imports, {"graph": ("thermal.onnx", graphs["known"]), "labelled": ("set.zip", archive)})
    status, body = imports.call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal",
                                                           "anomalous_classes": ["crack"]})
    assert 400 <= status < 500 and body["error"]["code"] == code, body
    assert imports.worker.run_once() is False and nothing_left(imports)
    record = imports.call("GET", f"/models/imports/{import_id}")[1]
    assert record["status"] == "Failed" and record["failure_reason"] == body["error"]["message"]


def test_imports_need_the_engineer_group(monkeypatch):
    import access

    assert access.minimum_for("POST", "/models/import") == access.ENGINEER
    assert access.minimum_for("POST", "/models/import/uploads") == access.ENGINEER
    assert access.minimum_for("GET", "/models/imports/x") == access.INSPECTOR
    inspector = {"requestContext": {"authorizer": {"claims": {"cognito:username": "ann", "cognito:groups": "inspector"}}},
                 "httpMethod": "POST", "path": "/models/import"}
    monkeypatch.setenv("ACCESS_CONTROL", "enforce")
    with pytest.raises(access.ApiError) as refused:
        access.authorize(inspector)
    assert refused.value.status == 403
    engineer = {**inspector, "requestContext": {"authorizer": {"claims": {"cognito:username": "eve", "cognito:groups": "engineer"}}}}
    assert access.authorize(engineer).name == "eve"


def test_the_job_writes_the_importers_message_where_sagemaker_reads_it(tmp_path, graphs, monkeypatch):
    from pipelines.detector.job import entry

    upload = tmp_path / "input"
    upload.mkdir()
    (upload / "graph.onnx").write_bytes(graphs["flat"])
    (upload / "names.yaml").write_bytes(names_yaml())
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "ml-output"))
    code = entry(["--target", "local", "--store", str(tmp_path / "store"), "--input", str(upload), "--output",
                  str(tmp_path / "out"), "--class", "thermal", "--anomalous", "crack"])
    assert code == 1
    message = (tmp_path / "ml-output" / "message").read_text()
    assert "rank 2" in message and not (tmp_path / "out" / "result.json").exists()
    assert LocalRegistry(tmp_path / "store").list() == []


def test_an_import_never_started_is_swept_with_its_files(imports, graphs, monkeypatch):
    import imports as records

    import_id = send(imports, {"graph": ("thermal.onnx", graphs["known"]), "names": ("data.yaml", names_yaml())}, skip=("graph",))
    assert list((imports.root / "datasets" / "imports" / import_id).iterdir())  # the names file arrived
    send(imports, {"graph": ("thermal.onnx", graphs["known"])})
    assert imports.call("GET", f"/models/imports/{import_id}")[1]["status"] == "Uploading"  # within the hour: kept
    monkeypatch.setattr(records, "ABANDONED_AFTER_S", -1)
    send(imports, {"graph": ("thermal.onnx", graphs["known"])})  # a new upload sweeps the abandoned ones
    record = imports.call("GET", f"/models/imports/{import_id}")[1]
    assert record["status"] == "Failed" and "never started" in record["failure_reason"]
    assert not list((imports.root / "datasets" / "imports" / import_id).iterdir())


def test_an_imported_version_gets_trial_detections_before_approval(imports, graphs):
    import base64

    done = run_import(imports, {"graph": ("thermal.onnx", graphs["known"])}, anomalous=("crack",))
    assert done["status"] == "Succeeded", done
    buffer = io.BytesIO()
    Image.new("RGB", (640, 640), (40, 40, 60)).save(buffer, format="PNG")
    status, trial = imports.call("POST", "/trials", {"kind": "detector", "version": 1, "class_name": "thermal", "images": [
        {"name": "panel.png", "image_base64": base64.b64encode(buffer.getvalue()).decode()}]})
    assert status == 201, trial
    assert imports.worker.run_once() is True
    result = imports.call("GET", f"/trials/{trial['id']}")[1]["results"][0]
    assert "error" not in result, result
    assert result["is_anomaly"] is True and result["anomaly_score"] == pytest.approx(0.9)
    assert result["detections"][0]["label"] == "crack" and result["detections"][0]["box"] == pytest.approx([80, 80, 120, 120])
