"""The local runtime's data capture, written as SageMaker's is on AWS, so that the monitoring job reads
the local store's `data-capture/` exactly as it reads the artifacts bucket's.

SageMaker records a sampled share of an endpoint's requests (`InitialSamplingPercentage`, 20 % as
the deploy Lambda sets it), input and output, one JSON line each, in files under
`<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`; the destination is `data-capture/<kind>`.
Bodies of the configured JSON and CSV content types are kept as text, the rest base64. The caller's
InferenceId (the API's marks its own calls) is kept in `eventMetadata`.
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

#: The deploy Lambda's InitialSamplingPercentage (lambda/deploy/endpoints.py).
CAPTURE_PERCENT = 20.0
VARIANT = "AllTraffic"
JSON_TYPES, CSV_TYPES = ("application/json",), ("text/csv",)  # the deploy Lambda's CaptureContentTypeHeader


def captured(mode: str, content_type: str, data: bytes) -> dict:
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        if kind in JSON_TYPES:
            return {"observedContentType": content_type, "mode": mode, "data": data.decode("utf-8"), "encoding": "JSON"}
        if kind in CSV_TYPES:
            return {"observedContentType": content_type, "mode": mode, "data": data.decode("utf-8"), "encoding": "CSV"}
    except UnicodeDecodeError:
        pass  # not text after all: kept as bytes, as SageMaker does for what it cannot read as text
    return {"observedContentType": content_type, "mode": mode, "data": base64.b64encode(data).decode("ascii"),
            "encoding": "BASE64"}


class DataCapture:
    def __init__(self, root: Path, kinds: dict[str, str], percent: float = CAPTURE_PERCENT, sample=random.random):
        self.root, self.kinds, self.percent, self.sample = Path(root), dict(kinds), float(percent), sample
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> "DataCapture | None":
        """`IVADAS_CAPTURE_DIR` (none: no capture), `ENDPOINT_NAMES` (kind → endpoint) and
        `IVADAS_CAPTURE_PERCENT` (default 20)."""
        root = os.environ.get("IVADAS_CAPTURE_DIR")
        if not root:
            return None
        kinds = {endpoint: kind for kind, endpoint in json.loads(os.environ.get("ENDPOINT_NAMES") or "{}").items()}
        return cls(Path(root), kinds, float(os.environ.get("IVADAS_CAPTURE_PERCENT", CAPTURE_PERCENT)))

    def record(self, endpoint: str, content_type: str, body: bytes, answer_type: str, answer: bytes,
               inference_id: str | None = None, moment: datetime | None = None) -> Path | None:
        """Append the request to its hour's file when it falls in the sample; the file written, or None."""
        if self.sample() * 100 >= self.percent:
            return None
        moment = moment or datetime.now(timezone.utc)
        metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        if inference_id:
            metadata["inferenceId"] = inference_id
        line = json.dumps({"captureData": {"endpointInput": captured("INPUT", content_type, body),
                                           "endpointOutput": captured("OUTPUT", answer_type, answer)},
                           "eventMetadata": metadata, "eventVersion": "0"})
        kind = self.kinds.get(endpoint, endpoint)
        path = self.root / kind / endpoint / VARIANT / moment.strftime("%Y/%m/%d/%H") / f"capture-{os.getpid()}.jsonl"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        return path
