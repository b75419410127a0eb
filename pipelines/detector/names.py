"""A detector's class names: from an Ultralytics `data.yaml`, a names file, or the ONNX graph's own metadata.

Ultralytics writes `names` as a list or as a mapping from class id to name (`{0: person, 1: car}`),
in `data.yaml` and in the exported ONNX graph's metadata; Darknet-style `.names` / `.txt` files hold
one name per line. Names must be unique (anomalous classes are chosen by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

from inference.kinds.detector.yolo import DetectorError

YAML_SUFFIXES = (".yaml", ".yml")


def read_names(path: str | Path) -> list[str]:
    """Class names, in class-id order, from a `data.yaml` or a one-name-per-line file."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"no names file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectorError(f"the names file {path} cannot be read: {exc}") from None
    if path.suffix.lower() in YAML_SUFFIXES:
        return names_from_yaml(text, str(path))
    return check_names([line.strip() for line in text.splitlines() if line.strip()], str(path))


def names_from_yaml(text: str, source: str) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DetectorError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "names" not in data:
        raise DetectorError(f"{source} has no 'names' entry (a list of class names, or class id: name)")
    names = as_name_list(data["names"], source)
    count = data.get("nc")
    if count is not None and count != len(names):
        raise DetectorError(f"{source} says nc: {count} but names {len(names)} classes")
    return names


def as_name_list(names, source: str) -> list[str]:
    """A list of names from a list, or from a mapping of class ids 0 … n − 1 to names."""
    if isinstance(names, dict):
        try:
            by_id = {int(key): value for key, value in names.items()}
        except (TypeError, ValueError):
            raise DetectorError(f"{source}: names must map class ids (0, 1, …) to names") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise DetectorError(f"{source}: names must have the class ids 0 to {len(by_id) - 1} without gaps, "
                                f"got {sorted(by_id)}")
        names = [by_id[i] for i in range(len(by_id))]
    if not isinstance(names, (list, tuple)):
        raise DetectorError(f"{source}: names must be a list of class names or a mapping of class id to name")
    return check_names([str(n).strip() if isinstance(n, (str, int, float)) else n for n in names], source)


def check_names(names: list, source: str) -> list[str]:
    if not names:
        raise DetectorError(f"{source} names no classes")
    if not all(isinstance(n, str) and n for n in names):
        raise DetectorError(f"{source}: every class name must be non-empty text")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DetectorError(f"{source} names {duplicates} more than once; each class needs its own name")
    return list(names)


def names_from_metadata(session) -> list[str] | None:
    """The names an Ultralytics export stores in the graph's metadata (`names`), or None."""
    try:
        text = session.get_modelmeta().custom_metadata_map.get("names")
    except Exception:  # a graph without metadata
        return None
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise DetectorError(f"the graph's metadata 'names' cannot be read: {text[:80]!r}") from None
    return as_name_list(value, "the graph's metadata")


def resolve_anomalous(chosen: list[str], names: list[str]) -> list[str]:
    """The anomalous classes by name (or class id), in class-id order; unknown ones are an error."""
    if not chosen:
        raise DetectorError(f"choose the anomalous classes (--anomalous-classes), among {names}")
    resolved = []
    for item in chosen:
        if item in names:
            resolved.append(item)
        elif item.isdigit() and int(item) < len(names):
            resolved.append(names[int(item)])
        else:
            raise DetectorError(f"{item!r} is not one of the detector's classes {names}")
    return [name for name in names if name in set(resolved)]
