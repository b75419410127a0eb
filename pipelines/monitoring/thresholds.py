"""Alarm limits for drift, in one place, with the reasoning; configurable per class or asset.

Defaults and why:

- `score_psi` 0.25 and `input_psi` 0.25: the credit-scoring rule of thumb that PSI below 0.1 is no
  real change, 0.1-0.25 a moderate one and above 0.25 a major one. A line whose lighting dims by a
  fifth moves brightness's PSI well past 1; day-to-day variation of a stable line stays near 0.1.
- `p_value` 0.01: the KS test's significance. PSI is inflated on small samples (identical
  distributions give about 9 * (1/n + 1/m) on ten bins, 0.3 for thirty verdicts against a hundred
  reference images, before the bins shrink with the sample), so a drift alarm needs the KS test to reject "same distribution" as well. For
  input drift the level is divided by the number of statistics tested (Bonferroni), so nine image
  statistics do not give nine chances of a false alarm.
- `sensor_shift_sigma` 1.0: a sensor whose readings over the period sit a full training standard
  deviation from their training mean has moved (an offset, a recalibration, a different operating
  point); ordinary windows of a stable machine average out within a few tenths.
- `sensor_spread_ratio` 2.0: a sensor whose readings over the period spread twice as widely as
  the rows the model was fitted on (standard deviation; the period's is its windows' variance plus
  the variance of their means) has changed in a way its mean does not show: a transmitter gone
  noisy, a vibration that grew. Only a wider spread alarms: an hour covers fewer operating points
  than training's days and may spread less. On the synthetic pump, normal hours of other days give
  1.0 to 1.3; noise of two training σ added to one sensor gives 2.3 on that sensor alone.
- `min_samples` 30: fewer verdicts than this in a period are reported but never alarm; below it
  neither PSI nor the KS test can tell drift from chance.
- Score drift against a small reference. The reference holds the raw scores of the held-out
  normal data; a sensor asset's few held-out rows, cut into windows of the served length, often
  leave fewer than `min_samples` window peaks. PSI is then meaningless (its bins are quantiles of
  a dozen values, and its small-sample bias, about (bins - 1) * (1/n + 1/m), is as large as the
  0.25 limit), but the two-sample KS test is not: its exact p-value (the exact distribution of the
  statistic, not the large-sample approximation) holds the false-alarm rate at `p_value` for any
  sample sizes. So with fewer than `min_samples` reference scores, score drift alarms on the exact
  KS test alone, at the same `p_value` (so `p_value`, not `score_psi`, is the class's knob there);
  PSI is reported, not used. Small samples buy this with power, not with false alarms: against 10
  reference scores and 40 verdicts the test needs the two empirical distributions to differ by more
  than about half their mass (KS statistic above 0.55), so it catches a shift of a few reference
  spreads, not a slight one; with 30 or more it falls back to PSI and KS together. Measured on
  normal draws (2,000 trials each): 0.6 % to 1.3 % false alarms for 5 to 20 reference scores
  against 40 verdicts, and a shift of 3 spreads caught 99 % of the time even with 5. The test is
  only as good as the reference is clean: held-out rows whose scored context holds an anomalous
  row are left out of it (`reference`); kept, they fattened its tail so much that a normal hour of
  the test pump alarmed (KS p 0.002 against 19 window peaks).
- `min_reference_scores` 5: below five held-out normal scores the reference is a few points, not a
  distribution (a period can only be "above all of them"), so score drift is reported, not judged.
- `anomaly_rate` 0.2: more than a fifth of the period's verdicts anomalous is reported as an alarm
  of its own; a line rarely produces that many real defects, a drifted model or input does.

Overrides: a JSON file `{"default": {...}, "classes": {"tiles": {"input_psi": 0.4}}}`
(`ivadas monitor --thresholds FILE`, or `monitoring.json` in the store). Unknown names are errors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Thresholds:
    score_psi: float = 0.25
    input_psi: float = 0.25
    p_value: float = 0.01
    sensor_shift_sigma: float = 1.0
    sensor_spread_ratio: float = 2.0
    min_samples: int = 30
    min_reference_scores: int = 5
    anomaly_rate: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)


class ThresholdError(ValueError):
    pass


#: A significance level and a share of verdicts: between 0 and 1.
SHARES = ("p_value", "anomaly_rate")
#: Numbers of samples.
COUNTS = ("min_samples", "min_reference_scores")


def _checked(values: dict, where: str) -> dict:
    if not isinstance(values, dict):
        raise ThresholdError(f"{where} must be an object of threshold names and numbers")
    known = {f.name: f.type for f in fields(Thresholds)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ThresholdError(f"{where}: unknown threshold(s) {unknown}; known: {sorted(known)}")
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ThresholdError(f"{where}: {name} must be a non-negative number, got {value!r}")
        if name in SHARES and value > 1:
            raise ThresholdError(f"{where}: {name} must be at most 1 (a share, not a percentage), got {value!r}")
        if name in COUNTS and value != int(value):
            raise ThresholdError(f"{where}: {name} must be a whole number, got {value!r}")
    return {k: int(v) if k in COUNTS else float(v) for k, v in values.items()}


@dataclass(frozen=True)
class ThresholdConfig:
    default: Thresholds = Thresholds()
    classes: dict = None

    def for_class(self, name: str) -> Thresholds:
        return replace(self.default, **(self.classes or {}).get(name, {}))

    @classmethod
    def from_dict(cls, data: dict) -> "ThresholdConfig":
        if not isinstance(data, dict):
            raise ThresholdError("thresholds must be a JSON object with 'default' and/or 'classes'")
        unknown = sorted(set(data) - {"default", "classes"})
        if unknown:
            raise ThresholdError(f"unknown key(s) {unknown} in thresholds; use 'default' and 'classes'")
        default = Thresholds(**_checked(data.get("default", {}), "default"))
        classes = data.get("classes", {})
        if not isinstance(classes, dict):
            raise ThresholdError("'classes' must map class or asset names to thresholds")
        return cls(default, {name: _checked(values, f"classes.{name}") for name, values in classes.items()})

    @classmethod
    def load(cls, path: str | Path | None, optional: bool = False) -> "ThresholdConfig":
        """`path`'s thresholds; the defaults without one, or when an `optional` file (the store's
        `monitoring.json`) is not there. A file someone named must exist."""
        if path is None or not Path(path).is_file():
            if path is not None and not optional:
                raise ThresholdError(f"no thresholds file {path}")
            return cls()
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ThresholdError(f"{path} is not JSON: {exc}") from None
        return cls.from_dict(data)
