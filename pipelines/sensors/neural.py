"""Training and export shared by the neural sensor kinds (autoencoders, forecasters).

The exported graph computes the per-sensor error itself, so serving runs exactly what training
measured: a reconstruction kind's graph returns the mean squared error of each sensor over the
window, a forecasting kind's the squared error of each sensor's next reading.

Slow sensors. A sensor whose readings swing on a time scale longer than the window (a
temperature that wanders over a shift) shows only a few of its swings in a training period: its
level on the next day is not something the model could have learnt, and judging it on its level
turns every new swing into an alarm. Such a sensor is judged on its movement inside the window
instead: the graph subtracts its mean over the window (over the history, for a forecaster) before
the model reads it, for the model's input and its target alike. Which sensors are slow is decided
per asset from its own training rows (`pipelines.sensors.graphs.slow_sensor_mask`) and is part of
the graph.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

#: Share of the training windows (the latest ones) kept aside to stop training when it stops helping.
VALIDATION_SHARE = 0.1


def windows_from_runs(runs: list[np.ndarray], length: int, stride: int = 1) -> np.ndarray:
    """Every `length`-row window inside each run of normal rows, `[n, length, W]` (float32)."""
    parts = [np.lib.stride_tricks.sliding_window_view(run, length, axis=0).transpose(0, 2, 1)[::stride]
             for run in runs if len(run) >= length]
    if not parts:
        longest = max((len(run) for run in runs), default=0)
        raise ValueError(f"no stretch of normal rows is {length} rows long (the longest is {longest}); "
                         "use a shorter window or more data")
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


class WindowCentring(nn.Module):
    """Subtracts each masked column's mean over the rows it is given (the window, or a forecaster's history)."""

    def __init__(self, mask: np.ndarray):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32).reshape(1, 1, -1))

    def forward(self, rows, reference=None):
        reference = rows if reference is None else reference
        return rows - self.mask * reference.mean(dim=1, keepdim=True)


class ReconstructionErrors(nn.Module):
    """Per-sensor mean squared reconstruction error of a window: `[N, L, W]` → `[N, S]`."""

    def __init__(self, net: nn.Module, sensors: int, centring: WindowCentring | None = None):
        super().__init__()
        self.net, self.sensors, self.centring = net, sensors, centring

    def forward(self, window):
        if self.centring is not None:
            window = self.centring(window)
        target = window[:, :, : self.sensors]
        return ((self.net(window) - target) ** 2).mean(dim=1)


class ForecastErrors(nn.Module):
    """Per-sensor squared error of the last row forecast from the rows before it: `[N, L+1, W]` → `[N, S]`."""

    def __init__(self, net: nn.Module, sensors: int, centring: WindowCentring | None = None):
        super().__init__()
        self.net, self.sensors, self.centring = net, sensors, centring

    def forward(self, window):
        history, target = window[:, :-1, :], window[:, -1:, :]
        if self.centring is not None:  # both relative to the history's level: a forecaster sees no future
            history, target = self.centring(history), self.centring(target, history)
        return (self.net(history) - target[:, 0, : self.sensors]) ** 2


def train_errors(errors: nn.Module, windows: np.ndarray, epochs: int, batch_size: int, learning_rate: float,
                 seed: int, quiet: bool = True, desc: str = "fit", patience: int = 0) -> dict:
    """Minimise the mean of `errors(window)` with Adam; keep the weights of the best validation epoch,
    and stop after `patience` epochs without improvement (0: run every epoch)."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    held = max(1, int(len(windows) * VALIDATION_SHARE)) if len(windows) >= 20 else 0
    train, validation = torch.from_numpy(windows[: len(windows) - held]), torch.from_numpy(windows[len(windows) - held:])
    optimiser = torch.optim.Adam(errors.parameters(), lr=learning_rate)
    best, best_state, history, stale = float("inf"), None, [], 0
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=quiet, leave=False):
        errors.train()
        for batch in np.array_split(generator.permutation(len(train)), max(1, len(train) // batch_size)):
            optimiser.zero_grad()
            loss = errors(train[batch]).mean()
            loss.backward()
            optimiser.step()
        errors.eval()
        with torch.no_grad():
            checked = validation if held else train
            loss = float(errors(checked).mean())
        history.append(loss)
        if loss < best:
            best, best_state, stale = loss, {k: v.detach().clone() for k, v in errors.state_dict().items()}, 0
        else:
            stale += 1
            if patience and stale >= patience:
                break
    errors.load_state_dict(best_state)
    errors.eval()
    return {"validation_loss": best, "epochs": len(history)}


def export_errors(errors: nn.Module, context: int, width: int) -> bytes:
    """The error module as an ONNX graph: input `window` `[N, context, width]`, output `errors` `[N, S]`."""
    buffer = io.BytesIO()
    example = torch.zeros(2, context, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on LSTM batch sizes and tracing
        torch.onnx.export(errors, (example,), buffer, input_names=["window"], output_names=["errors"],
                          dynamic_axes={"window": {0: "n"}, "errors": {0: "n"}}, opset_version=17, dynamo=False)
    return buffer.getvalue()
