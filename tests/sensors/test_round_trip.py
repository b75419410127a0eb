"""Every sensor kind: train → bundle → load_model → the served scores are those of the model that
training fitted (the torch module for the neural kinds, the scikit-learn estimators for the others),
row for row and sensor for sensor."""

from __future__ import annotations

import importlib

import numpy as np
import onnxruntime as ort
import pytest

from inference.kinds import kinds_of
from inference.model import load_model
from inference.sensors.scorer import time_features
from pipelines.kinds import TRAINING_MODULES, TrainingJob, train
from pipelines.sensors.datasets import filled, read_asset
from tests.sensors.conftest import ASSET, QUICK

SENSOR_KINDS = kinds_of("sensors")


def test_every_sensor_kind_has_quick_test_settings():
    assert set(QUICK) == set(SENSOR_KINDS)


def _recording_fit(monkeypatch, kind: str) -> list:
    """Wrap the kind's `fit` so that the graph training produced can be compared with the served one."""
    module = importlib.import_module(TRAINING_MODULES[kind])
    original, fitted = module.fit, []

    def recording(*args, **kwargs):
        fitted.append(original(*args, **kwargs))
        return fitted[-1]

    monkeypatch.setattr(module, "fit", recording)
    return fitted


def _trained(kind, pump_data, tmp_path, monkeypatch, settings=None):
    fitted = _recording_fit(monkeypatch, kind)
    bundle = tmp_path / f"{kind}.tar.gz"
    train(TrainingJob(kind, pump_data, [ASSET], {**QUICK[kind], **(settings or {})}, bundle, quiet=True))
    return fitted[0], load_model(bundle)


def _standardised(model, pump_data) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """(raw readings, times, graph inputs) of the asset, built from the manifest alone."""
    entry = model.manifest["classes"][ASSET]
    spec = entry["spec"]
    data = read_asset(pump_data, ASSET)
    segment = data.segments[0]
    values = filled(segment.values[:, [data.columns.index(name) for name in spec["sensors"]]])
    inputs = (values - np.array(spec["mean"])) / np.array(spec["scale"])
    if spec["time_features"]:
        inputs = np.concatenate([inputs, time_features(segment.times)], axis=1)
    return values, segment.times, inputs.astype(np.float32), segment


def _windows(inputs: np.ndarray, context: int) -> np.ndarray:
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(inputs, context, axis=0).transpose(0, 2, 1))


@pytest.mark.parametrize("kind", SENSOR_KINDS)
def test_served_scores_are_the_trained_graphs(kind, pump_data, tmp_path, monkeypatch):
    fitted, model = _trained(kind, pump_data, tmp_path, monkeypatch)
    values, times, inputs, segment = _standardised(model, pump_data)
    spec = model.scorer_for(ASSET).spec
    assert (spec.context, spec.output, spec.aggregate) == (fitted.context, fitted.output, fitted.aggregate)

    session = ort.InferenceSession(fitted.graph, providers=["CPUExecutionProvider"])
    outputs = session.run([fitted.output], {"window": _windows(inputs, fitted.context)})[0].astype(np.float64)
    if fitted.output == "errors":
        outputs = outputs.sum(axis=1) if fitted.aggregate == "sum" else outputs.max(axis=1)
    served = model.score_series(values, times, ASSET).raw
    assert np.isnan(served[:fitted.context - 1]).all()
    np.testing.assert_allclose(served[fitted.context - 1:], outputs, rtol=1e-5, atol=1e-7)

    # one request of the minimum size through the endpoint's entry point gives the same raw score
    end = len(values) - 3
    rows = slice(end - spec.min_rows + 1, end + 1)
    answer = model.predict({"class_name": ASSET, "window": values[rows].tolist(), "sensors": list(spec.sensors),
                            "timestamps": segment.timestamps[rows], "outputs": ["contributions"]})
    assert answer["raw_score"] == pytest.approx(served[end], rel=1e-5, abs=1e-6)
    assert sum(item["share"] for item in answer["contributions"]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("kind", [k for k in SENSOR_KINDS if k in ("lstm_ae", "conv_ae", "patchtst")])
def test_neural_kinds_serve_what_the_torch_module_computes(kind, pump_data, tmp_path, monkeypatch):
    import torch

    module = importlib.import_module(TRAINING_MODULES[kind])
    exported = []
    original_export = module.export_errors

    def recording_export(errors, context, width):
        exported.append(errors)
        return original_export(errors, context, width)

    monkeypatch.setattr(module, "export_errors", recording_export)
    fitted, model = _trained(kind, pump_data, tmp_path, monkeypatch)
    values, times, inputs, _ = _standardised(model, pump_data)
    with torch.no_grad():
        expected = exported[0](torch.from_numpy(_windows(inputs, fitted.context))).numpy()
    served = model.score_series(values, times, ASSET).errors[fitted.context - 1:]
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)


def test_isolation_forest_graph_agrees_with_score_samples(pump_data, tmp_path, monkeypatch):
    from pipelines.kinds.isolation_forest import training

    forests = []
    original = training.isolation_forest_graph
    monkeypatch.setattr(training, "isolation_forest_graph",
                        lambda forest, width, reading: forests.append((forest, reading)) or original(forest, width, reading))
    fitted, model = _trained("isolation_forest", pump_data, tmp_path, monkeypatch, {"average_rows": "3"})
    forest, reading = forests[0]
    assert reading.centres, "the pump's load-following sensors are slow at this length: the centring path is tested"
    values, times, inputs, _ = _standardised(model, pump_data)
    rows = reading.prepared(inputs)  # every row with a full context, slow sensors about their trailing mean
    per_row = -forest.score_samples(rows)
    expected = np.convolve(per_row, np.ones(3) / 3, mode="valid")  # the mean of each row's last three scores
    assert reading.context == reading.length + 2
    served = model.score_series(values, times, ASSET).raw[reading.context - 1:]
    np.testing.assert_allclose(served, expected, rtol=1e-5)


def test_residual_forest_errors_agree_with_the_forests(pump_data, tmp_path, monkeypatch):
    from pipelines.kinds.residual_forest import training

    captured = []
    original = training.residual_graph
    monkeypatch.setattr(training, "residual_graph", lambda regressors, inputs_of, scale, width, reading:
                        captured.append((regressors, inputs_of, scale, reading)) or original(regressors, inputs_of, scale, width, reading))
    fitted, model = _trained("residual_forest", pump_data, tmp_path, monkeypatch)
    regressors, inputs_of, scale, reading = captured[0]
    values, times, inputs, _ = _standardised(model, pump_data)
    rows = reading.prepared(inputs)
    predicted = np.column_stack([forest.predict(rows[:, columns]) for forest, columns in zip(regressors, inputs_of)])
    residuals = rows[:, :len(regressors)] - predicted
    k = reading.scored_rows
    assert k > 1, "the default averages residuals over several rows: that path is tested"
    averaged = np.stack([np.convolve(residuals[:, j], np.ones(k) / k, mode="valid") for j in range(len(regressors))], axis=1)
    expected = np.abs(averaged) / scale
    served = model.score_series(values, times, ASSET).errors[reading.context - 1:]
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)
    assert model.scorer_for(ASSET).calibration.threshold == pytest.approx(2.5)  # k σ, the factory rule


def test_pca_errors_are_hotelling_and_q_over_their_limits(pump_data, tmp_path, monkeypatch):
    from pipelines.kinds.pca import training

    captured = []
    original = training.pca_graph
    monkeypatch.setattr(training, "pca_graph", lambda *args: captured.append(args) or original(*args))
    fitted, model = _trained("pca", pump_data, tmp_path, monkeypatch, {"average_rows": "1"})
    mean, components, variances, t2_limit, q_limit, _, reading = captured[0]
    values, times, inputs, _ = _standardised(model, pump_data)
    centred = reading.prepared(inputs) - mean
    scores = centred @ components.T
    t2 = (scores ** 2 / variances).sum(axis=1)
    q = ((centred - scores @ components) ** 2).sum(axis=1)
    served = model.score_series(values, times, ASSET).raw[reading.context - 1:]
    np.testing.assert_allclose(served, t2 / t2_limit + q / q_limit, rtol=1e-4, atol=1e-5)
