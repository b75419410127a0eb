"""`ivadas bench --suite noise`: what SoftPatch's noise filters find in contaminated training data, and
what the memory bank gains by leaving it out.

Follows the quality suite's protocol (`--contamination`: that fraction of the test anomalies moved into
`train/good`, drawn with the seed) but embeds every image once and builds every rule's bank from the
same embeddings, so the rules differ only in what they leave out. Each rule is measured twice: how well
it finds the moved anomalies (their share of what it removes; the AUROC of its image scores for "was a
test anomaly") and the image AUROC of the bank built without what it removed, on the validation split
(for choosing) and the evaluation split (for reporting). An oracle that leaves out exactly the moved
images is the ceiling of any filter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

#: Prefix `_limited_dataset` gives the test anomalies it moves into train/good.
MOVED_PREFIX = "contamination-"
#: Tukey's "far out" fence on the patches' relative outlier factors: Q3 + 3 IQR.
FENCE_WIDTH = 3.0


@dataclass
class Removal:
    keep: np.ndarray | None  # rows of the patch store to keep (None: all)
    weights: np.ndarray | None = None  # soft weights of every row (SoftPatch's scoring), or None
    image_scores: np.ndarray | None = None  # how noisy the rule finds each training image


def _softpatch(patches, config, fit_samples, **settings) -> Removal:
    """What SoftPatch's own filter (`noise_filter`, as training runs it) removes with `settings`, and
    the image scores it leaves images out by, when it does."""
    from dataclasses import replace

    from inference.kinds.patchcore.model import filters_images, image_noise_scores, noise_filter

    softpatch = replace(config, kind="softpatch", **settings)
    patches.finish()
    scores = image_noise_scores(patches, softpatch) if filters_images(softpatch, patches.views) else None
    keep, weights = noise_filter(patches, softpatch, image_scores=scores)
    return Removal(keep, weights, scores)


def _relative_factors(patches, config, method: str) -> np.ndarray:
    from inference.kinds.softpatch.noise import outlier_factors, relative_to_image

    factors = outlier_factors(patches.projected_positions, patches.views, patches.positions, method, config.lof_k)
    return relative_to_image(factors)


def _lof_fence(patches, config, fit_samples) -> Removal:
    """LOF at every position (the paper's discriminator), patches beyond the far-out fence left out."""
    relative = _relative_factors(patches, config, "lof")
    flat = relative.reshape(-1)
    q1, q3 = np.quantile(flat, [0.25, 0.75])
    return Removal(flat <= q3 + FENCE_WIDTH * (q3 - q1), None, relative.max(axis=1))


def _gaussian_scores(patches, config, fit_samples) -> Removal:
    """The default discriminator's view of the images (nothing removed): how well it sees the moved ones."""
    return Removal(None, None, _relative_factors(patches, config, "gaussian").max(axis=1))


def _oracle(patches, config, fit_samples) -> Removal:
    moved = np.array([s.path.name.startswith(MOVED_PREFIX) for s in fit_samples])
    return Removal(np.repeat(~moved, patches.positions), None, moved.astype(float))


REFERENCE = "PatchCore (nothing removed)"
RULES: dict[str, tuple[Callable, bool]] = {  # label: (rule, only on contaminated data)
    REFERENCE: (lambda patches, config, fit: Removal(None), False),
    "SoftPatch defaults (image support filter, 20 % of the images)": (_softpatch, False),
    "SoftPatch, two-fold image filter (20 % of the images; the former default)": (
        partial(_softpatch, noise_image_rule="two_fold"), False),
    "SoftPatch's former defaults (Gaussian patch filter, τ = 0.15, soft weights)": (
        partial(_softpatch, noise_images=0.0, noise_method="gaussian", noise_fraction=0.15, soft_weights=True), False),
    "Gaussian patch scores, nothing removed": (_gaussian_scores, True),
    f"LOF, patches beyond Q3 + {FENCE_WIDTH:g} IQR, no soft weights": (_lof_fence, False),
    "oracle: the moved anomalies left out": (_oracle, True),
}


class EmbeddingCache:
    """Every image's patch embeddings, computed once per class into a file of the workdir, named after
    what makes them (backbone, its weights, image size, embedding), so another run never reads them."""

    def __init__(self, workdir: Path, extractor):
        import hashlib

        self.workdir = workdir
        self.extractor = extractor
        spec = extractor.backbone.spec
        made_by = [spec.name, spec.weights, list(spec.layers), extractor.image_size, extractor.patch_size,
                   extractor.embedding_dim, extractor.preprocessing.to_dict()]
        self.key = hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:12]
        self.rows: dict[str, dict[str, int]] = {}
        self.arrays: dict[str, np.ndarray] = {}

    def fill(self, name: str, samples: list) -> None:
        from inference.vision.imageio import load_image_file

        from pipelines.progress import progress

        paths = sorted({str(s.path.resolve()) for s in samples})
        index_file = self.workdir / f"noise-{self.key}-{name}.json"
        array_file = self.workdir / f"noise-{self.key}-{name}.npy"
        if index_file.exists() and array_file.exists():
            index = json.loads(index_file.read_text())
            if set(paths) <= set(index):
                self.rows[name], self.arrays[name] = index, np.load(array_file, mmap_mode="r")
                return
        probe, _ = self.extractor.embed([load_image_file(paths[0])])
        array = np.lib.format.open_memmap(array_file, "w+", np.float32, (len(paths), *probe.shape[1:]))
        for start in progress(range(0, len(paths), 8), f"noise: embed {name}", unit="batch"):
            batch = paths[start : start + 8]
            array[start : start + len(batch)] = self.extractor.embed([load_image_file(p) for p in batch])[0]
        array.flush()
        index_file.write_text(json.dumps({p: i for i, p in enumerate(paths)}))
        self.rows[name], self.arrays[name] = {p: i for i, p in enumerate(paths)}, np.load(array_file, mmap_mode="r")

    def of(self, name: str, samples: list) -> np.ndarray:
        rows = [self.rows[name][str(s.path.resolve())] for s in samples]
        return np.stack([np.asarray(self.arrays[name][r]) for r in rows])


def _auroc(labels, scores) -> float | None:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels, bool)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else None


def measure_rule(rule, fit: np.ndarray, fit_samples: list, parts: dict[str, tuple[np.ndarray, list]], config) -> dict:
    """One rule on one class's training embeddings: what it removed and the bank's image AUROC per part."""
    from dataclasses import replace

    from inference.kinds.patchcore.model import ClassModel, coreset_bank
    from inference.kinds.patchcore.patch_store import store_of

    patches = store_of(fit, config.coreset_projection_dim, config.seed)
    removal = rule(patches, config, fit_samples)
    weighted = removal.weights is not None
    scoring = replace(config, kind="softpatch" if weighted else "patchcore", soft_weights=weighted)
    bank = coreset_bank(patches, scoring, removal.keep, removal.weights)
    model = ClassModel(bank, scoring, (patches.positions, 1))
    moved = np.array([s.path.name.startswith(MOVED_PREFIX) for s in fit_samples])
    removed = np.zeros(patches.rows, bool) if removal.keep is None else ~removal.keep
    moved_rows = np.repeat(moved, patches.positions)
    row = {"removed": float(removed.mean()), "moved_images": int(moved.sum()),
           "moved_share_of_removed": float(moved_rows[removed].mean()) if removed.any() else None,
           "moved_rows_removed": float(removed[moved_rows].mean()) if moved.any() else None,
           "detection_auroc": _auroc(moved, removal.image_scores) if removal.image_scores is not None else None}
    if removal.keep is None and not weighted and rule is not RULES[REFERENCE][0]:
        return row  # PatchCore's own bank: its AUROCs are the reference row's
    for part, (embeddings, samples) in parts.items():
        scores = [model.score(e, with_map=False).raw_score for e in embeddings]
        row[part] = _auroc([s.is_anomaly for s in samples], scores)
    return row


def run_noise_bench(args, workdir: Path) -> str:
    from inference.kinds.patchcore.config import DEFAULT_CONFIG, ModelConfig

    from pipelines.bench import _csv_list
    from pipelines.kinds.patchcore.training import build_extractor
    from pipelines.vision.backbones import BackboneSource
    from pipelines.vision.backbones.export import resolve_backbone
    from pipelines.vision.datasets import list_classes

    if not (args.data and args.onnx_backbone):
        raise ValueError("the noise suite needs --data and --onnx-backbone")
    classes = args.classes.split(",") if args.classes else list_classes(args.data)
    seeds = [int(s) for s in _csv_list(args.seeds)]
    fractions = [float(f) for f in _csv_list(args.contamination)] or [0.0]
    base = ModelConfig.from_dict({**DEFAULT_CONFIG.to_dict(), "image_size": args.quality_image_size})
    draws = _draws(args, workdir, classes, seeds, fractions)
    onnx_path, spec = resolve_backbone(BackboneSource(args.onnx_backbone))
    cache = EmbeddingCache(workdir, build_extractor(onnx_path, spec, base))
    for name in classes:  # every image any draw needs, embedded once
        cache.fill(name, [s for (_, _, c), split in draws.items() if c == name
                          for s in split.fit + split.validation + split.evaluation])
    results = []
    for (seed, fraction, name), split in draws.items():
        config = ModelConfig.from_dict({**base.to_dict(), "seed": seed})
        parts = {part: (cache.of(name, samples), samples)
                 for part, samples in (("validation", split.validation), ("evaluation", split.evaluation))}
        fit = cache.of(name, split.fit)
        for label, (rule, contaminated_only) in RULES.items():
            if contaminated_only and not fraction:
                continue
            print(f"noise: {label}, {name}, seed {seed}, {fraction:.0%} ...", flush=True)
            row = measure_rule(rule, fit, split.fit, parts, config)
            results.append({"rule": label, "class": name, "seed": seed, "fraction": fraction, **row})
            (workdir / "noise-results.json").write_text(json.dumps(results, indent=1))
    return noise_tables(results, classes, seeds, args)


def _draws(args, workdir: Path, classes: list[str], seeds: list[int], fractions: list[float]) -> dict:
    """(seed, contamination, class) → the class's split of that draw, as the quality suite makes it."""
    from pipelines.bench import _limited_dataset
    from pipelines.vision.datasets import read_class
    from pipelines.vision.splits import split_class

    draws = {}
    for seed in seeds:
        for fraction in fractions:
            root = _limited_dataset(Path(args.data), classes, args.train_limit, args.test_limit,
                                    workdir / f"noise-data-{seed}-{fraction:g}", seed, fraction)
            for name in classes:
                draws[(seed, fraction, name)] = split_class(read_class(root, name, verify_images=False), seed)
    return draws


def noise_tables(results: list[dict], classes: list[str], seeds: list[int], args) -> str:
    """Markdown: per contamination and rule, what was removed and the bank's AUROC, mean ± spread over
    the seeds of the class mean; and each rule against PatchCore on the same draw, in points."""
    from pipelines.bench import _spread

    lines = [
        "## What the noise filters find",
        "",
        f"Dataset `{args.data}`, backbone `{args.onnx_backbone}`, {args.quality_image_size} px; seeds "
        f"{', '.join(map(str, seeds))}; {args.train_limit} `train/good` images per class drawn with the seed, and the "
        "moved anomalies of the contamination. Every rule's bank is built from the same embeddings. 'removed': share "
        "of training patches left out; 'moved share': how much of what was left out came from the moved anomalies; "
        "'moved found': share of the moved anomalies' patches left out; 'detection AUROC': the rule's image scores "
        "against 'was a test anomaly'. AUROCs are class means, mean ± standard deviation over the seeds.",
        "",
        "| contamination | rule | removed | moved share | moved found | detection AUROC | validation AUROC | evaluation AUROC | evaluation − PatchCore (points) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["rule"], r["class"], r["seed"], r["fraction"]): r for r in results}
    reference = REFERENCE
    for fraction in sorted({r["fraction"] for r in results}):
        for rule in RULES:
            rows = [r for r in results if r["rule"] == rule and r["fraction"] == fraction]
            if not rows:
                continue

            def class_mean(key, seed):
                values = [by_key.get((rule, c, seed, fraction), {}).get(key) for c in classes]
                return None if any(v is None for v in values) else float(np.mean(values))

            def gain(seed):
                ours, base = class_mean("evaluation", seed), None
                values = [by_key.get((reference, c, seed, fraction), {}).get("evaluation") for c in classes]
                if None not in values:
                    base = float(np.mean(values))
                return None if ours is None or base is None else 100 * (ours - base)

            cells = [_spread([r[key] for r in rows]) for key in ("removed", "moved_share_of_removed",
                                                                      "moved_rows_removed", "detection_auroc")]
            aucs = [_spread([class_mean(part, s) for s in seeds]) for part in ("validation", "evaluation")]
            gains = [g for g in (gain(s) for s in seeds) if g is not None]
            difference = "" if rule == reference else (f"{np.mean(gains):+.2f} ± {np.std(gains, ddof=1):.2f}"
                                                       if len(gains) > 1 else f"{gains[0]:+.2f}" if gains else "n/a")
            if rule != reference and all(r.get("evaluation") is None and not r["removed"] for r in rows):
                aucs, difference = ["PatchCore's bank", "PatchCore's bank"], ""  # it removed nothing
            lines.append(f"| {fraction:.0%} | {rule} | " + " | ".join(cells + aucs) + f" | {difference} |")
    return "\n".join(lines)
