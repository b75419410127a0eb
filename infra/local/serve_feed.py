"""`python -m infra.local.serve_feed`: the sensor feed on a schedule, as EventBridge Scheduler runs its
Lambda on AWS: the same handler (`lambda/predict/sensor_feed.py`), every `SENSOR_FEED_INTERVAL_S`
seconds, each run given a Lambda-like deadline, until SIGTERM."""

import os
import signal
import sys
import threading
from pathlib import Path

from .gateway import LambdaContext

ROOT = Path(__file__).resolve().parents[2]
#: A run's deadline, as the feed Lambda's timeout on AWS (files left over wait for the next run).
RUN_DEADLINE_S = 300.0


def main() -> None:
    sys.path.insert(0, str(ROOT / "lambda" / "predict"))
    import sensor_feed

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sensor_feed.run_forever(float(os.environ.get("SENSOR_FEED_INTERVAL_S", "2")), stop, lambda: LambdaContext(RUN_DEADLINE_S))


if __name__ == "__main__":
    main()
