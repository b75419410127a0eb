"""The bench's side of `pipelines/peer_anomalib.py --serve`: anomalib's PatchCore trained in its own
virtualenv and process, then timing the single-image queries the bench asks for, when it asks.

The peer's stderr (Lightning's and anomalib's messages) goes to a log file in the workdir; its stdout
is read line by line, and only lines of the exchange (`PROTOCOL`) are answers.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pipelines.peer_anomalib import PROTOCOL

PEER_SCRIPT = Path(__file__).with_name("peer_anomalib.py")


class PeerProcess:
    """`with PeerProcess(...) as peer: peer.trained(); peer.time([0, 1, 2])`; a peer that fails or stops
    before answering raises ValueError with the last line of its log."""

    def __init__(self, python: Path, train_dir: Path, queries: Path, workdir: Path, image_size: int = 256,
                 coreset_ratio: float = 0.01):
        self.python = Path(python)
        self.log = Path(workdir) / "peer-anomalib.log"
        self.command = [str(python), str(PEER_SCRIPT), "--train-dir", str(train_dir), "--queries", str(queries),
                        "--output", str(Path(workdir) / "peer-anomalib.json"), "--workdir",
                        str(Path(workdir) / "peer-anomalib"), "--image-size", str(image_size),
                        "--coreset-ratio", str(coreset_ratio), "--serve"]
        self.workdir = Path(workdir)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PeerProcess:
        # the peer's own environment: nothing of IVADAS's on its path
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PYTHONNOUSERSITE"] = "1"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            text=True, env=env, cwd=self.workdir)
        return self

    def trained(self) -> dict:
        """The peer's training measurements, once it has trained (minutes)."""
        return self._answer()

    def time(self, queries: list[int]) -> list[float]:
        """Milliseconds of each query (rows of the queries file), answered one after the other."""
        try:
            self.process.stdin.write(json.dumps({"queries": list(queries)}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self._failed()
        return self._answer()["ms"]

    def _answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
        self._failed()

    def _failed(self):
        code = self.process.wait(timeout=60)
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        last = (lines or ["no message"])[-1]  # a Python failure ends with its exception
        raise ValueError(f"the peer failed (exit {code}) in {self.python.parent.parent}: {last}")

    def __exit__(self, *exc) -> None:
        if self.process is None:
            return
        try:
            if self.process.poll() is None:
                self.process.stdin.write(json.dumps({"done": True}) + "\n")
                self.process.stdin.close()
            self.process.wait(timeout=60)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            self.process.stdout.close()
