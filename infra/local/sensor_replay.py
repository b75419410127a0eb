"""A live feed for the sensor demo: the demo pump's evaluation period, replayed into the feed's
incoming folder a few readings at a time, as a plant's data pipeline would drop them.

The replay starts after the rows the model was trained and calibrated on, so what the sensors page
shows was never seen in training; its progress is kept next to the feed's files, so a restarted
`ivadas up` continues where it stopped instead of sending the same hours again.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pipelines.sensors.datasets import read_asset
from pipelines.sensors.settings import SeriesSettings
from pipelines.sensors.splits import split_asset

#: Readings per file and seconds between files: an hour of the demo's 2.5-minute readings per second.
ROWS_PER_FILE = 24
SECONDS_PER_FILE = 1.0


class SensorReplay:
    def __init__(self, data_root: Path, asset: str, store: Path, rows_per_file: int = ROWS_PER_FILE,
                 seconds_per_file: float = SECONDS_PER_FILE):
        self.asset, self.store = asset, Path(store)
        self.rows_per_file, self.seconds_per_file = rows_per_file, seconds_per_file
        data = read_asset(data_root, asset)
        segment = data.segments[0]
        self.header = ",".join(["timestamp", *data.columns])
        self.timestamps, self.values = segment.timestamps, segment.values
        self.first_row = split_asset(data, SeriesSettings())[0].train_end
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def folder(self) -> Path:
        return self.store / "sensors" / self.asset

    @property
    def progress_file(self) -> Path:
        return self.folder / "replay.json"

    def next_row(self) -> int:
        if self.progress_file.is_file():
            return int(json.loads(self.progress_file.read_text())["next_row"])
        return self.first_row

    def drop_next_file(self) -> bool:
        """Write the next few readings as a CSV under incoming/; False when the replay is over."""
        start = self.next_row()
        stop = min(start + self.rows_per_file, len(self.timestamps))
        if start >= stop:
            return False
        lines = [self.header] + [",".join([self.timestamps[i], *(f"{v:.4f}" for v in self.values[i])]) for i in range(start, stop)]
        incoming = self.folder / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        partial = incoming / f".replay-{start:06d}.csv.partial"
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(incoming / f"replay-{start:06d}.csv")  # the feed never reads half a file
        self.progress_file.write_text(json.dumps({"next_row": stop}))
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sensor-replay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.drop_next_file():
            self._stop.wait(self.seconds_per_file)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
