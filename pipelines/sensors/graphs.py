"""ONNX graphs for sensor kinds whose model is not a torch module: scikit-learn estimators converted
with skl2onnx, and closed-form maths written as ONNX operators. Every graph takes `window`
`[N, context, W]` and gives `score` `[N]` or `errors` `[N, S]` (see `inference.sensors.scorer`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ML_OPSET = 3
INPUT = "window"


def _opsets(ml: bool) -> list:
    return [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("ai.onnx.ml", ML_OPSET)] if ml else [])


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _rows_of_window(width: int) -> tuple[list, list]:
    """Nodes turning `window` `[N, 1, W]` into `rows` `[N, W]` (row-wise models read one row)."""
    return [helper.make_node("Reshape", [INPUT, "rows_shape"], ["rows"])], [_const("rows_shape", np.array([-1, width], np.int64))]


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


def isolation_forest_graph(forest, width: int) -> bytes:
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
    nodes, inits = _rows_of_window(width)
    nodes += [
        helper.make_node("TreeEnsembleRegressor", ["rows"], ["mean_depth"], domain="ai.onnx.ml", n_targets=1,
                         aggregate_function="SUM", post_transform="NONE", **attributes),
        helper.make_node("Mul", ["mean_depth", "minus_ln2"], ["exponent"]),
        helper.make_node("Exp", ["exponent"], ["scores"]),
        helper.make_node("Reshape", ["scores", "flat_shape"], ["score"]),
    ]
    inits += [_const("minus_ln2", np.array(-np.log(2.0), np.float32)), _const("flat_shape", np.array([-1], np.int64))]
    return _model(nodes, inits, width, "score", ["n"], ml=True)


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


def residual_graph(regressors: list, inputs_of: list[list[int]], residual_scale: np.ndarray, width: int) -> bytes:
    """`errors[:, j]` = |x_j − f_j(x[inputs_of[j]])| / residual_scale[j]: sensor j's residual in σ of
    its normal residuals, each sensor predicted by its own regressor from the other columns."""
    sensors = len(regressors)
    nodes, inits = _rows_of_window(width)
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
        helper.make_node("Abs", ["residual"], ["absolute"]),
        helper.make_node("Div", ["absolute", "residual_scale"], ["errors"]),
    ]
    inits += [_const("zero", np.array([0], np.int64)), _const("sensor_count", np.array([sensors], np.int64)),
              _const("one", np.array([1], np.int64)), _const("residual_scale", residual_scale.astype(np.float32))]
    return _model(nodes, inits, width, "errors", ["n", sensors], ml=True)


def pca_graph(components: np.ndarray, variances: np.ndarray, t2_limit: float, q_limit: float, width: int) -> bytes:
    """`errors[:, j]` = (x_j − x̂_j)² / Q_lim + x_j (P Λ⁻¹ Pᵀ x)_j / T²_lim.

    Summed over sensors: Q / Q_lim + T² / T²_lim. The Q part of each sensor is its squared
    distance from the normal subspace; the T² part is its exact share of the Hotelling statistic
    (it can be negative for a single sensor; contributions clip it at zero).
    """
    projection = components.T.astype(np.float32)  # [S, k]
    back = components.astype(np.float32)  # [k, S]
    weighted_back = (components / variances[:, None]).astype(np.float32)  # Λ⁻¹ Pᵀ as [k, S]
    nodes, inits = _rows_of_window(width)
    nodes += [
        helper.make_node("MatMul", ["rows", "projection"], ["scores_t"]),
        helper.make_node("MatMul", ["scores_t", "back"], ["reconstructed"]),
        helper.make_node("Sub", ["rows", "reconstructed"], ["residual"]),
        helper.make_node("Mul", ["residual", "residual"], ["squared"]),
        helper.make_node("Mul", ["squared", "inv_q_limit"], ["q_part"]),
        helper.make_node("MatMul", ["scores_t", "weighted_back"], ["t2_direction"]),
        helper.make_node("Mul", ["rows", "t2_direction"], ["t2_terms"]),
        helper.make_node("Mul", ["t2_terms", "inv_t2_limit"], ["t2_part"]),
        helper.make_node("Add", ["q_part", "t2_part"], ["errors"]),
    ]
    inits += [_const("projection", projection), _const("back", back), _const("weighted_back", weighted_back),
              _const("inv_q_limit", np.float32(1.0 / q_limit)), _const("inv_t2_limit", np.float32(1.0 / t2_limit))]
    return _model(nodes, inits, width, "errors", ["n", components.shape[1]], ml=False)
