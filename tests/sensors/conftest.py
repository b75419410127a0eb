"""Small synthetic pump data and quick settings for every sensor kind: the tests train real models,
only small and for a few epochs, so that the whole folder runs in well under a minute."""

from __future__ import annotations

import pytest

ASSET = "pump-1"
#: A day and a half of 2.5-minute readings: 400 training rows (320 fitted, 80 calibrate), faults later.
ROWS = 800

#: Per kind, settings that keep training to a second or two; every other setting is the default.
QUICK = {
    "isolation_forest": {"n_estimators": "20"},
    "residual_forest": {"n_estimators": "5", "max_depth": "4"},
    "pca": {},
    "lstm_ae": {"window": "8", "hidden": "8", "epochs": "2"},
    "conv_ae": {"window": "16", "channels": "8", "epochs": "2"},
    "patchtst": {"lookback": "16", "patch_len": "4", "stride": "4", "d_model": "8", "heads": "2", "layers": "1",
                 "epochs": "1"},
}


@pytest.fixture(scope="session")
def pump_data(tmp_path_factory):
    from pipelines.sensors.synthetic import generate

    return generate(tmp_path_factory.mktemp("sensor-data"), assets=(ASSET,), rows=ROWS)
