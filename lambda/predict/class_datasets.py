"""Datasets per class in the data bucket (AWS) or the local store, in the layout training reads.

    datasets/classes/<class>/train/good/<sha256>.<ext>            good images for training
    datasets/classes/<class>/test/good/<sha256>.<ext>             good images for evaluation
    datasets/classes/<class>/test/<defect>/<sha256>.<ext>         anomalous images (evaluation)
    datasets/classes/<class>/ground_truth/<defect>/<sha256>_mask.png
    datasets/classes/<class>/verified/<sha256>.json               an image a person verified (feedback)
    datasets/snapshots/<id>/manifest.json, <id>/<class>/...       immutable copies a training reads
    datasets/uploads/<id>/...                                     uploads before they are checked

An image is named by the SHA-256 of its bytes, so the same image is never stored twice in a class
and a snapshot's manifest lists content hashes. Uploads are checked in full (zip safety, image
headers, names) before the first byte is written to a class: a refused upload stores nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath

from api_core import ApiError
from image_header import CONTENT_TYPES, EXTENSIONS, NotAnImage, image_info

ROOT = "datasets"
CLASSES = f"{ROOT}/classes"
SNAPSHOTS = f"{ROOT}/snapshots"
UPLOADS = f"{ROOT}/uploads"
GOOD = "good"
#: The defect folder of anomalous images that came without a defect type (uploads, feedback).
ANOMALOUS = "anomalous"

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
#: Files a dataset zip may carry besides images and its YAML; they are skipped, not stored.
DOCUMENT_SUFFIXES = {".txt", ".md", ".json", ".csv", ".rst", ".pdf"}
YAML_SUFFIXES = {".yaml", ".yml"}
YAML_KEYS = ("names", "classes", "labels")


def _limit(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


MAX_IMAGE_FILE_BYTES = _limit("DATASET_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
MAX_ZIP_BYTES = _limit("DATASET_MAX_ZIP_BYTES", 200 * 1024 * 1024)  # held in memory with its images
MAX_ZIP_FILES = _limit("DATASET_MAX_ZIP_FILES", 20_000)
MAX_UNZIPPED_BYTES = _limit("DATASET_MAX_UNZIPPED_BYTES", 2 * 1024 * 1024 * 1024)
#: Images are compressed already; a member that deflates more than this is a bomb, not a photo.
MAX_RATIO = _limit("DATASET_MAX_ZIP_RATIO", 100)
#: Below this size a member's ratio is not judged (a tiny uniform mask compresses very well).
RATIO_FLOOR_BYTES = 1024 * 1024
MIN_GOOD_IMAGES = _limit("MIN_GOOD_IMAGES", 10)
PARALLEL_WRITES = _limit("DATASET_PARALLEL_WRITES", 16)


def check_name(value: str, what: str = "class name") -> str:
    if not isinstance(value, str) or not NAME.match(value) or ".." in value:
        raise ApiError(400, "bad_name", f"{what} {value!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
                                        "starting with a letter or digit, without '/' or '..'")
    return value


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked_image(data: bytes, name: str) -> tuple[str, int, int]:
    if len(data) > MAX_IMAGE_FILE_BYTES:
        raise ApiError(413, "payload_too_large", f"{name} is {len(data)} bytes; an image may have at most {MAX_IMAGE_FILE_BYTES}")
    if not data:
        raise ApiError(400, "empty_file", f"{name} is empty")
    try:
        return image_info(data)
    except NotAnImage as exc:
        raise ApiError(415, "not_an_image", f"{name}: {exc}") from None


@dataclass
class Entry:
    """One image of a class as listed: where it sits and what it is labelled."""

    id: str
    key: str
    split: str
    label: str  # good | anomalous
    defect: str
    mask_key: str | None = None
    verified: dict | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "split": self.split, "label": self.label, "defect": self.defect,
                "has_mask": self.mask_key is not None, "verified": self.verified is not None,
                "path": self.key.split("/", 3)[-1]}


@dataclass
class NewImage:
    """An image about to join a class: checked, named by its content."""

    data: bytes
    split: str
    defect: str
    source: str
    mask: bytes | None = None
    format: str = "png"
    size: tuple[int, int] = (0, 0)
    digest: str = field(init=False)

    def __post_init__(self):
        self.digest = sha256(self.data)

    def key(self, class_name: str) -> str:
        return f"{CLASSES}/{class_name}/{self.split}/{self.defect}/{self.digest}{EXTENSIONS[self.format]}"

    def mask_key(self, class_name: str) -> str:
        return f"{CLASSES}/{class_name}/ground_truth/{self.defect}/{self.digest}_mask.png"


def new_image(data: bytes, name: str, label: str, defect: str | None = None, split: str | None = None,
              mask: bytes | None = None, source: str = "upload") -> NewImage:
    """A checked image labelled good (training unless `split` says test) or anomalous (always test)."""
    if label not in (GOOD, ANOMALOUS):
        raise ApiError(400, "bad_request", f"label must be 'good' or 'anomalous', not {label!r}")
    kind, width, height = checked_image(data, name)
    if label == GOOD:
        if defect not in (None, "", GOOD):
            raise ApiError(400, "bad_request", "a good image has no defect type")
        if mask is not None:
            raise ApiError(400, "bad_request", "a good image has no mask; masks mark the defect of an anomalous image")
        split = split or "train"
        if split not in ("train", "test"):
            raise ApiError(400, "bad_request", f"split must be 'train' or 'test', not {split!r}")
        return NewImage(data, split, GOOD, source, None, kind, (width, height))
    defect = check_name(defect or ANOMALOUS, "defect type")
    if defect == GOOD:
        raise ApiError(400, "bad_request", "an anomalous image's defect type cannot be 'good'")
    if split not in (None, "", "test"):
        raise ApiError(400, "bad_request", "anomalous images are for evaluation only (split 'test'); training uses good images")
    if mask is not None:
        mask_kind, mask_width, mask_height = checked_image(mask, f"the mask of {name}")
        if mask_kind != "png":
            raise ApiError(415, "not_an_image", f"the mask of {name} must be a PNG, not {mask_kind}")
        if (mask_width, mask_height) != (width, height):
            raise ApiError(422, "mask_size", f"the mask of {name} is {mask_width}x{mask_height}; the image is {width}x{height}")
    return NewImage(data, "test", defect, source, mask, kind, (width, height))


class Datasets:
    """The datasets of every class in one object store (`object_store.FolderStore` or `S3Store`)."""

    def __init__(self, store):
        self.store = store

    # ------------------------------------------------------------------------------ reading

    def classes(self) -> list[str]:
        return self.store.folders(CLASSES)

    def entries(self, class_name: str) -> list[Entry]:
        prefix = f"{CLASSES}/{class_name}/"
        keys = self.store.list(prefix)
        masks = {k.rsplit("/", 1)[-1][: -len("_mask.png")]: k for k in keys if k.startswith(prefix + "ground_truth/")}
        verified = {k.rsplit("/", 1)[-1][: -len(".json")]: k for k in keys if k.startswith(prefix + "verified/")}
        entries = []
        for key in keys:
            parts = key[len(prefix):].split("/")
            if len(parts) != 3 or parts[0] not in ("train", "test"):
                continue
            digest = parts[2].rsplit(".", 1)[0]
            entries.append(Entry(digest, key, parts[0], GOOD if parts[1] == GOOD else ANOMALOUS, parts[1],
                                 masks.get(digest), {"key": verified[digest]} if digest in verified else None))
        return entries

    def summary(self, class_name: str, entries: list[Entry] | None = None) -> dict:
        entries = self.entries(class_name) if entries is None else entries
        trained_on = self.last_snapshot_ids(class_name)
        return {
            "class_name": class_name,
            "train_good": sum(e.split == "train" for e in entries),
            "test_good": sum(e.split == "test" and e.label == GOOD for e in entries),
            "test_anomalous": sum(e.label == ANOMALOUS for e in entries),
            "masks": sum(e.mask_key is not None for e in entries),
            "images": len(entries),
            "verified": sum(e.verified is not None for e in entries),
            # verified images no training has read yet: what the next training adds
            "verified_pending": sum(e.verified is not None and e.id not in trained_on for e in entries),
            "min_good_images": MIN_GOOD_IMAGES,
        }

    def find(self, class_name: str, image_id: str) -> Entry:
        if class_name not in self.classes():
            raise ApiError(404, "unknown_class", f"there is no dataset for class {class_name!r}")
        for entry in self.entries(class_name):
            if entry.id == image_id:
                return entry
        raise ApiError(404, "unknown_image", f"class {class_name!r} has no image {image_id!r}")

    def preview(self, class_name: str, image_id: str) -> dict:
        entry = self.find(class_name, image_id)
        data = self.store.get(entry.key)
        kind, width, height = image_info(data)
        preview = {**entry.to_dict(), "content_type": CONTENT_TYPES[kind], "width": width, "height": height}
        if len(data) > _limit("PREVIEW_MAX_BYTES", 4 * 1024 * 1024):
            return {**preview, "image_base64": None, "reason": "the image is too large to preview through the API"}
        import base64

        preview["image_base64"] = base64.b64encode(data).decode()
        if entry.mask_key:
            preview["mask_base64"] = base64.b64encode(self.store.get(entry.mask_key)).decode()
        return preview

    # ------------------------------------------------------------------------------ writing

    def add(self, class_name: str, images: list[NewImage], verified: dict | None = None) -> dict:
        """Store checked images (all checks are done before this); returns what was added."""
        check_name(class_name)
        existing = {e.id for e in self.entries(class_name)}
        writes, added, duplicates = [], [], 0
        for image in images:
            if image.digest in existing:
                duplicates += 1
                continue
            if image.mask is not None:
                writes.append((image.mask_key(class_name), image.mask))
            writes.append((image.key(class_name), image.data))
            if verified is not None:
                record = {**verified, "image": image.digest, "split": image.split, "defect": image.defect, "at": now()}
                writes.append((f"{CLASSES}/{class_name}/verified/{image.digest}.json", json.dumps(record).encode()))
            existing.add(image.digest)
            added.append(image.digest)
        self._write_all(writes)
        return {"class_name": class_name, "added": len(added), "duplicates": duplicates, "ids": added}

    def _write_all(self, writes: list[tuple[str, bytes]]) -> None:
        """Every object or none: a failed write removes the ones already written. Writes go in parallel
        (S3 takes thousands of small objects in seconds that way, inside API Gateway's 29 s)."""
        done, failure = [], None
        with ThreadPoolExecutor(max_workers=PARALLEL_WRITES) as pool:
            futures = {pool.submit(self.store.put, key, data): key for key, data in writes}
            for future in as_completed(futures):
                try:
                    future.result()
                    done.append(futures[future])
                except Exception as exc:  # noqa: BLE001 - re-raised below, after the cleanup
                    failure = failure or exc
        if failure is not None:
            for key in done:
                self.store.delete(key)
            raise failure

    def remove(self, class_name: str, image_id: str) -> None:
        entry = self.find(class_name, image_id)
        for key in (entry.mask_key, (entry.verified or {}).get("key"), entry.key):
            if key:
                self.store.delete(key)

    # ---------------------------------------------------------------------------- snapshots

    def snapshot(self, classes: list[str]) -> dict:
        """An immutable copy of the classes' images as they are now; the same content gives the same id."""
        files = {}
        for name in classes:
            files[name] = sorted(({"path": e.key[len(f"{CLASSES}/{name}/"):], "sha256": e.id, "source": e.key}
                                  for e in self.entries(name)), key=lambda f: f["path"])
            masks = [e for e in self.entries(name) if e.mask_key]
            files[name] += [{"path": e.mask_key[len(f"{CLASSES}/{name}/"):], "mask_of": e.id, "source": e.mask_key} for e in masks]
        content = json.dumps({n: [(f["path"], f.get("sha256") or f["mask_of"]) for f in fs] for n, fs in files.items()},
                             sort_keys=True)
        snapshot_id = hashlib.sha256(content.encode()).hexdigest()[:20]
        base = f"{SNAPSHOTS}/{snapshot_id}"
        manifest_key = f"{base}/manifest.json"
        if not self.store.exists(manifest_key):
            copies = [(item["source"], f"{base}/{name}/{item['path']}") for name, entries in files.items() for item in entries]
            with ThreadPoolExecutor(max_workers=PARALLEL_WRITES) as pool:
                list(pool.map(lambda pair: self.store.copy(*pair), copies))  # server-side copies on S3
            manifest = {"snapshot": snapshot_id, "created_at": now(), "classes": {
                name: {"files": [{k: v for k, v in f.items() if k != "source"} for f in fs],
                       "counts": self.summary(name)} for name, fs in files.items()}}
            self.store.put(manifest_key, json.dumps(manifest, indent=1).encode())  # last: its presence means complete
        return {"snapshot": snapshot_id, "key": base, "manifest": manifest_key}

    def manifest(self, snapshot_id: str) -> dict:
        return json.loads(self.store.get(f"{SNAPSHOTS}/{snapshot_id}/manifest.json"))

    def mark_trained(self, class_name: str, snapshot_id: str) -> None:
        """Remember the snapshot a training of the class read: its verified images are no longer pending."""
        self.store.put(f"{CLASSES}/{class_name}/.trained.json", json.dumps({"snapshot": snapshot_id, "at": now()}).encode())

    def last_snapshot_ids(self, class_name: str) -> set[str]:
        key = f"{CLASSES}/{class_name}/.trained.json"
        if not self.store.exists(key):
            return set()
        snapshot = json.loads(self.store.get(key))["snapshot"]
        try:
            files = self.manifest(snapshot)["classes"][class_name]["files"]
        except (KeyError, FileNotFoundError):
            return set()
        return {f["sha256"] for f in files if "sha256" in f}


# ---------------------------------------------------------------------------------- zips


@dataclass
class ZipPlan:
    """What a checked zip adds: images per class."""

    classes: dict[str, list[NewImage]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or path.is_absolute():
        raise ApiError(400, "unsafe_zip", f"the zip holds an absolute path ({info.filename!r}); nothing was stored")
    if ".." in path.parts:
        raise ApiError(400, "unsafe_zip", f"the zip holds a path that leaves its folder ({info.filename!r}); nothing was stored")
    return path


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, never more than `limit` (a header may lie about the size it expands to)."""
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "zip_bomb", f"{info.filename} expands beyond {limit} bytes; nothing was stored")
    return data


def open_zip(data: bytes) -> zipfile.ZipFile:
    if len(data) > MAX_ZIP_BYTES:
        raise ApiError(413, "payload_too_large", f"the zip is {len(data)} bytes; the limit is {MAX_ZIP_BYTES}")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise ApiError(400, "bad_zip", f"the upload is not a readable zip file ({exc}); nothing was stored") from None


def _members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Files of the zip, checked for the shapes of an attack before any is read."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_FILES:
        raise ApiError(413, "zip_too_many_files", f"the zip holds {len(infos)} entries; the limit is {MAX_ZIP_FILES}")
    members, declared = [], 0
    for info in infos:
        path = _member_path(info)
        if _is_symlink(info):
            raise ApiError(400, "unsafe_zip", f"the zip holds a symbolic link ({info.filename!r}); nothing was stored")
        if info.is_dir() or path.parts[0] == "__MACOSX" or any(p.startswith(".") for p in path.parts):
            continue
        declared += info.file_size
        if declared > MAX_UNZIPPED_BYTES:
            raise ApiError(413, "zip_bomb", f"the zip expands to more than {MAX_UNZIPPED_BYTES} bytes; nothing was stored")
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ApiError(413, "zip_bomb", f"{info.filename} expands {info.file_size // max(info.compress_size, 1)}-fold "
                                            f"(the limit is {MAX_RATIO}); nothing was stored")
        members.append((info, path))
    if not members:
        raise ApiError(400, "empty_zip", "the zip holds no files; nothing was stored")
    return members


def _yaml_names(archive, members) -> list[str] | None:
    """Class names from the shallowest YAML with a `names`, `classes` or `labels` list (or none)."""
    yamls = sorted((m for m in members if m[1].suffix.lower() in YAML_SUFFIXES), key=lambda m: len(m[1].parts))
    if not yamls:
        return None
    info, path = yamls[0]
    try:
        import yaml
    except ImportError:  # the Lambda asset ships without PyYAML unless it is bundled (README, From the browser)
        raise ApiError(422, "yaml_unavailable", f"this deployment cannot read {path}; name the classes by their folders "
                                                "(MVTec layout) or give class_name, without the YAML file") from None
    try:
        document = yaml.safe_load(_read_member(archive, info, 1024 * 1024))
    except yaml.YAMLError as exc:
        raise ApiError(400, "bad_yaml", f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict) or not any(key in document for key in YAML_KEYS):
        raise ApiError(400, "bad_yaml", f"{path} must hold a list under one of {', '.join(YAML_KEYS)}")
    names = next(document[key] for key in YAML_KEYS if key in document)
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):  # YOLO style {0: name, 1: name}
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ApiError(400, "bad_yaml", f"{path}: the class names must be a non-empty list of strings, got {names!r}")
    for name in names:
        check_name(name)
    return names


def _mvtec_place(parts: tuple[str, ...]) -> tuple[int, str] | None:
    """Index and kind of the MVTec folder in a path (`train`, `test` or `ground_truth`), if any."""
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in ("train", "test", "ground_truth") and len(parts) - index == 3:
            return index, parts[index]
    return None


def plan_zip(data: bytes, class_name: str | None = None) -> ZipPlan:
    """Everything a zip adds, checked in full; raises `ApiError` (nothing stored) on the first problem.

    Layouts: MVTec AD (`<class>/train/good`, `<class>/test/<defect>`, `<class>/ground_truth/<defect>`,
    one class at the top level when `class_name` is given), or folders of good images: one class
    (`class_name`) or one folder per class named in a YAML `names`/`classes`/`labels` list.
    """
    if class_name is not None:
        check_name(class_name)
    archive = open_zip(data)
    members = _members(archive)
    names = _yaml_names(archive, members)
    images, plan = [], ZipPlan()
    for info, path in members:
        suffix = path.suffix.lower()
        if suffix in YAML_SUFFIXES or suffix in DOCUMENT_SUFFIXES:
            plan.skipped.append(str(path))
        elif suffix in IMAGE_SUFFIXES:
            images.append((info, path))
        else:
            raise ApiError(415, "not_an_image", f"{path} is neither an image nor a dataset description; nothing was stored")
    if not images:
        raise ApiError(400, "no_images", "the zip holds no images (PNG, JPEG, BMP, TIFF or WebP); nothing was stored")
    mvtec = any(_mvtec_place(path.parts) for _, path in images)
    placed = _place_mvtec(images, class_name) if mvtec else _place_flat(images, class_name, names)
    if names is not None:
        missing = [n for n in names if n not in {c for c, *_ in placed}]
        if missing:
            raise ApiError(400, "bad_yaml", f"the YAML names {', '.join(missing)} but the zip has no images for them")
        placed = [p for p in placed if p[0] in names]
    _check_and_collect(archive, placed, plan)
    return plan


def _place_mvtec(images, class_name):
    placed = []  # (class, role, defect, path, info)
    for info, path in images:
        where = _mvtec_place(path.parts)
        if where is None:
            raise ApiError(400, "bad_layout", f"{path} is outside the MVTec layout (<class>/train/good, <class>/test/<defect>, "
                                              "<class>/ground_truth/<defect>); nothing was stored")
        index, role = where
        owner = path.parts[index - 1] if index > 0 else class_name
        if owner is None:
            raise ApiError(400, "bad_request", "the zip holds one class at its top level; name it (class_name)")
        label = path.parts[index + 1]
        if role == "train" and label != GOOD:
            raise ApiError(400, "bad_layout", f"{path}: training images must be good (train/good)")
        placed.append((check_name(owner), role, check_name(label, "defect type"), path, info))
    return placed


def _place_flat(images, class_name, names):
    placed = []
    for info, path in images:
        if names is not None and len(path.parts) > 1 and path.parts[-2] in names:
            owner = path.parts[-2]
        elif class_name is not None:
            owner = class_name
        else:
            raise ApiError(400, "bad_request", f"{path}: say which class these images are (class_name), or list the classes "
                                               "in a YAML names list with a folder per class")
        placed.append((owner, "train", GOOD, path, info))
    return placed


def _check_and_collect(archive, placed, plan: ZipPlan) -> None:
    masks = {(c, d, p.stem[: -len("_mask")] if p.stem.endswith("_mask") else p.stem): (p, i)
             for c, role, d, p, i in placed if role == "ground_truth"}
    for owner, role, defect, path, info in placed:
        if role == "ground_truth":
            continue
        data = _read_member(archive, info, MAX_IMAGE_FILE_BYTES)
        mask = None
        if role == "test" and defect != GOOD and (owner, defect, path.stem) in masks:
            mask_path, mask_info = masks[(owner, defect, path.stem)]
            mask = _read_member(archive, mask_info, MAX_IMAGE_FILE_BYTES)
        label = GOOD if defect == GOOD else ANOMALOUS
        plan.classes.setdefault(owner, []).append(
            new_image(data, str(path), label, None if label == GOOD else defect, role, mask, source="zip"))
