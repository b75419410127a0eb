"""`ivadas models import`: register a bring-your-own ONNX detector as a model version.

An Ultralytics-format detector (YOLOv8 / YOLO11 exported to ONNX, output `[1, 4 + classes,
anchors]`) has no training here. The import checks the graph (one RGB image input, a rank-3
output whose class rows match the names), writes the `detector` bundle, loads it through the
serving code path, evaluates it on a labelled YOLO-format set when one is given (mAP@0.5 and
per-class precision and recall, `pipelines.detector.evaluation`), and only then registers it —
`PendingManualApproval` unless told otherwise — in the local registry or the SageMaker Model
Registry (the bundle uploaded to the artifacts bucket under `pipelines/<name>/imports/<id>/`).
Anything wrong is one clear error, and nothing is registered.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from inference.bundle import check_class_name, write_bundle
from inference.errors import BundleError
from inference.kinds.detector.bundle import KIND, contents
from inference.kinds.detector.yolo import IOU_THRESHOLD, MAX_DETECTIONS, DetectorError, YoloDetector
from inference.model import load_model
from inference.runtime import open_session
from pipelines.detector.names import names_from_metadata, read_names, resolve_anomalous
from pipelines.registry import PENDING, STATUSES, current_user

#: SageMaker limits each customer metadata value to 256 characters
METADATA_VALUE_LIMIT = 256


@dataclass
class ImportRequest:
    graph: Path
    anomalous: list[str]
    names_file: Path | None = None
    product_classes: list[str] = field(default_factory=list)
    eval_data: Path | None = None
    iou_threshold: float = IOU_THRESHOLD
    image_size: int | None = None  # for graphs whose input size is dynamic
    approval: str = PENDING
    pipeline: str = "ivadas-training"
    quiet: bool = True
    imported_by: str | None = None  # who asked, when the import runs as a job for someone (the API's caller)


@dataclass
class ImportResult:
    version: object  # pipelines.registry.ModelVersion
    manifest: dict
    evaluation: dict | None
    model_url: str


def default_class(graph: Path) -> str:
    """The product class a detector serves when none is named: its file's name (`thermal.onnx` → `thermal`)."""
    return graph.stem


def prepare(request: ImportRequest, workdir: Path) -> tuple[Path, dict, dict | None]:
    """Check everything and write the bundle (and its evaluation) into `workdir`; registers nothing."""
    graph = Path(request.graph)
    if not graph.is_file():
        raise DetectorError(f"no ONNX file at {graph}")
    if request.approval not in STATUSES[:2]:
        raise DetectorError(f"an import is registered {STATUSES[0]} or {STATUSES[1]}, not {request.approval!r}")
    if not 0.0 < request.iou_threshold <= 1.0:
        raise DetectorError(f"the IoU threshold must be in (0, 1], got {request.iou_threshold}")
    classes = request.product_classes or [default_class(graph)]
    for name in classes:
        try:
            check_class_name(name)
        except BundleError as exc:
            raise DetectorError(f"{exc.message}; name the product class the detector inspects with --class") from None
    try:
        session = open_session(graph, what="detector graph")
    except BundleError:
        raise DetectorError(f"{graph} is not an ONNX graph ONNX Runtime can load; export the detector with "
                            "Ultralytics' `yolo export format=onnx opset=17`") from None
    if request.names_file is not None:
        names, names_source = read_names(request.names_file), Path(request.names_file).name
    else:
        names, names_source = names_from_metadata(session), "the graph's metadata"
        if names is None:
            raise DetectorError(f"{graph.name} carries no class names in its metadata; give them with --names data.yaml")
    anomalous = resolve_anomalous(request.anomalous, names)
    size = (request.image_size, request.image_size) if request.image_size else size_from_metadata(session)
    detector = YoloDetector(session, names, anomalous, size, request.iou_threshold, MAX_DETECTIONS)
    if request.image_size and detector.input_size != size:
        raise DetectorError(f"the graph's input is fixed at {detector.input_size[1]}×{detector.input_size[0]}; "
                            "--image-size is for graphs exported with a dynamic size")
    lineage = {
        "source": graph.name,
        "source_sha256": _sha256(graph),
        "names_source": names_source,
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "imported_by": request.imported_by or current_user(),
        "evaluation_data": str(request.eval_data) if request.eval_data else None,
    }
    bundle = workdir / "model.tar.gz"
    manifest = write_bundle(bundle, *contents(graph, classes, names, anomalous, detector.input_size, request.iou_threshold,
                                              MAX_DETECTIONS, lineage=lineage))
    evaluation = None
    if request.eval_data is not None:
        from pipelines.detector.evaluation import evaluate_detector

        served = load_model(bundle)  # the serving code path, from the bundle as written
        evaluation = evaluate_detector(served, request.eval_data, workdir / "evaluation", quiet=request.quiet)
    return bundle, manifest, evaluation


def size_from_metadata(session) -> tuple[int, int] | None:
    """(height, width) an Ultralytics export records as `imgsz` (used when its input size is dynamic)."""
    import ast

    try:
        value = ast.literal_eval(session.get_modelmeta().custom_metadata_map.get("imgsz", ""))
    except (ValueError, SyntaxError, AttributeError):
        return None
    if isinstance(value, int):
        value = [value, value]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and 32 <= v <= 4096 for v in value):
        return int(value[0]), int(value[1])
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def registry_metrics(manifest: dict, evaluation: dict | None) -> dict:
    """What the registry records: the evaluation's means, per product class, and per detector label."""
    if evaluation is None:
        return {}
    return {"mean": evaluation["mean"], "classes": {name: dict(evaluation["mean"]) for name in manifest["classes"]},
            "labels": evaluation["labels"], "split": evaluation["split"]["name"]}


def registry_metadata(request: ImportRequest, manifest: dict) -> dict:
    config, lineage = manifest["config"], manifest["lineage"]
    metadata = {
        "model_kind": KIND, "modality": "image", "classes": ",".join(manifest["classes"]),
        "source": lineage["source"], "source_sha256": lineage["source_sha256"], "labels": str(len(config["names"])),
        "anomalous_classes": ",".join(config["anomalous_classes"]),
        "input_size": "x".join(str(v) for v in config["input_size"][::-1]),
        "iou_threshold": str(config["iou_threshold"]), "imported_by": lineage["imported_by"],
    }
    if request.eval_data:
        metadata["evaluation_data"] = str(request.eval_data)
    return {key: value[:METADATA_VALUE_LIMIT] for key, value in metadata.items()}


def import_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def import_local(request: ImportRequest, store: str | Path) -> ImportResult:
    """Import into the local artifact store and registry (`<store>/pipelines/<name>/imports/<id>/`)."""
    from pipelines.definition import model_package_group
    from pipelines.registry import LocalRegistry

    imports = Path(store) / "pipelines" / request.pipeline / "imports"
    identifier = import_id()
    imports.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{identifier}-", dir=imports))
    try:
        bundle, manifest, evaluation = prepare(request, staging)
        target = imports / identifier
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    model = target / bundle.name
    try:
        version = LocalRegistry(store).register(model_package_group(request.pipeline, KIND), str(model.resolve()),
                                                registry_metrics(manifest, evaluation), registry_metadata(request, manifest),
                                                request.approval)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return ImportResult(version, manifest, evaluation, str(model.resolve()))


def import_aws(request: ImportRequest, artifacts_bucket: str, inference_image_uri: str, region: str | None = None,
               s3=None, sagemaker=None) -> ImportResult:
    """Upload the bundle to `s3://<artifacts_bucket>/pipelines/<name>/imports/<id>/` and register it in
    the SageMaker Model Registry, with the endpoint image that serves it."""
    import boto3

    from pipelines.definition import model_package_group
    from pipelines.registry import SageMakerRegistry

    if not artifacts_bucket:
        raise DetectorError("--target aws needs --artifacts-bucket (the stack's artifacts bucket) to upload the bundle to")
    if not inference_image_uri:
        raise DetectorError("--target aws needs --inference-image-uri (the endpoint image that serves the model)")
    bucket = artifacts_bucket[len("s3://"):].strip("/") if artifacts_bucket.startswith("s3://") else artifacts_bucket
    with tempfile.TemporaryDirectory(prefix="ivadas-import-") as workdir:
        bundle, manifest, evaluation = prepare(request, Path(workdir))
        s3 = s3 or boto3.client("s3", region_name=region)
        prefix = f"pipelines/{request.pipeline}/imports/{import_id()}"
        s3.upload_file(str(bundle), bucket, f"{prefix}/model.tar.gz")
        metrics_url = None
        if evaluation is not None:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/evaluation.json", Body=json.dumps(evaluation, indent=2).encode(),
                          ContentType="application/json")
            metrics_url = f"s3://{bucket}/{prefix}/evaluation.json"
    model_url = f"s3://{bucket}/{prefix}/model.tar.gz"
    registry = SageMakerRegistry(sagemaker, region=region)
    try:
        version = registry.register(model_package_group(request.pipeline, KIND), model_url,
                                    registry_metrics(manifest, evaluation), registry_metadata(request, manifest),
                                    request.approval, image_uri=inference_image_uri, metrics_url=metrics_url)
    except BaseException:
        for name in ("model.tar.gz", "evaluation.json"):  # an unregistered upload is of no use to anyone
            s3.delete_object(Bucket=bucket, Key=f"{prefix}/{name}")
        raise
    return ImportResult(version, manifest, evaluation, model_url)
