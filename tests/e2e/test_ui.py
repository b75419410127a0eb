"""The inspection page in a real browser (Debian's chromium via Playwright) against the local stack."""

import os
from pathlib import Path

import pytest

from tests.serving.test_local_stack import stack  # noqa: F401  (the running local stack fixture)

CHROMIUM = os.environ.get("IVADAS_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("IVADAS_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "e2e"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium is not installed"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack, request):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((stack.settings.url, "data:", "blob:")) else None)
    page.goto(stack.settings.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"), full_page=True)
    assert outside == [], f"the page made external requests: {outside}"
    context.close()


def choose(page, class_name="tiles", model="patchcore"):
    page.select_option("#model-select", model)
    page.select_option("#class-select", class_name)


def upload(page, path):
    page.set_input_files("#file-input", str(path))
    page.wait_for_function("document.querySelector('#busy').hidden === true")


def test_defective_image_gives_an_anomaly_with_heatmap_and_boxes(page, demo_data):
    assert "Serving ivadas-training-patchcore/" in page.inner_text("#model-version")
    choose(page)
    upload(page, demo_data / "tiles/test/hole/001.png")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict") == "ANOMALY"
    assert page.get_attribute("#heatmap", "src").startswith("data:image/png;base64,")
    assert int(page.get_attribute("#boxes", "data-boxes")) >= 1
    page.fill("#opacity", "0.2")
    page.dispatch_event("#opacity", "input")
    assert page.eval_on_selector("#heatmap", "el => el.style.opacity") == "0.2"


def test_good_image_gives_a_normal_verdict_and_the_threshold_rejudges(page, demo_data):
    choose(page)
    upload(page, demo_data / "tiles/test/good/001.png")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict") == "NORMAL"
    page.eval_on_selector("#threshold", "el => { el.value = '0'; el.dispatchEvent(new Event('input')); }")
    assert page.inner_text("#verdict") == "ANOMALY"  # judged on the client at once
    page.wait_for_function("document.querySelector('#busy').hidden === true")


def test_a_text_file_named_png_shows_an_error_and_the_page_keeps_working(page, demo_data, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is a text file, not an image")
    choose(page)
    upload(page, fake)
    error = page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in error.inner_text()
    assert page.get_attribute("#error", "data-code") == "unsupported_media_type"
    upload(page, demo_data / "tiles/test/hole/002.png")
    assert page.inner_text("#verdict") == "ANOMALY" and page.is_hidden("#error")


def test_history_shows_the_inspections_just_made(page, demo_data):
    choose(page)
    upload(page, demo_data / "tiles/test/hole/000.png")
    page.click("#history-refresh")
    page.wait_for_function("document.querySelectorAll('#history-rows tr').length > 0")
    page.select_option("#history-verdict", "anomaly")
    page.wait_for_function("[...document.querySelectorAll('#history-rows tr')].every(r => r.innerText.includes('anomaly'))")
    assert "tiles" in page.inner_text("#history-rows")
    assert "ivadas-training-patchcore/1" in page.inner_text("#model-cards")


def test_keyboard_and_tablet_layout(browser, stack, demo_data):  # noqa: F811
    context = browser.new_context(viewport={"width": 768, "height": 1024})
    page = context.new_page()
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))  # registered early: file-chooser interception is on before any key press
    page.goto(stack.settings.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    for control in ("#class-select", "#model-select", "#threshold", "#opacity"):
        label = page.eval_on_selector(control, "el => el.labels.length")
        assert label == 1, control
    page.select_option("#class-select", "tiles")
    page.focus("#dropzone")
    page.keyboard.press("Enter")
    page.wait_for_timeout(100)
    for _ in range(50):
        if choosers:
            break
        page.wait_for_timeout(100)
    assert choosers, "Enter on the focused drop zone must open the file chooser"
    choosers[0].set_files(str(demo_data / "tiles/test/good/003.png"))
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict") == "NORMAL"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 768  # no horizontal scrolling on a tablet
    page.screenshot(path=str(OUTPUT / "tablet.png"), full_page=True)
    context.close()
