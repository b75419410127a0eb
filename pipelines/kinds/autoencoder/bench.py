"""The autoencoder's rows of `ivadas bench --suite quality` (variants whose `kind` is `autoencoder`).

The quality suite draws the training images per seed and compares every row with PatchCore seed by
seed; this trains the autoencoder on the same draw and evaluates it through the serving path on the
same splits. The suite's PatchCore settings (backbone, coreset) do not apply; its `seed` does, and
the variant's `level` and `image_size`.
"""

from __future__ import annotations

import time
from pathlib import Path


def train_and_evaluate(data_root: str, classes: list[str], config_dict: dict, workdir: str,
                       splits: tuple[str, ...] = ("heldout", "all")) -> dict:
    import inference  # noqa: F401
    from inference.kinds.autoencoder.config import AutoencoderConfig
    from pipelines.kinds.autoencoder.training import train_bundle
    from pipelines.vision.evaluation import evaluate_splits

    config = AutoencoderConfig.from_dict({key: config_dict[key] for key in ("level", "image_size", "seed", "epochs",
                                                                           "base_channels", "latent_channels")
                                          if config_dict.get(key) is not None})
    label = f"autoencoder-level{config.level}-{config.image_size}px-seed{config.seed}"
    bundle = Path(workdir) / f"{label}.tar.gz"
    started = time.perf_counter()
    report = train_bundle(data_root, classes, config, bundle, quiet=True)
    train_s = time.perf_counter() - started
    evaluations = evaluate_splits(bundle, data_root, Path(workdir) / label, classes, splits, plots=False, quiet=True)
    return {"train_s": train_s, "timings": report.timings, "evaluations": evaluations}
