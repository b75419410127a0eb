"""A record per job the API starts (a training, a trial, a detector import): one JSON object in the
store at `<folder>/<id>.json`, the job's own files, if any, under `<folder>/<id>/`. The API writes
them when it starts or refreshes a job; the local stack's worker when it runs one.

A job SageMaker refuses to start (its quota used up, a role it cannot assume, ...) ends its record
Failed with the API's words before the error is answered: a record left Queued would never run, and
the list would show it waiting for ever."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from api_core import ApiError
from class_datasets import now


def seconds_since(moment: str, at: datetime | None = None) -> float:
    """Seconds from a record's ISO time (`now()`) to `at`, by default now."""
    return ((at or datetime.now(timezone.utc)) - datetime.fromisoformat(moment)).total_seconds()


class JobRecords:
    #: where the records live in the store, e.g. "datasets/trainings"
    folder = ""
    #: what one is called in errors: "training" gives `unknown_training` and "no training <id>"
    noun = ""
    #: the 400 for an id that cannot be one
    not_an_id = ""

    def __init__(self, store):
        self.store = store

    def key(self, record_id: str) -> str:
        return f"{self.folder}/{record_id}.json"

    def check_id(self, record_id: str) -> None:
        """Ids are letters, digits and hyphens (a time and a random part); anything else is refused
        before it becomes part of a key."""
        if not (record_id or "").replace("-", "").isalnum() or len(record_id) > 64:
            raise ApiError(400, "bad_request", self.not_an_id)

    def save(self, record: dict) -> dict:
        record["updated_at"] = now()
        self.store.put(self.key(record["id"]), json.dumps(record, indent=1, sort_keys=True).encode())
        return record

    def start(self, record: dict, start) -> dict:
        """Save what `start(record)` makes of the record (the job's name, Executing); if the job is
        refused, the record is `refused` and the error goes on to the caller."""
        try:
            started = start(record)
        except ApiError as error:
            self.refused(record, error)
            raise
        return self.save(started)

    def refused(self, record: dict, error: ApiError) -> dict:
        """The job never started: the record ends Failed with the reason the API answered, and
        `start_error` tells a refusal (nothing ran) from a job that ran and failed."""
        record.update(status="Failed", failure_reason=error.message, start_error={"status": error.status, "code": error.code},
                      ended_at=now())
        return self.save(record)

    def get(self, record_id: str) -> dict:
        self.check_id(record_id)
        if not self.store.exists(self.key(record_id)):
            raise ApiError(404, f"unknown_{self.noun}", f"no {self.noun} {record_id}")
        return json.loads(self.store.get(self.key(record_id)))

    def all(self) -> list[dict]:
        """Every record, newest first (the job's own files beside them are not records)."""
        depth = self.folder.count("/") + 1
        records = [json.loads(self.store.get(k)) for k in self.store.list(f"{self.folder}/")
                   if k.count("/") == depth and k.endswith(".json")]
        return sorted(records, key=lambda r: r["created_at"], reverse=True)
