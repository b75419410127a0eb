"""ONNX graphs for sensor kinds whose model is not a torch module: scikit-learn estimators converted
with skl2onnx, and closed-form maths written as ONNX operators. Every graph takes `window`
`[N, context, W]` and gives `score` `[N]` or `errors` `[N, S]` (see `inference.sensors.scorer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pipelines.sensors.settings import SettingError

OPSET = 17
ML_OPSET = 3
INPUT = "window"


def _opsets(ml: bool) -> list:
    return [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("ai.onnx.ml", ML_OPSET)] if ml else [])


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


@dataclass(frozen=True)
class RowWindow:
    """How a row-wise model reads a window: its last `scored_rows` rows, each scored on its own and
    the scores averaged (a single noisy row is not a fault), with the `slow` columns (1 in the
    mask) taken relative to their mean over the `length` rows up to that row (see `slow_sensor_mask`)."""

    length: int = 1
    scored_rows: int = 1
    slow: tuple[float, ...] = ()

    @property
    def centres(self) -> bool:
        return any(self.slow)

    @property
    def context(self) -> int:
        """Rows one score needs: the scored rows, and before the first of them its centring rows."""
        return self.length + self.scored_rows - 1 if self.centres else self.scored_rows

    def rows(self, runs: list[np.ndarray]) -> np.ndarray:
        """The rows the model is fitted on, prepared as the graph prepares them (float64)."""
        return np.concatenate([self.prepared(run) for run in runs if len(run) >= self.length])

    def prepared(self, run: np.ndarray) -> np.ndarray:
        """Every row of `run` with `length` rows up to it, slow columns relative to their mean over those."""
        run = np.asarray(run, np.float64)
        if not self.centres:
            return run
        sums = np.cumsum(np.vstack([np.zeros((1, run.shape[1])), run]), axis=0)
        trailing = (sums[self.length:] - sums[:-self.length]) / self.length
        return run[self.length - 1:] - np.asarray(self.slow) * trailing

    def nodes(self, width: int) -> tuple[list, list]:
        """Nodes turning `window` `[N, context, W]` into `rows` `[N × scored_rows, W]`."""
        nodes = [helper.make_node("Slice", [INPUT, "recent_start", "recent_end", "time_axis"], ["recent"])]
        inits = [_const("recent_start", np.array([-self.scored_rows], np.int64)),
                 _const("recent_end", np.array([np.iinfo(np.int64).max], np.int64)),
                 _const("time_axis", np.array([1], np.int64)), _const("rows_shape", np.array([-1, width], np.int64))]
        source = "recent"
        if self.centres:  # the mean of the `length` rows up to each scored row: a moving average along time
            nodes += [helper.make_node("Transpose", [INPUT], ["by_column"], perm=[0, 2, 1]),
                      helper.make_node("AveragePool", ["by_column"], ["trailing_by_column"], kernel_shape=[self.length],
                                       strides=[1]),
                      helper.make_node("Transpose", ["trailing_by_column"], ["trailing"], perm=[0, 2, 1]),
                      helper.make_node("Mul", ["trailing", "slow_mask"], ["slow_level"]),
                      helper.make_node("Sub", ["recent", "slow_level"], ["centred"])]
            inits.append(_const("slow_mask", np.asarray(self.slow, np.float32).reshape(1, 1, width)))
            source = "centred"
        nodes.append(helper.make_node("Reshape", [source, "rows_shape"], ["rows"]))
        return nodes, inits

    def averaged(self, per_row: str, output: str, sensors: int | None) -> tuple[list, list]:
        """Nodes averaging `per_row` (`[N × scored_rows]` or `[N × scored_rows, S]`) into `output` per window."""
        shape = [-1, self.scored_rows] + ([sensors] if sensors else [])
        return ([helper.make_node("Reshape", [per_row, "per_window_shape"], ["per_window"]),
                 helper.make_node("ReduceMean", ["per_window"], [output], axes=[1], keepdims=0)],
                [_const("per_window_shape", np.array(shape, np.int64))])


def check_row_settings(settings) -> None:
    """The reading settings every row-wise kind shares: window, slow_share, average_rows."""
    if settings.window < 2 or settings.average_rows < 1:
        raise SettingError(f"need window ≥ 2 and average_rows ≥ 1, got window={settings.window}, "
                           f"average_rows={settings.average_rows}")
    if not 0.0 < settings.slow_share <= 1.0:
        raise SettingError(f"slow_share must be in (0, 1], got {settings.slow_share}")


def row_window(runs: list[np.ndarray], sensors: int, settings) -> RowWindow:
    """How a row-wise kind reads its window, decided from the asset's training runs."""
    width = runs[0].shape[1]
    slow = slow_sensor_mask(runs, sensors, width, settings.window, settings.slow_share)
    return RowWindow(settings.window, settings.average_rows, tuple(float(v) for v in slow))


#: A slow sensor keeps being judged on its level when the training rows show at least this many
#: swings of it (two full cycles: from low to high and back, twice), as a pump's daily load cycle
#: over a few days does; fewer, as a temperature wandering over a 7-minute recording, and its level
#: range is unknown.
MIN_SWINGS = 4
#: A swing goes from below to above (or above to below) this many standard deviations of the
#: sensor's moving average around its mean; the band keeps noise near the mean from counting.
SWING_BAND = 0.5


def _within_run(runs: list[np.ndarray], sensors: int, length: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(readings, `length`-row moving averages) of every run long enough, each about its own run's
    mean: how far apart recordings sit (one engine runs hotter than another) is not slowness."""
    kernel = np.ones(length) / length
    readings, averages = [], []
    for run in runs:
        if len(run) < max(length, 2):
            continue
        centred = run[:, :sensors] - run[:, :sensors].mean(axis=0)
        readings.append(centred)
        averages.append(np.stack([np.convolve(centred[:, j], kernel, mode="valid") for j in range(sensors)], axis=1))
    return readings, averages


def slow_share(runs: list[np.ndarray], sensors: int, length: int) -> np.ndarray:
    """Per sensor, the share of its variance inside the training runs that a `length`-row moving
    average keeps: about 1/length for white noise, near 1 for a reading that wanders slowly."""
    readings, averages = _within_run(runs, sensors, length)
    if not readings or length < 2:
        return np.zeros(sensors)
    total = np.concatenate(readings).var(axis=0)
    # readings are standardised (variance ~1): a variance this small is a constant plus float rounding
    return np.divide(np.concatenate(averages).var(axis=0), total, out=np.zeros(sensors), where=total > 1e-12)


def swings(runs: list[np.ndarray], sensors: int, length: int) -> np.ndarray:
    """Per sensor, how many times its `length`-row moving average crossed from one side of the band
    ±`SWING_BAND` σ around its run's mean to the other, summed over the runs."""
    _, averages = _within_run(runs, sensors, length)
    if not averages:
        return np.zeros(sensors, int)
    band = SWING_BAND * np.maximum(np.concatenate(averages).std(axis=0), 1e-12)
    counts = np.zeros(sensors, int)
    for average in averages:
        side = np.where(average > band, 1, np.where(average < -band, -1, 0))
        for j in range(sensors):
            sides = side[:, j][side[:, j] != 0]
            counts[j] += int(np.count_nonzero(np.diff(sides)))
    return counts


def slow_sensor_mask(runs: list[np.ndarray], sensors: int, width: int, length: int, threshold: float) -> np.ndarray:
    """`[width]` float32: 1 for the sensors judged on their movement inside a `length`-row window,
    0 for the rest and for the time features, which are never centred. A sensor is judged so when
    its moving average over the window keeps more than `threshold` of its variance (1 turns this
    off) and the training rows show fewer than `MIN_SWINGS` swings of it.

    Why: a sensor whose readings swing on a time scale longer than the window (a temperature that
    wanders over a shift) and that the training period shows only a few swings of has no level a
    model could learn: its level a day later is new, and judging it on its level turns every new
    swing into an alarm. Measured in pipelines/sensors/BENCHMARKS.md.
    """
    mask = np.zeros(width, np.float32)
    if threshold < 1.0:
        mask[:sensors] = (slow_share(runs, sensors, length) > threshold) & (swings(runs, sensors, length) < MIN_SWINGS)
    return mask


def sklearn_graph(estimator, width: int, prefix: str):
    """(nodes, initialisers, output name) of a fitted scikit-learn estimator reading `rows`.

    The estimator's own graph is converted by skl2onnx and renamed with `prefix` so that several
    can live in one graph.
    """
    from skl2onnx import to_onnx

    model = to_onnx(estimator, np.zeros((1, width), np.float32), target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    model = onnx.compose.add_prefix(model, prefix)
    graph = model.graph
    source = graph.input[0].name
    nodes = [helper.make_node("Identity", ["rows"], [source])] + list(graph.node)
    return nodes, list(graph.initializer), [o.name for o in graph.output]


def _model(nodes, initialisers, width: int, output: str, output_shape, ml: bool) -> bytes:
    graph = helper.make_graph(
        nodes, "ivadas_sensor_model",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["n", None, width])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=_opsets(ml), producer_name="ivadas")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def average_path_length(samples: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n points
    (Liu et al., 2008), the depth a leaf holding n training rows stands for."""
    n = np.asarray(samples, np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def isolation_forest_graph(forest, width: int, reading: RowWindow = RowWindow()) -> bytes:
    """`score` = 2^(−E[h(x)] / c(ψ)), the Isolation Forest anomaly score (higher is more anomalous).

    Written directly as one TreeEnsembleRegressor whose leaves hold their share of the mean path
    length, instead of through skl2onnx, whose Isolation Forest graph takes half a minute to build
    and is ten times larger; the scores agree with `-forest.score_samples` to float precision.
    """
    denominator = len(forest.estimators_) * float(average_path_length(np.array([forest.max_samples_]))[0])
    attributes = {key: [] for key in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
                                      "nodes_truenodeids", "nodes_falsenodeids", "target_treeids", "target_nodeids",
                                      "target_ids", "target_weights")}
    for tree_id, (estimator, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        _add_isolation_tree(attributes, tree_id, estimator.tree_, np.asarray(features), denominator)
    nodes, inits = reading.nodes(width)
    nodes += [
        helper.make_node("TreeEnsembleRegressor", ["rows"], ["mean_depth"], domain="ai.onnx.ml", n_targets=1,
                         aggregate_function="SUM", post_transform="NONE", **attributes),
        helper.make_node("Mul", ["mean_depth", "minus_ln2"], ["exponent"]),
        helper.make_node("Exp", ["exponent"], ["row_scores"]),
    ]
    inits.append(_const("minus_ln2", np.array(-np.log(2.0), np.float32)))
    averaging, averaging_inits = reading.averaged("row_scores", "score", None)
    return _model(nodes + averaging, inits + averaging_inits, width, "score", ["n"], ml=True)


def _add_isolation_tree(attributes: dict, tree_id: int, tree, features: np.ndarray, denominator: float) -> None:
    depth = np.zeros(tree.node_count, np.int64)
    for node in range(tree.node_count):  # children always come after their parent in sklearn's arrays
        for child in (tree.children_left[node], tree.children_right[node]):
            if child >= 0:
                depth[child] = depth[node] + 1
    for node in range(tree.node_count):
        leaf = tree.children_left[node] < 0
        attributes["nodes_treeids"].append(tree_id)
        attributes["nodes_nodeids"].append(node)
        attributes["nodes_featureids"].append(0 if leaf else int(features[tree.feature[node]]))
        attributes["nodes_values"].append(0.0 if leaf else float(tree.threshold[node]))
        attributes["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
        attributes["nodes_truenodeids"].append(0 if leaf else int(tree.children_left[node]))
        attributes["nodes_falsenodeids"].append(0 if leaf else int(tree.children_right[node]))
        if leaf:
            # sklearn: path length = nodes on the path − 1 + c(rows in the leaf) = depth + c(n)
            length = depth[node] + average_path_length(np.array([tree.n_node_samples[node]]))[0]
            attributes["target_treeids"].append(tree_id)
            attributes["target_nodeids"].append(node)
            attributes["target_ids"].append(0)
            attributes["target_weights"].append(float(length / denominator))


def residual_graph(regressors: list, inputs_of: list[list[int]], residual_scale: np.ndarray, width: int,
                   reading: RowWindow = RowWindow()) -> bytes:
    """`errors[:, j]` = |mean of x_j − f_j(x[inputs_of[j]]) over the scored rows| / residual_scale[j]:
    how far sensor j stayed from what its own regressor predicts from the other columns, in σ of
    its normal residuals."""
    sensors = len(regressors)
    nodes, inits = reading.nodes(width)
    predictions = []
    for j, (regressor, columns) in enumerate(zip(regressors, inputs_of)):
        reg_nodes, reg_inits, outputs = sklearn_graph(regressor, len(columns), f"s{j}_")
        # sklearn_graph reads `rows`; feed it the sensor's own columns instead
        reg_nodes[0] = helper.make_node("Gather", ["rows", f"s{j}_columns"], [reg_nodes[0].output[0]], axis=1)
        nodes += reg_nodes
        inits += reg_inits + [_const(f"s{j}_columns", np.array(columns, np.int64))]
        predictions.append(outputs[0])
    nodes += [
        helper.make_node("Concat", predictions, ["predicted"], axis=1),
        helper.make_node("Slice", ["rows", "zero", "sensor_count", "one"], ["measured"]),
        helper.make_node("Sub", ["measured", "predicted"], ["residual"]),
    ]
    averaging, averaging_inits = reading.averaged("residual", "mean_residual", sensors)
    nodes += averaging + [helper.make_node("Abs", ["mean_residual"], ["absolute"]),
                          helper.make_node("Div", ["absolute", "residual_scale"], ["errors"])]
    inits += averaging_inits + [
        _const("zero", np.array([0], np.int64)), _const("sensor_count", np.array([sensors], np.int64)),
        _const("one", np.array([1], np.int64)), _const("residual_scale", residual_scale.astype(np.float32))]
    return _model(nodes, inits, width, "errors", ["n", sensors], ml=True)


def pca_graph(mean: np.ndarray, components: np.ndarray, variances: np.ndarray, t2_limit: float, q_limit: float,
              width: int, reading: RowWindow = RowWindow()) -> bytes:
    """`errors[:, j]` = (x_j − x̂_j)² / Q_lim + x_j (P Λ⁻¹ Pᵀ x)_j / T²_lim.

    Summed over sensors: Q / Q_lim + T² / T²_lim. The Q part of each sensor is its squared
    distance from the normal subspace; the T² part is its exact share of the Hotelling statistic
    (it can be negative for a single sensor; contributions clip it at zero).
    """
    projection = components.T.astype(np.float32)  # [S, k]
    back = components.astype(np.float32)  # [k, S]
    weighted_back = (components / variances[:, None]).astype(np.float32)  # Λ⁻¹ Pᵀ as [k, S]
    nodes, inits = reading.nodes(width)
    nodes += [
        helper.make_node("Sub", ["rows", "pca_mean"], ["centred_rows"]),
        helper.make_node("MatMul", ["centred_rows", "projection"], ["scores_t"]),
        helper.make_node("MatMul", ["scores_t", "back"], ["reconstructed"]),
        helper.make_node("Sub", ["centred_rows", "reconstructed"], ["residual"]),
        helper.make_node("Mul", ["residual", "residual"], ["squared"]),
        helper.make_node("Mul", ["squared", "inv_q_limit"], ["q_part"]),
        helper.make_node("MatMul", ["scores_t", "weighted_back"], ["t2_direction"]),
        helper.make_node("Mul", ["centred_rows", "t2_direction"], ["t2_terms"]),
        helper.make_node("Mul", ["t2_terms", "inv_t2_limit"], ["t2_part"]),
        helper.make_node("Add", ["q_part", "t2_part"], ["row_errors"]),
    ]
    inits += [_const("pca_mean", mean.astype(np.float32)), _const("projection", projection), _const("back", back),
              _const("weighted_back", weighted_back),
              _const("inv_q_limit", np.float32(1.0 / q_limit)), _const("inv_t2_limit", np.float32(1.0 / t2_limit))]
    averaging, averaging_inits = reading.averaged("row_errors", "errors", components.shape[1])
    return _model(nodes + averaging, inits + averaging_inits, width, "errors", ["n", components.shape[1]], ml=False)
