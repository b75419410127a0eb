"""The benchmark's quality tables: seeds drawn honestly, spread computed right, INT8 compared seed by seed."""

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.bench import REFERENCE, _limited_dataset, quality_tables


def _report(aurocs: dict[str, float], images: int = 10) -> dict:
    return {"classes": {name: {"image_auroc": value, "pixel_auroc": None, "aupro": None, "f1": 0.5, "images": images}
                        for name, value in aurocs.items()}}


def _run(heldout: dict, every: dict) -> dict:
    timings = {name: {"total_s": 2.0} for name in heldout}
    return {"evaluations": {"heldout": _report(heldout, 8), "all": _report(every, 10)}, "timings": timings, "peak_rss_mb": 100.0}


ARGS = Namespace(data="d", train_limit=200, test_limit=0, onnx_backbone="b.onnx", quality_image_size=224)


def test_rows_are_mean_and_spread_over_seeds_for_both_splits():
    results = {REFERENCE: {0: _run({"a": 0.90, "b": 0.80}, {"a": 0.91, "b": 0.81}),
                                1: _run({"a": 0.94, "b": 0.70}, {"a": 0.93, "b": 0.71}),
                                2: _run({"a": 0.92, "b": 0.75}, {"a": 0.92, "b": 0.76})}}
    text = quality_tables(results, ["a", "b"], ("heldout", "all"), ARGS)
    rows = {tuple(cell.strip() for cell in line.split("|")[1:4]): line for line in text.splitlines() if line.startswith("| Patch")}
    assert f"{0.92:.4f} ± {np.std([0.90, 0.94, 0.92], ddof=1):.4f}" in rows[(REFERENCE, "a", "heldout")]
    assert f"{0.75:.4f} ± {0.05:.4f}" in rows[(REFERENCE, "b", "heldout")]
    class_means = [0.85, 0.82, 0.835]  # mean over classes, seed by seed
    assert f"{np.mean(class_means):.4f} ± {np.std(class_means, ddof=1):.4f}" in rows[(REFERENCE, "**mean**", "heldout")]
    assert f"{np.mean([0.91, 0.93, 0.92]):.4f}" in rows[(REFERENCE, "a", "all")]
    assert "| 8 |" in rows[(REFERENCE, "a", "heldout")] and "| 10 |" in rows[(REFERENCE, "a", "all")]


def test_variants_are_compared_with_the_reference_seed_by_seed():
    results = {REFERENCE: {0: _run({"a": 0.90}, {"a": 0.90}), 1: _run({"a": 0.80}, {"a": 0.80})},
               "PatchCore INT8 backbone": {0: _run({"a": 0.89}, {"a": 0.90}), 1: _run({"a": 0.78}, {"a": 0.80})}}
    text = quality_tables(results, ["a"], ("heldout", "all"), ARGS)
    # paired differences: −1 and −2 points; unpaired means would hide the spread of the split
    assert f"| PatchCore INT8 backbone | a | heldout | -1.50 ± {np.std([-1.0, -2.0], ddof=1):.2f} |" in text
    assert "| PatchCore INT8 backbone | a | all | 0.00 ± 0.00 |" in text


def _dataset(root, count=20):
    for i in range(count):
        path = root / f"part/train/good/{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), i).save(path)
    for name in ("good", "crack"):
        path = root / f"part/test/{name}/x.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), 0).save(path)
    return root


def _drawn(folder) -> list[str]:
    return sorted(p.name for p in (folder / "part/train/good").iterdir())


def test_training_images_are_drawn_per_seed_and_reproducibly(tmp_path):
    data = _dataset(tmp_path / "data")
    first = _drawn(_limited_dataset(data, ["part"], 8, 0, tmp_path / "s0", seed=0))
    again = _drawn(_limited_dataset(data, ["part"], 8, 0, tmp_path / "s0", seed=0))
    other = _drawn(_limited_dataset(data, ["part"], 8, 0, tmp_path / "s0", seed=1))
    assert len(first) == 8 and first == again and other != first
    assert len(_drawn(_limited_dataset(data, ["part"], 5, 0, tmp_path / "s0", seed=1))) == 5  # no leftovers of a bigger draw
    everything = _limited_dataset(data, ["part"], 0, 0, tmp_path / "all", seed=0)
    assert len(_drawn(everything)) == 20 and (everything / "part/test/crack/x.png").exists()


@pytest.mark.parametrize("values,expected", [([0.5], "0.5000"), ([None], "n/a"), ([0.5, 0.7], f"0.6000 ± {np.std([0.5, 0.7], ddof=1):.4f}")])
def test_spread_formatting(values, expected):
    from pipelines.bench import _spread

    assert _spread(values) == expected


def test_memory_table_has_one_row_per_run_and_says_what_was_not_run():
    from pipelines.bench import memory_table

    run = {"kind": "patchcore", "images": 200, "limit_mb": 2048, "wall_s": 61.2, "bank": 1844, "peak_rss_mb": 2911.4,
           "load": (2.5, 3.1), "timings": {"patches": 184320, "embed_s": 40.1, "memory_bank_s": 12.0, "calibration_s": 5.0,
                                           "streamed_mb": 0.0}}
    args = Namespace(memory_images="200,5000", memory_limits="default,0", memory_kinds="patchcore",
                     memory_backbone="wide_resnet50_2")
    table = memory_table([run, {**run, "limit_mb": 0, "peak_rss_mb": 3300.0}], ["patchcore, 5000 images, no limit: not run"],
                         args)
    rows = [line for line in table.splitlines() if line.startswith("| patchcore")]
    assert rows == ["| patchcore | 200 | 184320 | 2048 | 61 | 40 | 12 | 5 | 1844 | 2911 | 0 | 2.5 → 3.1 |",
                    "| patchcore | 200 | 184320 | none | 61 | 40 | 12 | 5 | 1844 | 3300 | 0 | 2.5 → 3.1 |"]
    assert table.endswith("- patchcore, 5000 images, no limit: not run")
    assert "--memory-images 200,5000" in table


def _anomalous_dataset(root, anomalies=20):
    _dataset(root)
    for i in range(anomalies):
        path = root / f"part/test/crack/a{i:02d}.png"
        Image.new("L", (16, 16), 200).save(path)
    return root


def test_contamination_moves_that_fraction_of_the_test_anomalies_into_training(tmp_path):
    data = _anomalous_dataset(tmp_path / "data")  # 21 anomalies, 1 good test image
    clean = _limited_dataset(data, ["part"], 8, 0, tmp_path / "clean", seed=0)
    clean_train = _drawn(clean)
    dirty = _limited_dataset(data, ["part"], 8, 0, tmp_path / "dirty", seed=0, contamination=0.1)
    moved = [name for name in _drawn(dirty) if name.startswith("contamination-crack-")]
    assert len(moved) == 2  # round(0.1 × 21)
    assert sorted(set(_drawn(dirty)) - set(moved)) == clean_train  # the same normal images as without contamination
    left = sorted(p.name for p in (dirty / "part/test/crack").iterdir())
    assert len(left) == 19 and not {m.removeprefix("contamination-crack-") for m in moved} & set(left)
    assert (dirty / "part/test/good/x.png").exists()
    other = _limited_dataset(data, ["part"], 8, 0, tmp_path / "other", seed=1, contamination=0.1)
    assert [n for n in _drawn(other) if n.startswith("contamination-")] != moved  # drawn with the seed


def test_contamination_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="contamination"):
        _limited_dataset(_anomalous_dataset(tmp_path / "data"), ["part"], 8, 0, tmp_path / "x", contamination=1.0)


def test_contaminated_rows_are_compared_with_patchcore_on_the_same_contaminated_data():
    from pipelines.bench import contamination_label

    dirty_reference, dirty_softpatch = (contamination_label(label, 0.05) for label in (REFERENCE, "SoftPatch (1 % coreset)"))
    results = {REFERENCE: {0: _run({"a": 0.90}, {"a": 0.90})},
               dirty_reference: {0: _run({"a": 0.70}, {"a": 0.70})},
               dirty_softpatch: {0: _run({"a": 0.85}, {"a": 0.85})}}
    text = quality_tables(results, ["a"], ("heldout",), ARGS)
    assert f"| {dirty_softpatch} | a | heldout | 15.00 |" in text  # against PatchCore at 5 %, not the clean one
    assert f"| {dirty_reference} | a | heldout | -" not in text  # evaluated on other test images than the clean row
    assert "moved into `train/good`" in text


def test_centre_crop_resizes_then_cuts_the_middle(tmp_path):
    from pipelines.bench import _centre_cropped

    source = tmp_path / "data/part/test/crack/x.png"
    source.parent.mkdir(parents=True)
    pixels = np.zeros((300, 300), np.uint8)
    pixels[:, :150] = 255  # left half white: the crop keeps the step in the middle
    Image.fromarray(pixels).save(source)
    cropped = np.asarray(Image.open(_centre_cropped(tmp_path / "data", 256, 224, tmp_path / "crop") / "part/test/crack/x.png"))
    assert cropped.shape == (224, 224)
    assert cropped[:, :100].min() == 255 and cropped[:, 124:].max() == 0


# ------------------------------------------------------------------------------------------ peer


def _bench_cli(argv, capsys):
    from infra.cli import main

    code = main(["bench", "--suite", "peer", *argv])
    return code, capsys.readouterr().err


def test_peer_suite_refuses_a_missing_or_wrong_virtualenv_with_exit_2(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    code, err = _bench_cli(["--data", str(data), "--output", str(tmp_path / "b.md")], capsys)
    assert code == 2 and err.startswith("error: the peer suite needs --peer-venv DIR")
    code, err = _bench_cli(["--peer-venv", str(tmp_path / "nowhere"), "--data", str(data)], capsys)
    assert code == 2 and f"--peer-venv {tmp_path / 'nowhere'}: no such folder" in err and "pip install anomalib==2.7.0" in err
    (tmp_path / "empty").mkdir()
    code, err = _bench_cli(["--peer-venv", str(tmp_path / "empty"), "--data", str(data)], capsys)
    assert code == 2 and "not a virtualenv" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "b.md").exists()  # nothing written


REPO = Path(__file__).resolve().parents[2]


def _fake_peer_venv(root, exit_code=0):
    """A 'virtualenv' whose python answers as `peer_anomalib.py --serve` does, with the script's own
    exchange (`serve`) around a model that takes 1 ms; it writes every request it gets to requests.log."""
    import sys

    python = root / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"""#!{sys.executable}
import json, sys, time
sys.path.insert(0, {str(REPO)!r})
if {exit_code}:
    print("Lightning says hello")
    sys.exit("ModuleNotFoundError: No module named anomalib")
from pipelines import peer_anomalib
args = sys.argv[1:]
assert "--serve" in args
queries = open(args[args.index("--queries") + 1]).read().split()
print("GPU available: False, used: False")  # lines of its own on stdout, as Lightning prints
peer_anomalib._say({{"train_s": 300.0, "peak_train_mb": 5000.0}})
log = open({str(root / "requests.log")!r}, "w")
def logged(lines):
    for line in lines:
        log.write(line); log.flush()
        yield line
peer_anomalib.serve(lambda data: time.sleep(0.001), [q.encode() for q in queries], logged(sys.stdin), peer_anomalib._say)
""")
    python.chmod(0o755)
    return python


def test_the_peer_trains_then_times_the_queries_it_is_asked_for(tmp_path):
    from pipelines.peer_process import PeerProcess

    python = _fake_peer_venv(tmp_path / "venv")
    queries = tmp_path / "queries.txt"
    queries.write_text("a.png\nb.png\n")
    with PeerProcess(python, tmp_path, queries, tmp_path) as peer:
        assert peer.trained() == {"train_s": 300.0, "peak_train_mb": 5000.0}
        times = peer.time([0, 1, 2])
        assert len(times) == 3 and all(t >= 1.0 for t in times)
    assert (tmp_path / "venv" / "requests.log").read_text().splitlines() == ['{"queries": [0, 1, 2]}', '{"done": true}']


def test_a_peer_that_fails_says_why(tmp_path):
    from pipelines.peer_process import PeerProcess

    broken = _fake_peer_venv(tmp_path / "broken", exit_code=1)
    queries = tmp_path / "queries.txt"
    queries.write_text("a.png\n")
    with pytest.raises(ValueError, match="the peer failed \\(exit 1\\).*No module named anomalib"):
        with PeerProcess(broken, tmp_path, queries, tmp_path) as peer:
            peer.trained()


def test_ivadas_and_the_peer_answer_the_same_queries_in_turns(tmp_path, patchcore_bundle, demo_data):
    from pipelines.bench import TURN_QUERIES, _latency_taking_turns

    bundle, _ = patchcore_bundle
    python = _fake_peer_venv(tmp_path / "venv")
    paths = sorted(str(p) for p in (demo_data / "tiles" / "test").rglob("*.png"))
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(paths) + "\n")
    runs = TURN_QUERIES * 2 + 3
    result = _latency_taking_turns({"fp32": str(bundle)}, "tiles", paths, runs, 2, python, tmp_path, queries, tmp_path)
    assert result["anomalib"]["train_s"] == 300.0 and result["anomalib"]["runs"] == runs
    assert set(result["ivadas"]) == {"fp32_verdict_p50_ms", "fp32_verdict_p95_ms", "fp32_full_p50_ms", "fp32_full_p95_ms"}
    asked = [json.loads(line) for line in (tmp_path / "venv" / "requests.log").read_text().splitlines()]
    assert asked == [{"queries": [0, 1]}, {"queries": list(range(TURN_QUERIES))},
                     {"queries": list(range(TURN_QUERIES, 2 * TURN_QUERIES))},
                     {"queries": list(range(2 * TURN_QUERIES, runs))}, {"done": True}]


def test_peer_table_gives_ratios_against_the_budgets():
    from pipelines.bench import peer_table

    ours = {"train_s": 50.0, "peak_train_mb": 2000.0, "fp32_full_p50_ms": 140.0, "fp32_verdict_p50_ms": 130.0,
            "int8_verdict_p50_ms": 60.0, "int8_full_p50_ms": 80.0}
    peer = {"train_s": 300.0, "peak_train_mb": 5000.0, "p50_ms": 250.0, "anomalib": "2.7.0"}
    table = peer_table(ours, peer, {"class": "a", "train_images": 200, "queries": 60, "queried_images": 40,
                                    "load": [1.0, 2.0, 3.0], "data": "d", "peer_venv": "/v"})
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()
            if line.startswith("| ") and "IVADAS /" not in line}
    assert rows["training one class, 200 images (s)"] == ["50.0", "300", "0.17", "≤ 0.2", "met"]
    assert rows["peak training memory (MB)"] == ["2000", "5000", "0.40", "≤ 0.5", "met"]
    assert rows["single image FP32, with heatmap and regions (p50 ms)"][2:] == ["0.56", "≤ 0.6", "met"]
    assert rows["single image FP32, verdict only (p50 ms)"][2:] == ["0.52", "≤ 0.5", "**not met**"]
    assert rows["single image INT8, verdict only (p50 ms)"][2:] == ["0.24", "≤ 0.3", "met"]
    assert rows["single image INT8, with heatmap and regions (p50 ms)"][2:] == ["0.32", "", ""]
    assert "1.0 → 2.0 → 3.0" in table and "anomalib 2.7.0" in table
    missing = peer_table({**ours, "int8_verdict_p50_ms": None}, peer, {"class": "a", "train_images": 200, "queries": 60,
                                                                       "queried_images": 40, "data": "d", "peer_venv": "/v"})
    assert "| single image INT8, verdict only (p50 ms) | n/a | 250 | n/a | ≤ 0.3 | not measured |" in missing


def test_latency_is_reported_for_the_variants_that_measured_it():
    latency = {"class": "a", "queries": 20, "verdict_p50_ms": 100.0, "full_p50_ms": 130.0}
    results = {REFERENCE: {0: {**_run({"a": 0.9}, {"a": 0.9}), "latency": latency},
                           1: {**_run({"a": 0.9}, {"a": 0.9}), "latency": {**latency, "verdict_p50_ms": 120.0}}},
               "SoftPatch (1 % coreset)": {0: _run({"a": 0.9}, {"a": 0.9})}}
    text = quality_tables(results, ["a"], ("heldout",), ARGS)
    assert f"| {REFERENCE} | a | 110 | 130 | 2 |" in text
    assert "| SoftPatch (1 % coreset) | a | " not in text.split("Single-image latency")[1].split("Against")[0]
