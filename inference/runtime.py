"""ONNX Runtime sessions as every model kind opens them (one set of options for all graphs)."""

from __future__ import annotations

import os

import onnxruntime as ort

from inference.errors import BundleError


def session_options(threads: int | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning ORT workers fight faiss's OpenMP threads for the same cores between calls.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    threads = threads or int(os.environ.get("IVADAS_ORT_THREADS", "0"))
    if threads:
        options.intra_op_num_threads = threads
    return options


def open_session(source: str | os.PathLike | bytes, threads: int | None = None, what: str = "graph") -> ort.InferenceSession:
    """A CPU session for an ONNX graph (a file or its bytes); one ONNX Runtime cannot load is a bundle error."""
    try:
        model = source if isinstance(source, bytes) else str(source)
        return ort.InferenceSession(model, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        name = "" if isinstance(source, bytes) else f" {os.path.basename(str(source))}"
        raise BundleError(f"the {what}{name} cannot be loaded by ONNX Runtime: {exc}") from None
