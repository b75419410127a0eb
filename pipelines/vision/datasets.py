"""MVTec AD layout reader that reports what is wrong instead of crashing.

    <root>/<class>/train/good/*.png
    <root>/<class>/test/good/*.png, <root>/<class>/test/<defect>/*.png
    <root>/<class>/ground_truth/<defect>/<name>_mask.png      (optional)

Any format Pillow reads is accepted. Unreadable images, masks without images, masks of the wrong
size and a missing `train/good` are collected as problems, each with its path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from inference.errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
GOOD = "good"


@dataclass(frozen=True)
class Sample:
    path: Path
    defect: str  # "good" or the defect folder's name
    mask: Path | None = None

    @property
    def is_anomaly(self) -> bool:
        return self.defect != GOOD

    @property
    def key(self) -> str:
        """Stable identifier inside a class: `<split>/<defect>/<file>`."""
        return "/".join(self.path.parts[-3:])


@dataclass
class ClassData:
    name: str
    root: Path
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(sample.mask for sample in self.test if sample.is_anomaly)

    def problem(self, path: Path, reason: str) -> None:
        self.problems.append({"path": str(path), "reason": reason})


def list_classes(root: str | Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    return sorted(p.name for p in root.iterdir() if (p / "train").is_dir() or (p / "test").is_dir())


def read_class(root: str | Path, name: str, verify_images: bool = True) -> ClassData:
    """Samples of one class; problems are recorded on the result, missing folders raise."""
    root = Path(root)
    class_dir = root / name
    if not class_dir.is_dir():
        available = list_classes(root)
        raise DatasetError(f"class {name!r} is not in {root}; classes found: {available or 'none'}")
    data = ClassData(name, class_dir)
    good_dir = class_dir / "train" / GOOD
    if not good_dir.is_dir():
        raise DatasetError(f"class {name!r} has no train/good folder ({good_dir})")
    data.train = [Sample(p, GOOD) for p in _images_in(good_dir, data)]
    data.test = list(_test_samples(class_dir, data))
    if verify_images:
        data.train = [s for s in data.train if _readable(s.path, data)]
        data.test = [_with_valid_mask(s, data) for s in data.test if _readable(s.path, data)]
    if not data.train:
        raise DatasetError(f"class {name!r} has no readable images in train/good ({good_dir})")
    return data


def _images_in(folder: Path, data: ClassData) -> list[Path]:
    images = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            data.problem(path, "not an image file (ignored)")
    return images


def _test_samples(class_dir: Path, data: ClassData):
    test_dir = class_dir / "test"
    if not test_dir.is_dir():
        return
    truth_dir = class_dir / "ground_truth"
    for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        defect = defect_dir.name
        masks = _masks_by_stem(truth_dir / defect, data) if defect != GOOD else {}
        for path in _images_in(defect_dir, data):
            mask = masks.pop(path.stem, None)
            if defect != GOOD and truth_dir.is_dir() and mask is None:
                data.problem(path, "no ground-truth mask (pixel metrics skip this image)")
            yield Sample(path, defect, mask)
        for orphan in masks.values():
            data.problem(orphan, "mask without a test image")


def _masks_by_stem(folder: Path, data: ClassData) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    masks = {}
    for path in _images_in(folder, data):
        stem = path.stem[: -len("_mask")] if path.stem.endswith("_mask") else path.stem
        masks[stem] = path
    return masks


def _readable(path: Path, data: ClassData) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        data.problem(path, f"unreadable image: {exc}")
        return False


def _with_valid_mask(sample: Sample, data: ClassData) -> Sample:
    """The sample, without its mask if the mask is unusable (the image still counts image-level)."""
    if sample.mask is None:
        return sample
    try:
        with Image.open(sample.path) as image, Image.open(sample.mask) as mask:
            if image.size == mask.size:
                return sample
            data.problem(sample.mask, f"mask is {mask.size[0]}x{mask.size[1]} but its image is {image.size[0]}x{image.size[1]}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        data.problem(sample.mask, f"unreadable mask: {exc}")
    return Sample(sample.path, sample.defect, None)
