"""`ivadas models import`: its options and what it prints (the work is `pipelines.detector.importer`).

Kept free of heavy imports: the `ivadas` parser is built on every command.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.registry import PENDING, STATUSES

DEFAULT_IOU = 0.7  # inference.kinds.detector.yolo.IOU_THRESHOLD (Ultralytics' default)


def add_import_arguments(parser) -> None:
    """Options of `ivadas models import` (the target, store and pipeline name come with every models command)."""
    parser.add_argument("graph", help="the detector, exported to ONNX by Ultralytics (YOLOv8 / YOLO11, output [1, 4 + classes, anchors])")
    parser.add_argument("--names", help="data.yaml (its `names`) or a file of one class name per line; default: the "
                                        "names the export stored in the graph's metadata")
    parser.add_argument("--anomalous-classes", action="append", required=True, metavar="NAMES",
                        help="comma-separated classes (names or ids) that make an image anomalous (repeatable)")
    parser.add_argument("--class", dest="product_classes", action="append", metavar="NAME",
                        help="product class(es) of `class_name` the detector serves (default: the file's name)")
    parser.add_argument("--eval-data", help="labelled set in YOLO format (images and .txt boxes, or a data.yaml's val "
                                            "split): mAP@0.5 and per-class precision and recall before registering")
    parser.add_argument("--iou", type=float, default=DEFAULT_IOU, help=f"IoU threshold of NMS (default {DEFAULT_IOU})")
    parser.add_argument("--image-size", type=int, help="input size for a graph exported with a dynamic size (default 640)")
    parser.add_argument("--approval", choices=STATUSES[:2], default=PENDING)
    parser.add_argument("--artifacts-bucket", help="--target aws: the bucket the bundle is uploaded to")
    parser.add_argument("--inference-image-uri", help="--target aws: the endpoint image that serves the version")
    parser.add_argument("--quiet", action="store_true", help="no progress bar while evaluating")


def _split(values) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def request_from_args(args):
    from pipelines.detector.importer import ImportRequest

    return ImportRequest(
        graph=Path(args.graph), anomalous=_split(args.anomalous_classes),
        names_file=Path(args.names) if args.names else None, product_classes=_split(args.product_classes),
        eval_data=Path(args.eval_data) if args.eval_data else None, iou_threshold=args.iou, image_size=args.image_size,
        approval=args.approval, pipeline=args.name, quiet=args.quiet,
    )


def run_import(args, store: Path) -> list[str]:
    """Run `ivadas models import`; the lines to print."""
    from pipelines.detector.importer import import_aws, import_local

    request = request_from_args(args)
    if args.target == "aws":
        result = import_aws(request, args.artifacts_bucket, args.inference_image_uri, args.region)
    else:
        result = import_local(request, store)
    return summary(result)


def summary(result) -> list[str]:
    config, version = result.manifest["config"], result.version
    height, width = config["input_size"]
    lines = [f"registered {version.id} ({version.status}): {len(config['names'])} classes, anomalous: "
             f"{', '.join(config['anomalous_classes'])}; input {width}×{height}; serves class_name "
             f"{', '.join(result.manifest['classes'])}",
             f"bundle: {result.model_url}"]
    evaluation = result.evaluation
    if evaluation is not None:
        lines.append(f"evaluation on {evaluation['images']} labelled images ({evaluation['anomalous_images']} anomalous), "
                     f"IoU {evaluation['iou_match']}, precision and recall at confidence {evaluation['confidence_cut']}:")
        lines.append(f"  {'class':<28}{'AP50':>8}{'P':>8}{'R':>8}{'boxes':>8}")
        for name, m in evaluation["labels"].items():
            lines.append(f"  {name[:27]:<28}{_fmt(m['ap50']):>8}{_fmt(m['precision']):>8}{_fmt(m['recall']):>8}{m['instances']:>8}")
        mean = evaluation["mean"]
        lines.append(f"  mAP@0.5 {_fmt(mean['map50'])}; image AUROC {_fmt(mean['image_auroc'])}, F1 {_fmt(mean['f1'])}")
    if version.status == PENDING:
        lines.append(f"approve it to serve it: ivadas models approve {version.id} --reason \"...\"")
    return lines


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
