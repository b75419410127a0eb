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


@pytest.mark.parametrize("noun", sorted(KINDS))
def test_a_job_refused_its_start_ends_its_record_failed_with_the_answered_reason(tmp_path, noun):
    kind, record_id, _ = KINDS[noun]
    records = kind(FolderStore(tmp_path))
    record = records.save({"id": record_id, "created_at": "2026-12-01T12:00:00+00:00", "status": "Queued"})
    refusal = ApiError(429, f"{noun}_limit_reached", "SageMaker's quota for processing jobs is reached (limit is 1)")

    def refuse(_record):
        raise refusal

    with pytest.raises(ApiError) as answered:
        records.start(record, refuse)
    assert answered.value is refusal  # the caller answers it unchanged
    stored = records.get(record_id)
    assert stored["status"] == "Failed" and stored["failure_reason"] == refusal.message and stored["ended_at"]
    assert stored["start_error"] == {"status": 429, "code": f"{noun}_limit_reached"}
    assert stored.get("retryable", False) is (noun == "import")  # only an import keeps its files to start again


def test_a_started_job_is_saved_as_the_launcher_left_it(tmp_path):
    records = Trials(FolderStore(tmp_path))
    record = records.save({"id": "f" * 32, "created_at": "2026-12-01T12:00:00+00:00", "status": "Queued"})
    records.start(record, lambda r: {**r, "status": "Executing", "job_name": "ivadas-training-trial-" + "f" * 24})
    assert records.get("f" * 32)["status"] == "Executing" and records.get("f" * 32)["job_name"].endswith("f" * 24)


def test_a_trial_the_model_cannot_score_fails_in_words_and_the_worker_goes_on(tmp_path):
    from trials import run_trial

    records = Trials(FolderStore(tmp_path))
    records.store.put("datasets/trials/x/0.png", b"png")
    record = records.save({"id": "a" * 32, "created_at": "2026-12-01T12:00:00+00:00", "status": "Queued", "class_name": "tiles",
                           "model_url": "file:///m", "images": [{"name": "0.png", "key": "datasets/trials/x/0.png"}]})

    def cannot_score(model, class_name, images):
        raise RuntimeError("the bundle has no threshold for class tiles")

    done = run_trial(records, record, lambda url: object(), cannot_score)
    assert done["status"] == "Failed" and "no threshold for class tiles" in records.get("a" * 32)["failure_reason"]
