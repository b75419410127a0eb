"""An imported detector on the running local stack: approved while the stack runs, it gets its own
endpoint, answers `POST /predict` through the Lambda with labelled boxes, and the inspection page
draws them (Debian's chromium via Playwright)."""

from __future__ import annotations

import base64
import io
import os
import socket
import time
from pathlib import Path

import pytest
from PIL import Image

from infra.cli import main
from infra.local.stack import LocalStack, StackSettings
from pipelines.registry import APPROVED, LocalRegistry
from tests.kinds.graphs import NAMES, constant_graph, ultralytics_metadata
from tests.kinds.test_detector_decoding import KNOWN
from tests.serving.conftest import free_port, http

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("IVADAS_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("IVADAS_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "e2e"


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (one endpoint per served kind)."""
    for _ in range(50):
        base = free_port()
        try:
            for offset in range(1, count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def thermal_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 640), (40, 40, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_data, patchcore_bundle, softpatch_bundle):
    home = tmp_path_factory.mktemp("home")
    settings = StackSettings(home=home, port=free_port(), runtime_port=free_port(), endpoint_base_port=free_ports(3),
                             data=demo_data, classes=("tiles", "fabric"), backbone="resnet18", weights="random",
                             gateway_workers=2, echo=lambda *a: None, poll_seconds=0.5)
    registry = LocalRegistry(settings.store)
    for kind, (bundle, _) in (("patchcore", patchcore_bundle), ("softpatch", softpatch_bundle)):
        version = registry.register(f"ivadas-training-{kind}", str(bundle), {}, {"model_kind": kind})
        registry.set_status(version.group, version.version, APPROVED, "test fixture")
    local = LocalStack(settings)
    local.start()
    try:
        graph = constant_graph(tmp_path_factory.mktemp("graph") / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES))
        assert main(["models", "import", str(graph), "--anomalous-classes", "crack,hot spot", "--approval", APPROVED,
                     "--store", str(settings.store)]) == 0
        deadline = time.monotonic() + 120
        while True:  # the registry watcher starts the detector's endpoint
            status, listing = http("GET", settings.url + "/models")
            if any(m["kind"] == "detector" and m["available"] for m in listing["models"]):
                break
            assert time.monotonic() < deadline, listing
            time.sleep(0.5)
        yield local
    finally:
        local.stop()


def test_the_api_answers_with_the_detectors_boxes_and_verdict(stack, capsys):
    image = base64.b64encode(thermal_png()).decode()
    status, result = http("POST", stack.settings.url + "/predict", {"class_name": "thermal", "model": "detector",
                                                                    "image_base64": image, "threshold": 0.6})
    assert status == 200, result
    assert [(d["label"], d["confidence"], d["box"]) for d in result["detections"]] == [
        ("crack", 0.9, [80.0, 80.0, 120.0, 120.0]), ("hot spot", 0.85, [80.0, 80.0, 120.0, 120.0]),
        ("crack", 0.7, [92.0, 80.0, 132.0, 120.0]), ("normal", 0.6, [350.0, 275.0, 450.0, 325.0])]
    assert result["is_anomaly"] is True and result["model"] == {"kind": "detector", "version": "ivadas-training-detector/1"}
    status, error = http("POST", stack.settings.url + "/predict", {"class_name": "thermal", "model": "detector",
                                                                   "image_base64": image, "outputs": ["heatmap"]})
    assert status == 400 and "offers ['detections']" in error["error"]["message"]
    status, listing = http("GET", stack.settings.url + "/models")
    detector = next(m for m in listing["models"] if m["kind"] == "detector")
    assert detector["outputs"] == ["detections"] and detector["detector"]["anomalous_labels"] == ["crack", "hot spot"]
    picture = stack.settings.home / "panel.png"
    picture.write_bytes(thermal_png())
    assert main(["predict", str(picture), "--class", "thermal", "--model", "detector", "--threshold", "0.8",
                 "--url", stack.settings.url]) == 0
    assert "  crack 0.900 box [80.0, 80.0, 120.0, 120.0] (anomalous)" in capsys.readouterr().out
    status, log = http("GET", stack.settings.url + "/inspections?limit=5")
    assert any(r["model_kind"] == "detector" and r["is_anomaly"] for r in log["inspections"])


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium is not installed")
def test_the_inspection_page_draws_labelled_boxes_and_rejudges_on_the_slider(stack, tmp_path):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    image = tmp_path / "thermal.png"
    image.write_bytes(thermal_png())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(stack.settings.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#model-select", "detector")
        page.select_option("#class-select", "thermal")
        page.set_input_files("#file-input", str(image))
        page.wait_for_function("document.querySelector('#busy').hidden === true")
        page.wait_for_selector("#result:not([hidden])")
        assert page.inner_text("#verdict") == "ANOMALY"
        assert page.get_attribute("#boxes", "data-boxes") == "6"
        assert page.get_attribute("#boxes", "data-labels") == "crack|hot spot|crack|normal|hot spot|normal"
        text = page.inner_text("#regions-text")
        assert "6 detections" in text and "crack (anomalous) 0.90 [80, 80, 120, 120]" in text and "normal 0.60" in text
        assert page.eval_on_selector("#heatmap", "el => el.hidden") is True  # a detector has no heatmap
        # a higher confidence cut is judged on the client: above the best anomalous box, no anomaly
        page.eval_on_selector("#threshold", "el => { el.value = '0.95'; el.dispatchEvent(new Event('input')); }")
        assert page.inner_text("#verdict") == "NORMAL" and page.get_attribute("#boxes", "data-boxes") == "0"
        page.eval_on_selector("#threshold", "el => { el.value = '0.8'; el.dispatchEvent(new Event('input')); }")
        assert page.get_attribute("#boxes", "data-labels") == "crack|hot spot"
        page.screenshot(path=str(OUTPUT / "detector_boxes.png"), full_page=True)
        # a lower cut asks the API again for the boxes below the old one
        page.eval_on_selector("#threshold", "el => { el.value = '0.25'; el.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.querySelector('#boxes').dataset.boxes === '7'", timeout=30000)
        # PatchCore still gets its heatmap and regions on the same page
        page.select_option("#model-select", "patchcore")
        page.select_option("#class-select", "tiles")
        page.eval_on_selector("#threshold", "el => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }")
        page.set_input_files("#file-input", str(Path(stack.settings.data) / "tiles/test/hole/001.png"))
        page.wait_for_function("document.querySelector('#busy').hidden === true")
        page.wait_for_function("document.querySelector('#score-text').textContent.includes('patchcore')")
        assert page.eval_on_selector("#heatmap", "el => el.hidden") is False
        assert page.get_attribute("#boxes", "data-labels") == ""
        browser.close()
