"""The local stack end to end: endpoints, SageMaker-runtime route, the predict Lambda, hot swap."""

import base64
import threading
import time

import pytest

from infra.cli import main
from infra.local.stack import LocalStack, StackSettings
from pipelines.local_runner import LocalPipeline, RunParameters
from pipelines.registry import APPROVED
from tests.serving.conftest import b64, free_port, http, png_bytes
from tests.serving.test_endpoint_server import bomb_png

pytestmark = pytest.mark.slow


def free_pair() -> int:
    for _ in range(50):
        base = free_port()
        try:
            import socket

            with socket.socket() as probe:
                probe.bind(("127.0.0.1", base + 1))
            return base
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_data):
    home = tmp_path_factory.mktemp("home")
    settings = StackSettings(home=home, port=free_port(), runtime_port=free_port(), endpoint_base_port=free_pair(), data=demo_data,
                             classes=("tiles", "fabric"), backbone="resnet18", weights="random", gateway_workers=2,
                             echo=lambda *a: None, poll_seconds=0.5)
    pipeline = LocalPipeline(settings.store, echo=lambda *a: None)
    for kind in ("patchcore", "softpatch"):
        record = pipeline.run(RunParameters(str(demo_data), ("tiles", "fabric"), kind,
                                            {"backbone": "resnet18", "weights": "random", "image_size": "160"}))
        group, number = record["registered_version"].rsplit("/", 1)
        pipeline.registry.set_status(group, int(number), APPROVED, "test fixture")
    local = LocalStack(settings)
    local.start()
    yield local
    local.stop()


def predict(stack, body, path="/predict"):
    return http("POST", stack.settings.url + path, body)


def test_defective_image_is_flagged_with_heatmap_and_regions(stack, demo_data):
    status, result = predict(stack, {"class_name": "tiles", "image_base64": b64(demo_data / "tiles/test/hole/001.png")})
    assert status == 200 and result["is_anomaly"] is True
    assert result["heatmap_png_base64"] and result["regions"] and result["regions"][0]["score"] >= 0.5
    assert result["model"]["version"] == "ivadas-training-patchcore/1" and result["request_id"]
    status, result = predict(stack, {"class_name": "tiles", "image_base64": b64(demo_data / "tiles/test/good/001.png"),
                                     "model": "softpatch"})
    assert status == 200 and result["is_anomaly"] is False and result["model"]["kind"] == "softpatch"
    status, listing = http("GET", stack.settings.url + "/inspections?class_name=tiles")
    assert status == 200 and len(listing["inspections"]) >= 2


def test_every_bad_input_through_the_api(stack, demo_data):
    good = b64(demo_data / "tiles/test/good/001.png")
    truncated = base64.b64encode((demo_data / "tiles/test/good/001.png").read_bytes()[:1500]).decode()
    cases = [
        (b"{invalid json", 400, "bad_request"),
        ({"image_base64": good}, 400, "bad_request"),
        ({"class_name": "", "image_base64": good}, 400, "bad_request"),
        ({"class_name": "bolts", "image_base64": good}, 404, "unknown_class"),
        ({"class_name": "tiles", "image_base64": good, "model": "yolo"}, 404, "unknown_model"),
        ({"class_name": "tiles", "image_base64": "not//base64!!"}, 400, "bad_request"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(b"just some text").decode()}, 415, "unsupported_media_type"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(bomb_png()).decode()}, 422, "unusable_image"),
        ({"class_name": "tiles", "image_base64": truncated}, 422, "unusable_image"),
        ({"class_name": "tiles", "image_base64": base64.b64encode(b"\x00" * 4_500_000).decode()}, 413, "payload_too_large"),
        ({"class_name": "tiles", "image_base64": good, "threshold": 2}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        started = time.perf_counter()
        got_status, got = predict(stack, body)
        assert (got_status, got["error"]["code"]) == (status, code), got
        assert time.perf_counter() - started < 10
        assert predict(stack, {"class_name": "tiles", "image_base64": good, "outputs": []})[0] == 200
    status, got = predict(stack, {"items": [{"class_name": "tiles", "image_base64": good}] * 9}, "/predict/batch")
    assert status == 413 and got["error"]["code"] == "payload_too_large"
    status, got = predict(stack, {"items": [{"class_name": "tiles", "image_base64": good}] * 2, "outputs": ["regions"]}, "/predict/batch")
    assert status == 200 and len(got["predictions"]) == 2


def test_cli_client_against_the_stack(stack, demo_data, capsys):
    assert main(["predict", str(demo_data / "tiles/test/hole/001.png"), "--class", "tiles", "--url", stack.settings.url]) == 0
    assert capsys.readouterr().out.startswith("ANOMALY")
    assert main(["predict", str(demo_data / "tiles/test/good/001.png"), "--class", "bolts", "--url", stack.settings.url]) == 2
    assert "unknown class 'bolts'" in capsys.readouterr().err
    assert main(["predict", str(demo_data / "tiles/test/good/001.png"), "--class", "tiles", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_approving_a_new_version_switches_without_dropping_requests(stack, demo_data):
    registry = stack.registry
    current = registry.get("ivadas-training-patchcore", 1)
    new = registry.register(current.group, current.model_url, current.metrics, current.metadata)
    failures, versions, stop = [], set(), threading.Event()
    good = b64(demo_data / "tiles/test/good/002.png")

    def hammer():
        while not stop.is_set():
            status, result = predict(stack, {"class_name": "tiles", "image_base64": good, "outputs": []})
            if status != 200:
                failures.append(result)
            else:
                versions.add(result["model"]["version"])

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    registry.set_status(new.group, new.version, APPROVED, "newer")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and new.id not in versions:
        time.sleep(0.5)
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert new.id in versions and current.id in versions
    status, listing = http("GET", stack.settings.url + "/models")
    assert next(m for m in listing["models"] if m["kind"] == "patchcore")["version"] == new.id


def test_endpoint_down_gives_503_and_health_names_it(stack, demo_data):
    stack.processes["softpatch"].terminate()
    stack.processes["softpatch"].wait(timeout=60)
    status, result = predict(stack, {"class_name": "tiles", "image_base64": b64(demo_data / "tiles/test/good/001.png"), "model": "softpatch"})
    assert status == 503 and result["error"]["code"] == "model_unavailable"
    status, health = http("GET", stack.settings.url + "/health")
    assert status == 200 and health["status"] == "degraded"
    assert health["models"]["softpatch"]["available"] is False and health["models"]["patchcore"]["available"] is True
    assert predict(stack, {"class_name": "tiles", "image_base64": base64.b64encode(png_bytes()).decode()})[0] == 200
