"""PatchTST (Nie et al., 2023) as an anomaly detector: each sensor's recent history is cut into
patches, a small transformer shared by all sensors reads them, and a linear head forecasts the next
reading; a reading far from its forecast is anomalous. Channel independence (one model for every
sensor, each forecast from its own history) is the paper's; the squared forecast error of each
sensor is its contribution, the worst sensor's the score. Slow sensors are forecast relative to
their mean over the history (the paper's instance normalisation, for them only; see
`pipelines.sensors.neural`): the level of the others is what a forecaster must not follow into a fault."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipelines.sensors.graphs import slow_sensor_mask
from pipelines.sensors.neural import ForecastErrors, WindowCentring, export_errors, train_errors, windows_from_runs
from pipelines.sensors.settings import SettingError
from pipelines.sensors.training import FittedGraph


@dataclass(frozen=True)
class Settings:
    #: Rows of history each forecast reads.
    lookback: int = 48
    #: Patch length and stride along time (the paper's 16 / 8 scaled to a shorter history).
    patch_len: int = 8
    stride: int = 4
    #: Width of the patch embeddings, attention heads and encoder layers: a small transformer, as
    #: a few thousand training windows cannot fit the paper's 128-wide, 3-layer one.
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    #: Upper bound on epochs; `patience` usually stops training first.
    epochs: int = 40
    #: Epochs without a better validation loss before training stops.
    patience: int = 5
    batch_size: int = 64
    learning_rate: float = 0.001
    #: A sensor whose moving average over the history keeps more than this share of its variance
    #: (and that swings too rarely in training to learn its level) is forecast relative to its
    #: history's mean (1 turns it off); see pipelines/sensors/BENCHMARKS.md.
    slow_share: float = 0.5
    #: How the sensors' errors make the score: "max", the worst sensor (a fault shows in one or two
    #: sensors, and summed the noise of the others would drown it), or "sum" (wear that moves many
    #: sensors a little). Measured in pipelines/sensors/BENCHMARKS.md.
    aggregate: str = "max"

    def __post_init__(self) -> None:
        if self.patch_len > self.lookback or self.stride < 1:
            raise SettingError("patch_len must fit in lookback and stride must be positive")
        if self.d_model % self.heads:
            raise SettingError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if not 0.0 < self.slow_share <= 1.0:
            raise SettingError(f"slow_share must be in (0, 1], got {self.slow_share}")
        if self.aggregate not in ("max", "sum"):
            raise SettingError(f"aggregate must be max or sum, got {self.aggregate!r}")

    @property
    def patches(self) -> int:
        return (self.lookback - self.patch_len) // self.stride + 1


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and feed-forward, written with plain operators so it exports to ONNX."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.feed = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        batch, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(batch, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(batch, length, d)
        x = x + self.drop(self.out(mixed))
        return x + self.drop(self.feed(self.norm2(x)))


class PatchForecaster(nn.Module):
    def __init__(self, sensors: int, settings: Settings):
        super().__init__()
        self.sensors, self.settings = sensors, settings
        self.embed = nn.Linear(settings.patch_len, settings.d_model)
        self.position = nn.Parameter(torch.zeros(1, settings.patches, settings.d_model))
        self.layers = nn.Sequential(*[EncoderLayer(settings.d_model, settings.heads, settings.dropout) for _ in range(settings.layers)])
        self.head = nn.Linear(settings.patches * settings.d_model, 1)

    def forward(self, history):  # [N, lookback, W] → next reading of each sensor [N, S]
        s = self.settings
        series = history[:, :, : self.sensors].transpose(1, 2)  # [N, S, L]
        batch = series.shape[0]
        flat = series.reshape(batch * self.sensors, s.lookback)
        patches = torch.stack([flat[:, i * s.stride: i * s.stride + s.patch_len] for i in range(s.patches)], dim=1)
        encoded = self.layers(self.embed(patches) + self.position)
        return self.head(encoded.reshape(batch * self.sensors, -1)).reshape(batch, self.sensors)


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    torch.manual_seed(seed)
    context = settings.lookback + 1
    windows = windows_from_runs(runs, context)
    width = windows.shape[2]
    centring = WindowCentring(slow_sensor_mask(runs, sensors, width, settings.lookback, settings.slow_share))
    errors = ForecastErrors(PatchForecaster(sensors, settings), sensors, centring)
    train_errors(errors, windows, settings.epochs, settings.batch_size, settings.learning_rate, seed, quiet, "patchtst",
                 settings.patience)
    return FittedGraph(export_errors(errors, context, width), context=context, output="errors", aggregate=settings.aggregate)
