"""Events: the spans of a scored series where the anomaly score stays at or above the threshold.

A maintenance engineer acts on events, not on rows: one event per excursion, with where it starts
and ends, how long it lasts, how high it peaks and which sensors drive it. Excursions separated by
fewer than `merge_gap` rows below the threshold are one event (a score that dips for a moment
during a fault does not end the fault).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    start: int  # first row at or above the threshold
    end: int  # last row at or above the threshold (inclusive)
    peak: int  # row of the highest score

    @property
    def rows(self) -> int:
        return self.end - self.start + 1


def find_spans(scores: np.ndarray, threshold: float, merge_gap: int = 0) -> list[Span]:
    """Spans of `scores` (NaN = not scored) at or above `threshold`, merging gaps of ≤ `merge_gap` rows."""
    scores = np.asarray(scores, dtype=np.float64)
    above = np.nan_to_num(scores, nan=-np.inf) >= threshold
    if not above.any():
        return []
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    merged: list[list[int]] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        if merged and start - merged[-1][1] - 1 <= merge_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    filled = np.nan_to_num(scores, nan=-np.inf)
    return [Span(start, end, start + int(np.argmax(filled[start:end + 1]))) for start, end in merged]
