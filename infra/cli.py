"""The `ivadas` command: parses arguments and calls the packages; no logic of its own.

User mistakes (bad paths, unknown classes, invalid values) end with one `error:` line and exit 2.
"""

from __future__ import annotations

import argparse
import inference  # noqa: F401  (sets thread-pool defaults before numpy and faiss load)
import json
import logging
import math
import os
import sys
from pathlib import Path

from inference.kinds import MODEL_KINDS
from inference.kinds.patchcore.config import DEFAULT_CONFIG, NOISE_METHODS, PREPROCESSING_MODES

EXIT_USER_ERROR = 2


def home() -> Path:
    """Workspace for data, bundles and reports: `$IVADAS_HOME`, default `./.ivadas`."""
    return Path(os.environ.get("IVADAS_HOME", ".ivadas"))


def default_bundle(kind: str) -> Path:
    return home() / "bundles" / kind / "model.tar.gz"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _floats3(value: str) -> tuple[float, float, float]:
    try:
        parts = [float(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not three comma-separated numbers") from None
    if len(parts) != 3 or not all(math.isfinite(p) for p in parts):
        raise argparse.ArgumentTypeError(f"{value!r} is not three comma-separated finite numbers")
    return tuple(parts)


def _stds(value: str) -> tuple[float, float, float]:
    parts = _floats3(value)
    if min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: a standard deviation must be positive (the input is divided by it)")
    return parts


def _int_at_least(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{number} is less than {minimum}")
        return number
    return parse


def _port(value: str) -> int:
    number = _int_at_least(1)(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a TCP port (1 to 65535)")
    return number


def _positive(value: str) -> float:
    number = _float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def _unit_interval(value: str) -> float:
    number = _float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1]")
    return number


def _png(value: str) -> str:
    if Path(value).suffix.lower() != ".png" or Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a .png file name")
    return value


def _ratio(value: str) -> float:
    number = _float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]")
    return number


def _names(value: str, what: str) -> list[str]:
    """Comma-separated names that become file or folder names under --output (never a path)."""
    names = _csv(value)
    if not names:
        raise ValueError(f"--{what}: no names given")
    for name in names:
        if name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"--{what}: {name!r} is not a plain name (it becomes a file name under --output)")
    return names


def cmd_demo_sensors(args) -> int:
    from pipelines.sensors.synthetic import generate

    root = generate(args.output, _names(args.assets, "assets"), args.rows, args.interval, args.seed)
    print(f"demo sensor data written to {root} (assets: {args.assets}; labelled faults in the second half)")
    return 0


def cmd_demo_data(args) -> int:
    from pipelines.vision.synthetic import generate

    root = generate(args.output, _names(args.classes, "classes"), args.size, args.train_count, args.test_good_count,
                    args.test_defect_count, args.contamination, args.seed)
    print(f"demo dataset written to {root} (classes: {args.classes})")
    return 0


#: Options of `train` and `pipeline run` that are settings of the image kinds, passed on as hyperparameters;
#: any kind's setting can also be given as `--set name=value`.
IMAGE_SETTING_OPTIONS = ("backbone", "weights", "layers", "mean", "std", "image_size", "coreset_ratio", "noise_method",
                         "noise_fraction", "seed", "int8", "preprocessing", "tile_size", "tile_overlap")


def _settings(args) -> dict[str, str]:
    """The kind's settings from the command line, as strings (the way SageMaker passes hyperparameters)."""
    settings = {}
    for name in IMAGE_SETTING_OPTIONS:
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        settings[name] = "true" if value is True else ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    for pair in getattr(args, "set", None) or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {pair!r} is not NAME=VALUE")
        settings[name.strip()] = value.strip()
    return settings


def _classes(args) -> list[str]:
    from pipelines.modalities import of_kind

    return _csv(args.classes) if args.classes else of_kind(args.model).list_classes(args.data)


def cmd_train(args) -> int:
    from pipelines.kinds import TrainingJob, train

    output = Path(args.output or default_bundle(args.model))
    _check_output_file(output)
    job = TrainingJob(args.model, Path(args.data), _classes(args), _settings(args), output, quiet=args.quiet)
    run = _start_training_run(job)
    with run.failed_on_error():
        report = train(job)
    for name, entry in report.manifest["classes"].items():
        seconds = report.timings.get(name, {}).get("total_s", 0.0)
        print(f"{name}: threshold {entry['threshold']:.4f} ({entry['calibration']['method']}), {seconds:.1f}s")
    for name, problems in report.problems.items():
        print(f"{name}: {len(problems)} problem(s) in the data:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem['path']}: {problem['reason']}", file=sys.stderr)
    backbone = report.manifest.get("backbone")
    print(f"bundle written to {output}" + (f" (backbone {backbone['name']}, weights {backbone['weights']})" if backbone else ""))
    if backbone and backbone["weights"].startswith("random"):
        print("WARNING: the backbone has RANDOM weights: fine for the synthetic demo and tests, near chance on real images. "
              "Put ImageNet weights in the torch hub cache or pass --weights FILE.", file=sys.stderr)
    _finish_training_run(run, job, report, output)
    return 0


def _check_output_file(output: Path) -> None:
    """Refuse an output the bundle could not be written to before training, not after it."""
    if output.is_dir():
        raise ValueError(f"--output {output} is a folder; give the bundle's file name, e.g. {output / 'model.tar.gz'}")
    folder = next((p for p in output.parents if p.exists()), Path("."))
    if not folder.is_dir():
        raise ValueError(f"--output {output}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--output {output}: {folder} is not writable")


def _start_training_run(job):
    """The training's MLflow run, as a pipeline training's: the kind's experiment, the same parameters and
    lineage (data, snapshot hash, source revision), in the embedded store under the local artifact store
    unless MLFLOW_TRACKING_URI says otherwise (set but empty: no tracking). Its id goes into the bundle's
    lineage; the command names it once the training succeeded (settings a kind refuses leave a FAILED run).
    Tracking never fails the training: an unusable server is one `tracking:` line."""
    import time

    from pipelines import tracking
    from pipelines.local_runner import RunParameters, check_classes, data_fingerprint, source_revision

    uri = os.environ.get(tracking.TRACKING_URI_ENV, tracking.local_tracking_uri(store_dir()))
    if not uri:
        return tracking.TrackedRun()
    # a class missing from the data is a typo, not a training: one error line and no run (as the pipeline does)
    check_classes(job.data_root, RunParameters(str(job.data_root), tuple(job.classes), job.kind))
    job.lineage.update(data_uri=str(job.data_root.resolve()), source_revision=source_revision())
    try:
        job.lineage["data_snapshot"] = data_fingerprint(job.data_root, job.classes)
    except OSError:  # an unreadable file: the training names it; the run goes without a snapshot hash
        pass
    tags = {**tracking.lineage_tags({**job.lineage, "classes": job.classes}, job.kind), "mlflow.source.name": "ivadas train"}
    run = tracking.start_run(job.kind, f"{job.kind}-train-{time.strftime('%Y%m%dT%H%M%S')}", tags, uri=uri, announce=False)
    run.log_params(_training_params(job))
    if run.run_id:
        job.lineage[tracking.RUN_ID_KEY] = run.run_id
    return run


def _training_params(job) -> dict:
    """The parameters a pipeline training logs: the kind's settings, model kind, classes and lineage."""
    from pipelines.steps.train import LINEAGE_KEYS

    return {**job.hyperparameters, "model_kind": job.kind, "classes": ",".join(job.classes),
            **{key: value for key, value in job.lineage.items() if key in LINEAGE_KEYS}}


def _finish_training_run(run, job, report, bundle: Path) -> None:
    """The settings the kind resolved, the timings (as the pipeline's training step logs them), the bundle."""
    from pipelines import tracking
    from pipelines.steps.train import track_training

    if not run.run_id:
        return
    run.log_params(tracking.resolved_settings(report.manifest, _training_params(job)))
    run.log_artifact(bundle, "bundle")
    track_training(run, report)
    if run.active:  # a server lost midway has said so on its `tracking:` line
        print(f"MLflow run {run.run_id} in experiment {tracking.experiment_name(job.kind)!r} at {run.summary()['tracking_uri']}"
              + (" (`ivadas mlflow` shows it)" if run.uri.startswith("sqlite:") else ""))


def cmd_evaluate(args) -> int:
    from pipelines.modalities import modality
    from pipelines.steps.evaluate import bundle_modality

    bundle = Path(args.bundle or default_bundle(args.model))
    output = Path(args.output or home() / "reports" / bundle.parent.name)
    if not bundle.exists():
        raise FileNotFoundError(f"no model bundle at {bundle}; train one first or pass --bundle")
    report = modality(bundle_modality(bundle)).evaluate(bundle, args.data, output, _csv(args.classes) if args.classes else None,
                                                         split=args.split, quiet=args.quiet)
    print(f"split: {args.split} ({report.get('split', {}).get('description', '')})")
    columns = REPORT_COLUMNS[report["model"]["modality"]]
    print(f"{'class':<16}" + "".join(f"{title:>{width}}" for _, title, width in columns))
    for name, values in {**report["classes"], "mean": report["mean"]}.items():
        print(f"{name:<16}" + "".join(f"{_fmt(values.get(key)):>{width}}" for key, _, width in columns))
    print(f"report and plots written to {output}")
    return 0


#: What `ivadas evaluate` prints per class or asset: (metric, title, width).
REPORT_COLUMNS = {
    "image": (("image_auroc", "image AUROC", 12), ("pixel_auroc", "pixel AUROC", 12), ("aupro", "PRO", 8), ("f1", "F1", 8)),
    "sensors": (("auroc", "AUROC", 8), ("f1", "F1", 8), ("far", "FAR", 8), ("mar", "MAR", 8), ("event_recall", "events caught", 15),
                ("false_events", "false events", 14)),
}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


SENSOR_FILE_SUFFIXES = (".csv", ".parquet")


def cmd_predict(args) -> int:
    if Path(args.image).suffix.lower() in SENSOR_FILE_SUFFIXES:
        return _predict_window(args)
    if args.url:
        return _predict_remote(args)
    from inference.vision.render import heatmap_overlay

    bundle = args.bundle or default_bundle(args.model or DEFAULT_CONFIG.kind)
    detector = _loaded(bundle, "image", args.model)
    detector.model_for(args.class_name)
    if Path(args.image).is_dir():
        raise ValueError(f"{args.image} is a folder; give one image file")
    image = detector.decode(Path(args.image).read_bytes(), args.class_name, max_bytes=1 << 62)
    if args.heatmap and "heatmap" not in detector.outputs:
        raise ValueError(f"--heatmap: the {detector.kind} model gives no heatmap")
    outputs = tuple(o for o in ("regions", "detections") + (("heatmap",) if args.json else ()) if o in detector.outputs)
    result, normalised_map = detector.predict_image_with_map(image, args.class_name, args.threshold, outputs)
    _print_verdict(result, args.json)
    if args.heatmap:
        heatmap_overlay(image, normalised_map).save(args.heatmap)
        print(f"heatmap written to {args.heatmap}", file=sys.stderr if args.json else sys.stdout)
    return 0


#: What `ivadas predict` is given for each modality, for the refusal of the other.
INPUT_OF_MODALITY = {"image": "an image file", "sensors": "a window of readings (.csv or .parquet)"}


def _loaded(bundle, modality: str, kind: str | None):
    """The bundle's model, refused when it judges the other modality than the file given, or is not the
    `--model` asked for."""
    from inference.model import load_model

    model = load_model(bundle)
    if model.modality != modality:
        raise ValueError(f"{bundle} is a {model.kind} model of {model.modality}: give it "
                         f"{INPUT_OF_MODALITY[model.modality]}, not {INPUT_OF_MODALITY[modality]}")
    if kind and model.kind != kind:
        raise ValueError(f"--model {kind}, but {bundle} is a {model.kind} model; drop --model or give a {kind} bundle")
    return model


def _predict_remote(args) -> int:
    import base64

    from infra.client import predict_remote

    if not Path(args.image).is_file():
        raise FileNotFoundError(f"no image at {args.image}")
    outputs = ("regions", "heatmap") if (args.json or args.heatmap) else ("regions",)
    if args.model:  # only what the kind offers (a detector answers with boxes)
        from inference.kinds import kind_info

        outputs = tuple(o for o in outputs + ("detections",) if o in kind_info(args.model).outputs)
    result = predict_remote(args.url, args.image, args.class_name, args.model, args.threshold, outputs)
    heatmap = result.get("heatmap_png_base64")
    if args.heatmap and heatmap:
        Path(args.heatmap).write_bytes(base64.b64decode(heatmap))
    if not args.json:
        result.pop("heatmap_png_base64", None)
    _print_verdict(result, args.json)
    if args.heatmap and heatmap:
        print(f"heatmap overlay layer written to {args.heatmap}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _predict_window(args) -> int:
    """Judge a window of sensor readings (a CSV or Parquet file with a header row)."""
    from inference.kinds import DEFAULT_KINDS

    path = Path(args.image)
    if not path.is_file():
        raise FileNotFoundError(f"no sensor file at {path}")
    if args.heatmap:
        raise ValueError("--heatmap: a window of readings has no heatmap (the answer names the sensors and the event)")
    body = path.read_bytes() if path.suffix.lower() == ".csv" else _parquet_as_csv(path)
    if args.url:
        from infra.client import predict_window_remote

        result = predict_window_remote(args.url, body, args.class_name, args.model, args.threshold)
    else:
        model = _loaded(args.bundle or default_bundle(args.model or DEFAULT_KINDS["sensors"]), "sensors", args.model)
        result = model.predict_window(model.csv_window(body, args.class_name), args.class_name, args.threshold)
    if not args.json:
        result.pop("scores", None)
    _print_verdict(result, args.json)
    return 0


def _parquet_as_csv(path: Path) -> bytes:
    import pandas as pd

    return pd.read_parquet(path).to_csv(index=False).encode()


def cmd_up(args) -> int:
    from infra.local.stack import StackSettings, run_until_interrupted

    settings = StackSettings(
        home=home(), host=args.host, port=args.port, runtime_port=args.runtime_port, endpoint_base_port=args.endpoint_port,
        data=Path(args.data) if args.data else None, classes=tuple(_csv(args.classes)) if args.classes else (),
        backbone=args.backbone, weights=args.weights, default_model=args.model, auth=args.auth,
    )
    try:
        return run_until_interrupted(settings)
    except RuntimeError as exc:  # a port in use, a server that would not start: say so, as for any mistake
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def _print_verdict(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    verdict = "ANOMALY" if result["is_anomaly"] else "normal"
    print(f"{verdict}: score {result['anomaly_score']:.3f} (threshold {result['threshold']:.2f}, raw {result['raw_score']:.4f}) "
          f"class {result['class_name']}, model {result['model']['kind']} {result['model']['version']}")
    for region in result.get("regions", [])[:10]:
        print(f"  region {region['box']} score {region['score']:.3f} area {region['area']} px")
    for box in result.get("detections", [])[:20]:
        print(f"  {box['label']} {box['confidence']:.3f} box {box['box']}" + (" (anomalous)" if box.get("anomalous") else ""))
    if "rows" in result:
        top = ", ".join(f"{c['sensor']} {c['share']:.0%}" for c in result.get("contributions", [])[:3])
        print(f"  {result['rows']} rows, peak at {result['peak_at']}" + (f"; driven by {top}" if top else ""))
    for event in result.get("events", [])[:20]:
        sensors = ", ".join(f"{s['sensor']} {s['share']:.0%}" for s in event["top_sensors"])
        print(f"  event {event['start']} → {event['end']} ({event['rows']} rows{', ongoing' if event['ongoing'] else ''}) "
              f"peak {event['peak_score']:.3f}: {sensors}")


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


def store_dir() -> Path:
    return home() / "store"


def cmd_pipeline_definition(args) -> int:
    from pipelines.definition import definition_json

    print(definition_json(_pipeline_settings(args)))
    return 0


def _pipeline_settings(args):
    from pipelines.definition import PipelineSettings

    values = {k: getattr(args, k) for k in ("name", "image_uri", "inference_image_uri", "role_arn", "artifacts_bucket", "region")
              if getattr(args, k, None)}
    return PipelineSettings(**values)


def cmd_pipeline_run(args) -> int:
    from pipelines.local_runner import LocalPipeline, PipelineFailed, RunParameters, source_revision

    if not args.local:
        print("error: only --local runs here; use `ivadas pipeline start` for the SageMaker pipeline", file=sys.stderr)
        return EXIT_USER_ERROR
    params = RunParameters(
        data_uri=str(Path(args.data).resolve()), classes=tuple(_classes(args)), model_kind=args.model,
        settings=_settings(args), gate=args.gate, approval_status=args.approval, source_revision=source_revision(),
    )
    pipeline = LocalPipeline(args.store or store_dir(), args.name)
    try:
        record = pipeline.run(params)
    except PipelineFailed as failed:
        print(f"error: pipeline {failed.record['execution_id']} failed: {failed.record['failure_reason']}", file=sys.stderr)
        return 1
    from pipelines.modalities import of_kind

    metric = of_kind(args.model).GATE_METRIC
    print(f"pipeline {record['execution_id']} succeeded: registered {record['registered_version']} "
          f"(mean {metric.replace('_', ' ')} {record['metrics']['mean'][metric]:.3f})")
    return 0


def cmd_pipeline_upsert(args) -> int:
    from pipelines.aws import upsert

    print(upsert(_pipeline_settings(args)))
    return 0


def cmd_pipeline_start(args) -> int:
    from pipelines.aws import start

    parameters = {"Classes": args.classes, "ModelKind": args.model, "DataUri": args.data, "AurocGate": args.gate,
                  "KindSettings": json.dumps(_settings(args), sort_keys=True)}
    print(start(args.name, parameters, region=args.region))
    return 0


def cmd_pipeline_status(args) -> int:
    from pipelines.aws import status

    print(json.dumps(status(args.execution, region=args.region), indent=2, default=str))
    return 0


def _registry(args):
    from pipelines.registry import LocalRegistry, SageMakerRegistry

    if args.target == "aws":
        return SageMakerRegistry(region=args.region)
    return LocalRegistry(args.store or store_dir())


def _version_ref(args):
    from pipelines.registry import parse_version_id

    return parse_version_id(args.version, args.name)


def cmd_models_list(args) -> int:
    from pipelines.definition import model_package_group

    registry = _registry(args)
    group = model_package_group(args.name, args.model) if args.model else None
    versions = registry.list(group, args.status)
    if not versions:
        print("no model versions registered")
        return 0
    served = {v.group: registry.served(v.group) for v in versions}
    print(f"{'version':<34}{'status':<24}{'image AUROC':>12}  {'created':<31}served")
    for v in versions:
        auroc = v.metrics.get("mean", {}).get("image_auroc")
        is_served = served[v.group] is not None and served[v.group].id == v.id
        print(f"{v.id:<34}{v.status:<24}{_fmt(auroc):>12}  {v.created_at:<31}{'*' if is_served else ''}")
    return 0


def cmd_models_show(args) -> int:
    group, number = _version_ref(args)
    print(json.dumps(_registry(args).get(group, number).to_dict(), indent=2, default=str))
    return 0


def cmd_models_transition(args) -> int:
    from pipelines.registry import APPROVED, REJECTED

    group, number = _version_ref(args)
    registry = _registry(args)
    status = APPROVED if args.command_name == "approve" else REJECTED
    version = registry.set_status(group, number, status, args.reason)
    served = registry.served(group)
    print(f"{version.id} is now {version.status}; served version of {group}: {served.id if served else 'none'}")
    return 0


def cmd_models_import(args) -> int:
    from pipelines.detector.cli import run_import

    for line in run_import(args, Path(args.store or store_dir())):
        print(line)
    return 0


def cmd_bench(args) -> int:
    from infra.local.loadtest import run_load_bench
    from pipelines.bench import run_bench

    args.load_bench = run_load_bench  # the load suite needs the local stack, which lives in infra
    run_bench(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivadas", description="Industrial visual anomaly detection as a service.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write the synthetic demo dataset (MVTec layout)")
    demo.add_argument("--output", default=str(home() / "demo-data"))
    demo.add_argument("--classes", default="tiles,fabric,wood")
    demo.add_argument("--size", type=_int_at_least(32), default=256)
    demo.add_argument("--train-count", type=_int_at_least(1), default=40)
    demo.add_argument("--test-good-count", type=_int_at_least(0), default=12)
    demo.add_argument("--test-defect-count", type=_int_at_least(0), default=6)
    demo.add_argument("--contamination", type=_unit_interval, default=0.0, help="fraction of defective images in train/good")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo_data)

    sensors = sub.add_parser("demo-sensors", help="write synthetic machine data: a pump's sensors with labelled faults")
    sensors.add_argument("--output", default=str(home() / "demo-sensors"))
    sensors.add_argument("--assets", default="pump-1")
    sensors.add_argument("--rows", type=_int_at_least(2), default=4032, help="readings per asset (default: a week)")
    sensors.add_argument("--interval", type=_positive, default=150.0, help="seconds between readings")
    sensors.add_argument("--seed", type=int, default=0)
    sensors.set_defaults(func=cmd_demo_sensors)

    train = sub.add_parser("train", help="train a model bundle from an MVTec-layout folder")
    train.add_argument("--data", required=True, help="dataset root (MVTec AD layout for images)")
    train.add_argument("--classes", help="comma-separated classes (default: every class in --data)")
    _add_model_choice(train)
    _add_image_settings(train)
    train.add_argument("--seed", type=int)
    train.add_argument("--output", help="bundle path (default: $IVADAS_HOME/bundles/<model>/model.tar.gz)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a bundle on its held-out test split (or every test image)")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--bundle", help="model.tar.gz (default: the last one trained for --model)")
    _add_model_choice(evaluate)
    evaluate.add_argument("--classes")
    evaluate.add_argument("--output", help="report folder (default: $IVADAS_HOME/reports/<model>)")
    evaluate.add_argument("--split", choices=("heldout", "all"), default="heldout",
                          help="heldout: only test images that neither trained the model nor chose its threshold; "
                               "all: every test image, as published tables (the report says which)")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="judge one image, or a window of sensor readings (CSV or Parquet)")
    predict.add_argument("image", help="an image, or a .csv/.parquet window of sensor readings with a header row")
    predict.add_argument("--class", dest="class_name", required=True)
    predict.add_argument("--model", choices=MODEL_KINDS, help="model kind (default: patchcore locally, the API's default with --url)")
    predict.add_argument("--bundle", help="local model.tar.gz (default: the last one trained for --model)")
    predict.add_argument("--url", help="a running IVADAS API (`ivadas up`, or the AWS URL) instead of a local bundle")
    predict.add_argument("--threshold", type=float, help="override of the normalised threshold (0.5)")
    predict.add_argument("--heatmap", type=_png, help="write the heatmap overlay to this PNG")
    predict.add_argument("--json", action="store_true", help="print the full JSON response")
    predict.set_defaults(func=cmd_predict)

    _add_pipeline_commands(sub)
    _add_models_commands(sub)
    from infra.cli_observe import add_commands as add_tracking_and_monitoring

    add_tracking_and_monitoring(sub)

    up = sub.add_parser("up", help="run the whole system locally: train the demo if needed, serve API and UI")
    up.add_argument("--data", help="train on this MVTec-layout folder instead of the synthetic demo")
    up.add_argument("--classes", help="classes to train, of --data or of the built-in demo (default: all; "
                                      "one demo class, e.g. tiles, makes the first start quicker)")
    up.add_argument("--backbone", help="default: resnet18 for the demo, wide_resnet50_2 for --data")
    up.add_argument("--weights", help="default: auto-or-random for the demo, auto for --data")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=_port, default=int(os.environ.get("IVADAS_PORT", "8000")))
    up.add_argument("--runtime-port", type=_port, default=8090, help="the SageMaker-runtime-compatible route")
    up.add_argument("--endpoint-port", type=_port, default=8081, help="first endpoint port (one port per served model kind)")
    up.add_argument("--auth", action="store_true",
                    help="require sign-in and station keys (users and keys: `ivadas users add`, `ivadas keys add`)")
    _add_model_choice(up)
    up.set_defaults(func=cmd_up)
    _add_access_commands(sub)

    bench = sub.add_parser("bench", help="measure quality, speed and memory; write a table")
    from pipelines.bench import add_arguments

    add_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def _add_pipeline_identity(parser) -> None:
    parser.add_argument("--name", default="ivadas-training", help="pipeline name (model package groups are NAME-<kind>)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


def _add_pipeline_commands(sub) -> None:
    pipeline = sub.add_parser("pipeline", help="the training pipeline: definition, local run, SageMaker").add_subparsers(
        dest="pipeline_command", required=True)

    definition = pipeline.add_parser("definition", help="print the SageMaker pipeline definition (offline, deterministic)")
    _add_pipeline_identity(definition)
    _add_deploy_settings(definition)
    definition.set_defaults(func=cmd_pipeline_definition)

    run = pipeline.add_parser("run", help="run the pipeline's steps on this machine")
    run.add_argument("--local", action="store_true", required=True)
    run.add_argument("--data", required=True)
    run.add_argument("--classes")
    _add_model_choice(run)
    _add_image_settings(run)
    run.add_argument("--gate", type=_unit_interval, default=0.9, help="minimum mean image AUROC to register")
    run.add_argument("--approval", choices=("PendingManualApproval", "Approved"), default="PendingManualApproval")
    run.add_argument("--store", help="artifact store (default: $IVADAS_HOME/store)")
    _add_pipeline_identity(run)
    run.set_defaults(func=cmd_pipeline_run)

    upsert = pipeline.add_parser("upsert", help="create or update the SageMaker pipeline (development)")
    _add_pipeline_identity(upsert)
    _add_deploy_settings(upsert)
    upsert.set_defaults(func=cmd_pipeline_upsert)

    start = pipeline.add_parser("start", help="start a SageMaker pipeline execution")
    _add_pipeline_identity(start)
    start.add_argument("--classes", required=True)
    _add_model_choice(start)
    start.add_argument("--data", help="s3:// dataset URI (default: the pipeline's)")
    start.add_argument("--gate", type=_unit_interval)
    _add_image_settings(start)
    start.set_defaults(func=cmd_pipeline_start)

    status = pipeline.add_parser("status", help="status of a SageMaker pipeline execution")
    _add_pipeline_identity(status)
    status.add_argument("execution", help="pipeline execution ARN")
    status.set_defaults(func=cmd_pipeline_status)


def _add_deploy_settings(parser) -> None:
    parser.add_argument("--image-uri", help="training/processing image URI")
    parser.add_argument("--inference-image-uri", help="endpoint image URI")
    parser.add_argument("--role-arn")
    parser.add_argument("--artifacts-bucket")


def _add_models_commands(sub) -> None:
    models = sub.add_parser("models", help="the model registry (local or SageMaker)").add_subparsers(
        dest="models_command", required=True)
    for name, func, help_text in (("list", cmd_models_list, "list versions"), ("show", cmd_models_show, "one version"),
                                  ("approve", cmd_models_transition, "approve a version (it becomes the served one)"),
                                  ("reject", cmd_models_transition, "reject a version")):
        parser = models.add_parser(name, help=help_text)
        parser.add_argument("--target", choices=("local", "aws"), default="local")
        parser.add_argument("--store", help="local artifact store (default: $IVADAS_HOME/store)")
        _add_pipeline_identity(parser)
        if name == "list":
            parser.add_argument("--model", choices=MODEL_KINDS, help="only this model kind")
            parser.add_argument("--status", choices=("PendingManualApproval", "Approved", "Rejected"))
        else:
            parser.add_argument("version", help="GROUP/NUMBER, e.g. ivadas-training-patchcore/1 (or patchcore/1)")
        if name in ("approve", "reject"):
            parser.add_argument("--reason", required=True, help="why (recorded in the version's history)")
        parser.set_defaults(func=func, command_name=name)
    imported = models.add_parser("import", help="register your own ONNX detector (YOLOv8 / YOLO11) as a model version")
    imported.add_argument("--target", choices=("local", "aws"), default="local")
    imported.add_argument("--store", help="local artifact store (default: $IVADAS_HOME/store)")
    _add_pipeline_identity(imported)
    from pipelines.detector.cli import add_import_arguments

    add_import_arguments(imported)
    imported.set_defaults(func=cmd_models_import)


def _add_image_settings(parser) -> None:
    """Settings of the image kinds (defaults are the kind's own); other kinds' settings go through --set."""
    parser.add_argument("--backbone", help="resnet18, wide_resnet50_2 (default), or a path to an ONNX feature extractor")
    parser.add_argument("--weights", help="auto (default: torch hub cache, then download), random, auto-or-random "
                                          "(demo: loud fallback), or a checkpoint file")
    parser.add_argument("--layers", type=lambda v: tuple(_csv(v)),
                        help="feature layers, default layer2,layer3 (output names of a custom ONNX backbone)")
    parser.add_argument("--mean", type=_floats3, help="normalisation mean of a custom backbone, e.g. 0.485,0.456,0.406")
    parser.add_argument("--std", type=_stds, help="normalisation std of a custom backbone")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--coreset-ratio", type=_ratio)
    parser.add_argument("--noise-method", choices=NOISE_METHODS)
    parser.add_argument("--noise-fraction", type=float)
    parser.add_argument("--int8", action="store_true", help="quantize the backbone to INT8 (calibrated on training images)")
    parser.add_argument("--preprocessing", choices=PREPROCESSING_MODES,
                        help="how images become the model's input (default resize): squash to --image-size, letterbox "
                             "(keep the aspect ratio, pad), or tile (overlapping tiles, scored each and stitched)")
    parser.add_argument("--tile-size", type=int, help="tile side in pixels of the original image (default: --image-size)")
    parser.add_argument("--tile-overlap", type=float, help="overlap of neighbouring tiles, a fraction of a tile (default 0.25)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="any setting of the model kind (repeatable), e.g. memory_limit_mb=1024")


def _auth_store():
    from infra.local.auth import AuthStore

    return AuthStore(home() / "auth.json")


def _new_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    password = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def cmd_users(args) -> int:
    store = _auth_store()
    if args.action == "add":
        store.add_user(args.name, args.group, _new_password(args))
        print(f"user {args.name} ({', '.join(sorted(set(args.group)))}) saved in {store.path}")
    elif args.action == "remove":
        store.remove_user(args.name)
        print(f"user {args.name} removed")
    elif args.action == "token":  # for scripts and curl against `ivadas up --auth` on this machine
        print(store.issue_token(args.name))
    else:
        for name, groups in sorted(store.users().items()):
            print(f"{name}\t{','.join(groups)}")
    return 0


def cmd_keys(args) -> int:
    store = _auth_store()
    if args.action == "add":
        key = store.add_key(args.station, args.quota, args.rate)
        print(f"station {args.station}: {args.quota} requests a day, {args.rate:g} a second; send this key as x-api-key "
              f"(shown once, stored only as a hash):\n{key}")
    elif args.action == "remove":
        store.remove_key(args.station)
        print(f"key of station {args.station} removed")
    else:
        for station, key in sorted(store.keys().items()):
            print(f"{station}\t{key.key_id}\t{key.quota_per_day}/day\t{key.rate_per_second:g}/s")
    return 0


def _add_access_commands(sub) -> None:
    from infra.local.auth import GROUPS

    users_parser = sub.add_parser("users", help="people who sign in to `ivadas up --auth`")
    users_parser.set_defaults(func=cmd_users)
    users = users_parser.add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="add a user (or replace their groups and password)")
    add.add_argument("name")
    add.add_argument("--group", action="append", choices=GROUPS, required=True, help="repeatable")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for action, text in (("remove", "remove a user"), ("token", "print a signed token for the user (scripts, curl)")):
        users.add_parser(action, help=text).add_argument("name")
    users.add_parser("list", help="users and their groups")
    keys_parser = sub.add_parser("keys", help="inspection stations' API keys for `ivadas up --auth`")
    keys_parser.set_defaults(func=cmd_keys)
    keys = keys_parser.add_subparsers(dest="action", required=True)
    add = keys.add_parser("add", help="make a key for a station (replacing its old one): POST /predict only")
    add.add_argument("station")
    add.add_argument("--quota", type=int, default=10000, help="requests per day (default 10000)")
    add.add_argument("--rate", type=_float, default=5.0, help="steady requests per second (burst twice that; default 5)")
    keys.add_parser("remove", help="revoke a station's key").add_argument("station")
    keys.add_parser("list", help="stations, key ids and limits")


def _add_model_choice(parser) -> None:
    parser.add_argument("--model", choices=MODEL_KINDS, default=DEFAULT_CONFIG.kind, help="model kind")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    # MLflow logs the creation of its tables at INFO on its own handler: only with --verbose, like ours
    mlflow_level = "INFO" if args.verbose else "WARNING"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", mlflow_level)  # read when mlflow is first imported
    logging.getLogger("mlflow").setLevel(mlflow_level)  # and for an mlflow imported already
    from inference.errors import IvadasError
    from pipelines.vision.backbones.export import BackboneUnavailable

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return args.func(args)
    except (IvadasError, BackboneUnavailable, OSError, ValueError) as exc:
        # RegistryError is a ValueError: unknown versions and forbidden transitions land here too; OSError:
        # a folder given for a file, a file for a folder, no permission, a full disk
        print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (BotoCoreError, ClientError) as exc:  # no region or credentials configured, access denied, no such pipeline
        print(f"error: AWS: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
