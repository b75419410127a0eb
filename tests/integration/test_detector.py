import base64
import io

import pytest
from PIL import Image

from inference.errors import BadRequest, NotAnImage, UnknownClass


def test_defective_image_is_flagged_with_heatmap_and_regions(detector, demo_data):
    result = detector.predict_bytes((demo_data / "tiles/test/hole/001.png").read_bytes(), "tiles")
    assert result["is_anomaly"] is True
    assert result["anomaly_score"] >= 0.5
    assert result["model"] == {"kind": "patchcore", "version": "test-1"}
    heatmap = Image.open(io.BytesIO(base64.b64decode(result["heatmap_png_base64"])))
    assert heatmap.format == "PNG" and heatmap.size == (160, 160) and heatmap.mode == "RGBA"
    assert result["regions"], "a defect must be located"
    x0, y0, x1, y1 = result["regions"][0]["box"]
    assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 160
    assert result["regions"][0]["score"] >= 0.5


def test_region_covers_the_true_defect(detector, demo_data):
    import numpy as np

    result = detector.predict_bytes((demo_data / "tiles/test/hole/001.png").read_bytes(), "tiles")
    mask = np.asarray(Image.open(demo_data / "tiles/ground_truth/hole/001_mask.png")) > 0
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = result["regions"][0]["box"]
    assert x0 <= xs.mean() <= x1 and y0 <= ys.mean() <= y1


def test_good_images_are_mostly_normal(detector, demo_data):
    verdicts = [detector.predict_bytes(p.read_bytes(), "tiles", outputs=())["is_anomaly"]
                for p in sorted((demo_data / "tiles/test/good").glob("*.png"))]
    assert sum(verdicts) <= 1


def test_threshold_override_rejudges(detector, demo_data):
    data = (demo_data / "tiles/test/good/001.png").read_bytes()
    score = detector.predict_bytes(data, "tiles", outputs=())["anomaly_score"]
    assert 0.0 < score < 0.99
    assert detector.predict_bytes(data, "tiles", threshold=score + 0.005, outputs=())["is_anomaly"] is False
    assert detector.predict_bytes(data, "tiles", threshold=score - 0.005, outputs=())["is_anomaly"] is True
    assert detector.predict_bytes(data, "tiles", threshold=0.0, outputs=())["is_anomaly"] is True
    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(BadRequest, match="threshold"):
            detector.predict_bytes(data, "tiles", threshold=bad)


def test_unknown_class_and_not_an_image(detector, demo_data):
    with pytest.raises(UnknownClass, match="unknown class 'bolts'"):
        detector.predict_bytes((demo_data / "tiles/test/good/000.png").read_bytes(), "bolts")
    with pytest.raises(NotAnImage):
        detector.predict_bytes(b"just text", "tiles")
    with pytest.raises(BadRequest, match="unknown outputs"):
        detector.predict_bytes((demo_data / "tiles/test/good/000.png").read_bytes(), "tiles", outputs=("magic",))


def test_any_input_size_is_served(detector, demo_data):
    image = Image.open(demo_data / "fabric/test/good/000.png").resize((300, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    result = detector.predict_bytes(buffer.getvalue(), "fabric")
    assert Image.open(io.BytesIO(base64.b64decode(result["heatmap_png_base64"]))).size == (300, 200)
