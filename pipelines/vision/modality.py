"""The image modality as the pipeline sees it (see `pipelines.modalities`)."""

from pipelines.vision.datasets import list_classes
from pipelines.vision.evaluation import evaluate_bundle as evaluate
from pipelines.vision.preprocess import preprocess

GATE_METRIC = "image_auroc"

__all__ = ["GATE_METRIC", "evaluate", "list_classes", "preprocess"]
