"""Synthetic demo dataset: procedural textures with realistic defects and ground-truth masks.

Deterministic by seed. Written in MVTec AD layout so that everything downstream treats it like
real data. Used by the one-command demo and by the tests (which must not need any download).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("tiles", "fabric", "wood")
DEFECTS = ("scratch", "hole", "stain", "missing")


#: Parts on a line are photographed in a fixture: normal images are aligned to within a few pixels.
ALIGNMENT_JITTER = 0.01


def texture(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A normal sample of `class_name`: float RGB in [0, 1], shape `[size, size, 3]`."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    x, y = x + rng.uniform(-ALIGNMENT_JITTER, ALIGNMENT_JITTER), y + rng.uniform(-ALIGNMENT_JITTER, ALIGNMENT_JITTER)
    jitter = rng.uniform(-0.03, 0.03)
    if class_name == "tiles":
        cells = 4
        phase = (0.3, 0.6)
        u, v = (x + phase[0]) * cells, (y + phase[1]) * cells
        grout = (np.minimum(u % 1, 1 - u % 1) < 0.06) | (np.minimum(v % 1, 1 - v % 1) < 0.06)
        shade = 0.02 * np.sin(np.floor(u) * 1.7 + np.floor(v) * 2.3)
        base = np.where(grout, 0.35, 0.78 + shade)[..., None] * np.array([1.0, 0.93, 0.85])
    elif class_name == "fabric":
        freq = 24
        shift = (0.0, 0.5)
        weave = 0.5 + 0.25 * np.sin(2 * np.pi * freq * x + shift[0]) * np.sin(2 * np.pi * freq * y + shift[1])
        base = weave[..., None] * np.array([0.55, 0.65, 1.0]) + 0.15
    elif class_name == "wood":
        warp = 0.04 * np.sin(2 * np.pi * 3 * y + rng.normal(0, 0.2))
        rings = 0.5 + 0.5 * np.sin(2 * np.pi * 9 * (x + warp))
        base = (0.45 + 0.25 * rings)[..., None] * np.array([0.85, 0.6, 0.35])
    else:
        raise ValueError(f"unknown synthetic class {class_name!r}; choose from {CLASSES}")
    noise = rng.normal(0, 0.025, (size, size, 1))
    return np.clip(base + jitter + noise, 0, 1)


def add_defect(image: np.ndarray, defect: str, rng: np.random.Generator, sites=None) -> tuple[np.ndarray, np.ndarray]:
    """The image with one defect painted in, and its binary mask (uint8 0/255).

    `sites` (fractions `(x, y)` of the image) makes defects recurring marks, as a worn tool leaves
    the same mark at the same spot of every part it touches: the site is drawn from `rng`, the
    mark's shape is fixed per site and defect. Otherwise place and shape are random.
    """
    size = image.shape[0]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if sites:
        site = int(rng.integers(len(sites)))
        cx, cy = np.asarray(sites[site]) * size
        rng = np.random.default_rng([site, DEFECTS.index(defect)])
    else:
        cx, cy = rng.uniform(0.25, 0.75, 2) * size
    if defect == "scratch":
        points = [(cx, cy)]
        angle = rng.uniform(0, np.pi)
        for _ in range(4):
            angle += rng.normal(0, 0.25)
            step = size * rng.uniform(0.06, 0.1)
            points.append((points[-1][0] + step * np.cos(angle), points[-1][1] + step * np.sin(angle)))
        draw.line(points, fill=255, width=max(2, size // 64))
        colour, opacity = np.array([0.08, 0.08, 0.08]), 0.9
    elif defect == "hole":
        radius = size * rng.uniform(0.04, 0.07)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
        colour, opacity = np.array([0.02, 0.02, 0.02]), 1.0
    elif defect == "stain":
        radius = size * rng.uniform(0.07, 0.12)
        draw.ellipse([cx - radius, cy - radius * 0.7, cx + radius, cy + radius * 0.7], fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(radius * 0.25))
        colour, opacity = np.array([0.45, 0.3, 0.05]), 0.75
    elif defect == "missing":
        corners = [(cx + size * rng.uniform(-0.1, 0.1), cy + size * rng.uniform(-0.1, 0.1)) for _ in range(5)]
        draw.polygon(corners, fill=255)
        colour, opacity = np.array([0.97, 0.97, 0.97]), 1.0
    else:
        raise ValueError(f"unknown defect {defect!r}; choose from {DEFECTS}")
    alpha = np.asarray(mask, dtype=np.float64)[..., None] / 255.0 * opacity
    painted = image * (1 - alpha) + colour * alpha
    binary = (np.asarray(mask) > 96).astype(np.uint8) * 255
    return np.clip(painted, 0, 1), binary


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((array * 255).round().astype(np.uint8)).save(path)


def generate(
    root: str | Path,
    classes=CLASSES,
    size: int = 256,
    train_count: int = 40,
    test_good_count: int = 12,
    test_defect_count: int = 6,
    contamination: float = 0.0,
    seed: int = 0,
    contamination_defects=DEFECTS,
    defect_sites=None,
) -> Path:
    """Write the dataset under `root`. `contamination` puts that fraction of defective images
    (unlabelled, with defects drawn in turn from `contamination_defects`) into `train/good`: the
    situation SoftPatch is built for. `defect_sites` pins every defect to recurring places."""
    root = Path(root)
    for class_index, name in enumerate(classes):
        rng = np.random.default_rng([seed, class_index])
        class_dir = root / name
        for i in range(train_count):
            image = texture(name, size, rng)
            if rng.uniform() < contamination:
                image, _ = add_defect(image, contamination_defects[i % len(contamination_defects)], rng, defect_sites)
            _save(image, class_dir / "train" / "good" / f"{i:03d}.png")
        for i in range(test_good_count):
            _save(texture(name, size, rng), class_dir / "test" / "good" / f"{i:03d}.png")
        for defect in DEFECTS:
            for i in range(test_defect_count):
                image, mask = add_defect(texture(name, size, rng), defect, rng, defect_sites)
                _save(image, class_dir / "test" / defect / f"{i:03d}.png")
                mask_path = class_dir / "ground_truth" / defect / f"{i:03d}_mask.png"
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(mask_path)
    return root
