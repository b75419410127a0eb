"""`ivadas bench`: quality, speed and memory of the models, written as a Markdown table.

Quality: on a real MVTec-layout dataset with a real ONNX feature extractor, image AUROC (pixel AUROC
and PRO where masks exist) of exact PatchCore (full memory bank), PatchCore, SoftPatch and
PatchCore with the INT8 backbone. Speed: single-image latency p50/p95 at 256 px for each built-in
backbone (FP32 and INT8) and the time and peak memory to train one class. Every measurement runs
in its own process so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import platform
import shlex
import time
from pathlib import Path

SPEED_BACKBONES = (("resnet18", False), ("wide_resnet50_2", False), ("wide_resnet50_2", True))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", choices=("quality", "int8", "speed", "load", "memory", "peer", "all", "sensors", "monitoring",
                                                 "noise"),
                        default="all",
                        help="int8 compares INT8 recipes with FP32 features; load runs the local stack under load (loopback only); "
                             "memory trains one class of 200 to 5,000 images for wall time and peak memory (not part of all); "
                             "sensors runs the sensor kinds on SKAB and C-MAPSS (not part of all); monitoring measures input "
                             "statistics, a monitoring pass and MLflow tracking (not part of all); peer sets IVADAS against "
                             "anomalib's PatchCore from --peer-venv on the same images (not part of all); noise measures what SoftPatch's "
                             "noise filters find in --contamination and what the bank gains (not part of all)")
    parser.add_argument("--data", help="MVTec-layout dataset for the quality suite")
    parser.add_argument("--classes", help="classes of --data (default: all)")
    parser.add_argument("--onnx-backbone", help="ONNX feature extractor for the quality suite (layer2, layer3 outputs)")
    parser.add_argument("--quality-image-size", type=int, default=224)
    parser.add_argument("--variants", help="comma-separated words; run only quality variants whose name contains one (e.g. int8)")
    parser.add_argument("--seeds", default="0,1,2", help="quality: seeds of the training split (which training images, "
                        "calibration and validation images, coreset start); rows are mean and spread over them")
    parser.add_argument("--splits", default="heldout,all", help="quality: evaluation splits to report (heldout, all)")
    parser.add_argument("--contamination", default="0", help="quality: comma-separated fractions of the test anomalies "
                        "moved into train/good (SoftPatch's protocol; 0 = clean), one set of rows each")
    parser.add_argument("--train-limit", type=int, default=200, help="training images per class, drawn per seed")
    parser.add_argument("--test-limit", type=int, default=0, help="evaluation images per class (0 = all)")
    parser.add_argument("--int8-images", type=int, default=8, help="int8: test images the feature error is measured on")
    parser.add_argument("--speed-train-images", type=int, default=200)
    parser.add_argument("--speed-queries", type=int, default=60)
    parser.add_argument("--weights", default="auto", help="weights of the built-in backbones for the speed suite (auto falls back to random: speed does not depend on weights)")
    parser.add_argument("--memory-images", default="200,1000,5000", help="memory: training images of the class, one run each")
    parser.add_argument("--memory-limits", default="default,0",
                        help="memory: memory_limit_mb of each run ('default': the setting's default; 0: no limit, run only "
                             "where the embeddings fit in half of this machine's RAM)")
    parser.add_argument("--memory-kinds", default="patchcore", help="memory: model kinds (patchcore, softpatch)")
    parser.add_argument("--memory-backbone", default="wide_resnet50_2")
    parser.add_argument("--peer-venv", help="peer: virtualenv with anomalib installed (python3 -m venv DIR && "
                        "DIR/bin/pip install anomalib==2.7.0), never the project's own")
    parser.add_argument("--peer-class", help="peer: class of --data whose images both train on (default: the first)")
    parser.add_argument("--workdir", default="/tmp/ivadas-bench")
    parser.add_argument("--output", default="pipelines/BENCHMARKS.md")
    from pipelines.sensors.bench import add_arguments as add_sensor_arguments

    add_sensor_arguments(parser)


def run_bench(args) -> None:
    if args.suite == "sensors":
        from pipelines.sensors.bench import run_sensor_bench

        run_sensor_bench(args)
        return
    if args.suite == "peer":
        peer_python = check_peer_arguments(args)  # before anything slow: a wrong folder is the user's mistake
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sections = [_machine_section(args)]
    if args.suite == "peer":
        sections.append(_peer_section(args, workdir, peer_python))
    if args.suite in ("quality", "all"):
        if not (args.data and args.onnx_backbone):
            raise ValueError("the quality suite needs --data and --onnx-backbone")
        sections.append(_quality_section(args, workdir))
    if args.suite in ("int8", "all"):
        sections.append(_int8_section(args, workdir))
    if args.suite in ("speed", "all"):
        sections.append(_speed_section(args, workdir))
    if args.suite in ("load", "all"):
        sections.append(args.load_bench(args))
    if args.suite == "memory":
        sections.append(_memory_section(args, workdir))
    if args.suite == "noise":
        from pipelines.vision.noise_bench import run_noise_bench

        sections.append(run_noise_bench(args, workdir))
    if args.suite == "monitoring":
        from pipelines.monitoring.bench import run_monitoring_bench

        sections.append(run_monitoring_bench(args))
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


def _limited_dataset(data_root: Path, classes: list[str], train_limit: int, test_limit: int, target: Path,
                     seed: int = 0, contamination: float = 0.0) -> Path:
    """Symlinked copy of the dataset: `train_limit` training images per class drawn with `seed`
    (all when 0) and at most `test_limit` test images (every one when 0).

    `contamination` follows the SoftPatch paper's protocol: that fraction of the test anomalies (drawn
    with `seed`) moves into `train/good`, unlabelled among the normal images, and out of the test set."""
    import shutil

    import numpy as np

    from pipelines.vision.datasets import read_class

    if target.exists():
        shutil.rmtree(target)  # never mix the draw of another seed or limit
    for name in classes:
        data = read_class(data_root, name, verify_images=False)
        picks = data.train
        if train_limit and len(picks) > train_limit:
            chosen = np.random.default_rng(seed).choice(len(picks), size=train_limit, replace=False)
            picks = [picks[i] for i in sorted(chosen)]
        tests, moved = _contaminating(data.test, contamination, seed)
        if test_limit and len(tests) > test_limit:
            step = len(tests) / test_limit
            tests = [tests[int(i * step)] for i in range(test_limit)]
        for sample in picks + tests:
            link = target / name / Path(sample.key)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(sample.path.resolve())
        for sample in moved:  # named after their origin so that a look at the folder shows what was mixed in
            link = target / name / "train" / "good" / f"contamination-{sample.defect}-{sample.path.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(sample.path.resolve())
            if sample.mask is not None:
                mask_link = target / name / "ground_truth" / sample.defect / sample.mask.name
                mask_link.parent.mkdir(parents=True, exist_ok=True)
                if not mask_link.exists():
                    mask_link.symlink_to(sample.mask.resolve())
    return target


def _contaminating(tests: list, fraction: float, seed: int) -> tuple[list, list]:
    """(test samples kept, anomalies moved into training): round(fraction × anomalies) drawn with `seed`."""
    import numpy as np

    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"contamination must be in [0, 1), got {fraction}")
    anomalies = [i for i, sample in enumerate(tests) if sample.is_anomaly]
    count = round(fraction * len(anomalies))
    if not count:
        return list(tests), []
    # its own stream: the same seed draws the same training images whatever the contamination
    chosen = set(np.random.default_rng([seed, 1]).choice(anomalies, size=count, replace=False).tolist())
    return [s for i, s in enumerate(tests) if i not in chosen], [tests[i] for i in sorted(chosen)]


def _train_and_evaluate(data_root: str, classes: list[str], config_dict: dict, backbone: str, int8: bool, workdir: str,
                        splits: tuple[str, ...] = ("heldout", "all")) -> dict:
    if config_dict.get("kind") == "autoencoder":  # no backbone: it learns from the pixels
        from pipelines.kinds.autoencoder.bench import train_and_evaluate

        return train_and_evaluate(data_root, classes, config_dict, workdir, splits)
    import inference  # noqa: F401
    from inference.kinds.patchcore.config import ModelConfig

    from pipelines.vision.backbones import BackboneSource
    from pipelines.vision.evaluation import evaluate_splits
    from pipelines.kinds.patchcore.training import train_bundle

    config = ModelConfig.from_dict(config_dict)
    # named by every setting, so that two variants of one kind never share a bundle or an evaluation folder
    settings = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    label = f"{config.kind}-{settings}-{'int8' if int8 else 'fp32'}-seed{config.seed}"
    bundle = Path(workdir) / f"{label}.tar.gz"
    started = time.perf_counter()
    report = train_bundle(data_root, classes, config, BackboneSource(backbone), bundle, quantize=int8, quiet=True)
    train_s = time.perf_counter() - started
    evaluations = evaluate_splits(bundle, data_root, Path(workdir) / label, classes, splits, plots=False, quiet=True)
    latency = bundle_latency(bundle, data_root, classes[0])
    return {"train_s": train_s, "timings": report.timings, "evaluations": evaluations, "latency": latency}


def bundle_latency(bundle, data_root, name: str, queries: int = 20) -> dict:
    """Single-image latency of a trained bundle on test images of `name`: encoded bytes → verdict, and → verdict
    with heatmap and regions, the two taking turns; p50 in ms after 3 warm-up queries."""
    import numpy as np

    from inference.model import load_model
    from pipelines.vision.datasets import read_class

    detector = load_model(bundle)
    samples = read_class(data_root, name, verify_images=False).test
    payloads = [samples[i * len(samples) // queries].path.read_bytes() for i in range(min(queries, len(samples)))]
    for data in payloads[:3]:
        detector.predict_bytes(data, name, outputs=())
    verdict, full = [], []
    for data in payloads:
        started = time.perf_counter()
        detector.predict_bytes(data, name, outputs=())
        middle = time.perf_counter()
        detector.predict_bytes(data, name)
        full.append((time.perf_counter() - middle) * 1000)
        verdict.append((middle - started) * 1000)
    return {"class": name, "queries": len(payloads), "verdict_p50_ms": float(np.percentile(verdict, 50)),
            "full_p50_ms": float(np.percentile(full, 50))}


#: variant setting of the bench, not of the model: [resize, crop] applied to the dataset's files
CENTRE_CROP = "bench_centre_crop"
CONTAMINATED = " of the anomalies in training"


def contamination_label(label: str, fraction: float) -> str:
    """The row's label for training data contaminated with `fraction` of the test anomalies."""
    return label if not fraction else f"{label}, {fraction:.0%}{CONTAMINATED}"


def reference_of(label: str) -> str:
    """The row `label` is compared with: PatchCore trained on the same (clean or contaminated) data."""
    if label.endswith(CONTAMINATED):
        return REFERENCE + label[label.rindex(", "):]
    return REFERENCE


QUALITY_VARIANTS = (
    ("exact PatchCore (full bank)", {"kind": "patchcore", "coreset_ratio": 1.0}, False),
    ("PatchCore (1 % coreset)", {"kind": "patchcore"}, False),
    ("SoftPatch (1 % coreset)", {"kind": "softpatch"}, False),
    ("SoftPatch, the paper's patch filter (LOF, τ = 0.15, soft weights)",
     {"kind": "softpatch", "noise_images": 0.0, "noise_method": "lof", "noise_fraction": 0.15, "soft_weights": True}, False),
    ("PatchCore INT8 backbone", {"kind": "patchcore"}, True),
    ("Autoencoder (level 3, 128 px)", {"kind": "autoencoder", "level": 3, "image_size": 128}, False),
    # PatchCore as published (Roth et al.): layers 2+3, 1 % coreset, images resized to 256 and centre-cropped
    # to 224, σ = 4. The crop is applied to the files (training and test alike) before the project's code
    # reads them at 224 px, so the project's own training, scoring and evaluation run it.
    ("published PatchCore (256 → 224 centre crop)",
     {"kind": "patchcore", "layers": ["layer2", "layer3"], "coreset_ratio": 0.01, "anomaly_map_sigma": 4.0,
      "image_size": 224, CENTRE_CROP: [256, 224]}, False),
    ("PatchCore defaults (256 px)", {"kind": "patchcore", "image_size": 256}, False),
    ("PatchCore defaults at 320 px", {"kind": "patchcore", "image_size": 320}, False),
)
#: the row every other row is compared with, seed by seed
REFERENCE = "PatchCore (1 % coreset)"


def _csv_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _quality_section(args, workdir: Path) -> str:
    from inference.kinds.patchcore.config import DEFAULT_CONFIG

    from pipelines.vision.datasets import list_classes
    from pipelines.vision.evaluation import check_split

    classes = args.classes.split(",") if args.classes else list_classes(args.data)
    seeds = [int(s) for s in _csv_list(args.seeds)]
    splits = tuple(check_split(s) for s in _csv_list(args.splits))
    fractions = [float(f) for f in _csv_list(getattr(args, "contamination", "0"))] or [0.0]
    wanted = [w.lower() for w in _csv_list(args.variants)]
    variants = [v for v in QUALITY_VARIANTS if not wanted or any(w in v[0].lower() for w in wanted)]
    # results[label][seed] = {"evaluations": {split: report}, "timings": ..., "peak_rss_mb": ...}
    results: dict[str, dict[int, dict]] = {}
    for fraction in fractions:
        for seed in seeds:
            data = _limited_dataset(Path(args.data), classes, args.train_limit, args.test_limit,
                                    workdir / f"quality-data-{seed}", seed, fraction)
            for label, overrides, int8 in variants:
                label = contamination_label(label, fraction)
                settings = {k: v for k, v in overrides.items() if k != CENTRE_CROP}
                config = {**DEFAULT_CONFIG.to_dict(), "image_size": args.quality_image_size, "seed": seed, **settings}
                variant_data = data
                if CENTRE_CROP in overrides:
                    variant_data = _centre_cropped(data, *overrides[CENTRE_CROP], workdir / f"quality-data-{seed}-crop")
                print(f"quality: {label}, seed {seed} ...", flush=True)
                results.setdefault(label, {})[seed] = isolated(_train_and_evaluate, str(variant_data), classes, config,
                                                               args.onnx_backbone, int8, str(workdir), splits)
                # every finished run is kept, so that a long suite interrupted half-way still leaves its numbers
                (workdir / "quality-results.json").write_text(json.dumps(results, indent=1, default=str))
    return quality_tables(results, classes, splits, args)


def _centre_cropped(data: Path, resize: int, crop: int, target: Path) -> Path:
    """Every image of `data` resized to resize² and cut to its central crop², masks alike (nearest)."""
    import shutil

    from PIL import Image

    if target.exists():
        shutil.rmtree(target)
    offset = (resize - crop) // 2
    box = (offset, offset, offset + crop, offset + crop)
    for path in sorted(data.rglob("*")):
        if path.is_dir():
            continue
        out = target / path.relative_to(data)
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            resample = Image.NEAREST if "ground_truth" in path.parts else Image.BILINEAR
            image.resize((resize, resize), resample).crop(box).save(out.with_suffix(".png"))
    return target


def _spread(values: list[float], digits: int = 4) -> str:
    """`mean ± sd` (n − 1) of the values, or the value alone, or n/a."""
    import numpy as np

    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _class_mean(reports: list[dict], classes: list[str], key: str) -> list[float | None]:
    """Per seed, the mean of `key` over the classes (None when a class has no value)."""
    import numpy as np

    means = []
    for report in reports:
        values = [report["classes"][c].get(key) for c in classes]
        means.append(None if any(v is None for v in values) else float(np.mean(values)))
    return means


def quality_tables(results: dict, classes: list[str], splits: tuple[str, ...], args) -> str:
    """Markdown: mean ± standard deviation over seeds, per variant, class and split."""
    import numpy as np

    seeds = sorted({seed for by_seed in results.values() for seed in by_seed})
    lines = [
        "## Quality",
        "",
        f"Dataset `{args.data}`: per seed, {args.train_limit or 'all'} `train/good` images per class drawn with that seed "
        f"(the seed also draws the calibration and validation images and the coreset's start); "
        f"{'every test image' if not args.test_limit else f'at most {args.test_limit} test images'}. Backbone "
        f"`{args.onnx_backbone}`, {args.quality_image_size} px. Seeds {', '.join(map(str, seeds))}; each cell is the mean "
        "± the standard deviation over the seeds (n − 1). Split `heldout`: only test images that neither fitted the model "
        "nor chose its threshold; `all`: every test image, as published tables (F1 there is optimistic: the threshold "
        "was chosen on part of it). Ranking metrics on raw scores." + (
            " Rows marked '% of the anomalies in training' follow SoftPatch's protocol: that fraction of the test "
            "anomalies (drawn with the seed) is moved into `train/good` unlabelled, and the model is evaluated on the "
            "rest." if any(label.endswith(CONTAMINATED) for label in results) else ""),
        "",
        "| model | class | split | image AUROC | pixel AUROC | PRO | F1 | eval images | train s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, by_seed in results.items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        for split in splits:
            reports = [run["evaluations"][split] for run in runs]
            for name in classes:
                per = [r["classes"][name] for r in reports]
                lines.append(
                    f"| {label} | {name} | {split} | {_spread([m['image_auroc'] for m in per])} | "
                    f"{_spread([m['pixel_auroc'] for m in per])} | {_spread([m['aupro'] for m in per])} | "
                    f"{_spread([m['f1'] for m in per])} | {per[0]['images']} | "
                    f"{np.mean([run['timings'][name]['total_s'] for run in runs]):.1f} | "
                    f"{max(run['peak_rss_mb'] for run in runs):.0f} |")
            lines.append(f"| {label} | **mean** | {split} | {_spread(_class_mean(reports, classes, 'image_auroc'))} | "
                         f"{_spread(_class_mean(reports, classes, 'pixel_auroc'))} | "
                         f"{_spread(_class_mean(reports, classes, 'aupro'))} | {_spread(_class_mean(reports, classes, 'f1'))} "
                         "| | | |")
    lines += _latency_rows(results)
    compared = [label for label in results if reference_of(label) in results and reference_of(label) != label]
    if compared:
        lines += ["", f"Against {REFERENCE} trained on the same data, seed by seed (same training images, same "
                      "splits): difference of image AUROC in points, mean ± standard deviation over the seeds.", "",
                  "| model | class | split | − reference |", "|---|---|---|---|"]
        for label in compared:
            reference = reference_of(label)
            common = sorted(set(results[label]) & set(results[reference]))
            for split in splits:
                for name in classes + ["mean"]:
                    deltas = []
                    for seed in common:
                        ours, theirs = (results[v][seed]["evaluations"][split] for v in (label, reference))
                        if name == "mean":
                            a = _class_mean([ours], classes, "image_auroc")[0]
                            b = _class_mean([theirs], classes, "image_auroc")[0]
                        else:
                            a, b = ours["classes"][name]["image_auroc"], theirs["classes"][name]["image_auroc"]
                        deltas.append(None if a is None or b is None else 100 * (a - b))
                    lines.append(f"| {label} | {name if name != 'mean' else '**mean**'} | {split} | {_spread(deltas, 2)} |")
    return "\n".join(lines)


def _latency_rows(results: dict) -> list[str]:
    """Markdown rows of single-image latency for the variants whose runs measured it (median over the seeds)."""
    import numpy as np

    rows = []
    for label, by_seed in results.items():
        measured = [run["latency"] for run in by_seed.values() if run.get("latency")]
        if measured:
            rows.append(f"| {label} | {measured[0]['class']} | {np.median([m['verdict_p50_ms'] for m in measured]):.0f} | "
                        f"{np.median([m['full_p50_ms'] for m in measured]):.0f} | {len(measured)} |")
    if not rows:
        return []
    return ["", "Single-image latency of the trained bundle, encoded bytes → verdict, and → verdict with heatmap and "
                "regions, the two taking turns on 20 test images after 3 warm-up: p50 in ms, median over the seeds' runs "
                "(on the machine and load of the run).", "",
            "| model | class | verdict ms | with heatmap and regions ms | runs |", "|---|---|---|---|---|", *rows]


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# -------------------------------------------------------------------------------------- int8


def _int8_one(recipe: str, backbone: str, calibration_paths: list[str], test_paths: list[str], image_size: int,
              workdir: str) -> dict:
    """Feature error of one INT8 recipe against FP32: on this CPU, and as CPUs without VNNI compute it."""
    import numpy as np

    import inference  # noqa: F401
    from inference.kinds.patchcore.config import DEFAULT_CONFIG
    from inference.kinds.patchcore.features import patch_embeddings
    from inference.vision.backbone import OnnxBackbone
    from inference.vision.imageio import load_image_file, to_model_input

    from pipelines.vision.backbones import BackboneSource, resolve_backbone
    from pipelines.vision.int8_emulation import emulate
    from pipelines.vision.quantize import quantize_backbone

    source_path, spec = resolve_backbone(BackboneSource(backbone))
    int8_path, int8_spec = quantize_backbone(source_path, spec, [load_image_file(p) for p in calibration_paths],
                                             image_size, recipe=recipe)
    batch = to_model_input([load_image_file(p) for p in test_paths], image_size, spec.mean, spec.std)

    def embeddings(path, spec_of_path) -> np.ndarray:
        runner = OnnxBackbone(path, spec_of_path)
        maps = [runner(batch[i : i + 1]) for i in range(len(batch))]
        layers = [np.concatenate([m[k] for m in maps]) for k in range(len(spec.layers))]
        return patch_embeddings(layers, DEFAULT_CONFIG.patch_size, DEFAULT_CONFIG.embedding_dim)[0]

    def error(a, b) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    fp32 = embeddings(source_path, spec)
    here = embeddings(int8_path, int8_spec)
    without_vnni_path = Path(workdir) / f"int8-{recipe}-without-vnni.onnx"
    exact_path = Path(workdir) / f"int8-{recipe}-exact.onnx"
    rewritten = emulate(int8_path, without_vnni_path, saturate=True)
    emulate(int8_path, exact_path, saturate=False)
    without_vnni = embeddings(without_vnni_path, int8_spec)
    exact = embeddings(exact_path, int8_spec)
    return {
        "recipe": recipe, "rewritten": rewritten, "error_here": error(here, fp32), "error_without_vnni": error(without_vnni, fp32),
        "error_exact": error(exact, fp32), "without_vnni_vs_exact": error(without_vnni, exact),
        "emulation_vs_here": error(exact, here), "int8_path": str(int8_path), "int8_spec": int8_spec.to_dict(),
    }


def _int8_latency(backbone: str, graphs: dict[str, tuple[str, dict]], image_paths: list[str], image_size: int,
                  runs: int) -> dict:
    """Backbone latency of FP32 and every INT8 graph, one image at a time, the graphs taking turns so
    that they share whatever else the machine is doing. p50 in ms per graph."""
    import numpy as np

    import inference  # noqa: F401
    from inference.vision.backbone import BackboneSpec, OnnxBackbone
    from inference.vision.imageio import load_image_file, to_model_input

    from pipelines.vision.backbones import BackboneSource, resolve_backbone

    source_path, spec = resolve_backbone(BackboneSource(backbone))
    batch = to_model_input([load_image_file(p) for p in image_paths], image_size, spec.mean, spec.std)
    runners = {"fp32": OnnxBackbone(source_path, spec)}
    runners.update({name: OnnxBackbone(path, BackboneSpec.from_dict(spec_dict)) for name, (path, spec_dict) in graphs.items()})
    times = {name: [] for name in runners}
    for runner in runners.values():
        runner(batch[:1])  # warm-up
    for i in range(runs):
        image = batch[i % len(batch) : i % len(batch) + 1]
        for name, runner in runners.items():
            started = time.perf_counter()
            runner(image)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: float(np.percentile(values, 50)) for name, values in times.items()}


def _int8_section(args, workdir: Path) -> str:
    import numpy as np

    from pipelines.kinds.patchcore.training import INT8_CALIBRATION_IMAGES
    from pipelines.vision.datasets import list_classes, read_class
    from pipelines.vision.quantize import DEFAULT_RECIPE, RECIPES

    if not (args.data and args.onnx_backbone):
        raise ValueError("the int8 suite needs --data and --onnx-backbone")
    classes = args.classes.split(",") if args.classes else list_classes(args.data)
    rng = np.random.default_rng(0)
    calibration, tests = [], []
    for name in classes:
        data = read_class(args.data, name)
        calibration += [str(data.train[i].path) for i in rng.choice(len(data.train), INT8_CALIBRATION_IMAGES // len(classes), replace=False)]
        tests += [str(data.test[i].path) for i in rng.choice(len(data.test), args.int8_images // len(classes), replace=False)]
    rows = []
    for recipe in RECIPES:
        print(f"int8: {recipe} ...", flush=True)
        rows.append(isolated(_int8_one, recipe, args.onnx_backbone, calibration, tests, args.quality_image_size,
                             str(workdir)))
    print("int8: latency ...", flush=True)
    latency = isolated(_int8_latency, args.onnx_backbone, {r["recipe"]: (r["int8_path"], r["int8_spec"]) for r in rows},
                       tests, args.quality_image_size, args.speed_queries)
    lines = [
        "## INT8 features against FP32",
        "",
        f"Backbone `{args.onnx_backbone}`, {args.quality_image_size} px; calibrated on {len(calibration)} training images "
        f"of {', '.join(classes)} (as `--int8` does), measured on {len(tests)} test images. Feature error: "
        "‖E_int8 − E_fp32‖ / ‖E_fp32‖ over every PatchCore patch embedding (what the memory bank stores and searches). "
        "'Without VNNI' is the graph rewritten by `pipelines/vision/int8_emulation.py` into the arithmetic of ONNX "
        "Runtime's x86 kernel on CPUs without VNNI (int16 saturating pair sums); 'exact' is the same rewrite without "
        "saturation (VNNI, ARM). Backbone latency on this CPU: one image, p50 of "
        f"{args.speed_queries} runs per graph, FP32 and the INT8 graphs taking turns.",
        "",
        "| recipe | error on this CPU | error without VNNI | error exact | without VNNI vs exact | "
        "emulation (exact) vs this CPU | INT8 ms | FP32 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (default)" if r["recipe"] == DEFAULT_RECIPE else ""
        if r["rewritten"]:
            emulated = (f"{r['error_without_vnni']:.2%} | {r['error_exact']:.2%} | {r['without_vnni_vs_exact']:.2%} | "
                        f"{r['emulation_vs_here']:.2%}")
        else:  # U8 weights run ONNX Runtime's U8U8 kernel, which widens to int16 before multiplying: exact
            emulated = "same as this CPU (U8U8 kernels are exact) | | 0 | "
        lines.append(f"| `{r['recipe']}`{mark}: {RECIPES[r['recipe']].summary} | {r['error_here']:.2%} | {emulated} | "
                     f"{latency[r['recipe']]:.1f} | {latency['fp32']:.1f} |")
    return "\n".join(lines)


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


# ------------------------------------------------------------------------------------ memory


def _memory_one(kind: str, images: int, limit_mb: int, backbone: str, weights: str, data_root: str, workdir: str) -> dict:
    """Train one class of `images` training images with `limit_mb`; wall time, phases, bank and streamed bytes."""
    import os

    import inference  # noqa: F401
    from inference.kinds.patchcore.config import ModelConfig

    from pipelines.kinds.patchcore.training import train_bundle
    from pipelines.vision.backbones import BackboneSource, resolve_backbone
    from pipelines.vision.backbones.export import BackboneUnavailable

    source = BackboneSource(backbone, weights)
    try:
        resolve_backbone(source)
    except BackboneUnavailable:
        source = BackboneSource(backbone, "random")
    config = ModelConfig(kind=kind, image_size=256, memory_limit_mb=limit_mb)
    bundle = Path(workdir) / f"memory-{kind}-{images}-{limit_mb}.tar.gz"
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    report = train_bundle(data_root, ["tiles"], config, source, bundle, quiet=True)
    wall_s = time.perf_counter() - started
    bundle.unlink()
    return {"kind": kind, "images": images, "limit_mb": limit_mb, "wall_s": wall_s, "timings": report.timings["tiles"],
            "bank": report.manifest["classes"]["tiles"]["entries"], "weights": report.manifest["backbone"]["weights"],
            "load": (load_before, os.getloadavg()[0])}


def _memory_section(args, workdir: Path) -> str:
    import os

    from inference.kinds.patchcore.config import DEFAULT_CONFIG

    from pipelines.vision.synthetic import generate

    counts = [int(n) for n in _csv_list(args.memory_images)]
    limits = [DEFAULT_CONFIG.memory_limit_mb if v == "default" else int(v) for v in _csv_list(args.memory_limits)]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    rows, skipped = [], []
    for count in counts:
        data = workdir / f"memory-data-{count}"
        if not (data / "tiles").is_dir():
            print(f"memory: writing {count} synthetic images ...", flush=True)
            generate(data, ["tiles"], 256, count, 10, 3)
        for kind in _csv_list(args.memory_kinds):
            for limit in limits:
                needed = 0.9 * count * 1024 * (1024 + 128) * 4  # fit images' embeddings and projection, 256 px
                if limit == 0 and needed > ram / 2:
                    skipped.append(f"{kind}, {count} images, no limit: not run, it would hold {needed / 2**30:.0f} GB "
                                   f"of embeddings in RAM ({ram / 2**30:.0f} GB here)")
                    continue
                print(f"memory: {kind}, {count} images, limit {limit or 'none'} ...", flush=True)
                rows.append(isolated(_memory_one, kind, count, limit, args.memory_backbone, args.weights, str(data),
                                     str(workdir)))
                (workdir / "memory-results.json").write_text(json.dumps(rows, indent=1))
    return memory_table(rows, skipped, args)


def memory_table(rows: list[dict], skipped: list[str], args) -> str:
    lines = [
        "## Training memory",
        "",
        f"Command: `ivadas bench --suite memory --memory-images {args.memory_images} --memory-limits {args.memory_limits} "
        f"--memory-kinds {args.memory_kinds}`. One class of synthetic 256 px `tiles` images ({args.memory_backbone}, "
        "layers 2+3, 256 px, 1 % coreset; 90 % of the images fit the bank, the rest calibrate with 13 test images); each "
        "run in its own process. Peak: the process's peak resident memory (`ru_maxrss`), backbone and ONNX Runtime "
        "included. Streamed: the embeddings and their projection written to the scratch folder when they outgrow half "
        "the limit. Load: the machine's 1-minute load average at the start and the end of the run (2 cores).",
        "",
        "| kind | images | patches | memory_limit_mb | wall s | embed s | SoftPatch + coreset s | calibrate s | bank | "
        "peak MB | streamed MB | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["timings"]
        lines.append(
            f"| {r['kind']} | {r['images']} | {t['patches']} | {r['limit_mb'] or 'none'} | {r['wall_s']:.0f} | "
            f"{t['embed_s']:.0f} | {t['memory_bank_s']:.0f} | {t['calibration_s']:.0f} | {r['bank']} | "
            f"{r['peak_rss_mb']:.0f} | {t['streamed_mb']:.0f} | {r['load'][0]:.1f} → {r['load'][1]:.1f} |")
    if skipped:
        lines += [""] + [f"- {line}" for line in skipped]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- peer

#: (row, IVADAS measurement, peer measurement, budget of IVADAS / peer)
PEER_BUDGETS = (
    ("training one class, 200 images (s)", "train_s", "train_s", 0.2),
    ("peak training memory (MB)", "peak_train_mb", "peak_train_mb", 0.5),
    ("single image FP32, with heatmap and regions (p50 ms)", "fp32_full_p50_ms", "p50_ms", 0.6),
    ("single image FP32, verdict only (p50 ms)", "fp32_verdict_p50_ms", "p50_ms", 0.5),
    ("single image INT8, verdict only (p50 ms)", "int8_verdict_p50_ms", "p50_ms", 0.3),
    ("single image INT8, with heatmap and regions (p50 ms)", "int8_full_p50_ms", "p50_ms", None),
)
PEER_INSTALL = "python3 -m venv DIR && DIR/bin/pip install anomalib==2.7.0"


def check_peer_arguments(args) -> Path:
    """The peer virtualenv's Python, or a ValueError that says what is wrong with the arguments."""
    import sys

    if not args.peer_venv:
        raise ValueError(f"the peer suite needs --peer-venv DIR, a virtualenv with anomalib ({PEER_INSTALL})")
    venv = Path(args.peer_venv)
    if not venv.is_dir():
        raise ValueError(f"--peer-venv {venv}: no such folder; create it with {PEER_INSTALL.replace('DIR', str(venv))}")
    python = venv / "bin" / "python"
    if not python.exists():
        raise ValueError(f"--peer-venv {venv}: not a virtualenv (no bin/python)")
    if venv.resolve() == Path(sys.prefix).resolve():
        raise ValueError(f"--peer-venv {venv}: this is IVADAS's own environment; the peer runs from a separate one")
    if not args.data or not Path(args.data).is_dir():
        raise ValueError(f"the peer suite needs --data, an MVTec-layout dataset whose images both train on (got {args.data})")
    return python


def _peer_ours_train(data_root: str, name: str, workdir: str, int8: bool) -> dict:
    """IVADAS's training of one class as the peer's: wide_resnet50_2 with random weights, layers 2+3, 256 px,
    1 % coreset (the defaults), its bundle written; time and (through `isolated`) peak memory of training alone."""
    import inference  # noqa: F401
    from inference.kinds.patchcore.config import ModelConfig

    from pipelines.kinds.patchcore.training import train_bundle
    from pipelines.vision.backbones import BackboneSource

    config = ModelConfig(kind="patchcore", image_size=256, coreset_ratio=0.01, layers=("layer2", "layer3"))
    bundle = Path(workdir) / f"peer-ivadas-{'int8' if int8 else 'fp32'}.tar.gz"
    started = time.perf_counter()
    report = train_bundle(data_root, [name], config, BackboneSource("wide_resnet50_2", "random"), bundle,
                          quantize=int8, quiet=True)
    return {"train_s": time.perf_counter() - started, "bundle": str(bundle),
            "bank": report.manifest["classes"][name]["entries"], "timings": report.timings[name]}


#: queries each side answers before the other takes its turn, and the pause after a turn, in which the
#: threads of the side that just worked go to sleep before the other starts
TURN_QUERIES, TURN_PAUSE_S = 10, 0.5


def _latency_taking_turns(bundles: dict[str, str], name: str, paths: list[str], runs: int, warmup: int,
                          peer_python: Path, train_dir: Path, queries: Path, workdir: Path) -> dict:
    """anomalib trains in its own process; then it and IVADAS answer the same single-image queries (encoded
    bytes → answer) in turns of `TURN_QUERIES`, so that both share whatever else the machine is doing over
    the whole measurement. Within IVADAS's turn its four ways (FP32 and INT8; verdict, and with heatmap
    PNG and regions) take turns on each query. `{"ivadas": p50/p95 per way, "anomalib": its training
    measurements and p50/p95}`."""
    import inference  # noqa: F401
    from inference.model import load_model

    from pipelines.peer_process import PeerProcess

    with PeerProcess(peer_python, train_dir, queries, workdir) as peer:
        trained = peer.trained()  # trained before anything of IVADAS's is loaded
        payloads = [Path(p).read_bytes() for p in paths]
        detectors = {precision: load_model(bundle) for precision, bundle in bundles.items()}
        ways = {f"{precision}_{way}": (detector, outputs) for precision, detector in detectors.items()
                for way, outputs in (("verdict", ()), ("full", None))}
        ours = {key: [] for key in ways}

        def our_turn(rows: list[int], times: dict | None) -> None:
            for row in rows:
                for key, (detector, outputs) in ways.items():
                    started = time.perf_counter()
                    # outputs None: the default ones, heatmap and regions
                    detector.predict_bytes(payloads[row % len(payloads)], name, outputs=outputs)
                    if times is not None:
                        times[key].append((time.perf_counter() - started) * 1000)

        our_turn(list(range(warmup)), None)
        peer.time(list(range(warmup)))
        theirs = []
        for start in range(0, runs, TURN_QUERIES):
            rows = list(range(start, min(start + TURN_QUERIES, runs)))
            our_turn(rows, ours)
            time.sleep(TURN_PAUSE_S)
            theirs += peer.time(rows)
            time.sleep(TURN_PAUSE_S)
    result = {}
    for key, values in ours.items():
        result.update(_p50_p95(values, f"{key}_"))
    return {"ivadas": result, "anomalib": {**trained, **_p50_p95(theirs), "runs": len(theirs)}}


def _p50_p95(times_ms: list[float], prefix: str = "") -> dict:
    import numpy as np

    return {f"{prefix}p50_ms": float(np.percentile(times_ms, 50)), f"{prefix}p95_ms": float(np.percentile(times_ms, 95))}


def _peer_section(args, workdir: Path, peer_python: Path) -> str:
    import os

    from pipelines.vision.datasets import list_classes, read_class

    name = args.peer_class or list_classes(args.data)[0]
    data = _limited_dataset(Path(args.data), [name], args.speed_train_images, 0, workdir / "peer-data", seed=0)
    train_dir = data / name / "train" / "good"
    paths = [str(sample.path.resolve()) for sample in read_class(data, name, verify_images=False).test]
    queries = workdir / "peer-queries.txt"
    queries.write_text("\n".join(paths) + "\n")
    load = [os.getloadavg()[0]]
    print(f"peer: IVADAS training {name} (FP32, then INT8) ...", flush=True)
    ours = isolated(_peer_ours_train, str(data), name, str(workdir), False)
    ours_int8 = isolated(_peer_ours_train, str(data), name, str(workdir), True)
    ours["peak_train_mb"] = ours.pop("peak_rss_mb")  # the training process's alone; latency runs in its own
    load.append(os.getloadavg()[0])
    print("peer: anomalib training, then IVADAS and anomalib answering queries in turns ...", flush=True)
    latency = isolated(_latency_taking_turns, {"fp32": ours["bundle"], "int8": ours_int8["bundle"]}, name, paths,
                       args.speed_queries, 5, peer_python, train_dir, queries, workdir)
    ours.update(latency["ivadas"])
    peer = latency["anomalib"]
    load.append(os.getloadavg()[0])
    (workdir / "peer-results.json").write_text(json.dumps({"ivadas": ours, "anomalib": peer, "load": load}, indent=1))
    return peer_table(ours, peer, {"class": name, "train_images": len(list(train_dir.iterdir())),
                                   "queries": args.speed_queries, "queried_images": len(paths), "load": load,
                                   "data": args.data, "peer_venv": args.peer_venv})


def peer_table(ours: dict, peer: dict, run: dict) -> str:
    """Markdown: IVADAS against anomalib's PatchCore, measured in one run, as ratios against the budgets."""
    lines = [
        "## Against the peer: anomalib's PatchCore",
        "",
        f"Command: `ivadas bench --suite peer --peer-venv {run['peer_venv']} --data {run['data']}`. The same "
        f"{run['train_images']} `train/good` images of `{run['class']}` (drawn with seed 0) train both, one after the "
        f"other: IVADAS (its defaults: wide_resnet50_2, layers 2+3, 256 px, 1 % coreset, 90 % of the images in the "
        "bank and 10 % choosing the threshold, bundle written), then anomalib "
        f"{peer.get('anomalib', '?')} `Patchcore` from its own virtualenv (torch {peer.get('torch', '?')}, "
        f"{peer.get('torch_threads', '?')} threads; wide_resnet50_2, layers 2+3, its pre-processor at 256 px without "
        "a crop, 1 % coreset, `Engine.fit` on every image, no validation, Lightning's checkpoint written). Both "
        "backbones have random weights (none can be downloaded here). Latency: single image, encoded bytes → "
        f"answer, p50 of {run['queries']} queries over the {run['queried_images']} test images after 5 warm-up, "
        f"IVADAS and anomalib (each trained, in its own process) answering the same queries in turns of "
        f"{TURN_QUERIES}; "
        "anomalib's torch model always computes its score and anomaly map (no heatmap image, no regions), so every "
        "IVADAS latency is set against that one number. Peak memory: the training process's peak resident memory "
        "(`ru_maxrss`), measured before any query.",
        "",
        "| measure | IVADAS | anomalib | IVADAS / anomalib | budget | status |",
        "|---|---|---|---|---|---|",
    ]
    for label, our_key, peer_key, budget in PEER_BUDGETS:
        mine, theirs = ours.get(our_key), peer.get(peer_key)
        if mine is None or theirs is None:
            lines.append(f"| {label} | {_g(mine)} | {_g(theirs)} | n/a | {_budget(budget)} | not measured |")
            continue
        ratio = mine / theirs
        status = "" if budget is None else ("met" if ratio <= budget else "**not met**")
        lines.append(f"| {label} | {_g(mine)} | {_g(theirs)} | {ratio:.2f} | {_budget(budget)} | {status} |")
    load = run.get("load") or []
    if load:
        lines += ["", "1-minute load average (2 cores) at the start, after IVADAS's training, and at the end: "
                  + " → ".join(f"{value:.1f}" for value in load) + "."]
    return "\n".join(lines)


def _g(value) -> str:
    return "n/a" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.1f}")


def _budget(budget) -> str:
    return "" if budget is None else f"≤ {budget}"


def bench_command(args) -> str:
    """The command line that reproduces this run (the options that differ from their defaults)."""
    parts = [f"ivadas bench --suite {args.suite}"]
    if args.suite in ("quality", "int8", "all", "noise") and args.data:
        parts.append(f"--data {args.data} --onnx-backbone {args.onnx_backbone}")
        for option, default in (("classes", None), ("variants", None), ("seeds", "0,1,2"), ("splits", "heldout,all"),
                                ("train_limit", 200), ("test_limit", 0), ("quality_image_size", 224),
                                ("contamination", "0")):
            value = getattr(args, option, default)
            if value not in (default, None, ""):
                parts.append(f"--{option.replace('_', '-')} {shlex.quote(str(value))}")
    return " ".join(parts)


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
        f"Command: `{bench_command(args)}`",
        "",
        f"Machine: {cpu}, {multiprocessing.cpu_count()} vCPU, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, IVADAS {inference.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"faiss {faiss.__version__}, numpy {numpy.__version__}. INT8 instructions: {cpu_int8_features()}.",
    ])


def cpu_int8_features() -> str:
    """The x86 instruction sets ONNX Runtime's INT8 kernels choose between, as this CPU reports them."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    names = {"avx2": "AVX2", "avx512bw": "AVX-512 BW", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
             "amx_int8": "AMX INT8"}
    present = [label for flag, label in names.items() if flag in flags]
    vnni = any(flag in flags for flag in ("avx512_vnni", "avx_vnni"))
    return (", ".join(present) or "none of AVX2/AVX-512/VNNI") + ("" if vnni else " (no VNNI)")


