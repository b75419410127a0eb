"""Signing in, in a real browser, against `ivadas up --auth`: the authorization-code flow with PKCE
through the local sign-in page, the ID token sent to the API, and each group seeing and being
allowed only what it may do (the API refusing the rest with 403)."""

import os
from pathlib import Path

import pytest

from infra.local.auth import AuthStore
from infra.local.stack import LocalStack, StackSettings
from pipelines.local_runner import LocalPipeline, RunParameters
from pipelines.registry import APPROVED
from tests.serving.conftest import free_port
from tests.serving.test_local_stack import free_pair

CHROMIUM = os.environ.get("IVADAS_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("IVADAS_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "e2e"
PASSWORD = "line-3-quality!"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium is not installed"),
]


@pytest.fixture(scope="module")
def secured(tmp_path_factory, demo_data):
    """The local stack with --auth: one kind on one class (enough to inspect), two people."""
    home = tmp_path_factory.mktemp("home")
    settings = StackSettings(home=home, port=free_port(), runtime_port=free_port(), endpoint_base_port=free_pair(), data=demo_data,
                             classes=("tiles",), backbone="resnet18", weights="random", gateway_workers=2,
                             echo=lambda *a: None, poll_seconds=0.5, auth=True, replay_demo=False)
    users = AuthStore(settings.auth_file)
    users.add_user("ana", ["inspector"], PASSWORD)
    users.add_user("eve", ["engineer"], PASSWORD)
    pipeline = LocalPipeline(settings.store, echo=lambda *a: None)
    record = pipeline.run(RunParameters(str(demo_data), ("tiles",), "patchcore",
                                        {"backbone": "resnet18", "weights": "random", "image_size": "160"}))
    group, number = record["registered_version"].rsplit("/", 1)
    pipeline.registry.set_status(group, int(number), APPROVED, "test fixture")
    local = LocalStack(settings)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic",
                                                                              "--no-first-run", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def context(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    for page in context.pages:
        page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"), full_page=True)
    context.close()


def sign_in(context, stack, name, password=PASSWORD):
    page = context.new_page()
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(stack.settings.url + "/#inspect")
    page.wait_for_selector("input[name=password]")  # sent to the sign-in page: nobody is signed in
    assert "/oauth2/authorize" in page.url and "code_challenge_method=S256" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    return page, seen


def call_api(page, path, method="GET", body=None):
    """The UI's own API wrapper, from the page (so with the token the UI holds)."""
    return page.evaluate("""async ([path, method, body]) => {
        const { api } = await import('/js/api.js');
        try { await api(path, { method, body: body === null ? undefined : JSON.stringify(body) }); return { status: 200 }; }
        catch (e) { return { status: e.status, code: e.code, message: e.message }; }
    }""", [path, method, body])


def test_an_inspector_signs_in_inspects_and_is_refused_engineering(context, secured, demo_data):
    page, seen = sign_in(context, secured, "ana")
    page.wait_for_selector("body[data-ready=true]")
    assert "code=" not in page.url and "token" not in page.url  # the code left the address bar; no token ever in it
    assert not any("id_token=" in url or "access_token=" in url for url in seen)
    assert page.inner_text("#user") == "ana (inspector)"
    assert page.is_hidden("a[data-page-link=train]")  # datasets and training are an engineer's
    assert "Serving ivadas-training-patchcore/" in page.inner_text("#model-version")
    page.select_option("#class-select", "tiles")
    page.set_input_files("#file-input", str(demo_data / "tiles/test/hole/001.png"))
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict") == "ANOMALY"
    assert page.locator("[aria-label='verdict wrong']").count() >= 1  # marking verdicts is an engineer's
    assert not page.locator("[aria-label='verdict wrong']").first.is_visible()
    assert call_api(page, "/inspections")["status"] == 200
    assert call_api(page, "/feedback", "POST", {"request_id": "x", "correct": False})["status"] == 403
    refused = call_api(page, "/trainings", "POST", {"class_name": "tiles", "kind": "patchcore"})
    assert refused["status"] == 403 and refused["code"] == "forbidden" and "engineer" in refused["message"]
    refused = call_api(page, "/versions/patchcore/1/approval", "POST", {"decision": "reject", "reason": "no"})
    assert refused["status"] == 403
    page.click("#sign-out")
    page.wait_for_selector("input[name=password]")  # signed out: back to the sign-in page


def test_an_engineer_sees_training_and_may_use_it(context, secured, demo_data):
    page, _ = sign_in(context, secured, "eve")
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("#user") == "eve (engineer)"
    assert page.is_visible("a[data-page-link=train]")
    page.select_option("#class-select", "tiles")
    page.set_input_files("#file-input", str(demo_data / "tiles/test/good/001.png"))
    page.wait_for_selector("#result:not([hidden])")
    assert page.locator("#verdict-feedback [aria-label='verdict wrong']").is_visible()
    assert call_api(page, "/datasets")["status"] == 200
    assert call_api(page, "/inspections")["status"] == 200


def test_a_wrong_password_stays_on_the_sign_in_page(context, secured):
    page, _ = sign_in(context, secured, "ana", password="not-the-password")
    page.wait_for_selector("[role=alert]")
    assert "wrong user name or password" in page.inner_text("[role=alert]")
    assert "/oauth2/authorize" in page.url


def test_without_a_token_the_api_refuses_and_with_a_key_a_station_inspects(secured, demo_data):
    from tests.serving.conftest import b64, http

    url = secured.settings.url
    status, body = http("GET", url + "/inspections")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    key = AuthStore(secured.settings.auth_file).add_key("line-3", quota_per_day=1, rate_per_second=5)
    image = {"class_name": "tiles", "image_base64": b64(demo_data / "tiles/test/good/001.png")}
    status, body = http("POST", url + "/predict", image, headers={"x-api-key": key})
    assert status == 200 and body["is_anomaly"] is False
    status, body = http("POST", url + "/predict", image, headers={"x-api-key": key})
    assert status == 429 and body["error"]["code"] == "quota_exceeded"
