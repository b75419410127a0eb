"""Trainings, trials and detector imports keep one JSON record per job the same way: `<folder>/<id>.json`
in the store, the job's own files beside it in `<folder>/<id>/`, listed newest first, and an id that
cannot be one or names no record refused in the API's words."""

import json

import pytest

import tests.serving.test_predict_lambda  # noqa: F401  (puts lambda/predict on sys.path)

from api_core import ApiError  # noqa: E402
from imports import ImportRecords  # noqa: E402
from object_store import FolderStore  # noqa: E402
from trainings import TrainingRecords  # noqa: E402
from trials import Trials  # noqa: E402

KINDS = {"training": (TrainingRecords, "20261201T120000-0a1b2c3d", "not a training id"),
         "import": (ImportRecords, "20261201T120000-4e5f6a7b", "not an import id"),
         "trial": (Trials, "0123456789abcdef" * 2, "trial_id is not a trial's id")}


@pytest.mark.parametrize("noun", sorted(KINDS))
def test_a_record_is_one_json_object_per_job_listed_newest_first(tmp_path, noun):
    kind, record_id, _ = KINDS[noun]
    records = kind(FolderStore(tmp_path))
    older = {"id": record_id, "created_at": "2026-12-01T12:00:00+00:00", "status": "Queued"}
    newer = {"id": record_id[:-1] + "9", "created_at": "2026-12-01T12:05:00+00:00", "status": "Queued"}
    for record in (older, newer):
        records.save(record)
    (tmp_path / records.folder / record_id).mkdir()
    (tmp_path / records.folder / record_id / "result.json").write_text("{}")  # a job's own file is not a record
    stored = json.loads((tmp_path / f"{records.folder}/{record_id}.json").read_text())
    assert stored == older and stored["updated_at"]
    assert [r["id"] for r in records.all()] == [newer["id"], record_id]
    assert records.get(record_id)["status"] == "Queued"


@pytest.mark.parametrize("noun", sorted(KINDS))
def test_an_id_that_cannot_be_one_is_a_400_and_an_unknown_one_a_404(tmp_path, noun):
    kind, record_id, not_an_id = KINDS[noun]
    records = kind(FolderStore(tmp_path))
    for bad in ("../../etc/passwd", "", None):
        with pytest.raises(ApiError) as refused:
            records.get(bad)
        assert (refused.value.status, refused.value.code, refused.value.message) == (400, "bad_request", not_an_id)
    with pytest.raises(ApiError) as unknown:
        records.get(record_id)
    assert (unknown.value.status, unknown.value.code, unknown.value.message) == (404, f"unknown_{noun}", f"no {noun} {record_id}")
