"""The monitoring page's "Run now" against the API as deployed on AWS, where it starts a SageMaker
Processing job: the page says which job started and keeps waiting for its report. The static site is
served from ui/ and the API's answers are those of lambda/predict/routes_monitoring.py on AWS
(tests/serving/test_monitoring_api.py holds the route to them); screenshot in test-output/e2e."""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.test_ui import CHROMIUM, OUTPUT, browser  # noqa: F401  (the module's browser fixture)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium is not installed")
UI = Path(__file__).resolve().parents[2] / "ui"
JOB = "ivadas-dev-monitor-now-20261201-235959-a1b2c3"
API = re.compile(r"/(predict|health|models|inspections|assets|monitoring|datasets|trainings|versions|trials|feedback)(/|\?|$)")


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(UI)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _page_on_aws(context, site: str, answers: dict) -> tuple[object, list]:
    """A page of the site whose API answers as deployed on AWS: `answers` maps (method, path) to (status,
    JSON body); other monitoring calls find no run yet, the rest is not part of the test. Also the
    (method, path) of every call it made."""
    page = context.new_page()
    asked = []

    def api(route):
        key = (route.request.method, route.request.url[len(site):])
        asked.append(key)
        if key in answers:
            status, body = answers[key]
        elif key[1].startswith("/monitoring"):
            status, body = 200, {"summary": None, "message": "no monitoring run yet"}
        else:
            status, body = 503, {"error": {"code": "model_unavailable", "message": "not part of this test"}}
        return route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page.route(f"{site}/config.json", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"apiBaseUrl": "", "environment": "aws"})))
    page.route(lambda url: url.startswith(site) and API.search(url[len(site):]) is not None, api)
    return page, asked


def test_run_now_on_aws_says_which_processing_job_started(browser, site):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, asked = _page_on_aws(context, site, {("POST", "/monitoring/run"): (202, {"status": "started", "job_name": JOB})})
    try:
        page.goto(site + "/#monitoring")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#monitoring-run")
        page.wait_for_selector("#monitoring-run-note:not([hidden])", timeout=10_000)
        note = page.inner_text("#monitoring-run-note")
        assert JOB in note and "started on SageMaker" in note
        assert ("POST", "/monitoring/run") in asked
        assert page.is_disabled("#monitoring-run")  # waiting for the job's report, not asking twice
        assert page.is_hidden("#monitoring-error")
        page.screenshot(path=str(OUTPUT / "monitoring_run_on_aws.png"), full_page=True)
    finally:
        context.close()


def test_a_report_too_large_for_the_api_opens_from_its_link_in_a_new_tab(browser, site):  # noqa: F811
    """On AWS a report past Lambda's answer limit comes as a short-lived signed link to its object (the
    route's answer, tests/serving/test_monitoring_api.py): the page offers it, the user's click opens it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # the object's own origin, as S3 signs it: the page links there, its content security policy aside
    signed = ("https://ivadas-artifacts.s3.eu-west-1.amazonaws.com/monitoring/latest/report.html"
              "?response-content-type=text%2Fhtml%3B%20charset%3Dutf-8&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300"
              "&X-Amz-Signature=abc")
    context.route(signed, lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8",
                                                      body="<html><body><h1 id='status'>ALARM</h1></body></html>"))
    page, _ = _page_on_aws(context, site, {("GET", "/monitoring/report"): (
        200, {"url": signed, "expires_in": 300, "bytes": 7 * 1048576})})
    try:
        page.goto(site + "/#monitoring")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#monitoring-open-report")
        link = page.wait_for_selector("#monitoring-report-link", timeout=10_000)
        text = page.inner_text("#monitoring-report")
        assert "7.0 MB" in text and "5 minutes" in text
        assert link.get_attribute("href") == signed and link.get_attribute("target") == "_blank"
        assert page.is_hidden("#monitoring-error")
        with context.expect_page() as opened:
            link.click()
        report = opened.value
        report.wait_for_load_state()
        assert report.url == signed and report.inner_text("#status") == "ALARM"
        page.screenshot(path=str(OUTPUT / "monitoring_report_link.png"), full_page=True)
    finally:
        context.close()
