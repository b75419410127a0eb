"""LSTM autoencoder (Malhotra et al., 2016): an LSTM encodes a window of readings into one state,
a second LSTM unrolls it back; windows unlike the normal ones are reconstructed badly. The error of
each sensor over the window is its contribution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from pipelines.sensors.neural import ReconstructionErrors, export_errors, train_errors, windows_from_runs
from pipelines.sensors.training import FittedGraph, train_sensor_kind


@dataclass(frozen=True)
class Settings:
    #: Rows per window (30: half a minute of 1 Hz data, half an hour of minute data).
    window: int = 30
    #: Width of the LSTM state the window is squeezed through.
    hidden: int = 32
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 0.003


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
    errors = ReconstructionErrors(LstmAutoencoder(windows.shape[2], sensors, settings.hidden), sensors)
    train_errors(errors, windows, settings.epochs, settings.batch_size, settings.learning_rate, seed, quiet, "lstm_ae")
    return FittedGraph(export_errors(errors, settings.window, windows.shape[2]), context=settings.window, output="errors")


def train(job):
    import sys

    return train_sensor_kind(job, sys.modules[__name__])
