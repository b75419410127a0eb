"""Regions of an anomaly map: the boxes an answer carries."""

import numpy as np

from inference.vision.render import regions


def test_a_diagonal_scratch_is_one_region_in_original_pixels():
    scores = np.zeros((16, 16))
    for i in range(2, 10):
        scores[i, i] = 0.9  # pixels touching only at their corners
    scores[5, 6] = 0.95
    found = regions(scores, 0.5, original_size=(64, 32))  # 4× wider, 2× taller than the map
    assert len(found) == 1
    assert found[0]["box"] == [8, 4, 40, 20]
    assert found[0]["score"] == 0.95 and found[0]["area"] == 9 * 4 * 2


def test_separate_defects_are_separate_regions_worst_first_and_specks_are_dropped():
    scores = np.zeros((16, 16))
    scores[1:4, 1:4] = 0.7
    scores[10:14, 10:14] = 0.9
    scores[8, 1] = 1.0  # a single pixel: below the minimum area
    found = regions(scores, 0.5, original_size=(16, 16))
    assert [r["box"] for r in found] == [[10, 10, 14, 14], [1, 1, 4, 4]]
