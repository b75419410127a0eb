"""LSTM autoencoder (Malhotra et al., 2016): an LSTM encodes a window of readings into one state,
a second LSTM unrolls it back; windows unlike the normal ones are reconstructed badly. Slow
sensors are judged on their movement inside the window (see `pipelines.sensors.neural`). The
error of each sensor over the window is its contribution; the worst sensor's is the score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from pipelines.sensors.graphs import slow_sensor_mask
from pipelines.sensors.neural import ReconstructionErrors, WindowCentring, export_errors, train_errors, windows_from_runs
from pipelines.sensors.settings import SettingError
from pipelines.sensors.training import FittedGraph


@dataclass(frozen=True)
class Settings:
    #: Rows per window (30: half a minute of 1 Hz data, an hour and a quarter of 2.5-minute data);
    #: an LSTM forgets the start of much longer windows.
    window: int = 30
    #: Width of the LSTM state the window is squeezed through.
    hidden: int = 32
    #: Upper bound on epochs; `patience` usually stops training first.
    epochs: int = 60
    #: Epochs without a better validation loss before training stops (SKAB's LSTM-AE stops after 5).
    patience: int = 5
    batch_size: int = 64
    learning_rate: float = 0.003
    #: A sensor whose moving average over the window keeps more than this share of its variance
    #: (and that swings too rarely in training to learn its level) is judged on its movement inside
    #: the window (1 turns it off); see pipelines/sensors/BENCHMARKS.md.
    slow_share: float = 0.5
    #: How the sensors' errors make the score: "max", the worst sensor (a fault shows in one or two
    #: sensors, and summed the noise of the others would drown it), or "sum" (wear that moves many
    #: sensors a little). Measured in pipelines/sensors/BENCHMARKS.md.
    aggregate: str = "max"

    def __post_init__(self) -> None:
        if self.window < 2:
            raise SettingError(f"window must be at least 2 rows, got {self.window}")
        if not 0.0 < self.slow_share <= 1.0:
            raise SettingError(f"slow_share must be in (0, 1], got {self.slow_share}")
        if self.aggregate not in ("max", "sum"):
            raise SettingError(f"aggregate must be max or sum, got {self.aggregate!r}")


class LstmAutoencoder(nn.Module):
    def __init__(self, width: int, sensors: int, hidden: int):
        super().__init__()
        self.encoder = nn.LSTM(width, hidden, batch_first=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.output = nn.Linear(hidden, sensors)

    def forward(self, window):
        _, (state, _) = self.encoder(window)
        repeated = state[-1].unsqueeze(1).expand(-1, window.shape[1], -1)
        decoded, _ = self.decoder(repeated)
        return self.output(decoded)


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    import torch

    torch.manual_seed(seed)
    windows = windows_from_runs(runs, settings.window)
    width = windows.shape[2]
    centring = WindowCentring(slow_sensor_mask(runs, sensors, width, settings.window, settings.slow_share))
    errors = ReconstructionErrors(LstmAutoencoder(width, sensors, settings.hidden), sensors, centring)
    train_errors(errors, windows, settings.epochs, settings.batch_size, settings.learning_rate, seed, quiet, "lstm_ae",
                 settings.patience)
    return FittedGraph(export_errors(errors, settings.window, width), context=settings.window, output="errors",
                       aggregate=settings.aggregate)
