"""The patch store holds a class's training embeddings once, whether in RAM or streamed to files."""

import os
import signal
import subprocess
import sys
import tracemalloc

import numpy as np

from inference.kinds.patchcore.patch_store import PatchStore

VIEWS_PER_BATCH, POSITIONS, DIM = 4, 64, 256


def _batches(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(VIEWS_PER_BATCH, POSITIONS, DIM)).astype(np.float32) for _ in range(count)]


def test_finishing_in_ram_does_not_hold_the_embeddings_twice():
    batches = _batches(12)
    whole = sum(batch.nbytes for batch in batches)
    with PatchStore(projection_dim=32, seed=0) as store:
        for batch in batches:
            store.append(batch)
        del batches  # the store's copies are all that is left
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            store.finish()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # the projection (32 of 256 values a row) is joined into one array; the embeddings are not copied
    assert peak - before < whole / 4


def test_rows_in_ram_and_on_disk_are_the_rows_appended():
    batches = _batches(5, seed=1)
    every_row = np.concatenate(batches).reshape(-1, DIM)
    indices = np.random.default_rng(2).integers(0, len(every_row), size=300)  # unsorted, with repeats
    limits = {"ram": None, "disk": 1}  # 1 byte: everything streams to the scratch folder
    for where, limit in limits.items():
        with PatchStore(projection_dim=32, seed=0, memory_limit_bytes=limit) as store:
            for batch in batches:
                store.append(batch)
            store.finish()
            assert store.on_disk == (where == "disk")
            np.testing.assert_array_equal(store.embedding_rows(indices), every_row[indices])
            run = np.arange(17, 17 + 40)  # one view's patches: a run of rows, read at once from disk
            np.testing.assert_array_equal(store.embedding_rows(run), every_row[run])
            np.testing.assert_array_equal(store.embedding_rows(run[:1]), every_row[run[:1]])
            assert store.rows == len(every_row)


def test_a_killed_training_leaves_nothing_in_the_scratch_folder(tmp_path):
    """Streamed patches can be gigabytes: they must not outlive a training that is killed mid-way."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    code = ("import sys, time, numpy as np\n"
            "from inference.kinds.patchcore.patch_store import PatchStore\n"
            "store = PatchStore(32, 0, memory_limit_bytes=1)\n"
            "store.append(np.ones((4, 64, 256), np.float32))\n"
            "assert store.on_disk\n"
            "print('streaming', flush=True)\n"
            "time.sleep(60)\n")
    env = {**os.environ, "IVADAS_SCRATCH": str(scratch)}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline().strip() == "streaming"
        assert list(scratch.iterdir()) == []  # the files have no name, even while they are written
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert list(scratch.iterdir()) == []


def test_reading_the_chosen_rows_back_from_disk_does_not_bring_the_file_into_memory(tmp_path):
    """A 1 % coreset of a 5,000-image class is rows spread over an 18 GB file: reading them must cost
    their own size, not the pages around each of them."""
    code = ("import resource, numpy as np\n"
            "from inference.kinds.patchcore.patch_store import PatchStore\n"
            "store = PatchStore(32, 0, memory_limit_bytes=1)\n"
            "for _ in range(8):\n"
            "    store.append(np.ones((16, 1024, 1024), np.float32))  # 64 MB a batch, 512 MB in all\n"
            "store.finish()\n"
            "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "before = peak()\n"
            "rows = store.embedding_rows(np.arange(0, store.rows, 16))  # one row in 16: 32 MB\n"
            "assert rows.shape == (store.rows // 16, 1024) and (rows == 1).all()\n"
            "print(peak() - before)\n")
    env = {**os.environ, "IVADAS_SCRATCH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 32 + 32  # the rows read, and little else
