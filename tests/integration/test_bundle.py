import json
import tarfile

import numpy as np
import pytest

from inference.bundle import SCHEMA_VERSION, manifest_of
from inference.errors import BundleError
from inference.model import load_model as load_bundle


def repack(source, target, edit):
    """Copy a bundle, letting `edit(name, bytes) -> bytes | None` change or drop members."""
    with tarfile.open(source) as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            data = edit(member.name, src.extractfile(member).read())
            if data is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            import io

            dst.addfile(info, io.BytesIO(data))
    return target


def edit_manifest(change):
    def edit(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        change(manifest)
        return json.dumps(manifest).encode()

    return edit


def test_manifest_content(patchcore_bundle):
    path, report = patchcore_bundle
    manifest = manifest_of(path)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["kind"] == "patchcore"
    assert set(manifest["classes"]) == {"tiles", "fabric"}
    assert manifest["modality"] == "image"
    entry = manifest["classes"]["tiles"]
    assert {"threshold", "calibration", "score_stats", "memory_bank", "split"} <= set(entry)
    assert set(manifest["files"]) == {"backbone.onnx", "classes/tiles/memory_bank.npz", "classes/fabric/memory_bank.npz"}
    assert all(len(digest) == 64 for digest in manifest["files"].values())
    assert manifest["backbone"]["name"] == "resnet18"
    assert manifest["backbone"]["weights"].startswith("random")
    assert manifest["preprocessing"]["image_size"] == 160
    assert manifest["lineage"]["version"] == "test-1" and manifest["lineage"]["classes"] == ["tiles", "fabric"]


def test_round_trip_scores_identically(patchcore_bundle, detector, demo_data):
    from inference.vision.imageio import load_image_file

    image = load_image_file(demo_data / "tiles/test/hole/000.png")
    again = load_bundle(patchcore_bundle[0])
    assert again is not detector
    first = detector.score_images([image], "tiles")[0]
    second = again.score_images([image], "tiles")[0]
    assert first.raw_score == second.raw_score
    assert np.array_equal(first.raw_map, second.raw_map)


def test_loads_from_an_extracted_folder_like_sagemaker(patchcore_bundle, tmp_path):
    with tarfile.open(patchcore_bundle[0]) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    bundle = load_bundle(tmp_path / "model")
    assert bundle.classes == ["fabric", "tiles"] and bundle.version == "test-1"


def test_wrong_schema_version(patchcore_bundle, tmp_path):
    bad = repack(patchcore_bundle[0], tmp_path / "b.tar.gz", edit_manifest(lambda m: m.update(schema_version=99)))
    with pytest.raises(BundleError, match="schema version 99 is not supported"):
        load_bundle(bad)


def test_missing_class_file(patchcore_bundle, tmp_path):
    bad = repack(patchcore_bundle[0], tmp_path / "b.tar.gz", lambda n, d: None if n.startswith("classes/fabric/") else d)
    with pytest.raises(BundleError, match="the bundle lacks classes/fabric/memory_bank.npz, which its manifest lists"):
        load_bundle(bad)


def test_backbone_hash_mismatch(patchcore_bundle, tmp_path):
    bad = repack(patchcore_bundle[0], tmp_path / "b.tar.gz", lambda n, d: d + b"\x00" if n == "backbone.onnx" else d)
    with pytest.raises(BundleError, match="backbone.onnx does not match its hash in manifest.json"):
        load_bundle(bad)


def test_memory_bank_tampering_and_unknown_kind_and_missing_manifest(patchcore_bundle, tmp_path):
    tampered = repack(patchcore_bundle[0], tmp_path / "t.tar.gz",
                      lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n.endswith("memory_bank.npz") else d)
    with pytest.raises(BundleError, match="classes/fabric/memory_bank.npz does not match its hash"):
        load_bundle(tampered)
    unknown = repack(patchcore_bundle[0], tmp_path / "k.tar.gz", edit_manifest(lambda m: m.update(kind="magic")))
    with pytest.raises(BundleError, match="unknown model kind 'magic'"):
        load_bundle(unknown)
    headless = repack(patchcore_bundle[0], tmp_path / "m.tar.gz", lambda n, d: None if n == "manifest.json" else d)
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(headless)


def test_not_a_tarball_and_missing_path(tmp_path):
    junk = tmp_path / "model.tar.gz"
    junk.write_bytes(b"definitely not gzip")
    with pytest.raises(BundleError, match="not a readable model.tar.gz"):
        load_bundle(junk)
    with pytest.raises(BundleError, match="no model bundle"):
        load_bundle(tmp_path / "nothing.tar.gz")


def test_a_file_the_manifest_does_not_list_is_never_read(patchcore_bundle, tmp_path):
    def unlist(manifest):
        del manifest["files"]["classes/tiles/memory_bank.npz"]

    bad = repack(patchcore_bundle[0], tmp_path / "u.tar.gz", edit_manifest(unlist))
    with pytest.raises(BundleError, match="classes/tiles/memory_bank.npz is not among the bundle's listed files"):
        load_bundle(bad)


def test_modality_must_be_the_kinds(patchcore_bundle, tmp_path):
    bad = repack(patchcore_bundle[0], tmp_path / "m.tar.gz", edit_manifest(lambda m: m.update(modality="sensors")))
    with pytest.raises(BundleError, match="modality 'sensors', but the patchcore kind's modality is 'image'"):
        load_bundle(bad)


def test_schema_1_bundles_still_serve(patchcore_bundle, tmp_path, demo_data, detector):
    """Bundles written before the model kinds were generic: hashes in the backbone and class blocks."""

    def downgrade(manifest):
        files = manifest.pop("files")
        manifest.pop("modality")
        manifest["schema_version"] = 1
        manifest["backbone"]["sha256"] = files["backbone.onnx"]
        for name, entry in manifest["classes"].items():
            entry["sha256"] = files[entry["memory_bank"]]

    old = repack(patchcore_bundle[0], tmp_path / "v1.tar.gz", edit_manifest(downgrade))
    model = load_bundle(old)
    data = (demo_data / "tiles/test/hole/000.png").read_bytes()
    assert model.predict_bytes(data, "tiles", outputs=())["raw_score"] == detector.predict_bytes(data, "tiles", outputs=())["raw_score"]


def test_a_softpatch_bundle_from_before_the_image_filter_serves_with_the_soft_weights_it_was_trained_with(
        softpatch_bundle, tmp_path):
    """Settings a bundle does not store were those of the code that trained it, not today's defaults."""
    def without_newer_settings(manifest):
        for key in ("soft_weights", "noise_images"):
            manifest["config"].pop(key)

    older = repack(softpatch_bundle[0], tmp_path / "older.tar.gz", edit_manifest(without_newer_settings))
    config = load_bundle(older).model_for("tiles").model.config
    assert config.soft_weights is True and config.noise_images == 0.0
    current = load_bundle(softpatch_bundle[0]).model_for("tiles").model.config
    assert current.soft_weights is False and current.noise_images == 0.2  # what trained it, stored
