"""Where SageMaker puts things in a container, with the environment overrides the local runner uses."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

PROCESSING = Path("/opt/ml/processing")
ML_ROOT = Path("/opt/ml")


def channel(name: str) -> Path:
    """A training input channel: `SM_CHANNEL_<NAME>` or `/opt/ml/input/data/<name>`."""
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", ML_ROOT / "input" / "data" / name))


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", ML_ROOT / "model"))


def output_data_dir() -> Path:
    return Path(os.environ.get("SM_OUTPUT_DATA_DIR", ML_ROOT / "output" / "data"))


def failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_DIR", ML_ROOT / "output")) / "failure"


def hyperparameters() -> dict[str, str]:
    """Hyperparameters as SageMaker passes them: every value a string."""
    if "SM_HPS" in os.environ:
        values = json.loads(os.environ["SM_HPS"])
    else:
        path = Path(os.environ.get("SM_INPUT_CONFIG_DIR", ML_ROOT / "input" / "config")) / "hyperparameters.json"
        values = json.loads(path.read_text()) if path.is_file() else {}
    return {key: str(value) for key, value in values.items()}


def run_step(main, argv=None) -> int:
    """Run a step; a failure is one clear line on stderr, in SageMaker's failure file, and exit 1."""
    from inference.errors import IvadasError
    from pipelines.vision.backbones.export import BackboneUnavailable

    try:
        main(argv)
        return 0
    except (IvadasError, BackboneUnavailable, ValueError, FileNotFoundError, StepFailed) as exc:
        message = getattr(exc, "message", None) or str(exc)
    except Exception:  # an unexpected failure still leaves a reason behind for the run record
        traceback.print_exc()
        message = "unexpected error: " + traceback.format_exc(limit=1).strip().splitlines()[-1]
    print(f"error: {message}", file=sys.stderr)
    try:
        failure_file().parent.mkdir(parents=True, exist_ok=True)
        failure_file().write_text(message)
    except OSError:
        pass
    return 1


class StepFailed(Exception):
    """A step's own check failed (e.g. the data-quality thresholds)."""
