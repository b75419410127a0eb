"""The training patches of one class, kept as training appends them: the embeddings the memory
bank is cut from, and their random projection that SoftPatch's statistics and the coreset search.

Both stay in RAM while they fit in half the memory limit (always, without one). Beyond that they
go to files of float32 rows in a scratch folder (`$IVADAS_SCRATCH`, else the system's temporary
folder), and every later view streams there. The files have no name (`tempfile.TemporaryFile`):
the system frees their space when the training ends, however it ends, so a killed training
leaves no gigabytes behind. They are read back in pieces: the projection whole
into RAM when it fits in half the limit, else row blocks mapped from its file; positions for
SoftPatch; the chosen rows for the bank. Every value is computed
the same way in either case (the projection batch by batch as the embeddings arrive), so what
is built from them does not depend on the limit.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from typing import BinaryIO

import numpy as np

from inference.kinds.patchcore.sampler import ArrayRows, FileRows, Rows, projection_matrix

SCRATCH_ENV = "IVADAS_SCRATCH"


def scratch_folder() -> str | None:
    """Where training streams its patches: `$IVADAS_SCRATCH`, else the system's temporary folder."""
    return os.environ.get(SCRATCH_ENV) or None


class PatchStore:
    def __init__(self, projection_dim: int, seed: int, memory_limit_bytes: int | None = None):
        self.projection_dim = projection_dim
        self.seed = seed
        self.limit = memory_limit_bytes
        self.views = 0
        self.positions: int | None = None
        self.dim: int | None = None
        self.matrix: np.ndarray | None = None
        self._files: dict[str, BinaryIO] = {}  # "embeddings", "projected": the scratch files, once spilled
        self._parts: list[np.ndarray] = []
        self._projected_parts: list[np.ndarray] = []
        self._embedding_parts: list[np.ndarray] = []  # in RAM: never joined (that would hold them twice)
        self._projected: np.ndarray | None = None
        self._held = 0  # bytes held in RAM before anything went to disk
        self._on_disk = False
        self._finished = False

    # --------------------------------------------------------------------------------- writing

    @property
    def on_disk(self) -> bool:
        """Whether the patches went to files (they outgrew half the memory limit)."""
        return self._on_disk

    @property
    def projected_dim(self) -> int:
        return self.dim if self.matrix is None else self.matrix.shape[1]

    def _start(self, positions: int, dim: int) -> None:
        self.positions, self.dim = positions, dim
        self.matrix = projection_matrix(dim, self.projection_dim, self.seed)

    def _spill(self) -> None:
        """Move what RAM holds to the files; from now on views stream there."""
        names = ("embeddings", "projected") if self.matrix is not None else ("embeddings",)
        self._files = {name: tempfile.TemporaryFile(prefix=f"ivadas-{name}-", dir=scratch_folder()) for name in names}
        for index, flat in enumerate(self._parts):
            self._write(flat, None if self.matrix is None else self._projected_parts[index])
        self._parts, self._projected_parts = [], []
        self._on_disk = True

    def _write(self, flat: np.ndarray, projected: np.ndarray | None) -> None:
        flat.tofile(self._files["embeddings"])
        if projected is not None:
            projected.tofile(self._files["projected"])

    def append(self, embeddings: np.ndarray) -> None:
        """Add the `[views, positions, dim]` embeddings of some training views."""
        if self._finished:
            raise RuntimeError("the patch store is finished")
        views, positions, dim = embeddings.shape
        if self.positions is None:
            self._start(positions, dim)
        elif (positions, dim) != (self.positions, self.dim):
            raise ValueError(f"views of {positions} patches of {dim} values after views of {self.positions} of {self.dim}")
        flat = np.ascontiguousarray(embeddings.reshape(-1, dim), dtype=np.float32)
        projected = None if self.matrix is None else np.ascontiguousarray(flat @ self.matrix, dtype=np.float32)
        if self.on_disk:
            self._write(flat, projected)
        else:
            self._parts.append(flat)
            if projected is not None:
                self._projected_parts.append(projected)
            self._held += flat.nbytes + (0 if projected is None else projected.nbytes)
            if self.limit is not None and self._held > self.limit // 2:
                self._spill()
        self.views += views

    def finish(self) -> "PatchStore":
        """No more views: make the patches readable."""
        if self._finished:
            return self
        self._finished = True
        for file in self._files.values():
            file.flush()
        if not self.on_disk and self._parts:
            if self.matrix is not None:
                self._projected = _joined(self._projected_parts)
                self._embedding_parts, self._parts = self._parts, []
            else:
                self._projected = _joined(self._parts)
                self._embedding_parts = [self._projected]
        return self

    # --------------------------------------------------------------------------------- reading

    @property
    def rows(self) -> int:
        return self.views * (self.positions or 0)

    @property
    def streamed_bytes(self) -> int:
        """Bytes written to the scratch folder (0 while everything fits in RAM)."""
        if not self.on_disk:
            return 0
        return self.rows * ((self.dim or 0) + (0 if self.matrix is None else self.projected_dim)) * 4

    def _projected_file(self) -> BinaryIO:
        return self._files["projected" if self.matrix is not None else "embeddings"]

    def projected_rows(self) -> Rows:
        """The projected patches, one row each (view-major), in RAM when they fit in half the limit."""
        self.finish()
        if not self.on_disk:
            return ArrayRows(self._projected)
        if self.rows * self.projected_dim * 4 <= self.limit // 2:
            file = self._projected_file()
            file.seek(0)
            return ArrayRows(np.fromfile(file, np.float32, self.rows * self.projected_dim).reshape(self.rows, self.projected_dim))
        return FileRows(self._projected_file(), self.projected_dim, resident_bytes=max(1 << 20, self.limit // 8))

    def projected_positions(self, start: int, stop: int) -> np.ndarray:
        """The projected patches of positions `[start, stop)` of every view: `[views, stop - start, dim]`."""
        self.finish()
        if not self.on_disk:
            return self._projected.reshape(self.views, self.positions, -1)[:, start:stop]
        with _mapped(self._projected_file()) as values:
            return np.array(values.reshape(self.views, self.positions, -1)[:, start:stop])

    def embedding_rows(self, indices: np.ndarray) -> np.ndarray:
        """float32 embeddings `[len(indices), dim]` of the patches at `indices` (view-major row numbers)."""
        self.finish()
        indices = np.asarray(indices, dtype=np.int64)
        if not self.on_disk:
            return _gathered(self._embedding_parts, indices, self.dim)
        # Read row by row, in file order: mapping the file instead would fault in the pages around every
        # chosen row (read-ahead), and a 1 % coreset spread over an 18 GB file touches nearly all of them.
        descriptor, row_bytes = self._files["embeddings"].fileno(), self.dim * 4
        if len(indices) > 1 and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
            # a run of rows (one view's patches): one read
            data = os.pread(descriptor, row_bytes * len(indices), int(indices[0]) * row_bytes)
            return np.frombuffer(data, np.float32).reshape(len(indices), self.dim).copy()
        out = np.empty((len(indices), self.dim), np.float32)
        for position in np.argsort(indices, kind="stable"):
            row = os.pread(descriptor, row_bytes, int(indices[position]) * row_bytes)
            out[position] = np.frombuffer(row, np.float32)
        return out

    def close(self) -> None:
        for file in self._files.values():
            file.close()  # an unnamed file: its space is freed now
        self._files = {}
        self._parts, self._projected_parts = [], []
        self._embedding_parts, self._projected = [], None

    def __enter__(self) -> "PatchStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The rows of `parts` in one array; `parts` is emptied as it is copied, so the peak is the
    whole plus one part, not twice the whole (as `np.concatenate` of the list would hold)."""
    if len(parts) == 1:
        return parts.pop()
    joined = np.empty((sum(len(part) for part in parts), parts[0].shape[1]), parts[0].dtype)
    start = 0
    parts.reverse()  # pop from the end, in order
    while parts:
        part = parts.pop()
        joined[start : start + len(part)] = part
        start += len(part)
    return joined


def _gathered(parts: list[np.ndarray], indices: np.ndarray, dim: int) -> np.ndarray:
    """Rows `indices` of the rows of `parts` taken in order, as one array."""
    out = np.empty((len(indices), dim), np.float32)
    start = 0
    for part in parts:
        inside = (indices >= start) & (indices < start + len(part))
        out[inside] = part[indices[inside] - start]
        start += len(part)
    return out


class _mapped:
    """A float32 view of a whole open file, mapped read-only; unmapped (its pages leave the process) on exit."""

    def __init__(self, file: BinaryIO):
        self.file = file

    def __enter__(self) -> np.ndarray:
        self._map = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(self._map, np.float32)

    def __exit__(self, *exc) -> None:
        self._map.madvise(mmap.MADV_DONTNEED)  # the pages read leave the process now, views or not
        try:
            self._map.close()
        except BufferError:  # a view still points into it: the pages go with the last view
            pass


def store_of(embeddings: np.ndarray, projection_dim: int, seed: int) -> PatchStore:
    """An in-memory store holding `[views, positions, dim]` embeddings."""
    store = PatchStore(projection_dim, seed)
    store.append(embeddings)
    return store.finish()
