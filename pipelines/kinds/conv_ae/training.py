"""Convolutional autoencoder over a window of readings: two strided 1-d convolutions compress it
four times along time, transposed convolutions restore it. The architecture of the SKAB
benchmark's best published detector (Conv-AE)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from pipelines.sensors.neural import ReconstructionErrors, export_errors, train_errors, windows_from_runs
from pipelines.sensors.settings import SettingError
from pipelines.sensors.training import FittedGraph, train_sensor_kind


@dataclass(frozen=True)
class Settings:
    #: Rows per window; a multiple of 4 (two stride-2 layers). SKAB's Conv-AE uses 60.
    window: int = 60
    #: Channels of the first convolution (the second has half).
    channels: int = 32
    kernel: int = 7
    dropout: float = 0.2
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 0.001

    def __post_init__(self) -> None:
        if self.window % 4 or self.window < 8:
            raise SettingError(f"window must be a multiple of 4 and at least 8, got {self.window}")
        if self.kernel % 2 == 0:
            raise SettingError(f"kernel must be odd, got {self.kernel}")


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
    errors = ReconstructionErrors(ConvAutoencoder(windows.shape[2], sensors, settings), sensors)
    train_errors(errors, windows, settings.epochs, settings.batch_size, settings.learning_rate, seed, quiet, "conv_ae")
    return FittedGraph(export_errors(errors, settings.window, windows.shape[2]), context=settings.window, output="errors")


def train(job):
    import sys

    return train_sensor_kind(job, sys.modules[__name__])
