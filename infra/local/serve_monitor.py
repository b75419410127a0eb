"""`python -m infra.local.serve_monitor`: the monitoring job on a schedule, as EventBridge Scheduler starts
the SageMaker Processing job on AWS: every `MONITOR_INTERVAL_S` seconds (and when the API asks for a
run by leaving `MONITORING_STORE/run-requested`), one pass over the last `MONITOR_LOOKBACK_HOURS` of
the inspection log and the data capture into `MONITORING_STORE/latest/`, until SIGTERM. A failed pass
is logged and the next one runs on time."""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: How often a requested run is looked for between scheduled ones.
POLL_S = 1.0


def one_pass(store: Path, output: Path, lookback_hours: float) -> None:
    from pipelines.monitoring.job import NothingToMonitor, run_local

    until = datetime.now(timezone.utc)
    try:  # the inspection log, or only the capture of requests made straight to the endpoints
        result = run_local(store, output, until - timedelta(hours=lookback_hours), until)
    except NothingToMonitor:
        print("monitor: no inspection and no captured request yet", flush=True)
        return
    print(f"monitor: {result.summary['verdicts']} verdicts, {len(result.summary['alarms'])} alarm(s)", flush=True)
    for alarm in result.summary["alarms"]:
        print(f"alarm: {alarm['message']}", flush=True)


def main() -> None:
    store = Path(os.environ["MONITOR_STORE_ROOT"])
    folder = Path(os.environ["MONITORING_STORE"])
    interval = float(os.environ.get("MONITOR_INTERVAL_S", "900"))
    lookback = float(os.environ.get("MONITOR_LOOKBACK_HOURS", "24"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    request = folder / "run-requested"
    next_run = time.monotonic() + min(interval, 30.0)  # a first report soon after start, then on schedule
    while not stop.is_set():
        if request.exists() or time.monotonic() >= next_run:
            request.unlink(missing_ok=True)
            try:
                one_pass(store, folder / "latest", lookback)
            except Exception:
                traceback.print_exc()
            next_run = time.monotonic() + interval
        stop.wait(POLL_S)


if __name__ == "__main__":
    main()
