"""The monitoring job: read a period of verdicts (the inspection log's, and the endpoints' data
capture of requests made to them directly), compare with training, write the report, and on AWS
publish CloudWatch metrics. `ivadas monitor` runs it locally; on AWS a SageMaker Processing job
started by an EventBridge schedule (or by POST /monitoring/run) runs `python -m pipelines.monitoring.job`
in the training image (settings from the environment: `INSPECTION_TABLE`, `CAPTURE_S3_URI`,
`MONITOR_LOOKBACK_HOURS`, `MONITOR_THRESHOLDS`, output to /opt/ml/processing/output, uploaded by
SageMaker to `monitoring/`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipelines.monitoring import capture
from pipelines.monitoring import records as verdicts
from pipelines.monitoring.monitor import monitor
from pipelines.monitoring.report import write_report
from pipelines.monitoring.thresholds import ThresholdConfig

DEFAULT_LOOKBACK_HOURS = 24


@dataclass
class MonitorRun:
    summary: dict
    report: Path


def run(records: list[dict], references, since: datetime, until: datetime, output: Path,
        thresholds: ThresholdConfig | None = None) -> MonitorRun:
    summary = monitor(records, references, since, until, thresholds)
    return MonitorRun(summary, write_report(summary, records, references, output))


class NothingToMonitor(FileNotFoundError):
    """A local store with neither an inspection log nor any captured request: no pass can say anything."""


def run_local(store: Path, output: Path, since: datetime, until: datetime, thresholds_file=None,
              database: Path | None = None) -> MonitorRun:
    """Over the local stack's inspection log, the capture files under the store's `data-capture/`
    (laid out as on S3) if any, and the local registry. A store whose endpoints were only called
    directly has capture but no log yet: the pass runs over the capture alone. A log named by the
    caller (`database`) must exist."""
    from pipelines.monitoring.references import LocalReferences

    capture_root = store / capture.CAPTURE_PREFIX
    log_required = database is not None
    database = database or store / "inspections" / "inspections.sqlite"
    thresholds = (ThresholdConfig.load(thresholds_file) if thresholds_file
                  else ThresholdConfig.load(store / "monitoring.json", optional=True))
    try:
        logged = verdicts.read_sqlite(database, since, until)
    except FileNotFoundError:
        if log_required:
            raise
        if not has_capture(capture_root):
            raise NothingToMonitor(f"nothing to monitor in {store} yet: no inspection log ({database}) and no data "
                                   f"capture ({capture_root}); the local stack writes both (`ivadas up`, then inspect "
                                   "images from the UI or the API, or call an endpoint)") from None
        logged = []
    records = verdicts.attach_feedback(logged, verdicts.folder_feedback(store))
    captured = capture.read_source(capture_root, since, until)
    return run(capture.merge(records, captured.records), LocalReferences(store), since, until, output, thresholds)


def has_capture(root: Path) -> bool:
    """Whether any endpoint request was ever captured under `root` (in any period)."""
    return root.is_dir() and next(root.glob("/".join(["*"] * capture.LEVELS + ["*", "*", "*", "*", "*.jsonl"])), None) is not None


def main() -> int:
    """SageMaker Processing entry point."""
    from pipelines.monitoring.cloudwatch import publish
    from pipelines.monitoring.references import SageMakerReferences

    until = datetime.now(timezone.utc)
    since = until - timedelta(hours=float(os.environ.get("MONITOR_LOOKBACK_HOURS", DEFAULT_LOOKBACK_HOURS)))
    thresholds = ThresholdConfig.from_dict(json.loads(os.environ.get("MONITOR_THRESHOLDS") or "{}"))
    output = Path(os.environ.get("MONITOR_OUTPUT", "/opt/ml/processing/output"))
    records = verdicts.read_dynamodb(os.environ["INSPECTION_TABLE"], since, until)
    if os.environ.get("DATA_BUCKET"):  # people's confirmations and corrections (POST /feedback)
        records = verdicts.attach_feedback(records, verdicts.s3_feedback(os.environ["DATA_BUCKET"]))
    captured = capture.read_source(os.environ.get("CAPTURE_S3_URI"), since, until)
    logged, records = len(records), capture.merge(records, captured.records)
    result = run(records, SageMakerReferences(), since, until, output, thresholds)
    published = publish(result.summary)
    print(f"monitor: {logged} verdicts from the inspection log, {len(captured.records)} from data capture "
          f"({captured.counts['api']} captured API calls left to the log, {captured.counts['unreadable']} unreadable), "
          f"{len(result.summary['alarms'])} alarm(s), {published} metric values")
    for alarm in result.summary["alarms"]:
        print(f"alarm: {alarm['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
