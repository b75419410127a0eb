"""A labelled set in YOLO format: images and one `.txt` file of boxes per image.

Layouts (as Ultralytics reads them):
- a folder with `images/` and `labels/` (any subfolders, mirrored): `images/val/a.jpg` ↔ `labels/val/a.txt`;
- a folder of images with their `.txt` files beside them;
- a `data.yaml` whose `val` (or `test`) entry names such a folder, relative to its `path`.

Each line of a label file is `class x_centre y_centre width height`, the coordinates normalised to
the image's width and height. An image without a label file, or with an empty one, shows no
object. Unknown class ids, boxes that leave the image, malformed lines and unreadable images are
collected and reported together: the set is refused, never silently trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.kinds.detector.yolo import DetectorError
from pipelines.detector.names import YAML_SUFFIXES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: How far (in normalised units) a box may reach past the image's edge from rounding in label files
EDGE_TOLERANCE = 1e-4
MAX_LISTED_PROBLEMS = 10


@dataclass
class LabelledImage:
    path: Path
    label_path: Path | None  # None: no label file (no object in the image)
    classes: np.ndarray  # [n] class ids
    boxes: np.ndarray  # [n, 4] x_centre, y_centre, width, height, normalised

    def pixel_boxes(self, width: int, height: int) -> np.ndarray:
        """`[n, 4]` x0, y0, x1, y1 in pixels of an image `width` × `height`."""
        cx, cy, w, h = self.boxes.T.astype(np.float64) if len(self.boxes) else np.zeros((4, 0))
        return np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], axis=1)


def label_path_of(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, the suffix `.txt`."""
    parts = list(image.parts)
    if "images" in parts[:-1]:
        index = len(parts) - 2 - parts[:-1][::-1].index("images")
        parts[index] = "labels"
    return Path(*parts).with_suffix(".txt")


def resolve_images_root(location: str | Path) -> Path:
    location = Path(location)
    if location.is_file() and location.suffix.lower() in YAML_SUFFIXES:
        import yaml

        try:
            data = yaml.safe_load(location.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise DetectorError(f"{location} cannot be read as a dataset YAML: {exc}") from None
        split = data.get("val") or data.get("test") if isinstance(data, dict) else None
        if not isinstance(split, str):
            raise DetectorError(f"{location} names no labelled split: give 'val' (or 'test') as one folder of images")
        base = Path(data.get("path") or ".")
        base = base if base.is_absolute() else location.parent / base
        location = base / split
    if not location.is_dir():
        raise DetectorError(f"no labelled set at {location}: give a folder of images with YOLO .txt labels, or a data.yaml")
    return location


def read_labelled_set(location: str | Path, class_count: int) -> list[LabelledImage]:
    """Every image of the set with its boxes; raises `DetectorError` listing every problem found."""
    root = resolve_images_root(location)
    images_dir = root / "images" if (root / "images").is_dir() else root
    paths = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DetectorError(f"the labelled set {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    problems: list[str] = []
    images = [_read_labels(path, class_count, problems) for path in paths]
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DetectorError(f"the labelled set {root} has {len(problems)} problem(s): {listed}{more}")
    return images


def _read_labels(image: Path, class_count: int, problems: list[str]) -> LabelledImage:
    label = label_path_of(image)
    if not label.is_file():
        return LabelledImage(image, None, np.zeros(0, dtype=np.int64), np.zeros((0, 4)))
    try:
        lines = label.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{label}: cannot be read ({exc})")
        return LabelledImage(image, label, np.zeros(0, dtype=np.int64), np.zeros((0, 4)))
    classes, boxes = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label}:{number}"
        if len(fields) != 5:
            problems.append(f"{where}: {len(fields)} values; a box is 'class x_centre y_centre width height'")
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.append(f"{where}: not numbers: {line.strip()!r}")
            continue
        class_id, cx, cy, w, h = values
        if not np.all(np.isfinite(values)):
            problems.append(f"{where}: not finite: {line.strip()!r}")
            continue
        if class_id != int(class_id) or not 0 <= class_id < class_count:
            problems.append(f"{where}: unknown class id {fields[0]} (the detector has classes 0 to {class_count - 1})")
            continue
        if w <= 0 or h <= 0:
            problems.append(f"{where}: the box has no area (width {fields[3]}, height {fields[4]})")
            continue
        edges = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if min(edges) < -EDGE_TOLERANCE or max(edges) > 1 + EDGE_TOLERANCE:
            problems.append(f"{where}: the box [{', '.join(f'{e:.4f}' for e in edges)}] (normalised x0, y0, x1, y1) "
                            "is outside the image (coordinates are fractions of the width and height, 0 to 1)")
            continue
        classes.append(int(class_id))
        boxes.append((cx, cy, w, h))
    return LabelledImage(image, label, np.array(classes, dtype=np.int64), np.array(boxes, dtype=np.float64).reshape(-1, 4))
