import pytest
from PIL import Image

from inference.errors import DatasetError
from pipelines.vision.datasets import list_classes, read_class
from pipelines.vision.splits import split_class
from pipelines.vision.synthetic import generate


@pytest.fixture
def dataset(tmp_path):
    return generate(tmp_path / "data", ["tiles"], size=64, train_count=10, test_good_count=4, test_defect_count=2)


def reasons(data):
    return {problem["path"].split("/data/")[-1]: problem["reason"] for problem in data.problems}


def test_reads_mvtec_layout_with_masks(dataset):
    data = read_class(dataset, "tiles")
    assert len(data.train) == 10
    assert {s.defect for s in data.test} == {"good", "scratch", "hole", "stain", "missing"}
    assert all(s.mask is not None for s in data.test if s.is_anomaly)
    assert data.problems == []
    assert list_classes(dataset) == ["tiles"]


def test_problems_are_reported_not_raised(dataset):
    (dataset / "tiles/train/good/broken.png").write_bytes(b"not really a png")
    (dataset / "tiles/train/good/notes.txt").write_text("hello")
    (dataset / "tiles/ground_truth/hole/000_mask.png").unlink()
    Image.new("L", (10, 10)).save(dataset / "tiles/ground_truth/scratch/000_mask.png")
    Image.new("L", (64, 64)).save(dataset / "tiles/ground_truth/stain/999_mask.png")
    data = read_class(dataset, "tiles")
    found = reasons(data)
    assert "unreadable image" in found["tiles/train/good/broken.png"]
    assert "not an image" in found["tiles/train/good/notes.txt"]
    assert "no ground-truth mask" in found["tiles/test/hole/000.png"]
    assert "mask is 10x10" in found["tiles/ground_truth/scratch/000_mask.png"]
    assert "mask without a test image" in found["tiles/ground_truth/stain/999_mask.png"]
    assert len(data.train) == 10  # the broken file is not among them
    scratch = next(s for s in data.test if s.key == "test/scratch/000.png")
    assert scratch.mask is None  # still evaluated image-level


def test_dataset_without_masks_is_fine(dataset):
    import shutil

    shutil.rmtree(dataset / "tiles/ground_truth")
    data = read_class(dataset, "tiles")
    assert not data.has_masks and data.problems == []


def test_missing_class_missing_folder_and_empty_train(dataset, tmp_path):
    with pytest.raises(DatasetError, match="class 'nope' is not in"):
        read_class(dataset, "nope")
    with pytest.raises(DatasetError, match="does not exist"):
        list_classes(tmp_path / "missing")
    (dataset / "bare" / "test").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no train/good"):
        read_class(dataset, "bare")
    (dataset / "bare" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no readable images"):
        read_class(dataset, "bare")


def test_split_is_deterministic_disjoint_and_complete(dataset):
    data = read_class(dataset, "tiles")
    first, second = split_class(data, seed=0).to_dict(), split_class(data, seed=0).to_dict()
    assert first == second
    fit, calibration = set(first["fit"]), set(first["calibration"])
    validation, evaluation = set(first["validation"]), set(first["evaluation"])
    assert not (fit & calibration) and not (validation & evaluation)
    assert fit | calibration == {s.key for s in data.train}
    assert validation | evaluation == {s.key for s in data.test}
    assert calibration and validation
    defects = {key.split("/")[1] for key in evaluation}
    assert defects == {"good", "scratch", "hole", "stain", "missing"}  # every defect still reported


def test_synthetic_generator_is_deterministic(tmp_path):
    a = generate(tmp_path / "a", ["wood"], size=32, train_count=2, test_good_count=1, test_defect_count=1, seed=3)
    b = generate(tmp_path / "b", ["wood"], size=32, train_count=2, test_good_count=1, test_defect_count=1, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
