"""The model bundle: SageMaker's `model.tar.gz`, the same container for every model kind.

Layout::

    manifest.json    schema version, kind, modality, classes (threshold, calibration, split per
                     class or asset), the kind's configuration and sections, metrics, lineage,
                     and `files`: the SHA-256 of every other file in the bundle
    ...              the kind's files (ONNX graphs, memory banks, arrays)

Loading checks the schema, the kind, the class names and every file's hash before the kind reads
anything, and names what is wrong; the kind then checks what only it understands.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from . import __version__
from .errors import BundleError

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
CLASS_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REQUIRED_KEYS = ("kind", "modality", "classes", "config", "files")
REQUIRED_CLASS_KEYS = ("threshold", "calibration")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_class_name(name: str) -> None:
    if not isinstance(name, str) or not CLASS_NAME_PATTERN.match(name):
        raise BundleError(f"class name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")


# ----------------------------------------------------------------------------------- writing


def write_bundle(output: str | Path, manifest: dict, files: dict[str, str | Path | bytes]) -> dict:
    """Write a bundle and return its manifest.

    `manifest` holds everything but the schema fields and `files`; `files` maps each path inside
    the bundle to a file to copy or the bytes to write. `output` ending in `.tar.gz` gets the
    archive; any other path is a directory that receives the files, as SageMaker training expects
    in `/opt/ml/model` (it packs them itself).
    """
    output = Path(output)
    if output.name.endswith(".tar.gz"):
        with tempfile.TemporaryDirectory() as staging:
            written = _write_directory(Path(staging), manifest, files)
            pack_bundle(Path(staging), output)
        return written
    return _write_directory(output, manifest, files)


def _write_directory(directory: Path, manifest: dict, files: dict) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for relative, source in sorted(files.items()):
        _check_member_path(relative)
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
        hashes[relative] = file_sha256(target)
    complete = {"schema_version": SCHEMA_VERSION, "ivadas_version": __version__, **manifest, "files": hashes}
    validate_manifest(complete)
    (directory / MANIFEST).write_text(json.dumps(complete, indent=2, sort_keys=True))
    return complete


def _check_member_path(relative: str) -> None:
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts or relative == MANIFEST:
        raise BundleError(f"{relative!r} cannot be a file of a bundle")


def pack_bundle(directory: Path, output: Path) -> Path:
    """`model.tar.gz` of a bundle directory, files at the archive root (as SageMaker packs)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    # Level 0: a bundle is float32 weights and embeddings, which deflate shrinks by 7 % at most, at
    # 40 times the time of storing them (a 100 MB backbone: 5.6 s against 0.14 s); still gzip, as SageMaker wants.
    with tarfile.open(partial, "w:gz", compresslevel=0) as archive:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                archive.add(path, arcname=str(path.relative_to(directory)))
    partial.replace(output)
    return output


# ----------------------------------------------------------------------------------- reading


def _first_line(exc: Exception) -> str:
    """tarfile's "r:*" lists every compression it tried, a line each: the first says what went wrong."""
    return (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")


def extract_bundle(archive: str | Path, target: str | Path) -> Path:
    """Unpack `model.tar.gz` safely (no absolute paths, links or `..`)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} is not a readable model.tar.gz: {_first_line(exc)}") from None
    return target


def open_bundle(location: str | Path, workdir: str | Path | None = None):
    """(root folder, validated manifest, scratch directory or None) of a bundle whose files all check out.

    A `model.tar.gz` is unpacked into `workdir`, or into a temporary directory that is removed
    when the returned scratch object is garbage-collected (keep it as long as the files are used).
    """
    location = Path(location)
    if not location.exists():
        raise BundleError(f"no model bundle at {location}")
    scratch = None
    if location.is_file():
        if workdir is None:
            scratch = tempfile.TemporaryDirectory(prefix="ivadas-bundle-")
            workdir = scratch.name
        root = extract_bundle(location, workdir)
    else:
        root = location
    manifest = read_manifest(root)
    check_files(root, manifest)
    return root, manifest, scratch


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise BundleError(f"the bundle has no {MANIFEST}")
    return parse_manifest(path.read_bytes())


def parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{MANIFEST} is not valid JSON: {exc}") from None
    manifest = _upgraded(manifest)
    validate_manifest(manifest)
    return manifest


def _upgraded(manifest) -> dict:
    """Schema 1 bundles (PatchCore and SoftPatch before the kinds were generic) read as schema 2."""
    if not isinstance(manifest, dict) or manifest.get("schema_version") != 1:
        return manifest
    try:
        files = {"backbone.onnx": manifest["backbone"]["sha256"]}
        files.update({entry["memory_bank"]: entry["sha256"] for entry in manifest["classes"].values()})
    except (KeyError, TypeError, AttributeError):
        return manifest  # validation names what is missing
    return {**manifest, "schema_version": SCHEMA_VERSION, "modality": "image", "files": files}


def validate_manifest(manifest: dict) -> None:
    from .kinds import KINDS

    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST} must be a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"bundle schema version {version!r} is not supported: this IVADAS ({__version__}) reads schema "
            f"version {SCHEMA_VERSION}; retrain the model or use a matching IVADAS release"
        )
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{MANIFEST} lacks {missing}")
    kind = manifest["kind"]
    if kind not in KINDS:
        raise BundleError(f"unknown model kind {kind!r}; this IVADAS serves {list(KINDS)}")
    if manifest["modality"] != KINDS[kind].modality:
        raise BundleError(f"manifest says modality {manifest['modality']!r}, but the {kind} kind's modality is {KINDS[kind].modality!r}")
    classes = manifest["classes"]
    if not isinstance(classes, dict) or not classes:
        raise BundleError("the bundle has no classes")
    for name, entry in classes.items():
        check_class_name(name)
        absent = [key for key in REQUIRED_CLASS_KEYS if not isinstance(entry, dict) or key not in entry]
        if absent:
            raise BundleError(f"class {name!r} lacks {absent} in {MANIFEST}")
    if not isinstance(manifest["files"], dict):
        raise BundleError(f"{MANIFEST}: files must map each bundle file to its SHA-256")


def check_files(root: Path, manifest: dict) -> None:
    """Every file the manifest lists is there and unchanged since training."""
    for relative, expected in sorted(manifest["files"].items()):
        _check_member_path(relative)
        path = Path(root) / relative
        if not path.is_file():
            raise BundleError(f"the bundle lacks {relative}, which its manifest lists")
        if file_sha256(path) != expected:
            raise BundleError(f"{relative} does not match its hash in {MANIFEST}: the file changed after training")


def bundle_file(root: Path, manifest: dict, relative: str) -> Path:
    """A file a kind reads from a bundle: only files the manifest lists (and whose hash was checked)."""
    if relative not in manifest["files"]:
        raise BundleError(f"{relative} is not among the bundle's listed files; it cannot be trusted")
    return Path(root) / relative


def manifest_of(archive: str | Path) -> dict:
    """Read and validate only the manifest of a `model.tar.gz` (no extraction of the rest)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile(MANIFEST)
            data = member.read() if member else None
    except (tarfile.TarError, OSError, KeyError) as exc:
        raise BundleError(f"{archive} has no readable {MANIFEST}: {_first_line(exc)}") from None
    if data is None:
        raise BundleError(f"{archive} has no {MANIFEST}")
    return parse_manifest(data)
