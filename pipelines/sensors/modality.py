"""The sensor modality as the pipeline sees it (see `pipelines.modalities`)."""

from pipelines.sensors.datasets import list_assets as list_classes
from pipelines.sensors.evaluation import evaluate_bundle as evaluate
from pipelines.sensors.preprocess import preprocess
from pipelines.sensors.training import train_sensor_kind as train_kind

#: Kind settings that decide the split, so the preprocess step judges the data as training will use it.
SPLIT_SETTINGS = ("train_fraction", "train_rows", "calibration_fraction", "min_fit_rows")

#: Row-level AUROC of the evaluation period: threshold-free, as the image kinds' image AUROC.
GATE_METRIC = "auroc"

__all__ = ["GATE_METRIC", "SPLIT_SETTINGS", "evaluate", "list_classes", "preprocess", "train_kind"]
