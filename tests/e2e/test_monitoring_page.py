"""The monitoring page in a real browser against a local stack: darker images sent through the API,
a monitoring run asked for from the page, the drift alarm for the class shown, and the full report
opened (screenshots in test-output/e2e)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from infra.local.stack import LocalStack, StackSettings
from pipelines.local_runner import LocalPipeline, RunParameters
from pipelines.registry import APPROVED
from tests.e2e.test_ui import CHROMIUM, OUTPUT, browser  # noqa: F401  (the module's browser fixture)
from tests.serving.conftest import free_port, http
from tests.serving.test_local_stack import free_pair

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium is not installed"),
]


def darker_png(path: Path) -> str:
    """The image as the line's camera sees it after the lighting lost 40 %."""
    buffer = io.BytesIO()
    ImageEnhance.Brightness(Image.open(path).convert("RGB")).enhance(0.6).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def monitored_stack(tmp_path_factory, demo_data):
    home = tmp_path_factory.mktemp("monitor-home")
    settings = StackSettings(home=home, port=free_port(), runtime_port=free_port(), endpoint_base_port=free_pair(), data=demo_data,
                             classes=("tiles",), backbone="resnet18", weights="random", gateway_workers=2,
                             echo=lambda *a: None, poll_seconds=0.5)
    pipeline = LocalPipeline(settings.store, echo=lambda *a: None)
    record = pipeline.run(RunParameters(str(demo_data), ("tiles",), "patchcore",
                                        {"backbone": "resnet18", "weights": "random", "image_size": "160"}))
    group, number = record["registered_version"].rsplit("/", 1)
    pipeline.registry.set_status(group, int(number), APPROVED, "test fixture")
    local = LocalStack(settings)
    local.start()
    try:
        images = sorted((demo_data / "tiles" / "train" / "good").glob("*.png"))
        assert len(images) >= 30
        for path in images:
            status, result = http("POST", settings.url + "/predict", {"class_name": "tiles", "image_base64": darker_png(path)})
            assert status == 200, result
        yield local
    finally:
        local.stop()


def test_a_run_asked_for_from_the_page_shows_the_drift_alarm_and_the_report(browser, monitored_stack):  # noqa: F811
    url = monitored_stack.settings.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    outside, console = [], []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:", "about:")) else None)
    page.on("console", lambda message: console.append(message.text))
    try:
        page.goto(url + "/#monitoring")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#monitoring-run")
        try:
            page.wait_for_function("document.querySelector('#monitoring-status').textContent.includes('alarm')",
                                   timeout=120_000)
        except Exception:
            page.screenshot(path=str(OUTPUT / "monitoring_page_failed.png"), full_page=True)
            raise AssertionError(f"no alarm shown: status {page.inner_text('#monitoring-status')!r}, error "
                                 f"{page.inner_text('#monitoring-error')!r}, console {console}") from None
        alarms = page.inner_text("#monitoring-alarms")
        assert "drift on class tiles" in alarms and "brightness" in alarms
        row = page.locator("#monitoring-groups tr[data-class-name=tiles]")
        assert "monitoring-alarm" in row.get_attribute("class")
        assert "brightness" in row.inner_text() and "ivadas-training-patchcore/1" in row.inner_text()
        assert page.eval_on_selector("#monitoring-status", "e => getComputedStyle(e).color") == "rgb(176, 0, 32)"  # in red
        page.screenshot(path=str(OUTPUT / "monitoring_page.png"), full_page=True)

        page.click("#monitoring-open-report")
        report = page.locator("#monitoring-report")
        try:
            report.locator("#status").wait_for(timeout=60_000)
        except Exception:
            raise AssertionError(f"no report shown: error {page.inner_text('#monitoring-error')!r}, console {console}") from None
        assert report.locator("#status").inner_text() == "ALARM"
        assert "drift on class tiles" in report.inner_text()
        images = report.locator("img")
        assert images.count() >= 3  # anomaly rate, scores and the input that moved most
        assert all(images.nth(i).evaluate("img => img.naturalWidth > 100") for i in range(images.count()))
        report.screenshot(path=str(OUTPUT / "monitoring_report.png"))
        assert (OUTPUT / "monitoring_report.png").stat().st_size > 10_000
        assert outside == [], f"the page made external requests: {outside}"
        assert [m for m in console if "Failed to load resource" in m] == [], console  # every file and call answered
    finally:
        context.close()


def test_the_routes_serve_the_summary_the_page_and_take_a_run_request(monitored_stack):
    import urllib.request

    status, summary = http("GET", monitored_stack.settings.url + "/monitoring")
    assert status == 200 and summary["summary"]["status"] == "alarm"
    assert [g["class_name"] for g in summary["summary"]["groups"]] == ["tiles"]
    with urllib.request.urlopen(monitored_stack.settings.url + "/monitoring/report", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        assert "drift on class tiles" in response.read().decode()
    status, body = http("POST", monitored_stack.settings.url + "/monitoring/run", {})
    assert status == 202 and body == {"status": "requested"}
