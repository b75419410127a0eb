"""Which inspection images the history keeps: every anomalous one, and a fixed sample of normal ones,
so that a missed defect can be reported from the history without keeping every good part's image."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambda" / "predict"))

import inspection_log  # noqa: E402


def record(request_id: str, is_anomaly: bool) -> dict:
    return {"request_id": request_id, "timestamp": "2026-12-01T10:00:00.000Z", "class_name": "tiles",
            "model_kind": "patchcore", "model_version": "1", "anomaly_score": 0.9 if is_anomaly else 0.1,
            "raw_score": 1.0, "threshold": 0.5, "is_anomaly": is_anomaly, "image_key": None, "detail": None}


def test_a_sample_of_normal_images_is_kept_always_the_same_requests(tmp_path):
    log = inspection_log.SqliteInspectionLog(tmp_path / "log.sqlite", tmp_path / "images", store_anomalous_images=True,
                                             keep_normal_percent=10)
    kept = [log.record(record(f"req-{n}", False), b"png")["image_key"] is not None for n in range(1000)]
    assert 0.08 <= sum(kept) / len(kept) <= 0.12  # the share asked for
    again = [inspection_log.keeps_image(record(f"req-{n}", False), True, 10) for n in range(1000)]
    assert again == kept  # a request is in or out of the sample for good
    assert all(log.record(record(f"bad-{n}", True), b"png")["image_key"] for n in range(50))  # every anomaly
    kept_files = {p.name for p in (tmp_path / "images").iterdir()}
    assert len(kept_files) == sum(kept) + 50
    listed = {r["request_id"]: r["image_key"] for r in log.recent(limit=200)}
    assert all(Path(key).read_bytes() == b"png" for key in listed.values() if key)  # the history says where


def test_none_or_all_normal_images_and_nothing_without_storage(tmp_path):
    none = inspection_log.SqliteInspectionLog(tmp_path / "a.sqlite", tmp_path / "a", store_anomalous_images=True)
    every = inspection_log.SqliteInspectionLog(tmp_path / "b.sqlite", tmp_path / "b", store_anomalous_images=True,
                                               keep_normal_percent=100)
    assert not any(none.record(record(f"r{n}", False), b"png")["image_key"] for n in range(100))
    assert all(every.record(record(f"r{n}", False), b"png")["image_key"] for n in range(100))
    off = inspection_log.SqliteInspectionLog(tmp_path / "c.sqlite", tmp_path / "c", store_anomalous_images=False,
                                             keep_normal_percent=100)
    assert off.record(record("x", True), b"png")["image_key"] is None  # anomalies follow their own switch
    assert off.record(record("y", False), b"png")["image_key"] is not None


def test_the_setting_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTION_LOG", "sqlite")
    monkeypatch.setenv("INSPECTION_DB", str(tmp_path / "log.sqlite"))
    monkeypatch.setenv("KEEP_NORMAL_IMAGES_PERCENT", "100")
    assert inspection_log.from_environment().keep_normal_percent == 100.0
    monkeypatch.delenv("KEEP_NORMAL_IMAGES_PERCENT")
    assert inspection_log.from_environment().keep_normal_percent == 0.0
