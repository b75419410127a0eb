"""`python -m infra.local.training_worker`: what SageMaker Pipelines and a trial's scoring job do
in the cloud, for the local stack. It picks up trainings, trials and detector imports the API queued
in the store (`trainings/*.json`, `trials/*.json`, `imports/*.json`), oldest first, one at a time,
and writes their progress back.

Trainings run the local pipeline (the same steps, gate and registration as `ivadas pipeline run`)
on the dataset snapshot the API made; each step's start and end are written into the record as
they happen, so `GET /trainings/{id}` shows live progress. A training the worker finds Executing
when it starts was cut off by a stop of the stack: it is marked Failed, in words.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from pipelines.local_runner import LocalPipeline, PipelineFailed, RunParameters, source_revision

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "lambda" / "predict"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

from class_datasets import now  # noqa: E402  (the API's own record formats)
from imports import IMPORTS, ImportRecords, finish  # noqa: E402
from object_store import FolderStore  # noqa: E402
from trainings import TrainingRecords  # noqa: E402
from trials import Trials, run_trial  # noqa: E402


class ObservedPipeline(LocalPipeline):
    """The local pipeline, reporting each step as it starts and ends."""

    def __init__(self, *args, on_change, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_change = on_change

    def _step(self, record, run_dir, name, key, out, command, env, after=None):
        self.on_change(record, running=name)
        try:
            super()._step(record, run_dir, name, key, out, command, env, after)
        finally:
            self.on_change(record, running=None)


class TrainingWorker:
    def __init__(self, store_root: str | Path, pipeline_name: str = "ivadas-training", echo=print):
        self.store_root = Path(store_root)
        self.store = FolderStore(self.store_root)
        self.trainings = TrainingRecords(self.store)
        self.trials = Trials(self.store)
        self.imports = ImportRecords(self.store)
        self.pipeline_name = pipeline_name
        self.echo = echo

    def recover(self) -> None:
        """Trainings and trials left Executing by a stack that stopped are failed, not left hanging."""
        for record in self.trainings.all():
            if record["status"] == "Executing":
                record.update(status="Failed", failure_reason="the local stack stopped while this training ran; start it again",
                              ended_at=now())
                self.trainings.save(record)
        for trial in self.trials.all():
            if trial["status"] == "Executing":
                trial.update(status="Failed", failure_reason="the local stack stopped while this trial ran", ended_at=now())
                self.trials.save(trial)
        for record in self.imports.all():
            if record["status"] == "Executing":
                finish(self.imports, record, None, "the local stack stopped while this import ran; upload it again")

    def run_once(self) -> bool:
        """Run the oldest queued training or trial; False when nothing waits."""
        queued = [r for r in self.trainings.all() if r["status"] == "Queued"]
        if queued:
            self.train(queued[-1])
            return True
        trials = [t for t in self.trials.all() if t["status"] == "Queued"]
        if trials:
            self.echo(f"trial {trials[-1]['id']} of {trials[-1]['version']}")
            from pipelines.steps.trial import score_images

            run_trial(self.trials, trials[-1], self._load_model, score_images)
            return True
        imports = [r for r in self.imports.all() if r["status"] == "Queued"]
        if imports:
            self.import_detector(imports[-1])
            return True
        return False

    def import_detector(self, record: dict) -> dict:
        """`ivadas models import` on the uploaded files, into the local registry (the Processing job's
        work on AWS); a refusal is the importer's message, and nothing is registered."""
        from inference.errors import IvadasError
        from pipelines.detector.job import run_import

        self.echo(f"import {record['id']}: detector for {record['class_name']}")
        record.update(status="Executing", started_at=now())
        self.imports.save(record)
        try:
            result = run_import(self.store_root / IMPORTS / record["id"], record["class_name"], record["anomalous_classes"],
                                record["iou"], self.pipeline_name, record.get("by"), store=self.store_root,
                                graph_name=record["files"]["graph"]["filename"])
        except IvadasError as exc:
            return finish(self.imports, record, None, exc.message)
        except Exception as exc:  # still a reason in words for the page, and the trace in the worker's log
            self.echo(traceback.format_exc())
            return finish(self.imports, record, None, f"the import failed unexpectedly: {exc}")
        self.echo(f"import {record['id']}: registered {result['version']}")
        return finish(self.imports, record, result, None)

    @staticmethod
    def _load_model(model_url: str):
        from inference.model import load_model

        return load_model(model_url)

    def train(self, record: dict) -> dict:
        self.echo(f"training {record['id']}: {', '.join(record['classes'])} ({record['kind']})")
        record.update(status="Executing", started_at=now())
        self.trainings.save(record)

        def on_change(run: dict, running: str | None) -> None:
            steps = [{k: v for k, v in s.items() if k in ("name", "status", "seconds", "cached", "failure_reason",
                                                           "outcome", "detail", "model_version")} for s in run["steps"]]
            if running:
                steps.append({"name": running, "status": "Executing"})
            record.update(steps=steps, execution_id=run["execution_id"])
            self.trainings.save(record)

        pipeline = ObservedPipeline(self.store_root, self.pipeline_name, echo=self.echo, on_change=on_change)
        settings = dict(record["settings"])
        gate = {"gate": float(record["gate"])} if record.get("gate") is not None else {}
        params = RunParameters(record["data_uri"], tuple(record["classes"]), record["kind"], settings,
                               source_revision=source_revision(), **gate)
        try:
            run = pipeline.run(params)
        except PipelineFailed as failed:
            run = failed.record
        except Exception as exc:  # a refusal before any step (a missing class, bad settings): said in words
            self.echo(traceback.format_exc())
            record.update(status="Failed", failure_reason=str(exc) or type(exc).__name__, ended_at=now())
            return self.trainings.save(record)
        on_change(run, None)
        record.update(status=run["status"], ended_at=now(), execution_id=run["execution_id"])
        for key in ("failure_reason", "registered_version", "metrics", "evaluation_uri"):
            if key in run:
                record[key] = run[key]
        self.echo(f"training {record['id']}: {record['status']} {record.get('registered_version') or record.get('failure_reason', '')}")
        return self.trainings.save(record)

    def serve(self, poll_s: float = 1.0) -> None:
        self.recover()
        while True:
            if not self.run_once():
                time.sleep(poll_s)


def _stop(signum, frame):
    """SIGTERM from the stack: the pipeline step running now (a child in this process group) stops too."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(os.getpgrp(), signal.SIGTERM)
    raise SystemExit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    store = os.environ["DATASET_STORE"]
    worker = TrainingWorker(store, os.environ.get("PIPELINE_NAME", "ivadas-training"),
                            echo=lambda line: print(line, flush=True))
    worker.serve(float(os.environ.get("TRAINING_POLL_S", "1.0")))


if __name__ == "__main__":
    main()
