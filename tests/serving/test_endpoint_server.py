"""The endpoint server as a real process: SageMaker's /ping and /invocations, and every bad input."""

import base64
import json
import os
import struct
import subprocess
import sys
import zlib

from tests.serving.conftest import b64, free_port, http, png_bytes, wait_for


def bomb_png(width=100_000, height=100_000) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def invoke(endpoint, body, headers=None):
    return http("POST", endpoint + "/invocations", body, headers)


def test_ping_and_describe(endpoint):
    assert http("GET", endpoint + "/ping") == (200, {"status": "healthy", "kind": "patchcore", "modality": "image"})
    status, described = invoke(endpoint, {"describe": True})
    assert status == 200 and described["kind"] == "patchcore" and described["version"] == "test-1"
    assert described["modality"] == "image" and described["outputs"] == ["heatmap", "regions"]
    assert set(described["classes"]) == {"tiles", "fabric"} and described["classes"]["tiles"]["threshold"] == 0.5


def test_json_and_raw_image_requests(endpoint, demo_data):
    status, result = invoke(endpoint, {"class_name": "tiles", "image_base64": b64(demo_data / "tiles/test/hole/001.png")})
    assert status == 200 and result["is_anomaly"] is True and result["regions"] and result["heatmap_png_base64"]
    raw = (demo_data / "tiles/test/good/001.png").read_bytes()
    status, result = invoke(endpoint, raw, {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "class_name=tiles,outputs=regions"})
    assert status == 200 and result["is_anomaly"] is False and "heatmap_png_base64" not in result


def test_batch_items_fail_alone(endpoint, demo_data):
    good = b64(demo_data / "tiles/test/good/001.png")
    status, result = invoke(endpoint, {"instances": [{"class_name": "tiles", "image_base64": good, "outputs": []},
                                                     {"class_name": "tiles", "image_base64": base64.b64encode(b"text").decode()}]})
    assert status == 200
    assert result["predictions"][0]["is_anomaly"] is False
    assert result["predictions"][1]["error"]["code"] == "unsupported_media_type" and result["predictions"][1]["status"] == 415
    status, result = invoke(endpoint, {"instances": [{"class_name": "tiles", "image_base64": good}] * 9})
    assert status == 413 and "at most 8" in result["error"]["message"]


def test_every_bad_input_is_a_clear_error_and_the_server_keeps_serving(endpoint, demo_data):
    good = b64(demo_data / "tiles/test/good/001.png")
    truncated = (demo_data / "tiles/test/good/001.png").read_bytes()[:2000]
    cases = [
        (b"{not json", 400, "bad_request"),
        ({"image_base64": good}, 400, "bad_request"),
        ({"class_name": "", "image_base64": good}, 400, "bad_request"),
        ({"class_name": "bolts", "image_base64": good}, 404, "unknown_class"),
        ({"class_name": "tiles", "image_base64": "%%%not base64"}, 400, "bad_request"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(b"plain text, not an image").decode()}, 415, "unsupported_media_type"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(bomb_png()).decode()}, 422, "unusable_image"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(truncated).decode()}, 422, "unusable_image"),
        ({"class_name": "tiles", "image_base64": good, "threshold": 1.5}, 400, "bad_request"),
        ({"class_name": "tiles", "image_base64": good, "threshold": "high"}, 400, "bad_request"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(png_bytes((8, 8))).decode()}, 422, "unusable_image"),
        ({"class_name": "tiles", "window": [[1.0, 2.0]], "sensors": ["a", "b"]}, 415, "unsupported_media_type"),
        ({"class_name": "tiles", "image_base64": good, "outputs": ["contributions"]}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        got_status, got = invoke(endpoint, body)
        assert (got_status, got["error"]["code"]) == (status, code), (body if isinstance(body, bytes) else list(body), got)
        assert "Traceback" not in got["error"]["message"]
        assert invoke(endpoint, {"class_name": "tiles", "image_base64": good, "outputs": []})[0] == 200


def test_body_over_the_limit_and_wrong_content_type(endpoint):
    status, result = invoke(endpoint, b"x" * (6 * 1024 * 1024 + 1))
    assert status == 413 and result["error"]["code"] == "payload_too_large"
    status, result = invoke(endpoint, b"hello", {"Content-Type": "text/plain"})
    assert status == 415
    status, result = invoke(endpoint, png_bytes(), {"Content-Type": "image/png"})
    assert status == 400 and "Custom-Attributes" in result["error"]["message"]


def test_broken_bundle_is_never_healthy(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    port = free_port()
    env = {**os.environ, "IVADAS_MODEL_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_BIND_HOST": "127.0.0.1",
           "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "inference.serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/ping", process, timeout=60, healthy=False)
        status, body = http("GET", url + "/ping")
        assert status == 503 and "schema version 99" in body["reason"]
        status, body = invoke(url, {"class_name": "tiles", "image_base64": "AAAA"})
        assert status == 503 and body["error"]["code"] == "model_unavailable"
    finally:
        process.terminate()
        process.wait(timeout=30)
