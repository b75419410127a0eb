"""Convolutional autoencoder over a window of readings: two strided 1-d convolutions compress it
four times along time, transposed convolutions restore it. The architecture of the SKAB
benchmark's best published detector (Conv-AE), with slow sensors judged on their movement inside
the window (see `pipelines.sensors.neural`). A window's score is its worst sensor's mean squared
reconstruction error."""

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
    #: Rows per window; a multiple of 4 (two stride-2 layers). SKAB's Conv-AE uses 60.
    window: int = 60
    #: Channels of the first convolution (the second has half); SKAB's Conv-AE.
    channels: int = 32
    #: Kernel length along time (SKAB's Conv-AE); 7 rows see a short movement, not just noise.
    kernel: int = 7
    #: Dropout after the first convolution of encoder and decoder (SKAB's Conv-AE): a few hundred
    #: overlapping windows are easy to memorise.
    dropout: float = 0.2
    #: Upper bound on epochs; `patience` usually stops training first.
    epochs: int = 40
    #: Epochs without a better validation loss before training stops (SKAB's Conv-AE stops after 5).
    patience: int = 5
    batch_size: int = 32
    learning_rate: float = 0.001
    #: A sensor whose moving average over the window keeps more than this share of its variance
    #: (most of it is slower than the window) and that swings too rarely in training to learn its
    #: level is judged on its movement inside the window (1 turns it off); see
    #: pipelines/sensors/BENCHMARKS.md.
    slow_share: float = 0.5
    #: How the sensors' errors make the score: "max", the worst sensor (a fault shows in one or two
    #: sensors, and summed the noise of the others would drown it), or "sum" (wear that moves many
    #: sensors a little). Measured in pipelines/sensors/BENCHMARKS.md.
    aggregate: str = "max"

    def __post_init__(self) -> None:
        if self.window % 4 or self.window < 8:
            raise SettingError(f"window must be a multiple of 4 and at least 8, got {self.window}")
        if self.kernel % 2 == 0:
            raise SettingError(f"kernel must be odd, got {self.kernel}")
        if not 0.0 < self.slow_share <= 1.0:
            raise SettingError(f"slow_share must be in (0, 1], got {self.slow_share}")
        if self.aggregate not in ("max", "sum"):
            raise SettingError(f"aggregate must be max or sum, got {self.aggregate!r}")


class ConvAutoencoder(nn.Module):
    def __init__(self, width: int, sensors: int, settings: Settings):
        super().__init__()
        c, k, pad = settings.channels, settings.kernel, settings.kernel // 2
        self.encoder = nn.Sequential(
            nn.Conv1d(width, c, k, stride=2, padding=pad), nn.ReLU(), nn.Dropout(settings.dropout),
            nn.Conv1d(c, c // 2, k, stride=2, padding=pad), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(c // 2, c // 2, k, stride=2, padding=pad, output_padding=1), nn.ReLU(), nn.Dropout(settings.dropout),
            nn.ConvTranspose1d(c // 2, c, k, stride=2, padding=pad, output_padding=1), nn.ReLU(),
            nn.ConvTranspose1d(c, sensors, k, padding=pad),
        )

    def forward(self, window):
        return self.decoder(self.encoder(window.transpose(1, 2))).transpose(1, 2)


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    import torch

    torch.manual_seed(seed)
    windows = windows_from_runs(runs, settings.window)
    width = windows.shape[2]
    centring = WindowCentring(slow_sensor_mask(runs, sensors, width, settings.window, settings.slow_share))
    errors = ReconstructionErrors(ConvAutoencoder(width, sensors, settings), sensors, centring)
    train_errors(errors, windows, settings.epochs, settings.batch_size, settings.learning_rate, seed, quiet, "conv_ae",
                 settings.patience)
    return FittedGraph(export_errors(errors, settings.window, width), context=settings.window, output="errors",
                       aggregate=settings.aggregate)
