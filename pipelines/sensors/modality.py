"""The sensor modality as the pipeline sees it (see `pipelines.modalities`)."""

from pipelines.sensors.datasets import list_assets as list_classes
from pipelines.sensors.evaluation import evaluate_bundle as evaluate
from pipelines.sensors.preprocess import preprocess

#: Row-level AUROC of the evaluation period: threshold-free, as the image kinds' image AUROC.
GATE_METRIC = "auroc"

__all__ = ["GATE_METRIC", "evaluate", "list_classes", "preprocess"]
