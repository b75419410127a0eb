"""The model life cycle in a real browser against the local stack: a class created from a zip of
synthetic images → a training (tiny settings) watched step by step → its report → approval → an
image inspected with the new version → its verdict marked wrong → counted for the next training."""

from __future__ import annotations

import io
import zipfile

import pytest

from infra.local.stack import LocalStack, StackSettings
from pipelines.registry import APPROVED, LocalRegistry
from tests.e2e.test_ui import OUTPUT, browser  # noqa: F401  (the chromium fixture)
from tests.serving.conftest import free_port
from tests.serving.test_local_stack import free_pair

pytestmark = pytest.mark.slow
SETTINGS = "backbone=resnet18, weights=random, image_size=64, coreset_ratio=0.1"


def text_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("notes/readme.txt", "no pictures here")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def new_class(tmp_path_factory):
    """A class the served models have never seen (`wood`, 64 px), as a zip in MVTec layout."""
    from pipelines.vision.synthetic import generate

    data = generate(tmp_path_factory.mktemp("wood") / "data", ["wood"], size=64, train_count=12, test_good_count=6,
                    test_defect_count=2, seed=5)
    archive = tmp_path_factory.mktemp("zip") / "wood.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for path in sorted((data / "wood").rglob("*.png")):
            out.write(path, str(path.relative_to(data)))
    archive.write_bytes(buffer.getvalue())
    # an image of the same product the dataset does not hold yet (another draw)
    unseen = generate(tmp_path_factory.mktemp("wood-new") / "data", ["wood"], size=64, train_count=1, test_good_count=1,
                      test_defect_count=1, seed=11)
    return data, archive, unseen / "wood/test/good/000.png"


@pytest.fixture(scope="module")
def lifecycle_stack(tmp_path_factory, patchcore_bundle, softpatch_bundle, demo_data):
    """The local stack serving the test bundles (approved), its training worker idle."""
    home = tmp_path_factory.mktemp("home")
    settings = StackSettings(home=home, port=free_port(), runtime_port=free_port(), endpoint_base_port=free_pair(), data=demo_data,
                             classes=("tiles", "fabric"), gateway_workers=2, echo=lambda *a: None, poll_seconds=0.5)
    registry = LocalRegistry(settings.store)
    for kind, (bundle, report) in (("patchcore", patchcore_bundle), ("softpatch", softpatch_bundle)):
        version = registry.register(f"ivadas-training-{kind}", str(bundle), {"mean": {}}, {"classes": "tiles,fabric", "model_kind": kind})
        registry.set_status(version.group, version.version, APPROVED, "test fixture")
    stack = LocalStack(settings)
    stack.start()
    yield stack
    stack.stop()


def test_from_a_zip_to_a_verified_verdict_in_the_browser(browser, lifecycle_stack, new_class):  # noqa: F811
    data, archive, unseen = new_class
    url = lifecycle_stack.settings.url
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(url + "/#train")
        page.wait_for_selector("body[data-ready=true]")
        # 1. a class from a zip, uploaded through the upload form
        page.set_input_files("#zip-file", str(archive))
        page.click("#zip-upload")
        page.wait_for_selector("#dataset-rows tr[data-class=wood]")
        assert "wood: 26 added" in page.inner_text("#dataset-status")
        cells = page.locator("#dataset-rows tr[data-class=wood] td").all_inner_texts()
        assert cells[1:5] == ["12", "6", "8", "0"]
        # a zip that is not a dataset: a clear message, nothing stored
        page.set_input_files("#zip-file", {"name": "notes.zip", "mimeType": "application/zip", "buffer": text_zip()})
        page.click("#zip-upload")
        page.wait_for_selector("#dataset-status.error")
        assert "no images" in page.inner_text("#dataset-status")
        assert page.locator("#dataset-rows tr").count() == 1
        # 2. a training, watched step by step
        page.check("#train-class-wood")
        page.select_option("#train-kind", "patchcore")
        page.fill("#train-settings", SETTINGS)
        page.fill("#train-gate", "0.6")
        page.click("#train-start")
        page.wait_for_selector("#training-steps")
        seen = set()
        for _ in range(2400):  # waiting, not timing: the training takes what it takes on a busy machine
            seen |= {s for s in page.locator("#training-steps li[data-status=Executing]").evaluate_all("els => els.map(e => e.dataset.step)")}
            heading = page.inner_text("#training-detail h3")
            if heading.endswith(("Succeeded", "Failed")):
                break
            page.wait_for_timeout(250)
        assert heading.endswith("Succeeded"), page.inner_text("#training-detail")
        assert {"Train", "Evaluate"} & seen, "progress was never shown while a step ran"
        assert page.locator("#training-steps li[data-status=Succeeded]").count() == 5
        # 3. the report: metrics, the plots, the wrong images
        page.wait_for_selector("#report-summary")
        assert "ivadas-training-patchcore/2" in page.inner_text("#report-summary")
        for plot in ("roc", "histogram", "examples"):
            assert page.get_attribute(f".plot-{plot} img", "src").startswith("data:image/png;base64,")
        assert page.locator("table.metrics[data-class=wood] td").nth(1).inner_text() != "n/a"
        # 4. approval with a reason; the endpoint switches to the new version
        page.fill("#approval-reason", "report read: holes and scratches found")
        page.click("#approve")
        page.wait_for_selector("#approval-status[data-serving='ivadas-training-patchcore/2']", timeout=90_000)
        history = LocalRegistry(lifecycle_stack.settings.store).get("ivadas-training-patchcore", 2).history
        assert history[-1]["status"] == APPROVED and history[-1]["reason"] == "report read: holes and scratches found"
        # a trial of the version on a new image, before anyone inspects with it
        page.select_option("#trial-version", "patchcore/2")
        page.set_input_files("#trial-files", str(unseen))
        page.click("#trial-start")
        page.wait_for_selector("#trial-results .trial-result .tag", timeout=60_000)
        assert "Trial of ivadas-training-patchcore/2" in page.inner_text("#trial-status")
        assert page.locator("#trial-results .trial-result button").count() == 2  # right / wrong
        # 5. an image inspected with the new version, its verdict marked wrong
        page.click("a[data-page-link=inspect]")
        page.select_option("#model-select", "patchcore")
        page.select_option("#class-select", "wood")
        assert "ivadas-training-patchcore/2" in page.inner_text("#model-version")
        page.set_input_files("#file-input", str(unseen))
        page.wait_for_function("document.querySelector('#busy').hidden === true")
        page.wait_for_selector("#verdict-feedback button")
        page.click("#verdict-feedback button[aria-label='verdict wrong']")
        status = page.wait_for_selector("#verdict-feedback .feedback-status:has-text('wait for the next training')")
        assert "1 verified image of wood" in status.inner_text()
        # 6. counted for the next training on the datasets page
        page.click("a[data-page-link=train]")
        page.wait_for_function("document.querySelector('#dataset-rows tr[data-class=wood] td.pending')?.textContent === '1'")
    finally:
        page.screenshot(path=str(OUTPUT / "lifecycle.png"), full_page=True)
        context.close()
