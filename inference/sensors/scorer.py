"""Scores a series of one asset through its ONNX graph: the one scoring path of every sensor kind.

Graph contract (every sensor kind exports one per asset):
- input `window`: float32 `[N, context, S + T]`, the `context` most recent rows ending at the
  scored row, standardised with the asset's training mean and scale, followed by `T` time-of-day
  and day-of-week features when the kind uses them (see `time_features`);
- output `errors`: float32 `[N, S]`, non-negative per-sensor errors whose `aggregate` (sum or max)
  is the raw score; or output `score`: float32 `[N]`, the raw score of kinds that cannot split it
  by sensor (their contributions come from occlusion: how much the score drops when a sensor is
  set to its normal value).

Row `t` is scored from rows `t - context + 1 … t` only, so a live feed is scored exactly as the
same rows in a stored series. An optional causal moving average over `smoothing` rows steadies
the score (a single noisy row is not a fault). Both are recorded in the bundle and applied
identically in evaluation and serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.calibration import Calibration
from inference.errors import BadRequest, BundleError, IvadasError

#: Windows per ONNX Runtime call: bounds memory for long series without slowing short ones.
CHUNK_WINDOWS = 4096
SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
TIME_FEATURES = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
#: Training standard deviations from the mean beyond which a reading is no measurement but an error
#: (a graph whose output overflows is the reading's fault only that far out).
EXTREME_DEVIATION = 1e6


class WindowTooShort(IvadasError):
    status, code = 422, "window_too_short"


def time_features(times: np.ndarray) -> np.ndarray:
    """Time of day and day of week on the unit circle: midnight is next to 23:59, Sunday to Monday."""
    day = 2 * np.pi * (np.asarray(times, np.float64) % SECONDS_PER_DAY) / SECONDS_PER_DAY
    week = 2 * np.pi * (np.asarray(times, np.float64) % SECONDS_PER_WEEK) / SECONDS_PER_WEEK
    return np.stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=1)


@dataclass(frozen=True)
class AssetSpec:
    """How the graph of one asset reads its input, as recorded in the bundle manifest."""

    columns: tuple[str, ...]  # every sensor column of the asset's data, in file order
    sensors: tuple[str, ...]  # the columns the model reads, in the graph's order
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    context: int
    output: str  # "errors" or "score"
    aggregate: str  # "sum" or "max" of the errors
    time_features: bool = False
    smoothing: int = 1
    merge_gap: int = 0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.sensors) or len(self.scale) != len(self.sensors):
            raise BundleError("the scaler does not have one mean and one scale per sensor")
        if self.context < 1 or self.smoothing < 1:
            raise BundleError("context and smoothing must be at least one row")
        if self.output not in ("errors", "score") or self.aggregate not in ("sum", "max"):
            raise BundleError(f"unknown graph output {self.output!r} or aggregate {self.aggregate!r}")
        if not set(self.sensors) <= set(self.columns):
            raise BundleError("the model reads sensors its asset does not have")

    @property
    def min_rows(self) -> int:
        """Fewest rows that give one score: a full context, then a full smoothing window."""
        return self.context + self.smoothing - 1

    @property
    def input_width(self) -> int:
        return len(self.sensors) + (len(TIME_FEATURES) if self.time_features else 0)

    def inputs(self, values: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        """What the graph reads: readings standardised with the training scaler, then the time features.

        A reading that is finite in float64 but not once standardised in float32 (1e39, -1e39, 1e308,
        or 3e38 over a scale below 1) cannot be scored: it is refused, naming its row and sensor."""
        values = np.asarray(values, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            x = ((values - np.asarray(self.mean)) / np.asarray(self.scale)).astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise BadRequest(f"window row {row}, sensor {self.sensors[column]!r}: the reading {values[row, column]:g} "
                             f"is out of range for this model (too far from the sensor's training range to score); "
                             f"fix or drop it before sending ({int(bad.sum())} such reading(s))")
        if self.time_features:
            if times is None:
                raise BadRequest("this model uses the time of day and week: send 'timestamps' with the window")
            x = np.concatenate([x, time_features(times).astype(np.float32)], axis=1)
        return x

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "AssetSpec":
        tuples = ("columns", "sensors", "mean", "scale")
        return cls(**{key: tuple(value) if key in tuples else value for key, value in data.items()})


@dataclass
class ScoredSeries:
    """Raw scores of every row (NaN where the context is not full yet) and what explains them."""

    raw: np.ndarray
    scorer: "SeriesScorer"
    inputs: np.ndarray  # the standardised rows, kept for occlusion
    errors: np.ndarray | None  # per-row per-sensor errors (rows × S), NaN-led like `raw`

    def contributions(self, rows) -> np.ndarray:
        """Each sensor's share (rows × S, rows summing to 1, or 0 when nothing stands out) at `rows`."""
        rows = np.asarray(rows, dtype=int)
        if self.errors is not None:
            weights = np.clip(np.nan_to_num(self.errors[rows]), 0.0, None)
        else:
            weights = self.scorer.occlusion(self.inputs, rows)
        totals = weights.sum(axis=1, keepdims=True)
        return np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)


class SeriesScorer:
    """One asset's graph, scaler and calibration."""

    def __init__(self, spec: AssetSpec, session, calibration: Calibration | None):
        self.spec = spec
        self.session = session
        self.calibration = calibration
        self.input_name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        if spec.output not in outputs:
            raise BundleError(f"the asset's graph has no output {spec.output!r}; it has {outputs}")

    def score(self, values: np.ndarray, times: np.ndarray | None = None) -> ScoredSeries:
        """Raw scores of every row of `values` (rows × S, in `spec.sensors` order, raw units)."""
        spec = self.spec
        if values.shape[0] < spec.min_rows:
            raise WindowTooShort(f"the window has {values.shape[0]} row(s); this model "
                                 f"needs at least {spec.min_rows} (context {spec.context}, smoothing {spec.smoothing})")
        inputs = spec.inputs(values, times)
        outputs = self.run(windows_of(inputs, spec.context))
        self.check_finite(outputs, inputs, values)
        rows = values.shape[0]
        errors = None
        if spec.output == "errors":
            errors = np.full((rows, len(spec.sensors)), np.nan)
            errors[spec.context - 1:] = outputs
            per_window = outputs.sum(axis=1) if spec.aggregate == "sum" else outputs.max(axis=1)
        else:
            per_window = outputs
        raw = np.full(rows, np.nan)
        raw[spec.context - 1:] = causal_mean(per_window.astype(np.float64), spec.smoothing)
        return ScoredSeries(raw, self, inputs, errors)

    def run(self, windows: np.ndarray) -> np.ndarray:
        parts = [self.session.run([self.spec.output], {self.input_name: np.ascontiguousarray(windows[i:i + CHUNK_WINDOWS])})[0]
                 for i in range(0, len(windows), CHUNK_WINDOWS)]
        out = np.concatenate(parts).astype(np.float64)
        return out.reshape(len(windows), -1) if self.spec.output == "errors" else out.reshape(len(windows))

    def check_finite(self, outputs: np.ndarray, inputs: np.ndarray, values: np.ndarray) -> None:
        """Refuse a window whose graph output overflows (a NaN or infinite score would silently drop
        that row and, through the smoothing, those after it, or reach the answer as `Infinity`).

        With readings far outside the training range (`EXTREME_DEVIATION` training standard
        deviations: no real measurement) the client is told which; otherwise the model failed."""
        per_window = outputs.reshape(len(outputs), -1)
        bad = ~np.isfinite(per_window).all(axis=1)
        if not bad.any():
            return
        spec = self.spec
        row = int(np.argmax(bad)) + spec.context - 1
        first = row - spec.context + 1
        deviations = np.abs(inputs[first:row + 1, :len(spec.sensors)].astype(np.float64))
        at, column = np.unravel_index(int(np.argmax(deviations)), deviations.shape)
        if deviations[at, column] >= EXTREME_DEVIATION:
            raise BadRequest(f"window row {first + at}, sensor {spec.sensors[column]!r}: the reading "
                             f"{values[first + at, column]:g} is out of range for this model ({deviations[at, column]:.3g} "
                             f"standard deviations from the sensor's training mean: too far to score); fix or drop it "
                             f"before sending")
        raise BundleError(f"the model gave a non-finite score for window row {row} of ordinary readings; "
                          "its graph cannot be served as it is")

    def occlusion(self, inputs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """How much the raw score of each row drops when one sensor reads its training mean (0 once
        standardised) over the row's context: the sensors without which the row would look normal."""
        context, count = self.spec.context, len(self.spec.sensors)
        drops = np.zeros((len(rows), count))
        for i, row in enumerate(rows):
            window = inputs[row - context + 1:row + 1][None]
            batch = np.repeat(window, count + 1, axis=0)
            for sensor in range(count):
                batch[sensor + 1, :, sensor] = 0.0
            scores = self.run(batch)
            drops[i] = np.clip(scores[0] - scores[1:], 0.0, None)
        return np.nan_to_num(drops, nan=0.0, posinf=0.0)  # a share is never NaN, whatever the graph does


def windows_of(inputs: np.ndarray, context: int) -> np.ndarray:
    """Every run of `context` consecutive rows, `[rows - context + 1, context, width]`, without copying."""
    view = np.lib.stride_tricks.sliding_window_view(inputs, context, axis=0)  # [n, width, context]
    return view.transpose(0, 2, 1)


def causal_mean(values: np.ndarray, length: int) -> np.ndarray:
    """Mean of each value and the `length - 1` before it; the first `length - 1` are NaN."""
    if length <= 1:
        return values
    out = np.full(values.shape, np.nan)
    if len(values) >= length:  # each mean of its own rows: one huge score does not spoil the later means,
        # as differences of a running sum would (1e24 - (1e24 - 3) is no longer 3 in float64)
        out[length - 1:] = np.lib.stride_tricks.sliding_window_view(values, length).mean(axis=1)
    return out
