"""Scoring keeps numpy's BLAS on one thread, so its idle worker does not spin on a core the backbone needs."""

from threadpoolctl import threadpool_info

from tests.conftest import png_bytes_of


def _numpy_blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]


def test_numpy_blas_runs_on_one_thread_while_an_image_is_scored(detector, demo_data):
    scorer = next(iter(detector.scorers.values()))
    seen, embed_views = [], scorer.extractor.embed_views

    def recording(views):
        seen.append(_numpy_blas_threads())
        return embed_views(views)

    before = _numpy_blas_threads()
    scorer.extractor.embed_views = recording
    try:
        detector.predict_bytes(png_bytes_of(demo_data / "tiles/test/good/000.png"), "tiles")
    finally:
        scorer.extractor.embed_views = embed_views
    assert seen and all(threads == [1] * len(before) for threads in seen) and before
    assert _numpy_blas_threads() == before  # given back when the image is scored
