"""A bundle loaded for serving, whatever its kind: the interface the endpoint server talks to.

The server parses HTTP and hands each request instance (a JSON object) to `ServedModel.predict`;
the modality's base class (`inference.vision.image_model.ImageModel`,
`inference.sensors.sensor_model.SensorModel`) turns it into an answer, and the kind supplies only
its scorers. Evaluation scores test data through the same objects, so reported metrics are those
of serving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from .errors import BadRequest, IvadasError, UnknownClass

#: The request field that carries the input of each modality.
INPUT_FIELDS = {"image": "image_base64", "sensors": "window"}


class WrongModality(IvadasError):
    """An image sent to a sensor model, or a window to an image model."""

    status, code = 415, "unsupported_media_type"


class ServedModel(ABC):
    modality: str = ""

    def __init__(self, manifest: dict, root: Path | None = None, version: str | None = None):
        self.manifest = manifest
        self.root = root
        self.version = version or str(manifest.get("lineage", {}).get("version", "unversioned"))

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def classes(self) -> list[str]:
        return sorted(self.manifest["classes"])

    @property
    def outputs(self) -> tuple[str, ...]:
        from .kinds import kind_info

        return kind_info(self.kind).outputs

    def check_class(self, class_name) -> str:
        if not isinstance(class_name, str) or not class_name.strip():
            raise BadRequest("class_name is required")
        if class_name not in self.manifest["classes"]:
            noun = "asset" if self.modality == "sensors" else "class"
            raise UnknownClass(f"unknown {noun} {class_name!r}; this {self.kind} model serves {self.classes}")
        return class_name

    def check_outputs(self, outputs) -> tuple[str, ...]:
        """The requested outputs (default: all the kind offers), refusing any it does not offer."""
        if outputs is None:
            return self.outputs
        if isinstance(outputs, str):
            outputs = [o for o in outputs.replace(";", ",").split(",") if o]
        if not isinstance(outputs, (list, tuple)) or not all(isinstance(o, str) for o in outputs):
            raise BadRequest(f"outputs must be a list drawn from {list(self.outputs)}")
        unknown = sorted(set(outputs) - set(self.outputs))
        if unknown:
            raise BadRequest(f"unknown outputs {unknown}; the {self.kind} model offers {list(self.outputs)}")
        return tuple(outputs)

    def check_modality(self, instance: dict) -> None:
        mine = INPUT_FIELDS[self.modality]
        for modality, field in INPUT_FIELDS.items():
            if modality != self.modality and field in instance and mine not in instance:
                raise WrongModality(f"the {self.kind} model inspects {_noun(self.modality)}: send {mine}, not {field}")

    def predict(self, instance) -> dict:
        """Answer one JSON request instance: `class_name`, the modality's input, `threshold`, `outputs`."""
        if not isinstance(instance, dict):
            raise BadRequest("each request must be a JSON object")
        self.check_modality(instance)
        class_name = self.check_class(instance.get("class_name"))
        return self.predict_instance(class_name, instance)

    @abstractmethod
    def predict_instance(self, class_name: str, instance: dict) -> dict:
        """The modality's answer for a request whose class and modality were checked."""

    def predict_body(self, body: bytes, content_type: str, attributes: dict) -> dict:
        """A non-JSON body (a raw image, a CSV window) with SageMaker custom attributes."""
        raise WrongModality(f"the {self.kind} model takes application/json requests, not {content_type}")

    def class_from_attributes(self, attributes: dict) -> str:
        """The class of a non-JSON request, which travels in SageMaker's custom attributes header."""
        if not attributes.get("class_name"):
            raise BadRequest("send the class as X-Amzn-SageMaker-Custom-Attributes: class_name=<class>")
        return self.check_class(attributes["class_name"])

    def describe(self) -> dict:
        manifest = self.manifest
        return {
            "kind": self.kind,
            "modality": self.modality,
            "version": self.version,
            "outputs": list(self.outputs),
            "classes": {name: {"threshold": 0.5, "raw_threshold": entry["threshold"],
                               "calibration": entry["calibration"]["method"], **self.describe_class(name)}
                        for name, entry in manifest["classes"].items()},
            "metrics": manifest.get("metrics", {}),
            "lineage": manifest.get("lineage", {}),
            **self.describe_model(),
        }

    def describe_class(self, class_name: str) -> dict:
        """What a client needs to know about one class beyond its threshold (e.g. the sensors)."""
        return {}

    def describe_model(self) -> dict:
        """What a client needs to know about the whole model (e.g. the backbone of an image kind)."""
        return {}


def _noun(modality: str) -> str:
    return {"image": "images", "sensors": "sensor windows"}[modality]


def load_model(location: str | Path, threads: int | None = None, workdir: str | Path | None = None) -> ServedModel:
    """Load a bundle (`model.tar.gz` or an unpacked folder) for serving, checking everything first."""
    from .bundle import open_bundle
    from .kinds import kind_info

    root, manifest, scratch = open_bundle(location, workdir)
    model = kind_info(manifest["kind"]).load(root, manifest, threads)
    model._scratch = scratch  # an unpacked archive lives as long as the model
    return model


def check_threshold(threshold) -> float:
    """A request's override of the decision threshold on the normalised score (default 0.5)."""
    if threshold is None:
        return 0.5
    # compared before float(): an integer of 400 digits is refused, not an OverflowError
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (0.0 <= threshold <= 1.0):
        text = repr(threshold)
        raise BadRequest(f"threshold must be a number in [0, 1], got {text if len(text) <= 24 else text[:12] + '...'}")
    return float(threshold)


def parse_threshold(value):
    """A threshold from JSON (a number) or a header (text); range-checked by `check_threshold`."""
    if value is None or isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"threshold must be a number in [0, 1], got {value!r}") from None
