"""Validate an MVTec-layout dataset, split every class and report its data quality.

Problems (unreadable files, masks without images, masks of the wrong size) are listed with their
paths; a class fails when it has too few readable `train/good` images or too many unreadable files.
"""

from __future__ import annotations

from pipelines.vision.datasets import read_class
from pipelines.vision.splits import split_class

#: Fewest readable train/good images a class can be trained on.
MIN_TRAIN_IMAGES = 10
#: Largest share of unreadable files a class may have before its data is called broken.
MAX_UNREADABLE_FRACTION = 0.05


def class_quality(data, split, unreadable: int) -> dict:
    total = len(data.train) + len(data.test) + unreadable
    return {
        "train_good": len(data.train),
        "test_good": sum(not s.is_anomaly for s in data.test),
        "test_anomalous": sum(s.is_anomaly for s in data.test),
        "defect_types": sorted({s.defect for s in data.test if s.is_anomaly}),
        "masks": sum(s.mask is not None for s in data.test),
        "unreadable": unreadable,
        "unreadable_fraction": unreadable / total if total else 0.0,
        "split_sizes": {part: len(keys) for part, keys in split.to_dict().items()},
        "problems": data.problems,
    }


def preprocess(root, classes: list[str], seed: int, min_train_images: int = MIN_TRAIN_IMAGES,
               max_unreadable_fraction: float = MAX_UNREADABLE_FRACTION) -> tuple[dict, dict, list[str]]:
    """(split manifest, data-quality report, failures) for `classes` of the dataset at `root`."""
    manifest, quality, failures = {"seed": seed, "classes": {}}, {"classes": {}}, []
    for name in classes:
        data = read_class(root, name)
        split = split_class(data, seed)
        unreadable = sum("unreadable" in p["reason"] for p in data.problems)
        report = class_quality(data, split, unreadable)
        quality["classes"][name] = report
        manifest["classes"][name] = split.to_dict()
        if report["train_good"] < min_train_images:
            failures.append(f"class {name!r} has {report['train_good']} readable train/good images; "
                            f"at least {min_train_images} are needed")
        if report["unreadable_fraction"] > max_unreadable_fraction:
            failures.append(f"class {name!r}: {report['unreadable_fraction']:.0%} of its files are unreadable "
                            f"(limit {max_unreadable_fraction:.0%})")
    return manifest, quality, failures
