"""Run the training pipeline on this machine with the same steps, order, gate and registration.

The artifact store is a folder laid out like the S3 bucket: step outputs under
`pipelines/<name>/cache/<step>/<key>/`, runs under `pipelines/<name>/executions/<id>/` (run record
and per-step logs), the registry under `registry/`. Each step runs its SageMaker entry point as a
separate process. Outputs are cached by a hash of everything the step reads (code, arguments,
data, upstream outputs), as SageMaker's step caching does: an unchanged re-run skips finished steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import inference
from inference.errors import DatasetError
from inference.kinds import kind_info
from pipelines import tracking
from pipelines.definition import DEFAULT_GATE, EVALUATION_FILE, model_package_group
from pipelines.modalities import of_kind
from pipelines.monitoring.reference import MONITORING_REFERENCE_KEY, REFERENCE_FILE
from pipelines.registry import PENDING, LocalRegistry, ModelVersion

PACKAGES = ("inference", "pipelines")


@dataclass(frozen=True)
class RunParameters:
    """The pipeline's parameters (names follow the SageMaker definition's)."""

    data_uri: str
    classes: tuple[str, ...]
    model_kind: str = "patchcore"
    #: the kind's own settings (backbone, coreset_ratio, window, ...), as strings like SageMaker's
    settings: dict = field(default_factory=dict)
    gate: float = DEFAULT_GATE
    approval_status: str = PENDING
    source_revision: str = "unknown"

    def hyperparameters(self) -> dict[str, str]:
        return {
            **{key: str(value) for key, value in self.settings.items()},
            "model": self.model_kind, "classes": ",".join(self.classes),
            "data_uri": str(self.data_uri), "source_revision": self.source_revision,
        }


class PipelineFailed(RuntimeError):
    def __init__(self, record: dict):
        super().__init__(record["failure_reason"])
        self.record = record


def _digest(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def code_fingerprint() -> str:
    """Hash of the installed IVADAS sources: changing the code invalidates cached steps."""
    digest = hashlib.sha256(inference.__version__.encode())
    root = Path(inference.__file__).resolve().parent.parent
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:20]


def data_fingerprint(root: Path, classes) -> str:
    entries = []
    for name in classes:
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                stat = path.stat()
                entries.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return _digest(entries)


def check_classes(data: Path, params: RunParameters) -> None:
    found = of_kind(params.model_kind).list_classes(data)
    missing = [name for name in params.classes if name not in found]
    if missing:
        noun, plural = ("asset", "assets") if kind_info(params.model_kind).modality == "sensors" else ("class", "classes")
        raise DatasetError(f"{noun} {', '.join(map(repr, missing))} is not in {data}; {plural} found: {', '.join(found) or 'none'}")


def source_revision() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(inference.__file__).resolve().parent.parent)
        return result.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class LocalPipeline:
    def __init__(self, store: str | Path, name: str = "ivadas-training", echo=print):
        self.store = Path(store)
        self.name = name
        self.echo = echo
        self.registry = LocalRegistry(self.store)
        # MLflow: the embedded store under the artifact store unless MLFLOW_TRACKING_URI says otherwise
        # (set but empty: no tracking)
        self.tracking_uri = os.environ.get(tracking.TRACKING_URI_ENV, tracking.local_tracking_uri(self.store))

    @property
    def root(self) -> Path:
        return self.store / "pipelines" / self.name

    def run(self, params: RunParameters) -> dict:
        """Execute the pipeline; returns the run record (raises `PipelineFailed` on a failed step)."""
        data = Path(params.data_uri)
        check_classes(data, params)  # a missing folder or class is one clear line, before any work
        execution = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        run_dir = self.root / "executions" / execution
        (run_dir / "logs").mkdir(parents=True)
        record = {"execution_id": execution, "pipeline": self.name, "parameters": asdict(params), "steps": [],
                  "status": "Executing", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        code, fingerprint = code_fingerprint(), data_fingerprint(data, params.classes)
        try:
            manifest_dir = self._preprocess(record, run_dir, params, code, fingerprint)
            model = self._train(record, run_dir, params, code, fingerprint, manifest_dir, execution)
            evaluation = self._evaluate(record, run_dir, params, code, fingerprint, model)
            self._gate_and_register(record, params, model, evaluation, execution)
        except _StepError as exc:
            record.update(status="Failed", failure_reason=str(exc))
        finally:
            record["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            (run_dir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True))
        if record["status"] == "Failed":
            raise PipelineFailed(record)
        return record

    # -------------------------------------------------------------------------------- steps

    def _preprocess(self, record, run_dir, params, code, fingerprint) -> Path:
        args = {"classes": ",".join(params.classes), "kind": params.model_kind,
                "settings": json.dumps({k: str(v) for k, v in params.settings.items()}, sort_keys=True)}
        key = _digest("Preprocess", code, args, fingerprint)
        out = self._cache_dir("preprocess", key)
        command = [sys.executable, "-m", "pipelines.steps.preprocess", "--input", str(params.data_uri),
                   "--output", str(out / "manifest"), "--classes", args["classes"], "--kind", args["kind"],
                   "--settings", args["settings"]]
        self._step(record, run_dir, "Preprocess", key, out, command, {})
        return out / "manifest"

    def _train(self, record, run_dir, params, code, fingerprint, manifest_dir, execution) -> Path:
        hp = params.hyperparameters()
        key = _digest("Train", code, hp, fingerprint, manifest_dir.parent.name)
        out = self._cache_dir("train", key)
        env = {
            "SM_CHANNEL_DATA": str(params.data_uri), "SM_CHANNEL_MANIFEST": str(manifest_dir),
            "SM_MODEL_DIR": str(out / "model"), "SM_OUTPUT_DATA_DIR": str(out / "output" / "data"),
            "SM_OUTPUT_DIR": str(out / "output"),
            "SM_HPS": json.dumps({**hp, "execution_id": execution, "data_snapshot": fingerprint}),
            **self._tracking_env(),
        }
        command = [sys.executable, "-m", "pipelines.steps.train"]
        self._step(record, run_dir, "Train", key, out, command, env, after=lambda: self._pack(out))
        return out / "output" / "model.tar.gz"

    def _pack(self, out: Path) -> None:
        """What SageMaker does after a training job: pack the model directory as model.tar.gz."""
        import shutil

        from inference.bundle import pack_bundle

        pack_bundle(out / "model", out / "output" / "model.tar.gz")
        shutil.rmtree(out / "model")

    def _evaluate(self, record, run_dir, params, code, fingerprint, model: Path) -> dict:
        args = {"classes": ",".join(params.classes)}
        key = _digest("Evaluate", code, args, fingerprint, model.parent.parent.name)
        out = self._cache_dir("evaluate", key)
        command = [sys.executable, "-m", "pipelines.steps.evaluate", "--model", str(model), "--input",
                   str(params.data_uri), "--output", str(out / "evaluation"), "--classes", args["classes"]]
        self._step(record, run_dir, "Evaluate", key, out, command, self._tracking_env())
        evaluation = json.loads((out / "evaluation" / EVALUATION_FILE).read_text())
        record["tracking"] = evaluation.get(tracking.TRACKING_KEY, {"run_id": tracking.UNTRACKED})
        record["metrics"] = {"split": evaluation.get("split", {}).get("name"), "mean": evaluation["mean"], "classes": {
            name: {k: v for k, v in m.items() if k != "problems"} for name, m in evaluation["classes"].items()}}
        record["evaluation_uri"] = str(out / "evaluation" / EVALUATION_FILE)
        return evaluation

    def _gate_and_register(self, record, params, model: Path, evaluation: dict, execution: str) -> None:
        started = time.perf_counter()
        metric = of_kind(params.model_kind).GATE_METRIC
        value = evaluation["mean"].get(metric)
        passed = value is not None and value >= params.gate
        record["steps"].append({"name": "QualityGate", "status": "Succeeded", "seconds": 0.0,
                                "outcome": "passed" if passed else "failed",
                                "detail": f"mean {metric} {value} vs gate {params.gate}"})
        if not passed:
            undefined = evaluation.get("quality_gate", {}).get("reason") or f"mean {metric.replace('_', ' ')} is undefined"
            reason = undefined if value is None else f"mean {metric.replace('_', ' ')} {value} is below the gate {params.gate}"
            record["steps"].append({"name": "QualityGateFailed", "status": "Failed", "failure_reason": reason})
            self.echo(f"✗ QualityGateFailed: {reason}")
            raise _StepError(reason)
        reference = Path(record["evaluation_uri"]).parent / REFERENCE_FILE
        version = self.register(params, model, evaluation, execution, reference if reference.is_file() else None)
        record["steps"].append({"name": "Register", "status": "Succeeded", "seconds": round(time.perf_counter() - started, 3),
                                "model_version": version.id})
        record.update(status="Succeeded", registered_version=version.id)
        self.echo(f"✓ Register: {version.id} ({version.status})")

    def register(self, params: RunParameters, model: Path, evaluation: dict, execution: str,
                 reference: Path | None = None) -> ModelVersion:
        metadata = {"data_uri": str(params.data_uri), "classes": ",".join(params.classes), "model_kind": params.model_kind,
                    "modality": kind_info(params.model_kind).modality,
                    **{key: str(value) for key, value in params.settings.items()},
                    "source_revision": params.source_revision, "execution_id": execution,
                    tracking.RUN_ID_KEY: evaluation.get(tracking.TRACKING_KEY, {}).get("run_id", tracking.UNTRACKED)}
        if reference is not None:  # what drift monitoring compares this version's traffic with
            metadata[MONITORING_REFERENCE_KEY] = str(reference.resolve())
        per_class = {name: {k: v for k, v in m.items() if isinstance(v, (int, float)) or v is None}
                     for name, m in evaluation["classes"].items()}
        metrics = {"mean": evaluation["mean"], "classes": per_class,
                   "binary_classification_metrics": evaluation["binary_classification_metrics"]}
        return self.registry.register(model_package_group(self.name, params.model_kind), str(model.resolve()), metrics,
                                      metadata, params.approval_status)

    # ------------------------------------------------------------------------------ helpers

    def _tracking_env(self) -> dict:
        return {tracking.TRACKING_URI_ENV: self.tracking_uri, tracking.EXPERIMENT_PREFIX_ENV: self.name}

    def _cache_dir(self, step: str, key: str) -> Path:
        return self.root / "cache" / step / key

    def _step(self, record, run_dir, name, key, out: Path, command, env, after=None) -> None:
        entry = {"name": name, "cache_key": key, "outputs": str(out), "log": str(run_dir / "logs" / f"{name}.log")}
        record["steps"].append(entry)
        if (out / "_SUCCESS").is_file():
            entry.update(status="Succeeded", cached=True, seconds=0.0)
            (run_dir / "logs" / f"{name}.log").write_text(f"cache hit: outputs of {out} reused\n")
            self.echo(f"✓ {name}: cached ({key})")
            return
        out.mkdir(parents=True, exist_ok=True)
        self.echo(f"▶ {name} ...")
        started = time.perf_counter()
        with open(entry["log"], "w") as log:
            step_env = {**os.environ, "SM_OUTPUT_DIR": str(out / "output"), **env}  # never /opt/ml on this machine
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=step_env)
        entry["seconds"] = round(time.perf_counter() - started, 2)
        if result.returncode != 0:
            reason = _failure_reason(Path(entry["log"]), out)
            entry.update(status="Failed", failure_reason=reason, cached=False)
            self.echo(f"✗ {name} failed after {entry['seconds']}s: {reason} (log: {entry['log']})")
            raise _StepError(f"{name} failed: {reason}")
        if after:
            after()
        (out / "_SUCCESS").write_text(json.dumps({"execution_id": record["execution_id"]}))
        entry.update(status="Succeeded", cached=False)
        self.echo(f"✓ {name}: {entry['seconds']}s")


class _StepError(Exception):
    pass


def _failure_reason(log: Path, out: Path) -> str:
    failure = out / "output" / "failure"
    if failure.is_file():
        return failure.read_text().strip()
    lines = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
    return lines[-1][len("error: "):] if lines else f"see {log}"


def read_runs(store: str | Path, name: str = "ivadas-training") -> list[dict]:
    root = Path(store) / "pipelines" / name / "executions"
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/run.json"))] if root.is_dir() else []


__all__ = ["LocalPipeline", "RunParameters", "PipelineFailed", "read_runs", "source_revision"]
