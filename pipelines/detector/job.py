"""Import job: a detector uploaded through the API (`lambda/predict/routes_imports.py`) goes through
`pipelines.detector.importer` — the checks, evaluation and registration of `ivadas models import`.

Its input is the upload folder: `graph.onnx`, optionally `names.yaml` or `names.txt` and
`labelled.zip` (a YOLO set: images and `.txt` boxes). On AWS it is a SageMaker Processing job of
the training image (the folder under /opt/ml/processing/input, `--target aws`: the bundle goes to
the artifacts bucket and the version to the Model Registry); it writes `result.json` to the output
folder, and on a refusal the importer's message to /opt/ml/output/message, which SageMaker returns
as the job's ExitMessage. The local stack's worker calls `run_import` with the local store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from inference.kinds.detector.yolo import DetectorError
from pipelines.steps.conventions import ML_ROOT, PROCESSING, run_step

#: Past these the API's own zip checks have refused the set already; here they only guard the disk.
MAX_UNZIPPED_BYTES = 8 * 1024 ** 3


def upload_files(folder: Path) -> tuple[Path, Path | None, Path | None]:
    """The graph, the names file and the labelled zip of an upload folder."""
    folder = Path(folder)
    graph = folder / "graph.onnx"
    if not graph.is_file():
        raise DetectorError("the upload holds no detector (graph.onnx); upload the .onnx file again")
    names = next((folder / n for n in ("names.yaml", "names.txt") if (folder / n).is_file()), None)
    labelled = folder / "labelled.zip"
    return graph, names, labelled if labelled.is_file() else None


def extract_labelled(archive: Path, target: Path) -> Path:
    """Unpack a labelled zip (checked by the API before the job started) without ever writing
    outside `target`: absolute paths, `..` and symbolic links are refused again here."""
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DetectorError(f"the labelled set is not a readable zip file ({exc})") from None
    total = 0
    with zipped:
        for info in zipped.infolist():
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or stat.S_ISLNK(info.external_attr >> 16):
                raise DetectorError(f"the labelled set holds an unsafe path ({info.filename!r})")
            if info.is_dir() or path.parts[0] == "__MACOSX" or any(p.startswith(".") for p in path.parts):
                continue
            total += info.file_size
            if total > MAX_UNZIPPED_BYTES:
                raise DetectorError(f"the labelled set expands to more than {MAX_UNZIPPED_BYTES} bytes")
            destination = target.joinpath(*path.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
    return target


def build_request(folder: Path, workdir: Path, class_name: str, anomalous: list[str], iou: float, pipeline: str,
                  imported_by: str | None, graph_name: str | None = None):
    from pipelines.detector.importer import ImportRequest

    graph, names, labelled = upload_files(folder)
    # under the name it was uploaded with, which the version's lineage records as its source
    named = workdir / (Path(graph_name).name if graph_name and graph_name.endswith(".onnx") else f"{class_name}.onnx")
    try:
        named.symlink_to(graph.resolve())
    except OSError:
        shutil.copyfile(graph, named)
    eval_data = extract_labelled(labelled, workdir / "labelled") if labelled is not None else None
    return ImportRequest(graph=named, anomalous=anomalous, names_file=names, product_classes=[class_name],
                         eval_data=eval_data, iou_threshold=iou, pipeline=pipeline, imported_by=imported_by)


def summary(result) -> dict:
    """What the API shows of an import: the version, what the detector is, and its evaluation."""
    config = result.manifest["config"]
    height, width = config["input_size"]
    evaluation = result.evaluation
    return {
        "version": result.version.id, "status": result.version.status, "model_url": result.model_url,
        "detector": {"names": config["names"], "anomalous_classes": config["anomalous_classes"],
                     "input_size": f"{width}x{height}", "classes": list(result.manifest["classes"])},
        "evaluation": None if evaluation is None else {
            "images": evaluation["images"], "anomalous_images": evaluation["anomalous_images"],
            "confidence_cut": evaluation["confidence_cut"], "iou_match": evaluation["iou_match"],
            "mean": evaluation["mean"], "labels": evaluation["labels"]},
    }


def run_import(folder: str | Path, class_name: str, anomalous: list[str], iou: float = 0.7,
               pipeline: str = "ivadas-training", imported_by: str | None = None, store: str | Path | None = None,
               artifacts_bucket: str | None = None, inference_image_uri: str | None = None, region: str | None = None,
               graph_name: str | None = None) -> dict:
    """Import the uploaded detector: into the local `store`, or (with `artifacts_bucket`) to AWS."""
    from pipelines.detector.importer import import_aws, import_local

    with tempfile.TemporaryDirectory(prefix="ivadas-import-job-") as workdir:
        request = build_request(Path(folder), Path(workdir), class_name, anomalous, iou, pipeline, imported_by, graph_name)
        if artifacts_bucket:
            result = import_aws(request, artifacts_bucket, inference_image_uri, region)
        else:
            result = import_local(request, store)
        return summary(result)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(PROCESSING / "input"))
    parser.add_argument("--output", default=str(PROCESSING / "output"))
    parser.add_argument("--class", dest="class_name", required=True)
    parser.add_argument("--anomalous", action="append", required=True, help="an anomalous class (repeatable)")
    parser.add_argument("--iou", type=float, default=0.7)
    parser.add_argument("--pipeline", default="ivadas-training")
    parser.add_argument("--imported-by")
    parser.add_argument("--graph-name", help="the .onnx file's name as uploaded (the version's lineage records it)")
    parser.add_argument("--target", choices=("local", "aws"), default="aws")
    parser.add_argument("--store", help="--target local: the artifact store and registry")
    parser.add_argument("--artifacts-bucket")
    parser.add_argument("--inference-image-uri")
    parser.add_argument("--region")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    if args.target == "aws" and not args.artifacts_bucket:
        raise DetectorError("--target aws needs --artifacts-bucket")
    result = run_import(args.input, args.class_name, args.anomalous, args.iou, args.pipeline, args.imported_by,
                        store=args.store, artifacts_bucket=args.artifacts_bucket if args.target == "aws" else None,
                        inference_image_uri=args.inference_image_uri, region=args.region, graph_name=args.graph_name)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "result.json").write_text(json.dumps(result, indent=1))
    print(f"import: registered {result['version']} ({result['status']})")


def exit_message_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_DIR", ML_ROOT / "output")) / "message"


def entry(argv=None) -> int:
    """`run_step`, plus the failure in SageMaker's exit message of Processing jobs."""
    code = run_step(main, argv)
    if code:
        from pipelines.steps.conventions import failure_file

        try:
            exit_message_file().write_text(failure_file().read_text()[:1024])
        except OSError:
            pass
    return code


if __name__ == "__main__":
    sys.exit(entry())
