"""Experiment tracking with MLflow: every training is a run, for comparing experiments.

The Model Registry stays the governance record (states, approvals, lineage); MLflow holds what an
engineer compares between trainings: the kind's settings, metrics per class, the plots, the data
snapshot, the source revision and the bundle. Runs are grouped by experiment, one per model kind,
named like the kind's model package group (`ivadas-training-patchcore`).

Where runs go is `MLFLOW_TRACKING_URI`: locally the embedded store under `$IVADAS_HOME`
(`sqlite:///.../mlflow.db`, artifacts beside it); on AWS the ARN of the SageMaker managed MLflow
tracking server, whose requests the `sagemaker-mlflow` plugin signs. Without the variable nothing is
tracked. Tracking never fails a training: when MLflow cannot be imported or reached, the step says
so on one line and goes on without a run.

The training step opens the run and records its id in the bundle's lineage (`mlflow_run_id`); the
evaluation step reopens that run to add metrics, plots and the packed bundle, and writes the id into
`evaluation.json`, from where registration copies it into the model version's metadata.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: The prefix of experiment names (the pipeline's name; experiments are `<prefix>-<kind>`).
EXPERIMENT_PREFIX_ENV = "IVADAS_EXPERIMENT_PREFIX"
DEFAULT_PREFIX = "ivadas-training"
#: Where the bundle's lineage and `evaluation.json` keep the run's id.
RUN_ID_KEY = "mlflow_run_id"
TRACKING_KEY = "tracking"
#: The run id recorded when nothing was tracked (registry metadata values cannot be empty).
UNTRACKED = "untracked"
#: An unreachable server must cost seconds, not MLflow's default minutes of retries.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def local_tracking_uri(store: str | Path) -> str:
    """The embedded store of a local artifact store: one SQLite file (MLflow's file backend is retired)."""
    return f"sqlite:///{(Path(store) / 'mlflow' / 'mlflow.db').resolve()}"


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store sit beside its database, not in the working directory's `mlruns`."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def experiment_name(kind: str, prefix: str | None = None) -> str:
    from pipelines.definition import model_package_group

    return model_package_group(prefix or os.environ.get(EXPERIMENT_PREFIX_ENV) or DEFAULT_PREFIX, kind)


def _say(message: str) -> None:
    print(f"tracking: {message}", file=sys.stderr, flush=True)


class TrackedRun:
    """One MLflow run, or nothing when tracking is off or broken: every call is safe to make.

    The first failure switches the run off and is reported once, so a lost server costs one
    timeout, not one per metric.
    """

    def __init__(self, client=None, run_id: str | None = None, experiment_id: str | None = None, uri: str = ""):
        self.client, self.run_id, self.experiment_id, self.uri = client, run_id, experiment_id, uri

    @property
    def active(self) -> bool:
        return self.client is not None and self.run_id is not None

    def _call(self, what: str, action) -> None:
        if not self.active:
            return
        try:
            action()
        except Exception as exc:  # tracking is a convenience; the training's own outputs are what counts
            _say(f"could not {what} on {self.uri} ({_reason(exc)}); training goes on without tracking")
            self.client = None

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in sorted(params.items())]
        self._call("log parameters", lambda: self.client.log_batch(self.run_id, params=items))

    def log_metrics(self, values: dict, step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(_metric_name(k), float(v), now, step) for k, v in sorted(values.items())
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
        self._call("log metrics", lambda: self.client.log_batch(self.run_id, metrics=items))

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)[:5000]) for k, v in sorted(tags.items()) if v not in (None, "")]
        self._call("set tags", lambda: self.client.log_batch(self.run_id, tags=items))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._call(f"upload {path.name}", lambda: self.client.log_artifacts(self.run_id, str(path), folder))
        elif path.is_file():
            self._call(f"upload {path.name}", lambda: self.client.log_artifact(self.run_id, str(path), folder))

    def finish(self, status: str = "FINISHED") -> None:
        self._call("close the run", lambda: self.client.set_terminated(self.run_id, status))

    @contextmanager
    def failed_on_error(self):
        """A block whose error (or interruption) ends the run FAILED before it goes on up."""
        try:
            yield self
        except BaseException:
            self.finish("FAILED")
            raise

    def summary(self) -> dict:
        """What `evaluation.json` and the registry keep: the run's id (empty when nothing was tracked)."""
        if not self.run_id:  # a run that lost its server midway keeps its id: what it holds is still there
            return {"run_id": UNTRACKED, "experiment_id": "", "tracking_uri": ""}
        return {"run_id": self.run_id, "experiment_id": self.experiment_id or "", "tracking_uri": _shown_uri(self.uri)}


def _metric_name(name: str) -> str:
    """MLflow names take letters, digits, `_ - . / :` and spaces."""
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in str(name))[:250]


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _shown_uri(uri: str) -> str:
    """A URI fit to store in metadata: no credentials from `https://user:secret@host`."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri


def _client(uri: str):
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=local_artifact_root(uri))
    except Exception:  # another step created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def start_run(kind: str, run_name: str, tags: dict | None = None, uri: str | None = None,
              announce: bool = True) -> TrackedRun:
    """A new run in the kind's experiment; an inactive one when tracking is off or unreachable.
    `announce=False` leaves naming the run to the caller (a command that prints it once it succeeded)."""
    uri = uri if uri is not None else os.environ.get(TRACKING_URI_ENV, "")
    if not uri:
        return TrackedRun()
    try:
        client = _client(uri)
        experiment = _experiment_id(client, experiment_name(kind), uri)
        run = client.create_run(experiment, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items() if v})
    except Exception as exc:
        _say(f"MLflow at {_shown_uri(uri)} is not usable ({_reason(exc)}); training goes on without tracking")
        return TrackedRun()
    if announce:
        _say(f"run {run.info.run_id} in experiment {experiment_name(kind)!r} at {_shown_uri(uri)}")
    return TrackedRun(client, run.info.run_id, experiment, uri)


def resume_run(run_id: str, kind: str, run_name: str, uri: str | None = None) -> TrackedRun:
    """The run the training opened (reopened to add evaluation results), or a new one when it is gone."""
    uri = uri if uri is not None else os.environ.get(TRACKING_URI_ENV, "")
    if not uri:
        return TrackedRun()
    if run_id:
        try:
            client = _client(uri)
            run = client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            return TrackedRun(client, run_id, run.info.experiment_id, uri)
        except Exception as exc:
            _say(f"run {run_id} is not available at {_shown_uri(uri)} ({_reason(exc)}); starting a new one")
    return start_run(kind, run_name, uri=uri)


def lineage_tags(lineage: dict, kind: str) -> dict:
    """MLflow's own tag names where it has them, so its UI shows the revision and source."""
    return {
        "mlflow.source.git.commit": lineage.get("source_revision", ""),
        "mlflow.source.name": "ivadas pipeline",
        "ivadas.model_kind": kind,
        "ivadas.data_uri": lineage.get("data_uri", ""),
        "ivadas.data_snapshot": lineage.get("data_snapshot", ""),
        "ivadas.execution_id": lineage.get("execution_id", ""),
        "ivadas.classes": ",".join(lineage["classes"]) if isinstance(lineage.get("classes"), list) else lineage.get("classes", ""),
    }


def resolved_settings(manifest: dict, logged: dict) -> dict:
    """The settings the kind resolved (its defaults included) that the run does not hold yet: a run of
    `ivadas train --model patchcore` names its backbone, weights and image size even when left to defaults.
    Values already logged are left alone (MLflow refuses to change a parameter)."""
    found = {key: value for key, value in (manifest.get("config") or {}).items() if value is not None}
    backbone = manifest.get("backbone") or {}
    found.update({key: backbone[source] for key, source in (("backbone", "name"), ("weights", "weights")) if backbone.get(source)})
    written = {str(key) for key in logged}
    return {key: ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            for key, value in found.items() if key not in written and not isinstance(value, dict)}


def evaluation_metrics(report: dict) -> dict:
    """Flat MLflow metrics of an evaluation report: `mean.<metric>` and `<class>.<metric>`."""
    flat = {f"mean.{key}": value for key, value in report.get("mean", {}).items()}
    for name, values in report.get("classes", {}).items():
        flat.update({f"{name}.{key}": value for key, value in values.items()})
    return flat
