"""Importing a bring-your-own detector in a real browser against the local stack: the small YOLO-shaped
torch detector of tests/kinds/test_detector_import.py, its data.yaml and a labelled zip are chosen on
the life-cycle page; names that disagree with the graph are refused in the importer's words with
nothing registered; the right ones give a version with its evaluation, approved from the page and
then served by its own endpoint."""

from __future__ import annotations

import io
import zipfile

import pytest

from infra.local.stack import LocalStack, StackSettings
from pipelines.registry import APPROVED, LocalRegistry
from tests.e2e.test_ui import OUTPUT, browser  # noqa: F401  (the chromium fixture)
from tests.kinds.graphs import NAMES, export_tiny_yolo, ultralytics_metadata
from tests.kinds.test_detector_import import photo, write_yaml
from tests.kinds.test_detector_stack import free_ports
from tests.serving.conftest import free_port

pytestmark = pytest.mark.slow
GROUP = "ivadas-training-detector"


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    """The torch detector exported as Ultralytics does, its data.yaml, a data.yaml of too few names, and
    a labelled set of two photos (a crack and a hot spot, YOLO boxes) zipped as people zip it."""
    root = tmp_path_factory.mktemp("detector")
    export_tiny_yolo(root / "thermal.onnx", len(NAMES), metadata=ultralytics_metadata(NAMES))
    names = write_yaml(root / "data.yaml", NAMES)
    (root / "short").mkdir()
    short = write_yaml(root / "short" / "data.yaml", NAMES[:2])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("line3/data.yaml", names.read_text())
        for index, labels in enumerate(["0 0.25 0.25 0.1 0.1\n", "2 0.7 0.6 0.2 0.15\n1 0.3 0.8 0.1 0.1\n"]):
            image = io.BytesIO()
            photo(index).save(image, format="PNG")
            archive.writestr(f"line3/images/val/{index}.png", image.getvalue())
            archive.writestr(f"line3/labels/val/{index}.txt", labels)
    (root / "line3.zip").write_bytes(buffer.getvalue())
    return root / "thermal.onnx", names, short, root / "line3.zip"


@pytest.fixture(scope="module")
def import_stack(tmp_path_factory, patchcore_bundle, softpatch_bundle, demo_data):
    """The local stack serving the test bundles (approved), its worker idle, no detector yet."""
    home = tmp_path_factory.mktemp("home")
    settings = StackSettings(home=home, port=free_port(), runtime_port=free_port(), endpoint_base_port=free_ports(3),
                             data=demo_data, classes=("tiles", "fabric"), gateway_workers=2, echo=lambda *a: None,
                             poll_seconds=0.5)
    registry = LocalRegistry(settings.store)
    for kind, (bundle, _) in (("patchcore", patchcore_bundle), ("softpatch", softpatch_bundle)):
        version = registry.register(f"ivadas-training-{kind}", str(bundle), {"mean": {}}, {"classes": "tiles,fabric", "model_kind": kind})
        registry.set_status(version.group, version.version, APPROVED, "test fixture")
    stack = LocalStack(settings)
    stack.start()
    yield stack
    stack.stop()


def choose_files(page, graph, names, labelled=None):
    page.set_input_files("#import-graph", str(graph))
    page.set_input_files("#import-names", str(names))
    if labelled is not None:
        page.set_input_files("#import-labelled", str(labelled))


def test_a_detector_is_imported_evaluated_and_approved_from_the_browser(browser, import_stack, detector_files):  # noqa: F811
    graph, names, short, labelled = detector_files
    store = import_stack.settings.store
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(import_stack.settings.url + "/#train")
        page.wait_for_selector("body[data-ready=true]")
        # names that disagree with the graph: the importer's words, nothing registered
        choose_files(page, graph, short)
        page.wait_for_selector("#import-anomalous input[data-name=crack]")
        assert page.locator("#import-anomalous input").count() == 2
        page.check("#import-anomalous input[data-name=crack]")
        page.fill("#import-class", "thermal")
        page.click("#import-start")
        failure = page.wait_for_selector("#import-failure", timeout=120_000)
        assert "names give 2 classes but the detector predicts 3" in failure.inner_text()
        assert LocalRegistry(store).list(GROUP) == []
        # the right names, anomalous classes picked from them, and a labelled set
        choose_files(page, graph, names, labelled)
        page.wait_for_function("document.querySelectorAll('#import-anomalous input').length === 3")
        assert page.locator("#import-anomalous input").evaluate_all("els => els.map(e => e.value)") == NAMES
        page.check("#import-anomalous input[data-name=crack]")
        page.check("#import-anomalous input[data-name='hot spot']")
        page.click("#import-start")
        version = page.wait_for_selector("#import-version", timeout=120_000)
        assert version.inner_text().startswith(f"{GROUP}/1: 3 classes, anomalous: crack, hot spot; input 640x640; serves class thermal")
        assert page.locator("#import-evaluation tbody tr").count() == 3
        assert "on 2 labelled images (2 anomalous)" in page.inner_text("#import-map")
        registered = LocalRegistry(store).get(GROUP, 1)
        assert registered.status == "PendingManualApproval" and registered.metadata["source"] == "thermal.onnx"
        shown = page.locator("#import-evaluation tr[data-label=crack] td").all_inner_texts()
        crack = registered.metrics["labels"]["crack"]
        assert shown == ["crack", f"{crack['ap50']:.3f}", "n/a" if crack["precision"] is None else f"{crack['precision']:.3f}",
                         f"{crack['recall']:.3f}", "1"]
        # approved like any other version; the stack then serves it from its own endpoint
        page.fill("#import-reason", "boxes checked on line 3")
        page.click("#import-approve")
        page.wait_for_selector("#import-approval-status[data-status=Approved]")
        assert LocalRegistry(store).get(GROUP, 1).history[-1]["reason"] == "boxes checked on line 3"
        served = page.evaluate("""async () => {
            for (let i = 0; i < 120; i++) {
                const listing = await (await fetch('/models')).json();
                const detector = listing.models.find((m) => m.kind === 'detector' && m.available);
                if (detector) return detector.version;
                await new Promise((r) => setTimeout(r, 500));
            }
            return null;
        }""")
        assert served == f"{GROUP}/1"
    finally:
        page.screenshot(path=str(OUTPUT / "detector-import.png"), full_page=True)
        context.close()


def test_an_import_sagemaker_refused_is_started_again_without_sending_its_files_again(browser, import_stack,  # noqa: F811
                                                                                       detector_files):
    """The first start is answered as SageMaker's quota answers it on AWS (429, the API's words); the
    page keeps the import, and the next click starts it on the files already sent."""
    import json

    graph, _, short, _ = detector_files
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    uploads, starts = [], []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" and r.url.endswith("/models/import/uploads") else None)
    quota = "SageMaker's quota for processing jobs is reached (The account-level service limit 'ml.m5.large for processing " \
            "job usage' is 1 Instances); ask again when a running job has finished"

    def first_refused(route):
        starts.append(json.loads(route.request.post_data))
        if len(starts) == 1:
            route.fulfill(status=429, content_type="application/json",
                          body=json.dumps({"error": {"code": "import_limit_reached", "message": quota}}))
        else:
            route.continue_()

    page.route("**/models/import", first_refused)
    try:
        page.goto(import_stack.settings.url + "/#train")
        page.wait_for_selector("body[data-ready=true]")
        choose_files(page, graph, short)
        page.wait_for_selector("#import-anomalous input[data-name=crack]")
        page.check("#import-anomalous input[data-name=crack]")
        page.fill("#import-class", "thermal")
        page.click("#import-start")
        page.wait_for_function("document.querySelector('#import-status').textContent.includes('The files are kept')")
        status = page.inner_text("#import-status")
        assert status.startswith("SageMaker cannot start the import now: SageMaker's quota for processing jobs is reached")
        page.click("#import-start")
        # the job ran on the files sent the first time: the importer's own words about them
        failure = page.wait_for_selector("#import-failure", timeout=120_000)
        assert "names give 2 classes but the detector predicts 3" in failure.inner_text()
        assert len(uploads) == 1 and len(starts) == 2 and starts[0]["import_id"] == starts[1]["import_id"]
    finally:
        page.screenshot(path=str(OUTPUT / "detector-import-retry.png"), full_page=True)
        context.close()
