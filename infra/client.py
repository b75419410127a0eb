"""`ivadas predict --url`: call a running IVADAS API (the local stack or the AWS one)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

from inference.errors import IvadasError


class ApiCallFailed(IvadasError):
    """The API answered with an error (its code and message are kept) or could not be reached."""

    def __init__(self, message: str, status: int = 0, code: str = "unreachable"):
        super().__init__(message)
        self.status, self.code = status, code


def predict_remote(url: str, image: str | Path, class_name: str, model: str | None = None,
                   threshold: float | None = None, outputs=("heatmap", "regions"), timeout: float = 30) -> dict:
    body = {"class_name": class_name, "image_base64": base64.b64encode(Path(image).read_bytes()).decode("ascii"),
            "outputs": list(outputs)}
    if model:
        body["model"] = model
    if threshold is not None:
        body["threshold"] = threshold
    return call(url, "/predict", body, timeout)


def credentials() -> dict[str, str]:
    """A station key (`IVADAS_API_KEY`, sent as x-api-key) or a person's ID token (`IVADAS_TOKEN`, e.g.
    from `ivadas users token NAME`), for an API that requires one (`ivadas up --auth`, AWS)."""
    import os

    headers = {}
    if os.environ.get("IVADAS_API_KEY"):
        headers["x-api-key"] = os.environ["IVADAS_API_KEY"]
    if os.environ.get("IVADAS_TOKEN"):
        headers["Authorization"] = os.environ["IVADAS_TOKEN"]
    return headers


def call(url: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **credentials()})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", {})
        except (json.JSONDecodeError, AttributeError):
            error = {}
        raise ApiCallFailed(f"{error.get('message', exc.reason)} (HTTP {exc.code})", exc.code, error.get("code", "http_error")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ApiCallFailed(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None



def predict_window_remote(url: str, csv_body: bytes, asset: str, model: str | None = None,
                          threshold: float | None = None, timeout: float = 30) -> dict:
    """POST /predict with the readings of a CSV window (header row; a timestamp column is sent as such)."""
    from inference.sensors.sensor_model import read_csv_window

    names, rows, timestamps = read_csv_window(csv_body)
    body = {"class_name": asset, "window": rows, "sensors": names}
    if timestamps is not None:
        body["timestamps"] = timestamps
    if model:
        body["model"] = model
    if threshold is not None:
        body["threshold"] = threshold
    return call(url, "/predict", body, timeout)
