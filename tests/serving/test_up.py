"""`ivadas up`, the README's main job, run as a user runs it: a real process that trains the demo in
an empty home and serves it, a prediction through `POST /predict`, and a clean stop however it
ends — Ctrl-C, SIGTERM (`docker stop`, systemd, `timeout`), or SIGKILL of `ivadas up` itself —
with no server left running and no port left bound."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.conftest import b64, free_port, http

pytestmark = pytest.mark.slow

#: Generous: training the demo on a busy two-core machine. Only "it never came up" hits it.
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 60
VERDICT_FIELDS = {"class_name", "model", "anomaly_score", "raw_score", "threshold", "is_anomaly", "timing_ms", "request_id"}


@dataclass
class RunningUp:
    process: subprocess.Popen
    home: Path
    output: Path
    port: int
    runtime_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def endpoint_ports(self) -> list[int]:
        entries = json.loads((self.home / "store" / "serving" / "endpoints.json").read_text())
        return [int(address.rsplit(":", 1)[1]) for address in entries.values()]

    def ports(self) -> list[int]:
        return [self.port, self.runtime_port, *self.endpoint_ports()]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    """One IVADAS_HOME for the module: the first test trains the demo in it from empty; the others
    start `ivadas up` on what it approved (and train it themselves when run alone)."""
    return tmp_path_factory.mktemp("ivadas-home")


@contextlib.contextmanager
def ivadas_up(home: Path, log_dir: Path):
    """`ivadas up` on a one-class image demo and the sensor demo's pump (random backbone weights:
    offline) and free ports; whatever the test does, nothing it started outlives it."""
    up = RunningUp(None, home, log_dir / "ivadas-up.log", free_port(), free_port())
    command = [str(Path(sys.executable).with_name("ivadas")), "up", "--classes", "tiles,pump-1", "--weights", "random",
               "--port", str(up.port), "--runtime-port", str(up.runtime_port), "--endpoint-port", str(free_ports_in_a_row(3))]
    with open(up.output, "wb") as output:
        up.process = subprocess.Popen(command, env={**os.environ, "IVADAS_HOME": str(home)}, cwd=log_dir,
                                      stdout=output, stderr=subprocess.STDOUT)
    started = {}
    try:
        wait_until_serving(up)
        started = descendants(up.process.pid)
        yield up, started
    finally:
        up.process.kill()
        up.process.wait()
        for pid, start in {**started, **descendants(up.process.pid)}.items():
            if is_alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def wait_until_serving(up: RunningUp) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert up.process.poll() is None, f"ivadas up exited with {up.process.returncode}:\n{up.text()}"
        try:
            with urllib.request.urlopen(up.url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.HTTPError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"ivadas up did not serve /health within {START_TIMEOUT_S} s:\n{up.text()}")


def wait_for_output(up: RunningUp, text: str, timeout_s: float = 60) -> None:
    """Lines reach a log as they are printed, not when `ivadas up` exits and its buffer is flushed."""
    deadline = time.monotonic() + timeout_s
    while text not in up.text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in the output:\n{up.text()}"
        time.sleep(0.2)


# ----------------------------------------------------------------------------- processes, ports

def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ..., start time at index 19)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def descendants(root: int) -> dict[int, int]:
    """pid → start time of every process below `root` (the start time tells a reused pid apart)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = (int(fields[1]), int(fields[19]))
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def is_alive(pid: int, start: int) -> bool:
    """Running, and the same process (a zombie has exited: it holds no port and no memory)."""
    fields = _stat(pid)
    return fields is not None and int(fields[19]) == start and fields[0] != "Z"


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is not in use
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive free ports (one endpoint per demo model kind)."""
    for _ in range(50):
        first = free_port()
        if all(port_is_free(first + offset) for offset in range(1, count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")


def assert_serving(up: RunningUp, started: dict[int, int]) -> None:
    """Every server is up with its port bound, so that "gone" and "free" afterwards mean something."""
    servers = [command_line(pid) for pid in started if (fields := _stat(pid)) and int(fields[1]) == up.process.pid]
    # the endpoints, the runtime route, the API gateway, the feed, the training worker, the monitor
    assert len(servers) == len(up.endpoint_ports()) + 5, servers
    assert sum("inference.serve" in line for line in servers) == len(up.endpoint_ports()) == 3, servers
    assert sum("infra.local.serve_feed" in line for line in servers) == 1, servers
    assert sum("infra.local.training_worker" in line for line in servers) == 1, servers
    assert sum("infra.local.serve_monitor" in line for line in servers) == 1, servers
    assert len(started) > len(servers), "the servers' gunicorn workers are missing"
    assert not any(port_is_free(port) for port in up.ports())


def assert_all_gone(up: RunningUp, started: dict[int, int], wait_s: float = 0) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        left = {pid: command_line(pid) for pid, start in started.items() if is_alive(pid, start)}
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    assert left == {}, f"still running: {left}"
    assert [port for port in up.ports() if not port_is_free(port)] == []


def predict_demo_image(up: RunningUp, relative: str) -> dict:
    image = up.home / "demo-data" / relative
    status, verdict = http("POST", up.url + "/predict", {"class_name": "tiles", "image_base64": b64(image)})
    assert status == 200, verdict
    assert VERDICT_FIELDS <= set(verdict), verdict
    assert verdict["class_name"] == "tiles" and isinstance(verdict["is_anomaly"], bool)
    assert 0 <= verdict["anomaly_score"] <= 1 and verdict["threshold"] == 0.5
    return verdict


def predict_demo_window(up: RunningUp, start: int, stop: int) -> dict:
    """POST /predict with rows of the demo pump's file, as an inspection station would send them."""
    lines = (up.home / "demo-sensors" / "pump-1.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1 + start:1 + stop]]
    body = {"class_name": "pump-1", "sensors": header[1:-1], "timestamps": [row[0] for row in rows],
            "window": [[float(v) for v in row[1:-1]] for row in rows]}
    status, verdict = http("POST", up.url + "/predict", body)
    assert status == 200, verdict
    assert VERDICT_FIELDS <= set(verdict) and verdict["model"]["kind"] == "pca" and len(verdict["scores"]) == stop - start
    return verdict


def wait_for_replayed_event(up: RunningUp, timeout_s: float = 180) -> list[dict]:
    """The demo's later days reach the sensor feed as files; the first fault becomes an event."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, found = http("GET", up.url + "/assets/pump-1/events")
        if status == 200 and found["events"]:
            return found["events"]
        time.sleep(1)
    raise TimeoutError(f"no event from the replayed sensor demo within {timeout_s} s:\n{up.text()}")


# ------------------------------------------------------------------------------------- tests

def test_from_an_empty_home_up_trains_the_demo_serves_it_and_sigterm_stops_every_server(demo_home, tmp_path):
    assert list(demo_home.iterdir()) == []
    with ivadas_up(demo_home, tmp_path) as (up, started):
        assert_serving(up, started)
        wait_for_output(up, f"IVADAS is running at {up.url}")
        anomalous = predict_demo_image(up, "tiles/test/hole/000.png")
        assert anomalous["is_anomaly"] is True
        assert anomalous["model"] == {"kind": "patchcore", "version": "ivadas-training-patchcore/1"}
        assert predict_demo_image(up, "tiles/test/good/000.png")["is_anomaly"] is False
        assert predict_demo_window(up, 2560, 2640)["is_anomaly"] is True  # the bearing drifts from row 2580
        event = wait_for_replayed_event(up)[-1]
        assert event["top_sensors"] and event["start"] >= "2026-03-05T12:00:00Z"  # replayed from the end of training
        status, series = http("GET", up.url + "/assets/pump-1/series")
        assert status == 200 and series["sensors"][0] == "motor_current" and len(series["scores"]) == len(series["timestamps"]) > 0

        up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(timeout=STOP_TIMEOUT_S) == 0
        assert_all_gone(up, started)  # gone before `ivadas up` exited: nothing to wait for
    output = up.text()
    assert "no approved patchcore model: training one on the DEMO data (tiles;" in output
    assert "no approved pca model: training one on the DEMO data (pump-1)" in output
    assert "stopping (SIGTERM)" in output
    assert "\r" not in output and "img/s" not in output and "it/s" not in output  # no progress bars in a log


def test_ctrl_c_stops_every_server(demo_home, tmp_path):
    with ivadas_up(demo_home, tmp_path) as (up, started):
        assert_serving(up, started)
        predict_demo_image(up, "tiles/test/good/001.png")
        up.process.send_signal(signal.SIGINT)
        assert up.process.wait(timeout=STOP_TIMEOUT_S) == 0
        assert_all_gone(up, started)
    assert "stopping (SIGINT)" in up.text()


def test_servers_stop_on_their_own_when_up_is_killed(demo_home, tmp_path):
    with ivadas_up(demo_home, tmp_path) as (up, started):
        assert_serving(up, started)
        predict_demo_image(up, "tiles/test/good/002.png")
        up.process.send_signal(signal.SIGKILL)
        assert up.process.wait(timeout=STOP_TIMEOUT_S) == -signal.SIGKILL
        assert_all_gone(up, started, wait_s=STOP_TIMEOUT_S)


def test_a_class_the_demo_does_not_have_is_one_clear_error_before_any_work(tmp_path, monkeypatch, capsys):
    from infra.cli import main

    monkeypatch.setenv("IVADAS_HOME", str(tmp_path))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert main(["up", "--classes", "tiles,bolts", "--port", str(free_port()), "--runtime-port", str(free_port())]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the demo has no class 'bolts'; its classes are tiles, ") and "--data DIR" in line
    assert not (tmp_path / "demo-data").exists()
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers  # the caller's handlers are back
